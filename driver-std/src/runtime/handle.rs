//! [`RaftHandle`]: the cloneable handle to a running node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use skiff_core::{ChangeStep, Index, JointPolicy, NodeId, Term, View};

use super::{Event, ProposeError, ReadError};

/// How long [`RaftHandle::read_index`] waits for leadership to be confirmed.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Stops the node when the last handle goes away.
struct Lifecycle {
    id: NodeId,
    events: Mutex<Sender<Event>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    crashed: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

impl Lifecycle {
    fn stop(&self, crash: bool) {
        if crash {
            self.crashed.store(true, Ordering::SeqCst);
        }
        self.stopped.store(true, Ordering::SeqCst);
        let _ = self.events.lock().expect("events lock").send(Event::Stop);
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads lock"));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// A handle to a running node. Clones share the node; when the last one is dropped the node
/// shuts down and its threads are joined.
#[derive(Clone)]
pub struct RaftHandle {
    events: Sender<Event>,
    life: Arc<Lifecycle>,
}

impl std::fmt::Debug for RaftHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftHandle").field("id", &self.life.id).finish()
    }
}

impl RaftHandle {
    pub(super) fn new(
        id: NodeId,
        events: Sender<Event>,
        threads: Vec<JoinHandle<()>>,
        crashed: Arc<AtomicBool>,
        stopped: Arc<AtomicBool>,
    ) -> RaftHandle {
        let life = Lifecycle { id, events: Mutex::new(events.clone()), threads: Mutex::new(threads), crashed, stopped };
        RaftHandle { events, life: Arc::new(life) }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.life.id
    }

    /// Proposes a command. On the leader: where it was appended (it is committed once it
    /// comes out of the apply stream). Anywhere else: `NotLeader` with a hint.
    pub fn propose(&self, data: impl Into<Bytes>) -> Result<(Index, Term), ProposeError> {
        let (tx, rx) = channel();
        self.events.send(Event::Propose(data.into(), tx)).map_err(|_| ProposeError::Stopped)?;
        rx.recv().unwrap_or(Err(ProposeError::Stopped))
    }

    /// A linearizable read point (ReadIndex): once the apply stream has delivered this index,
    /// the state machine reflects every write acknowledged before the call.
    pub fn read_index(&self) -> Result<Index, ReadError> {
        self.read_index_within(READ_TIMEOUT)
    }

    /// [`RaftHandle::read_index`], waiting at most `timeout` for the confirmation.
    pub fn read_index_within(&self, timeout: Duration) -> Result<Index, ReadError> {
        let (tx, rx) = channel();
        self.events.send(Event::Read(tx)).map_err(|_| ReadError::Stopped)?;
        match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(ReadError::Timeout),
            Err(_) => Err(ReadError::Stopped),
        }
    }

    /// The service's snapshot of its state through `index` (the lab's `Snapshot`).
    pub fn snapshot(&self, index: Index, data: impl Into<Bytes>) {
        let _ = self.events.send(Event::Snapshot(index, data.into()));
    }

    /// A handle for the service consuming the apply stream to hand snapshots back with. Unlike
    /// a clone of this handle it does not keep the node alive, so a service thread holding it
    /// does not stop the node from shutting down when the last handle is dropped.
    pub fn snapshotter(&self) -> Snapshotter {
        Snapshotter { events: self.events.clone() }
    }

    /// Asks the leader to hand leadership to `to`.
    pub fn transfer_leadership(&self, to: NodeId) {
        let _ = self.events.send(Event::Transfer(to));
    }

    /// Proposes a membership change (on the leader; see `skiff_core::Input::ChangeMembership`).
    /// Returns where its configuration entry was appended: the change is complete once
    /// [`RaftHandle::status`] shows a committed configuration at or past that index that is not
    /// joint (a joint one is left automatically).
    pub fn change_membership(&self, steps: Vec<ChangeStep>, joint: JointPolicy) -> Result<(Index, Term), ProposeError> {
        let (tx, rx) = channel();
        self.events.send(Event::Change(steps, joint, tx)).map_err(|_| ProposeError::Stopped)?;
        rx.recv().unwrap_or(Err(ProposeError::Stopped))
    }

    /// On the leader: whether `peer` replicates within `within` entries of the leader's log
    /// (promote a learner once it does). `None` on other nodes, for peers the leader does not
    /// replicate to, or once stopped.
    pub fn caught_up(&self, peer: NodeId, within: u64) -> Option<bool> {
        let (tx, rx) = channel();
        self.events.send(Event::CaughtUp(peer, within, tx)).ok()?;
        rx.recv().ok().flatten()
    }

    /// The core's view (term, role, leader, indexes, counters); `None` once stopped.
    pub fn status(&self) -> Option<View> {
        let (tx, rx) = channel();
        self.events.send(Event::Status(tx)).ok()?;
        rx.recv().ok()
    }

    /// Stops the node: what was already handed to storage is written, then every thread is
    /// joined.
    pub fn shutdown(&self) {
        self.life.stop(false);
    }

    /// Stops the node as a crash would: records not yet written are lost. For tests.
    pub fn kill(&self) {
        self.life.stop(true);
    }
}

/// Hands the service's snapshots to a node (see [`RaftHandle::snapshotter`]), or stops it
/// when the service cannot go on.
#[derive(Clone, Debug)]
pub struct Snapshotter {
    events: Sender<Event>,
}

impl Snapshotter {
    /// The service's snapshot of its state through `index`. Ignored once the node stopped.
    pub fn snapshot(&self, index: Index, data: impl Into<Bytes>) {
        let _ = self.events.send(Event::Snapshot(index, data.into()));
    }

    /// Stops the node: the service cannot go on (`why` is logged).
    pub fn halt(&self, why: String) {
        let _ = self.events.send(Event::Halt(why));
    }
}
