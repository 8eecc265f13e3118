//! [`Node::fingerprint`]: a hash of everything that decides how a node behaves from here on,
//! for the exhaustive explorer in `skiff-verify`, which deduplicates the cluster states it
//! reaches by hashing them (feature `explore`).
//!
//! Obligation: two nodes that hash alike (barring collisions) answer every sequence of
//! inputs the explorer can feed with the same outputs, up to persist sequence numbers. What
//! is left out, and why it is safe to leave out:
//! - `cfg`: fixed per node for a run (the explorer hashes node ids by position).
//! - `rng` and `election_timeout`: the explorer never ticks a follower or candidate; their
//!   elections are its `Campaign` actions.
//! - `ignored`: counters only, never read by the protocol.
//! - The absolute persist sequence numbers: every one is hashed relative to `acked_seq`.
//! - The config history's version: a change counter the node compares only with itself.
//! - The lease clock, with lease reads off: nothing reads it then (beats carry 0).

use core::hash::{Hash, Hasher};

use super::Node;

impl Node {
    /// Feeds this node's behaviour-deciding state into `h` (see the module documentation for
    /// what is left out). Messages held for a persist are hashed as their wire encoding.
    pub fn fingerprint<H: Hasher>(&self, h: &mut H) {
        let rel = |seq: u64| seq.wrapping_sub(self.acked_seq);
        (self.term, self.vote, self.role, self.leader).hash(h);
        self.log.fingerprint(h, self.acked_seq);
        (self.election_elapsed, self.heartbeat_elapsed).hash(h);
        self.tally.hash(h);
        self.self_vote_seq.map(rel).hash(h);
        self.progress.hash(h);
        self.reads.hash(h);
        if self.leases() {
            self.lease.hash(h);
        }
        self.transfer.hash(h);
        self.incoming.hash(h);
        (self.snapshot_unpersisted, self.snapshot_apply_after.map(rel)).hash(h);
        (self.snapshot_seq.map(rel), self.snapshot_loading).hash(h);
        (rel(self.next_seq), self.persisted_hard, self.unpersisted_from, self.truncate_from).hash(h);
        for (seq, m) in &self.held {
            rel(*seq).hash(h);
            postcard::to_allocvec(m).expect("a message encodes").hash(h);
        }
        self.reported.hash(h);
        self.reported_membership.hash(h);
    }
}
