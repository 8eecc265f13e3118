//! [`Engine`]: what the event loop runs besides sockets: the Raft core, the KV service, the
//! storage thread, the ticks and the snapshot policy. It takes inputs and requests and leaves
//! what must go out in two lists: messages for peers (`outbox`) and replies for waiters
//! (`replies`). The loop routes both before it waits again, so every message the core emits
//! is queued on its link within the same round (DESIGN §2).

use std::sync::mpsc::TryRecvError;
use std::time::{Duration, Instant};

use skiff_core::kv::{Action, Command, Reply};
use skiff_core::{Input, Message, Node, Output, Proposal, Role};
use skiff_std::runtime::batch_input;

use super::kv::{LocalKv, Waiter};
use super::members::Members;
use super::peers::PeerLink;
use super::snapshot_load::SnapshotLoader;
use super::snapshots::Snapshots;
use super::stall::Stalls;
use super::storage::{StorageEvent, StorageLink};
use super::ServeError;
use crate::metrics::Metrics;

/// Bytes a log entry costs in the WAL besides its data (record and entry headers), for the
/// snapshot policy's count.
const ENTRY_OVERHEAD: u64 = 32;

#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) node: Node,
    out: Vec<Output>,
    pub(crate) kv: LocalKv,
    pub(crate) storage: StorageLink,
    /// Proposals gathered since the last step, given to the core as one batch.
    batch: Vec<Proposal>,
    /// Messages for peers, to route to their links.
    pub(crate) outbox: Vec<Message>,
    /// Records for the storage thread, handed over at the end of the round
    /// ([`Engine::hand_over_persists`]), after the round's messages were written: woken
    /// earlier, on a busy machine the storage thread would take the core the loop needs to
    /// send the appends that the followers' disks wait for.
    persists: Vec<skiff_core::Persist>,
    /// Answers for waiters, to deliver.
    pub(crate) replies: Vec<(Waiter, Reply)>,
    /// When to snapshot, and the snapshot being encoded.
    pub(crate) snapshots: Snapshots,
    /// The snapshot being read back for the core (`Output::LoadSnapshot`).
    loader: SnapshotLoader,
    /// How long the event loop's rounds take (recorded by the loop).
    pub(crate) loop_stalls: Stalls,
    /// Set when the node cannot go on (a snapshot that does not decode): the loop stops.
    pub(crate) fatal: Option<ServeError>,
    /// Membership changes an operator asked of this node.
    pub(crate) members: Members,
    /// The latest configuration reported by the core, for the loop to update its peer links.
    pub(crate) new_membership: Option<skiff_core::Membership>,
    pub(crate) metrics: Metrics,
    /// The leader last reported (to count changes).
    last_leader: Option<skiff_core::NodeId>,
    /// The wall time of the last tick delivered to the core, and a tick's length.
    last_tick: Instant,
    tick: Duration,
    /// Ticks delivered by a catch-up before a read or a peer message (with lease reads),
    /// whose timed work the loop has not done yet.
    caught_up: u64,
}

impl Engine {
    pub(crate) fn new(
        node: Node,
        kv: LocalKv,
        storage: StorageLink,
        snapshot_threshold: Option<u64>,
        data_dir: std::path::PathBuf,
        metrics: Metrics,
        tick: Duration,
    ) -> Engine {
        Engine {
            node,
            out: Vec::new(),
            kv,
            storage,
            batch: Vec::new(),
            outbox: Vec::new(),
            persists: Vec::new(),
            replies: Vec::new(),
            snapshots: Snapshots::new(snapshot_threshold),
            loader: SnapshotLoader::new(data_dir),
            loop_stalls: Stalls::default(),
            fatal: None,
            members: Members::default(),
            new_membership: None,
            metrics,
            last_leader: None,
            last_tick: Instant::now(),
            tick,
            caught_up: 0,
        }
    }

