//! Pure quorum arithmetic over a [`Membership`]: the commit index (or read round) a
//! configuration's members support, whether a set of members makes a quorum, and vote
//! tallies. While joint, every decision needs a majority of the voters *and* a majority of
//! the outgoing voters (Raft §6); learners never count.
//!
//! Callers supply each member's value through a lookup, so the leader's own value counts only
//! for the sets it belongs to: a leader that is removing itself does not count itself toward
//! the new configuration (Raft thesis §4.2.2).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::membership::Membership;
use crate::types::NodeId;

/// The size of a majority of `n`.
pub(crate) fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// The highest value a majority of `set` holds (`value(id)` for each member): the commit
/// index their match indexes support, or the read round their acknowledgements confirm.
/// `T::default()` (0) for an empty set, which supports nothing.
pub(crate) fn majority_index<T: Ord + Copy + Default>(set: &[NodeId], value: impl Fn(NodeId) -> T) -> T {
    if set.is_empty() {
        return T::default();
    }
    let mut values: Vec<T> = set.iter().map(|id| value(*id)).collect();
    values.sort_unstable_by(|a, b| b.cmp(a));
    values[majority(set.len()) - 1]
}

/// The highest value both the voters and (while joint) the outgoing voters support.
pub(crate) fn joint_index<T: Ord + Copy + Default>(m: &Membership, value: impl Fn(NodeId) -> T) -> T {
    let incoming = majority_index(m.voters(), &value);
    if m.is_joint() {
        incoming.min(majority_index(m.outgoing(), &value))
    } else {
        incoming
    }
}

/// Whether the members for which `yes` holds make a majority of the voters and (while joint)
/// of the outgoing voters. Never true for [`Membership::empty`].
pub(crate) fn joint_quorum(m: &Membership, yes: impl Fn(NodeId) -> bool) -> bool {
    let holds = |set: &[NodeId]| set.iter().filter(|id| yes(**id)).count() >= majority(set.len());
    !m.voters().is_empty() && holds(m.voters()) && (!m.is_joint() || holds(m.outgoing()))
}

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// Votes received in one (pre-)election, at most one per voter.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "explore", derive(Hash))]
pub(crate) struct Tally {
    votes: BTreeMap<NodeId, bool>,
}

impl Tally {
    /// Records `from`'s vote; a second answer from the same voter is ignored (returns false).
    pub(crate) fn record(&mut self, from: NodeId, granted: bool) -> bool {
        if self.votes.contains_key(&from) {
            return false;
        }
        self.votes.insert(from, granted);
        true
    }

    /// The outcome in configuration `m`: won once a majority of every voting set granted,
    /// lost once one set can no longer give a majority. Votes of non-voters do not count.
    pub(crate) fn result(&self, m: &Membership) -> VoteResult {
        let in_set = |set: &[NodeId]| {
            let granted = set.iter().filter(|v| self.votes.get(v) == Some(&true)).count();
            let rejected = set.iter().filter(|v| self.votes.get(v) == Some(&false)).count();
            if granted >= majority(set.len()) {
                VoteResult::Won
            } else if rejected > set.len() - majority(set.len()) {
                VoteResult::Lost
            } else {
                VoteResult::Pending
            }
        };
        if m.voters().is_empty() {
            return VoteResult::Lost;
        }
        let sets: &[&[NodeId]] = if m.is_joint() { &[m.voters(), m.outgoing()] } else { &[m.voters()] };
        let results: Vec<VoteResult> = sets.iter().map(|s| in_set(s)).collect();
        if results.contains(&VoteResult::Lost) {
            VoteResult::Lost
        } else if results.iter().all(|r| *r == VoteResult::Won) {
            VoteResult::Won
        } else {
            VoteResult::Pending
        }
    }

    pub(crate) fn clear(&mut self) {
        self.votes.clear();
    }
}
