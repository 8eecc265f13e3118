//! FileStorage: what was acknowledged survives a restart; a torn tail is cut away; damage
//! anywhere else stops recovery with an error naming the file and offset.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use skiff_core::{
    Entry, EntryKind, HardState, Index, Membership, NodeId, Persist, Restored, Snapshot, SnapshotMeta, Term,
};
use skiff_std::storage::{FileStorage, FileStorageOptions, SnapshotWrites, Storage, StorageError};

fn entry(i: u64, t: u64) -> Entry {
    Entry { index: Index(i), term: Term(t), kind: EntryKind::Command, data: Bytes::from(format!("cmd-{i}")) }
}

fn hs(term: u64, commit: u64) -> HardState {
    HardState { term: Term(term), vote: Some(NodeId(1)), commit: Index(commit) }
}

fn persist(seq: u64, entries: Vec<Entry>) -> Persist {
    Persist { seq, snapshot: None, hard_state: Some(hs(1, 0)), truncate_from: None, entries }
}

fn open(dir: &Path) -> Result<(FileStorage, Restored), StorageError> {
    FileStorage::open(dir, FileStorageOptions::default())
}

fn indexes(r: &Restored) -> Vec<u64> {
    r.entries.iter().map(|e| e.index.0).collect()
}

fn segment(dir: &Path, number: u64) -> PathBuf {
    dir.join("wal").join(format!("{number:020}.wal"))
}

#[test]
fn a_fresh_directory_recovers_empty_and_records_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, r) = open(dir.path()).unwrap();
    assert_eq!(r, Restored::default());
    s.append(&[persist(1, vec![entry(1, 1), entry(2, 1)]), persist(2, vec![entry(3, 1)])]).unwrap();
    // A conflicting suffix replaces entries 3.. (as a follower's truncation does).
    let mut p = persist(3, vec![entry(3, 2)]);
    p.hard_state = Some(hs(2, 2));
    p.truncate_from = Some(Index(3));
    s.append(&[p]).unwrap();
    drop(s);
    let (_, r) = open(dir.path()).unwrap();
    assert_eq!(r.hard_state, hs(2, 2));
    assert_eq!(r.entries, vec![entry(1, 1), entry(2, 1), entry(3, 2)]);
}

/// Writes batches of one entry each; returns the WAL's length in records after each batch
/// (the segment is preallocated: zeros follow).
fn write_batches(dir: &Path, n: u64) -> Vec<u64> {
    let (mut s, _) = open(dir).unwrap();
    let mut lens = Vec::new();
    for i in 1..=n {
        s.append(&[persist(i, vec![entry(i, 1)])]).unwrap();
        lens.push(s.wal_bytes().get());
    }
    if cfg!(target_os = "linux") {
        assert_eq!(fs::metadata(segment(dir, 1)).unwrap().len(), FileStorageOptions::default().segment_bytes);
    }
    lens
}

/// The records of segment 1 (without the preallocated zeros after them).
fn records(dir: &Path, lens: &[u64]) -> Vec<u8> {
    let bytes = fs::read(segment(dir, 1)).unwrap();
    let end = *lens.last().unwrap() as usize;
    assert!(bytes[end..].iter().all(|&b| b == 0), "zeros after the records");
    bytes[..end].to_vec()
}

