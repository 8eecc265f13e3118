//! The threaded runtime: a [`RaftNode`] runs the core on one thread that owns it and the
//! transport, a storage thread that group-commits `Persist` records, and a timer thread that
//! ticks. Everything reaches the core thread as an event on one channel, so the core is
//! stepped by one thread only, in the order events arrive.
//!
//! Obligations kept here (DESIGN §2): messages are sent as soon as the core emits them;
//! `Persisted { up_to }` is reported only after the storage returned from writing every record
//! up to `up_to`; applies go to the apply stream in the order the core emits them.

mod core_loop;
mod handle;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_core::{
    ChangeRefused, ChangeStep, Config, DropReason, Entry, Index, Input, JointPolicy, Message, Node, NodeId, Persist,
    Proposal, RestoreError, Restored, Snapshot, Term, View,
};

use crate::storage::{group_commit, Storage};
use crate::transport::{Inbox, Transport};

pub use handle::{RaftHandle, Snapshotter, READ_TIMEOUT};

/// What the apply stream yields, in order: committed entries, and snapshots to install
/// (replace the state machine with it; entries continue after its index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Entry(Entry),
    Snapshot(Snapshot),
}

/// Why a proposal was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// This node does not lead; `hint` is the leader it knows of.
    NotLeader { hint: Option<NodeId> },
    /// The leader is handing leadership to `to`.
    Transferring { to: NodeId },
    /// The command is `len` bytes, over the core's `max_entry_bytes` (`max`): never retried.
    TooLarge { len: usize, max: usize },
    /// A membership change was refused.
    Membership(ChangeRefused),
    /// The node has stopped.
    Stopped,
}

/// Why a read could not be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    NotLeader {
        hint: Option<NodeId>,
    },
    Transferring {
        to: NodeId,
    },
    /// No answer within the timeout (no majority reachable).
    Timeout,
    Stopped,
}

impl From<DropReason> for ProposeError {
    fn from(r: DropReason) -> Self {
        match r {
            DropReason::NotLeader { hint } => ProposeError::NotLeader { hint },
            DropReason::Transferring { to } => ProposeError::Transferring { to },
            DropReason::TooLarge { len, max } => ProposeError::TooLarge { len, max },
            DropReason::Membership(why) => ProposeError::Membership(why),
        }
    }
}

impl From<DropReason> for ReadError {
    fn from(r: DropReason) -> Self {
        match r {
            DropReason::NotLeader { hint } => ReadError::NotLeader { hint },
            DropReason::Transferring { to } => ReadError::Transferring { to },
            // The core never gives these reasons for a read.
            DropReason::TooLarge { .. } | DropReason::Membership(_) => ReadError::NotLeader { hint: None },
        }
    }
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { hint: Some(l) } => write!(f, "not the leader (try node {})", l.0),
            ProposeError::NotLeader { hint: None } => write!(f, "not the leader (leader unknown)"),
            ProposeError::Transferring { to } => write!(f, "leadership is moving to node {}", to.0),
            ProposeError::TooLarge { len, max } => write!(f, "command of {len} bytes over the entry limit of {max}"),
            ProposeError::Membership(why) => write!(f, "membership change refused: {why}"),
            ProposeError::Stopped => write!(f, "the node has stopped"),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotLeader { hint: Some(l) } => write!(f, "not the leader (try node {})", l.0),
            ReadError::NotLeader { hint: None } => write!(f, "not the leader (leader unknown)"),
            ReadError::Transferring { to } => write!(f, "leadership is moving to node {}", to.0),
            ReadError::Timeout => write!(f, "leadership not confirmed in time"),
            ReadError::Stopped => write!(f, "the node has stopped"),
        }
    }
}

impl std::error::Error for ProposeError {}
impl std::error::Error for ReadError {}

/// Why a node could not start.
#[derive(Debug)]
pub enum StartError {
    Restore(RestoreError),
    Io(io::Error),
    /// Lease reads need a driver that delivers every elapsed tick before the reads that
    /// arrived after it; this runtime's timer thread skips ticks when it falls behind, and
    /// its ticks queue behind other events. Use skiff-node (skiff-mio), or ReadIndex.
    LeaseReadsUnsupported,
    /// The configuration keeps snapshots in storage only (`snapshots_in_storage`): this
    /// runtime's storage thread does not read snapshots back. Use skiff-node (skiff-mio).
    SnapshotsInStorageUnsupported,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Restore(e) => write!(f, "stored state refused: {e}"),
            StartError::Io(e) => write!(f, "cannot start threads or transport: {e}"),
            StartError::LeaseReadsUnsupported => write!(
                f,
                "lease reads are not supported by the threaded runtime (its ticks may lag reads): use skiff-node, or ReadIndex"
            ),
            StartError::SnapshotsInStorageUnsupported => write!(
                f,
                "snapshots_in_storage is not supported by the threaded runtime (it does not read snapshots back): use skiff-node"
            ),
        }
    }
}

