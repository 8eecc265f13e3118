//! [`Service`]: the server side of the KV service, free of I/O, clocks and threads, written
//! once for every driver and for the simulator. It takes client requests, the core's outputs
//! that concern it (`Apply`, `ApplySnapshot`, `Accepted`, `ProposalDropped`, `ReadReady`,
//! `ReadDropped`) and the time as a plain number; it hands back [`Action`]s: proposals and
//! reads for the core, replies for the clients.
//!
//! Guarantees: a write is answered `Ok` only once the entry at the (index, term) where the
//! core placed it, holding this very (client, seq), was applied here; another entry at that
//! index answers `WrongLeader` (leadership was lost before it committed). A read is answered
//! only after the leader confirmed its leadership at a read index (ReadIndex) and the state
//! applied up to it. Anything uncertain (past its deadline, or covered by an installed
//! snapshot) is `Timeout`, which the clerk retries with the same sequence number; the session
//! table makes that retry safe. A snapshot that does not decode is an error: the driver must
//! stop the node, since going on would diverge from the log.
//!
//! Obligations of the driver: give the core every [`Action::Propose`] and [`Action::Read`]
//! in order, and feed back every output of the core named above (through
//! [`Service::on_output`]); call [`Service::expire`] now and then (a tick). `now` is in the
//! unit of `ServiceConfig::request_timeout` and `SessionLimits::ttl`, and it is also the time
//! stamp the service puts on the entries it proposes: every node of a cluster must give the
//! same clock (the wall clock in milliseconds, in the real drivers; the simulated time in the
//! simulator). A clock that goes back is taken as standing still.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;

use super::waiting::{expire_each, expire_lists, Read, ReadOp, Write};
use super::{encode, Applied, Body, Cmd, Command, KvState, LogEntry, Op, Reply, Resp, SessionLimits};
use crate::io::{DropReason, Output, Proposal};
use crate::types::{Entry, EntryKind, Index, NodeId, Snapshot, Term};

/// Limits, deadlines and the snapshot policy of a [`Service`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Longest key accepted, in bytes.
    pub max_key_bytes: usize,
    /// Longest value accepted in one request, and longest an `Append` may grow a value to
    /// (the bound goes in the entry), in bytes.
    pub max_value_bytes: usize,
    /// How long a request waits (in the caller's unit of `now`) before it is answered
    /// `Timeout`.
    pub request_timeout: u64,
    /// Snapshot once the persisted Raft state reaches about this many bytes (never if `None`,
    /// the lab's `maxraftstate = -1`).
    pub max_raft_state: Option<u64>,
    /// The client sessions' bound and expiry, put in each `Register` entry this node
    /// proposes as leader.
    pub sessions: SessionLimits,
    /// While any key has an expiry, the leader proposes a clock entry (which also sweeps
    /// expired keys) once the replicated clock is this far behind its own: reads see time,
    /// and so expiry, as of the replicated clock. `0` turns the sweep off.
    pub clock_interval: u64,
    /// Most expired keys one sweep entry removes.
    pub sweep_max: u32,
}

impl Default for ServiceConfig {
    /// 1 KiB keys, 1 MiB values, a timeout of 1000 (milliseconds, if `now` counts those), no
    /// snapshots, [`SessionLimits::default`], a clock entry every 100 while keys expire,
    /// sweeps of up to 1000 keys.
    fn default() -> Self {
        ServiceConfig {
            max_key_bytes: 1024,
            max_value_bytes: 1 << 20,
            request_timeout: 1000,
            max_raft_state: None,
            sessions: SessionLimits::default(),
            clock_interval: 100,
            sweep_max: 1000,
        }
    }
}

/// Every proposal and read id a [`Service`] gives the core has this bit set; ids without it
/// are free for the driver's own proposals and reads, which the service then never mistakes
/// for its own.
pub const SERVICE_IDS: u64 = 1 << 63;

/// What the driver does for the service, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<W> {
    /// Give the core `Input::Propose` with this proposal (several may go in one
    /// `Input::ProposeBatch`).
    Propose(Proposal),
    /// Give the core `Input::Read { id }`.
    Read { id: u64 },
    /// Answer the client waiting as `to`.
    Reply { to: W, reply: Reply },
}

