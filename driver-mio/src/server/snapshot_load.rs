//! Reading the snapshot back for the core. With `snapshots_in_storage` (skiff-node's
//! default) the core drops its snapshot's bytes once storage holds them, and asks for them
//! (`Output::LoadSnapshot`) when a follower needs a snapshot: a node's memory is then its
//! state and its log, not its state twice. A thread of its own reads and checks the
//! snapshot file; the engine polls it on ticks, as it polls the snapshot encoder.
//!
//! Storage writes a snapshot's file in the background after reporting the record that
//! carried it (`FileStorageOptions::snapshot_writes`), so the file may still hold the older
//! snapshot when the core asks: the reader waits for the one asked for (or a newer one),
//! reading the file again only when its length or modification time changed, up to
//! [`WAIT_FOR_FILE`]; then it answers that it has none (with a warning: a snapshot write
//! that failed shows there), and the core asks again when a follower still needs one.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use skiff_core::{Index, Snapshot};
use skiff_std::storage::{snapshot_file, RealFs, StorageError};

/// How long the reader waits for the file to hold the snapshot asked for.
const WAIT_FOR_FILE: Duration = Duration::from_secs(10);
/// How often it looks again meanwhile.
const RETRY: Duration = Duration::from_millis(5);

type Loaded = Result<Option<Snapshot>, StorageError>;

/// The reader of the snapshot file in `dir`, and the read under way (one at a time: the core
/// asks again only once answered).
#[derive(Debug)]
pub(crate) struct SnapshotLoader {
    dir: PathBuf,
    reading: Option<Receiver<Loaded>>,
    /// Reads started since the node started (`INFO`: `snapshots_read_back`).
    pub(crate) started: u64,
}

impl SnapshotLoader {
    pub(crate) fn new(dir: PathBuf) -> SnapshotLoader {
        SnapshotLoader { dir, reading: None, started: 0 }
    }

    /// Whether a read is under way.
    pub(crate) fn reading(&self) -> bool {
        self.reading.is_some()
    }

    /// Starts reading the snapshot at `index` (or a newer one) back. A thread that cannot be
    /// started is reported as a storage error at the next [`SnapshotLoader::poll`].
    pub(crate) fn start(&mut self, index: Index) {
        self.started += 1;
        let (tx, rx) = channel();
        let dir = self.dir.clone();
        let spawned = std::thread::Builder::new().name("skiff-snapshot-read".into()).spawn(move || {
            let _ = tx.send(read_at_least_within(&dir, index, WAIT_FOR_FILE));
        });
        if let Err(e) = spawned {
            let (tx, rx) = channel();
            let _ =
                tx.send(Err(StorageError::Io { path: self.dir.clone(), op: "start the snapshot reader", source: e }));
            self.reading = Some(rx);
            return;
        }
        self.reading = Some(rx);
    }

    /// The read's outcome, once it is done.
    pub(crate) fn poll(&mut self) -> Option<Loaded> {
        let rx = self.reading.as_ref()?;
        let loaded = match rx.try_recv() {
            Ok(loaded) => loaded,
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => Ok(None),
        };
        self.reading = None;
        Some(loaded)
    }
}

/// Reads `dir`'s snapshot, waiting (up to `wait`) until it is at `index` or later.
fn read_at_least_within(dir: &std::path::Path, index: Index, wait: Duration) -> Loaded {
    let began = Instant::now();
    let path = dir.join(snapshot_file::SNAPSHOT_FILE);
    let version = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.len(), m.modified().ok()));
    let mut seen = None;
    loop {
        let now = version(&path);
        if now.is_some() && now != seen {
            // Read before noting the version: a replace between the two is read again.
            let snapshot = snapshot_file::read(&mut RealFs, dir)?;
            if snapshot.as_ref().is_some_and(|s| s.meta.index >= index) {
                return Ok(snapshot);
            }
            seen = now;
        }
        if began.elapsed() >= wait {
            tracing::warn!(
                index = index.0,
                waited_ms = wait.as_millis() as u64,
                "the snapshot file does not hold the snapshot asked for (was its write lost?)"
            );
            return Ok(None);
        }
        std::thread::sleep(RETRY);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use skiff_core::{Membership, NodeId, SnapshotMeta, Term};

    use super::*;

    fn snapshot(index: u64) -> Snapshot {
        let meta = SnapshotMeta {
            index: Index(index),
            term: Term(1),
            membership: Membership::from_voters([NodeId(1)]).unwrap(),
            membership_index: Index(0),
        };
        Snapshot { meta, data: Bytes::from(vec![index as u8; 100]) }
    }

    fn wait(loader: &mut SnapshotLoader) -> Loaded {
        let began = Instant::now();
        loop {
            if let Some(loaded) = loader.poll() {
                return loaded;
            }
            assert!(began.elapsed() < Duration::from_secs(20), "the reader never answered");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn reads_the_snapshot_asked_for_waiting_while_the_file_is_older() {
        let dir = tempfile::tempdir().unwrap();
        let mut loader = SnapshotLoader::new(dir.path().to_path_buf());
        snapshot_file::write(&mut RealFs, dir.path(), &snapshot(5)).unwrap();
        loader.start(Index(5));
        assert!(loader.reading());
        assert_eq!(wait(&mut loader).unwrap(), Some(snapshot(5)));
        assert!(!loader.reading());
        // The file is still the older one when asked: the reader waits for the newer.
        loader.start(Index(9));
        std::thread::sleep(Duration::from_millis(30));
        assert!(loader.poll().is_none(), "answered with the older snapshot");
        snapshot_file::write(&mut RealFs, dir.path(), &snapshot(9)).unwrap();
        assert_eq!(wait(&mut loader).unwrap(), Some(snapshot(9)));
    }

    #[test]
    fn a_file_that_never_reaches_the_index_answers_none() {
        let dir = tempfile::tempdir().unwrap();
        snapshot_file::write(&mut RealFs, dir.path(), &snapshot(5)).unwrap();
        assert_eq!(read_at_least_within(dir.path(), Index(9), Duration::from_millis(50)).unwrap(), None);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        snapshot_file::write(&mut RealFs, dir.path(), &snapshot(5)).unwrap();
        let path = dir.path().join(snapshot_file::SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();
        let mut loader = SnapshotLoader::new(dir.path().to_path_buf());
        loader.start(Index(5));
        let e = wait(&mut loader).unwrap_err();
        assert!(e.to_string().contains("snapshot"), "{e}");
    }
}
