//! [`KvService`]: `skiff_core::kv::Service`, the one KV server every driver runs, on the
//! threaded runtime. Client threads call [`KvService::execute`] and block on their answer; an
//! applier thread owns the apply stream, feeds it to the service, expires deadlines and takes
//! snapshots by the service's policy. The service sits behind one lock.
//!
//! Client threads propose without holding the lock, so a placement (`accepted`) may reach the
//! service after the applier applied that entry; the service answers such a write `Timeout`
//! and the clerk's retry learns its outcome from the session table. Guarantees are the
//! service's: a write is answered `Ok` only
//! after the entry holding that very command (same index and term) was applied here; a read
//! only after this node confirmed its leadership at a read index and applied up to it.
//! Anything uncertain is `Timeout`, which the clerk retries with the same sequence number.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use skiff_core::kv::{Action, Command, Reply, Service, ServiceConfig, ServiceError, SessionLimits};
use skiff_core::{DropReason, Snapshot};

use crate::runtime::{Applied, ProposeError, RaftHandle, ReadError, Snapshotter};

/// Limits and snapshot policy of a [`KvService`].
pub struct KvOptions {
    /// Snapshot once the persisted Raft state reaches about this many bytes (never if `None`).
    pub max_raft_state: Option<u64>,
    /// Measures the persisted Raft state (log and hard state) in bytes.
    pub raft_state_size: Box<dyn Fn() -> u64 + Send>,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// How long a request waits to be applied before answering `Timeout`.
    pub request_timeout: Duration,
    /// Client sessions: the bound and the idle time (in milliseconds) after which they expire.
    pub sessions: SessionLimits,
}

impl std::fmt::Debug for KvOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvOptions").field("max_raft_state", &self.max_raft_state).finish()
    }
}

impl Default for KvOptions {
    fn default() -> Self {
        let c = ServiceConfig::default();
        KvOptions {
            max_raft_state: c.max_raft_state,
            raft_state_size: Box::new(|| 0),
            max_key_bytes: c.max_key_bytes,
            max_value_bytes: c.max_value_bytes,
            request_timeout: Duration::from_millis(c.request_timeout),
            sessions: c.sessions,
        }
    }
}

/// How often the applier wakes to expire deadlines when nothing is applied.
const EXPIRE_EVERY: Duration = Duration::from_millis(20);

type Waiter = Sender<Reply>;

#[derive(Debug)]
struct Inner {
    service: Service<Waiter>,
    /// Set when the applier ended (the node stopped, or the service failed).
    stopped: bool,
}

/// A KV service on one node. Cloning shares it.
#[derive(Clone, Debug)]
pub struct KvService {
    raft: RaftHandle,
    inner: Arc<Mutex<Inner>>,
    timeout: Duration,
}

/// The service's clock: the wall clock in milliseconds since the Unix epoch. It stamps the
/// entries this node proposes as leader, so every node of a cluster must read the same clock
/// (kept in step by NTP or the like; a clock behind the replicated one stands still, one far
/// ahead expires sessions early).
pub fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Sends the replies among `actions` and returns the rest (the caller's own proposal or read).
fn send_replies(actions: Vec<Action<Waiter>>) -> Vec<Action<Waiter>> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Reply { to, reply } => {
                let _ = to.send(reply);
                None
            }
            other => Some(other),
        })
        .collect()
}

fn drop_reason_of_propose(e: ProposeError) -> DropReason {
    match e {
        ProposeError::NotLeader { hint } => DropReason::NotLeader { hint },
        ProposeError::Transferring { to } => DropReason::Transferring { to },
        ProposeError::TooLarge { len, max } => DropReason::TooLarge { len, max },
        ProposeError::Membership(why) => DropReason::Membership(why),
        ProposeError::Stopped => DropReason::NotLeader { hint: None },
    }
}

impl KvService {
    /// Starts the applier on `applied` (the node's apply stream). `snapshot` is the snapshot
    /// the node restored, if any: the service starts from it, and refuses to start from one
    /// that does not decode.
    pub fn start(
        raft: RaftHandle,
        applied: Receiver<Applied>,
        snapshot: Option<&Snapshot>,
        opts: KvOptions,
    ) -> Result<(KvService, JoinHandle<()>), ServiceError> {
        let config = ServiceConfig {
            max_key_bytes: opts.max_key_bytes,
            max_value_bytes: opts.max_value_bytes,
            request_timeout: opts.request_timeout.as_millis() as u64,
            max_raft_state: opts.max_raft_state,
            sessions: opts.sessions,
            ..ServiceConfig::default()
        };
        let service = Service::new(config, snapshot)?;
        let inner = Arc::new(Mutex::new(Inner { service, stopped: false }));
        let (shared, snapshotter, node) = (inner.clone(), raft.snapshotter(), raft.clone());
        let timeout = opts.request_timeout;
        let applier = thread::Builder::new()
            .name(format!("skiff-kv-{}", raft.id().0))
            .spawn(move || apply_loop(&shared, &applied, &snapshotter, &node, &opts))
            .expect("spawn the KV applier");
        Ok((KvService { raft, inner, timeout }, applier))
    }

