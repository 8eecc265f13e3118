//! Membership churn for the swarm: servers added as learners, promoted, added as voters
//! directly, demoted and removed (the leader among them), and joint replacements, racing the
//! swarm's crashes, partitions and transfers. Drawn from a random stream of its own, so a
//! seed whose profile draws no churn runs exactly as it did before churn existed.
//!
//! Servers are never given a wiped disk under an id they ran with: a node id stands for one
//! disk for ever (a server re-added after its removal comes back with its old state), as
//! every Raft implementation requires of its operators.

use std::collections::BTreeSet;

use bytes::Bytes;
use skiff_core::{ChangeStep, JointPolicy, NodeId};

use crate::checker::Violation;
use crate::rng::SimRng;
use crate::sim::Sim;

const CHURN_SALT: u64 = 0xC4A2_0000_0000_0014;
/// Most voters churn adds up to (the checker's quorum intersection test is exhaustive).
const MAX_VOTERS: usize = 7;

/// How much churn a seed has.
#[derive(Clone, Debug, Default)]
pub struct ChurnProfile {
    /// Per tick: probability of a membership change.
    pub rate: f64,
    /// Servers beyond the bootstrap voters that may join.
    pub spare_slots: usize,
    /// Removed servers already decided on (crashed, or left running to test that they do
    /// not disrupt).
    decided: BTreeSet<usize>,
}

/// Draws the churn of `seed` (none for most seeds).
pub fn profile(seed: u64) -> ChurnProfile {
    let mut r = SimRng::new(seed ^ CHURN_SALT);
    let rate = r.pick(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.005, 0.02, 0.05]);
    let spare_slots = if rate > 0.0 { r.between(1, 3) as usize } else { 0 };
    ChurnProfile { rate, spare_slots, decided: BTreeSet::new() }
}

/// The churn stream of `seed`.
pub fn rng(seed: u64) -> SimRng {
    SimRng::new(seed ^ CHURN_SALT ^ 0xFFFF)
}

fn id(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
}

/// One tick of churn: maybe a change, proposed to the leader (or now and then elsewhere, to
/// exercise refusals).
pub fn tick(sim: &mut Sim, c: &mut ChurnProfile, r: &mut SimRng) -> Result<(), Violation> {
    if c.rate == 0.0 {
        return Ok(());
    }
    retire_removed(sim, c, r, false);
    if !r.chance(c.rate) {
        return Ok(());
    }
    let Some(leader) = sim.leader() else { return Ok(()) };
    let m = sim.view(leader).expect("the leader is up").membership;
    let slots = sim.cfg.slots;
    let outsiders: Vec<usize> = (0..slots).filter(|i| !m.is_member(id(*i))).collect();
    let voters: Vec<usize> = m.voters().iter().map(|v| v.0 as usize - 1).collect();
    let learners: Vec<usize> = m.learners().iter().map(|v| v.0 as usize - 1).collect();
    let target = if r.chance(0.1) { r.below(slots) } else { leader };
    let address = |i: usize| Bytes::from(format!("sim-{}", i + 1));
    let (steps, joint) = match r.below(100) {
        0..25 if !outsiders.is_empty() => {
            let s = join(sim, &outsiders, r);
            (vec![ChangeStep::AddLearner { node: id(s), address: address(s) }], JointPolicy::Auto)
        }
        25..45 if !learners.is_empty() && voters.len() < MAX_VOTERS => {
            let l = r.pick(&learners);
            let step = if r.chance(0.5) {
                ChangeStep::Promote { node: id(l) }
            } else {
                ChangeStep::AddVoter { node: id(l), address: Bytes::new() }
            };
            (vec![step], JointPolicy::Auto)
        }
        45..55 if !outsiders.is_empty() && voters.len() < MAX_VOTERS => {
            let s = join(sim, &outsiders, r);
            (vec![ChangeStep::AddVoter { node: id(s), address: address(s) }], JointPolicy::Auto)
        }
        55..75 if voters.len() > 1 => {
            let v = if voters.contains(&leader) && r.chance(0.3) { leader } else { r.pick(&voters) };
            (vec![ChangeStep::Remove { node: id(v) }], JointPolicy::Auto)
        }
        75..80 if voters.len() > 1 => (vec![ChangeStep::Demote { node: id(r.pick(&voters)) }], JointPolicy::Auto),
        80..85 if !learners.is_empty() => (vec![ChangeStep::Remove { node: id(r.pick(&learners)) }], JointPolicy::Auto),
        85..100 if !outsiders.is_empty() && voters.len() > 1 => {
            // Replace a voter: two voters change, so the change is joint either way.
            let s = join(sim, &outsiders, r);
            let v = if voters.contains(&leader) && r.chance(0.3) { leader } else { r.pick(&voters) };
            let joint = if r.chance(0.5) { JointPolicy::Auto } else { JointPolicy::Always };
            (vec![ChangeStep::AddVoter { node: id(s), address: address(s) }, ChangeStep::Remove { node: id(v) }], joint)
        }
        _ => return Ok(()),
    };
    let removes_leader = steps
        .iter()
        .any(|s| matches!(s, ChangeStep::Remove { node } | ChangeStep::Demote { node } if *node == id(leader)));
    let promotes = steps.iter().any(|s| {
        matches!(s, ChangeStep::AddVoter { node, .. } | ChangeStep::Promote { node } if m.learners().contains(node))
    });
    if sim.change(target, steps, joint)?.is_some() {
        sim.churn.leader_removed += u64::from(removes_leader);
        sim.churn.learners_promoted += u64::from(promotes);
    }
    Ok(())
}

/// Picks a server to add among `outsiders` and starts it if it is down: one that never ran
/// joins on an empty disk, one removed earlier comes back on its own disk.
fn join(sim: &mut Sim, outsiders: &[usize], r: &mut SimRng) -> usize {
    let s = r.pick(outsiders);
    let fresh = !sim.nodes[s].spawned;
    sim.spawn(s, fresh);
    s
}

/// Servers whose removal the leader has committed are crashed, half of them (the others stay
/// up: a removed server must not disrupt the cluster). With `all`, every one is (the liveness
/// phase of a cluster with neither pre-vote nor check-quorum, where a removed server that
/// never learned of its removal would force elections, as in plain Raft: its operator must
/// stop it).
pub fn retire_removed(sim: &mut Sim, c: &mut ChurnProfile, r: &mut SimRng, all: bool) {
    // The committed history says who is out for good; a leader's view may be stale (one of
    // an old term, not yet deposed), which is fine for a fault but not for the operator.
    let member = if all {
        // Out for good: a member neither of the committed configuration nor of a newer one
        // some node already holds (which may commit).
        let (index, committed) = sim.checker.latest_committed_config();
        let newer: Vec<skiff_core::Membership> = (0..sim.cfg.slots)
            .filter_map(|i| sim.view(i))
            .filter(|v| v.membership_index > index)
            .map(|v| v.membership)
            .collect();
        Box::new(move |n: NodeId| committed.is_member(n) || newer.iter().any(|m| m.is_member(n)))
            as Box<dyn Fn(NodeId) -> bool>
    } else {
        let Some(leader) = sim.leader() else { return };
        let v = sim.view(leader).expect("the leader is up");
        if !v.membership_committed {
            return;
        }
        Box::new(move |n: NodeId| v.membership.is_member(n))
    };
    for i in 0..sim.cfg.slots {
        if !sim.is_up(i) || member(id(i)) {
            c.decided.remove(&i);
            continue;
        }
        if all || (c.decided.insert(i) && r.chance(0.5)) {
            sim.crash(i);
        }
    }
}
