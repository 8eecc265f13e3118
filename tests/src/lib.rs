//! Shared pieces of skiff's integration tests: a service that records what it applied and
//! snapshots every few entries, used by the TCP end-to-end test and the lab cluster.

pub mod applier;
