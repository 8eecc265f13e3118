//! The MIT 6.5840 Raft lab's part 3D on real threads: services snapshot every 10 entries,
//! lagging servers catch up by InstallSnapshot, persisted Raft state stays under 2000 bytes.

use skiff_tests::lab_cluster::LabCluster;
use skiff_verify::lab::{each_seed, suite_3d as s};

/// Real time is slow: one seed per test (the simulator runs many).
const SEEDS: std::ops::Range<u64> = 0..1;

#[test]
fn snapshot_all_crash_3d() {
    each_seed(SEEDS, s::snapshot_all_crash::<LabCluster>);
}

#[test]
fn snapshot_init_3d() {
    each_seed(SEEDS, s::snapshot_init::<LabCluster>);
}

#[test]
fn snapshot_basic_3d() {
    each_seed(SEEDS, s::snapshot_basic::<LabCluster>);
}

#[test]
fn snapshot_install_3d() {
    each_seed(SEEDS, s::snapshot_install::<LabCluster>);
}

#[test]
fn snapshot_install_unreliable_3d() {
    each_seed(SEEDS, s::snapshot_install_unreliable::<LabCluster>);
}

#[test]
fn snapshot_install_crash_3d() {
    each_seed(SEEDS, s::snapshot_install_crash::<LabCluster>);
}

#[test]
fn snapshot_install_uncrash_3d() {
    each_seed(SEEDS, s::snapshot_install_uncrash::<LabCluster>);
}
