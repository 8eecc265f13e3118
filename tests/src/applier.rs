//! The lab's applier (`config.go`'s `applierSnap`): consumes a node's apply stream, checks
//! that entries come in order (index = last applied + 1, or right after an installed
//! snapshot), records every command, and snapshots every `snapshot_every` entries.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use bytes::Bytes;
use skiff_core::{EntryKind, Index};
use skiff_std::runtime::{Applied, Snapshotter};

/// What one node's service applied: `log[k]` is the command at index `k + 1` (a no-op is
/// recorded as an empty command), so equal prefixes mean equal histories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceState {
    pub log: Vec<Bytes>,
    /// Snapshots installed from the leader (InstallSnapshot), not taken locally.
    pub installed: u64,
    /// The first ordering error seen, if any.
    pub error: Option<String>,
}

impl ServiceState {
    pub fn applied(&self) -> Index {
        Index(self.log.len() as u64)
    }
}

/// Runs an applier thread for one node; it ends when the node stops.
pub fn spawn(
    snapshotter: Snapshotter,
    applied: Receiver<Applied>,
    state: Arc<Mutex<ServiceState>>,
    snapshot_every: Option<u64>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        for a in applied {
            let mut s = state.lock().expect("state lock");
            match a {
                Applied::Entry(e) => {
                    if e.index.0 != s.log.len() as u64 + 1 && s.error.is_none() {
                        s.error = Some(format!("applied index {} after {}", e.index.0, s.log.len()));
                    }
                    let data = if e.kind == EntryKind::Command { e.data } else { Bytes::new() };
                    s.log.push(data);
                    if let Some(every) = snapshot_every {
                        if e.index.0 % every == 0 {
                            let snap = postcard::to_allocvec(&s.log).expect("encodes");
                            snapshotter.snapshot(e.index, snap);
                        }
                    }
                }
                Applied::Snapshot(snap) => match postcard::from_bytes::<Vec<Bytes>>(&snap.data) {
                    Ok(log) if log.len() as u64 == snap.meta.index.0 => {
                        if (log.len() as u64) < s.log.len() as u64 && s.error.is_none() {
                            s.error = Some(format!("snapshot at {} below applied {}", log.len(), s.log.len()));
                        }
                        s.log = log;
                        s.installed += 1;
                    }
                    _ => s.error = Some(format!("snapshot at {} does not decode", snap.meta.index.0)),
                },
            }
        }
    })
}

/// A fresh service state holder.
pub fn new_state() -> Arc<Mutex<ServiceState>> {
    Arc::new(Mutex::new(ServiceState::default()))
}

/// Restores a state holder from a node's stored snapshot (the service's own restart).
pub fn restore(state: &Arc<Mutex<ServiceState>>, snapshot: Option<&skiff_core::Snapshot>) {
    let mut s = state.lock().expect("state lock");
    s.log = snapshot.and_then(|snap| postcard::from_bytes(&snap.data).ok()).unwrap_or_default();
}
