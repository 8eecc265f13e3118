//! Data directories written by earlier releases still open, with the state they held.
//!
//! `fixtures/format3` was written by `FileStorage` at commit 9b78901 (WAL segment format 3,
//! snapshot file without a magic), with 512-byte segments and inline snapshot writes:
//! - entry 1 (a noop) and 2..=40 (commands) in term 1, vote for n1;
//! - entry 41 (a noop) and 42..=58 in term 2, vote for n2;
//! - a snapshot at 30 (term 1, voters n1 n2 n3, 1,000 bytes `i % 251`), which trimmed the
//!   segments it covered;
//! - a term-3 leader (vote n3) replaced 55.. with a noop at 55 and commands 56..=60; commit 50.
//!
//! Commands carry `cmd-{index}-t{term}`. The test opens a copy: recovery may write.

use std::fs;
use std::path::Path;

use bytes::Bytes;
use skiff_core::{Entry, EntryKind, HardState, Index, Membership, NodeId, Persist, Snapshot, SnapshotMeta, Term};
use skiff_std::storage::{FileStorage, FileStorageOptions, Storage};

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn a_format_3_data_directory_opens_with_its_snapshot_log_and_hard_state() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format3");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());
    let (mut storage, r) =
        FileStorage::open(dir.path(), FileStorageOptions::default()).expect("a format-3 directory opens");
    assert_eq!(r.hard_state, HardState { term: Term(3), vote: Some(NodeId(3)), commit: Index(50) });
    let snapshot = r.snapshot.as_ref().expect("the snapshot");
    assert_eq!((snapshot.meta.index, snapshot.meta.term), (Index(30), Term(1)));
    // The voters of its time, as the bootstrap configuration (set by no entry).
    assert_eq!(snapshot.meta.membership, Membership::from_voters([NodeId(1), NodeId(2), NodeId(3)]).unwrap());
    assert_eq!(snapshot.meta.membership_index, Index(0));
    assert_eq!(snapshot.data.to_vec(), (0..1000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let got: Vec<(u64, u64, EntryKind, String)> =
        r.entries.iter().map(|e| (e.index.0, e.term.0, e.kind, String::from_utf8(e.data.to_vec()).unwrap())).collect();
    let want: Vec<(u64, u64, EntryKind, String)> = (31..=60)
        .map(|i| {
            let term = match i {
                ..=40 => 1,
                41..=54 => 2,
                _ => 3,
            };
            if i == 41 || i == 55 {
                (i, term, EntryKind::Noop, String::new())
            } else {
                (i, term, EntryKind::Command, format!("cmd-{i}-t{term}"))
            }
        })
        .collect();
    assert_eq!(got, want);

    // Writing goes on in a new segment of the current format (never appended to an old one),
    // and a new snapshot file is of the current format; both read back.
    let next = Entry { index: Index(61), term: Term(3), kind: EntryKind::Command, data: Bytes::from_static(b"new") };
    let hs = HardState { term: Term(3), vote: Some(NodeId(3)), commit: Index(60) };
    storage
        .append(&[Persist { seq: 1, snapshot: None, hard_state: Some(hs), truncate_from: None, entries: vec![next] }])
        .unwrap();
    let mut names: Vec<String> =
        fs::read_dir(dir.path().join("wal")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names.len(), 3, "a new segment: {names:?}");
    let newest = fs::read(dir.path().join("wal").join(&names[2])).unwrap();
    assert_eq!(&newest[..8], b"SKIFWAL\x04");
    let meta = SnapshotMeta { index: Index(58), term: Term(3), ..snapshot.meta.clone() };
    let snap = Snapshot { meta, data: Bytes::from_static(b"state at 58") };
    let p = Persist { seq: 2, snapshot: Some(snap.clone()), hard_state: None, truncate_from: None, entries: vec![] };
    storage.append(&[p]).unwrap();
    drop(storage);
    assert_eq!(&fs::read(dir.path().join("snapshot")).unwrap()[..8], b"SKIFSNP\x04");
    let (_, r) = FileStorage::open(dir.path(), FileStorageOptions::default()).unwrap();
    assert_eq!(r.snapshot, Some(snap));
    assert_eq!(r.hard_state, hs);
    assert_eq!(r.entries.iter().map(|e| e.index.0).collect::<Vec<_>>(), (59..=61).collect::<Vec<_>>());
}