/// A request refused before it reaches the log: over a limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    KeyTooLong { len: usize, max: usize },
    ValueTooLong { len: usize, max: usize },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::KeyTooLong { len, max } => write!(f, "key of {len} bytes over the limit of {max}"),
            RequestError::ValueTooLong { len, max } => write!(f, "value of {len} bytes over the limit of {max}"),
        }
    }
}

/// Why the service cannot go on: the node must stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// The snapshot at `index` does not decode as a KV state; `installed` says whether it
    /// came from a leader (or else was restored from this node's disk).
    BadSnapshot { index: Index, installed: bool },
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::BadSnapshot { index, installed } => write!(
                f,
                "the KV snapshot at index {} ({}) does not decode; the state machine would diverge \
                 from the log, so the node stops (check the data directory, or rebuild this node \
                 from an empty one so it receives the leader's snapshot)",
                index.0,
                if *installed { "sent by the leader" } else { "restored from disk" }
            ),
        }
    }
}

/// Checks `op`'s commands against the key and value limits.
pub fn validate_op(op: &Op, max_key: usize, max_value: usize) -> Result<(), RequestError> {
    let keys: alloc::vec::Vec<&bytes::Bytes> = match op {
        Op::Watch { keys } => keys.iter().collect(),
        _ => op.commands().iter().flat_map(Cmd::keys).collect(),
    };
    if let Some(k) = keys.iter().find(|k| k.len() > max_key) {
        return Err(RequestError::KeyTooLong { len: k.len(), max: max_key });
    }
    match op.commands().iter().map(Cmd::longest_value).max() {
        Some(len) if len > max_value => Err(RequestError::ValueTooLong { len, max: max_value }),
        _ => Ok(()),
    }
}

/// The leader to hint at after a refusal: the node that leads, or the one leadership moves to.
pub fn drop_hint(reason: &DropReason) -> Option<NodeId> {
    match reason {
        DropReason::NotLeader { hint } => *hint,
        DropReason::Transferring { to } => Some(*to),
        DropReason::TooLarge { .. } | DropReason::Membership(_) => None,
    }
}

/// The KV server on one node: the replicated state and the requests waiting on it. `W` is
/// whatever the driver needs to deliver a reply (a connection token, a channel, a client
/// number). Invariant: every request taken is answered exactly once (an [`Action::Reply`]),
/// unless the service is dropped first.
#[derive(Debug)]
pub struct Service<W> {
    state: KvState,
    config: ServiceConfig,
    next_id: u64,
    /// Writes proposed and not yet placed (the core answers within the same step).
    proposed: BTreeMap<u64, Write<W>>,
    /// Writes placed in the log, by index, with the term they were placed in.
    placed: BTreeMap<Index, Vec<(Term, Write<W>)>>,
    /// Reads waiting for the leader's confirmation.
    confirming: BTreeMap<u64, Read<W>>,
    /// Reads confirmed at an index, waiting for it to be applied.
    ready: BTreeMap<Index, Vec<Read<W>>>,
    actions: Vec<Action<W>>,
    last_snapshot: Index,
    installed: u64,
    /// Set once the service cannot go on: it then takes nothing more (the driver stops).
    failed: Option<ServiceError>,
    /// The latest `now` given: the time stamp of the next proposal.
    clock: u64,
    /// Whether the core said this node leads (it then proposes clock entries).
    leading: bool,
    /// When this node last proposed a clock entry.
    last_clock_entry: u64,
}

impl<W> Service<W> {
    /// A service starting from `restored` (the snapshot the node restored, if any).
    pub fn new(config: ServiceConfig, restored: Option<&Snapshot>) -> Result<Service<W>, ServiceError> {
        let state = match restored {
            Some(s) => KvState::restore(&s.data)
                .map_err(|_| ServiceError::BadSnapshot { index: s.meta.index, installed: false })?,
            None => KvState::new(),
        };
        Ok(Service {
            last_snapshot: state.applied(),
            state,
            config,
            next_id: 0,
            proposed: BTreeMap::new(),
            placed: BTreeMap::new(),
            confirming: BTreeMap::new(),
            ready: BTreeMap::new(),
            actions: Vec::new(),
            installed: 0,
            failed: None,
            clock: 0,
            leading: false,
            last_clock_entry: 0,
        })
    }

