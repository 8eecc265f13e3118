//! Leadership transfer (Raft thesis §3.10): the leader stops accepting proposals, brings the
//! target's log up to date, and sends it `TimeoutNow`; the target campaigns at once, without
//! pre-vote, and its vote requests override the followers' leader lease. A transfer not done
//! within an election timeout is abandoned.

use alloc::vec::Vec;

use super::Node;
use crate::io::{Output, Role};
use crate::message::{Message, MessageBody};
use crate::types::NodeId;

/// A transfer in progress.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "explore", derive(Hash))]
pub(super) struct Transfer {
    pub to: NodeId,
    pub elapsed: u32,
}

impl Node {
    pub(super) fn transfer_leadership(&mut self, to: NodeId, out: &mut Vec<Output>) {
        // Only to a voter of the configuration it would lead (not a learner, nor a voter
        // being removed).
        let valid = self.role == Role::Leader
            && to != self.cfg.id()
            && self.progress.contains_key(&to)
            && self.membership().voters().contains(&to);
        if !valid {
            self.ignored.bad_transfer += 1;
            return;
        }
        // A removed leader's hand-over keeps its deadline whatever it is asked: requests
        // must not keep a leader without a vote in office.
        let elapsed = self.transfer.filter(|_| self.leads_without_a_vote()).map_or(0, |t| t.elapsed);
        self.transfer = Some(Transfer { to, elapsed });
        self.revoke_lease();
        self.try_finish_transfer(out);
    }

    /// Sends `TimeoutNow` once the target holds our whole log; otherwise helps it catch up.
    /// A leader without a vote (it removed itself) steps down once it sent `TimeoutNow`: the
    /// target's election never asks it, so it would not learn of the new term.
    pub(super) fn try_finish_transfer(&mut self, out: &mut Vec<Output>) {
        let Some(t) = self.transfer else { return };
        let Some(pr) = self.progress.get(&t.to) else { return };
        if pr.match_index == self.log.last_index() {
            out.push(Output::Send(Message {
                from: self.cfg.id(),
                to: t.to,
                term: self.term,
                body: MessageBody::TimeoutNow,
            }));
            if self.leads_without_a_vote() {
                self.become_follower(self.term, None);
            }
        } else {
            self.send_append(t.to, true, out);
        }
    }

    /// One tick of a transfer: abandon it after the minimum election timeout. A leader
    /// without a vote whose hand-over is abandoned steps down (a new leader is then elected
    /// by timeout).
    pub(super) fn tick_transfer(&mut self) {
        if let Some(t) = self.transfer.as_mut() {
            t.elapsed += 1;
            if t.elapsed >= self.cfg.election_ticks_min() {
                self.transfer = None;
                if self.leads_without_a_vote() {
                    self.become_follower(self.term, None);
                }
            }
        }
    }

    /// The leader of our term asks us to campaign now.
    pub(super) fn handle_timeout_now(&mut self, from: NodeId, out: &mut Vec<Output>) {
        if self.role == Role::Leader || self.leader != Some(from) {
            self.ignored.stray_response += 1;
            return;
        }
        if !self.promotable() {
            self.ignored.bad_campaign += 1;
            return;
        }
        self.become_candidate(true, out);
    }
}
