//! The core's boundary: every stimulus is an [`Input`], every effect an [`Output`].
//! Both enums are exhaustive on purpose: a new variant breaks every driver's `match`.

use alloc::vec::Vec;
use bytes::Bytes;

use crate::membership::{ChangeRefused, Membership, MembershipChange};
use crate::message::Message;
use crate::types::{Entry, HardState, Index, NodeId, Snapshot, SnapshotMeta, Term};

/// One stimulus for [`crate::Node::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// One logical clock tick. The driver maps ticks to wall time.
    Tick,
    /// A message received from a peer. Stale, stray or malformed messages are ignored and
    /// counted in [`View::ignored`], never an error.
    Message(Message),
    /// Propose one command. The leader answers with [`Output::Accepted`], anyone else with
    /// [`Output::ProposalDropped`].
    Propose(Proposal),
    /// Propose several commands at once; they are appended in order and replicated together.
    ProposeBatch(Vec<Proposal>),
    /// Propose a change of the configuration (leader only; one at a time, and only once the
    /// leader has committed an entry of its term). Answered like a proposal: `Accepted` with
    /// the index of its `Config` entry, whose commit [`Output::MembershipChanged`] reports,
    /// or `ProposalDropped` with [`DropReason::Membership`] saying why. A change of more than
    /// one voter goes through a joint configuration, left automatically once committed.
    ChangeMembership(MembershipChange),
    /// Every `Persist` with `seq <= up_to` is durable.
    Persisted { up_to: u64 },
    /// Start an election now (pre-vote first when enabled), as if the timer had fired.
    Campaign,
    /// A linearizable read (ReadIndex): the leader confirms it still leads with a heartbeat
    /// round, then answers [`Output::ReadReady`]; the service serves the read once it has
    /// applied that index. Elsewhere: [`Output::ReadDropped`].
    Read { id: u64 },
    /// Hand leadership to `to`: the leader stops accepting proposals, brings `to` up to
    /// date and tells it to campaign at once. Abandoned after an election timeout.
    TransferLeadership { to: NodeId },
    /// The service's snapshot of its state after applying every entry up to `index` (the
    /// lab's `Snapshot(index, data)`): the core compacts its log up to there and persists the
    /// snapshot. An index not above the current snapshot, or above what was applied, is
    /// refused (counted in [`Ignored::bad_snapshot`]).
    Snapshot { index: Index, data: Bytes },
    /// The stored snapshot, read back for an [`Output::LoadSnapshot`] (or `None`: storage
    /// holds none). One that is not the node's current snapshot is ignored (counted in
    /// [`Ignored::stale_snapshot_load`]); the node asks again when it still needs one.
    SnapshotLoaded(Option<Snapshot>),
}

/// A command to replicate, with an id chosen by the proposer to match the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub id: u64,
    pub data: Bytes,
}

/// One effect of a step, to be carried out by the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this message now. Delivery may fail; Raft tolerates loss.
    Send(Message),
    /// Make this record durable, then report `Input::Persisted { up_to: seq }`.
    Persist(Persist),
    /// Committed, locally durable entries, in index order, each exactly once.
    Apply(Vec<Entry>),
    /// Replace the service's state with this snapshot (received from the leader, durable
    /// here); `Apply` continues from its index + 1.
    ApplySnapshot(Snapshot),
    /// A proposal was appended to the leader's log at `index` in `term`. It is not committed
    /// yet: wait for its `Apply`, and treat a different entry at that index as a loss.
    Accepted { id: u64, index: Index, term: Term },
    /// A proposal was refused; nothing was appended.
    ProposalDropped { id: u64, reason: DropReason },
    /// The node's role, term or known leader changed.
    RoleChanged { role: Role, term: Term, leader: Option<NodeId> },
    /// Read `id` may be served once the state machine has applied `index`: leadership was
    /// confirmed by a majority after the read arrived.
    ReadReady { id: u64, index: Index },
    /// Read `id` cannot be served here.
    ReadDropped { id: u64, reason: DropReason },
    /// The configuration this node acts on changed (an entry appended or truncated, a
    /// snapshot installed), or became committed: it was set by the entry at `index` (0: the
    /// bootstrap configuration). Not emitted at start; read [`crate::Node::view`] then.
    MembershipChanged { index: Index, membership: Membership, committed: bool },
    /// Read the stored snapshot (the one at `index`, or a newer one if storage has one) and
    /// give it back with [`Input::SnapshotLoaded`]: the node dropped its bytes (see
    /// `ConfigBuilder::snapshots_in_storage`) and a follower needs them. Emitted once until
    /// answered; the driver must answer every one (a crash answers for it). Storage may
    /// still be writing the snapshot's file when asked, and then answers once it is written.
    LoadSnapshot { index: Index },
}

