//! A deterministic simulator driving N skiff cores directly: virtual time, a seeded faulty
//! network, simulated disks whose unacknowledged writes a crash loses, and the checker after
//! every event. One `u64` seed reproduces a run exactly.

mod held;
pub mod network;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use bytes::Bytes;
use skiff_core::{
    Config, DropReason, Index, Input, Membership, Message, MessageBody, Node, NodeId, Output, Persist, PlantedBug,
    Proposal, Term, View,
};

use crate::checker::{Checker, Durable, Invariant, Violation, EMPTY_DIGEST};
use crate::rng::SimRng;
use network::{Links, NetProfile, Time};

pub mod kv;
mod kv_ops;
pub mod membership;
mod outputs;
mod reports;
mod stats;
pub use kv::{KvSlot, KvWorkload, KvWorld};
pub use stats::FeatureStats;

/// Simulator units per core tick (one unit is 0.1 ms when a tick is 10 ms).
pub const TICK: Time = 100;
/// Queued events beyond which the run is declared a message storm. A healthy run of the
/// largest swarm cluster stays under a few thousand.
const STORM_QUEUE: usize = 200_000;

/// How to build a simulated cluster.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Voters the cluster is bootstrapped with: nodes 1..=`nodes`.
    pub nodes: usize,
    /// Servers there may ever be (at least `nodes`): nodes past `nodes` start down, with
    /// empty disks, and join when `Sim::spawn` starts them (they must then be added).
    pub slots: usize,
    pub seed: u64,
    pub net: NetProfile,
    /// Range of the time a persist takes to become durable, in units.
    pub persist_delay: (Time, Time),
    pub heartbeat_ticks: u32,
    pub election_ticks: (u32, u32),
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Lease reads with this clock-drift bound (parts per thousand), or ReadIndex (`None`).
    pub lease_drift_permille: Option<u32>,
    /// How far each node's tick length may stray from [`TICK`] (parts per thousand): each
    /// node draws its own length within it at every start, from a stream of its own (so
    /// that seeds without drift run as they always did).
    pub clock_drift_permille: u32,
    pub max_inflight_msgs: usize,
    pub max_entries_per_msg: usize,
    /// Keep a readable trace of every event.
    pub trace: bool,
    /// The simulated service snapshots after this many applied entries past its last
    /// snapshot (never when `None`).
    pub snapshot_every: Option<u64>,
    /// InstallSnapshot chunk size, in bytes.
    pub snapshot_chunk_bytes: u64,
    /// Size of the simulated service's snapshots: its 8-byte state digest repeated, so that
    /// a transfer spans several chunks and a reassembly error shows.
    pub snapshot_bytes: usize,
    /// Nodes keep their snapshot's bytes on the disk only (`snapshots_in_storage`): the
    /// disk answers each `LoadSnapshot` after a persist delay (one time in five with none),
    /// unless the node crashes first.
    pub snapshots_in_storage: bool,
    /// Run the KV service with these clients (histories checked for linearizability).
    pub kv: Option<KvWorkload>,
    /// A known bug planted in every node (to show that a check catches it).
    pub plant: Option<PlantedBug>,
}

impl SimConfig {
    pub fn new(nodes: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            slots: nodes,
            seed,
            net: NetProfile::reliable(),
            persist_delay: (1, 20),
            heartbeat_ticks: 2,
            election_ticks: (10, 20),
            pre_vote: true,
            check_quorum: true,
            lease_drift_permille: None,
            clock_drift_permille: 0,
            max_inflight_msgs: 16,
            max_entries_per_msg: 64,
            trace: false,
            snapshot_every: None,
            snapshot_chunk_bytes: 64 << 10,
            snapshot_bytes: 8,
            snapshots_in_storage: false,
            kv: None,
            plant: None,
        }
    }
}

