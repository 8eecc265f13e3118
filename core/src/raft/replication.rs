//! Log replication: the leader's appends and heartbeats with flow control, the follower's
//! log check and merge, fast backtracking, and commitment by counting (Raft §5.3, §5.4.2).

use alloc::vec::Vec;

use super::log::decode_config;
use super::progress::Mode;
use super::quorum::joint_index;
use super::Node;
use super::MAX_INDEX;
use crate::io::Output;
use crate::membership::{ChangeStep, JointPolicy};
use crate::message::{AppendResult, Message, MessageBody};
use crate::planted::PlantedBug;
use crate::types::{EntryKind, Index, NodeId};

impl Node {
    /// Leader: sends every follower what it lacks, as flow control allows. With
    /// `even_if_empty`, followers with nothing to receive still get an (empty) append, which
    /// carries the commit index.
    pub(super) fn broadcast_append(&mut self, even_if_empty: bool, out: &mut Vec<Output>) {
        for p in self.followers() {
            self.send_append(p, even_if_empty, out);
        }
    }

    /// Leader: sends `to` one append from its `next` index if flow control allows. Returns
    /// whether one went out.
    pub(super) fn send_append(&mut self, to: NodeId, even_if_empty: bool, out: &mut Vec<Output>) -> bool {
        if self.needs_snapshot(to) {
            self.send_snapshot(to, out);
            return false;
        }
        let (max_msgs, max_inflight_bytes) = (self.cfg.max_inflight_msgs(), self.cfg.max_inflight_bytes());
        let Some(pr) = self.progress.get(&to) else { return false };
        if !pr.can_send(max_msgs, max_inflight_bytes) {
            return false;
        }
        let next = pr.next;
        let probing = pr.mode == Mode::Probe;
        if next > self.log.last_index() && !even_if_empty && !probing {
            return false;
        }
        let byte_budget = self.cfg.max_bytes_per_msg().min(pr.bytes_room(max_inflight_bytes)).max(1);
        let prev_index = next.prev();
        let prev_term = self.log.term_at(prev_index).expect("leader holds every index below next");
        let (entries, bytes) = self.log.batch_from(next, self.cfg.max_entries_per_msg(), byte_budget);
        let last = Index(prev_index.0 + entries.len() as u64);
        let body = MessageBody::Append { prev_index, prev_term, entries, commit: self.log.commit() };
        let pr = self.progress.get_mut(&to).expect("checked above");
        pr.on_sent(last, bytes);
        pr.commit_sent = self.log.commit();
        self.send(to, body, out);
        true
    }

    /// Leader: heartbeats to every follower. The commit index is capped at what each follower
    /// is known to hold, so it may adopt it without a log check.
    pub(super) fn broadcast_heartbeat(&mut self, out: &mut Vec<Output>) {
        let (commit, sent_at) = (self.log.commit(), self.heartbeat_stamp());
        let beats: Vec<(NodeId, Index)> = self
            .progress
            .iter_mut()
            .map(|(id, pr)| {
                pr.on_heartbeat_sent();
                (*id, commit.min(pr.match_index))
            })
            .collect();
        for (to, commit) in beats {
            self.send(to, MessageBody::Heartbeat { commit, read_round: self.reads.round, sent_at }, out);
        }
    }