    /// The replicated state (read it only for status and tests: reads go through
    /// [`Service::request`]).
    pub fn state(&self) -> &KvState {
        &self.state
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Snapshots installed from a leader.
    pub fn installed(&self) -> u64 {
        self.installed
    }

    /// Takes one client request at time `now`; its answer comes as an [`Action::Reply`] to
    /// `to`.
    pub fn request(&mut self, command: Command, to: W, now: u64) {
        if self.failed.is_some() {
            self.actions.push(Action::Reply { to, reply: Reply::Timeout });
            return;
        }
        if let Err(e) = validate_op(&command.op, self.config.max_key_bytes, self.config.max_value_bytes) {
            self.actions.push(Action::Reply { to, reply: Reply::Invalid { reason: e.to_string() } });
            return;
        }
        self.clock = self.clock.max(now);
        self.next_id += 1;
        let id = SERVICE_IDS | self.next_id;
        let deadline = now.saturating_add(self.config.request_timeout);
        let (write, body) = match command.op {
            Op::Cmd(cmd) if !cmd.is_write() => {
                self.confirming.insert(id, Read { to, op: ReadOp::Cmd(cmd), deadline });
                self.actions.push(Action::Read { id });
                return;
            }
            Op::Reads { commands } if commands.iter().all(|c| !c.is_write()) => {
                self.confirming.insert(id, Read { to, op: ReadOp::Batch(commands), deadline });
                self.actions.push(Action::Read { id });
                return;
            }
            Op::Reads { .. } => {
                let reason = "a read pipeline holds a write".to_string();
                self.actions.push(Action::Reply { to, reply: Reply::Invalid { reason } });
                return;
            }
            Op::Watch { keys } => {
                self.confirming.insert(id, Read { to, op: ReadOp::Watch(keys), deadline });
                self.actions.push(Action::Read { id });
                return;
            }
            Op::Register => {
                (Write { to, client: 0, seq: 0, deadline }, Body::Register { limits: self.config.sessions })
            }
            _ => {
                let write = Write { to, client: command.client, seq: command.seq, deadline };
                (write, Body::Write { command, max_value: self.config.max_value_bytes as u64 })
            }
        };
        // Never behind what the state applied: stamps this leader adds keep the clock moving.
        let time = self.clock.max(self.state.clock());
        let data = Bytes::from(encode(&LogEntry { time, body }));
        self.proposed.insert(id, write);
        self.actions.push(Action::Propose(Proposal { id, data }));
    }

    /// Feeds one output of the core. Returns whether it concerned the service (`Send`,
    /// `Persist` and `RoleChanged` do not; answers about ids without [`SERVICE_IDS`] are the
    /// driver's own and are left alone).
    /// After an error it takes nothing more and returns that error again.
    pub fn on_output(&mut self, output: &Output) -> Result<bool, ServiceError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match output {
            Output::Apply(entries) => self.apply(entries),
            Output::ApplySnapshot(s) => self.install(s)?,
            Output::Accepted { id, .. }
            | Output::ProposalDropped { id, .. }
            | Output::ReadReady { id, .. }
            | Output::ReadDropped { id, .. }
                if id & SERVICE_IDS == 0 =>
            {
                return Ok(false)
            }
            Output::Accepted { id, index, term } => self.accepted(*id, *index, *term),
            Output::ProposalDropped { id, reason } => self.proposal_dropped(*id, reason),
            Output::ReadReady { id, index } => self.read_ready(*id, *index),
            Output::ReadDropped { id, reason } => self.read_dropped(*id, reason),
            Output::RoleChanged { role, .. } if *role != crate::io::Role::Leader => self.stepped_down(),
            Output::RoleChanged { .. } => {
                self.leading = true;
                return Ok(false);
            }
            Output::Send(_) | Output::Persist(_) | Output::MembershipChanged { .. } | Output::LoadSnapshot { .. } => {
                return Ok(false)
            }
        }
        Ok(true)
    }

    /// The core placed proposal `id` at `index` in `term`. A driver that learns the
    /// placement on another path than the applies (threads) may learn it after `index` was
    /// applied: the outcome is then unknown here and the request is answered `Timeout` (its
    /// retry learns the outcome from the session table).
    pub fn accepted(&mut self, id: u64, index: Index, term: Term) {
        if let Some(w) = self.proposed.remove(&id) {
            if index <= self.state.applied() {
                self.actions.push(Action::Reply { to: w.to, reply: Reply::Timeout });
                return;
            }
            self.placed.entry(index).or_default().push((term, w));
        }
    }

