//! [`ConfigHistory`]: the configurations a node's log and snapshot hold, so that the node
//! always acts on the latest one in its log, committed or not (Raft §4.1 and thesis §4.1),
//! and goes back to the one before when an uncommitted configuration entry is truncated.
//!
//! Owned by `RaftLog`, which sees every way the log changes (restore, append, truncation,
//! compaction, snapshot install) and keeps the history in step with it: no caller can forget
//! to.
//!
//! Invariants: `base.0 <= ` every index in `later`; `later` is in increasing index order and
//! holds exactly the `Config` entries of the log after the snapshot; `version` changes
//! whenever `latest()` may have.

use alloc::vec::Vec;

use crate::membership::Membership;
use crate::types::Index;

#[derive(Clone, Debug)]
pub(crate) struct ConfigHistory {
    /// The configuration in force at the snapshot (the entry that set it, or 0 for the
    /// bootstrap configuration), or the bootstrap configuration without a snapshot.
    base: (Index, Membership),
    /// One per `Config` entry after the snapshot, in index order.
    later: Vec<(Index, Membership)>,
    version: u64,
}

impl ConfigHistory {
    pub(crate) fn new(base: (Index, Membership)) -> ConfigHistory {
        ConfigHistory { base, later: Vec::new(), version: 0 }
    }

    /// The latest configuration and the index of the entry that set it.
    pub(crate) fn latest(&self) -> (Index, &Membership) {
        let (i, m) = self.later.last().unwrap_or(&self.base);
        (*i, m)
    }

    /// The configuration in force at `index`: the latest set at or before it (the base for
    /// any index before the first later entry).
    pub(crate) fn at(&self, index: Index) -> (Index, &Membership) {
        let p = self.later.partition_point(|(i, _)| *i <= index);
        let (i, m) = if p == 0 { &self.base } else { &self.later[p - 1] };
        (*i, m)
    }

    /// A `Config` entry at `index` (past every one held) was appended.
    pub(crate) fn push(&mut self, index: Index, m: Membership) {
        debug_assert!(self.latest().0 < index, "configurations out of order");
        self.later.push((index, m));
        self.version += 1;
    }

    /// The log from `from` on was truncated: its configurations are rolled back.
    pub(crate) fn truncate_from(&mut self, from: Index) {
        let keep = self.later.partition_point(|(i, _)| *i < from);
        if keep < self.later.len() {
            self.later.truncate(keep);
            self.version += 1;
        }
    }

    /// The log up to `index` was compacted into a snapshot: the configuration in force there
    /// becomes the base. The latest does not change.
    pub(crate) fn compact_to(&mut self, index: Index) {
        let p = self.later.partition_point(|(i, _)| *i <= index);
        if p > 0 {
            self.base = self.later.drain(..p).next_back().expect("p > 0");
        }
    }

    /// The base is `base` (an installed snapshot's), and only later entries after it stay.
    pub(crate) fn rebase(&mut self, snapshot_index: Index, base: (Index, Membership)) {
        self.later.retain(|(i, _)| *i > snapshot_index);
        self.base = base;
        self.version += 1;
    }

    /// The log was discarded for a snapshot: `base` (its configuration) is all there is.
    pub(crate) fn reset(&mut self, base: (Index, Membership)) {
        self.later.clear();
        self.base = base;
        self.version += 1;
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Every configuration entry after the snapshot, in order (for invariant checks).
    #[cfg(any(test, feature = "explore"))]
    pub(crate) fn later(&self) -> &[(Index, Membership)] {
        &self.later
    }

    #[cfg(any(test, feature = "explore"))]
    pub(crate) fn base(&self) -> (Index, &Membership) {
        (self.base.0, &self.base.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;

    fn m(ids: &[u64]) -> Membership {
        Membership::from_voters(ids.iter().map(|i| NodeId(*i))).unwrap()
    }

    #[test]
    fn latest_at_truncate_and_compact_follow_the_log() {
        let mut h = ConfigHistory::new((Index(0), m(&[1, 2, 3])));
        h.push(Index(4), m(&[1, 2, 3, 4]));
        h.push(Index(9), m(&[2, 3, 4]));
        assert_eq!(h.latest(), (Index(9), &m(&[2, 3, 4])));
        assert_eq!(h.at(Index(3)), (Index(0), &m(&[1, 2, 3])));
        assert_eq!(h.at(Index(4)), (Index(4), &m(&[1, 2, 3, 4])));
        assert_eq!(h.at(Index(8)), (Index(4), &m(&[1, 2, 3, 4])));
        // Truncating from 9 rolls the latest back; from 10 changes nothing.
        let v = h.version();
        h.truncate_from(Index(10));
        assert_eq!(h.version(), v);
        h.truncate_from(Index(9));
        assert!(h.version() > v);
        assert_eq!(h.latest(), (Index(4), &m(&[1, 2, 3, 4])));
        // Compacting past 4 makes it the base.
        h.compact_to(Index(6));
        assert_eq!(h.base(), (Index(4), &m(&[1, 2, 3, 4])));
        assert!(h.later().is_empty());
        assert_eq!(h.latest(), (Index(4), &m(&[1, 2, 3, 4])));
        // An installed snapshot's configuration replaces the base; later entries stay.
        h.push(Index(12), m(&[4, 5]));
        h.rebase(Index(10), (Index(8), m(&[4])));
        assert_eq!(h.base(), (Index(8), &m(&[4])));
        assert_eq!(h.latest(), (Index(12), &m(&[4, 5])));
    }
}
