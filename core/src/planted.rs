//! Bugs that can be planted in the membership, lease and snapshot code, for verification only: the simulator and
//! the tests plant one to show that a check catches it. [`crate::ConfigBuilder::plant`]
//! exists only with the `planted-bugs` cargo feature; without it no bug can be planted and
//! each site's test folds to `false`.

/// A known wrong way to do membership changes or lease reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlantedBug {
    /// A leader makes a change before it has committed an entry of its own term (the
    /// single-server change bug of 2015).
    NoOwnTermGuard,
    /// While joint, commitment, elections, ReadIndex and check-quorum count the incoming
    /// voters only.
    IncomingOnlyQuorum,
    /// A leader that removed itself counts its own log toward the new configuration.
    LeaderCountsSelfWhenRemoved,
    /// Truncating a configuration entry does not roll the configuration back.
    NoConfigRollback,
    /// Only voters of the latest configuration may campaign (not those whose removal is
    /// not committed yet).
    LatestOnlyCampaign,
    /// Removed nodes are dropped from replication as soon as their removal commits.
    NoDeparting,
    /// Lease reads: the lease dates from when a heartbeat's answer arrives, not from when
    /// the beat was sent (a slow network then stretches it past the followers' refusal).
    LeaseFromAnswer,
    /// Lease reads: a leadership transfer does not end the lease (its `TimeoutNow` may
    /// override the followers' refusal of votes while the lease still holds).
    LeaseThroughTransfer,
    /// Lease reads: a follower that hears its leader adopts the higher term of any message
    /// (an old election's answer), which ends its refusal of votes.
    LeaseYieldsToHigherTerm,
    /// Lease reads: a node that restarts votes at once instead of staying quiet for an
    /// election timeout (it forgot the leader whose lease it was part of).
    LeaseForgetsRestart,
    /// Snapshots in storage: a node drops a snapshot's bytes as soon as it has it, before
    /// the record carrying it is durable and the service installed it (a follower's service
    /// then never gets the snapshot it installed).
    ReleaseBeforeInstall,
}
