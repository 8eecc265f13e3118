//! Swarm testing: the fault profile itself is drawn from the seed, then a safety phase under
//! those faults, then a liveness phase after healing. One `u64` reproduces everything.

use bytes::Bytes;

use crate::checker::{Invariant, Violation};
use crate::rng::SimRng;
use crate::sim::network::NetProfile;
use crate::sim::{KvWorkload, Sim, SimConfig, TICK};
use skiff_core::kv::SessionLimits;

/// What a seed chose, beyond the network profile in its `SimConfig`.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Per tick: probability of changing the partition (heal, split, isolate, one-way cuts).
    pub partition_rate: f64,
    /// Per tick: probability of crashing a live node, and of restarting a crashed one.
    pub crash_rate: f64,
    pub restart_rate: f64,
    /// Per tick: probability of crashing the current leader (Figure 8 needs leaders to die
    /// with entries on a minority).
    pub leader_crash_rate: f64,
    /// Whether a leader fault may cut the leader off instead of crashing it (messages it
    /// has in flight are then lost too), with random reconnections at `restart_rate`.
    pub leader_isolate: bool,
    /// Per tick: probability of a client proposing, and of it asking a random node.
    pub propose_rate: f64,
    /// Per tick: probability of a client read, and of a leadership transfer request.
    pub read_rate: f64,
    pub transfer_rate: f64,
    pub misdirect: f64,
    /// Each read also goes to every other node that believes it leads (a deposed leader
    /// that has not heard of its successor): where a lease read would be stale.
    pub read_every_leader: bool,
    /// Figure 8 style (lab 3C): every live node is offered a command every tick, so deposed
    /// leaders keep appending entries that must never commit.
    pub propose_everywhere: bool,
    /// Ticks of the safety phase.
    pub safety_ticks: u64,
    /// Membership changes (none for most seeds).
    pub churn: crate::churn::ChurnProfile,
}

/// Ticks the cluster has after healing to elect a leader and commit a fresh command on every
/// node: the lab's "agreement within 10 seconds" at 10 ms a tick.
pub const LIVENESS_TICKS: u64 = 1000;

/// Past [`LIVENESS_TICKS`], the phase goes on while some node is still catching up (the
/// applied indexes of the servers but the furthest grew within the last [`CATCH_UP_STALL`]
/// ticks), up to this
/// bound: a learner added hundreds of entries behind, replicating one entry per message to a
/// slow disk, takes longer than the deadline without being stuck (seed 2038621).
pub const LIVENESS_MAX_TICKS: u64 = 10_000;
pub const CATCH_UP_STALL: u64 = 100;

/// Most commands the simulated clients keep waiting for at once.
pub const MAX_CLIENT_IN_FLIGHT: usize = 48;

