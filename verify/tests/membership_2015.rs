//! The single-server membership change bug (Ongaro, raft-dev, 2015), played move by move on
//! the simulator. Two single-server changes, proposed by two leaders of different terms that
//! overlap, each have a quorum in common with the configuration before them but not with
//! each other, so both commit and the logs diverge. The fix: a leader makes no change before
//! it has committed an entry of its own term.
//!
//! C0 = {1, 2, 3, 4}, n5 waits to join.
//! 1. n1 leads term 1; cut off with n5, it adds n5: C1 = C0 + n5 at (2, t1), on n1 and n5.
//! 2. n2 leads term 2 with n3 and n4; n4 is cut off. n2 removes n1: C2 = C0 - n1.
//!    - guarded: refused, since n2's own entry of term 2 cannot commit without n4;
//!    - unguarded: C2 goes in at (3, t2) and commits on {n2, n3}, a majority of C2.
//! 3. n1 leads term 3 with n4 and n5 (a majority of C1) and commits its own entry at 3.
//!    Guarded, that is legitimate (nothing of term 2 committed); unguarded, n1 leads without
//!    the entries committed at 2 and 3 (Leader Completeness), and would overwrite them.

use bytes::Bytes;
use skiff_core::{ChangeRefused, ChangeStep, DropReason, Input, JointPolicy, NodeId, PlantedBug, Role};
use skiff_verify::checker::{Invariant, Violation};
use skiff_verify::sim::{Sim, SimConfig, TICK};

const N1: usize = 0;
const N2: usize = 1;
const N3: usize = 2;
const N4: usize = 3;
const N5: usize = 4;

fn side(members: &[usize]) -> Vec<bool> {
    (0..5).map(|i| members.contains(&i)).collect()
}

fn is_leader(sim: &Sim, i: usize) -> bool {
    sim.view(i).is_some_and(|v| v.role == Role::Leader)
}

/// Campaigns on `i` until it leads (a refused campaign teaches it the current term).
fn elect(sim: &mut Sim, i: usize) -> Result<bool, Violation> {
    for _ in 0..3 {
        sim.step(i, Input::Campaign)?;
        let end = sim.now() + 20 * TICK;
        while sim.now() < end && !is_leader(sim, i) {
            sim.run_until(sim.now() + 1)?;
        }
        if is_leader(sim, i) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Plays the scenario with `plant` in every node (and `mute`d checks), returning the
/// first violation, if any, and the refusal of step 2 (if it was refused).
fn play(plant: Option<PlantedBug>, mute: &[Invariant]) -> (Result<(), Violation>, Option<DropReason>) {
    let mut cfg = SimConfig::new(4, 2015);
    cfg.slots = 5;
    // Nothing happens unless the test says so.
    cfg.election_ticks = (10_000, 20_000);
    cfg.heartbeat_ticks = 5;
    cfg.pre_vote = false;
    cfg.check_quorum = false;
    cfg.persist_delay = (1, 2);
    cfg.net.delay = (5, 5);
    cfg.plant = plant;
    let mut sim = Sim::new(cfg);
    for &m in mute {
        sim.checker.mute(m);
    }
    let mut refusal = None;
    let mut run = || -> Result<(), Violation> {
        // 1. n1 leads term 1 and commits its first entry; then, with n5 only, adds n5.
        assert!(elect(&mut sim, N1)?, "n1 should win the first election");
        sim.run_ticks(10)?;
        assert!(sim.view(N1).unwrap().membership_committed);
        sim.spawn(N5, true);
        sim.links.partition(&side(&[N1, N5]));
        let add = vec![ChangeStep::AddVoter { node: NodeId(5), address: Bytes::from_static(b"n5") }];
        assert!(sim.change(N1, add, JointPolicy::Auto)?.is_some(), "n1 accepts adding n5");
        sim.run_ticks(10)?;
        assert_eq!(sim.view(N5).unwrap().membership.voters().len(), 5, "n5 holds C1");

        // 2. n2 leads term 2 with n3 and n4, then n4 is cut off; n2 removes n1.
        sim.links.partition(&side(&[N2, N3, N4]));
        assert!(elect(&mut sim, N2)?, "n2 should win with n3 and n4");
        sim.disconnect(N4);
        sim.run_ticks(1)?;
        let remove = vec![ChangeStep::Remove { node: NodeId(1) }];
        if sim.change(N2, remove, JointPolicy::Auto)?.is_none() {
            refusal = sim.last_refusal;
        }
        sim.run_ticks(10)?;

        // 3. n1 leads term 3 with n4 and n5, and commits its own entry.
        sim.heal();
        sim.links.partition(&side(&[N1, N4, N5]));
        // n1 still leads term 1 until n4 answers its heartbeat with term 2.
        sim.run_ticks(10)?;
        assert!(!is_leader(&sim, N1));
        assert!(elect(&mut sim, N1)?, "n1 should win with n4 and n5");
        assert!(sim.view(N1).unwrap().term.0 >= 3);
        sim.run_ticks(20)?;

        // Everyone back, with ordinary timeouts: the cluster goes on.
        sim.cfg.election_ticks = (10, 20);
        for i in 0..5 {
            sim.crash(i);
        }
        skiff_verify::swarm::liveness_phase(&mut sim)
    };
    (run(), refusal)
}

#[test]
fn the_guard_refuses_the_overlapping_change_and_the_run_is_clean() {
    let (result, refusal) = play(None, &[]);
    assert_eq!(result, Ok(()));
    assert_eq!(refusal, Some(DropReason::Membership(ChangeRefused::OwnTermUncommitted)));
}

#[test]
fn without_the_guard_the_change_is_made_and_a_leader_lacks_committed_entries() {
    // The guard check of the checker sees the change at once.
    let (result, refusal) = play(Some(PlantedBug::NoOwnTermGuard), &[]);
    assert_eq!(refusal, None, "the unguarded change is accepted");
    assert_eq!(result.map_err(|v| v.invariant), Err(Invariant::ConfigGuard));
    // Muted, the damage shows: n1 wins term 3 in C1 without the entries n2 committed in C2.
    let (result, _) = play(Some(PlantedBug::NoOwnTermGuard), &[Invariant::ConfigGuard]);
    let v = result.expect_err("a leader without committed entries");
    assert_eq!(v.invariant, Invariant::LeaderCompleteness, "{v}");
}
