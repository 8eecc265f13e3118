//! Membership changes asked of this node by an operator (`SKIFF.MEMBER` over RESP, which
//! `skiff member` sends): one at a time, on the leader, answered once the change is complete
//! (a configuration at or past its entry committed, and not joint) or refused.

use skiff_core::{ChangeStep, DropReason, Index, Input, JointPolicy, Membership, MembershipChange, Output, Role};

use super::engine::Engine;

/// Ids of membership changes in the proposal id space: never the KV service's
/// (`SERVICE_IDS`), never 0.
const MEMBER_IDS: u64 = 1 << 62;

/// Who waits for a change: a RESP connection's token.
pub(crate) type MemberWaiter = mio::Token;

/// The change in progress.
#[derive(Debug)]
pub(crate) struct Pending {
    id: u64,
    waiter: MemberWaiter,
    /// Where its entry went, once accepted.
    index: Option<Index>,
}

/// The operator's changes of one node.
#[derive(Debug, Default)]
pub(crate) struct Members {
    pending: Option<Pending>,
    next_id: u64,
    /// Answers to deliver: the waiter, and the configuration reached or why not.
    pub(crate) answers: Vec<(MemberWaiter, Result<Membership, String>)>,
}

impl Engine {
    /// Asks for `steps`, answered in `members.answers` for `waiter`.
    pub(crate) fn change_membership(&mut self, steps: Vec<ChangeStep>, waiter: MemberWaiter) {
        if self.members.pending.is_some() {
            let why = "another membership change asked of this node is in progress".to_string();
            self.members.answers.push((waiter, Err(why)));
            return;
        }
        self.members.next_id += 1;
        let id = MEMBER_IDS | self.members.next_id;
        self.members.pending = Some(Pending { id, waiter, index: None });
        self.step(Input::ChangeMembership(MembershipChange { id, steps, joint: JointPolicy::Auto }));
    }

    /// The core's answers about the change in progress (true if `o` was one).
    pub(crate) fn member_output(&mut self, o: &Output) -> bool {
        let Some(p) = self.members.pending.as_mut() else { return false };
        match o {
            Output::Accepted { id, index, .. } if *id == p.id => p.index = Some(*index),
            Output::ProposalDropped { id, reason } if *id == p.id => {
                let why = match reason {
                    DropReason::NotLeader { hint: Some(l) } => format!("not the leader: node {} leads", l.0),
                    DropReason::NotLeader { hint: None } => "not the leader, and no leader is known".to_string(),
                    DropReason::Transferring { to } => format!("leadership is moving to node {}", to.0),
                    DropReason::TooLarge { len, max } => format!("the configuration takes {len} bytes, over {max}"),
                    DropReason::Membership(why) => why.to_string(),
                };
                let waiter = p.waiter;
                self.members.pending = None;
                self.members.answers.push((waiter, Err(why)));
            }
            _ => return false,
        }
        true
    }

    /// After every step: a change whose entry is in is complete once a configuration at or
    /// past it is committed and not joint; one whose leader lost its office is in doubt.
    pub(crate) fn check_member_progress(&mut self) {
        let Some(p) = &self.members.pending else { return };
        let Some(index) = p.index else { return };
        let v = self.node.view();
        let answer = if v.membership_index >= index && v.membership_committed && !v.membership.is_joint() {
            Ok(v.membership)
        } else if v.role != Role::Leader {
            Err(format!(
                "this node stopped leading before the change at index {} completed: it may complete under the next \
                 leader; see `skiff member list`",
                index.0
            ))
        } else {
            return;
        };
        let waiter = p.waiter;
        self.members.pending = None;
        self.members.answers.push((waiter, answer));
    }

    /// `SKIFF.MEMBER LIST`: the configuration this node acts on, one fact per line.
    pub(crate) fn member_list(&self) -> String {
        let v = self.node.view();
        let m = &v.membership;
        let ids = |s: &[skiff_core::NodeId]| s.iter().map(|n| n.0.to_string()).collect::<Vec<_>>().join(" ");
        let mut s = format!(
            "voters: {}\r\nlearners: {}\r\noutgoing: {}\r\nindex: {}\r\ncommitted: {}\r\n",
            ids(m.voters()),
            ids(m.learners()),
            ids(m.outgoing()),
            v.membership_index.0,
            v.membership_committed
        );
        for (id, a) in m.addresses() {
            s.push_str(&format!("address {}: {}\r\n", id.0, String::from_utf8_lossy(a)));
        }
        s
    }
}
