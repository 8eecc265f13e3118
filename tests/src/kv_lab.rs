//! The lab's KV tester (`kvraft/config.go`) on real threads: N servers (the threaded runtime,
//! a `MemStorage` disk that survives a crash, a [`KvService`]) behind the lab's network, and
//! clerks that call servers in-process through labrpc-like links (unreliable mode: requests
//! delayed 0-27 ms, 10% of requests and of replies lost; an unreachable or dead server fails
//! the call after 0-99 ms). Every completed operation is recorded for the linearizability
//! checker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use skiff_core::kv::{Clerk, ClerkStep, Reply};
use skiff_core::{Config, NodeId};
use skiff_std::kv::{KvOptions, KvService};
use skiff_std::runtime::RaftNode;
use skiff_std::storage::{MemDisk, MemStorage};
use skiff_verify::linearizability::{self, Input, Operation, Rendered, Verdict};
use skiff_verify::rng::SimRng;

use crate::lab_cluster::TICK;
use crate::lab_net::LabNet;

struct Server {
    service: KvService,
    applier: JoinHandle<()>,
}

struct Shared {
    n: usize,
    net: LabNet,
    disks: Vec<MemDisk>,
    servers: RwLock<Vec<Option<Server>>>,
    unreliable: AtomicBool,
    max_raft_state: Option<u64>,
    began: Instant,
    history: Mutex<Vec<Operation>>,
    next_client: AtomicU64,
    lives: Mutex<Vec<u64>>,
    seed: u64,
}

/// A KV lab cluster.
#[derive(Clone)]
pub struct KvLab {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KvLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KvLab({} servers)", self.shared.n)
    }
}

impl KvLab {
    /// The lab's `make_config(n, unreliable, maxraftstate)`; `None` is the lab's `-1`.
    pub fn new(n: usize, unreliable: bool, max_raft_state: Option<u64>, seed: u64) -> KvLab {
        let shared = Arc::new(Shared {
            n,
            net: LabNet::new(n, seed),
            disks: (0..n).map(|_| MemDisk::new()).collect(),
            servers: RwLock::new((0..n).map(|_| None).collect()),
            unreliable: AtomicBool::new(unreliable),
            max_raft_state,
            began: Instant::now(),
            history: Mutex::new(Vec::new()),
            next_client: AtomicU64::new(0),
            lives: Mutex::new(vec![0; n]),
            seed,
        });
        shared.net.set_unreliable(unreliable);
        let lab = KvLab { shared };
        for i in 0..n {
            lab.start_server(i);
        }
        lab
    }

    pub fn n(&self) -> usize {
        self.shared.n
    }

    /// The lab's `StartServer`: a server from what its disk holds.
    pub fn start_server(&self, i: usize) {
        let s = &self.shared;
        let life = {
            let mut lives = s.lives.lock().expect("lives");
            lives[i] += 1;
            lives[i]
        };
        let n = s.n as u64;
        let config = Config::builder(NodeId(i as u64 + 1), (1..=n).map(NodeId), s.seed * 1000 + i as u64 * 37 + life)
            .heartbeat_ticks(10)
            .election_ticks(30, 60)
            .build()
            .expect("valid config");
        let restored = s.disks[i].restored();
        let snapshot = restored.snapshot.clone();
        let storage = MemStorage::new(s.disks[i].clone());
        let (raft, applied) =
            RaftNode::start(config, restored, storage, TICK, |inbox| Ok(s.net.attach(i, inbox))).expect("node starts");
        let disk = s.disks[i].clone();
        let opts = KvOptions {
            max_raft_state: s.max_raft_state,
            raft_state_size: Box::new(move || disk.raft_state_size() as u64),
            request_timeout: Duration::from_millis(500),
            ..KvOptions::default()
        };
        let (service, applier) =
            KvService::start(raft, applied, snapshot.as_ref(), opts).expect("the stored snapshot decodes");
        s.servers.write().expect("servers")[i] = Some(Server { service, applier });
    }

    /// The lab's `ShutdownServer`: stopped, and whatever it had not persisted is lost.
    pub fn shutdown_server(&self, i: usize) {
        let taken = self.shared.servers.write().expect("servers")[i].take();
        if let Some(server) = taken {
            server.service.raft().kill();
            self.shared.net.detach(i);
            let _ = server.applier.join();
        }
    }