/// Why a proposal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// This node is not the leader; `hint` is the leader it knows of, if any.
    NotLeader { hint: Option<NodeId> },
    /// The leader is handing leadership to `to` and accepts no proposals meanwhile.
    Transferring { to: NodeId },
    /// The command is `len` bytes, over the configured `max_entry_bytes`: it can never be
    /// accepted (proposals only).
    TooLarge { len: usize, max: usize },
    /// A membership change was refused (membership changes only).
    Membership(ChangeRefused),
}

/// A record to make durable. A crash before its `Persisted` may leave none of it, all of it,
/// or (a storage splitting a large record) a prefix that is itself a state the node could
/// have been in: never entries without the term they were written in.
///
/// Obligations of the storage: apply records in `seq` order; when `entries` is non-empty,
/// first discard every stored entry at an index `>= entries[0].index` (`truncate_from`
/// names that index when the record overwrites a conflicting suffix, for clarity and
/// checking), then append `entries`; then store `hard_state` if present. A `snapshot`, when
/// present, is stored before all of that (see its field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist {
    /// Strictly increasing per node lifetime; a restart starts again from 1.
    pub seq: u64,
    /// When set, applied first: store this snapshot and discard every stored entry up to
    /// its index. Unless `truncate_from` is also set, every entry it covers was handed to
    /// storage in this or an earlier record (the service's compaction, or an install that
    /// matched the log): a storage may then make the snapshot durable after reporting the
    /// record, as long as it keeps those entries until it has.
    pub snapshot: Option<Snapshot>,
    pub hard_state: Option<HardState>,
    /// When set, the stored log held entries at `truncate_from..` that this record replaces.
    pub truncate_from: Option<Index>,
    pub entries: Vec<Entry>,
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Follower,
    /// Asking for pre-votes; the term has not been bumped.
    PreCandidate,
    Candidate,
    Leader,
}

/// What a node recovers from durable storage. `Restored::default()` is a fresh node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub hard_state: HardState,
    /// The stored snapshot, if any. The service restores its own state from it.
    pub snapshot: Option<Snapshot>,
    /// The stored log, contiguous, starting right after the snapshot (or at index 1).
    pub entries: Vec<Entry>,
}

/// Why a [`Restored`] state was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// Entry indexes are not contiguous from 1: `expected` was due, `found` was stored.
    Gap { expected: Index, found: Index },
    /// An entry's term is lower than its predecessor's, which Raft never produces.
    TermDecreases { index: Index },
    /// An entry's term is above the stored current term.
    EntryAboveTerm { index: Index, entry_term: Term, term: Term },
    /// The snapshot's term is above the stored current term.
    SnapshotAboveTerm { meta: SnapshotMeta },
    /// The snapshot's configuration is empty, or set by an entry past the snapshot.
    BadSnapshotMembership { meta: SnapshotMeta },
    /// The `Config` entry at `index` does not hold a valid configuration.
    BadConfigEntry { index: Index },
}

