//! The consensus state machine. This file holds the node's state, the dispatch of inputs and
//! the end-of-step bookkeeping (persist, release held messages, apply, role reports); the
//! protocol itself lives by concern in `election`, `replication` and `log`.

mod change;
mod configs;
mod election;
#[cfg(feature = "explore")]
mod fingerprint;
mod lease;
pub mod log;
pub mod progress;
#[cfg(test)]
mod properties;
mod quorum;
mod read;
mod receive;
mod replication;
mod snapshot;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_change;
#[cfg(test)]
mod tests_lease;
#[cfg(test)]
mod tests_membership;
#[cfg(test)]
mod tests_snapshot;
#[cfg(test)]
mod tests_snapshot_storage;
mod transfer;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::config::Config;
use crate::io::{DropReason, Ignored, Input, Output, Persist, Proposal, RestoreError, Restored, Role, View};
use crate::membership::Membership;
use crate::message::{Message, MessageBody};
use crate::planted::PlantedBug;
use crate::types::{Entry, EntryKind, HardState, Index, NodeId, Term};

use self::lease::Lease;
use self::log::RaftLog;
use self::progress::Progress;
use self::quorum::Tally;
use self::read::Reads;
use self::snapshot::Incoming;
use self::transfer::Transfer;
use crate::rng::SplitMix64 as Rng;

/// No real log reaches this index; a message naming a higher one is forged (and refused
/// before index arithmetic could overflow).
pub(crate) const MAX_INDEX: Index = Index(u64::MAX / 4);

/// Compacted entries freed at least per tick (see `RaftLog::free_garbage`, which frees a
/// sixteenth of a larger backlog): a few hundred microseconds of work. Per tick, because per
/// step would not bound a driver's round, which may take many steps.
const GARBAGE_PER_TICK: usize = 4096;

/// One Raft node as a pure state machine. Feed it [`Input`]s with [`Node::step`]; carry out
/// the [`Output`]s it returns. See the crate documentation for the driver loop.
/// Cloning copies the whole in-memory state (the log's entries share their payloads); the
/// exhaustive explorer in `skiff-verify` forks a cluster this way.
#[derive(Clone, Debug)]
pub struct Node {
    cfg: Config,
    rng: Rng,
    term: Term,
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,

    /// Ticks since the last reset of the election timer (followers and candidates), or since
    /// the last check-quorum round (leaders).
    election_elapsed: u32,
    /// The current randomized election timeout, drawn from `[min, max)` at every reset.
    election_timeout: u32,
    heartbeat_elapsed: u32,

    /// Votes of the current pre-election or election.
    tally: Tally,
    /// Candidate: the persist holding our own vote; counted once acknowledged.
    self_vote_seq: Option<u64>,
    /// Leader: one entry per peer.
    progress: BTreeMap<NodeId, Progress>,
    /// Leader: ReadIndex rounds and the reads waiting on them.
    reads: Reads,
    /// The lease clock and what lease reads need besides it (`lease`).
    lease: Lease,
    /// Leader: a leadership transfer in progress.
    transfer: Option<Transfer>,
    /// Follower: a snapshot being received in chunks.
    incoming: Option<Incoming>,
    /// The snapshot changed in this step and must reach storage.
    snapshot_unpersisted: bool,
    /// A received snapshot waits for this persist before the service may install it.
    snapshot_apply_after: Option<u64>,
    /// The persist that carried the current snapshot, until acknowledged (`None` too for a
    /// snapshot restored from storage): with `snapshots_in_storage`, its bytes are released
    /// once this is acknowledged and the service installed it.
    snapshot_seq: Option<u64>,
    /// An `Output::LoadSnapshot` is unanswered.
    snapshot_loading: bool,

    /// Next persist sequence number to issue; every number below was issued.
    next_seq: u64,
    /// Highest sequence number acknowledged durable.
    acked_seq: u64,
    /// The hard state last handed to storage.
    persisted_hard: HardState,
    /// Changes of this step not yet handed to storage: the log from this index on.
    unpersisted_from: Option<Index>,
    truncate_from: Option<Index>,
    /// Responses waiting for a persist: `(seq that must be acknowledged first, message)`.
    held: VecDeque<(u64, Message)>,

