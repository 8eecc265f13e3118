//! Crash consistency of FileStorage, in the manner of ALICE (OSDI '14): run a workload that
//! rolls segments, snapshots, installs snapshots and truncates a conflicting suffix over a
//! simulated file system that records its state after every operation, and for every crash
//! point recover from every disk state the crash allows (`DiskImage::crash_states`: unsynced
//! data lost, torn, zero-filled or kept; name changes kept or not, each on its own).
//!
//! Every recovery must give exactly what was acknowledged (each batch whose `append` returned,
//! plus possibly a prefix of the batch in flight), must not change when the power fails right
//! after it (recovery synced what it read), must be a state the core accepts, and must take
//! further writes that a later recovery returns. The same holds after ENOSPC or EIO on every
//! single operation, which must fail the batch in flight with an error naming its file.

use std::path::Path;

use bytes::Bytes;
use skiff_core::{
    Config, Entry, EntryKind, HardState, Index, Membership, Node, NodeId, Persist, Restored, Snapshot, SnapshotMeta,
    Term,
};
use skiff_std::storage::{DiskImage, FileStorage, FileStorageOptions, SimFs, SnapshotWrites, Storage, StorageError};

const DIR: &str = "/data";

fn opts((snapshot_writes, preallocate): Writes) -> FileStorageOptions {
    FileStorageOptions { segment_bytes: 300, record_bytes: 200, sync: true, snapshot_writes, preallocate }
}

/// How the storage writes: snapshot files and whether segments are preallocated.
type Writes = (SnapshotWrites, bool);

/// Both orders a snapshot file can take: inside its batch, and after it (`Deferred`: the
/// order `Background` takes, made deterministic); each with segments preallocated (written
/// over zeros) and without (appended to).
const WRITES: [Writes; 4] = [
    (SnapshotWrites::Inline, false),
    (SnapshotWrites::Deferred, false),
    (SnapshotWrites::Inline, true),
    (SnapshotWrites::Deferred, true),
];

fn entry(i: u64, t: u64) -> Entry {
    Entry {
        index: Index(i),
        term: Term(t),
        kind: EntryKind::Command,
        data: Bytes::from(format!("command {i} of term {t}")),
    }
}

fn entries(from: u64, to: u64, t: u64) -> Vec<Entry> {
    (from..=to).map(|i| entry(i, t)).collect()
}

fn hs(term: u64, commit: u64) -> HardState {
    HardState { term: Term(term), vote: Some(NodeId(1)), commit: Index(commit) }
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index: Index(index),
            term: Term(term),
            membership: Membership::from_voters(vec![NodeId(1), NodeId(2), NodeId(3)]).unwrap(),
            membership_index: Index(0),
        },
        data: Bytes::from(vec![index as u8; 64]),
    }
}

fn p(hard_state: Option<HardState>, truncate_from: Option<u64>, entries: Vec<Entry>) -> Persist {
    Persist { seq: 0, snapshot: None, hard_state, truncate_from: truncate_from.map(Index), entries }
}

fn install(s: Snapshot, hard_state: HardState, truncate_from: Option<u64>) -> Persist {
    Persist {
        seq: 0,
        snapshot: Some(s),
        hard_state: Some(hard_state),
        truncate_from: truncate_from.map(Index),
        entries: vec![],
    }
}

