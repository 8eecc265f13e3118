//! The MIT 6.5840 KV lab's part 4A (no snapshots) on the threaded runtime: 14 tests, every
//! generic one checked for linearizability, appends present once and in order.

use skiff_tests::kv_suite::{self as s, Generic};

/// One seed per test: real time is slow (the simulator's KV sweep covers many seeds).
const SEED: u64 = 1;

#[test]
fn basic_4a() {
    s::generic(Generic::new(1, 5), SEED);
}

#[test]
fn speed_4a() {
    s::speed(None, SEED);
}

#[test]
fn concurrent_4a() {
    s::generic(Generic::new(5, 5), SEED);
}

#[test]
fn unreliable_4a() {
    s::generic(Generic { unreliable: true, ..Generic::new(5, 5) }, SEED);
}

#[test]
fn unreliable_one_key_4a() {
    s::unreliable_one_key(SEED);
}

#[test]
fn one_partition_4a() {
    s::one_partition(SEED);
}

#[test]
fn many_partitions_one_client_4a() {
    s::generic(Generic { partitions: true, ..Generic::new(1, 5) }, SEED);
}

#[test]
fn many_partitions_many_clients_4a() {
    s::generic(Generic { partitions: true, ..Generic::new(5, 5) }, SEED);
}

#[test]
fn persist_one_client_4a() {
    s::generic(Generic { crash: true, ..Generic::new(1, 5) }, SEED);
}

#[test]
fn persist_concurrent_4a() {
    s::generic(Generic { crash: true, ..Generic::new(5, 5) }, SEED);
}

#[test]
fn persist_concurrent_unreliable_4a() {
    s::generic(Generic { unreliable: true, crash: true, ..Generic::new(5, 5) }, SEED);
}

#[test]
fn persist_partition_4a() {
    s::generic(Generic { crash: true, partitions: true, ..Generic::new(5, 5) }, SEED);
}

#[test]
fn persist_partition_unreliable_4a() {
    s::generic(Generic { unreliable: true, crash: true, partitions: true, ..Generic::new(5, 5) }, SEED);
}

#[test]
fn persist_partition_unreliable_linearizable_4a() {
    s::generic(
        Generic { unreliable: true, crash: true, partitions: true, random_keys: true, ..Generic::new(15, 7) },
        SEED,
    );
}
