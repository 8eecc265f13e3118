//! In-memory storage with the durability model of a disk: a [`MemDisk`] outlives the node that
//! writes it (the test cluster keeps it across a crash), and holds exactly the batches whose
//! `append` returned. Whatever the runtime had queued but not appended is lost with the node.

use std::sync::{Arc, Mutex};

use skiff_core::{Persist, Restored, Snapshot};

use super::{LogImage, Storage, StorageError};

/// What a simulated disk holds: the replayed log image and the latest snapshot.
#[derive(Clone, Debug, Default)]
pub struct DiskState {
    pub image: LogImage,
    pub snapshot: Option<Snapshot>,
}

/// A disk shared between successive lives of one node.
#[derive(Clone, Debug, Default)]
pub struct MemDisk(Arc<Mutex<DiskState>>);

impl MemDisk {
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// What a node restarting from this disk recovers.
    pub fn restored(&self) -> Restored {
        let d = self.0.lock().expect("disk lock");
        Restored { hard_state: d.image.hard_state, snapshot: d.snapshot.clone(), entries: d.image.entries.clone() }
    }

    /// Bytes of Raft state besides the snapshot (the lab's `RaftStateSize`): hard state and
    /// log as postcard.
    pub fn raft_state_size(&self) -> usize {
        let d = self.0.lock().expect("disk lock");
        let hs = postcard::to_allocvec(&d.image.hard_state).map_or(0, |v| v.len());
        hs + d.image.entries.iter().map(|e| postcard::to_allocvec(e).map_or(0, |v| v.len())).sum::<usize>()
    }

    /// The stored snapshot's size in bytes (0 without one).
    pub fn snapshot_size(&self) -> usize {
        self.0.lock().expect("disk lock").snapshot.as_ref().map_or(0, |s| s.data.len())
    }

    /// A copy of the disk's state (for inspection in tests).
    pub fn state(&self) -> DiskState {
        self.0.lock().expect("disk lock").clone()
    }
}

/// A [`Storage`] writing to a [`MemDisk`].
#[derive(Debug)]
pub struct MemStorage {
    disk: MemDisk,
}

impl MemStorage {
    pub fn new(disk: MemDisk) -> MemStorage {
        MemStorage { disk }
    }
}

impl Storage for MemStorage {
    fn append(&mut self, batch: &[Persist]) -> Result<(), StorageError> {
        let mut d = self.disk.0.lock().expect("disk lock");
        for p in batch {
            if let Some(s) = &p.snapshot {
                d.snapshot = Some(s.clone());
            }
            let snapshot_index = p.snapshot.as_ref().map(|s| s.meta.index);
            d.image.apply(p.hard_state, snapshot_index, p.truncate_from, &p.entries).map_err(|what| {
                StorageError::Inconsistent { path: "<memory>".into(), what: format!("persist seq {}: {what}", p.seq) }
            })?;
        }
        Ok(())
    }
}