#[test]
fn a_wal_cut_at_any_byte_of_its_last_record_recovers_every_earlier_record() {
    let dir = tempfile::tempdir().unwrap();
    let lens = write_batches(dir.path(), 5);
    let wal = records(dir.path(), &lens);
    let (start, end) = (lens[3], lens[4]);
    for cut in start..end {
        let copy = tempfile::tempdir().unwrap();
        fs::create_dir(copy.path().join("wal")).unwrap();
        fs::write(segment(copy.path(), 1), &wal[..cut as usize]).unwrap();
        let (s, r) = open(copy.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(indexes(&r), vec![1, 2, 3, 4], "cut at {cut}");
        // The torn bytes are gone (zeros now): the next write lands after the last whole record.
        assert_eq!(s.wal_bytes().get(), start, "cut at {cut}");
        let bytes = fs::read(segment(copy.path(), 1)).unwrap();
        assert!(bytes[start as usize..].iter().all(|&b| b == 0), "cut at {cut}: the torn bytes are zeros");
    }
}

#[test]
fn a_flipped_byte_before_the_tail_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let lens = write_batches(dir.path(), 5);
    let path = segment(dir.path(), 1);
    let good = records(dir.path(), &lens);
    // A byte in the payload of the second record, then a byte of its length field.
    for (at, what) in [(lens[0] + 10, "checksum"), (lens[0] + 1, "length")] {
        let mut bad = good.clone();
        bad[at as usize] ^= 0x5a;
        fs::write(&path, &bad).unwrap();
        match open(dir.path()) {
            Err(StorageError::Corrupt { path: p, offset, .. }) => {
                assert_eq!((p, offset), (path.clone(), lens[0]), "damaged {what}");
            }
            other => panic!("damaged {what}: expected a corruption error, got {other:?}"),
        }
        let message = open(dir.path()).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()) && message.contains(&lens[0].to_string()), "{message}");
    }
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index: Index(index),
            term: Term(term),
            membership: Membership::from_voters(vec![NodeId(1), NodeId(2), NodeId(3)]).unwrap(),
            membership_index: Index(0),
        },
        data: Bytes::from(vec![7u8; 1000]),
    }
}

#[test]
fn restart_after_a_snapshot_gives_the_snapshot_and_the_log_after_it_and_trims_segments() {
    for how in [SnapshotWrites::Inline, SnapshotWrites::Deferred, SnapshotWrites::Background] {
        restart_after_a_snapshot(how);
    }
}

fn restart_after_a_snapshot(how: SnapshotWrites) {
    let dir = tempfile::tempdir().unwrap();
    let opts = FileStorageOptions { segment_bytes: 512, snapshot_writes: how, ..FileStorageOptions::default() };
    let (mut s, _) = FileStorage::open(dir.path(), opts.clone()).unwrap();
    for i in 1..=100 {
        s.append(&[persist(i, vec![entry(i, 1)])]).unwrap();
    }
    let segments_before = fs::read_dir(dir.path().join("wal")).unwrap().count();
    assert!(segments_before > 3, "small segments roll: {segments_before}");
    let p = Persist {
        seq: 101,
        snapshot: Some(snapshot(80, 1)),
        hard_state: Some(hs(1, 90)),
        truncate_from: None,
        entries: vec![],
    };
    s.append(&[p]).unwrap();
    if how == SnapshotWrites::Deferred {
        // Its file is written, and its record follows, with the next batch.
        s.append(&[Persist { hard_state: None, ..persist(102, vec![]) }]).unwrap();
    }
    if how != SnapshotWrites::Background {
        let segments_after = fs::read_dir(dir.path().join("wal")).unwrap().count();
        assert!(
            segments_after < segments_before,
            "covered segments are deleted: {segments_before} -> {segments_after}"
        );
    }
    // Closing lets a background write finish; its record is then recovery's to write.
    drop(s);
    let (mut s, r) = FileStorage::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(r.snapshot, Some(snapshot(80, 1)));
    assert_eq!(r.hard_state, hs(1, 90));
    assert_eq!(indexes(&r), (81..=100).collect::<Vec<_>>());
    // Installing a snapshot past the log (a follower's install) discards it.
    let p = Persist {
        seq: 1,
        snapshot: Some(snapshot(150, 2)),
        hard_state: Some(hs(2, 150)),
        truncate_from: Some(Index(151)),
        entries: vec![],
    };
    s.append(&[p, persist(2, vec![entry(151, 2)])]).unwrap();
    drop(s);
    let (_, r) = FileStorage::open(dir.path(), opts).unwrap();
    assert_eq!(r.snapshot.as_ref().map(|s| s.meta.index), Some(Index(150)));
    assert_eq!(indexes(&r), vec![151]);
}

