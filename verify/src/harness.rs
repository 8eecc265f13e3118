//! The MIT 6.5840 Raft tester (`config.go`) rebuilt on the simulator: a [`Lab`] whose network,
//! crashes and clock are the simulator's, so the lab's suite ([`crate::lab`]) runs on virtual
//! time and every failure names a seed that replays it. The safety checker runs after every
//! event, on top of the lab's own checks.

use bytes::Bytes;
use skiff_core::{Index, Term, View};

pub use crate::lab::{cmd, Lab, SECOND};
use crate::sim::network::NetProfile;
use crate::sim::{Sim, SimConfig, TICK};

/// A simulated lab cluster.
#[derive(Debug)]
pub struct Cluster {
    pub sim: Sim,
    connected: Vec<bool>,
    seed: u64,
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
}

impl Lab for Cluster {
    fn make(n: usize, seed: u64, unreliable: bool) -> Self {
        Cluster::new(n, seed, unreliable)
    }

    fn make_snapshotting(n: usize, seed: u64, unreliable: bool) -> Self {
        Cluster::with_snapshots(n, seed, unreliable)
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn n(&self) -> usize {
        self.connected.len()
    }

    fn sleep(&mut self, ticks: u64) -> Result<(), String> {
        self.sim.run_ticks(ticks).map_err(|v| self.fail(format!("violation: {v}")))
    }

    fn now(&self) -> u64 {
        self.sim.now() / TICK
    }

    fn set_unreliable(&mut self, on: bool) {
        self.sim.cfg.net = if on { NetProfile::unreliable() } else { NetProfile::reliable() };
    }

    fn set_long_reordering(&mut self, on: bool) {
        self.sim.cfg.net = if on { NetProfile::unreliable_long_reordering() } else { NetProfile::unreliable() };
    }

    fn disconnect(&mut self, i: usize) {
        self.connected[i] = false;
        self.sim.disconnect(i);
    }

    fn connect(&mut self, i: usize) {
        self.connected[i] = true;
        self.sim.connect(i);
        // Links to servers still disconnected stay cut.
        for j in 0..self.n() {
            if !self.connected[j] {
                self.sim.disconnect(j);
            }
        }
    }

    fn is_connected(&self, i: usize) -> bool {
        self.connected[i]
    }

    fn crash(&mut self, i: usize) {
        self.disconnect(i);
        self.sim.crash(i);
    }

    fn restart(&mut self, i: usize) {
        self.sim.crash(i);
        self.sim.restart(i);
    }

    fn is_up(&self, i: usize) -> bool {
        self.sim.is_up(i)
    }

    fn view(&self, i: usize) -> Option<View> {
        self.sim.view(i)
    }

    /// A server that compacted `index` into a snapshot holds the canonical command there
    /// (the checker verified its snapshot equals the committed state at the snapshot's index).
    fn committed_command(&self, i: usize, index: Index) -> Option<Bytes> {
        let node = self.sim.nodes[i].node.as_ref()?;
        if node.view().commit < index {
            return None;
        }
        match node.log().entry(index) {
            Some(e) => Some(e.data.clone()),
            None if index <= node.log().snapshot_index() => self.sim.checker.committed_at(index).cloned(),
            None => None,
        }
    }

    fn start(&mut self, i: usize, command: Bytes) -> Result<Option<(Index, Term)>, String> {
        let r = self.sim.propose(i, command).map_err(|v| self.fail(format!("violation: {v}")))?;
        Ok(r.map(|(_, index, term)| (index, term)))
    }

    fn rpc_count(&self) -> u64 {
        self.sim.delivered_requests
    }

    fn rpc_bytes(&self) -> u64 {
        self.sim.delivered_bytes
    }

    fn log_size(&self) -> usize {
        self.sim.nodes.iter().map(|n| n.disk.raft_state_size()).max().unwrap_or(0)
    }

    fn snapshots_installed(&self) -> u64 {
        self.sim.stats.snapshots_installed
    }

    fn has_snapshot(&self, i: usize) -> bool {
        self.sim.nodes[i].disk.snapshot.is_some()
    }

    fn final_check(&mut self) -> Result<(), String> {
        self.sim.check_acknowledged().map_err(|v| self.fail(format!("violation: {v}")))
    }

    fn describe(&self) -> String {
        self.sim.status()
    }
}
