//! The MIT 6.5840 KV lab's part 4B (snapshots at max_raft_state = 1000 bytes): 9 tests, with
//! the lab's bounds (persisted Raft state <= 8000 bytes, snapshot <= 500 bytes where asked).

use skiff_tests::kv_suite::{self as s, Generic};

/// One seed per test: real time is slow (the simulator's KV sweep covers many seeds).
const SEED: u64 = 1;

#[test]
fn snapshot_rpc_4b() {
    s::snapshot_rpc(SEED);
}

#[test]
fn snapshot_size_4b() {
    s::snapshot_size(SEED);
}

#[test]
fn speed_4b() {
    s::speed(Some(1000), SEED);
}

#[test]
fn snapshot_recover_4b() {
    s::generic(Generic { crash: true, max_raft_state: Some(1000), ..Generic::new(1, 5) }, SEED);
}

#[test]
fn snapshot_recover_many_clients_4b() {
    s::generic(Generic { crash: true, max_raft_state: Some(1000), ..Generic::new(20, 5) }, SEED);
}

#[test]
fn snapshot_unreliable_4b() {
    s::generic(Generic { unreliable: true, max_raft_state: Some(1000), ..Generic::new(5, 5) }, SEED);
}

#[test]
fn snapshot_unreliable_recover_4b() {
    s::generic(Generic { unreliable: true, crash: true, max_raft_state: Some(1000), ..Generic::new(5, 5) }, SEED);
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_4b() {
    s::generic(
        Generic { unreliable: true, crash: true, partitions: true, max_raft_state: Some(1000), ..Generic::new(5, 5) },
        SEED,
    );
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_linearizable_4b() {
    s::generic(
        Generic {
            unreliable: true,
            crash: true,
            partitions: true,
            max_raft_state: Some(1000),
            random_keys: true,
            ..Generic::new(15, 7)
        },
        SEED,
    );
}
