//! An exhaustive explorer over the real `Node`: from a small cluster, every interleaving of
//! message delivery, loss and duplication, persist completion, crash-restart, elections,
//! heartbeats, a client command and the case's membership changes, up to a bounded depth,
//! with the simulator's checker after every step (so every swarm invariant is checked in
//! every state reached). States are deduplicated by a 128-bit fingerprint of the whole run
//! ([`Sim::fingerprint`]): a state is explored again only when reached at a smaller depth,
//! which keeps the bound exhaustive.
//!
//! Time is abstract: a follower's election timer firing is the `Campaign` action, so the
//! cases run with pre-vote and check-quorum off (with no ticks, a lease would never expire);
//! the swarm covers those two.

pub mod cases;

use std::collections::HashMap;
use std::hash::Hasher;
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_core::{Input, PlantedBug, Role};

use crate::checker::Violation;
use crate::sim::{Sim, SimConfig};
pub use cases::{case, Budgets, Case, CASES};

/// One transition. Indexes name held messages and nodes of the state it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Deliver(usize),
    /// Deliver, and keep a copy in flight.
    Duplicate(usize),
    Drop(usize),
    /// The node's oldest pending persist becomes durable.
    Persist(usize),
    /// The node crashes, losing what was not durable, and restarts from its disk.
    CrashRestart(usize),
    /// The node's election timer fires.
    Campaign(usize),
    /// A leader's heartbeat timer fires.
    Heartbeat(usize),
    /// A client command, proposed to a leader.
    Propose(usize),
    /// A leader is asked for the case's `k`th membership change.
    Change(usize, usize),
}

/// A state of the explored system: the simulator in held-network mode and what is left of
/// the budgets.
#[derive(Clone, Debug)]
pub struct World {
    pub sim: Sim,
    pub left: Budgets,
}

/// Limits of one exploration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub depth: u32,
    pub max_states: usize,
    pub time: Duration,
}

/// What an exploration covered, and the first violation, if it found one.
#[derive(Debug)]
pub struct Report {
    /// Distinct states of the last round.
    pub states: usize,
    /// Transitions over all rounds.
    pub transitions: u64,
    /// Distinct states first reached at each depth (index 0: the start).
    pub per_depth: Vec<u64>,
    /// Whether every state within the depth bound was explored (no limit was hit).
    pub complete: bool,
    pub elapsed: Duration,
    /// The violation, the path to it, and that path replayed with the simulator's trace.
    pub violation: Option<(Violation, Vec<Action>, Vec<String>)>,
}

/// A 128-bit hash in two lanes with different multipliers, so that a collision (two states
/// merged wrongly) needs both lanes to collide. Integers are mixed a word at a time: the
/// fingerprint is most of an exploration's work.
struct Fingerprint {
    a: u64,
    b: u64,
}

impl Fingerprint {
    fn mix(&mut self, w: u64) {
        self.a = (self.a ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(31);
        self.b = (self.b ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23);
    }
}

impl Hasher for Fingerprint {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    fn finish(&self) -> u64 {
        self.a
    }
}

impl World {
    /// The case's start: node 1 elected in term 1 and everything it sent delivered and made
    /// durable, in order, with every joiner started on an empty disk.
    pub fn start(case: &Case, plant: Option<PlantedBug>, trace: bool) -> Result<World, Violation> {
        let mut cfg = SimConfig::new(case.voters, 0);
        cfg.slots = case.slots;
        cfg.pre_vote = false;
        cfg.check_quorum = false;
        cfg.heartbeat_ticks = 1;
        cfg.plant = plant;
        cfg.trace = trace;
        let mut sim = Sim::new(cfg);
        sim.hold_network();
        for i in case.voters..case.slots {
            sim.spawn(i, true);
        }
        sim.step(0, Input::Campaign)?;
        loop {
            for i in 0..sim.nodes.len() {
                while !sim.nodes[i].pending.is_empty() {
                    sim.complete_persist(i)?;
                }
            }
            if sim.held_messages().is_empty() {
                break;
            }
            sim.deliver_held(0, false)?;
        }
        Ok(World { sim, left: case.budgets })
    }

