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

use skiff_core::{EntryKind, HardState, Index, NodeId, Term};
use skiff_std::storage::{FileStorage, FileStorageOptions};

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
    let (_, r) = FileStorage::open(dir.path(), FileStorageOptions::default()).expect("a format-3 directory opens");
    assert_eq!(r.hard_state, HardState { term: Term(3), vote: Some(NodeId(3)), commit: Index(50) });
    let snapshot = r.snapshot.as_ref().expect("the snapshot");
    assert_eq!((snapshot.meta.index, snapshot.meta.term), (Index(30), Term(1)));
    assert_eq!(snapshot.meta.voters, vec![NodeId(1), NodeId(2), NodeId(3)]);
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
}