impl std::error::Error for StartError {}

/// The core input for proposals gathered since the last step: one `Propose`, a
/// `ProposeBatch` (appended and replicated together), or nothing. Empties `batch`.
pub fn batch_input(batch: &mut Vec<Proposal>) -> Option<Input> {
    match batch.len() {
        0 => None,
        1 => batch.pop().map(Input::Propose),
        _ => Some(Input::ProposeBatch(std::mem::take(batch))),
    }
}

/// Everything the core thread is told.
pub(crate) enum Event {
    Tick,
    Message(Message),
    Persisted(u64),
    /// The node cannot go on (storage failed, or the service found its state unusable).
    Halt(String),
    Propose(Bytes, Sender<Result<(Index, Term), ProposeError>>),
    Read(Sender<Result<Index, ReadError>>),
    Snapshot(Index, Bytes),
    Transfer(NodeId),
    Change(Vec<ChangeStep>, JointPolicy, Sender<Result<(Index, Term), ProposeError>>),
    CaughtUp(NodeId, u64, Sender<Option<bool>>),
    Status(Sender<View>),
    Stop,
}

/// Starts nodes.
#[derive(Debug)]
pub struct RaftNode;

impl RaftNode {
    /// Starts a node from `restored` (what `storage` recovered), ticking every `tick`. The
    /// transport is built with the inbox its received messages go to. Returns the handle and
    /// the apply stream.
    pub fn start<S: Storage, T: Transport>(
        config: Config,
        restored: Restored,
        storage: S,
        tick: Duration,
        transport: impl FnOnce(Inbox) -> io::Result<T>,
    ) -> Result<(RaftHandle, Receiver<Applied>), StartError> {
        let id = config.id();
        if config.lease_drift_permille().is_some() {
            return Err(StartError::LeaseReadsUnsupported);
        }
        if config.snapshots_in_storage() {
            return Err(StartError::SnapshotsInStorageUnsupported);
        }
        let node = Node::new(config, restored).map_err(StartError::Restore)?;
        let (events_tx, events_rx) = channel::<Event>();
        let (apply_tx, apply_rx) = channel::<Applied>();
        let (persist_tx, persist_rx) = channel::<Persist>();
        let inbox_tx = Mutex::new(events_tx.clone());
        let inbox = Inbox::new(move |m| inbox_tx.lock().expect("inbox lock").send(Event::Message(m)).is_ok());
        let mut transport = transport(inbox).map_err(StartError::Io)?;
        transport.set_members(&node.view().membership);
        let crashed = Arc::new(AtomicBool::new(false));
        let stopped = Arc::new(AtomicBool::new(false));
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| thread::Builder::new().name(name).spawn(f);

        let mut threads = Vec::new();
        let (tx, c) = (events_tx.clone(), crashed.clone());
        threads.push(
            spawn(format!("skiff-storage-{}", id.0), Box::new(move || storage_thread(storage, persist_rx, tx, c)))
                .map_err(StartError::Io)?,
        );
        let (tx, s) = (events_tx.clone(), stopped.clone());
        threads.push(
            spawn(format!("skiff-tick-{}", id.0), Box::new(move || timer_thread(tick, tx, s)))
                .map_err(StartError::Io)?,
        );
        let looper = core_loop::CoreLoop::new(node, transport, persist_tx, apply_tx);
        threads.push(
            spawn(format!("skiff-core-{}", id.0), Box::new(move || looper.run(events_rx))).map_err(StartError::Io)?,
        );
        let handle = RaftHandle::new(id, events_tx, threads, crashed, stopped);
        Ok((handle, apply_rx))
    }
}

/// The storage thread: [`group_commit`] reporting to the core thread. After a crash request
/// it writes nothing more: what was queued is lost, as on a real machine.
fn storage_thread(mut storage: impl Storage, rx: Receiver<Persist>, events: Sender<Event>, crashed: Arc<AtomicBool>) {
    group_commit(
        &mut storage,
        &rx,
        || crashed.load(Ordering::SeqCst),
        |result| match result {
            // Keep writing what was handed over even once nobody listens (a clean stop).
            Ok(up_to) => {
                let _ = events.send(Event::Persisted(up_to));
                true
            }
            Err(e) => {
                tracing::error!("storage failed, stopping the node: {e}");
                let _ = events.send(Event::Halt(e.to_string()));
                false
            }
        },
    );
}

fn timer_thread(tick: Duration, events: Sender<Event>, stopped: Arc<AtomicBool>) {
    let mut next = Instant::now() + tick;
    while !stopped.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        }
        next += tick;
        if next < Instant::now() {
            next = Instant::now() + tick; // fell behind (a paused process): do not burst
        }
        if events.send(Event::Tick).is_err() {
            return;
        }
    }
}