    /// A client request for this node's service; it is acted on at the next
    /// [`Engine::settle`].
    pub(crate) fn submit(&mut self, command: Command, waiter: Waiter, now: Instant) {
        self.kv.request(command, waiter, now);
    }

    /// Carries out what the service asked for until it asks nothing more: proposals are
    /// batched for the core, reads go to the core, replies to `replies`.
    pub(crate) fn settle(&mut self) {
        loop {
            let actions = self.kv.take_actions();
            if actions.is_empty() {
                if self.batch.is_empty() {
                    return;
                }
                // Its step may answer requests (a refusal): look again.
                self.flush_batch();
                continue;
            }
            for action in actions {
                match action {
                    Action::Propose(p) => self.batch.push(p),
                    Action::Read { id } => self.step(Input::Read { id }),
                    Action::Reply { to, reply } => self.replies.push((to, reply)),
                }
            }
        }
    }

    fn flush_batch(&mut self) {
        if let Some(input) = batch_input(&mut self.batch) {
            self.step(input);
        }
    }

    pub(crate) fn step(&mut self, input: Input) {
        // A lease read must see the clock as it is now, and a follower must count a beat's
        // receipt after every tick that came before it: what arrived late in a long loop
        // round is not decided on the round's start.
        if matches!(input, Input::Read { .. } | Input::Message(_))
            && self.node.config().lease_drift_permille().is_some()
        {
            self.caught_up += self.catch_up(Instant::now());
        }
        match &input {
            Input::Propose(_) => {
                self.metrics.proposals.inc();
            }
            Input::ProposeBatch(b) => {
                self.metrics.proposals.inc_by(b.len() as u64);
            }
            _ => {
                if matches!(input, Input::Read { .. }) {
                    self.metrics.reads.inc();
                }
                self.flush_batch();
            }
        }
        let mut out = std::mem::take(&mut self.out);
        self.node.step_into(input, &mut out);
        for o in out.drain(..) {
            self.carry_out(o);
        }
        self.out = out;
        self.check_member_progress();
    }

    fn carry_out(&mut self, o: Output) {
        match o {
            Output::Send(m) => self.outbox.push(m),
            Output::Persist(p) => {
                self.snapshots.logged += p.entries.iter().map(|e| e.data.len() as u64 + ENTRY_OVERHEAD).sum::<u64>();
                self.persists.push(p)
            }
            Output::RoleChanged { role, term, leader } => {
                let id = self.node.config().id().0;
                tracing::info!(node = id, ?role, term = term.0, leader = ?leader.map(|l| l.0), "role changed");
                self.metrics.role.set(match role {
                    Role::Follower => 0,
                    Role::PreCandidate => 1,
                    Role::Candidate => 2,
                    Role::Leader => 3,
                });
                if leader.is_some() && leader != self.last_leader {
                    self.metrics.leader_changes.inc();
                    self.last_leader = leader;
                }
                // A service that no longer leads answers what it waited for at once.
                if let Err(e) = self.kv.on_output(&Output::RoleChanged { role, term, leader }) {
                    self.fatal.get_or_insert(ServeError::Service(e));
                }
            }
            Output::MembershipChanged { index, membership, committed } => {
                let id = self.node.config().id().0;
                tracing::info!(node = id, index = index.0, %membership, committed, "configuration changed");
                self.new_membership = Some(membership);
            }
            Output::LoadSnapshot { index } => {
                tracing::debug!(index = index.0, "reading the snapshot back for a follower");
                self.loader.start(index);
            }
            o @ (Output::Accepted { .. } | Output::ProposalDropped { .. }) if self.member_output(&o) => {}
            Output::ProposalDropped { id, reason } => {
                self.metrics.proposals_dropped.inc();
                if let Err(e) = self.kv.on_output(&Output::ProposalDropped { id, reason }) {
                    self.fatal.get_or_insert(ServeError::Service(e));
                }
            }
            service_output => {
                if let Err(e) = self.kv.on_output(&service_output) {
                    self.fatal.get_or_insert(ServeError::Service(e));
                }
            }
        }
    }

