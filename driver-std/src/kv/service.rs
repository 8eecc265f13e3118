//! [`KvService`]: the KV state machine on a running node. An applier thread owns the apply
//! stream and the state; requests (from the TCP server, or from a test harness) are executed
//! by proposing writes and waiting until they are applied, and by serving reads at a ReadIndex
//! once it is applied.
//!
//! Guarantees: a write is answered `Ok` only after the entry holding that very command
//! (same index and term) was applied here; a read only after this node confirmed its
//! leadership at a read index and applied up to it. Anything uncertain is `Timeout`, which the
//! clerk retries with the same sequence number (the session table makes that safe).

use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_core::kv::{self, Applied as KvApplied, Command, KvState, Op, Reply};
use skiff_core::{EntryKind, Index, NodeId, Snapshot, Term};

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
}

impl std::fmt::Debug for KvOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvOptions").field("max_raft_state", &self.max_raft_state).finish()
    }
}

impl Default for KvOptions {
    fn default() -> Self {
        KvOptions {
            max_raft_state: None,
            raft_state_size: Box::new(|| 0),
            max_key_bytes: 1024,
            max_value_bytes: 1 << 20,
            request_timeout: Duration::from_secs(1),
        }
    }
}

/// Applied entries remembered for waiting writers (beyond this, a writer gets `Timeout` and
/// its retry is answered from the session table).
const RECENT: usize = 4096;

#[derive(Debug, Default)]
struct Inner {
    kv: KvState,
    /// Index -> (term, client, seq, reply) of recently applied commands.
    recent: BTreeMap<Index, (Term, u64, u64, String)>,
    stopped: bool,
    snapshots_installed: u64,
}

#[derive(Debug, Default)]
struct Shared {
    inner: Mutex<Inner>,
    applied: Condvar,
}

/// A KV service on one node. Cloning shares it.
#[derive(Clone, Debug)]
pub struct KvService {
    raft: RaftHandle,
    shared: Arc<Shared>,
    limits: (usize, usize),
    timeout: Duration,
}

impl KvService {
    /// Starts the applier on `applied` (the node's apply stream). `snapshot` is the snapshot
    /// the node restored from, if any: the service starts from it.
    pub fn start(
        raft: RaftHandle,
        applied: Receiver<Applied>,
        snapshot: Option<&Snapshot>,
        opts: KvOptions,
    ) -> (KvService, JoinHandle<()>) {
        let kv = snapshot.and_then(|s| KvState::restore(&s.data).ok()).unwrap_or_default();
        let shared = Arc::new(Shared { inner: Mutex::new(Inner { kv, ..Inner::default() }), applied: Condvar::new() });
        let s = shared.clone();
        let snapshotter = raft.snapshotter();
        let limits = (opts.max_key_bytes, opts.max_value_bytes);
        let timeout = opts.request_timeout;
        let applier = thread::Builder::new()
            .name(format!("skiff-kv-{}", raft.id().0))
            .spawn(move || apply_loop(s, applied, snapshotter, opts))
            .expect("spawn the KV applier");
        (KvService { raft, shared, limits, timeout }, applier)
    }

    /// The Raft node under the service.
    pub fn raft(&self) -> &RaftHandle {
        &self.raft
    }

    /// The value of `key` in this node's state, without any consistency guarantee (tests).
    pub fn local_get(&self, key: &str) -> String {
        self.shared.inner.lock().expect("kv lock").kv.get(key)
    }

    /// Snapshots this service installed from a leader.
    pub fn snapshots_installed(&self) -> u64 {
        self.shared.inner.lock().expect("kv lock").snapshots_installed
    }

    /// Executes one client request (blocking up to the request timeout).
    pub fn execute(&self, command: Command) -> Reply {
        if let Err(reason) = validate_op(&command.op, self.limits.0, self.limits.1) {
            return Reply::Invalid { reason };
        }
        match &command.op {
            Op::Get { key } => self.read(key),
            _ => self.write(&command),
        }
    }