/// The workload: batches as the core would hand them to storage, three rounds of: entries,
/// a conflicting suffix replaced, a snapshot that trims segments, a snapshot installed past
/// the log, one matching it, one conflicting with it, and a batch that spans segments.
fn workload() -> Vec<Vec<Persist>> {
    let mut batches = Vec::new();
    let (mut b, mut t) = (0, 1);
    for _ in 0..3 {
        batches.extend([
            vec![p(Some(hs(t, b)), None, entries(b + 1, b + 3, t))],
            vec![p(Some(hs(t, b + 3)), None, entries(b + 4, b + 6, t))],
            vec![p(None, None, entries(b + 7, b + 8, t)), p(Some(hs(t, b + 6)), None, entries(b + 9, b + 10, t))],
            // A new leader's entries replace the uncommitted suffix.
            vec![p(Some(hs(t + 1, b + 6)), Some(b + 7), entries(b + 7, b + 8, t + 1))],
            vec![p(Some(hs(t + 1, b + 8)), None, entries(b + 9, b + 12, t + 1))],
            // The service's snapshot: segments it covers are deleted.
            vec![Persist { snapshot: Some(snapshot(b + 8, t + 1)), ..p(None, None, vec![]) }],
            vec![p(Some(hs(t + 1, b + 12)), None, entries(b + 13, b + 16, t + 1))],
            // Entries, then a snapshot, in one batch: the snapshot must not outlive them.
            vec![
                p(Some(hs(t + 1, b + 16)), None, entries(b + 17, b + 18, t + 1)),
                Persist { snapshot: Some(snapshot(b + 14, t + 1)), ..p(None, None, vec![]) },
            ],
            // A leader's snapshot past the log discards it all.
            vec![
                install(snapshot(b + 20, t + 2), hs(t + 2, b + 20), Some(b + 21)),
                p(None, None, entries(b + 21, b + 24, t + 2)),
            ],
            // One that matches the log keeps what follows it.
            vec![install(snapshot(b + 22, t + 2), hs(t + 2, b + 22), None)],
            // One that conflicts with it discards what follows.
            vec![install(snapshot(b + 23, t + 3), hs(t + 3, b + 23), Some(b + 24))],
            // Large enough to be split into records and to span segments.
            vec![p(Some(hs(t + 3, b + 23)), None, entries(b + 24, b + 40, t + 3))],
            vec![p(Some(hs(t + 3, b + 40)), None, entries(b + 41, b + 43, t + 3))],
        ]);
        (b, t) = (b + 43, t + 3);
    }
    let mut seq = 0;
    for p in batches.iter_mut().flatten() {
        seq += 1;
        p.seq = seq;
    }
    batches
}

/// What a node holds by the Persist contract, written independently of the storage.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
}

impl Model {
    fn apply(&mut self, p: &Persist) {
        if let Some(s) = &p.snapshot {
            self.entries.retain(|e| e.index > s.meta.index);
            self.snapshot = Some(s.clone());
        }
        if let Some(t) = p.truncate_from {
            self.entries.retain(|e| e.index < t);
        }
        if let Some(first) = p.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(p.entries.iter().cloned());
        }
        if let Some(h) = p.hard_state {
            self.hard_state = h;
        }
    }

    /// The snapshot alone, as recovery's install rule takes it when its record was lost.
    fn snapshot_only(&self, s: &Snapshot) -> Model {
        let matches = self.entries.iter().any(|e| e.index == s.meta.index && e.term == s.meta.term);
        let mut m = self.clone();
        m.entries.retain(|e| matches && e.index > s.meta.index);
        m.snapshot = Some(s.clone());
        if s.meta.term > m.hard_state.term {
            m.hard_state = HardState { term: s.meta.term, vote: None, commit: m.hard_state.commit };
        }
        m
    }

    fn restored(&self) -> Restored {
        Restored { hard_state: self.hard_state, snapshot: self.snapshot.clone(), entries: self.entries.clone() }
    }
}

/// The states a recovery may return when `acked` batches were acknowledged: those, plus any
/// prefix of the next batch (and its snapshot without its record, and a Persist split into
/// records cut after any of its entries, with the new term but the old commit index).
///
/// With snapshot files written after their batch (`how` not `Inline`), the last acknowledged
/// batch's or the in-flight batch's snapshots that discard nothing may not be recorded yet:
/// the states without them are allowed too (they recover the same Raft state).
fn allowed(batches: &[Vec<Persist>], acked: usize, how: SnapshotWrites) -> Vec<Restored> {
    let mut states = allowed_in_order(batches, acked);
    if how != SnapshotWrites::Inline {
        let mut without = batches.to_vec();
        for batch in without.iter_mut().skip(acked.saturating_sub(1)).take(2) {
            for p in batch.iter_mut().filter(|p| p.truncate_from.is_none()) {
                p.snapshot = None;
            }
        }
        states.extend(allowed_in_order(&without, acked));
    }
    states
}

fn allowed_in_order(batches: &[Vec<Persist>], acked: usize) -> Vec<Restored> {
    let mut m = Model::default();
    batches[..acked].iter().flatten().for_each(|p| m.apply(p));
    let mut states = vec![m.restored()];
    for p in batches.get(acked).into_iter().flatten() {
        if let Some(s) = &p.snapshot {
            states.push(m.snapshot_only(s).restored());
        }
        for cut in 1..p.entries.len() {
            let hard_state = p.hard_state.map(|h| HardState { commit: m.hard_state.commit, ..h });
            let mut partial = m.clone();
            partial.apply(&Persist { entries: p.entries[..cut].to_vec(), hard_state, ..p.clone() });
            states.push(partial.restored());
        }
        m.apply(p);
        states.push(m.restored());
    }
    states
}

