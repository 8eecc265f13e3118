//! Safety invariants of Raft (Figure 3 of the paper), checked after every simulator event,
//! plus the durability promises of persistence gating and "nothing acknowledged is lost".
//!
//! The checker sees each node's in-memory log and view, its durable state as the simulated
//! disk holds it, and every output. It never trusts the core's own bookkeeping.

mod configs;

use std::collections::BTreeMap;
use std::fmt;

pub use configs::{config_at, decode as decode_config, is_quorum, quorums_intersect};

use bytes::Bytes;
use skiff_core::{
    AppendResult, Entry, EntryKind, HardState, Index, Membership, Message, MessageBody, Node, NodeId, Persist,
    Restored, Role, Snapshot, Term,
};

/// What a node's disk holds in the simulation: only acknowledged persists reach it.
#[derive(Clone, Debug, Default, Hash)]
pub struct Durable {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Contiguous, right after the snapshot (or from index 1).
    pub log: Vec<Entry>,
}

impl Durable {
    /// Applies one persist record, as a real storage must (see `skiff_core::Persist`).
    pub fn apply(&mut self, p: &Persist) {
        if let Some(s) = &p.snapshot {
            let covered = s.meta.index;
            self.log.retain(|e| e.index > covered);
            self.snapshot = Some(s.clone());
        }
        if let Some(t) = p.truncate_from {
            self.log.retain(|e| e.index < t);
        }
        if let Some(first) = p.entries.first() {
            self.log.retain(|e| e.index < first.index);
            assert_eq!(self.last_index().next(), first.index, "persist seq {} leaves a gap in the durable log", p.seq);
            self.log.extend(p.entries.iter().cloned());
        }
        if let Some(hs) = p.hard_state {
            self.hard_state = hs;
        }
    }

    /// The index the stored snapshot covers (0 without one).
    pub fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(Index(0), |s| s.meta.index)
    }

    pub fn last_index(&self) -> Index {
        self.log.last().map_or(self.snapshot_index(), |e| e.index)
    }

    /// The term at `index`, if stored as an entry or as the snapshot's last entry.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index.0 == 0 {
            return Some(Term(0));
        }
        let base = self.snapshot_index();
        if index == base {
            return self.snapshot.as_ref().map(|s| s.meta.term);
        }
        if index < base {
            return None;
        }
        self.log.get((index.0 - base.0 - 1) as usize).map(|e| e.term)
    }

    /// Whether this disk holds the entry (`index`, `term`), counting a snapshot that covers
    /// it (snapshots cover committed entries only).
    pub fn holds(&self, index: Index, term: Term) -> bool {
        index <= self.snapshot_index() || self.term_at(index) == Some(term)
    }

    /// What a restart recovers.
    pub fn restored(&self) -> Restored {
        Restored { hard_state: self.hard_state, snapshot: self.snapshot.clone(), entries: self.log.clone() }
    }

    /// Bytes of Raft state on this disk besides the snapshot's data (the lab's `RaftStateSize`):
    /// hard state and log entries as postcard-encoded records.
    pub fn raft_state_size(&self) -> usize {
        let size = |v: &dyn erased::Encode| v.encoded_len();
        size(&self.hard_state) + self.log.iter().map(|e| size(e)).sum::<usize>()
    }
}

mod erased {
    /// postcard's encoded length of a value.
    pub trait Encode {
        fn encoded_len(&self) -> usize;
    }
    impl<T: serde::Serialize> Encode for T {
        fn encoded_len(&self) -> usize {
            postcard::to_allocvec(self).map_or(0, |v| v.len())
        }
    }
}

/// The simulated service's state: a running digest of every applied entry. Equal digests at
/// an index mean equal histories up to it.
pub fn fold_digest(state: u64, e: &Entry) -> u64 {
    let mut h = state;
    let mut eat = |b: u8| h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    for b in e.index.0.to_le_bytes().iter().chain(e.term.0.to_le_bytes().iter()).chain(e.data.iter()) {
        eat(*b);
    }
    h
}

/// The digest of the empty history.
pub const EMPTY_DIGEST: u64 = 0xcbf2_9ce4_8422_2325;