/// Draws a cluster and fault profile from `seed`.
pub fn profile(seed: u64) -> (SimConfig, Faults) {
    let mut r = SimRng::new(seed ^ 0x0005_3A4B_0000_0001);
    let nodes = r.pick(&[1, 3, 3, 3, 3, 5, 5, 5, 7]);
    let mut cfg = SimConfig::new(nodes, seed);
    cfg.net = NetProfile {
        drop: r.pick(&[0.0, 0.0, 0.01, 0.05, 0.2]),
        duplicate: r.pick(&[0.0, 0.0, 0.02, 0.1]),
        delay: (1, r.pick(&[5, 20, 100, 300])),
        long_delay_prob: r.pick(&[0.0, 0.0, 0.005, 0.05]),
        long_delay: (TICK, TICK * r.pick(&[5, 50, 200])),
    };
    cfg.persist_delay = (1, r.pick(&[2, 30, 150, 600]));
    cfg.pre_vote = !r.chance(0.15);
    cfg.check_quorum = !r.chance(0.15);
    cfg.max_inflight_msgs = r.pick(&[1, 4, 64]);
    cfg.max_entries_per_msg = r.pick(&[1, 8, 256]);
    cfg.snapshot_every = r.pick(&[None, Some(3), Some(10), Some(50)]);
    cfg.snapshot_bytes = r.pick(&[8, 200, 5000]);
    cfg.snapshot_chunk_bytes = r.pick(&[16, 256, 65536]);
    let mut faults = Faults {
        partition_rate: r.pick(&[0.0, 0.002, 0.01, 0.04]),
        crash_rate: r.pick(&[0.0, 0.0, 0.002, 0.01]),
        restart_rate: r.pick(&[0.01, 0.05, 0.2]),
        leader_crash_rate: r.pick(&[0.0, 0.0, 0.01, 0.05]),
        leader_isolate: false,
        propose_rate: r.pick(&[0.1, 0.5, 2.0]),
        misdirect: r.pick(&[0.0, 0.2, 1.0]),
        read_rate: r.pick(&[0.0, 0.2, 1.0]),
        transfer_rate: r.pick(&[0.0, 0.0, 0.005, 0.02]),
        read_every_leader: false,
        propose_everywhere: false,
        safety_ticks: r.between(200, 800),
        churn: crate::churn::profile(seed),
    };
    if r.chance(0.25) {
        // The Figure 8 swarm: leaders die often, with entries on a minority.
        cfg.nodes = 5;
        cfg.max_entries_per_msg = 1;
        cfg.max_inflight_msgs = r.pick(&[1, 2]);
        cfg.persist_delay = (1, r.pick(&[5, 30]));
        cfg.net.drop = r.pick(&[0.0, 0.1]);
        cfg.net.delay = (1, r.pick(&[10, 50, 200]));
        faults.leader_crash_rate = r.pick(&[0.05, 0.2, 0.6]);
        faults.restart_rate = r.pick(&[0.3, 1.0]);
        faults.partition_rate = r.pick(&[0.0, 0.05]);
        faults.propose_everywhere = true;
        faults.leader_isolate = r.chance(0.5);
        faults.safety_ticks = r.between(500, 1500);
    }
    cfg.slots = cfg.nodes + faults.churn.spare_slots;
    draw_clocks(seed, &mut cfg, &mut faults);
    // From a stream of its own, so seeds that do not draw it run as before it existed.
    cfg.snapshots_in_storage = SimRng::new(seed ^ 0x5A0B_D15C_0000_0005).chance(0.5);
    (cfg, faults)
}

/// Lease reads and clock drift, from a stream of their own (seeds that draw neither run as
/// before leases existed): a third of the seeds with check-quorum read from leases, their
/// nodes' clocks drifting by up to the bound the lease is configured with. Half of those
/// seeds read at every node that believes it leads, and cut leaders off (instead of
/// crashing them) half the time, to give a deposed leader reads while its lease may seem
/// to hold.
fn draw_clocks(seed: u64, cfg: &mut SimConfig, faults: &mut Faults) {
    let mut r = SimRng::new(seed ^ 0x1EA5_E000_0000_0004);
    if cfg.check_quorum && r.chance(0.33) {
        let drift = r.pick(&[0, 10, 50, 100]);
        cfg.lease_drift_permille = Some(drift);
        cfg.clock_drift_permille = drift;
        if r.chance(0.5) {
            faults.read_every_leader = true;
            faults.leader_isolate = true;
            faults.read_rate = faults.read_rate.max(0.5);
            faults.leader_crash_rate = faults.leader_crash_rate.max(r.pick(&[0.01, 0.05]));
        }
    }
}

/// The outcome of one seed.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub events: u64,
    pub committed: u64,
    pub acked: usize,
    pub digest: u64,
    pub violation: Option<Violation>,
    pub sim: Sim,
}

/// What runs on the simulated cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Raw commands, reads and transfers from the swarm's clients (the Raft checkers).
    Raft,
    /// The same plus KV clerks whose history must be linearizable.
    Kv,
}

/// The KV clients a seed draws.
pub fn kv_workload(seed: u64) -> KvWorkload {
    let mut r = SimRng::new(seed ^ 0x0000_4B56_0000_0002);
    let (clients, keys, think_ticks): (usize, usize, u64) =
        (r.pick(&[1, 3, 5, 8]), r.pick(&[1, 2, 5]), r.pick(&[0, 3, 20]));
    let max = r.pick(&[1000, clients as u32, clients.div_ceil(2) as u32]);
    let ttl = r.pick(&[u64::MAX / 2, 200 * TICK, 60 * TICK]);
    let max_clock_skew = r.pick(&[0, 5 * TICK, 100 * TICK]);
    KvWorkload { clients, keys, think_ticks, sessions: SessionLimits { max, ttl }, max_clock_skew }
}

/// Ticks the KV clients have after the liveness check to finish what they started.
const KV_DRAIN_TICKS: u64 = 300;

/// Runs one seed: faults for the safety phase, then healing and the liveness check.
pub fn run_seed(seed: u64, trace: bool) -> Report {
    run_seed_with(seed, trace, Workload::Raft)
}

