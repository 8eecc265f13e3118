//! Bugs that can be planted in the membership code, for verification only: the simulator and
//! the tests plant one to show that a check catches it. [`crate::ConfigBuilder::plant`]
//! exists only with the `planted-bugs` cargo feature; without it no bug can be planted and
//! each site's test folds to `false`.

/// A known wrong way to do membership changes.
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
}
