//! The exhaustive explorer: it finds each planted membership bug within a small bound, finds
//! nothing in the correct core, and its fingerprint merges exactly the states that are the
//! same (reached in a different order) and no others.

use std::time::Duration;

use skiff_core::PlantedBug;
use skiff_verify::checker::Invariant;
use skiff_verify::explore::{case, explore, Action, Budgets, Case, Limits, World, CASES};

fn limits(depth: u32) -> Limits {
    Limits { depth, max_states: 2_000_000, time: Duration::from_secs(600) }
}

/// Faults limited to one crash, no client command: the planted bugs need no more.
fn lean(name: &str) -> Case {
    let mut c = case(name).expect("known case");
    c.budgets = Budgets { crashes: 1, duplicates: 0, drops: 0, heartbeats: 0, proposals: 0 };
    c
}

fn finds(name: &str, bug: PlantedBug, depth: u32, expected: &[Invariant]) {
    let report = explore(&lean(name), Some(bug), limits(depth)).expect("the start is sound");
    let Some((v, path, trace)) = &report.violation else {
        panic!("{bug:?} not found in {name} to depth {depth} ({} states)", report.states)
    };
    assert!(expected.contains(&v.invariant), "{bug:?} in {name}: unexpected {v}\n{}", trace.join("\n"));
    assert!(path.len() as u32 <= depth);
    // The replayed trace ends at the same violation: the path is a real counterexample.
    assert!(trace.last().is_some_and(|l| l.contains("violation")), "{}", trace.join("\n"));
}

#[test]
fn finds_a_leader_that_counts_itself_after_removing_itself() {
    finds("remove-leader", PlantedBug::LeaderCountsSelfWhenRemoved, 6, &[Invariant::CommittedNotDurableOnMajority]);
}

#[test]
fn finds_a_change_before_the_own_term_entry_committed() {
    finds("add-remove", PlantedBug::NoOwnTermGuard, 7, &[Invariant::ConfigGuard]);
}

#[test]
fn finds_a_configuration_not_rolled_back() {
    finds("add-remove", PlantedBug::NoConfigRollback, 8, &[Invariant::ConfigNotLatest]);
}

#[test]
fn finds_a_joint_quorum_that_ignores_the_outgoing_voters() {
    finds(
        "joint-replace",
        PlantedBug::IncomingOnlyQuorum,
        9,
        &[Invariant::ElectedWithoutQuorum, Invariant::CommittedNotDurableOnMajority],
    );
}

#[test]
fn the_correct_core_has_no_violation_within_depth_5() {
    for name in CASES {
        let c = case(name).expect("listed");
        let report = explore(&c, None, limits(5)).expect("the start is sound");
        assert!(report.violation.is_none(), "{name}: {:?}", report.violation.map(|(v, _, t)| (v, t)));
        assert!(report.complete, "{name}: the bound was not covered");
        assert!(report.per_depth.len() == 6, "{name}: some depth reached no new state: {:?}", report.per_depth);
    }
}

/// Two persists on different nodes commute: both orders reach one fingerprint. Persisting
/// only one of them does not.
#[test]
fn fingerprints_merge_commuting_orders_only() {
    let c = lean("add-remove");
    let mut w = World::start(&c, None, false).expect("start");
    w.apply(&c, Action::Change(0, 0)).expect("change accepted");
    let delivers: Vec<Action> = w.actions(&c).into_iter().filter(|a| matches!(a, Action::Deliver(_))).collect();
    assert!(delivers.len() >= 2, "the change was sent to the followers: {delivers:?}");
    // Deliver the append to two followers, in one order and then the other.
    let mut a = w.clone();
    let mut b = w.clone();
    let to = |w: &World, k: usize| w.sim.held_messages()[k].to;
    let order = |w: &mut World, first_to: u64| {
        let k = (0..w.sim.held_messages().len()).find(|&k| to(w, k).0 == first_to).expect("an append to it");
        w.apply(&c, Action::Deliver(k)).expect("delivered");
    };
    order(&mut a, 2);
    order(&mut a, 3);
    order(&mut b, 3);
    order(&mut b, 2);
    assert_eq!(a.fingerprint(), b.fingerprint(), "the same state reached in two orders");
    let mut one = w.clone();
    order(&mut one, 2);
    assert_ne!(one.fingerprint(), a.fingerprint());
    assert_ne!(one.fingerprint(), w.fingerprint());
    let mut persisted = a.clone();
    persisted.apply(&c, Action::Persist(1)).expect("persist");
    assert_ne!(persisted.fingerprint(), a.fingerprint(), "a persist changes the state");
}
