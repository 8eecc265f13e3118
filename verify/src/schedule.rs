//! Fault schedules as quickcheck values: a failing schedule shrinks to a minimal one (fewer
//! steps, smaller clusters), which prints with its seed and replays exactly.

use bytes::Bytes;
use quickcheck::{Arbitrary, Gen};

use crate::checker::Violation;
use crate::sim::network::NetProfile;
use crate::sim::{Sim, SimConfig};
use crate::swarm::liveness_phase;

/// One fault or client action. Node numbers are taken modulo the cluster size.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultOp {
    /// Cut the cluster in two: nodes whose bit is set against the rest.
    Partition(u8),
    /// Cut one node off, both ways.
    Isolate(u8),
    /// One-way cut from the first node to the second.
    CutLink(u8, u8),
    Heal,
    Crash(u8),
    CrashLeader,
    Restart(u8),
    /// Propose this many commands to the leader (or to node 0 when there is none).
    Propose(u8),
    /// Set the loss rate to this many percent (capped at 50).
    Lossy(u8),
}

/// A cluster size, a seed for everything else, and timed fault steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub nodes: u8,
    pub seed: u64,
    /// (ticks to run before the op, op)
    pub steps: Vec<(u8, FaultOp)>,
}

impl Arbitrary for FaultOp {
    fn arbitrary(g: &mut Gen) -> FaultOp {
        let n = u8::arbitrary(g);
        match u8::arbitrary(g) % 10 {
            0 => FaultOp::Partition(n),
            1 => FaultOp::Isolate(n),
            2 => FaultOp::CutLink(n, u8::arbitrary(g)),
            3 => FaultOp::Heal,
            4 => FaultOp::Crash(n),
            5 => FaultOp::CrashLeader,
            6 => FaultOp::Restart(n),
            7 => FaultOp::Lossy(n % 51),
            _ => FaultOp::Propose(1 + n % 8),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = FaultOp>> {
        match self {
            FaultOp::Propose(k) if *k > 1 => Box::new(std::iter::once(FaultOp::Propose(1))),
            FaultOp::Lossy(p) if *p > 0 => Box::new(std::iter::once(FaultOp::Lossy(0))),
            _ => Box::new(std::iter::empty()),
        }
    }
}

impl Arbitrary for Schedule {
    fn arbitrary(g: &mut Gen) -> Schedule {
        let nodes = *g.choose(&[3u8, 3, 5]).expect("non-empty");
        let len = usize::arbitrary(g) % 40;
        let steps = (0..len).map(|_| (u8::arbitrary(g) % 60, FaultOp::arbitrary(g))).collect();
        Schedule { nodes, seed: u64::arbitrary(g), steps }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Schedule>> {
        let base = self.clone();
        let smaller_cluster = (self.nodes > 3).then(|| Schedule { nodes: 3, ..self.clone() });
        let steps = self.steps.shrink().map(move |steps| Schedule { steps, ..base.clone() });
        Box::new(smaller_cluster.into_iter().chain(steps))
    }
}

/// Plays a schedule, then heals and checks liveness and that nothing acknowledged was lost.
pub fn run_schedule(s: &Schedule) -> Result<Sim, Violation> {
    let n = s.nodes.max(1) as usize;
    let mut cfg = SimConfig::new(n, s.seed);
    cfg.net = NetProfile { delay: (1, 50), ..NetProfile::reliable() };
    cfg.max_entries_per_msg = 4;
    let mut sim = Sim::new(cfg);
    let mut counter = 0u64;
    for (ticks, op) in &s.steps {
        sim.run_ticks(u64::from(*ticks))?;
        match *op {
            FaultOp::Partition(mask) => {
                let side: Vec<bool> = (0..n).map(|i| mask & (1 << (i % 8)) != 0).collect();
                sim.links.partition(&side);
            }
            FaultOp::Isolate(i) => sim.disconnect(i as usize % n),
            FaultOp::CutLink(a, b) => {
                let (a, b) = (a as usize % n, b as usize % n);
                if a != b {
                    sim.links.cut(a, b);
                }
            }
            FaultOp::Heal => sim.heal(),
            FaultOp::Crash(i) => sim.crash(i as usize % n),
            FaultOp::CrashLeader => {
                if let Some(l) = sim.leader() {
                    sim.crash(l);
                }
            }
            FaultOp::Restart(i) => sim.restart(i as usize % n),
            FaultOp::Propose(k) => {
                for _ in 0..k {
                    counter += 1;
                    let target = sim.leader().unwrap_or(0);
                    sim.propose(target, Bytes::from(counter.to_le_bytes().to_vec()))?;
                }
            }
            FaultOp::Lossy(p) => sim.cfg.net.drop = f64::from(p.min(50)) / 100.0,
        }
    }
    liveness_phase(&mut sim)?;
    Ok(sim)
}
