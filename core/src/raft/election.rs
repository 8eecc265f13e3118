//! Elections: pre-vote, votes, the leader lease of check-quorum, and taking office.

use alloc::vec::Vec;
use bytes::Bytes;

use super::quorum::{joint_quorum, VoteResult};
use super::Node;
use crate::io::{Output, Role};
use crate::message::{Message, MessageBody};
use crate::types::{Entry, EntryKind, Index, Term};

impl Node {
    /// The election timer fired (or `Campaign` was asked): pre-vote first when enabled.
    pub(super) fn start_election(&mut self, out: &mut Vec<Output>) {
        if self.cfg.pre_vote() {
            self.become_pre_candidate(out);
        } else {
            self.become_candidate(false, out);
        }
    }

    fn become_pre_candidate(&mut self, out: &mut Vec<Output>) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.progress.clear();
        self.transfer = None;
        self.tally.clear();
        self.tally.record(self.cfg.id(), true);
        self.reset_election_timer();
        let body = MessageBody::PreVote { last_index: self.log.last_index(), last_term: self.log.last_term() };
        let term = Term(self.term.0 + 1);
        for to in self.voter_peers() {
            // A pre-vote speaks of the term we would campaign in, not of our own.
            out.push(Output::Send(Message { from: self.cfg.id(), to, term, body: body.clone() }));
        }
        self.check_election(out);
    }

    /// Bumps the term and votes for itself. The own vote counts once its persist is
    /// acknowledged (see `Node::persisted`).
    pub(super) fn become_candidate(&mut self, transfer: bool, out: &mut Vec<Output>) {
        self.term = Term(self.term.0 + 1);
        self.vote = Some(self.cfg.id());
        self.role = Role::Candidate;
        self.leader = None;
        self.progress.clear();
        self.transfer = None;
        self.tally.clear();
        // This step's persist carries the new term and vote.
        self.self_vote_seq = Some(self.next_seq);
        self.reset_election_timer();
        let body = MessageBody::Vote { last_index: self.log.last_index(), last_term: self.log.last_term(), transfer };
        for to in self.voter_peers() {
            self.send(to, body.clone(), out);
        }
    }

    /// Whether we would refuse to help depose a leader we heard from recently. A leader is
    /// always in its own lease.
    pub(super) fn in_lease(&self) -> bool {
        match self.role {
            Role::Leader => true,
            _ => {
                (self.leader.is_some() && self.election_elapsed < self.cfg.election_ticks_min())
                    || self.lease.quiet_after_start
            }
        }
    }

    /// A pre-vote request; `msg.term` is the term the sender would campaign in. Never changes
    /// our state.
    pub(super) fn handle_pre_vote(&mut self, msg: &Message, out: &mut Vec<Output>) {
        let MessageBody::PreVote { last_index, last_term } = msg.body else { unreachable!() };
        let granted = msg.term > self.term && !self.in_lease() && self.log.is_up_to_date(last_index, last_term);
        let body = MessageBody::PreVoteResponse { granted };
        if granted {
            // Echo the candidate's prospective term so it can match the answer.
            out.push(Output::Send(Message { from: self.cfg.id(), to: msg.from, term: msg.term, body }));
        } else {
            self.send(msg.from, body, out);
        }
    }

    /// A vote request in our current term (a higher term was already adopted by the caller).
    pub(super) fn handle_vote(&mut self, msg: &Message, out: &mut Vec<Output>) {
        let MessageBody::Vote { last_index, last_term, .. } = msg.body else { unreachable!() };
        let can_vote = self.role == Role::Follower && (self.vote.is_none() || self.vote == Some(msg.from));
        let granted = can_vote && self.log.is_up_to_date(last_index, last_term);
        if granted {
            self.vote = Some(msg.from);
            self.reset_election_timer();
        }
        self.send(msg.from, MessageBody::VoteResponse { granted }, out);
    }

    /// A pre-vote or vote answer.
    pub(super) fn handle_vote_response(&mut self, msg: &Message, out: &mut Vec<Output>) {
        let (expected_role, granted) = match msg.body {
            MessageBody::PreVoteResponse { granted } => (Role::PreCandidate, granted),
            MessageBody::VoteResponse { granted } => (Role::Candidate, granted),
            _ => unreachable!(),
        };
        // A granted pre-vote echoes term + 1; a refused one carries the voter's term (<= ours,
        // since a higher one already made us a follower).
        let term_ok = match (expected_role, granted) {
            (Role::PreCandidate, true) => msg.term.0 == self.term.0 + 1,
            _ => msg.term == self.term,
        };
        if self.role != expected_role || !term_ok || !self.tally.record(msg.from, granted) {
            self.ignored.stray_response += 1;
            return;
        }
        self.check_election(out);
    }

    pub(super) fn check_election(&mut self, out: &mut Vec<Output>) {
        match self.tally.result(&self.counting()) {
            VoteResult::Pending => {}
            VoteResult::Won if self.role == Role::PreCandidate => self.become_candidate(false, out),
            VoteResult::Won => self.become_leader(out),
            VoteResult::Lost => self.become_follower(self.term, None),
        }
    }

    fn become_leader(&mut self, out: &mut Vec<Output>) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id());
        self.tally.clear();
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.progress.clear();
        self.transfer = None;
        self.sync_progress();
        self.reads = Default::default();
        self.lease.revoked = false;
        // Raft §5.4.2 / §8: commit an entry of our own term to commit everything before it.
        // While the configuration in force is one no entry set (the bootstrap one), that
        // entry writes it down, so that the log says who the cluster is from its first
        // index: a node that joins and receives the log from there learns it, and can
        // compact before the entry that added it.
        let index = self.log.last_index().next();
        let (kind, data) = if self.log.membership_index() == Index(0) {
            let m = postcard::to_allocvec(self.membership()).expect("a configuration encodes");
            (EntryKind::Config, Bytes::from(m))
        } else {
            (EntryKind::Noop, Bytes::new())
        };
        let entry = Entry { term: self.term, index, kind, data };
        self.append_local(entry);
        self.broadcast_append(true, out);
        // A single-node cluster commits on its own durability.
        self.maybe_commit(out);
    }

    /// Check-quorum: a leader that has not heard from a majority within the minimum election
    /// timeout steps down, so a minority partition stops pretending to lead.
    pub(super) fn check_quorum(&mut self) {
        if !self.cfg.check_quorum() {
            return;
        }
        let me = self.cfg.id();
        let progress = &self.progress;
        let active =
            joint_quorum(&self.counting(), |id| id == me || progress.get(&id).is_some_and(|p| p.recent_active));
        for p in self.progress.values_mut() {
            p.recent_active = false;
        }
        if !active {
            self.become_follower(self.term, None);
        }
    }
}