    reported: (Role, Term, Option<NodeId>),
    /// The configuration last reported in `MembershipChanged` (index, membership, committed),
    /// and the history's version then.
    reported_membership: (Index, Membership, bool),
    reported_config_version: u64,
    ignored: Ignored,
}

impl Node {
    /// A node from its configuration and what storage recovered (`Restored::default()` for a
    /// fresh node). Refuses a recovered state that Raft could not have produced.
    pub fn new(cfg: Config, restored: Restored) -> Result<Node, RestoreError> {
        validate_restored(&restored)?;
        let Restored { hard_state, snapshot, entries } = restored;
        let mut rng = Rng::new(cfg.seed() ^ cfg.id().0.wrapping_mul(0xA24B_AED4_963E_E407));
        let election_timeout = rng.range(cfg.election_ticks_min(), cfg.election_ticks_max());
        let mut log = RaftLog::restored(snapshot, entries, hard_state.commit, cfg.bootstrap_membership())
            .map_err(|index| RestoreError::BadConfigEntry { index })?;
        log.no_rollback = cfg.has_bug(PlantedBug::NoConfigRollback);
        let reported_membership =
            (log.membership_index(), log.membership().clone(), log.membership_index() <= log.commit());
        let reported_config_version = log.config_version();
        let persisted_hard = HardState { commit: log.commit(), ..hard_state };
        Ok(Node {
            rng,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            election_elapsed: 0,
            election_timeout,
            heartbeat_elapsed: 0,
            tally: Tally::default(),
            self_vote_seq: None,
            progress: BTreeMap::new(),
            reads: Reads::default(),
            lease: Lease {
                quiet_after_start: cfg.lease_drift_permille().is_some()
                    && !cfg.has_bug(PlantedBug::LeaseForgetsRestart),
                ..Lease::default()
            },
            transfer: None,
            incoming: None,
            snapshot_unpersisted: false,
            snapshot_apply_after: None,
            snapshot_seq: None,
            snapshot_loading: false,
            next_seq: 1,
            acked_seq: 0,
            persisted_hard,
            unpersisted_from: None,
            truncate_from: None,
            held: VecDeque::new(),
            reported: (Role::Follower, hard_state.term, None),
            reported_membership,
            reported_config_version,
            ignored: Ignored::default(),
            cfg,
        })
    }

    /// Feeds one input; returns what to do.
    #[must_use]
    pub fn step(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.step_into(input, &mut out);
        out
    }