fn open(image: DiskImage) -> (SimFs, Result<(FileStorage<SimFs>, Restored), StorageError>) {
    let fs = SimFs::from_image(image);
    // Recovery does not depend on how snapshots are written; it preallocates (the default).
    let opened = FileStorage::open_on(fs.clone(), DIR, opts((SnapshotWrites::Inline, true)));
    (fs, opened)
}

fn core_accepts(r: &Restored) -> Result<(), String> {
    let cfg = Config::builder(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)], 1).build().map_err(|e| format!("{e:?}"))?;
    Node::new(cfg, r.clone()).map(|_| ()).map_err(|e| e.to_string())
}

/// Recovers from `image` and checks everything the module docs promise. `Err` describes
/// the first broken promise.
fn check_recovery(image: &DiskImage, allowed: &[Restored]) -> Result<(), String> {
    let (fs, opened) = open(image.clone());
    let (mut storage, r) = opened.map_err(|e| format!("recovery failed: {e}"))?;
    if !allowed.contains(&r) {
        return Err(format!("recovered a state never acknowledged nor in flight: {r:?}"));
    }
    core_accepts(&r).map_err(|e| format!("the core refuses the recovered state: {e}"))?;
    let (_, again) = open(fs.image().power_loss());
    match again {
        Ok((_, r2)) if r2 == r => {}
        Ok((_, r2)) => return Err(format!("a power loss right after recovery changed it: {r:?} then {r2:?}")),
        Err(e) => return Err(format!("a power loss right after recovery broke it: {e}")),
    }
    // Go on writing: entries after what was recovered, then a snapshot covering them all.
    let last = r
        .entries
        .last()
        .map(|e| (e.index.0, e.term.0))
        .or(r.snapshot.as_ref().map(|s| (s.meta.index.0, s.meta.term.0)));
    let (last, term) = last.unwrap_or((0, 1));
    let term = term.max(r.hard_state.term.0);
    let more = vec![
        Persist { seq: 1, ..p(Some(hs(term, r.hard_state.commit.0)), None, entries(last + 1, last + 4, term)) },
        Persist { seq: 2, snapshot: Some(snapshot(last + 4, term)), ..p(None, None, vec![]) },
        Persist { seq: 3, ..p(None, None, entries(last + 5, last + 6, term)) },
    ];
    storage.append(&more).map_err(|e| format!("writing after recovery failed: {e}"))?;
    drop(storage);
    let mut want = Model { hard_state: r.hard_state, snapshot: r.snapshot.clone(), entries: r.entries.clone() };
    more.iter().for_each(|p| want.apply(p));
    match open(fs.image().power_loss()).1 {
        Ok((_, r3)) if r3 == want.restored() => Ok(()),
        Ok((_, r3)) => Err(format!("what was written after recovery came back wrong: {r3:?}")),
        Err(e) => Err(format!("recovery after further writes failed: {e}")),
    }
}

/// Runs the workload on `fs` (recording), returning the number of operations after each
/// acknowledged batch and the error that stopped it, if any.
fn run(fs: &SimFs, batches: &[Vec<Persist>], how: Writes) -> (Vec<u64>, Option<StorageError>) {
    let mut acked_at = Vec::new();
    let (mut storage, _) = match FileStorage::open_on(fs.clone(), DIR, opts(how)) {
        Ok(opened) => opened,
        Err(e) => return (acked_at, Some(e)),
    };
    for batch in batches {
        if let Err(e) = storage.append(batch) {
            return (acked_at, Some(e));
        }
        acked_at.push(fs.ops());
    }
    (acked_at, None)
}

#[test]
fn every_crash_state_of_every_crash_point_recovers_what_was_acknowledged() {
    for how in WRITES {
        let batches = workload();
        let fs = SimFs::new();
        fs.record();
        let (acked_at, failed) = run(&fs, &batches, how);
        assert!(failed.is_none(), "{failed:?}");
        let images = fs.images();
        let segments: std::collections::BTreeSet<_> = images
            .iter()
            .flat_map(|i| i.files().into_keys())
            .filter(|p| p.starts_with(Path::new(DIR).join("wal")) && p.extension().is_some_and(|e| e == "wal"))
            .collect();
        let rolled = segments.len();
        let (mut states, mut failures) = (0, Vec::new());
        for (k, image) in images.iter().enumerate() {
            let acked = acked_at.iter().filter(|&&at| at <= k as u64).count();
            let allowed = allowed(&batches, acked, how.0);
            for (what, state) in image.crash_states() {
                states += 1;
                if let Err(why) = check_recovery(&state, &allowed) {
                    failures.push(format!("crash after operation {k} ({acked} batches acknowledged), {what}: {why}"));
                }
            }
        }
        println!(
            "crash_points ({how:?} snapshot writes): {} crash points, {states} crash states explored, {} failures",
            images.len(),
            failures.len()
        );
        assert!(
            rolled >= 4 && images.len() > 60,
            "the workload rolls segments: {rolled} segments, {} ops",
            images.len()
        );
        assert!(
            failures.is_empty(),
            "{how:?}: {} of {states} crash states fail:\n{}",
            failures.len(),
            failures[..failures.len().min(20)].join("\n")
        );
    }
}

