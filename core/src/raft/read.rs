//! Linearizable reads by ReadIndex (Raft thesis §6.4): a read is answered with an index once
//! the leader (a) has heard from a majority in a heartbeat round opened after the read
//! arrived, and (b) has committed an entry of its own term. Concurrent reads share rounds:
//! while one round is out, newcomers wait for the next, opened when it completes.
//!
//! Invariant: every pending read's `round` is `<= read_round + 1`; reads are confirmed in
//! round order.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::quorum::joint_index;
use super::Node;
use crate::io::{DropReason, Output, Role};
use crate::types::NodeId;

/// A read waiting for its round.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "explore", derive(Hash))]
pub(super) struct PendingRead {
    pub id: u64,
    /// The heartbeat round whose majority answer confirms this read.
    pub round: u64,
}

/// Reads state of a leader.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "explore", derive(Hash))]
pub(super) struct Reads {
    pub pending: VecDeque<PendingRead>,
    /// The latest round opened (heartbeats carry it).
    pub round: u64,
    /// The latest round a majority answered.
    pub confirmed: u64,
}

impl Node {
    pub(super) fn read(&mut self, id: u64, out: &mut Vec<Output>) {
        if self.role != Role::Leader {
            out.push(Output::ReadDropped { id, reason: DropReason::NotLeader { hint: self.leader } });
            return;
        }
        if self.lease_holds() && self.log.term_at(self.log.commit()) == Some(self.term) {
            out.push(Output::ReadReady { id, index: self.log.commit() });
            self.lease.served += 1;
            return;
        }
        let outstanding = self.reads.round > self.reads.confirmed;
        if outstanding {
            // Join the next round, opened when the current one completes.
            self.reads.pending.push_back(PendingRead { id, round: self.reads.round + 1 });
        } else {
            self.reads.round += 1;
            self.reads.pending.push_back(PendingRead { id, round: self.reads.round });
            self.broadcast_heartbeat(out);
        }
        self.advance_reads(out);
    }

    /// A follower answered heartbeats up to `round`.
    pub(super) fn read_acked(&mut self, from: NodeId, round: u64, out: &mut Vec<Output>) {
        if let Some(pr) = self.progress.get_mut(&from) {
            pr.read_round_acked = pr.read_round_acked.max(round.min(self.reads.round));
        }
        self.advance_reads(out);
    }

    /// Confirms rounds a majority answered and releases the reads they cover, once the
    /// leader has committed an entry of its term; opens the next round if reads wait for it.
    pub(super) fn advance_reads(&mut self, out: &mut Vec<Output>) {
        if self.role != Role::Leader || self.reads.pending.is_empty() {
            return;
        }
        let (me, round, progress) = (self.cfg.id(), self.reads.round, &self.progress);
        // Our own answer confirms every round (where we vote).
        let confirmed = joint_index(&self.counting(), |id| {
            if id == me {
                round
            } else {
                progress.get(&id).map_or(0, |p| p.read_round_acked)
            }
        });
        self.reads.confirmed = self.reads.confirmed.max(confirmed);
        if self.log.term_at(self.log.commit()) != Some(self.term) {
            return; // Raft §8: not until our own no-op commits.
        }
        let index = self.log.commit();
        while let Some(r) = self.reads.pending.front() {
            if r.round > self.reads.confirmed {
                break;
            }
            out.push(Output::ReadReady { id: r.id, index });
            self.reads.pending.pop_front();
        }
        if self.reads.pending.front().is_some_and(|r| r.round > self.reads.round) {
            self.reads.round += 1;
            self.broadcast_heartbeat(out);
        }
    }

    /// No longer leader: every waiting read is refused.
    pub(super) fn drop_reads(&mut self, out: &mut Vec<Output>) {
        let reason = DropReason::NotLeader { hint: self.leader };
        out.extend(self.reads.pending.drain(..).map(|r| Output::ReadDropped { id: r.id, reason }));
        self.reads.round = 0;
        self.reads.confirmed = 0;
    }
}