    /// The core refused proposal `id`.
    pub fn proposal_dropped(&mut self, id: u64, reason: &DropReason) {
        if let Some(w) = self.proposed.remove(&id) {
            let reply = match reason {
                DropReason::TooLarge { len, max } => {
                    Reply::Invalid { reason: format!("command of {len} bytes over the entry limit of {max}") }
                }
                _ => Reply::WrongLeader { hint: drop_hint(reason) },
            };
            self.actions.push(Action::Reply { to: w.to, reply });
        }
    }

    /// The leader confirmed read `id` at `index`.
    pub fn read_ready(&mut self, id: u64, index: Index) {
        if let Some(r) = self.confirming.remove(&id) {
            self.ready.entry(index).or_default().push(r);
            self.serve_reads();
        }
    }

    /// Read `id` cannot be served here.
    pub fn read_dropped(&mut self, id: u64, reason: &DropReason) {
        if let Some(r) = self.confirming.remove(&id) {
            let reply = Reply::WrongLeader { hint: drop_hint(reason) };
            self.actions.push(Action::Reply { to: r.to, reply });
        }
    }

    /// Applies committed entries (in index order; those at or below what the state holds are
    /// skipped), answering the writes placed at their indexes.
    pub fn apply(&mut self, entries: &[Entry]) {
        if self.failed.is_some() {
            return;
        }
        for e in entries {
            if e.index <= self.state.applied() {
                continue; // below a snapshot already installed
            }
            let data: &[u8] = if e.kind == EntryKind::Command { &e.data } else { b"" };
            let outcome = self.state.apply(e.index, data);
            let Some(waiting) = self.placed.remove(&e.index) else { continue };
            for (term, w) in waiting {
                let ours = |client: u64, seq: u64| term == e.term && client == w.client && seq == w.seq;
                let reply = match &outcome {
                    Applied::Reply { client, seq, reply } if ours(*client, *seq) => Reply::Ok(reply.clone()),
                    Applied::Registered { client } if ours(0, 0) => Reply::Registered { client: *client },
                    Applied::Expired { client, seq } if ours(*client, *seq) => Reply::SessionExpired,
                    // Another entry took the index: leadership was lost before ours committed.
                    _ => Reply::WrongLeader { hint: None },
                };
                self.actions.push(Action::Reply { to: w.to, reply });
            }
        }
        self.serve_reads();
    }