    /// Gives the storage thread the records the core emitted, in order. The loop calls this
    /// after writing the round's messages and before it waits again.
    pub(crate) fn hand_over_persists(&mut self) {
        for p in self.persists.drain(..) {
            self.storage.persist(p);
        }
    }

    /// What the storage thread reported: durable records go to the core.
    pub(crate) fn storage_events(&mut self) -> Result<(), ServeError> {
        loop {
            match self.storage.events.try_recv() {
                Ok(StorageEvent::Persisted(up_to)) => self.step(Input::Persisted { up_to }),
                Ok(StorageEvent::Failed(e)) => return Err(ServeError::Storage(e)),
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(ServeError::StorageEnded),
            }
        }
    }

    /// When the last tick delivered to the core was due.
    pub(crate) fn last_tick(&self) -> Instant {
        self.last_tick
    }

    /// Delivers to the core every tick that elapsed by `now` (at most `MAX_TICK_BURST`: a
    /// node stopped for long then sees its timers expired without replaying the pause tick
    /// by tick). Returns how many.
    pub(crate) fn catch_up(&mut self, now: Instant) -> u64 {
        let elapsed = (now.saturating_duration_since(self.last_tick).as_nanos() / self.tick.as_nanos().max(1)) as u64;
        if elapsed == 0 {
            return 0;
        }
        let delivered = elapsed.min(super::MAX_TICK_BURST);
        self.last_tick =
            if elapsed > super::MAX_TICK_BURST { now } else { self.last_tick + self.tick * elapsed as u32 };
        for _ in 0..delivered {
            self.step(Input::Tick);
        }
        delivered
    }

    /// Ticks a catch-up inside a step delivered since the last call.
    pub(crate) fn take_ticks_caught_up(&mut self) -> u64 {
        std::mem::take(&mut self.caught_up)
    }

    /// Ticks passed (delivered by [`Engine::catch_up`]): request deadlines and the snapshot
    /// policy.
    pub(crate) fn after_ticks(&mut self, now: Instant) {
        self.kv.expire(now);
        self.snapshot_policy();
        let v = self.node.view();
        let m = &self.metrics;
        m.term.set(v.term.0 as i64);
        m.commit_index.set(v.commit.0 as i64);
        m.applied_index.set(v.applied.0 as i64);
        m.last_index.set(v.last_index.0 as i64);
        m.lease_reads.set(v.lease_reads as i64);
        m.keys.set(self.kv.keys() as i64);
    }

    /// `BGSAVE` (`start`: snapshot now, as Redis saves in the background) or `LASTSAVE`.
    pub(crate) fn save_command(&mut self, start: bool) -> skiff_core::kv::Resp {
        use skiff_core::kv::Resp;
        if !start {
            return Resp::Int(self.snapshots.last_save() as i64);
        }
        match self.snapshots.ask() {
            Ok(()) => Resp::Simple("Background saving started".into()),
            Err(super::snapshots::SaveRefused::InProgress) => Resp::error("ERR Background save already in progress"),
        }
    }

    /// The snapshot policy's check (see `snapshots`): a finished encoding goes to the core,
    /// and so does a snapshot read back (a damaged one stops the node).
    fn snapshot_policy(&mut self) {
        match self.loader.poll() {
            Some(Ok(snapshot)) => self.step(Input::SnapshotLoaded(snapshot)),
            // A damaged snapshot file: storage can no longer be trusted.
            Some(Err(e @ skiff_std::storage::StorageError::Corrupt { .. })) => {
                self.fatal.get_or_insert(ServeError::Storage(e));
            }
            Some(Err(e)) => {
                // Could not read it now (no thread, an I/O error): the core asks again.
                tracing::warn!(error = %e, "cannot read the snapshot back");
                self.step(Input::SnapshotLoaded(None));
            }
            None => {}
        }
        if let Some((index, data)) = self.snapshots.poll(&mut self.kv, &self.metrics) {
            let (began, bytes) = (Instant::now(), data.len());
            self.step(Input::Snapshot { index, data });
            let us = began.elapsed().as_micros() as u64;
            tracing::debug!(index = index.0, bytes, compaction_us = us, "snapshot taken");
        }
    }

