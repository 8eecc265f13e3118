//! The leader's view of one follower: how much of its log matches, what to send next, and
//! flow control over what is in flight.

use alloc::collections::VecDeque;

use crate::types::{Index, Snapshot};

/// Replication mode of one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "explore", derive(Hash))]
pub(crate) enum Mode {
    /// Where the follower's log diverges is unknown: one append at a time, each waiting for
    /// its answer (or the next heartbeat answer, should it be lost).
    Probe,
    /// The follower is known to match up to `match_index`: appends are pipelined up to the
    /// in-flight limits, `next` moving ahead optimistically.
    Replicate,
    /// The entries the follower needs were compacted: the snapshot at `index` is streamed in
    /// chunks; `sent` bytes went out, `acked` were confirmed. `acked_at_beat` is what was
    /// confirmed at the previous heartbeat; `rewind` says none was confirmed since, so chunks
    /// or answers were lost and the next heartbeat answer resends from `acked`.
    Snapshot { index: Index, sent: u64, acked: u64, acked_at_beat: Option<u64>, rewind: bool },
}

/// Replication state of one follower, kept by the leader.
///
/// Invariant: `match_index < next`; in `Replicate`, `inflight` holds the last index of each
/// unacknowledged append, increasing, and `inflight_bytes` their entry bytes.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "explore", derive(Hash))]
pub struct Progress {
    pub match_index: Index,
    pub(crate) next: Index,
    pub(crate) mode: Mode,
    /// Probe: an append is outstanding, so sending is paused.
    pub(crate) probe_sent: bool,
    inflight: VecDeque<(Index, u64)>,
    inflight_bytes: u64,
    /// The follower answered something since the last check-quorum round.
    pub(crate) recent_active: bool,
    /// The commit index carried by the last append sent to this follower.
    pub(crate) commit_sent: Index,
    /// Pacing of empty appends that only announce a new commit index.
    pub(crate) commit_notice: CommitNotice,
    /// The latest ReadIndex round this follower answered.
    pub(crate) read_round_acked: u64,
    /// One more than the stamp of the newest heartbeat this follower answered (0: none yet
    /// in this term); the leader's lease dates from these (`raft::lease`).
    pub(crate) lease_acked: u64,
    /// The last snapshot the follower refused as too large, and the bound it gave: that
    /// snapshot is not streamed to it again for [`REFUSAL_BEATS`] heartbeats (a newer one
    /// is at once), so a follower whose bound was raised gets it in time. Cleared once the
    /// follower holds a snapshot.
    pub snapshot_refused: Option<(Index, u64)>,
    /// Heartbeats left before a refused snapshot is offered again.
    refusal_wait: u32,
    /// Ticks since this node stopped being a member of the configurations in play (it was
    /// removed): it is still replicated to until it holds the configuration that removed it
    /// and has been told that it committed, or for a bounded time.
    pub(crate) departing: Option<u32>,
    /// Snapshot mode: the snapshot being streamed (shared bytes, not a copy). A transfer
    /// goes on with it even after the leader took a newer one, so that it finishes however
    /// often snapshots are taken; the leader holds at most one such older snapshot per
    /// follower, until that transfer ends.
    pub(crate) streaming: Option<Snapshot>,
}

/// Heartbeats (at the defaults, 10 s) before a snapshot the follower refused is offered again.
pub(crate) const REFUSAL_BEATS: u32 = 100;

impl Progress {
    pub(crate) fn new(next: Index) -> Progress {
        Progress {
            match_index: Index(0),
            next,
            mode: Mode::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            recent_active: true,
            commit_sent: Index(0),
            commit_notice: Default::default(),
            read_round_acked: 0,
            lease_acked: 0,
            snapshot_refused: None,
            refusal_wait: 0,
            departing: None,
            streaming: None,
        }
    }

    /// Whether another append may go out now under the limits.
    pub(crate) fn can_send(&self, max_msgs: usize, max_bytes: u64) -> bool {
        match self.mode {
            Mode::Probe => !self.probe_sent,
            Mode::Replicate => self.inflight.len() < max_msgs && self.inflight_bytes < max_bytes,
            Mode::Snapshot { .. } => false,
        }
    }

    /// Room left under the byte limit (Replicate), for sizing the next message.
    pub(crate) fn bytes_room(&self, max_bytes: u64) -> u64 {
        max_bytes.saturating_sub(self.inflight_bytes)
    }

    /// An append ending at `last` with `bytes` of entries went out.
    pub(crate) fn on_sent(&mut self, last: Index, bytes: u64) {
        match self.mode {
            Mode::Probe | Mode::Snapshot { .. } => self.probe_sent = true,
            Mode::Replicate => {
                self.next = last.next();
                self.inflight.push_back((last, bytes));
                self.inflight_bytes += bytes;
            }
        }
    }

