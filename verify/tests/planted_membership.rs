//! Each known membership bug, planted in every node, is caught by the swarm: a seed that is
//! clean without it violates the invariant named here with it. (Found with
//! `skiff-verify sweep --seeds 3000 --plant BUG`; the note on issue 14 gives the counts. Two
//! seeds were replaced when lease reads joined the swarm's draws and changed their runs.
//! Every seed here keeps its snapshots in memory (`snapshots_in_storage` is drawn for half
//! the seeds): that path's changes leave these runs alone.)

use skiff_core::PlantedBug;
use skiff_verify::checker::Invariant;
use skiff_verify::swarm::{profile, run_seed_planted, Workload};

fn caught(bug: PlantedBug, seed: u64, by: Invariant) {
    assert!(!profile(seed).0.snapshots_in_storage, "seed {seed} keeps snapshots in storage: pick another");
    let clean = run_seed_planted(seed, false, Workload::Raft, None);
    assert!(clean.violation.is_none(), "seed {seed} fails without a planted bug: {:?}", clean.violation);
    let planted = run_seed_planted(seed, false, Workload::Raft, Some(bug));
    let v = planted.violation.unwrap_or_else(|| panic!("{bug:?} went unnoticed on seed {seed}"));
    assert_eq!(v.invariant, by, "{bug:?} on seed {seed}: {v}");
}

#[test]
fn a_change_before_the_leaders_own_term_commits_breaks_the_guard() {
    caught(PlantedBug::NoOwnTermGuard, 17, Invariant::ConfigGuard);
}

#[test]
fn counting_only_the_incoming_voters_while_joint_elects_and_commits_without_a_quorum() {
    caught(PlantedBug::IncomingOnlyQuorum, 31, Invariant::ElectedWithoutQuorum);
    caught(PlantedBug::IncomingOnlyQuorum, 300, Invariant::CommittedNotDurableOnMajority);
}

#[test]
fn a_removed_leader_counting_itself_commits_without_a_quorum() {
    caught(PlantedBug::LeaderCountsSelfWhenRemoved, 16, Invariant::CommittedNotDurableOnMajority);
}

#[test]
fn a_truncated_configuration_that_stays_in_force_is_not_the_latest() {
    caught(PlantedBug::NoConfigRollback, 164, Invariant::ConfigNotLatest);
}

#[test]
fn barring_voters_whose_removal_is_uncommitted_from_campaigning_loses_liveness() {
    caught(PlantedBug::LatestOnlyCampaign, 356, Invariant::Liveness);
}