/// One simulated server: its core (absent while crashed) and its disk.
#[derive(Clone, Debug)]
pub struct SimNode {
    pub id: NodeId,
    pub node: Option<Node>,
    /// Bumped at every crash; events of an earlier life are discarded.
    pub epoch: u64,
    pub disk: Durable,
    /// Persists handed to the disk but not yet durable: lost on a crash.
    pub pending: VecDeque<Persist>,
    /// Time the last pending persist completes (persists complete in order).
    last_done: Time,
    /// Whether this server was ever started (a spare slot is not until it joins).
    pub spawned: bool,
    /// The state index of the service's last snapshot attempt (not retried there).
    snapshot_refused_at: Option<Index>,
    /// The simulated service: a digest of everything applied, and how far it got.
    pub state: u64,
    pub state_index: Index,
    /// This life's tick length (units): [`TICK`] give or take the configured drift.
    pub tick_len: Time,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Tick {
        node: usize,
        epoch: u64,
    },
    Deliver(Message),
    PersistDone {
        node: usize,
        epoch: u64,
        seq: u64,
    },
    /// The disk read node `node`'s snapshot back (lost if it crashed since it asked).
    SnapshotRead {
        node: usize,
        epoch: u64,
    },
    Kv(kv::KvEvent),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Queued {
    at: Time,
    order: u64,
    event: Event,
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A client command's fate as the simulator's client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    pub index: Index,
    pub term: Term,
}

/// The simulated cluster. A clone is an independent fork of the run (the exhaustive explorer
/// forks runs without a KV workload; cloning one with a workload panics).
#[derive(Clone, Debug)]
pub struct Sim {
    pub cfg: SimConfig,
    pub nodes: Vec<SimNode>,
    pub links: Links,
    pub rng: SimRng,
    pub checker: Checker,
    now: Time,
    queue: BinaryHeap<Reverse<Queued>>,
    order: u64,
    /// Events processed so far.
    pub events: u64,
    /// Running digest of everything that happened, to compare two runs of one seed.
    pub digest: u64,
    pub trace: Vec<String>,
    /// The stream each start draws its node's tick length from.
    clock_rng: SimRng,
    /// Proposals accepted by a leader and not yet resolved: (leader, index) -> (term, id).
    awaiting: BTreeMap<(usize, Index), (Term, u64)>,
    /// Commands acknowledged to the client: (acknowledging node, index) -> where they
    /// committed (ids are not unique across nodes and restarts; a node acknowledges one entry
    /// per index).
    pub acked: BTreeMap<(usize, Index), Acked>,
    next_proposal: u64,
    /// Reads issued and not answered: (node, read id) -> committed history length at issue.
    reads: BTreeMap<(usize, u64), u64>,
    /// Reads answered with `ReadReady`, and refused.
    pub reads_served: u64,
    pub reads_dropped: u64,
    /// A violation seen while carrying out outputs (a stale read, a copied snapshot chunk),
    /// reported by `step`.
    deferred_violation: Option<Violation>,
    /// Set before a tick is stepped: what `ticks_until_due` promised (checked after).
    tick_due: Option<u32>,
    /// The last `Accepted` output, taken by `propose`.
    accepted: Option<(u64, Index, Term)>,
    /// The membership change being proposed, and its answer once given.
    change_answer: Option<(u64, Option<Result<Index, DropReason>>)>,
    /// Why the last refused membership change was refused.
    pub last_refusal: Option<DropReason>,
    /// Deliver messages in the order they were sent on each link (a healed network behaves
    /// like TCP connections); off, each message's delay is drawn on its own and they reorder.
    pub fifo: bool,
    /// Per link, the time of the last delivery scheduled while `fifo` is on.
    link_last: BTreeMap<(NodeId, NodeId), Time>,
    /// Messages delivered, and their entry payload bytes, for the lab's RPC limits.
    pub delivered: u64,
    /// Requests delivered (messages that are not answers): the lab's RPC count.
    pub delivered_requests: u64,
    pub delivered_bytes: u64,
    /// What the feature mix exercised: snapshot chunks delivered and their bytes, snapshots
    /// the service took, snapshots nodes installed, TimeoutNow (transfer) messages delivered.
    pub stats: FeatureStats,
    /// Membership changes proposed, and what became of them.
    pub churn: membership::ChurnStats,
    /// The KV workload, when the configuration asks for one.
    pub kv: KvSlot,
    /// Held-network mode (the explorer's): messages sent are collected here instead of being
    /// scheduled, persists stay pending until acknowledged by hand, and no timed event
    /// (tick, delivery, persist completion) is ever queued.
    pub held: Option<Vec<Message>>,
    out: Vec<Output>,
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        let mut rng = SimRng::new(cfg.seed);
        let mut sim = Sim {
            nodes: Vec::new(),
            links: Links::default(),
            checker: Checker::new(
                Membership::from_voters((1..=cfg.nodes as u64).map(NodeId)).expect("at least one node"),
            ),
            now: 0,
            queue: BinaryHeap::new(),
            order: 0,
            events: 0,
            digest: 0xcbf2_9ce4_8422_2325,
            trace: Vec::new(),
            clock_rng: SimRng::new(cfg.seed ^ 0x00C1_0C4D_0000_0003),
            awaiting: BTreeMap::new(),
            acked: BTreeMap::new(),
            next_proposal: 1,
            accepted: None,
            change_answer: None,
            last_refusal: None,
            fifo: false,
            link_last: BTreeMap::new(),
            reads: BTreeMap::new(),
            reads_served: 0,
            reads_dropped: 0,
            deferred_violation: None,
            tick_due: None,
            delivered: 0,
            delivered_requests: 0,
            delivered_bytes: 0,
            stats: FeatureStats::default(),
            churn: Default::default(),
            kv: KvSlot(None),
            held: None,
            out: Vec::new(),
            rng: SimRng::new(rng.fork()),
            cfg,
        };
        if let Some(w) = sim.cfg.kv.clone() {
            sim.kv = KvSlot(Some(KvWorld::new(w, sim.cfg.slots, sim.cfg.seed)));
            sim.checker.opaque_snapshot_tail = true;
        }
        assert!(sim.cfg.slots >= sim.cfg.nodes, "slots include the bootstrap voters");
        for i in 0..sim.cfg.slots {
            sim.nodes.push(SimNode {
                id: NodeId(i as u64 + 1),
                node: None,
                epoch: 0,
                disk: Durable::default(),
                pending: VecDeque::new(),
                last_done: 0,
                spawned: false,
                snapshot_refused_at: None,
                state: EMPTY_DIGEST,
                state_index: Index(0),
                tick_len: TICK,
            });
            if i < sim.cfg.nodes {
                sim.start(i);
            } else {
                sim.checker.register(NodeId(i as u64 + 1), Membership::empty());
            }
        }
        sim.kv_start_clients();
        sim
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn config_for(&mut self, i: usize) -> Config {
        let c = &self.cfg;
        let id = NodeId(i as u64 + 1);
        let builder = if i < c.nodes {
            Config::builder(id, (1..=c.nodes as u64).map(NodeId), self.rng.fork())
        } else {
            Config::joining(id, self.rng.fork())
        };
        let builder = builder
            .heartbeat_ticks(c.heartbeat_ticks)
            .election_ticks(c.election_ticks.0, c.election_ticks.1)
            .pre_vote(c.pre_vote)
            .check_quorum(c.check_quorum)
            .max_inflight_msgs(c.max_inflight_msgs)
            .max_entries_per_msg(c.max_entries_per_msg)
            .snapshot_chunk_bytes(c.snapshot_chunk_bytes)
            .snapshots_in_storage(c.snapshots_in_storage);
        let builder = match c.lease_drift_permille {
            Some(d) => builder.lease_reads(d),
            None => builder,
        };
        let builder = match c.plant {
            Some(bug) => builder.plant(bug),
            None => builder,
        };
        builder.build().expect("simulator configuration is valid")
    }

