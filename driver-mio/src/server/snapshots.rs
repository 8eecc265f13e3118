//! When the node snapshots: once `snapshot_threshold` bytes of log were written since the
//! last snapshot, or when an operator asks (`BGSAVE`). The state is frozen on the loop
//! (cheap: see `KvState::freeze`) and encoded on a thread of its own that yields the CPU
//! every few hundred keys, so the loop never stalls on a large state; when the bytes are
//! ready the engine hands them to the core, which compacts its log and has storage write
//! the snapshot (and trim the WAL). One
//! snapshot at a time. Counting bytes written since the last snapshot, rather than the WAL's
//! size, means a WAL that trimming cannot shrink further (its active segment) never
//! triggers one snapshot after another.

use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use skiff_core::Index;

use super::kv::LocalKv;
use crate::metrics::Metrics;

/// Why `BGSAVE` was not started.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SaveRefused {
    /// A snapshot is being encoded, or one was asked and not started yet.
    InProgress,
}

/// The snapshot policy's state.
#[derive(Debug)]
pub(crate) struct Snapshots {
    /// Snapshot once this many bytes of log were written since the last one (never: `None`).
    threshold: Option<u64>,
    /// Bytes of log entries handed to storage since the last snapshot began.
    pub(crate) logged: u64,
    /// A snapshot being encoded on its own thread: the index it covers and where its bytes
    /// arrive, and when its state was frozen.
    encoding: Option<(Index, Receiver<bytes::Bytes>, Instant)>,
    /// `BGSAVE` asked for a snapshot, whatever the threshold says.
    asked: bool,
    /// Snapshots this node took (for `INFO`).
    pub(crate) taken: u64,
    /// Unix time of the last snapshot handed to the core (the start time before any), for
    /// `LASTSAVE`.
    last_save: u64,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Snapshots {
    pub(crate) fn new(threshold: Option<u64>) -> Snapshots {
        Snapshots { threshold, logged: 0, encoding: None, asked: false, taken: 0, last_save: unix_now() }
    }

    /// Whether a snapshot is being encoded.
    pub(crate) fn encoding(&self) -> bool {
        self.encoding.is_some()
    }

    /// `BGSAVE`: a snapshot at the next policy check, unless one is under way.
    pub(crate) fn ask(&mut self) -> Result<(), SaveRefused> {
        if self.encoding.is_some() || self.asked {
            return Err(SaveRefused::InProgress);
        }
        self.asked = true;
        Ok(())
    }

    /// `LASTSAVE`: when the last snapshot was handed to the core.
    pub(crate) fn last_save(&self) -> u64 {
        self.last_save
    }

    /// One check: a finished encoding is returned (to step into the core as
    /// `Input::Snapshot`); otherwise a new one starts if due.
    pub(crate) fn poll(&mut self, kv: &mut LocalKv, metrics: &Metrics) -> Option<(Index, bytes::Bytes)> {
        if let Some((index, rx, began)) = &self.encoding {
            return match rx.try_recv() {
                Ok(data) => {
                    let (index, began) = (*index, *began);
                    self.encoding = None;
                    self.taken += 1;
                    self.last_save = unix_now();
                    metrics.snapshots.inc();
                    metrics.snapshot_bytes.set(data.len() as i64);
                    metrics.snapshot_seconds.observe(began.elapsed().as_secs_f64());
                    Some((index, data))
                }
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    tracing::error!("the snapshot encoder ended without a snapshot");
                    self.encoding = None;
                    None
                }
            };
        }
        let due = self.threshold.is_some_and(|t| self.logged >= t);
        if !due && !std::mem::take(&mut self.asked) {
            return None;
        }
        let (index, state) = kv.freeze()?;
        self.logged = 0;
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new().name("skiff-snapshot".into()).spawn(move || {
            // Yielding the core every few hundred keys: on a machine with fewer cores than
            // busy threads, the loop's and storage's threads wait for one at most that long
            // (`bench/state.sh`'s commit p99 while 1M keys snapshot). Made `Bytes` here.
            let _ = tx.send(bytes::Bytes::from(state.snapshot_paced(&std::thread::yield_now)));
        });
        match spawned {
            Ok(_) => self.encoding = Some((index, rx, Instant::now())),
            Err(e) => tracing::error!(error = %e, "cannot start the snapshot encoder"),
        }
        None
    }
}
