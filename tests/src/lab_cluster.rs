//! The lab's tester (`config.go`) on real threads: N [`RaftNode`]s in one process, each with
//! a [`MemStorage`] whose disk outlives a crash, talking through a [`LabNet`], each feeding an
//! applier that checks apply order and (for part 3D) snapshots every 10 entries. Implements
//! [`Lab`], so the lab suite of `skiff_verify::lab` runs on it unchanged.

use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_core::{Config, Index, NodeId, Term, View};
use skiff_std::runtime::{RaftHandle, RaftNode};
use skiff_std::storage::{MemDisk, MemStorage};
use skiff_verify::lab::Lab;

use crate::applier::{self, ServiceState};
use crate::lab_net::LabNet;

/// Wall time of one core tick.
pub const TICK: Duration = Duration::from_millis(10);
const SNAPSHOT_EVERY: u64 = 10;

struct Running {
    handle: RaftHandle,
    applier: JoinHandle<()>,
}

/// A lab cluster on threads.
pub struct LabCluster {
    seed: u64,
    net: LabNet,
    connected: Vec<bool>,
    disks: Vec<MemDisk>,
    nodes: Vec<Option<Running>>,
    states: Vec<Arc<Mutex<ServiceState>>>,
    /// Snapshots installed by servers' earlier lives.
    retired_installs: u64,
    lives: Vec<u64>,
    snapshots: bool,
    began: Instant,
}

impl std::fmt::Debug for LabCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LabCluster(seed {}, {} servers)", self.seed, self.disks.len())
    }
}

impl LabCluster {
    fn build(n: usize, seed: u64, unreliable: bool, snapshots: bool) -> LabCluster {
        let net = LabNet::new(n, seed);
        net.set_unreliable(unreliable);
        let mut c = LabCluster {
            seed,
            net,
            connected: vec![true; n],
            disks: (0..n).map(|_| MemDisk::new()).collect(),
            nodes: (0..n).map(|_| None).collect(),
            states: (0..n).map(|_| applier::new_state()).collect(),
            retired_installs: 0,
            lives: vec![0; n],
            snapshots,
            began: Instant::now(),
        };
        for i in 0..n {
            c.start1(i);
        }
        c
    }

    fn start1(&mut self, i: usize) {
        let n = self.disks.len() as u64;
        self.lives[i] += 1;
        let config = Config::builder(
            NodeId(i as u64 + 1),
            (1..=n).map(NodeId),
            self.seed * 1000 + i as u64 * 37 + self.lives[i],
        )
        .heartbeat_ticks(10)
        .election_ticks(30, 60)
        .build()
        .expect("valid lab config");
        let restored = self.disks[i].restored();
        let state = applier::new_state();
        applier::restore(&state, restored.snapshot.as_ref());
        let storage = MemStorage::new(self.disks[i].clone());
        let net = &self.net;
        let (handle, applied) = RaftNode::start(config, restored, storage, TICK, |inbox| Ok(net.attach(i, inbox)))
            .expect("a lab node starts");
        let every = self.snapshots.then_some(SNAPSHOT_EVERY);
        let applier = applier::spawn(handle.snapshotter(), applied, state.clone(), every);
        self.retired_installs += self.states[i].lock().expect("state").installed;
        self.states[i] = state;
        self.nodes[i] = Some(Running { handle, applier });
    }

    fn stop(&mut self, i: usize) {
        if let Some(r) = self.nodes[i].take() {
            r.handle.kill();
            self.net.detach(i);
            let _ = r.applier.join();
        }
    }

    fn applier_error(&self) -> Option<String> {
        self.states
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.lock().expect("state").error.clone().map(|e| format!("server {i}: {e}")))
    }
}

impl Drop for LabCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i);
        }
    }
}

impl Lab for LabCluster {
    fn make(n: usize, seed: u64, unreliable: bool) -> Self {
        LabCluster::build(n, seed, unreliable, false)
    }