    /// (Re)starts node `i` from its disk.
    fn start(&mut self, i: usize) {
        let cfg = self.config_for(i);
        let restored = self.nodes[i].disk.restored();
        let node = Node::new(cfg, restored).expect("the simulated disk holds a valid state");
        let n = &mut self.nodes[i];
        n.node = Some(node);
        n.spawned = true;
        // The service restores itself from the stored snapshot.
        (n.state, n.state_index) = match &n.disk.snapshot {
            Some(s) => (u64::from_le_bytes(s.data[..8].try_into().expect("8-byte digest")), s.meta.index),
            None => (EMPTY_DIGEST, Index(0)),
        };
        let snapshot_index = n.state_index;
        let snapshot = n.disk.snapshot.clone();
        n.last_done = self.now;
        if let Err(v) = self.kv_on_start(i, snapshot.as_ref()) {
            self.deferred_violation.get_or_insert(v);
        }
        self.checker.restarted(NodeId(i as u64 + 1), snapshot_index);
        let tick_len = self.draw_tick_len();
        let n = &mut self.nodes[i];
        let epoch = n.epoch;
        n.tick_len = tick_len;
        let phase = self.rng.between(1, TICK);
        self.push(self.now + phase, Event::Tick { node: i, epoch });
        self.log(|| format!("start n{}", i + 1));
    }