/// Which invariant broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    ElectionSafety,
    LeaderAppendOnly,
    LogMatching,
    LeaderCompleteness,
    StateMachineSafety,
    CommittedNotDurableOnMajority,
    ResponseBeforeDurable,
    AcknowledgedLost,
    /// A snapshot (taken or installed) differs from the committed history at its index.
    SnapshotMismatch,
    /// A read answered with an index below a commit that happened before the read was issued.
    StaleRead,
    /// The KV history has no linearization.
    NotLinearizable,
    /// A snapshot chunk was sent as a copy rather than a slice of the leader's snapshot.
    SnapshotCopied,
    /// The event queue grew past any plausible bound: nodes answer messages with more
    /// messages without end (a livelock that would also hang the sweep).
    MessageStorm,
    /// A tick before the one `Node::ticks_until_due` announced produced output (a driver
    /// that sleeps until then would have delayed it).
    EarlyTick,
    Liveness,
    /// A node does not act on the latest configuration in its log.
    ConfigNotLatest,
    /// A log holds more than one configuration entry that is not committed.
    UncommittedConfigs,
    /// A leader appended a configuration while the one before was not committed (or was
    /// joint), or before it committed an entry of its own term.
    ConfigGuard,
    /// Two successive configurations have quorums that do not intersect.
    ConfigQuorumsDisjoint,
    /// A node leads a term without the votes of a quorum of its configuration.
    ElectedWithoutQuorum,
    /// A node that is no voter of its configuration asked for votes.
    NonVoterCampaigned,
    /// A snapshot names another configuration than the committed history has at its index.
    SnapshotMembership,
    /// Two KV services hold different states at the same applied index.
    ReplicasDiverge,
}

/// A broken invariant, with enough context to start debugging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.invariant, self.detail)
    }
}

impl std::error::Error for Violation {}

