//! ReadIndex and leadership transfer on the simulator, beyond what the swarm draws at random:
//! a deposed leader in a minority never answers a read, and a transfer hands leadership to
//! its target within an election timeout.

use skiff_core::Role;
use skiff_verify::harness::{cmd, Cluster, Lab, SECOND};

#[test]
fn a_deposed_leader_in_a_minority_never_answers_a_read() {
    for seed in 0..6 {
        let mut c = Cluster::new(5, seed, false);
        c.one(cmd(1), 5, false).unwrap();
        let old = c.check_one_leader().unwrap();
        c.disconnect(old);
        // The majority elects a new leader and commits more.
        for k in 2..6 {
            c.one(cmd(k), 4, true).unwrap();
        }
        let served = c.sim.reads_served;
        c.sim.read(old).unwrap();
        c.sleep(2 * SECOND).unwrap();
        assert_eq!(c.sim.reads_served, served, "seed {seed}: the isolated old leader answered a read");
        assert!(c.sim.view(old).unwrap().role != Role::Leader, "seed {seed}: check-quorum should depose it");
        // On the majority side reads are answered.
        let leader = c.check_one_leader().unwrap();
        c.sim.read(leader).unwrap();
        c.sleep(SECOND / 2).unwrap();
        assert_eq!(c.sim.reads_served, served + 1, "seed {seed}: the real leader did not answer");
        c.finish().unwrap();
    }
}

#[test]
fn transfer_hands_leadership_to_the_target() {
    for seed in 0..6 {
        let mut c = Cluster::new(5, seed, false);
        c.one(cmd(1), 5, false).unwrap();
        let leader = c.check_one_leader().unwrap();
        let target = (leader + 1 + seed as usize % 4) % 5;
        c.sim.transfer(leader, target).unwrap();
        // Within one (minimum) election timeout of 300 ms.
        c.sleep(30).unwrap();
        let v = c.sim.view(target).unwrap();
        assert_eq!(v.role, Role::Leader, "seed {seed}: n{} should lead after the transfer", target + 1);
        c.one(cmd(2), 5, false).unwrap();
        c.finish().unwrap();
    }
}

#[test]
fn a_transfer_to_an_unreachable_target_is_abandoned() {
    let mut c = Cluster::new(3, 1, false);
    c.one(cmd(1), 3, false).unwrap();
    let leader = c.check_one_leader().unwrap();
    let target = (leader + 1) % 3;
    c.disconnect(target);
    c.sim.transfer(leader, target).unwrap();
    assert!(c.start(leader, cmd(2)).unwrap().is_none(), "proposals are refused during a transfer");
    c.sleep(100).unwrap();
    assert_eq!(c.sim.view(leader).unwrap().transferring_to, None, "the transfer should be abandoned");
    assert!(c.start(leader, cmd(3)).unwrap().is_some(), "proposals resume after the transfer is abandoned");
    c.connect(target);
    c.finish().unwrap();
}