/// As [`run_seed`], with the given workload. With KV clients, the history they recorded is
/// checked for linearizability at the end (operations still in progress count as unknown).
pub fn run_seed_with(seed: u64, trace: bool, workload: Workload) -> Report {
    run_seed_planted(seed, trace, workload, None)
}

/// As [`run_seed_with`], with `plant` planted in every node.
pub fn run_seed_planted(seed: u64, trace: bool, workload: Workload, plant: Option<skiff_core::PlantedBug>) -> Report {
    let (mut cfg, faults) = profile(seed);
    cfg.trace = trace;
    cfg.plant = plant;
    if workload == Workload::Kv {
        cfg.kv = Some(kv_workload(seed));
    }
    let mut sim = Sim::new(cfg);
    let mut rng = SimRng::new(seed ^ 0xFA17_0000);
    let mut faults = faults;
    let mut churn_rng = crate::churn::rng(seed);
    let result = safety_phase(&mut sim, &mut faults, &mut rng, &mut churn_rng)
        .and_then(|()| liveness_phase_with(&mut sim, &mut faults.churn, &mut churn_rng))
        .and_then(|()| {
            let Some(kv) = sim.kv.as_mut() else { return Ok(()) };
            kv.running = false;
            sim.run_ticks(KV_DRAIN_TICKS)?;
            sim.kv_check()
        });
    Report {
        seed,
        events: sim.events,
        committed: sim.checker.committed_len(),
        acked: sim.acked.len(),
        digest: sim.digest,
        violation: result.err(),
        sim,
    }
}

fn safety_phase(sim: &mut Sim, f: &mut Faults, rng: &mut SimRng, churn_rng: &mut SimRng) -> Result<(), Violation> {
    // Every server there may be (spare ones are down until churn adds them).
    let n = sim.cfg.slots;
    for _ in 0..f.safety_ticks {
        sim.run_ticks(1)?;
        crate::churn::tick(sim, &mut f.churn, churn_rng)?;
        if rng.chance(f.partition_rate) {
            change_partition(sim, rng);
        }
        if rng.chance(f.crash_rate) {
            let victim = rng.below(n);
            sim.crash(victim);
        }
        if rng.chance(f.leader_crash_rate) {
            if let Some(l) = sim.leader() {
                if f.leader_isolate && rng.chance(0.5) {
                    sim.disconnect(l);
                } else {
                    sim.crash(l);
                }
            }
        }
        if f.leader_isolate && rng.chance(f.restart_rate) {
            let i = rng.below(n);
            sim.connect(i);
        }
        if rng.chance(f.restart_rate) {
            let down: Vec<usize> = (0..n).filter(|i| !sim.is_up(*i) && sim.nodes[*i].spawned).collect();
            if !down.is_empty() {
                let i = rng.pick(&down);
                sim.restart(i);
            }
        }
        if rng.chance(f.read_rate) {
            let target = match sim.leader() {
                Some(l) if !rng.chance(f.misdirect) => l,
                _ => rng.below(n),
            };
            sim.read(target)?;
            if f.read_every_leader {
                let leaders: Vec<usize> = (0..n)
                    .filter(|i| *i != target && sim.view(*i).is_some_and(|v| v.role == skiff_core::Role::Leader))
                    .collect();
                for l in leaders {
                    sim.read(l)?;
                }
            }
        }
        if rng.chance(f.transfer_rate) {
            if let Some(l) = sim.leader() {
                let to = rng.below(n);
                sim.transfer(l, to)?;
            }
        }
        let mut proposals = f.propose_rate;
        if f.propose_everywhere {
            for i in 0..n {
                if sim.is_up(i) && rng.chance(0.3) {
                    let data = Bytes::from(rng.next_u64().to_le_bytes().to_vec());
                    sim.propose(i, data)?;
                }
            }
            continue;
        }
        // Clients have bounded concurrency: at most this many commands awaiting an answer.
        while proposals > 0.0 && sim.in_flight_proposals() < MAX_CLIENT_IN_FLIGHT {
            if rng.chance(proposals.min(1.0)) {
                let target = match sim.leader() {
                    Some(l) if !rng.chance(f.misdirect) => l,
                    _ => rng.below(n),
                };
                let data = Bytes::from(rng.next_u64().to_le_bytes().to_vec());
                sim.propose(target, data)?;
            }
            proposals -= 1.0;
        }
    }
    Ok(())
}