    /// Feeds one input, appending what to do to `out` (which is not cleared), so a driver can
    /// reuse one buffer.
    pub fn step_into(&mut self, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Tick => {
                self.log.free_garbage(GARBAGE_PER_TICK);
                self.tick_lease();
                self.tick(out)
            }
            Input::Message(m) => self.step_message(m, out),
            Input::Propose(p) => self.propose(core::iter::once(p), out),
            Input::ProposeBatch(ps) => self.propose(ps.into_iter(), out),
            Input::Persisted { up_to } => self.persisted(up_to, out),
            Input::Campaign => {
                // With leases, a follower that hears a leader (or just started) must not
                // help elect another: the leader may be serving reads from its lease.
                let leased = self.leases() && self.role != Role::Leader && self.in_lease();
                if !self.promotable() || leased {
                    self.ignored.bad_campaign += 1;
                } else if self.role != Role::Leader {
                    self.start_election(out);
                }
            }
            Input::Read { id } => self.read(id, out),
            Input::TransferLeadership { to } => self.transfer_leadership(to, out),
            Input::ChangeMembership(change) => self.change_membership(change, out),
            Input::Snapshot { index, data } => self.compact(index, data),
            Input::SnapshotLoaded(snapshot) => self.snapshot_loaded(snapshot, out),
        }
        self.finish_step(out);
    }

    /// Read-only status.
    pub fn view(&self) -> View {
        View {
            id: self.cfg.id(),
            term: self.term,
            vote: self.vote,
            role: self.role,
            leader: self.leader,
            commit: self.log.commit(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            durable: self.log.durable(),
            snapshot_index: self.log.snapshot_index(),
            transferring_to: self.transfer.map(|t| t.to),
            pending_reads: self.reads.pending.len(),
            lease_reads: self.lease.served,
            membership: self.log.membership().clone(),
            membership_index: self.log.membership_index(),
            membership_committed: self.log.membership_index() <= self.log.commit(),
            ignored: self.ignored,
        }
    }

    /// How many `Tick`s until one can do anything (at least 1): the ticks before it only
    /// advance counters and emit nothing. A driver with nothing else to deliver may sleep
    /// that many tick lengths, then deliver every tick that elapsed (an idle node then wakes
    /// once per heartbeat interval instead of once per tick). Conservative: 1 while a
    /// leadership transfer or a paced commit notice is pending, or when any step would emit
    /// something now (entries to apply, a role to report: a node just restored).
    pub fn ticks_until_due(&self) -> u32 {
        if self.output_pending() || self.log.has_garbage() {
            return 1;
        }
        if self.role == Role::Leader {
            if self.transfer.is_some() || self.progress.values().any(|p| p.commit_notice.deferred) {
                return 1;
            }
            let heartbeat = self.cfg.heartbeat_ticks().saturating_sub(self.heartbeat_elapsed);
            let quorum_check = self.cfg.election_ticks_min().saturating_sub(self.election_elapsed);
            heartbeat.min(quorum_check).max(1)
        } else {
            self.election_timeout.saturating_sub(self.election_elapsed).max(1)
        }
    }

    /// Whether the next step emits something whatever its input: what `finish_step` would
    /// hand out (applies, an installed snapshot, held messages now durable, a role change).
    fn output_pending(&self) -> bool {
        let applicable = self.log.commit().min(self.log.durable());
        (applicable > self.log.applied() && self.log.applied() >= self.log.snapshot_index())
            || self.snapshot_apply_after.is_some_and(|s| s <= self.acked_seq)
            || self.held.front().is_some_and(|(need, _)| *need <= self.acked_seq)
            || (self.role, self.term, self.leader) != self.reported
    }

    /// Reads answered from the lease since this node started (as `View::lease_reads`).
    pub fn lease_reads(&self) -> u64 {
        self.lease.served
    }

    /// The in-memory log, read-only (for status pages, tests and checkers).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The configuration this node runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The leader's replication state of `peer`, if this node leads.
    pub fn progress(&self, peer: NodeId) -> Option<&Progress> {
        self.progress.get(&peer)
    }

    /// The configuration this node acts on: the latest in its log, committed or not.
    pub(crate) fn membership(&self) -> &Membership {
        self.log.membership()
    }

    /// Whether this node may campaign: it votes in its latest configuration, or in the
    /// latest one it knows committed (its removal is not committed yet: were it barred, a
    /// leader that removed itself and restarted before the removal reached the new voters
    /// would leave them stuck without the entry, and unable to win with their shorter logs).
    /// Votes are counted in the latest configuration either way. Learners, removed nodes that
    /// know their removal committed, and nodes waiting to join never campaign.
    fn promotable(&self) -> bool {
        let me = self.cfg.id();
        let committed = || self.log.membership_at(self.log.commit()).1.is_voter(me);
        self.membership().is_voter(me) || (!self.cfg.has_bug(PlantedBug::LatestOnlyCampaign) && committed())
    }

    /// The configuration quorums are counted in: the latest (see `PlantedBug` for the
    /// wrong ones the simulator plants).
    pub(crate) fn counting(&self) -> Membership {
        let m = self.membership();
        if self.cfg.has_bug(PlantedBug::IncomingOnlyQuorum) && m.is_joint() {
            return m.leave_joint();
        }
        m.clone()
    }

    /// The other voters (incoming and outgoing): whom an election asks.
    fn voter_peers(&self) -> Vec<NodeId> {
        let (me, m) = (self.cfg.id(), self.membership());
        m.members().filter(|id| *id != me && m.is_voter(*id)).collect()
    }

    /// Leader: whom it replicates to, in order.
    fn followers(&self) -> Vec<NodeId> {
        self.progress.keys().copied().collect()
    }

    fn tick(&mut self, out: &mut Vec<Output>) {
        self.election_elapsed += 1;
        if self.role == Role::Leader {
            self.tick_transfer();
            if self.role != Role::Leader {
                return; // a removed leader whose hand-over gave up stepped down
            }
            self.tick_departing();
            self.tick_commit_notice(out);
            self.heartbeat_elapsed += 1;
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks() {
                self.heartbeat_elapsed = 0;
                self.broadcast_heartbeat(out);
            }
            if self.election_elapsed >= self.cfg.election_ticks_min() {
                self.election_elapsed = 0;
                self.check_quorum();
            }
        } else if self.election_elapsed >= self.election_timeout {
            if self.promotable() {
                self.start_election(out);
            } else {
                // Not a voter: it waits, silent, for a leader (or to learn it is a voter),
                // forgetting the one it no longer hears, so that it neither points clients
                // at it nor keeps a lease for it.
                self.leader = None;
                self.reset_election_timer();
            }
        }
    }

    fn propose(&mut self, proposals: impl Iterator<Item = Proposal>, out: &mut Vec<Output>) {
        if self.role != Role::Leader || self.transfer.is_some() {
            let reason = match self.transfer {
                Some(t) if self.role == Role::Leader => DropReason::Transferring { to: t.to },
                _ => DropReason::NotLeader { hint: self.leader },
            };
            out.extend(proposals.map(|p| Output::ProposalDropped { id: p.id, reason }));
            return;
        }
        let mut any = false;
        let max = self.cfg.max_entry_bytes();
        for p in proposals {
            if p.data.len() > max {
                out.push(Output::ProposalDropped { id: p.id, reason: DropReason::TooLarge { len: p.data.len(), max } });
                continue;
            }
            let index = self.log.last_index().next();
            self.append_local(Entry { term: self.term, index, kind: EntryKind::Command, data: p.data });
            out.push(Output::Accepted { id: p.id, index, term: self.term });
            any = true;
        }
        if any {
            self.broadcast_append(false, out);
        }
    }

    /// Leader: appends one entry of its own to the log and to this step's persist.
    fn append_local(&mut self, entry: Entry) {
        self.note_unpersisted(entry.index);
        self.log.append(entry);
    }

    /// The log from `from` on changed in this step and must reach storage.
    fn note_unpersisted(&mut self, from: Index) {
        self.unpersisted_from = Some(self.unpersisted_from.map_or(from, |f| f.min(from)));
    }

    fn persisted(&mut self, up_to: u64, out: &mut Vec<Output>) {
        if up_to >= self.next_seq {
            self.ignored.bad_persisted += 1;
            return;
        }
        if up_to <= self.acked_seq {
            return;
        }
        self.acked_seq = up_to;
        let moved = self.log.persisted(up_to);
        match self.role {
            Role::Candidate if self.self_vote_seq.is_some_and(|s| s <= up_to) => {
                self.self_vote_seq = None;
                self.tally.record(self.cfg.id(), true);
                self.check_election(out);
            }
            Role::Leader if moved => self.maybe_commit(out),
            _ => {}
        }
    }

    /// Reports the configuration if it changed, or became committed, since last reported.
    fn report_membership(&mut self, out: &mut Vec<Output>) {
        let (index, committed) = (self.log.membership_index(), self.log.membership_index() <= self.log.commit());
        let version = self.log.config_version();
        if version == self.reported_config_version
            && (index, committed) == (self.reported_membership.0, self.reported_membership.2)
        {
            return;
        }
        self.reported_config_version = version;
        let now = (index, self.log.membership().clone(), committed);
        if now != self.reported_membership {
            self.reported_membership = now.clone();
            out.push(Output::MembershipChanged { index: now.0, membership: now.1, committed: now.2 });
        }
    }

    /// Moves to `term` (if higher) as a follower of `leader`. Resets the election timer.
    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.tally.clear();
        self.self_vote_seq = None;
        self.progress.clear();
        self.transfer = None;
        self.reset_election_timer();
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout = self.rng.range(self.cfg.election_ticks_min(), self.cfg.election_ticks_max());
    }

    /// Queues a message. Responses are held until every persist issued so far (including
    /// this step's, if any) is acknowledged: they promise our term, vote or log is durable.
    fn send(&mut self, to: NodeId, body: MessageBody, out: &mut Vec<Output>) {
        let msg = Message { from: self.cfg.id(), to, term: self.term, body };
        if msg.body.is_response() {
            let need = if self.step_dirty() { self.next_seq } else { self.next_seq - 1 };
            if need > self.acked_seq {
                self.held.push_back((need, msg));
                return;
            }
        }
        out.push(Output::Send(msg));
    }

    fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.commit() }
    }

    /// Whether this step changed something that must reach storage. A commit-only change
    /// does not: the commit index rides along with the next persist.
    fn step_dirty(&self) -> bool {
        self.unpersisted_from.is_some()
            || self.snapshot_unpersisted
            || self.truncate_from.is_some()
            || self.term != self.persisted_hard.term
            || self.vote != self.persisted_hard.vote
    }

    /// End of every step: one persist for all of this step's changes, held responses whose
    /// persist is acknowledged, applies, and a role report.
    fn finish_step(&mut self, out: &mut Vec<Output>) {
        if self.step_dirty() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let hs = self.hard_state();
            let hard_state = (hs != self.persisted_hard).then_some(hs);
            self.persisted_hard = hs;
            self.log.note_persist(seq);
            if self.snapshot_unpersisted && self.log.applied() < self.log.snapshot_index() {
                self.snapshot_apply_after = Some(seq);
            }
            if self.snapshot_unpersisted {
                self.snapshot_seq = Some(seq);
            }
            out.push(Output::Persist(Persist {
                seq,
                snapshot: if core::mem::take(&mut self.snapshot_unpersisted) {
                    self.log.snapshot().cloned()
                } else {
                    None
                },
                hard_state,
                truncate_from: self.truncate_from.take(),
                entries: match self.unpersisted_from.take() {
                    Some(from) => {
                        self.log.range(from.max(self.log.snapshot_index().next()), self.log.last_index()).to_vec()
                    }
                    None => Vec::new(),
                },
            }));
        }
        while let Some((need, _)) = self.held.front() {
            if *need > self.acked_seq {
                break;
            }
            let (_, msg) = self.held.pop_front().expect("front exists");
            out.push(Output::Send(msg));
        }
        if self.role != Role::Leader && (!self.reads.pending.is_empty() || self.reads.round > 0) {
            self.drop_reads(out);
        }
        if self.snapshot_apply_after.is_some_and(|s| s <= self.acked_seq) {
            self.snapshot_apply_after = None;
            if let Some(s) = self.log.snapshot() {
                out.push(Output::ApplySnapshot(s.clone()));
            }
            self.log.snapshot_applied();
        }
        self.maybe_release_snapshot();
        if let Some(entries) = self.log.take_applicable() {
            out.push(Output::Apply(entries));
        }
        let now = (self.role, self.term, self.leader);
        if now != self.reported {
            self.reported = now;
            out.push(Output::RoleChanged { role: now.0, term: now.1, leader: now.2 });
        }
        self.report_membership(out);
        debug_assert!(self.log.applied() <= self.log.commit());
    }
}