    pub fn fingerprint(&self) -> u128 {
        let mut h = Fingerprint { a: 0xcbf2_9ce4_8422_2325, b: 0x6c62_272e_07bb_0142 };
        self.sim.fingerprint(&mut h);
        std::hash::Hash::hash(&self.left, &mut h);
        (u128::from(h.a) << 64) | u128::from(h.b)
    }

    /// The actions enabled here, the ones that make progress first (membership changes,
    /// deliveries, persists) and faults last, so that a depth-first search meets a short
    /// counterexample early. Identical messages in flight give one action each.
    pub fn actions(&self, case: &Case) -> Vec<Action> {
        let mut progress = Vec::new();
        let mut faults = Vec::new();
        let held = self.sim.held_messages();
        for (i, n) in self.sim.nodes.iter().enumerate() {
            let Some(view) = n.node.as_ref().map(|n| n.view()) else { continue };
            // While joint, the leader refuses every change (one at a time), which would leave
            // the state as it is.
            if view.role == Role::Leader && !view.membership.is_joint() {
                for (k, (steps, joint)) in case.menu.iter().enumerate() {
                    if view.membership.apply(steps, *joint).is_ok() {
                        progress.push(Action::Change(i, k));
                    }
                }
            }
        }
        for (k, m) in held.iter().enumerate() {
            if held[..k].contains(m) {
                continue;
            }
            progress.push(Action::Deliver(k));
            if self.left.duplicates > 0 {
                faults.push(Action::Duplicate(k));
            }
            if self.left.drops > 0 {
                faults.push(Action::Drop(k));
            }
        }
        for (i, n) in self.sim.nodes.iter().enumerate() {
            let Some(view) = n.node.as_ref().map(|n| n.view()) else { continue };
            if !n.pending.is_empty() {
                progress.push(Action::Persist(i));
            }
            if view.role == Role::Leader {
                if self.left.proposals > 0 {
                    progress.push(Action::Propose(i));
                }
                if self.left.heartbeats > 0 {
                    progress.push(Action::Heartbeat(i));
                }
            } else if view.term.0 < case.max_term {
                // Every node's timer may fire; the core decides whether it may campaign (a
                // voter of its latest or latest committed configuration). A refusal leaves
                // the state as it was, and merges away.
                faults.push(Action::Campaign(i));
            }
            if self.left.crashes > 0 {
                faults.push(Action::CrashRestart(i));
            }
        }
        progress.extend(faults);
        progress
    }

    /// Carries out `action`, then checks that every command acknowledged to its client is in
    /// the committed history where it was acknowledged (a violation is returned as an
    /// error).
    pub fn apply(&mut self, case: &Case, action: Action) -> Result<(), Violation> {
        self.act(case, action)?;
        self.sim.check_acknowledged()
    }

    fn act(&mut self, case: &Case, action: Action) -> Result<(), Violation> {
        let sim = &mut self.sim;
        match action {
            Action::Deliver(k) => sim.deliver_held(k, false),
            Action::Duplicate(k) => {
                self.left.duplicates -= 1;
                sim.deliver_held(k, true)
            }
            Action::Drop(k) => {
                self.left.drops -= 1;
                sim.drop_held(k);
                Ok(())
            }
            Action::Persist(i) => sim.complete_persist(i),
            Action::CrashRestart(i) => {
                self.left.crashes -= 1;
                sim.crash(i);
                sim.restart(i);
                Ok(())
            }
            Action::Campaign(i) => sim.step(i, Input::Campaign),
            Action::Heartbeat(i) => {
                self.left.heartbeats -= 1;
                sim.step(i, Input::Tick)
            }
            Action::Propose(i) => {
                self.left.proposals -= 1;
                sim.propose(i, Bytes::from_static(b"command")).map(|_| ())
            }
            Action::Change(i, k) => {
                let (steps, joint) = case.menu[k].clone();
                sim.change(i, steps, joint).map(|_| ())
            }
        }
    }

