//! The MIT 6.5840 Raft lab's parts 3A and 3B on real threads: nodes of the threaded runtime
//! behind the lab's fault-injecting network, with the lab's limits.

use skiff_tests::lab_cluster::LabCluster;
use skiff_verify::lab::{each_seed, suite_3ab as s};

/// Real time is slow: one seed per test (the simulator runs many).
const SEEDS: std::ops::Range<u64> = 0..1;

#[test]
fn initial_election_3a() {
    each_seed(SEEDS, s::initial_election::<LabCluster>);
}

#[test]
fn re_election_3a() {
    each_seed(SEEDS, s::re_election::<LabCluster>);
}

#[test]
fn many_elections_3a() {
    each_seed(SEEDS, s::many_elections::<LabCluster>);
}

#[test]
fn basic_agree_3b() {
    each_seed(SEEDS, s::basic_agree::<LabCluster>);
}

#[test]
fn rpc_bytes_3b() {
    each_seed(SEEDS, s::rpc_bytes::<LabCluster>);
}

#[test]
fn follower_failure_3b() {
    each_seed(SEEDS, s::follower_failure::<LabCluster>);
}

#[test]
fn leader_failure_3b() {
    each_seed(SEEDS, s::leader_failure::<LabCluster>);
}

#[test]
fn fail_agree_3b() {
    each_seed(SEEDS, s::fail_agree::<LabCluster>);
}

#[test]
fn fail_no_agree_3b() {
    each_seed(SEEDS, s::fail_no_agree::<LabCluster>);
}

#[test]
fn concurrent_starts_3b() {
    each_seed(SEEDS, s::concurrent_starts::<LabCluster>);
}

#[test]
fn rejoin_3b() {
    each_seed(SEEDS, s::rejoin::<LabCluster>);
}

#[test]
fn backup_3b() {
    each_seed(SEEDS, s::backup::<LabCluster>);
}

#[test]
fn count_3b() {
    each_seed(SEEDS, s::count::<LabCluster>);
}
