//! quickcheck properties: fault schedules never break an invariant (and shrink when they
//! do); configurations are validated. The core's pure parts are checked against models in
//! the core itself (`core/src/raft/properties.rs`).

use quickcheck::{QuickCheck, TestResult};
use skiff_core::{Config, ConfigError, NodeId};
use skiff_verify::schedule::{run_schedule, Schedule};

#[test]
fn fault_schedules_keep_every_invariant() {
    fn prop(s: Schedule) -> TestResult {
        match run_schedule(&s) {
            Ok(_) => TestResult::passed(),
            Err(v) => TestResult::error(format!("{v}")),
        }
    }
    QuickCheck::new().tests(150).quickcheck(prop as fn(Schedule) -> TestResult);
}

#[test]
fn config_validation_refuses_bad_configs() {
    let ok = Config::builder(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)], 1).build();
    assert!(ok.is_ok());
    let e = |b: skiff_core::ConfigBuilder| b.build().unwrap_err();
    assert_eq!(e(Config::builder(NodeId(1), [], 1)), ConfigError::NoVoters);
    assert_eq!(e(Config::builder(NodeId(4), [NodeId(1), NodeId(2)], 1)), ConfigError::SelfNotVoter { id: NodeId(4) });
    assert_eq!(e(Config::builder(NodeId(1), [NodeId(1), NodeId(1)], 1)), ConfigError::DuplicateVoter { id: NodeId(1) });
    assert_eq!(e(Config::builder(NodeId(1), [NodeId(1)], 1).heartbeat_ticks(0)), ConfigError::ZeroHeartbeat);
    assert_eq!(
        e(Config::builder(NodeId(1), [NodeId(1)], 1).heartbeat_ticks(10).election_ticks(10, 20)),
        ConfigError::ElectionNotAboveHeartbeat { election_min: 10, heartbeat: 10 }
    );
    assert_eq!(
        e(Config::builder(NodeId(1), [NodeId(1)], 1).election_ticks(20, 20)),
        ConfigError::EmptyElectionRange { min: 20, max: 20 }
    );
    assert_eq!(
        e(Config::builder(NodeId(1), [NodeId(1)], 1).max_inflight_msgs(0)),
        ConfigError::ZeroLimit { name: "max_inflight_msgs" }
    );
    let addresses = |ids: &[u64]| ids.iter().map(|&i| (NodeId(i), bytes::Bytes::from_static(b"addr"))).collect();
    assert_eq!(
        e(Config::builder(NodeId(1), [NodeId(1), NodeId(2)], 1).initial_addresses(addresses(&[1, 3]))),
        ConfigError::AddressOfNonVoter { id: NodeId(3) }
    );
    // The bootstrap voters, with their addresses, are the configuration a fresh node uses.
    let c = Config::builder(NodeId(2), [NodeId(2), NodeId(1)], 1).initial_addresses(addresses(&[1])).build().unwrap();
    assert_eq!(c.bootstrap_membership().voters(), &[NodeId(1), NodeId(2)]);
    assert_eq!(c.bootstrap_membership().addresses().len(), 1);
    // A joining node starts with no configuration, and none is asked of it.
    let j = Config::joining(NodeId(9), 1).build().unwrap();
    assert!(j.is_joining() && j.bootstrap_membership().is_empty() && j.initial_voters().is_empty());
    assert_eq!(
        e(Config::joining(NodeId(9), 1).initial_addresses(addresses(&[1]))),
        ConfigError::AddressOfNonVoter { id: NodeId(1) }
    );
    // Every error says what is wrong in words.
    assert!(ConfigError::SelfNotVoter { id: NodeId(4) }.to_string().contains("node id 4"));
}
