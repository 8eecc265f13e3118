//! Figure 8 of the Raft paper, played move by move on the simulator: an entry of an old
//! term replicated to a majority by a later leader must not count as committed until an entry
//! of the leader's own term is. The swarm and the lab's randomized Figure 8 test reach this
//! state only rarely; this test reaches it every time.

use bytes::Bytes;
use skiff_core::{Index, Input, Role};
use skiff_verify::checker::Violation;
use skiff_verify::sim::{Sim, SimConfig, TICK};

const S1: usize = 0;
const S2: usize = 1;
const S3: usize = 2;
const S4: usize = 3;
const S5: usize = 4;

fn side(members: &[usize]) -> Vec<bool> {
    (0..5).map(|i| members.contains(&i)).collect()
}

/// Steps time one unit at a time until `done` holds or `ticks` pass.
fn run_until(sim: &mut Sim, ticks: u64, done: impl Fn(&Sim) -> bool) -> Result<bool, Violation> {
    let end = sim.now() + ticks * TICK;
    while sim.now() < end {
        if done(sim) {
            return Ok(true);
        }
        sim.run_until(sim.now() + 1)?;
    }
    Ok(done(sim))
}

fn is_leader(sim: &Sim, i: usize) -> bool {
    sim.view(i).is_some_and(|v| v.role == Role::Leader)
}

/// Campaigns on `i` until it leads (a refused campaign teaches it the current term).
fn elect(sim: &mut Sim, i: usize) -> Result<bool, Violation> {
    for _ in 0..3 {
        sim.step(i, Input::Campaign)?;
        if run_until(sim, 20, |s| is_leader(s, i))? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn play() -> Result<(), Violation> {
    let mut cfg = SimConfig::new(5, 8);
    // Nothing happens unless the test says so: no spontaneous elections, one entry per
    // append so an old entry travels ahead of the new leader's own.
    cfg.election_ticks = (10_000, 20_000);
    cfg.heartbeat_ticks = 5;
    cfg.pre_vote = false;
    cfg.check_quorum = false;
    cfg.max_entries_per_msg = 1;
    cfg.persist_delay = (1, 2);
    cfg.net.delay = (5, 5);
    let mut sim = Sim::new(cfg);

    // (a) S1 leads and replicates entry 2 to S2 only.
    assert!(elect(&mut sim, S1)?, "S1 should win the first election");
    sim.run_ticks(10)?;
    sim.links.partition(&side(&[S1, S2]));
    let (_, x_index, x_term) = sim.propose(S1, Bytes::from_static(b"x"))?.expect("S1 leads");
    assert_eq!(x_index, Index(2));
    sim.run_ticks(10)?;

    // (b) S1 crashes; S5 wins with S3 and S4 and writes its own entry 2, which no one else
    // receives before S5 crashes too.
    sim.crash(S1);
    sim.links.partition(&side(&[S3, S4, S5]));
    assert!(elect(&mut sim, S5)?, "S5 should win with S3 and S4");
    sim.links.partition(&side(&[S5]));
    sim.run_ticks(5)?;
    assert!(sim.nodes[S5].disk.log.len() >= 2, "S5's own entry 2 should be durable");
    sim.crash(S5);

    // (c) S1 restarts and wins with S2, S3, S4; it replicates its old entry 2. Crash it the
    // moment it believes entry 2 committed.
    sim.restart(S1);
    sim.links.partition(&side(&[S1, S2, S3, S4]));
    assert!(elect(&mut sim, S1)?, "S1 should win again");
    run_until(&mut sim, 50, |s| s.view(S1).is_some_and(|v| v.commit >= x_index))?;
    sim.crash(S1);

    // (d) S5 restarts and campaigns with S3 and S4. If entry 2 really was committed, S5 must
    // not be able to overwrite it; the checker watches every event.
    sim.restart(S5);
    sim.links.partition(&side(&[S3, S4, S5]));
    elect(&mut sim, S5)?;
    sim.run_ticks(50)?;

    // Finally everyone back: the committed history must hold x at index 2 if anyone ever
    // committed it, and the cluster must make progress.
    // Restart everyone with ordinary election timeouts.
    for i in 0..5 {
        sim.crash(i);
    }
    sim.cfg.election_ticks = (10, 20);
    skiff_verify::swarm::liveness_phase(&mut sim)?;
    let committed: Vec<_> = sim.checker.committed().map(|(i, t, d)| (i, t, d.clone())).collect();
    if let Some((_, t, d)) = committed.get(1) {
        if *t == x_term {
            assert_eq!(&d[..], b"x");
        }
    }
    Ok(())
}

#[test]
fn figure8_directed() {
    if let Err(v) = play() {
        panic!("Figure 8 scenario broke an invariant: {v}");
    }
}
