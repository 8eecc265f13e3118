//! The messages nodes exchange. Every message carries its sender's term; the receiver's
//! reaction to that term is in `raft::Node::step_message`.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::types::{Entry, Index, NodeId, SnapshotMeta, Term};

/// A message between two nodes of one cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    /// The sender's term, except for `PreVote` (the term the sender would campaign in) and a
    /// granted `PreVoteResponse` (echoes that term).
    pub term: Term,
    pub body: MessageBody,
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Would you vote for me in `term` (the sender's term + 1)? Changes no state anywhere.
    PreVote {
        last_index: Index,
        last_term: Term,
    },
    PreVoteResponse {
        granted: bool,
    },
    /// RequestVote. `transfer` marks a campaign started by `TimeoutNow`, which overrides the
    /// receiver's leader lease.
    Vote {
        last_index: Index,
        last_term: Term,
        transfer: bool,
    },
    VoteResponse {
        granted: bool,
    },
    /// AppendEntries: `entries` follow the entry at `prev_index` of term `prev_term`.
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    },
    AppendResponse(AppendResult),
    /// A leader's liveness beat. `commit` is already capped at what the follower is known to
    /// hold, so the follower may adopt it without a log check. `read_round` is the latest
    /// ReadIndex round the leader opened; the answer echoes it. `sent_at` is the leader's
    /// clock (ticks it has taken) when it sent the beat; the answer echoes it too, so the
    /// leader knows from when a quorum's answers date its lease.
    Heartbeat {
        commit: Index,
        read_round: u64,
        sent_at: u64,
    },
    HeartbeatResponse {
        read_round: u64,
        sent_at: u64,
    },
    /// Leadership transfer: the leader asks its up-to-date target to campaign at once.
    TimeoutNow,
    /// One chunk of the leader's snapshot (Figure 13): `data` is the slice at `offset`;
    /// `done` marks the last chunk.
    InstallSnapshot {
        meta: SnapshotMeta,
        offset: u64,
        data: bytes::Bytes,
        done: bool,
    },
    /// The follower holds the snapshot at `index` up to `next_offset` bytes, or (`done`) has
    /// installed it durably, or already had everything it covers.
    SnapshotResponse {
        index: Index,
        next_offset: u64,
        done: bool,
    },
    /// The follower will not take the snapshot at `index`: it is larger than the
    /// `max_snapshot_bytes` (here `max_bytes`) the follower was configured with. The leader
    /// stops streaming that snapshot to it (a later snapshot is tried again) and shows the
    /// refusal in the follower's `Progress`, so an operator can raise the bound.
    SnapshotRefused {
        index: Index,
        max_bytes: u64,
    },
}

/// A follower's answer to an `Append`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendResult {
    /// The follower's log now matches the leader's up to `match_index`, durably.
    Success { match_index: Index },
    /// The follower has no entry at `rejected_prev` with the leader's `prev_term`.
    /// `conflict_term` is the term the follower holds at `rejected_prev` (`None` when its log
    /// is shorter), `conflict_first` the first index it holds of that term, and `last_index`
    /// its last index: enough for the leader to skip a whole term per round trip.
    Reject { rejected_prev: Index, conflict_term: Option<Term>, conflict_first: Index, last_index: Index },
    /// The follower's term is higher than the append's; the leader learns it and steps down.
    StaleTerm,
}

impl MessageBody {
    /// Short name, for counters and traces.
    pub fn name(&self) -> &'static str {
        match self {
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
            MessageBody::Vote { .. } => "Vote",
            MessageBody::VoteResponse { .. } => "VoteResponse",
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResponse(_) => "AppendResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::SnapshotResponse { .. } => "SnapshotResponse",
            MessageBody::SnapshotRefused { .. } => "SnapshotRefused",
        }
    }

    /// Whether the receiver of this message must see its sender's state durable first.
    /// Responses promise something about the responder's term, vote or log, so the core holds
    /// them until the `Persist` that made them true is acknowledged.
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            MessageBody::PreVoteResponse { .. }
                | MessageBody::VoteResponse { .. }
                | MessageBody::AppendResponse(_)
                | MessageBody::HeartbeatResponse { .. }
                | MessageBody::SnapshotResponse { .. }
        )
    }
}
