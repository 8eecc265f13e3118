//! Receiving a message: address and term checks common to every kind, then dispatch by
//! kind and role. Stale or nonsensical input is counted in `View::ignored`, never a panic.

use alloc::vec::Vec;

use super::Node;
use crate::io::{Output, Role};
use crate::message::{AppendResult, Message, MessageBody};

impl Node {
    /// With lease reads, whether a follower that hears its leader (or a node just started)
    /// must drop this message of a higher term instead of adopting the term: any but what a
    /// leader of that term sends, a vote (refused under the lease below, unless a transfer's),
    /// and a pre-vote or its grant (which never move the term). Adopting it would clear the leader it refuses votes for, and a vote asked next
    /// would be granted while that leader's lease still counts on this node (the answer to
    /// an old election, a refused pre-vote's answer, can carry a higher term). A leader
    /// takes every higher term: it steps down, and its lease ends with its office.
    fn keeps_lease_against(&self, body: &MessageBody) -> bool {
        if !self.leases() || self.role == Role::Leader || !self.in_lease() {
            return false;
        }
        if self.cfg.has_bug(crate::planted::PlantedBug::LeaseYieldsToHigherTerm) {
            return false;
        }
        !matches!(
            body,
            MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
                | MessageBody::TimeoutNow
                | MessageBody::Vote { .. }
                | MessageBody::PreVote { .. }
                | MessageBody::PreVoteResponse { granted: true }
        )
    }

    pub(super) fn step_message(&mut self, msg: Message, out: &mut Vec<Output>) {
        let me = self.cfg.id();
        // Senders outside the configuration are heard: a node being added, or one that lags,
        // must hear a leader it does not know yet. Terms guard against stale senders.
        if msg.to != me || msg.from == me {
            self.ignored.misaddressed += 1;
            return;
        }
        if msg.term > self.term {
            if self.keeps_lease_against(&msg.body) {
                self.ignored.leased_term += 1;
                return;
            }
            match msg.body {
                // A pre-vote speaks of a prospective term; it never moves ours.
                MessageBody::PreVote { .. } => return self.handle_pre_vote(&msg, out),
                MessageBody::PreVoteResponse { granted: true } => return self.handle_vote_response(&msg, out),
                MessageBody::Vote { transfer, .. } => {
                    if self.cfg.check_quorum() && !transfer && self.in_lease() {
                        self.ignored.leased_vote += 1;
                        return;
                    }
                    self.become_follower(msg.term, None);
                }
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::TimeoutNow
                | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(msg.term, Some(msg.from));
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            self.ignored.stale_term += 1;
            match msg.body {
                // Tell a lagging candidate our term so it stops campaigning in the past.
                MessageBody::PreVote { .. } => {
                    self.send(msg.from, MessageBody::PreVoteResponse { granted: false }, out)
                }
                MessageBody::Vote { .. } => self.send(msg.from, MessageBody::VoteResponse { granted: false }, out),
                // A leader of an older term: our answer makes it step down. Needed for
                // liveness when our term ran ahead (the leader's followers refuse our votes
                // under their lease, and we would refuse its appends forever).
                MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::InstallSnapshot { .. } => {
                    self.send(msg.from, MessageBody::AppendResponse(AppendResult::StaleTerm), out)
                }
                // A granted pre-vote for an earlier round of ours, or any stale answer.
                _ => {}
            }
            return;
        }

        match msg.body {
            MessageBody::PreVote { .. } => self.handle_pre_vote(&msg, out),
            MessageBody::Vote { .. } => self.handle_vote(&msg, out),
            MessageBody::PreVoteResponse { .. } | MessageBody::VoteResponse { .. } => {
                self.handle_vote_response(&msg, out)
            }
            MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::InstallSnapshot { .. } => {
                if self.role == Role::Leader {
                    // Two leaders in one term cannot happen; a forged or corrupt message.
                    self.ignored.malformed += 1;
                    return;
                }
                if self.role != Role::Follower || self.leader != Some(msg.from) {
                    self.become_follower(self.term, Some(msg.from));
                } else {
                    self.reset_election_timer();
                }
                match msg.body {
                    MessageBody::Append { .. } => self.handle_append(msg, out),
                    MessageBody::Heartbeat { .. } => self.handle_heartbeat(&msg, out),
                    _ => self.handle_install_snapshot(msg, out),
                }
            }
            MessageBody::AppendResponse(result) => {
                if self.role != Role::Leader {
                    self.ignored.stray_response += 1;
                    return;
                }
                self.handle_append_response(msg.from, result, out);
            }
            MessageBody::HeartbeatResponse { read_round, sent_at } => {
                if self.role != Role::Leader {
                    self.ignored.stray_response += 1;
                    return;
                }
                self.handle_heartbeat_response(msg.from, read_round, sent_at, out);
            }
            MessageBody::TimeoutNow => self.handle_timeout_now(msg.from, out),
            MessageBody::SnapshotResponse { index, next_offset, done } => {
                if self.role != Role::Leader {
                    self.ignored.stray_response += 1;
                    return;
                }
                self.handle_snapshot_response(msg.from, index, next_offset, done, out);
            }
            MessageBody::SnapshotRefused { index, max_bytes } => {
                if self.role != Role::Leader {
                    self.ignored.stray_response += 1;
                    return;
                }
                self.handle_snapshot_refused(msg.from, index, max_bytes);
            }
        }
    }
}
