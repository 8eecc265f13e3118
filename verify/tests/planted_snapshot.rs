//! The known way to get snapshots in storage wrong, planted in every node, is caught by the
//! swarm: a node that drops a received snapshot's bytes before its service installed them
//! leaves that service behind (found with `skiff-verify sweep --seeds 3000 --start 4000000
//! --plant release-before-install`: 878 of the 3000 seeds, all StateMachineSafety).

use skiff_core::PlantedBug;
use skiff_verify::checker::Invariant;
use skiff_verify::swarm::{profile, run_seed_planted, Workload};

#[test]
fn releasing_a_snapshot_before_the_service_installs_it_breaks_state_machine_safety() {
    let seed = 4_000_003;
    assert!(profile(seed).0.snapshots_in_storage, "the seed keeps snapshots in storage");
    let clean = run_seed_planted(seed, false, Workload::Raft, None);
    assert!(clean.violation.is_none(), "seed {seed} fails without a planted bug: {:?}", clean.violation);
    let planted = run_seed_planted(seed, false, Workload::Raft, Some(PlantedBug::ReleaseBeforeInstall));
    let v = planted.violation.unwrap_or_else(|| panic!("the early release went unnoticed on seed {seed}"));
    assert_eq!(v.invariant, Invariant::StateMachineSafety, "seed {seed}: {v}");
}