    fn make_snapshotting(n: usize, seed: u64, unreliable: bool) -> Self {
        LabCluster::build(n, seed, unreliable, true)
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn n(&self) -> usize {
        self.disks.len()
    }

    fn sleep(&mut self, ticks: u64) -> Result<(), String> {
        thread::sleep(TICK * ticks as u32);
        match self.applier_error() {
            Some(e) => Err(self.fail(format!("apply error: {e}"))),
            None => Ok(()),
        }
    }

    fn now(&self) -> u64 {
        (self.began.elapsed().as_millis() / TICK.as_millis()) as u64
    }

    fn set_unreliable(&mut self, on: bool) {
        self.net.set_unreliable(on);
    }

    fn set_long_reordering(&mut self, on: bool) {
        self.net.set_long_reordering(on);
    }

    fn disconnect(&mut self, i: usize) {
        self.connected[i] = false;
        self.net.set_connected(i, false);
    }

    fn connect(&mut self, i: usize) {
        self.connected[i] = true;
        self.net.set_connected(i, true);
    }

    fn is_connected(&self, i: usize) -> bool {
        self.connected[i]
    }

    fn crash(&mut self, i: usize) {
        self.disconnect(i);
        self.stop(i);
    }

    fn restart(&mut self, i: usize) {
        self.crash(i);
        self.start1(i);
    }

    fn is_up(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    fn view(&self, i: usize) -> Option<View> {
        self.nodes[i].as_ref()?.handle.status()
    }

    fn committed_command(&self, i: usize, index: Index) -> Option<Bytes> {
        let s = self.states[i].lock().expect("state");
        s.log.get((index.0 as usize).checked_sub(1)?).cloned()
    }

    fn start(&mut self, i: usize, command: Bytes) -> Result<Option<(Index, Term)>, String> {
        Ok(self.nodes[i].as_ref().and_then(|r| r.handle.propose(command).ok()))
    }

    fn rpc_count(&self) -> u64 {
        self.net.rpc_count()
    }

    fn rpc_bytes(&self) -> u64 {
        self.net.rpc_bytes()
    }

    fn log_size(&self) -> usize {
        self.disks.iter().map(|d| d.raft_state_size()).max().unwrap_or(0)
    }

    fn snapshots_installed(&self) -> u64 {
        self.retired_installs + self.states.iter().map(|s| s.lock().expect("state").installed).sum::<u64>()
    }

    fn has_snapshot(&self, i: usize) -> bool {
        self.disks[i].state().snapshot.is_some()
    }

    fn final_check(&mut self) -> Result<(), String> {
        if let Some(e) = self.applier_error() {
            return Err(self.fail(format!("apply error: {e}")));
        }
        // Every pair of services agrees on the prefix both applied.
        let logs: Vec<Vec<Bytes>> = self.states.iter().map(|s| s.lock().expect("state").log.clone()).collect();
        for (i, a) in logs.iter().enumerate() {
            for (j, b) in logs.iter().enumerate().skip(i + 1) {
                let n = a.len().min(b.len());
                if let Some(k) = (0..n).find(|k| a[*k] != b[*k]) {
                    return Err(self.fail(format!("servers {i} and {j} applied different commands at index {}", k + 1)));
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        for i in 0..self.n() {
            let line = match self.view(i) {
                Some(v) => format!(
                    "server {i}: {:?} term {} leader {:?} commit {} applied {} last {} snapshot {}{}",
                    v.role,
                    v.term.0,
                    v.leader.map(|l| l.0 - 1),
                    v.commit.0,
                    v.applied.0,
                    v.last_index.0,
                    v.snapshot_index.0,
                    if self.connected[i] { "" } else { " (disconnected)" }
                ),
                None => format!("server {i}: down"),
            };
            s.push_str(&line);
            s.push('\n');
        }
        s
    }
}