#[test]
fn enospc_or_eio_on_any_operation_fails_its_batch_naming_the_file_and_loses_nothing_acknowledged() {
    let batches = workload();
    let (mut cases, mut states, mut failures) = (0, 0, Vec::new());
    for how in WRITES {
        let total = {
            let fs = SimFs::new();
            run(&fs, &batches, how);
            fs.ops()
        };
        for op in 1..=total {
            for errno in [28, 5] {
                cases += 1;
                let fs = SimFs::new();
                fs.fail_at(op, errno);
                let (acked_at, failed) = run(&fs, &batches, how);
                let case = format!("{how:?}: errno {errno} on operation {op}");
                match failed {
                    // A full disk at a preallocation is gone without: the writes report one.
                    None if errno == 28 && fs.fired().is_some_and(|w| w.starts_with("preallocate")) => {}
                    None => {
                        failures.push(format!("{case}: no batch failed ({:?})", fs.fired()));
                        continue;
                    }
                    Some(e) => {
                        let message = e.to_string();
                        if !matches!(e, StorageError::Io { .. })
                            || !message.contains(DIR)
                            || !message.contains("planted")
                        {
                            failures.push(format!("{case}: the error does not name the file and the cause: {message}"));
                        }
                    }
                }
                let allowed = allowed(&batches, acked_at.len(), how.0);
                for (what, state) in fs.image().crash_states() {
                    states += 1;
                    if let Err(why) = check_recovery(&state, &allowed) {
                        failures.push(format!("{case}, then {what}: {why}"));
                    }
                }
            }
        }
    }
    println!("crash_points: {cases} planted failures, {states} disk states after them recovered");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures[..failures.len().min(20)].join("\n"));
}

#[test]
fn after_a_failed_write_the_storage_takes_no_more() {
    let batches = workload();
    let fs = SimFs::new();
    let (mut storage, _) = FileStorage::open_on(fs.clone(), DIR, opts((SnapshotWrites::Inline, true))).unwrap();
    storage.append(&batches[0]).unwrap();
    fs.fail_at(fs.ops() + 1, 5);
    let first = storage.append(&batches[1]).unwrap_err();
    assert!(first.to_string().contains("planted"), "{first}");
    // The cut after the failure left the file's cursor past its end: a write now would
    // leave a hole of zeros before its records, which recovery takes for damage.
    let ops = fs.ops();
    let again = storage.append(&batches[1]).unwrap_err();
    assert!(again.to_string().contains("earlier write"), "{again}");
    assert_eq!(fs.ops(), ops, "nothing is written after a failure");
}

#[test]
fn any_flipped_byte_of_synced_data_is_a_corruption_error_naming_the_file() {
    let batches = workload();
    let fs = SimFs::new();
    let (_, failed) = run(&fs, &batches, (SnapshotWrites::Inline, true));
    assert!(failed.is_none(), "{failed:?}");
    let disk = fs.image().power_loss();
    let intact = open(disk.clone()).1.expect("the undamaged disk recovers").1;
    let (mut flips, mut failures) = (0, Vec::new());
    for (path, bytes) in disk.files() {
        // The preallocated zeros after the last record (which ends in a non-zero byte) hold
        // no data: a flip in the first bytes there looks like a header cut short by a crash
        // (a torn tail, cut), later ones like damage.
        let data_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        for at in 0..bytes.len() {
            flips += 1;
            let mut damaged = disk.files();
            damaged.get_mut(&path).expect("the file")[at] ^= 0x5a;
            match open(DiskImage::with_files(&damaged)).1 {
                Err(StorageError::Corrupt { path: p, .. }) if p == path => {}
                Ok((_, r)) if at >= data_end && r == intact => {}
                other => failures.push(format!("{} byte {at}: {:?}", path.display(), other.map(|(_, r)| r))),
            }
        }
    }
    println!("crash_points: {flips} flipped bytes of synced data");
    assert!(
        failures.is_empty(),
        "{} of {flips} flips not reported:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}