    fn write(&self, command: &Command) -> Reply {
        let (index, term) = match self.raft.propose(Bytes::from(kv::encode(command))) {
            Ok(at) => at,
            Err(ProposeError::NotLeader { hint }) => return Reply::WrongLeader { hint: hint.map(server_index) },
            Err(ProposeError::Transferring { to }) => return Reply::WrongLeader { hint: Some(server_index(to)) },
            Err(ProposeError::Stopped) => return Reply::WrongLeader { hint: None },
        };
        let Some(inner) = self.wait_applied(index) else { return Reply::Timeout };
        match inner.recent.get(&index) {
            Some((t, client, seq, reply)) if *t == term && *client == command.client && *seq == command.seq => {
                Reply::Ok(reply.clone())
            }
            // Another entry took the index: this node lost leadership before committing ours.
            Some(_) => Reply::WrongLeader { hint: None },
            // Covered by an installed snapshot: the outcome is in the sessions; let the clerk
            // retry to learn it.
            None => Reply::Timeout,
        }
    }

    fn read(&self, key: &str) -> Reply {
        let index = match self.raft.read_index() {
            Ok(i) => i,
            Err(ReadError::NotLeader { hint }) => return Reply::WrongLeader { hint: hint.map(server_index) },
            Err(ReadError::Transferring { to }) => return Reply::WrongLeader { hint: Some(server_index(to)) },
            Err(ReadError::Timeout) => return Reply::Timeout,
            Err(ReadError::Stopped) => return Reply::WrongLeader { hint: None },
        };
        match self.wait_applied(index) {
            Some(inner) => Reply::Ok(inner.kv.get(key)),
            None => Reply::Timeout,
        }
    }

    /// Waits until the state applied `index`; `None` on timeout or stop.
    fn wait_applied(&self, index: Index) -> Option<std::sync::MutexGuard<'_, Inner>> {
        let deadline = Instant::now() + self.timeout;
        let mut inner = self.shared.inner.lock().expect("kv lock");
        while inner.kv.applied() < index {
            let now = Instant::now();
            if inner.stopped || now >= deadline {
                return None;
            }
            inner = self.shared.applied.wait_timeout(inner, deadline - now).expect("kv lock").0;
        }
        Some(inner)
    }
}

/// Checks a request against the key and value size limits; the error is the reason given to
/// the client.
pub fn validate_op(op: &Op, max_key: usize, max_value: usize) -> Result<(), String> {
    if op.key().len() > max_key {
        return Err(format!("key of {} bytes over the limit of {max_key}", op.key().len()));
    }
    match op {
        Op::Put { value, .. } | Op::Append { value, .. } if value.len() > max_value => {
            Err(format!("value of {} bytes over the limit of {max_value}", value.len()))
        }
        _ => Ok(()),
    }
}

/// Node ids are 1-based; clerks number servers from 0.
fn server_index(id: NodeId) -> u64 {
    id.0 - 1
}

fn apply_loop(shared: Arc<Shared>, applied: Receiver<Applied>, snapshotter: Snapshotter, opts: KvOptions) {
    let mut since_check = 0u32;
    let mut last_snapshot = Index(0);
    while let Ok(first) = applied.recv() {
        let mut batch = vec![first];
        batch.extend(applied.try_iter());
        let mut inner = shared.inner.lock().expect("kv lock");
        for a in batch {
            match a {
                Applied::Entry(e) => {
                    if e.index <= inner.kv.applied() {
                        continue; // replayed below a snapshot we already hold
                    }
                    let data: &[u8] = if e.kind == EntryKind::Command { &e.data } else { b"" };
                    if let KvApplied::Reply { client, seq, reply } = inner.kv.apply(e.index, data) {
                        inner.recent.insert(e.index, (e.term, client, seq, reply));
                        if inner.recent.len() > RECENT {
                            inner.recent.pop_first();
                        }
                    }
                }
                Applied::Snapshot(s) => match KvState::restore(&s.data) {
                    Ok(kv) => {
                        inner.kv = kv;
                        inner.snapshots_installed += 1;
                    }
                    Err(e) => tracing::error!("ignoring an undecodable snapshot at {}: {e}", s.meta.index.0),
                },
            }
        }
        since_check += 1;
        if since_check >= 8 || opts.max_raft_state.is_some_and(|m| m < 64 << 10) {
            since_check = 0;
            let at = inner.kv.applied();
            if at > last_snapshot && KvState::should_snapshot((opts.raft_state_size)(), opts.max_raft_state) {
                last_snapshot = at;
                snapshotter.snapshot(at, inner.kv.snapshot());
            }
        }
        drop(inner);
        shared.applied.notify_all();
    }
    shared.inner.lock().expect("kv lock").stopped = true;
    shared.applied.notify_all();
}