    /// Follower: an append from the current leader (term already equal to ours).
    pub(super) fn handle_append(&mut self, msg: Message, out: &mut Vec<Output>) {
        let MessageBody::Append { prev_index, prev_term, entries, commit } = msg.body else { unreachable!() };
        let well_formed = entries.iter().enumerate().all(|(k, e)| {
            e.index.0 == prev_index.0 + 1 + k as u64
                && e.term <= msg.term
                && e.term >= if k == 0 { prev_term } else { entries[k - 1].term }
                && (e.kind != EntryKind::Config || decode_config(e).is_some())
        }) && prev_term <= msg.term
            && prev_index <= MAX_INDEX;
        if !well_formed {
            self.ignored.malformed += 1;
            return;
        }
        let (mut prev_index, mut prev_term, mut entries) = (prev_index, prev_term, entries);
        let base = self.log.snapshot_index();
        if prev_index < base {
            // The prefix up to our snapshot is committed here, hence the leader's too.
            let skip = ((base.0 - prev_index.0) as usize).min(entries.len());
            entries.drain(..skip);
            if entries.is_empty() && Index(prev_index.0 + skip as u64) < base {
                let result = AppendResult::Success { match_index: self.log.commit() };
                self.send(msg.from, MessageBody::AppendResponse(result), out);
                return;
            }
            prev_index = base;
            prev_term = self.log.snapshot_term();
            if entries.first().is_some_and(|e| e.term < prev_term) {
                // Entries after our snapshot of a lower term than its own: forged (they were
                // checked only against the message's `prev_term`).
                self.ignored.malformed += 1;
                return;
            }
        }
        if !self.log.matches(prev_index, prev_term) {
            let last_index = self.log.last_index();
            let conflict_term = self.log.term_at(prev_index);
            let conflict_first = match conflict_term {
                Some(t) => self.log.first_index_of_term(t),
                None => last_index.next(),
            };
            let result = AppendResult::Reject { rejected_prev: prev_index, conflict_term, conflict_first, last_index };
            self.send(msg.from, MessageBody::AppendResponse(result), out);
            return;
        }
        let match_index = Index(prev_index.0 + entries.len() as u64);
        if match_index <= self.log.commit() {
            // Everything here is already committed, hence already held: a stale duplicate.
            let result = AppendResult::Success { match_index: self.log.commit() };
            self.send(msg.from, MessageBody::AppendResponse(result), out);
            return;
        }
        let Ok((truncated, appended)) = self.log.merge(entries) else {
            // The entries rewrite what this node committed: no leader of a later term can
            // lack a committed entry (Leader Completeness), so the message is forged.
            self.ignored.malformed += 1;
            return;
        };
        if let Some(t) = truncated {
            self.truncate_from = Some(self.truncate_from.map_or(t, |old| old.min(t)));
        }
        if let Some(first) = appended {
            self.note_unpersisted(first);
        }
        self.log.commit_to(commit.min(match_index));
        self.send(msg.from, MessageBody::AppendResponse(AppendResult::Success { match_index }), out);
    }

    /// Follower: a heartbeat from the current leader.
    pub(super) fn handle_heartbeat(&mut self, msg: &Message, out: &mut Vec<Output>) {
        let MessageBody::Heartbeat { commit, read_round, sent_at } = msg.body else { unreachable!() };
        if commit > self.log.last_index() {
            // The leader caps it at our match; more than we hold means a confused sender.
            self.ignored.malformed += 1;
        } else {
            self.log.commit_to(commit);
        }
        self.send(msg.from, MessageBody::HeartbeatResponse { read_round, sent_at }, out);
    }

    /// Leader: a follower's answer to an append.
    pub(super) fn handle_append_response(&mut self, from: NodeId, result: AppendResult, out: &mut Vec<Output>) {
        match result {
            AppendResult::Success { match_index } => {
                if match_index > self.log.last_index() {
                    self.ignored.malformed += 1;
                    return;
                }
                let Some(pr) = self.progress.get_mut(&from) else { return };
                // An answer that moves nothing is normal under pipelining (answers to empty
                // appends, duplicates): not counted as ignored.
                if pr.on_success(match_index) {
                    self.maybe_commit(out);
                }
                // Keep the pipe full (the commit broadcast may already have sent).
                let mut sent = false;
                while self.send_append(from, false, out) {
                    sent = true;
                }
                // A follower that answered after the commit moved has not heard of it yet.
                let stale_commit = self.progress.get(&from).is_some_and(|p| p.commit_sent < self.log.commit());
                if !sent && stale_commit {
                    self.notify_commit(out);
                }
                if self.transfer.is_some_and(|t| t.to == from) {
                    self.try_finish_transfer(out);
                }
            }
            AppendResult::Reject { rejected_prev, conflict_term, conflict_first, last_index } => {
                // We never sent an append after an index we do not hold: a forgery or a bug.
                if rejected_prev > self.log.last_index() {
                    self.ignored.malformed += 1;
                    return;
                }
                let hint = match conflict_term {
                    None => last_index.next(),
                    Some(t) => match self.log.last_index_of_term(t) {
                        Some(ours) => ours.next(),
                        None => conflict_first,
                    },
                };
                let Some(pr) = self.progress.get_mut(&from) else { return };
                if pr.on_reject(rejected_prev, hint) {
                    self.send_append(from, true, out);
                }
            }
            // A higher term would have made us a follower before we got here; an equal one
            // is a confused sender.
            AppendResult::StaleTerm => self.ignored.malformed += 1,
        }
    }