    /// A tick length within the drift bound: half the time at one of its ends (where a
    /// lease is tightest), otherwise anywhere in it.
    fn draw_tick_len(&mut self) -> Time {
        let d = self.cfg.clock_drift_permille as Time;
        if d == 0 {
            return TICK;
        }
        let (short, long) = (TICK * (1000 - d) / 1000, TICK * (1000 + d) / 1000);
        let r = &mut self.clock_rng;
        match r.between(0, 3) {
            0 => short,
            1 => long,
            _ => r.between(short, long),
        }
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].node.is_some()
    }

    /// Crashes node `i`: its core and every persist not yet durable are lost.
    pub fn crash(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.node.take().is_none() {
            return;
        }
        n.epoch += 1;
        n.pending.clear();
        self.awaiting.retain(|(leader, _), _| *leader != i);
        self.reads.retain(|(node, _), _| *node != i);
        self.kv_on_crash(i);
        self.log(|| format!("crash n{}", i + 1));
    }

    /// Restarts node `i` from durable state only (no-op if it is up).
    pub fn restart(&mut self, i: usize) {
        if self.is_up(i) {
            return;
        }
        self.start(i);
    }

    pub fn disconnect(&mut self, i: usize) {
        self.links.isolate(i, self.cfg.slots);
        self.log(|| format!("disconnect n{}", i + 1));
    }

    pub fn connect(&mut self, i: usize) {
        self.links.reconnect(i);
        self.log(|| format!("connect n{}", i + 1));
    }

    pub fn heal(&mut self) {
        self.links.heal();
        self.log(|| "heal".to_string());
    }

    pub fn view(&self, i: usize) -> Option<View> {
        self.nodes[i].node.as_ref().map(Node::view)
    }

    fn push(&mut self, at: Time, event: Event) {
        if self.held.is_some() {
            return;
        }
        self.order += 1;
        self.queue.push(Reverse(Queued { at, order: self.order, event }));
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if self.cfg.trace {
            let l = line();
            let now = self.now;
            self.trace.push(format!("{:>8}.{:02} {l}", now / TICK, now % TICK));
        }
    }

    fn mix(&mut self, v: u64) {
        self.digest = (self.digest ^ v).wrapping_mul(0x0100_0000_01b3);
    }

    /// Proposes a command on node `i`. Returns the proposal id and where it was accepted, or
    /// `None` if `i` is down or not the leader.
    pub fn propose(&mut self, i: usize, data: Bytes) -> Result<Option<(u64, Index, Term)>, Violation> {
        if !self.is_up(i) {
            return Ok(None);
        }
        let id = self.next_proposal;
        self.next_proposal += 1;
        self.accepted = None;
        self.step(i, Input::Propose(Proposal { id, data }))?;
        Ok(self.accepted.take().filter(|(accepted, _, _)| *accepted == id))
    }

    /// Issues a linearizable read on node `i` (no-op if it is down). The answer is checked
    /// against the committed history as it stood now.
    pub fn read(&mut self, i: usize) -> Result<(), Violation> {
        if !self.is_up(i) {
            return Ok(());
        }
        let id = self.next_proposal;
        self.next_proposal += 1;
        self.reads.insert((i, id), self.checker.committed_len());
        self.step(i, Input::Read { id })
    }

    /// Asks node `i` to hand leadership to `to`.
    pub fn transfer(&mut self, i: usize, to: usize) -> Result<(), Violation> {
        self.log(|| format!("transfer n{} -> n{}", i + 1, to + 1));
        self.step(i, Input::TransferLeadership { to: NodeId(to as u64 + 1) })
    }

