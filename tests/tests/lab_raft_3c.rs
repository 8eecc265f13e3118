//! The MIT 6.5840 Raft lab's part 3C on real threads: crashes lose what the storage thread
//! had not written; restarts recover from the surviving in-memory disk.

use skiff_tests::lab_cluster::LabCluster;
use skiff_verify::lab::{each_seed, suite_3c as s};

/// Real time is slow: one seed per test (the simulator runs many).
const SEEDS: std::ops::Range<u64> = 0..1;

#[test]
fn persist1_3c() {
    each_seed(SEEDS, s::persist1::<LabCluster>);
}

#[test]
fn persist2_3c() {
    each_seed(SEEDS, s::persist2::<LabCluster>);
}

#[test]
fn persist3_3c() {
    each_seed(SEEDS, s::persist3::<LabCluster>);
}

#[test]
fn unreliable_agree_3c() {
    each_seed(SEEDS, s::unreliable_agree::<LabCluster>);
}

#[test]
fn figure8_3c() {
    each_seed(SEEDS, s::figure8::<LabCluster>);
}

#[test]
fn figure8_unreliable_3c() {
    each_seed(SEEDS, s::figure8_unreliable::<LabCluster>);
}

#[test]
fn reliable_churn_3c() {
    each_seed(SEEDS, s::reliable_churn::<LabCluster>);
}

#[test]
fn unreliable_churn_3c() {
    each_seed(SEEDS, s::unreliable_churn::<LabCluster>);
}