    /// Servers in `a` talk among themselves, as do servers in `b`; nothing crosses.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        let mut group = vec![2u8; self.shared.n];
        for &i in a {
            group[i] = 0;
        }
        for &i in b {
            group[i] = 1;
        }
        self.shared.net.set_groups(group);
    }

    pub fn connect_all(&self) {
        self.shared.net.set_groups(vec![0; self.shared.n]);
    }

    pub fn set_unreliable(&self, on: bool) {
        self.shared.unreliable.store(on, Ordering::Relaxed);
        self.shared.net.set_unreliable(on);
    }

    /// The server that believes it leads with the highest term, if any.
    pub fn leader(&self) -> Option<usize> {
        let servers = self.shared.servers.read().expect("servers");
        servers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref()?.service.raft().status().map(|v| (i, v)))
            .filter(|(_, v)| v.role == skiff_core::Role::Leader)
            .max_by_key(|(_, v)| v.term)
            .map(|(i, _)| i)
    }

    /// The lab's `LogSize`: the most persisted Raft state of any server.
    pub fn log_size(&self) -> usize {
        self.shared.disks.iter().map(|d| d.raft_state_size()).max().unwrap_or(0)
    }

    /// The lab's `SnapshotSize`: the largest stored snapshot.
    pub fn snapshot_size(&self) -> usize {
        self.shared.disks.iter().map(|d| d.snapshot_size()).max().unwrap_or(0)
    }

    /// Snapshots installed from a leader by the live servers.
    pub fn snapshots_installed(&self) -> u64 {
        self.shared.servers.read().expect("servers").iter().flatten().map(|s| s.service.snapshots_installed()).sum()
    }

    /// A clerk that can reach every server.
    pub fn clerk(&self) -> LabClerk {
        let id = self.shared.next_client.fetch_add(1, Ordering::Relaxed);
        LabClerk {
            shared: self.shared.clone(),
            clerk: Clerk::new(id + 1, (1..=self.shared.n as u64).map(NodeId).collect()),
            id,
            reach: Arc::new(Mutex::new(vec![true; self.shared.n])),
            rng: SimRng::new(self.shared.seed ^ (id << 32) ^ 0xC1E4),
        }
    }

    /// Checks every recorded operation for linearizability (1 s budget, as the lab's).
    pub fn check_linearizable(&self) -> Result<(), String> {
        let history = self.shared.history.lock().expect("history").clone();
        match linearizability::check(&history, Some(Duration::from_secs(1))) {
            Verdict::Linearizable | Verdict::Unknown => Ok(()),
            Verdict::Illegal { key, history } => {
                Err(format!("history not linearizable; key {key:?}:\n{}", Rendered(&history)))
            }
        }
    }
}

impl Drop for KvLab {
    fn drop(&mut self) {
        if Arc::strong_count(&self.shared) == 1 {
            for i in 0..self.shared.n {
                self.shutdown_server(i);
            }
        }
    }
}

/// A lab clerk: retries until its operation succeeds; records it in the lab's history.
pub struct LabClerk {
    shared: Arc<Shared>,
    clerk: Clerk,
    id: u64,
    /// Which servers this clerk reaches (shared, so a test can reconnect a clerk that a
    /// thread owns).
    reach: Arc<Mutex<Vec<bool>>>,
    rng: SimRng,
}

impl std::fmt::Debug for LabClerk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LabClerk({})", self.id)
    }
}

impl LabClerk {
    /// The lab's `ConnectClient`: which servers this clerk can reach.
    pub fn connect_only(&mut self, servers: &[usize]) {
        let mut reach = self.reach.lock().expect("reach");
        *reach = (0..reach.len()).map(|i| servers.contains(&i)).collect();
    }

    /// A handle on this clerk's links, to reconnect it after handing it to a thread.
    pub fn links(&self) -> Arc<Mutex<Vec<bool>>> {
        self.reach.clone()
    }

    pub fn get(&mut self, key: &str) -> String {
        self.run(Input::Get { key: key.into() })
    }

    pub fn put(&mut self, key: &str, value: &str) {
        self.run(Input::Put { key: key.into(), value: value.into() });
    }

    pub fn append(&mut self, key: &str, value: &str) {
        self.run(Input::Append { key: key.into(), value: value.into() });
    }

    fn run(&mut self, input: Input) -> String {
        let call = self.shared.began.elapsed().as_micros() as u64;
        let mut step = self.clerk.start(input.to_op());
        let value = loop {
            let (to, attempt, command) = match step {
                ClerkStep::Done(v) => break input.output_of(&v),
                ClerkStep::Failed(reason) => panic!("the lab servers refused a request: {reason}"),
                // The lab's few clients and minutes stay far inside the default session limits.
                ClerkStep::InDoubt(reason) => panic!("a lab client lost its session: {reason}"),
                ClerkStep::Send { to, attempt, command } => (to, attempt, command),
                ClerkStep::Backoff { ticks, to, attempt, command } => {
                    thread::sleep(TICK * ticks);
                    (to, attempt, command)
                }
            };
            // The lab's servers are nodes 1..=n.
            let answered = self.call(to.0 as usize - 1, command).and_then(|reply| self.clerk.on_reply(attempt, reply));
            step = match answered {
                Some(s) => s,
                None => self.clerk.on_timeout(attempt).expect("the attempt in flight"),
            };
        };
        let ret = self.shared.began.elapsed().as_micros() as u64;
        let op = Operation { client: self.id, input, call, ret: Some(ret), output: Some(value.clone()) };
        self.shared.history.lock().expect("history").push(op);
        value
    }

    /// One labrpc call; `None` is a failed call.
    fn call(&mut self, server: usize, command: skiff_core::kv::Command) -> Option<Reply> {
        let service = self.shared.servers.read().expect("servers")[server].as_ref().map(|s| s.service.clone());
        let reachable = self.reach.lock().expect("reach")[server];
        let Some(service) = service.filter(|_| reachable) else {
            thread::sleep(Duration::from_millis(self.rng.between(0, 100)));
            return None;
        };
        if self.shared.unreliable.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(self.rng.between(0, 27)));
            if self.rng.chance(0.1) {
                thread::sleep(Duration::from_millis(self.rng.between(0, 100)));
                return None;
            }
        }
        let reply = service.execute(command);
        if self.shared.unreliable.load(Ordering::Relaxed) && self.rng.chance(0.1) {
            return None;
        }
        Some(reply)
    }
}