fn violation(invariant: Invariant, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

/// One committed entry of the canonical history.
#[derive(Clone, Debug)]
struct Committed {
    term: Term,
    kind: EntryKind,
    data: Bytes,
    /// The term of the node that first reported it committed: an upper bound on the term in
    /// which it was committed.
    seen_in_term: Term,
    /// The service state after applying everything up to here.
    digest: u64,
}

/// The checker's memory of a run.
#[derive(Clone, Debug, Default)]
pub struct Checker {
    configs: configs::Configs,
    leaders: BTreeMap<Term, NodeId>,
    /// (index, term) -> (term of the previous entry, payload): Log Matching holds iff every
    /// entry ever written anywhere agrees with this map.
    entries: BTreeMap<(Index, Term), (Term, EntryKind, Bytes)>,
    canonical: Vec<Committed>,
    /// Per node: how far its commit index was checked, and how far it applied (this lifetime).
    checked_commit: BTreeMap<NodeId, Index>,
    applied: BTreeMap<NodeId, Index>,
    /// Leaders' last index in their term, for append-only.
    pub checks: u64,
    /// Snapshots carry the state digest then an opaque payload (the KV state), instead of
    /// the digest repeated.
    pub opaque_snapshot_tail: bool,
}

impl Checker {
    /// A checker for a cluster bootstrapped with `initial` (every node, unless registered
    /// otherwise with [`Checker::register`]).
    pub fn new(initial: Membership) -> Checker {
        let mut c = Checker::default();
        c.configs.initial = initial;
        c
    }

    /// Node `id` bootstraps with `bootstrap` (the empty configuration for a joiner).
    pub fn register(&mut self, id: NodeId, bootstrap: Membership) {
        self.configs.bootstrap.insert(id, bootstrap);
    }

    /// Stops checking `invariant` (a test that plants a bug, to see what it leads to next).
    pub fn mute(&mut self, invariant: Invariant) {
        self.configs.muted.insert(invariant);
    }

    /// The canonical committed history, as (term, kind, payload).
    pub fn committed(&self) -> impl Iterator<Item = (Index, Term, &Bytes)> + '_ {
        self.canonical.iter().enumerate().map(|(k, c)| (Index(k as u64 + 1), c.term, &c.data))
    }

    /// The committed command at `index` in the canonical history.
    pub fn committed_at(&self, index: Index) -> Option<&Bytes> {
        self.canonical.get((index.0 as usize).checked_sub(1)?).map(|c| &c.data)
    }

    /// The latest configuration of the committed history and its index (the initial one, at
    /// 0, before any).
    pub fn latest_committed_config(&self) -> (Index, Membership) {
        self.configs.committed.last().cloned().unwrap_or_else(|| (Index(0), self.configs.initial.clone()))
    }

    /// Configurations the committed history holds (written down or changed), and how many of
    /// them are joint.
    pub fn configs_committed(&self) -> (u64, u64) {
        let c = &self.configs.committed;
        (c.len() as u64, c.iter().filter(|(_, m)| m.is_joint()).count() as u64)
    }

    pub fn committed_len(&self) -> u64 {
        self.canonical.len() as u64
    }

    /// Hashes the ghost history (leaders per term, every entry ever written, the committed
    /// history, and how far each node was checked) for the explorer's deduplication.
    pub fn fingerprint<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        self.leaders.hash(h);
        for ((index, term), (prev, kind, _)) in &self.entries {
            (index, term, prev, kind).hash(h);
        }
        for c in &self.canonical {
            (c.term, c.kind, c.seen_in_term, c.digest).hash(h);
        }
        self.checked_commit.hash(h);
        self.applied.hash(h);
        self.configs.committed.hash(h);
    }

    /// A node restarted: its applied sequence starts again from its snapshot (if any).
    pub fn restarted(&mut self, id: NodeId, snapshot_index: Index) {
        self.applied.insert(id, snapshot_index);
        self.checked_commit.insert(id, snapshot_index);
        self.configs.latest.remove(&id);
    }

    /// The service state digest after applying the committed history up to `index`.
    pub fn digest_at(&self, index: Index) -> Option<u64> {
        if index.0 == 0 {
            return Some(EMPTY_DIGEST);
        }
        self.canonical.get(index.0 as usize - 1).map(|c| c.digest)
    }

    fn check_snapshot(&self, id: NodeId, s: &Snapshot, what: &str) -> Result<(), Violation> {
        let index = s.meta.index;
        let Some(c) = self.canonical.get(index.0 as usize - 1) else {
            return violation(
                Invariant::SnapshotMismatch,
                format!("{id} {what} a snapshot at uncommitted index {}", index.0),
            );
        };
        let digest = c.digest.to_le_bytes();
        // The digest leads; the rest is the digest repeated (so a reassembly error shows), or
        // the KV state, which the linearizability check covers.
        let whole = s.data.len() >= 8
            && s.data[..8] == digest
            && (self.opaque_snapshot_tail || (s.data.len().is_multiple_of(8) && s.data.chunks(8).all(|w| w == digest)));
        if c.term != s.meta.term || !whole {
            return violation(
                Invariant::SnapshotMismatch,
                format!("{id} {what} a snapshot at index {} that differs from the committed state there", index.0),
            );
        }
        Ok(())
    }

    /// Checks one node after it stepped. `disks` holds every node's durable state (for the
    /// majority check); `outputs` are what the step returned.
    pub fn after_step(
        &mut self,
        node: &Node,
        disks: &BTreeMap<NodeId, &Durable>,
        outputs: &[skiff_core::Output],
    ) -> Result<(), Violation> {
        self.checks += 1;
        let view = node.view();
        let id = view.id;
        let log = node.log();
        let mut new_leader = false;
        // Election Safety: at most one leader per term.
        if view.role == Role::Leader {
            match self.leaders.get(&view.term) {
                Some(other) if *other != id => {
                    return violation(
                        Invariant::ElectionSafety,
                        format!("{id} and {other} both lead term {}", view.term.0),
                    )
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(view.term, id);
                    new_leader = true;
                    // Leader Completeness: a new leader holds every entry committed in an
                    // earlier term.
                    for (k, c) in self.canonical.iter().enumerate() {
                        let index = Index(k as u64 + 1);
                        if c.seen_in_term < view.term
                            && index > log.snapshot_index()
                            && log.term_at(index) != Some(c.term)
                        {
                            return violation(
                                Invariant::LeaderCompleteness,
                                format!(
                                    "{id} leads term {} without committed entry {} of term {}",
                                    view.term.0, index.0, c.term.0
                                ),
                            );
                        }
                    }
                }
            }
        }
        let disk = disks[&id];
        for out in outputs {
            match out {
                skiff_core::Output::Persist(p) => self.check_persist(node, p)?,
                skiff_core::Output::Send(m) => check_send_durable(m, node, disk)?,
                _ => {}
            }
        }
        let config = self.derive_config(node, outputs);
        self.check_commit(node, disks, &config.1)?;
        self.check_configs(node, disks, outputs, &config, new_leader)?;
        for out in outputs {
            match out {
                skiff_core::Output::Apply(entries) => self.check_apply(id, entries)?,
                skiff_core::Output::ApplySnapshot(s) => {
                    self.check_snapshot(id, s, "installs")?;
                    let applied = self.applied.entry(id).or_insert(Index(0));
                    if s.meta.index <= *applied {
                        return violation(
                            Invariant::StateMachineSafety,
                            format!("{id} installs a snapshot at {} after applying {}", s.meta.index.0, applied.0),
                        );
                    }
                    *applied = s.meta.index;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_persist(&mut self, node: &Node, p: &Persist) -> Result<(), Violation> {
        let view = node.view();
        let id = view.id;
        if let Some(s) = &p.snapshot {
            self.check_snapshot(id, s, "persists")?;
        }
        if view.role == Role::Leader && p.truncate_from.is_some() {
            return violation(
                Invariant::LeaderAppendOnly,
                format!("leader {id} of term {} truncates its log at {:?}", view.term.0, p.truncate_from),
            );
        }
        for e in &p.entries {
            let prev_term = node.log().term_at(e.index.prev());
            let Some(current) = node.log().entry(e.index) else {
                // Overwritten again within the same step; what stays is checked instead.
                continue;
            };
            if current.term != e.term {
                continue;
            }
            let prev_term = prev_term.expect("an entry's predecessor is in the log");
            let record = (prev_term, e.kind, e.data.clone());
            match self.entries.get(&(e.index, e.term)) {
                None => {
                    self.entries.insert((e.index, e.term), record);
                }
                Some(seen) if *seen == record => {}
                Some(seen) => {
                    return violation(
                        Invariant::LogMatching,
                        format!(
                            "{id} holds entry {} of term {} with previous term {} and {} payload bytes; elsewhere previous term {} and {} bytes",
                            e.index.0, e.term.0, prev_term.0, e.data.len(), seen.0 .0, seen.2.len()
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Commits the node reports for the first time must be durable on a quorum of its
    /// configuration `config`.
    fn check_commit(
        &mut self,
        node: &Node,
        disks: &BTreeMap<NodeId, &Durable>,
        config: &Membership,
    ) -> Result<(), Violation> {
        let view = node.view();
        let id = view.id;
        let from = self.checked_commit.get(&id).copied().unwrap_or(Index(0));
        if view.commit <= from {
            return Ok(());
        }
        for i in from.0 + 1..=view.commit.0 {
            let index = Index(i);
            let Some(e) = node.log().entry(index) else {
                // Inside the node's snapshot: checked against the history when it arrived.
                assert!(index <= node.log().snapshot_index(), "{id} calls {i} committed without holding it");
                continue;
            };
            if let Some(c) = self.canonical.get(i as usize - 1) {
                if c.term != e.term || c.data != e.data || c.kind != e.kind {
                    return violation(
                        Invariant::StateMachineSafety,
                        format!(
                            "{id} commits index {i} with term {}, but term {} was committed there",
                            e.term.0, c.term.0
                        ),
                    );
                }
                continue;
            }
            // First time anyone commits index i: it must be durable on a quorum of the
            // committing node's configuration (of both sets, while joint).
            let holds = |v: NodeId| disks.get(&v).is_some_and(|d| d.holds(index, e.term));
            if !is_quorum(config, holds) {
                let holders: Vec<NodeId> = disks.keys().copied().filter(|v| holds(*v)).collect();
                return violation(
                    Invariant::CommittedNotDurableOnMajority,
                    format!(
                        "{id} commits index {i} (term {}) held durably only by {holders:?}, no quorum of {config}",
                        e.term.0
                    ),
                );
            }
            self.note_committed(e)?;
            let digest = fold_digest(self.digest_at(index.prev()).expect("history is contiguous"), e);
            self.canonical.push(Committed {
                term: e.term,
                kind: e.kind,
                data: e.data.clone(),
                seen_in_term: view.term,
                digest,
            });
        }
        self.checked_commit.insert(id, view.commit);
        Ok(())
    }

    /// Leader Completeness for leaders that exist when new entries commit.
    pub fn check_leaders_hold_committed(&self, node: &Node) -> Result<(), Violation> {
        let view = node.view();
        if view.role != Role::Leader {
            return Ok(());
        }
        for (k, c) in self.canonical.iter().enumerate().rev().take(64) {
            let index = Index(k as u64 + 1);
            if c.seen_in_term < view.term
                && index > node.log().snapshot_index()
                && node.log().term_at(index) != Some(c.term)
            {
                return violation(
                    Invariant::LeaderCompleteness,
                    format!("leader {} of term {} lacks committed entry {}", view.id, view.term.0, index.0),
                );
            }
        }
        Ok(())
    }

    fn check_apply(&mut self, id: NodeId, entries: &[Entry]) -> Result<(), Violation> {
        let applied = self.applied.entry(id).or_insert(Index(0));
        for e in entries {
            if e.index != applied.next() {
                return violation(
                    Invariant::StateMachineSafety,
                    format!("{id} applies index {} after {}", e.index.0, applied.0),
                );
            }
            match self.canonical.get(e.index.0 as usize - 1) {
                Some(c) if c.term == e.term && c.data == e.data => {}
                _ => {
                    return violation(
                        Invariant::StateMachineSafety,
                        format!(
                            "{id} applies index {} (term {}) that differs from the committed history",
                            e.index.0, e.term.0
                        ),
                    )
                }
            }
            *applied = e.index;
        }
        Ok(())
    }
}

/// A response may only leave once what it promises is on the responder's disk.
fn check_send_durable(m: &Message, node: &Node, disk: &Durable) -> Result<(), Violation> {
    let id = m.from;
    let hs = disk.hard_state;
    if m.term < node.view().term {
        // Released after the node moved on to a newer term; what it promised then may since
        // have been superseded on disk. The term, at least, must be durable.
        return if hs.term < m.term {
            violation(
                Invariant::ResponseBeforeDurable,
                format!("{id} sent {} with term {} above durable {}", m.body.name(), m.term.0, hs.term.0),
            )
        } else {
            Ok(())
        };
    }
    let broken = |what: String| {
        violation(Invariant::ResponseBeforeDurable, format!("{id} sent {} to {}: {what}", m.body.name(), m.to))
    };
    match &m.body {
        MessageBody::PreVoteResponse { granted: true } => Ok(()),
        MessageBody::VoteResponse { granted: true } => {
            if hs.term != m.term || hs.vote != Some(m.to) {
                return broken(format!(
                    "durable term {} vote {:?}, promised term {} vote {}",
                    hs.term.0, hs.vote, m.term.0, m.to
                ));
            }
            Ok(())
        }
        MessageBody::AppendResponse(AppendResult::Success { match_index }) => {
            if hs.term < m.term {
                return broken(format!("durable term {} below {}", hs.term.0, m.term.0));
            }
            let mem = node.log().term_at(*match_index);
            let covered = *match_index <= disk.snapshot_index();
            let durable = match (disk.term_at(*match_index), mem) {
                (Some(d), Some(m)) => d == m,
                // Compacted in memory since (a snapshot of committed state covers it).
                (Some(_), None) => *match_index <= node.log().snapshot_index(),
                (None, _) => false,
            };
            if !covered && !durable {
                return broken(format!("match {} not durable (disk holds {} entries)", match_index.0, disk.log.len()));
            }
            Ok(())
        }
        body if body.is_response() => {
            if hs.term < m.term {
                return broken(format!("durable term {} below {}", hs.term.0, m.term.0));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