/// Refuses a restored state Raft could not have produced. A vote may name any node (one
/// added in a configuration this node never received); `Config` entries are checked as the
/// log is built.
fn validate_restored(r: &Restored) -> Result<(), RestoreError> {
    let (base, mut prev_term) = r.snapshot.as_ref().map_or((Index(0), Term(0)), |s| (s.meta.index, s.meta.term));
    if let Some(s) = &r.snapshot {
        if s.meta.term > r.hard_state.term {
            return Err(RestoreError::SnapshotAboveTerm { meta: s.meta.clone() });
        }
        if s.meta.membership.is_empty() || s.meta.membership_index > s.meta.index {
            return Err(RestoreError::BadSnapshotMembership { meta: s.meta.clone() });
        }
    }
    for (k, e) in r.entries.iter().enumerate() {
        let expected = Index(base.0 + k as u64 + 1);
        if e.index != expected {
            return Err(RestoreError::Gap { expected, found: e.index });
        }
        if e.term < prev_term {
            return Err(RestoreError::TermDecreases { index: e.index });
        }
        if e.term > r.hard_state.term {
            return Err(RestoreError::EntryAboveTerm { index: e.index, entry_term: e.term, term: r.hard_state.term });
        }
        prev_term = e.term;
    }
    Ok(())
}