    /// Proposals accepted by some leader and not yet applied (or lost) there.
    pub fn in_flight_proposals(&self) -> usize {
        self.awaiting.len()
    }

    /// Processes events until `until` (inclusive). Stops at the first violation.
    pub fn run_until(&mut self, until: Time) -> Result<(), Violation> {
        while let Some(Reverse(q)) = self.queue.peek() {
            if q.at > until {
                break;
            }
            let Reverse(q) = self.queue.pop().expect("peeked");
            self.now = q.at;
            self.events += 1;
            if self.queue.len() > STORM_QUEUE {
                return Err(Violation {
                    invariant: Invariant::MessageStorm,
                    detail: format!("{} events queued at tick {}", self.queue.len(), self.now / TICK),
                });
            }
            self.handle(q.event)?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    /// Runs for `ticks` core ticks.
    pub fn run_ticks(&mut self, ticks: u64) -> Result<(), Violation> {
        self.run_until(self.now + ticks * TICK)
    }

    fn handle(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Tick { node, epoch } => {
                if self.nodes[node].epoch != epoch || !self.is_up(node) {
                    return Ok(());
                }
                self.push(self.now + self.nodes[node].tick_len, Event::Tick { node, epoch });
                self.mix(node as u64);
                self.tick_due = self.nodes[node].node.as_ref().map(Node::ticks_until_due);
                self.step(node, Input::Tick)?;
                self.kv_on_tick(node);
                Ok(())
            }
            Event::Deliver(msg) => {
                let (from, to) = (msg.from.0 as usize - 1, msg.to.0 as usize - 1);
                if !self.links.is_open(from, to) || !self.is_up(to) {
                    self.log(|| format!("lost {} {}->{}", msg.body.name(), msg.from, msg.to));
                    return Ok(());
                }
                self.delivered += 1;
                if !msg.body.is_response() {
                    self.delivered_requests += 1;
                }
                match &msg.body {
                    MessageBody::Append { entries, .. } => {
                        self.delivered_bytes += entries.iter().map(|e| e.data.len() as u64).sum::<u64>();
                    }
                    MessageBody::InstallSnapshot { data, .. } => {
                        self.stats.snapshot_chunks += 1;
                        self.stats.snapshot_chunk_bytes += data.len() as u64;
                        self.stats.largest_snapshot_chunk = self.stats.largest_snapshot_chunk.max(data.len() as u64);
                    }
                    MessageBody::TimeoutNow => self.stats.timeout_now += 1,
                    _ => {}
                }
                self.mix(0x1000 + msg.from.0 * 64 + msg.to.0 + msg.term.0 * 4096);
                self.log(|| format!("recv {}->{} {:?}", msg.from, msg.to, msg.body).chars().take(200).collect());
                self.step(to, Input::Message(msg))
            }
            Event::PersistDone { node, epoch, seq } => {
                if self.nodes[node].epoch != epoch {
                    return Ok(());
                }
                let n = &mut self.nodes[node];
                let mut up_to = None;
                while n.pending.front().is_some_and(|p| p.seq <= seq) {
                    let p = n.pending.pop_front().expect("front exists");
                    n.disk.apply(&p);
                    up_to = Some(p.seq);
                }
                let Some(up_to) = up_to else { return Ok(()) };
                self.mix(0x2000_0000 + up_to);
                self.log(|| format!("durable n{} up to {up_to}", node + 1));
                self.step(node, Input::Persisted { up_to })
            }
            Event::SnapshotRead { node, epoch } => {
                if self.nodes[node].epoch != epoch {
                    return Ok(());
                }
                // The disk's snapshot as it is now (the one asked for, or a newer one), or one
                // time in five none, as a driver answers when the file is not written yet
                // or a read fails: the node must ask again.
                let snapshot = if self.rng.chance(0.2) { None } else { self.nodes[node].disk.snapshot.clone() };
                self.log(|| {
                    format!("n{} read its snapshot back: {:?}", node + 1, snapshot.as_ref().map(|s| s.meta.index.0))
                });
                self.step(node, Input::SnapshotLoaded(snapshot))
            }
            Event::Kv(ev) => self.kv_handle(ev),
        }
    }
}
