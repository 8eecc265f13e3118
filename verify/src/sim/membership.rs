//! Membership in the simulator: starting servers that join, proposing changes, and what
//! the changes came to.

use skiff_core::{ChangeStep, Index, Input, JointPolicy, Membership, MembershipChange, NodeId, Output};

use super::Sim;
use crate::checker::{Durable, Violation};

/// Membership changes a run proposed, and what became of them.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChurnStats {
    pub proposed: u64,
    pub accepted: u64,
    pub refused: u64,
    /// Configurations committed (the checker's count, taken at the end of a run).
    pub committed: u64,
    pub joint_committed: u64,
    /// Committed configurations that removed the node leading when the change was made.
    pub leader_removed: u64,
    pub learners_promoted: u64,
}

impl ChurnStats {
    pub fn add(&mut self, o: &ChurnStats) {
        self.proposed += o.proposed;
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.committed += o.committed;
        self.joint_committed += o.joint_committed;
        self.leader_removed += o.leader_removed;
        self.learners_promoted += o.learners_promoted;
    }
}

impl Sim {
    /// Starts server `i`, which has never run or was removed: on an empty disk when `fresh`
    /// (it then joins with no configuration and waits to be added), else on the disk it had.
    /// No-op if it is up.
    pub fn spawn(&mut self, i: usize, fresh: bool) {
        if self.is_up(i) {
            return;
        }
        if fresh {
            self.nodes[i].disk = Durable::default();
            self.checker.register(NodeId(i as u64 + 1), Membership::empty());
        }
        self.log(|| format!("spawn n{} ({})", i + 1, if fresh { "fresh disk" } else { "old disk" }));
        self.start(i);
    }

    /// Proposes a membership change on node `i`. Returns the index of its entry if `i`
    /// accepted it (`None` if `i` is down or refused it).
    pub fn change(&mut self, i: usize, steps: Vec<ChangeStep>, joint: JointPolicy) -> Result<Option<Index>, Violation> {
        if !self.is_up(i) {
            return Ok(None);
        }
        let id = self.next_proposal;
        self.next_proposal += 1;
        self.churn.proposed += 1;
        self.log(|| format!("change on n{}: {steps:?} {joint:?}", i + 1));
        self.change_answer = Some((id, None));
        self.step(i, Input::ChangeMembership(MembershipChange { id, steps, joint }))?;
        match self.change_answer.take().and_then(|(_, r)| r) {
            Some(Ok(index)) => {
                self.churn.accepted += 1;
                Ok(Some(index))
            }
            answer => {
                self.churn.refused += 1;
                self.last_refusal = answer.and_then(Result::err);
                Ok(None)
            }
        }
    }

    /// Records the answer to the change in progress (called for every output).
    pub(super) fn note_change_answer(&mut self, o: &Output) {
        let Some((id, answer)) = self.change_answer.as_mut() else { return };
        match o {
            Output::Accepted { id: a, index, .. } if a == id => *answer = Some(Ok(*index)),
            Output::ProposalDropped { id: a, reason } if a == id => *answer = Some(Err(*reason)),
            _ => {}
        }
    }
}