    /// The Raft node under the service.
    pub fn raft(&self) -> &RaftHandle {
        &self.raft
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("kv lock")
    }

    /// The value of `key` in this node's state, without any consistency guarantee (tests).
    pub fn local_get(&self, key: &str) -> String {
        self.lock()
            .service
            .state()
            .get(key.as_bytes())
            .map_or_else(String::new, |v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Snapshots this service installed from a leader.
    pub fn snapshots_installed(&self) -> u64 {
        self.lock().service.installed()
    }

    /// Executes one client request (blocking up to about the request timeout).
    pub fn execute(&self, command: Command) -> Reply {
        let (tx, rx) = channel();
        let own = {
            let mut inner = self.lock();
            if inner.stopped {
                return Reply::Timeout;
            }
            inner.service.request(command, tx, wall_ms());
            send_replies(inner.service.take_actions())
        };
        // Not under the lock, so that clients' proposals reach the core together (batched)
        // and the applier is never held up. The placement may then reach the service after
        // the applier applied the entry: the service answers that `Timeout`, and the clerk's
        // retry learns the outcome from the session table.
        for action in own {
            match action {
                Action::Propose(p) => {
                    let result = self.raft.propose(p.data);
                    let mut inner = self.lock();
                    match result {
                        Ok((index, term)) => inner.service.accepted(p.id, index, term),
                        Err(e) => inner.service.proposal_dropped(p.id, &drop_reason_of_propose(e)),
                    }
                    send_replies(inner.service.take_actions());
                }
                Action::Read { id } => {
                    let result = self.raft.read_index_within(self.timeout);
                    let mut inner = self.lock();
                    match result {
                        Ok(index) => inner.service.read_ready(id, index),
                        Err(ReadError::NotLeader { hint }) => {
                            inner.service.read_dropped(id, &DropReason::NotLeader { hint })
                        }
                        Err(ReadError::Transferring { to }) => {
                            inner.service.read_dropped(id, &DropReason::Transferring { to })
                        }
                        Err(ReadError::Stopped) => {
                            inner.service.read_dropped(id, &DropReason::NotLeader { hint: None })
                        }
                        // Its deadline answers it.
                        Err(ReadError::Timeout) => {}
                    }
                    send_replies(inner.service.take_actions());
                }
                Action::Reply { .. } => unreachable!("replies were sent"),
            }
        }
        // The service answers by its deadline (the applier expires them); the margin covers
        // an applier that is late to wake.
        match rx.recv_timeout(self.timeout + EXPIRE_EVERY * 5) {
            Ok(reply) => reply,
            Err(_) => Reply::Timeout,
        }
    }
}

/// The applier: applies what the node commits, expires deadlines, snapshots by the policy,
/// and, on the leader while keys have an expiry, proposes the service's clock entries. A
/// snapshot that does not decode stops the node (the state would diverge from the log).
fn apply_loop(
    shared: &Mutex<Inner>,
    applied: &Receiver<Applied>,
    snapshotter: &Snapshotter,
    raft: &RaftHandle,
    opts: &KvOptions,
) {
    let mut since_check = 0u32;
    let mut entries = Vec::new();
    let mut volatile = false;
    loop {
        let first = match applied.recv_timeout(EXPIRE_EVERY) {
            Ok(a) => Some(a),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Whether this node leads: asked of the core only while some key has an expiry.
        let leading = volatile && raft.status().is_some_and(|v| v.role == skiff_core::Role::Leader);
        let mut inner = shared.lock().expect("kv lock");
        let mut failed = None;
        for a in first.into_iter().chain(applied.try_iter()) {
            match a {
                Applied::Entry(e) => entries.push(e),
                Applied::Snapshot(s) => {
                    inner.service.apply(&entries);
                    entries.clear();
                    if let Err(e) = inner.service.install(&s) {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        inner.service.apply(&entries);
        let any = !entries.is_empty();
        entries.clear();
        inner.service.set_leading(leading);
        inner.service.expire(wall_ms());
        volatile = inner.service.state().volatile() > 0;
        if let Some(e) = failed {
            // Answers of the entries applied before the bad snapshot go out first.
            send_replies(inner.service.take_actions());
            tracing::error!("{e}");
            snapshotter.halt(e.to_string());
            break;
        }
        if any {
            since_check += 1;
        }
        if any && (since_check >= 8 || opts.max_raft_state.is_some_and(|m| m < 64 << 10)) {
            since_check = 0;
            if let Some((index, data)) = inner.service.snapshot_due((opts.raft_state_size)()) {
                snapshotter.snapshot(index, data);
            }
        }
        let rest = send_replies(inner.service.take_actions());
        drop(inner);
        // Clock entries: nobody waits for them (a refused one is followed by another).
        for action in rest {
            if let Action::Propose(p) = action {
                let _ = raft.propose(p.data);
            }
        }
    }
    let mut inner = shared.lock().expect("kv lock");
    inner.stopped = true;
    // Waiters left get `Timeout` as their channel closes with the service's requests.
    let config = inner.service.config().clone();
    inner.service = Service::new(config, None).expect("an empty service");
}
