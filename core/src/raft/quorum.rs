//! Pure quorum arithmetic: the commit index a set of match indexes supports, and vote tallies.

use alloc::collections::BTreeMap;

use crate::types::NodeId;

/// The highest value held by at least `quorum` of `values` (the `quorum`-th largest): the
/// commit index a set of match indexes supports, or the read round a set of acknowledgements
/// confirms. Returns the default (0) when fewer than `quorum` values are given.
pub(crate) fn quorum_index<T: Ord + Copy + Default>(values: &mut [T], quorum: usize) -> T {
    if quorum == 0 || values.len() < quorum {
        return T::default();
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    values[quorum - 1]
}

/// Whether `count` members (the node itself included) make a quorum of size `quorum`.
pub(crate) fn is_quorum(count: usize, quorum: usize) -> bool {
    count >= quorum
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

    /// The outcome among `voters` with a majority of `quorum`.
    pub(crate) fn result(&self, voters: &[NodeId], quorum: usize) -> VoteResult {
        let granted = voters.iter().filter(|v| self.votes.get(v) == Some(&true)).count();
        let rejected = voters.iter().filter(|v| self.votes.get(v) == Some(&false)).count();
        if is_quorum(granted, quorum) {
            VoteResult::Won
        } else if rejected > voters.len() - quorum {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    pub(crate) fn clear(&mut self) {
        self.votes.clear();
    }
}