/// Whether every member of the leader's configuration applied `index` (every server, without
/// a leader to ask).
fn members_applied(sim: &Sim, index: u64) -> bool {
    let members = sim.leader().and_then(|l| sim.view(l)).map(|v| v.membership);
    (0..sim.cfg.slots)
        .filter(|i| members.as_ref().is_none_or(|m| m.is_member(skiff_core::NodeId(*i as u64 + 1))))
        .all(|i| sim.view(i).is_some_and(|v| v.applied.0 >= index))
}

fn change_partition(sim: &mut Sim, rng: &mut SimRng) {
    let n = sim.cfg.slots;
    match rng.below(4) {
        0 => sim.heal(),
        1 => {
            let side: Vec<bool> = (0..n).map(|_| rng.chance(0.5)).collect();
            sim.links.partition(&side);
        }
        2 => {
            let i = rng.below(n);
            sim.disconnect(i);
        }
        _ => {
            // Asymmetric: a few one-way cuts.
            for _ in 0..rng.between(1, n as u64) {
                let (a, b) = (rng.below(n), rng.below(n));
                if a != b {
                    sim.links.cut(a, b);
                }
            }
        }
    }
}

/// Heals everything, then requires a leader and a fresh command applied on every node within
/// [`LIVENESS_TICKS`]; finally checks that no acknowledged command was lost.
pub fn liveness_phase(sim: &mut Sim) -> Result<(), Violation> {
    liveness_phase_with(sim, &mut Default::default(), &mut SimRng::new(0))
}

/// [`liveness_phase`] after membership churn: every server that ever ran is restarted, the
/// probe must reach every member of the leader's configuration, and removed servers are
/// stopped where the configuration leaves them able to disrupt (see `churn::retire_removed`).
fn liveness_phase_with(sim: &mut Sim, churn: &mut crate::churn::ChurnProfile, r: &mut SimRng) -> Result<(), Violation> {
    sim.heal();
    // A healed network is a healthy one: no loss, no duplicates, LAN-like delays, and in
    // order per link as TCP keeps it (out-of-order single-entry appends made a learner that
    // lagged hundreds of entries catch up at a reject per entry: seed 1674265).
    sim.cfg.net = NetProfile::reliable();
    sim.fifo = true;
    for i in 0..sim.cfg.slots {
        if sim.nodes[i].spawned {
            sim.restart(i);
        }
    }
    let unprotected = !sim.cfg.pre_vote && !sim.cfg.check_quorum;
    let mut probe = None;
    // Progress of the servers catching up: the applied indexes of all but the furthest one
    // (a leader committing alone is no progress of the others: seed 2001964).
    let applied = |sim: &Sim| {
        let a: Vec<u64> = (0..sim.cfg.slots).filter_map(|i| sim.view(i)).map(|v| v.applied.0).collect();
        a.iter().sum::<u64>() - a.iter().max().copied().unwrap_or(0)
    };
    let (mut progress, mut last_progress) = (applied(sim), 0);
    for tick in 0..LIVENESS_MAX_TICKS {
        if tick >= LIVENESS_TICKS && tick - last_progress > CATCH_UP_STALL {
            break;
        }
        sim.run_ticks(1)?;
        let now = applied(sim);
        if now > progress {
            (progress, last_progress) = (now, tick);
        }
        // Removed servers stopped by their operator, where they could disrupt (no faults
        // here: the liveness phase crashes nothing else).
        if churn.rate > 0.0 && unprotected {
            crate::churn::retire_removed(sim, churn, r, true);
        }
        if let Some((index, term)) = probe {
            let landed = sim.checker.committed().nth(index as usize - 1).map(|c| c.1);
            if landed.is_some_and(|t| t != term) {
                probe = None; // overwritten before commit: propose again
            } else if landed == Some(term) && members_applied(sim, index) {
                return sim.check_acknowledged();
            }
        }
        if probe.is_none() {
            if let Some(l) = sim.leader() {
                if let Some((_, index, term)) = sim.propose(l, Bytes::from_static(b"liveness-probe"))? {
                    probe = Some((index.0, term));
                }
            }
        }
        if let Some((index, _)) = probe {
            // A leader deposed before committing the probe leaves it uncommitted forever.
            if sim.leader().is_some_and(|l| sim.view(l).is_some_and(|v| v.last_index.0 < index)) {
                probe = None;
            }
        }
    }
    Err(Violation {
        invariant: Invariant::Liveness,
        detail: format!(
            "no leader and commit on every node within {LIVENESS_TICKS} ticks of healing (nor progress in the last {CATCH_UP_STALL})\n{}",
            sim.status()
        ),
    })
}