    /// Leader: a follower's answer to a heartbeat. Resumes a paused probe and nudges a
    /// follower that lags (its last append or answer may have been lost).
    pub(super) fn handle_heartbeat_response(
        &mut self,
        from: NodeId,
        read_round: u64,
        sent_at: u64,
        out: &mut Vec<Output>,
    ) {
        self.lease_acked(from, sent_at);
        self.read_acked(from, read_round, out);
        let (max_msgs, max_bytes) = (self.cfg.max_inflight_msgs(), self.cfg.max_inflight_bytes());
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.on_heartbeat_response(max_msgs, max_bytes);
        if pr.match_index < self.log.last_index() {
            self.send_append(from, true, out);
        }
    }

    /// Leader: advances the commit index to what a majority (of both sets, while joint) holds
    /// durably, counting only an entry of the current term (Raft §5.4.2), and our own log
    /// only where we are a voter. Tells followers when it moves.
    pub(super) fn maybe_commit(&mut self, out: &mut Vec<Output>) {
        let (me, durable, progress) = (self.cfg.id(), self.log.durable(), &self.progress);
        let mut counting = self.counting();
        if self.cfg.has_bug(PlantedBug::LeaderCountsSelfWhenRemoved) && !counting.is_voter(me) && !counting.is_joint() {
            let me_too = [ChangeStep::AddVoter { node: me, address: bytes::Bytes::new() }];
            counting = counting.apply(&me_too, JointPolicy::Auto).unwrap_or(counting);
        }
        let candidate = joint_index(&counting, |id| {
            if id == me {
                durable
            } else {
                progress.get(&id).map_or(Index(0), |p| p.match_index)
            }
        });
        if candidate > self.log.commit()
            && self.log.term_at(candidate) == Some(self.term)
            && self.log.commit_to(candidate)
        {
            // Before the broadcast, so that the entry leaving a joint configuration goes out
            // with it.
            self.maybe_leave_joint();
            self.broadcast_append(false, out);
            self.notify_commit(out);
            self.advance_reads(out);
            // After the commit notices, so that nodes whose removal just committed hear of it.
            self.sync_progress();
            self.maybe_step_down_removed(out);
        }
    }

    /// Leader: an empty append to every follower that has not heard of the current commit
    /// index. A follower gets at most one such notice per tick at once; a commit that moves
    /// again within the tick is announced at the next tick (appends carrying entries announce
    /// it meanwhile), so a stream of commits costs a follower about one empty append per
    /// tick, not one per entry.
    pub(super) fn notify_commit(&mut self, out: &mut Vec<Output>) {
        let commit = self.log.commit();
        let stale: Vec<NodeId> =
            self.progress.iter().filter(|(_, pr)| pr.commit_sent < commit).map(|(id, _)| *id).collect();
        for p in stale {
            let pr = self.progress.get_mut(&p).expect("listed above");
            if pr.commit_notice.sent_this_tick {
                pr.commit_notice.deferred = true;
            } else if self.send_append(p, true, out) {
                self.progress.get_mut(&p).expect("listed above").commit_notice.sent_this_tick = true;
            }
        }
    }

    /// Leader, every tick: sends the commit notices that waited for it.
    pub(super) fn tick_commit_notice(&mut self, out: &mut Vec<Output>) {
        let mut any = false;
        for pr in self.progress.values_mut() {
            pr.commit_notice.sent_this_tick = false;
            any |= core::mem::take(&mut pr.commit_notice.deferred);
        }
        if any {
            self.notify_commit(out);
        }
    }
}
