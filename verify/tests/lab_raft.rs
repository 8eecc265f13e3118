//! The MIT 6.5840 Raft lab's parts 3A and 3B ([`skiff_verify::lab::suite_3ab`]) on the
//! deterministic simulator, several seeds each; a failure names the seed, which replays it.

use skiff_verify::harness::Cluster;
use skiff_verify::lab::{each_seed, suite_3ab as s};

const SEEDS: std::ops::Range<u64> = 0..4;

#[test]
fn initial_election_3a() {
    each_seed(SEEDS, s::initial_election::<Cluster>);
}

#[test]
fn re_election_3a() {
    each_seed(SEEDS, s::re_election::<Cluster>);
}

#[test]
fn many_elections_3a() {
    each_seed(SEEDS, s::many_elections::<Cluster>);
}

#[test]
fn basic_agree_3b() {
    each_seed(SEEDS, s::basic_agree::<Cluster>);
}

#[test]
fn rpc_bytes_3b() {
    each_seed(SEEDS, s::rpc_bytes::<Cluster>);
}

#[test]
fn follower_failure_3b() {
    each_seed(SEEDS, s::follower_failure::<Cluster>);
}

#[test]
fn leader_failure_3b() {
    each_seed(SEEDS, s::leader_failure::<Cluster>);
}

#[test]
fn fail_agree_3b() {
    each_seed(SEEDS, s::fail_agree::<Cluster>);
}

#[test]
fn fail_no_agree_3b() {
    each_seed(SEEDS, s::fail_no_agree::<Cluster>);
}

#[test]
fn concurrent_starts_3b() {
    each_seed(SEEDS, s::concurrent_starts::<Cluster>);
}

#[test]
fn rejoin_3b() {
    each_seed(SEEDS, s::rejoin::<Cluster>);
}

#[test]
fn backup_3b() {
    each_seed(SEEDS, s::backup::<Cluster>);
}

#[test]
fn count_3b() {
    each_seed(SEEDS, s::count::<Cluster>);
}
