//! Lease reads (Raft thesis §6.4.1), opt-in ([`crate::ConfigBuilder::lease_reads`]): a leader
//! answers a read at once, with no heartbeat round, while it holds a lease.
//!
//! Why a lease is safe. A follower that receives a heartbeat from its leader resets its
//! election timer and, under check-quorum, refuses pre-votes and votes (all but a transfer's)
//! until `election_ticks_min` of its ticks pass: at least `election_ticks_min - 1` tick
//! lengths after the receipt. Every heartbeat carries the leader's clock (`sent_at`, the
//! ticks it has taken) and the answer echoes it; the lease dates from the newest beat a
//! quorum answered (the leader counts itself at its clock) and lasts
//! [`crate::Config::lease_ticks`], that span shrunk by the drift bound. While it holds, no
//! quorum can elect another leader, so nothing was committed that the leader does not know.
//!
//! What else must hold, and where it is kept:
//! - a leadership transfer overrides the followers' refusal, so a leader never serves from
//!   its lease again in a term in which it started one (`Lease::revoked`);
//! - a node that restarts forgot whom it heard: with leases on it refuses votes for an
//!   election timeout after it starts (`Lease::quiet_after_start`), and a follower that
//!   hears a leader ignores `Input::Campaign`;
//! - the leader must have committed an entry of its term (as for ReadIndex);
//! - a follower that hears its leader drops messages of a higher term that no leader sent
//!   (answers of an old election): adopting the term would clear its leader and end its
//!   refusal early (`Node::keeps_lease_against`);
//! - the driver delivers every tick that elapsed before each read and each peer message,
//!   and the nodes' tick lengths stay within the drift bound of the nominal one: the
//!   obligations of the configuration.
//!
//! Invariant: `Progress::lease_acked` is 0 or one more than a `sent_at` this leader stamped
//! in its current term, so never above `clock + 1`.

use super::quorum::joint_index;
use super::Node;
use crate::io::Role;
use crate::planted::PlantedBug;
use crate::types::NodeId;

/// A node's lease bookkeeping (meaningful only with lease reads on).
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(feature = "explore", derive(Hash))]
pub(super) struct Lease {
    /// Ticks this node has taken since it started: the clock heartbeats are stamped with.
    pub clock: u64,
    /// Leader: a transfer was started in this term, so the lease no longer protects reads.
    pub revoked: bool,
    /// The node started less than an election timeout ago and may have forgotten a leader
    /// it was refusing votes for: it refuses them as though it heard one.
    pub quiet_after_start: bool,
    /// Reads answered from the lease (a counter for `View`).
    pub served: u64,
}

impl Node {
    /// Whether lease reads are on.
    pub(super) fn leases(&self) -> bool {
        self.cfg.lease_drift_permille().is_some()
    }

    /// What a heartbeat sent now is stamped with (0 with leases off, so that a run without
    /// them never depends on the clock).
    pub(super) fn heartbeat_stamp(&self) -> u64 {
        if self.leases() {
            self.lease.clock
        } else {
            0
        }
    }

    /// One tick of the lease clock; the start-up quiet ends after an election timeout.
    pub(super) fn tick_lease(&mut self) {
        self.lease.clock += 1;
        if self.lease.clock >= u64::from(self.cfg.election_ticks_min()) {
            self.lease.quiet_after_start = false;
        }
    }

    /// Leader: `from` answered the heartbeat stamped `sent_at`.
    pub(super) fn lease_acked(&mut self, from: NodeId, sent_at: u64) {
        if !self.leases() {
            return;
        }
        if sent_at > self.lease.clock {
            // We never stamped a beat in the future: a forged or corrupt answer.
            self.ignored.malformed += 1;
            return;
        }
        // Planted: the lease dates from the answer's arrival, not from the beat's send.
        let dated = if self.cfg.has_bug(PlantedBug::LeaseFromAnswer) { self.lease.clock } else { sent_at };
        if let Some(pr) = self.progress.get_mut(&from) {
            pr.lease_acked = pr.lease_acked.max(dated + 1);
        }
    }

    /// Leader: a transfer starts; its `TimeoutNow` may override the followers' refusal of
    /// votes at any time from now on, however the transfer ends.
    pub(super) fn revoke_lease(&mut self) {
        if !self.cfg.has_bug(PlantedBug::LeaseThroughTransfer) {
            self.lease.revoked = true;
        }
    }

    /// Whether a read may be answered now from the lease: leases are on, we lead, no
    /// transfer was started in this term, and a quorum answered a beat sent less than
    /// `lease_ticks` ago. (The caller also requires an entry of our term committed.)
    pub(super) fn lease_holds(&self) -> bool {
        if !self.leases() || self.role != Role::Leader || self.lease.revoked {
            return false;
        }
        if self.transfer.is_some() && !self.cfg.has_bug(PlantedBug::LeaseThroughTransfer) {
            return false;
        }
        let (me, clock, progress) = (self.cfg.id(), self.lease.clock, &self.progress);
        // One more than the send time of the newest beat a quorum answered (0: none).
        let from = joint_index(&self.counting(), |id| {
            if id == me {
                clock + 1
            } else {
                progress.get(&id).map_or(0, |p| p.lease_acked)
            }
        });
        from > 0 && clock < from - 1 + u64::from(self.cfg.lease_ticks())
    }
}