impl core::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RestoreError::Gap { expected, found } => {
                write!(f, "restored log is not contiguous: expected index {}, found {}", expected.0, found.0)
            }
            RestoreError::TermDecreases { index } => {
                write!(f, "restored log term decreases at index {}", index.0)
            }
            RestoreError::EntryAboveTerm { index, entry_term, term } => {
                write!(f, "restored entry {} has term {} above the stored term {}", index.0, entry_term.0, term.0)
            }
            RestoreError::SnapshotAboveTerm { meta } => {
                write!(f, "restored snapshot at index {} has term {} above the stored term", meta.index.0, meta.term.0)
            }
            RestoreError::BadSnapshotMembership { meta } => write!(
                f,
                "restored snapshot at index {} has configuration '{}' set at index {}: empty or past the snapshot",
                meta.index.0, meta.membership, meta.membership_index.0
            ),
            RestoreError::BadConfigEntry { index } => {
                write!(f, "restored configuration entry {} does not decode as a configuration", index.0)
            }
        }
    }
}

/// Inputs the core ignored, by cause. Each is harmless; growth hints at a sick network or peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ignored {
    /// Messages from a lower term (answered, when the answer helps the sender catch up).
    pub stale_term: u64,
    /// Messages not addressed to this node, or claiming to come from it.
    pub misaddressed: u64,
    /// Answers that reached a node no longer in the role that asked (a deposed leader, a
    /// finished election), or duplicate votes. Late append answers on a leader are normal
    /// under pipelining and not counted.
    pub stray_response: u64,
    /// Appends or heartbeats whose indexes make no sense (e.g. commit beyond what was sent).
    pub malformed: u64,
    /// Vote requests dropped under the leader lease (check-quorum).
    pub leased_vote: u64,
    /// With lease reads, messages of a higher term that no leader sent (answers to an old
    /// election) dropped by a follower that hears its leader: adopting their term would end
    /// its refusal of votes while the leader's lease counts on it.
    pub leased_term: u64,
    /// `Persisted` acknowledgements for sequence numbers never issued.
    pub bad_persisted: u64,
    /// Leadership transfers asked of a non-leader, or to itself or a non-voter.
    pub bad_transfer: u64,
    /// Snapshots from the service at an index not above the current snapshot or above what
    /// was applied.
    pub bad_snapshot: u64,
    /// Snapshot chunks of a transfer the leader replaced by a later one.
    pub stale_chunk: u64,
    /// Snapshots loaded from storage that were not the node's current one (or not asked for).
    pub stale_snapshot_load: u64,
    /// Snapshot transfers dropped for passing `Config::max_snapshot_bytes`.
    pub too_large_snapshot: u64,
    /// `Campaign` or `TimeoutNow` on a node that is not a voter of its configuration (a
    /// learner, a node removed, or one waiting to join).
    pub bad_campaign: u64,
}

/// Read-only status of a node, for drivers, tests and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub id: NodeId,
    pub term: Term,
    pub vote: Option<NodeId>,
    pub role: Role,
    pub leader: Option<NodeId>,
    /// Highest index known committed. Invariant: `applied <= commit`.
    pub commit: Index,
    /// Highest index handed out in `Apply`. Invariant: `applied <= durable`.
    pub applied: Index,
    pub last_index: Index,
    pub last_term: Term,
    /// Highest index whose entry (as currently in memory) is known durable.
    pub durable: Index,
    /// Index covered by the snapshot (0 without one).
    pub snapshot_index: Index,
    /// Leader: the node leadership is being handed to.
    pub transferring_to: Option<NodeId>,
    /// Leader: reads waiting for leadership confirmation.
    pub pending_reads: usize,
    /// Reads this node answered from its lease since it started (lease reads on).
    pub lease_reads: u64,
    /// The configuration this node acts on: the latest in its log, committed or not.
    pub membership: Membership,
    /// The entry that set `membership` (0: the bootstrap configuration).
    pub membership_index: Index,
    /// Whether `membership_index <= commit`.
    pub membership_committed: bool,
    pub ignored: Ignored,
}