    /// A readable name for `action` in this state.
    pub fn describe(&self, action: Action) -> String {
        let msg = |k: usize| {
            let m = &self.sim.held_messages()[k];
            format!("{} {}->{} t{}", m.body.name(), m.from, m.to, m.term.0)
        };
        match action {
            Action::Deliver(k) => format!("deliver {}", msg(k)),
            Action::Duplicate(k) => format!("duplicate {}", msg(k)),
            Action::Drop(k) => format!("drop {}", msg(k)),
            Action::Persist(i) => format!("persist n{}", i + 1),
            Action::CrashRestart(i) => format!("crash-restart n{}", i + 1),
            Action::Campaign(i) => format!("campaign n{}", i + 1),
            Action::Heartbeat(i) => format!("heartbeat n{}", i + 1),
            Action::Propose(i) => format!("propose on n{}", i + 1),
            Action::Change(i, k) => format!("change {k} on n{}", i + 1),
        }
    }
}

/// Explores `case` within `limits` by iterative deepening: depth-first to depth 1, 2, ...,
/// `limits.depth`, so that the first violation found is one of the shortest. Stops at the
/// first violation or limit; the report covers the last (deepest) round.
pub fn explore(case: &Case, plant: Option<PlantedBug>, limits: Limits) -> Result<Report, Violation> {
    let start = World::start(case, plant, false)?;
    let began = Instant::now();
    let mut transitions = 0;
    for depth in 1..=limits.depth {
        let mut search = Search {
            case,
            limits: Limits { depth, ..limits },
            began,
            seen: HashMap::new(),
            transitions: 0,
            per_depth: vec![1],
            complete: true,
            path: Vec::new(),
            found: None,
        };
        search.seen.insert(start.fingerprint(), 0);
        search.dfs(&start, 0);
        transitions += search.transitions;
        let last = depth == limits.depth || search.found.is_some() || !search.complete;
        if last {
            let violation = search.found.take().map(|(v, path)| {
                let trace = replay(case, plant, &path);
                (v, path, trace)
            });
            return Ok(Report {
                states: search.seen.len(),
                transitions,
                per_depth: search.per_depth,
                complete: search.complete,
                elapsed: began.elapsed(),
                violation,
            });
        }
    }
    unreachable!("the last round returns")
}

/// Replays `path` from the case's start with the simulator's trace on: one line per action
/// followed by what the simulator logged for it.
pub fn replay(case: &Case, plant: Option<PlantedBug>, path: &[Action]) -> Vec<String> {
    let mut lines = Vec::new();
    let Ok(mut w) = World::start(case, plant, true) else { return lines };
    w.sim.trace.clear();
    for (step, a) in path.iter().enumerate() {
        lines.push(format!("#{:<3} {}", step + 1, w.describe(*a)));
        let result = w.apply(case, *a);
        lines.extend(w.sim.trace.drain(..).map(|l| format!("       {}", l.trim_start())));
        if let Err(v) = result {
            lines.push(format!("       violation: {:?}: {}", v.invariant, v.detail));
            break;
        }
    }
    lines
}

struct Search<'a> {
    case: &'a Case,
    limits: Limits,
    began: Instant,
    /// Fingerprint -> the smallest depth it was reached at.
    seen: HashMap<u128, u32>,
    transitions: u64,
    per_depth: Vec<u64>,
    complete: bool,
    path: Vec<Action>,
    found: Option<(Violation, Vec<Action>)>,
}

impl Search<'_> {
    fn stop(&self) -> bool {
        self.found.is_some() || !self.complete
    }

    fn dfs(&mut self, world: &World, depth: u32) {
        if depth >= self.limits.depth {
            return;
        }
        for action in world.actions(self.case) {
            if self.stop() {
                return;
            }
            if self.seen.len() >= self.limits.max_states
                || (self.transitions.is_multiple_of(1024) && self.began.elapsed() > self.limits.time)
            {
                self.complete = false;
                return;
            }
            let mut next = world.clone();
            self.transitions += 1;
            self.path.push(action);
            if let Err(v) = next.apply(self.case, action) {
                self.found = Some((v, self.path.clone()));
                return;
            }
            let fp = next.fingerprint();
            let d = depth + 1;
            let fresh = match self.seen.get(&fp) {
                Some(&old) if old <= d => false,
                Some(_) => true,
                None => {
                    if self.per_depth.len() <= d as usize {
                        self.per_depth.push(0);
                    }
                    self.per_depth[d as usize] += 1;
                    true
                }
            };
            if fresh {
                self.seen.insert(fp, d);
                self.dfs(&next, d);
            }
            self.path.pop();
        }
    }
}
