//! The MIT 6.5840 Raft lab's part 3D ([`skiff_verify::lab::suite_3d`]) on the simulator; the
//! checker verifies every installed snapshot against the committed state at its index.

use skiff_verify::harness::Cluster;
use skiff_verify::lab::{each_seed, suite_3d as s};

const SEEDS: std::ops::Range<u64> = 0..4;

#[test]
fn snapshot_all_crash_3d() {
    each_seed(SEEDS, s::snapshot_all_crash::<Cluster>);
}

#[test]
fn snapshot_init_3d() {
    each_seed(SEEDS, s::snapshot_init::<Cluster>);
}

#[test]
fn snapshot_basic_3d() {
    each_seed(SEEDS, s::snapshot_basic::<Cluster>);
}

#[test]
fn snapshot_install_3d() {
    each_seed(SEEDS, s::snapshot_install::<Cluster>);
}

#[test]
fn snapshot_install_unreliable_3d() {
    each_seed(SEEDS, s::snapshot_install_unreliable::<Cluster>);
}

#[test]
fn snapshot_install_crash_3d() {
    each_seed(SEEDS, s::snapshot_install_crash::<Cluster>);
}

#[test]
fn snapshot_install_uncrash_3d() {
    each_seed(SEEDS, s::snapshot_install_uncrash::<Cluster>);
}