    /// Ticks until the engine has something to do by itself: the core's
    /// ([`Node::ticks_until_due`]), or one while requests wait for their deadlines or a
    /// snapshot is being encoded or read back.
    pub(crate) fn ticks_until_due(&self) -> u32 {
        if self.kv.idle() && !self.snapshots.encoding() && !self.loader.reading() {
            self.node.ticks_until_due()
        } else {
            1
        }
    }

    /// The `INFO` text: the node's Raft state and, on a leader, each peer's match index.
    pub(crate) fn info(&self, links: &[PeerLink]) -> String {
        let v = self.node.view();
        let mut s = format!(
            "# Raft\r\nnode_id:{}\r\nrole:{:?}\r\nterm:{}\r\nleader:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nlast_index:{}\r\nsnapshot_index:{}\r\nread_mode:{}\r\nlease_reads:{}\r\n",
            v.id.0,
            v.role,
            v.term.0,
            v.leader.map_or("none".to_string(), |l| l.0.to_string()),
            v.commit.0,
            v.applied.0,
            v.last_index.0,
            v.snapshot_index.0,
            if self.node.config().lease_drift_permille().is_some() { "lease" } else { "read-index" },
            v.lease_reads
        );
        if v.role == Role::Leader {
            for link in links {
                if let Some(p) = self.node.progress(link.id) {
                    s.push_str(&format!("peer_{}_match:{}\r\n", link.id.0, p.match_index.0));
                    // Replicating, and within 100 entries: a learner may be promoted.
                    let caught_up = self.node.caught_up(link.id, 100).unwrap_or(false);
                    s.push_str(&format!("peer_{}_caught_up:{caught_up}\r\n", link.id.0));
                    if let Some((index, max)) = p.snapshot_refused {
                        s.push_str(&format!(
                            "peer_{}_snapshot_refused:{} (its bound: {max} bytes)\r\n",
                            link.id.0, index.0
                        ));
                    }
                }
            }
        }
        for link in links {
            s.push_str(&format!("peer_{}_dropped:{}\r\n", link.id.0, link.dropped));
        }
        let ids = |s: &[skiff_core::NodeId]| s.iter().map(|n| n.0.to_string()).collect::<Vec<_>>().join(",");
        s.push_str(&format!(
            "# Membership\r\nvoters:{}\r\nlearners:{}\r\noutgoing:{}\r\njoint:{}\r\nmembership_index:{}\r\nmembership_committed:{}\r\n",
            ids(v.membership.voters()),
            ids(v.membership.learners()),
            ids(v.membership.outgoing()),
            v.membership.is_joint(),
            v.membership_index.0,
            v.membership_committed
        ));
        s.push_str(&format!(
            "# Keyspace\r\ndb0:keys={},expires={},avg_ttl=0\r\nkeys:{}\r\nkv_sessions:{}\r\nrequests_in_progress:{}\r\nsnapshots_installed:{}\r\nsnapshots_taken:{}\r\nsnapshots_read_back:{}\r\nsnapshot_in_memory:{}\r\n",
            self.kv.keys(),
            self.kv.volatile(),
            self.kv.keys(),
            self.kv.sessions(),
            self.kv.in_progress(),
            self.kv.installed(),
            self.snapshots.taken,
            self.loader.started,
            u8::from(self.node.log().snapshot().is_some())
        ));
        s.push_str("# Stalls\r\n");
        s.push_str(&self.loop_stalls.info("loop_round"));
        s.push_str(&self.storage.stalls.info("storage_write"));
        s
    }
}
