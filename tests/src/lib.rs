//! Shared pieces of skiff's integration tests: an applier that checks and records what a node
//! applied (and snapshots every few entries), the lab's fault-injecting network, and the
//! lab's tester on real threads.

pub mod applier;
pub mod kv_lab;
pub mod kv_suite;
pub mod kv_tcp;
pub mod lab_cluster;
pub mod lab_net;
pub mod load;
pub mod tcp_node;
