//! The storage thread: group-commits the core's `Persist` records and wakes the event loop
//! (a mio [`Waker`]) with what became durable. Obligation kept: `Persisted { up_to }` is
//! reported only after `Storage::append` returned for every record up to `up_to`.

use std::io;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use mio::Waker;
use skiff_core::Persist;
use skiff_std::storage::{group_commit, Storage, StorageError};

use super::stall::Stalls;
use crate::metrics::Metrics;

/// What the storage thread reports.
#[derive(Debug)]
pub(crate) enum StorageEvent {
    Persisted(u64),
    /// Writing failed: the node must stop (it cannot promise durability any more).
    Failed(StorageError),
}

/// The loop's end of the storage thread.
#[derive(Debug)]
pub(crate) struct StorageLink {
    tx: Option<Sender<Persist>>,
    pub(crate) events: Receiver<StorageEvent>,
    /// How long each group commit took.
    pub(crate) stalls: Arc<Stalls>,
    thread: Option<JoinHandle<()>>,
}

impl StorageLink {
    pub(crate) fn start<S: Storage>(
        storage: S,
        waker: Arc<Waker>,
        name: String,
        metrics: Metrics,
    ) -> io::Result<StorageLink> {
        let (tx, rx) = channel::<Persist>();
        let (events_tx, events) = channel();
        let stalls = Arc::new(Stalls::default());
        let timed = Timed { storage, stalls: stalls.clone(), metrics };
        let thread = thread::Builder::new().name(name).spawn(move || commit_loop(timed, rx, events_tx, waker))?;
        Ok(StorageLink { tx: Some(tx), events, stalls, thread: Some(thread) })
    }

    /// Queues a record (written with whatever else is queued when the thread gets to it).
    pub(crate) fn persist(&self, p: Persist) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(p);
        }
    }

    /// Whether the thread ended (it only does on failure, reported first, or a panic).
    pub(crate) fn ended(&self) -> bool {
        self.thread.as_ref().is_some_and(JoinHandle::is_finished)
    }

    /// Lets the thread write what it was given, then joins it.
    pub(crate) fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StorageLink {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A storage whose every append is timed.
struct Timed<S> {
    storage: S,
    stalls: Arc<Stalls>,
    metrics: Metrics,
}

impl<S: Storage> Storage for Timed<S> {
    fn append(&mut self, batch: &[Persist]) -> Result<(), StorageError> {
        let start = Instant::now();
        let result = self.storage.append(batch);
        let took = start.elapsed();
        self.metrics.fsync_seconds.observe(took.as_secs_f64());
        self.metrics.storage_records.inc_by(batch.len() as u64);
        if self.stalls.record(took) {
            let snapshot = batch.iter().find_map(|p| p.snapshot.as_ref()).map(|s| s.data.len());
            tracing::debug!(ms = took.as_millis() as u64, records = batch.len(), ?snapshot, "slow storage write");
        }
        result
    }
}

/// [`group_commit`], waking the loop after every report.
fn commit_loop<S: Storage>(mut storage: S, rx: Receiver<Persist>, events: Sender<StorageEvent>, waker: Arc<Waker>) {
    group_commit(
        &mut storage,
        &rx,
        || false,
        |result| {
            let event = match result {
                Ok(up_to) => StorageEvent::Persisted(up_to),
                Err(e) => StorageEvent::Failed(e),
            };
            let sent = events.send(event).is_ok();
            let _ = waker.wake();
            sent
        },
    );
}
