//! The MIT 6.5840 Raft lab's part 3C ([`skiff_verify::lab::suite_3c`]) on the simulator: a
//! crash loses every persist not yet acknowledged, and the checker runs after every event.

use skiff_verify::harness::Cluster;
use skiff_verify::lab::{each_seed, suite_3c as s};

const SEEDS: std::ops::Range<u64> = 0..4;

#[test]
fn persist1_3c() {
    each_seed(SEEDS, s::persist1::<Cluster>);
}

#[test]
fn persist2_3c() {
    each_seed(SEEDS, s::persist2::<Cluster>);
}

#[test]
fn persist3_3c() {
    each_seed(SEEDS, s::persist3::<Cluster>);
}

#[test]
fn unreliable_agree_3c() {
    each_seed(SEEDS, s::unreliable_agree::<Cluster>);
}

#[test]
fn figure8_3c() {
    each_seed(SEEDS, s::figure8::<Cluster>);
}

#[test]
fn figure8_unreliable_3c() {
    each_seed(SEEDS, s::figure8_unreliable::<Cluster>);
}

#[test]
fn reliable_churn_3c() {
    each_seed(SEEDS, s::reliable_churn::<Cluster>);
}

#[test]
fn unreliable_churn_3c() {
    each_seed(SEEDS, s::unreliable_churn::<Cluster>);
}
