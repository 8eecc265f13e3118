//! Pure quorum arithmetic: the commit index a set of match indexes supports, and vote tallies.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::types::{Index, NodeId};

/// The highest index held by at least `quorum` of `matches` (the `quorum`-th largest).
/// Returns `Index(0)` when fewer than `quorum` values are given.
pub fn quorum_index(matches: &mut [Index], quorum: usize) -> Index {
    if quorum == 0 || matches.len() < quorum {
        return Index(0);
    }
    matches.sort_unstable_by(|a, b| b.cmp(a));
    matches[quorum - 1]
}

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// Votes received in one (pre-)election, at most one per voter.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    votes: BTreeMap<NodeId, bool>,
}

impl Tally {
    /// Records `from`'s vote; a second answer from the same voter is ignored (returns false).
    pub fn record(&mut self, from: NodeId, granted: bool) -> bool {
        if self.votes.contains_key(&from) {
            return false;
        }
        self.votes.insert(from, granted);
        true
    }

    /// The outcome among `voters` with a majority of `quorum`.
    pub fn result(&self, voters: &[NodeId], quorum: usize) -> VoteResult {
        let granted = voters.iter().filter(|v| self.votes.get(v) == Some(&true)).count();
        let rejected = voters.iter().filter(|v| self.votes.get(v) == Some(&false)).count();
        if granted >= quorum {
            VoteResult::Won
        } else if rejected > voters.len() - quorum {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    pub fn clear(&mut self) {
        self.votes.clear();
    }

    /// Voters that granted, for traces.
    pub fn granted(&self) -> Vec<NodeId> {
        self.votes.iter().filter(|(_, g)| **g).map(|(id, _)| *id).collect()
    }
}