#[test]
fn a_missing_segment_or_a_damaged_snapshot_stops_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FileStorageOptions { segment_bytes: 256, ..FileStorageOptions::default() };
    let (mut s, _) = FileStorage::open(dir.path(), opts.clone()).unwrap();
    for i in 1..=40 {
        s.append(&[persist(i, vec![entry(i, 1)])]).unwrap();
    }
    drop(s);
    fs::remove_file(segment(dir.path(), 2)).unwrap();
    match FileStorage::open(dir.path(), opts.clone()) {
        Err(StorageError::MissingSegment { path }) => assert_eq!(path, segment(dir.path(), 2)),
        other => panic!("expected a missing segment error, got {other:?}"),
    }

    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = FileStorage::open(dir.path(), opts.clone()).unwrap();
    let p = Persist {
        seq: 1,
        snapshot: Some(snapshot(5, 1)),
        hard_state: Some(hs(1, 5)),
        truncate_from: None,
        entries: vec![],
    };
    s.append(&[p]).unwrap();
    drop(s);
    let path = dir.path().join("snapshot");
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&path, bytes).unwrap();
    let err = FileStorage::open(dir.path(), opts).unwrap_err();
    assert!(matches!(&err, StorageError::Corrupt { path: p, .. } if *p == path), "{err}");
}

#[test]
fn a_zero_filled_tail_is_torn_but_bit_rot_in_the_last_record_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let lens = write_batches(dir.path(), 5);
    let path = segment(dir.path(), 1);
    let good = records(dir.path(), &lens);
    // The size of a write reached the disk but not its data.
    let mut zeroed = good.clone();
    zeroed.resize(good.len() + 4096, 0);
    fs::write(&path, &zeroed).unwrap();
    let (s, r) = open(dir.path()).unwrap();
    assert_eq!(indexes(&r), vec![1, 2, 3, 4, 5]);
    assert_eq!(s.wal_bytes().get(), good.len() as u64, "the zeros are not records");
    drop(s);
    // ... or only its first part did.
    let mut half = good[..lens[3] as usize + 10].to_vec();
    half.resize(good.len(), 0);
    fs::write(&path, &half).unwrap();
    assert_eq!(indexes(&open(dir.path()).unwrap().1), vec![1, 2, 3, 4]);
    // A flipped byte inside the last, acknowledged record is not a torn write.
    for at in [lens[3] + 2, lens[3] + 20, lens[4] - 1] {
        let mut bad = good.clone();
        bad[at as usize] ^= 0x10;
        fs::write(&path, &bad).unwrap();
        match open(dir.path()) {
            Err(StorageError::Corrupt { path: p, offset, .. }) => assert_eq!((p, offset), (path.clone(), lens[3])),
            other => panic!("byte {at} of the last record flipped: expected corruption, got {other:?}"),
        }
    }
}

#[test]
fn a_batch_larger_than_a_record_is_split_and_recovered_whole_and_an_oversized_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FileStorageOptions { segment_bytes: 8 << 20, ..FileStorageOptions::default() };
    let (mut s, _) = FileStorage::open(dir.path(), opts.clone()).unwrap();
    let big = |i: u64| Entry {
        index: Index(i),
        term: Term(1),
        kind: EntryKind::Command,
        data: Bytes::from(vec![i as u8; 1 << 20]),
    };
    let batch: Vec<Entry> = (1..=40).map(big).collect();
    s.append(&[persist(1, batch.clone())]).unwrap();
    drop(s);
    let sizes: Vec<u64> =
        fs::read_dir(dir.path().join("wal")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).collect();
    assert!(sizes.len() >= 3, "a 40 MiB batch spans 8 MiB segments: {sizes:?}");
    let bound = opts.segment_bytes + opts.record_bytes as u64 + 4096;
    assert!(sizes.iter().all(|&s| s <= bound), "no segment grows past a segment and a record: {sizes:?}");
    let (mut s, r) = FileStorage::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(r.entries, batch);
    // One entry larger than any record the reader accepts is refused before anything of it
    // is written.
    let huge = Entry { data: Bytes::from(vec![0u8; 257 << 20]), ..big(41) };
    match s.append(&[persist(2, vec![huge])]) {
        Err(e @ StorageError::TooLarge { .. }) => assert!(e.to_string().contains("exceeds the maximum"), "{e}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    drop(s);
    assert_eq!(FileStorage::open(dir.path(), opts).unwrap().1.entries, batch);
}
