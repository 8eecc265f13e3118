//! The MIT 6.5840 Raft tester (`config.go`) rebuilt on the simulator: connect and disconnect
//! servers, crash and restart them, and the helpers the lab's tests are written with
//! (`check_one_leader`, `check_terms`, `check_no_leader`, `n_committed`, `one`, `wait`).
//!
//! Time is virtual: 1 tick = 10 ms, so the lab's "5 seconds" is 500 ticks and a test takes
//! milliseconds. Every failure names the seed.

use bytes::Bytes;
use skiff_core::{Index, Role, Term};

use crate::sim::network::NetProfile;
use crate::sim::{Sim, SimConfig};

/// Ticks per simulated second (10 ms ticks).
pub const SECOND: u64 = 100;

/// A simulated lab cluster.
#[derive(Debug)]
pub struct Cluster {
    pub sim: Sim,
    connected: Vec<bool>,
    seed: u64,
}

/// A command of the lab's tests: a number, carried as its decimal text.
pub fn cmd(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

impl Cluster {
    /// `n` servers on a reliable (or the lab's unreliable) network, all connected.
    pub fn new(n: usize, seed: u64, unreliable: bool) -> Cluster {
        Cluster::from_config(Cluster::lab_config(n, seed, unreliable))
    }

    /// As `new`, with the lab's snapshotting applier: every server's service snapshots every
    /// 10 applied entries.
    pub fn with_snapshots(n: usize, seed: u64, unreliable: bool) -> Cluster {
        let mut cfg = Cluster::lab_config(n, seed, unreliable);
        cfg.snapshot_every = Some(10);
        Cluster::from_config(cfg)
    }

    /// The simulator configuration `new` uses, to adjust before `from_config`.
    pub fn lab_config(n: usize, seed: u64, unreliable: bool) -> SimConfig {
        let mut cfg = SimConfig::new(n, seed);
        // Lab-like timing: heartbeats every 100 ms (the lab allows ten a second), elections
        // after 300-600 ms.
        cfg.heartbeat_ticks = 10;
        cfg.election_ticks = (30, 60);
        if unreliable {
            cfg.net = NetProfile::unreliable();
        }
        cfg
    }

    /// A cluster of `cfg.nodes` servers, all connected.
    pub fn from_config(cfg: SimConfig) -> Cluster {
        let (n, seed) = (cfg.nodes, cfg.seed);
        Cluster { sim: Sim::new(cfg), connected: vec![true; n], seed }
    }

    pub fn n(&self) -> usize {
        self.connected.len()
    }

    fn fail(&self, what: String) -> String {
        format!("seed {}: {what}\n{}", self.seed, self.sim.status())
    }

    /// Advances virtual time; any safety violation fails the test.
    pub fn sleep(&mut self, ticks: u64) -> Result<(), String> {
        self.sim.run_ticks(ticks).map_err(|v| self.fail(format!("violation: {v}")))
    }

    pub fn set_unreliable(&mut self, on: bool) {
        self.sim.cfg.net = if on { NetProfile::unreliable() } else { NetProfile::reliable() };
    }

    pub fn set_long_reordering(&mut self, on: bool) {
        self.sim.cfg.net = if on { NetProfile::unreliable_long_reordering() } else { NetProfile::unreliable() };
    }

    pub fn disconnect(&mut self, i: usize) {
        self.connected[i] = false;
        self.sim.disconnect(i);
    }

    pub fn connect(&mut self, i: usize) {
        self.connected[i] = true;
        self.sim.connect(i);
        // Links to servers still disconnected stay cut.
        for j in 0..self.n() {
            if !self.connected[j] {
                self.sim.disconnect(j);
            }
        }
    }

    pub fn is_connected(&self, i: usize) -> bool {
        self.connected[i]
    }

    /// The lab's crash1: the server stops and loses what it had not persisted.
    pub fn crash(&mut self, i: usize) {
        self.disconnect(i);
        self.sim.crash(i);
    }

    /// The lab's start1: a fresh server from the persisted state (still disconnected).
    pub fn restart(&mut self, i: usize) {
        self.sim.crash(i);
        self.sim.restart(i);
    }

    /// Connected, live servers that believe they lead, with their terms.
    fn leaders(&self) -> Vec<(usize, Term)> {
        (0..self.n())
            .filter(|i| self.connected[*i])
            .filter_map(|i| self.sim.view(i).filter(|v| v.role == Role::Leader).map(|v| (i, v.term)))
            .collect()
    }

    /// A leader among connected servers within about 5 s, and never two in one term.
    pub fn check_one_leader(&mut self) -> Result<usize, String> {
        for _ in 0..10 {
            self.sleep(50)?;
            let leaders = self.leaders();
            let mut by_term = std::collections::BTreeMap::new();
            for (i, t) in &leaders {
                if let Some(other) = by_term.insert(*t, *i) {
                    return Err(self.fail(format!("term {} has leaders {other} and {i}", t.0)));
                }
            }
            if let Some((_, i)) = by_term.iter().next_back() {
                return Ok(*i);
            }
        }
        Err(self.fail("expected one leader, got none".into()))
    }

    /// Every connected server agrees on the term; returns it.
    pub fn check_terms(&self) -> Result<Term, String> {
        let mut term = None;
        for i in (0..self.n()).filter(|i| self.connected[*i]) {
            if let Some(v) = self.sim.view(i) {
                match term {
                    None => term = Some(v.term),
                    Some(t) if t != v.term => return Err(self.fail("servers disagree on term".into())),
                    _ => {}
                }
            }
        }
        term.ok_or_else(|| self.fail("no connected server".into()))
    }

    /// No connected server believes it leads.
    pub fn check_no_leader(&self) -> Result<(), String> {
        match self.leaders().first() {
            Some((i, _)) => Err(self.fail(format!("expected no leader among connected servers, but {i} claims to be"))),
            None => Ok(()),
        }
    }

    /// How many servers have committed `index`, and the command there. A server that
    /// compacted `index` into a snapshot holds the canonical command there (the checker
    /// verified its snapshot equals the committed state at the snapshot's index).
    pub fn n_committed(&self, index: Index) -> (usize, Option<Bytes>) {
        let mut count = 0;
        let mut data = None;
        for n in &self.sim.nodes {
            let Some(node) = n.node.as_ref() else { continue };
            if node.view().commit < index {
                continue;
            }
            let here = match node.log().entry(index) {
                Some(e) => Some(e.data.clone()),
                None if index <= node.log().snapshot_index() => self.sim.checker.committed_at(index).cloned(),
                None => None,
            };
            if here.is_some() {
                count += 1;
                data = here;
            }
        }
        (count, data)
    }

    /// The lab's `LogSize`: the most Raft state (hard state and log, not the snapshot) any
    /// server holds on its disk, in bytes.
    pub fn log_size(&self) -> usize {
        self.sim.nodes.iter().map(|n| n.disk.raft_state_size()).max().unwrap_or(0)
    }

    /// Proposes on `i` as the lab's `Start`: `Some((index, term))` if `i` leads.
    pub fn start(&mut self, i: usize, command: Bytes) -> Result<Option<(Index, Term)>, String> {
        let r = self.sim.propose(i, command).map_err(|v| self.fail(format!("violation: {v}")))?;
        Ok(r.map(|(_, index, term)| (index, term)))
    }

    /// The lab's `one`: submit `command` to whichever connected server leads, and require
    /// `expected` servers to commit it, within 10 s. With `retry`, a lost proposal is tried
    /// again on the next leader.
    pub fn one(&mut self, command: Bytes, expected: usize, retry: bool) -> Result<Index, String> {
        let deadline = self.sim.now() + 10 * SECOND * crate::sim::TICK;
        let mut starts = 0;
        while self.sim.now() < deadline {
            let mut index = None;
            for k in 0..self.n() {
                starts = (starts + 1) % self.n();
                let _ = k;
                if self.connected[starts] {
                    if let Some((i, _)) = self.start(starts, command.clone())? {
                        index = Some(i);
                        break;
                    }
                }
            }
            if let Some(index) = index {
                let give_up = self.sim.now() + 2 * SECOND * crate::sim::TICK;
                while self.sim.now() < give_up {
                    let (n, data) = self.n_committed(index);
                    if n > 0 && n >= expected && data.as_ref() == Some(&command) {
                        return Ok(index);
                    }
                    self.sleep(2)?;
                }
                if !retry {
                    return Err(self.fail(format!("one({command:?}) failed to reach agreement at index {}", index.0)));
                }
            } else {
                self.sleep(5)?;
            }
        }
        Err(self.fail(format!("one({command:?}) failed to reach agreement within 10 s")))
    }

    /// The lab's `wait`: until `n` servers commit `index` (or a term moves past
    /// `start_term`); returns the command there.
    pub fn wait(&mut self, index: Index, n: usize, start_term: Option<Term>) -> Result<Option<Bytes>, String> {
        let mut pause = 1;
        for _ in 0..30 {
            let (count, data) = self.n_committed(index);
            if count >= n {
                return Ok(data);
            }
            self.sleep(pause)?;
            pause = (pause * 2).min(100);
            if let Some(t) = start_term {
                if (0..self.n()).filter_map(|i| self.sim.view(i)).any(|v| v.term > t) {
                    return Ok(None);
                }
            }
        }
        let (count, _) = self.n_committed(index);
        if count < n {
            return Err(self.fail(format!("only {count} decided for index {}; wanted {n}", index.0)));
        }
        Ok(None)
    }

    /// Requests delivered so far (the lab's RPC count: a call and its reply count once).
    pub fn rpc_count(&self) -> u64 {
        self.sim.delivered_requests
    }

    /// Entry payload bytes delivered so far.
    pub fn rpc_bytes(&self) -> u64 {
        self.sim.delivered_bytes
    }

    /// Heals, restarts and reconnects everything, then requires agreement and that every
    /// acknowledged command survived.
    pub fn finish(&mut self) -> Result<(), String> {
        for i in 0..self.n() {
            if !self.sim.is_up(i) {
                self.restart(i);
            }
            self.connect(i);
        }
        self.set_unreliable(false);
        self.one(cmd(u64::MAX), self.n(), true)?;
        self.sim.check_acknowledged().map_err(|v| self.fail(format!("violation: {v}")))
    }
}