    /// Replaces the state with a snapshot from the leader. Writes waiting at indexes it
    /// covers are answered `Timeout`: their outcome is in the sessions, the retry learns it.
    /// One that does not decode is an error, and the service takes nothing more: applying
    /// later entries to the old state would answer clients from a diverged state.
    pub fn install(&mut self, snapshot: &Snapshot) -> Result<(), ServiceError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Ok(state) = KvState::restore(&snapshot.data) else {
            let e = ServiceError::BadSnapshot { index: snapshot.meta.index, installed: true };
            self.failed = Some(e.clone());
            return Err(e);
        };
        self.state = state;
        self.installed += 1;
        let applied = self.state.applied();
        self.last_snapshot = applied;
        while let Some(entry) = self.placed.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for (_, w) in entry.remove() {
                self.actions.push(Action::Reply { to: w.to, reply: Reply::Timeout });
            }
        }
        self.serve_reads();
        Ok(())
    }

    fn serve_reads(&mut self) {
        let applied = self.state.applied();
        while let Some(entry) = self.ready.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for r in entry.remove() {
                let value = match &r.op {
                    ReadOp::Cmd(cmd) => self.state.read(cmd),
                    ReadOp::Watch(keys) => self.state.watch(keys),
                    ReadOp::Batch(cmds) => Resp::Array(cmds.iter().map(|c| self.state.read(c)).collect()),
                };
                self.actions.push(Action::Reply { to: r.to, reply: Reply::Ok(value) });
            }
        }
    }

    /// This node no longer leads: the writes it placed or proposed, and the reads it had not
    /// confirmed, are answered `Timeout` at once (their outcome is unknown here; the clerk
    /// retries at the new leader with the same sequence number, and the session table
    /// answers a write that committed), rather than at their deadline. Reads confirmed at
    /// an index are still served once it is applied. (A leader that removed itself handed
    /// over in a millisecond, and its clients waited out a second of request timeout.)
    fn stepped_down(&mut self) {
        self.leading = false;
        let mut late = Vec::new();
        expire_each(&mut self.proposed, u64::MAX, &mut late);
        expire_each(&mut self.confirming, u64::MAX, &mut late);
        expire_lists(&mut self.placed, u64::MAX, &mut late);
        self.actions.extend(late.into_iter().map(|to| Action::Reply { to, reply: Reply::Timeout }));
    }

    /// Answers `Timeout` to every request whose deadline is at or before `now`; as leader,
    /// proposes a clock entry (see [`ServiceConfig::clock_interval`]) when one is due.
    pub fn expire(&mut self, now: u64) {
        self.clock = self.clock.max(now);
        self.propose_clock();
        let mut late = Vec::new();
        expire_each(&mut self.proposed, now, &mut late);
        expire_each(&mut self.confirming, now, &mut late);
        expire_lists(&mut self.placed, now, &mut late);
        expire_lists(&mut self.ready, now, &mut late);
        self.actions.extend(late.into_iter().map(|to| Action::Reply { to, reply: Reply::Timeout }));
    }

    /// Tells the service whether its node leads, for a driver that learns it otherwise than
    /// through `Output::RoleChanged` (which [`Service::on_output`] takes): only a leader
    /// proposes clock entries.
    pub fn set_leading(&mut self, leading: bool) {
        self.leading = leading;
    }

    /// Proposes a clock and sweep entry if this node leads, some key has an expiry, and the
    /// replicated clock is `clock_interval` behind (or a key is due), at most once per
    /// interval. Nobody waits for it: if it is lost, a later one goes.
    fn propose_clock(&mut self) {
        let interval = self.config.clock_interval;
        if !self.leading || interval == 0 || self.failed.is_some() {
            return;
        }
        let Some(next) = self.state.next_expiry() else { return };
        let behind = self.clock.saturating_sub(self.state.clock());
        let due = next <= self.clock || behind >= interval;
        if !due || self.clock < self.last_clock_entry.saturating_add(interval) {
            return;
        }
        self.last_clock_entry = self.clock;
        self.next_id += 1;
        let body = Body::Sweep { max: self.config.sweep_max };
        let data = Bytes::from(encode(&LogEntry { time: self.clock.max(self.state.clock()), body }));
        self.actions.push(Action::Propose(Proposal { id: SERVICE_IDS | self.next_id, data }));
    }

    /// Moves the actions produced since the last call to the end of `out` (in order).
    pub fn take_actions_into(&mut self, out: &mut Vec<Action<W>>) {
        out.append(&mut self.actions);
    }

    /// The actions produced since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<Action<W>> {
        core::mem::take(&mut self.actions)
    }

    /// The snapshot policy: a snapshot to hand the core (`Input::Snapshot`) when the
    /// persisted Raft state (`raft_state_bytes`, the driver's measure) reached 9/10 of
    /// `max_raft_state` and something was applied since the last one.
    pub fn snapshot_due(&mut self, raft_state_bytes: u64) -> Option<(Index, Vec<u8>)> {
        if self.state.applied() <= self.last_snapshot
            || !KvState::should_snapshot(raft_state_bytes, self.config.max_raft_state)
        {
            return None;
        }
        Some(self.snapshot())
    }

    /// A frozen copy of the state now, to encode off the driver's critical path
    /// ([`KvState::snapshot`], on another thread) and then hand the core as
    /// `Input::Snapshot` at the index returned; `None` if nothing was applied since the last
    /// snapshot. The copy costs about one reference count per data shard (see
    /// [`KvState::freeze`]), so the driver may call it from its event loop.
    pub fn freeze(&mut self) -> Option<(Index, KvState)> {
        if self.state.applied() <= self.last_snapshot {
            return None;
        }
        self.last_snapshot = self.state.applied();
        Some((self.last_snapshot, self.state.freeze()))
    }

    /// A snapshot of the state now, whatever the policy says: (the index it covers, its bytes).
    pub fn snapshot(&mut self) -> (Index, Vec<u8>) {
        self.last_snapshot = self.state.applied();
        (self.last_snapshot, self.state.snapshot())
    }

    /// Whether no request is in progress (constant time).
    pub fn idle(&self) -> bool {
        self.proposed.is_empty() && self.placed.is_empty() && self.confirming.is_empty() && self.ready.is_empty()
    }

    /// Requests in progress (walks the waiting lists).
    pub fn in_progress(&self) -> usize {
        self.proposed.len()
            + self.placed.values().map(Vec::len).sum::<usize>()
            + self.confirming.len()
            + self.ready.values().map(Vec::len).sum::<usize>()
    }
}