    /// The follower matches up to `index`. Returns whether `match_index` moved.
    pub(crate) fn on_success(&mut self, index: Index) -> bool {
        self.recent_active = true;
        self.free_inflight_up_to(index);
        if index < self.match_index || (index == self.match_index && self.mode != Mode::Probe) {
            // A duplicate or reordered answer.
            return false;
        }
        if index == self.match_index {
            // A probe at what we already knew matched (after a snapshot, or a duplicate): the
            // logs agree there, so the pipe opens. Staying in Probe would answer every answer
            // with another probe.
            self.mode = Mode::Replicate;
            self.streaming = None;
            self.probe_sent = false;
            self.next = self.next.max(index.next());
            return false;
        }
        self.match_index = index;
        if self.next <= index {
            self.next = index.next();
        }
        match self.mode {
            Mode::Probe | Mode::Snapshot { .. } => {
                self.mode = Mode::Replicate;
                self.streaming = None;
                self.probe_sent = false;
                self.next = index.next();
                self.inflight.clear();
                self.inflight_bytes = 0;
            }
            Mode::Replicate => {}
        }
        true
    }

    /// Appends ending at or below `index` are answered (an empty append ends at its `prev`,
    /// so it is freed by an answer that does not move `match_index`).
    fn free_inflight_up_to(&mut self, index: Index) {
        while let Some(&(last, bytes)) = self.inflight.front() {
            if last > index {
                break;
            }
            self.inflight_bytes -= bytes;
            self.inflight.pop_front();
        }
    }

    /// The follower refused an append whose previous index was `rejected_prev`; `hint` is
    /// where the leader estimates the logs agree. Returns whether the rejection was current
    /// (a stale one changes nothing).
    pub(crate) fn on_reject(&mut self, rejected_prev: Index, hint: Index) -> bool {
        self.recent_active = true;
        let current = match self.mode {
            Mode::Replicate => rejected_prev > self.match_index,
            Mode::Probe => rejected_prev.next() == self.next,
            Mode::Snapshot { .. } => false,
        };
        if !current {
            return false;
        }
        self.mode = Mode::Probe;
        self.streaming = None;
        self.inflight.clear();
        self.inflight_bytes = 0;
        self.probe_sent = false;
        self.next = hint.max(self.match_index.next()).min(rejected_prev.max(self.match_index.next()));
        true
    }

    /// A heartbeat answer: the follower is alive. Unpauses a probe, and in Replicate frees
    /// one slot of a full window so a lost answer cannot stall the pipe forever.
    pub(crate) fn on_heartbeat_response(&mut self, max_msgs: usize, max_bytes: u64) {
        self.recent_active = true;
        self.probe_sent = false;
        if let Mode::Snapshot { sent, acked, rewind: rewind @ true, .. } = &mut self.mode {
            // At most once per heartbeat interval, however many answers arrive.
            *sent = *acked;
            *rewind = false;
        }
        if self.mode == Mode::Replicate && !self.can_send(max_msgs, max_bytes) {
            if let Some((_, bytes)) = self.inflight.pop_front() {
                self.inflight_bytes -= bytes;
            }
        }
    }

    /// A heartbeat goes out. A snapshot transfer that confirmed nothing since the previous
    /// one is stalled (a chunk or an answer was lost): the answer will rewind it. Judging by
    /// the beat, not by each answer, resends a window at most once per interval, and never
    /// the window of a transfer that is moving.
    pub(crate) fn on_heartbeat_sent(&mut self) {
        if let Mode::Snapshot { acked, acked_at_beat, rewind, .. } = &mut self.mode {
            *rewind = *acked_at_beat == Some(*acked);
            *acked_at_beat = Some(*acked);
        }
        self.refusal_wait = self.refusal_wait.saturating_sub(1);
    }

    /// The follower refused the snapshot at `index` (larger than its `max_bytes`).
    pub(crate) fn snapshot_refused(&mut self, index: Index, max_bytes: u64) {
        self.snapshot_refused = Some((index, max_bytes));
        self.refusal_wait = REFUSAL_BEATS;
    }

    /// Whether the snapshot at `index` may be streamed now: not one refused a moment ago.
    pub(crate) fn may_stream(&self, index: Index) -> bool {
        self.refusal_wait == 0 || !self.snapshot_refused.is_some_and(|(i, _)| i == index)
    }

    /// Starts streaming `snapshot` from its first byte.
    pub(crate) fn start_snapshot(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        self.streaming = Some(snapshot);
        self.mode = Mode::Snapshot { index, sent: 0, acked: 0, acked_at_beat: None, rewind: false };
        self.inflight.clear();
        self.inflight_bytes = 0;
    }

    /// The follower installed (or already held) everything up to `index`.
    pub(crate) fn snapshot_done(&mut self, index: Index) {
        self.recent_active = true;
        self.snapshot_refused = None;
        self.refusal_wait = 0;
        self.match_index = self.match_index.max(index);
        self.next = self.match_index.next();
        self.mode = Mode::Probe;
        self.streaming = None;
        self.probe_sent = false;
    }
}

/// Leader: pacing of commit notices to one follower (see `Node::notify_commit`).
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(feature = "explore", derive(Hash))]
pub(crate) struct CommitNotice {
    pub(crate) sent_this_tick: bool,
    pub(crate) deferred: bool,
}
