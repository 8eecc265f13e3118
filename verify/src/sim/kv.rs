//! The KV service in the simulator: every node hosts a `skiff_core::kv::KvState` and the
//! server logic (writes through the log, reads through ReadIndex), and simulated clients run
//! the pure `Clerk` against them over the simulated network (delays, drops, duplicates; a
//! client reaches any live node, even one cut off from the others). Every operation is
//! recorded with its call and return times; the history is checked for linearizability at
//! the end of the run.

use std::collections::BTreeMap;

use bytes::Bytes;
use skiff_core::kv::{self, Applied, Clerk, ClerkStep, Command, KvState, Op, Reply};
use skiff_core::{DropReason, Entry, Index, Input, Proposal, Snapshot, Term};

use super::network::fate;
use super::{Event, Sim, Time, TICK};
use crate::checker::{Invariant, Violation};
use crate::linearizability::{self, Operation, Rendered, Verdict};
use crate::rng::SimRng;

/// How long a client waits for an answer before trying another server.
const CLIENT_TIMEOUT: Time = 30 * TICK;

/// The workload.
#[derive(Clone, Debug)]
pub struct KvWorkload {
    pub clients: usize,
    pub keys: usize,
    /// Ticks a client waits between operations (drawn up to this).
    pub think_ticks: u64,
}

/// Client-side and server-side KV events.
#[derive(Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// A client's request reaches a server.
    Request { server: usize, client: usize, command: Command },
    /// A server's answer reaches a client.
    Reply { client: usize, server: usize, seq: u64, reply: Reply },
    /// A client's attempt `attempt` got no answer in time.
    Timeout { client: usize, attempt: u64 },
    /// A client's backoff (or think time) is over.
    Wake { client: usize, attempt: u64 },
}

/// A server's bookkeeping of requests in progress (lost when it crashes).
#[derive(Debug, Default)]
struct ServerSide {
    /// Proposal id -> client waiting for it.
    proposals: BTreeMap<u64, (usize, u64)>,
    /// Log index -> (term, client, seq) of a write accepted there.
    writes: BTreeMap<Index, (Term, usize, u64)>,
    /// Read id -> (client, seq, key).
    reads: BTreeMap<u64, (usize, u64, String)>,
    /// Reads confirmed at an index, waiting for the state to apply it.
    ready: Vec<(Index, usize, u64, String)>,
}

#[derive(Debug)]
struct Client {
    clerk: Clerk,
    /// The request to (re)send at the next wake, if backing off.
    parked: Option<(u64, Command)>,
    attempt: u64,
    /// Index in the history of the operation in progress.
    op: Option<usize>,
    rng: SimRng,
}

/// Everything the KV workload adds to a simulation.
#[derive(Debug)]
pub struct KvWorld {
    workload: KvWorkload,
    pub states: Vec<KvState>,
    servers: Vec<ServerSide>,
    clients: Vec<Client>,
    pub history: Vec<Operation>,
    /// No new operations once false (the end of a run).
    pub running: bool,
    pub completed: u64,
}

impl KvWorld {
    pub fn new(workload: KvWorkload, nodes: usize, seed: u64) -> KvWorld {
        let clients = (0..workload.clients)
            .map(|c| Client {
                clerk: Clerk::new(c as u64 + 1, nodes as u64),
                parked: None,
                attempt: 0,
                op: None,
                rng: SimRng::new(seed ^ (0xC11E_0000 + c as u64)),
            })
            .collect();
        KvWorld {
            workload,
            states: (0..nodes).map(|_| KvState::new()).collect(),
            servers: (0..nodes).map(|_| ServerSide::default()).collect(),
            clients,
            history: Vec::new(),
            running: true,
            completed: 0,
        }
    }
}

/// The service snapshot in KV mode: the state digest (for the Raft checker), then the KV state.
pub fn snapshot_data(digest: u64, state: &KvState) -> Bytes {
    let mut data = digest.to_le_bytes().to_vec();
    data.extend_from_slice(&state.snapshot());
    Bytes::from(data)
}

impl Sim {
    /// Starts every client's first operation.
    pub(super) fn kv_start_clients(&mut self) {
        let n = self.kv.as_ref().map_or(0, |k| k.clients.len());
        for c in 0..n {
            let at = self.now + self.rng.between(1, 10 * TICK);
            self.push(at, Event::Kv(KvEvent::Wake { client: c, attempt: 0 }));
        }
    }

    pub(super) fn kv_handle(&mut self, ev: KvEvent) -> Result<(), Violation> {
        match ev {
            KvEvent::Request { server, client, command } => self.kv_request(server, client, command),
            KvEvent::Reply { client, server, seq, reply } => {
                let kv = self.kv.as_mut().expect("kv mode");
                let Some(step) = kv.clients[client].clerk.on_reply(server as u64, seq, reply) else { return Ok(()) };
                self.kv_client_step(client, step);
                Ok(())
            }
            KvEvent::Timeout { client, attempt } => {
                let kv = self.kv.as_mut().expect("kv mode");
                let c = &mut kv.clients[client];
                if c.attempt != attempt || c.clerk.current().is_none() || c.parked.is_some() {
                    return Ok(());
                }
                let step = c.clerk.on_timeout();
                self.kv_client_step(client, step);
                Ok(())
            }
            KvEvent::Wake { client, attempt } => {
                let kv = self.kv.as_mut().expect("kv mode");
                let c = &mut kv.clients[client];
                if c.attempt != attempt {
                    return Ok(());
                }
                if let Some((server, command)) = c.parked.take() {
                    self.kv_send(client, server, command);
                } else if c.clerk.current().is_none() && kv.running {
                    self.kv_next_op(client);
                }
                Ok(())
            }
        }
    }

    /// Client `client` starts a new random operation.
    fn kv_next_op(&mut self, client: usize) {
        let kv = self.kv.as_mut().expect("kv mode");
        let keys = kv.workload.keys;
        let c = &mut kv.clients[client];
        let key = format!("k{}", c.rng.below(keys));
        let n = kv.history.len();
        let op = match c.rng.below(10) {
            0..=3 => Op::Get { key },
            4..=6 => Op::Put { key, value: format!("{client}.{n}") },
            _ => Op::Append { key, value: format!("[{client}.{n}]") },
        };
        let input = match &op {
            Op::Get { key } => linearizability::Input::Get { key: key.clone() },
            Op::Put { key, value } => linearizability::Input::Put { key: key.clone(), value: value.clone() },
            Op::Append { key, value } => linearizability::Input::Append { key: key.clone(), value: value.clone() },
        };
        kv.history.push(Operation { client: client as u64, input, call: self.now, ret: None, output: None });
        c.op = Some(n);
        let step = c.clerk.start(op);
        self.kv_client_step(client, step);
    }

    fn kv_client_step(&mut self, client: usize, step: ClerkStep) {
        let now = self.now;
        let kv = self.kv.as_mut().expect("kv mode");
        let c = &mut kv.clients[client];
        c.attempt += 1;
        match step {
            ClerkStep::Send { server, command } => self.kv_send(client, server, command),
            ClerkStep::Backoff { ticks, server, command } => {
                c.parked = Some((server, command));
                let attempt = c.attempt;
                self.push(now + u64::from(ticks) * TICK, Event::Kv(KvEvent::Wake { client, attempt }));
            }
            ClerkStep::Failed(reason) => unreachable!("the simulated servers accept every request: {reason}"),
            ClerkStep::Done(value) => {
                let k = c.op.take().expect("an operation in progress");
                kv.history[k].ret = Some(now);
                kv.history[k].output = Some(value);
                kv.completed += 1;
                let think = c.rng.between(0, kv.workload.think_ticks) * TICK + 1;
                let attempt = c.attempt;
                self.push(now + think, Event::Kv(KvEvent::Wake { client, attempt }));
            }
        }
    }

    fn kv_send(&mut self, client: usize, server: u64, command: Command) {
        let attempt = self.kv.as_ref().expect("kv mode").clients[client].attempt;
        let copies: Vec<Time> = fate(&self.cfg.net, &mut self.rng).collect();
        for delay in copies {
            let ev = KvEvent::Request { server: server as usize, client, command: command.clone() };
            self.push(self.now + delay.max(1), Event::Kv(ev));
        }
        self.push(self.now + CLIENT_TIMEOUT, Event::Kv(KvEvent::Timeout { client, attempt }));
    }

    fn kv_reply(&mut self, server: usize, client: usize, seq: u64, reply: Reply) {
        let copies: Vec<Time> = fate(&self.cfg.net, &mut self.rng).collect();
        for delay in copies {
            let ev = KvEvent::Reply { client, server, seq, reply: reply.clone() };
            self.push(self.now + delay.max(1), Event::Kv(ev));
        }
    }

    /// A server receives a request: writes are proposed, reads start a ReadIndex round.
    fn kv_request(&mut self, server: usize, client: usize, command: Command) -> Result<(), Violation> {
        if !self.is_up(server) {
            return Ok(());
        }
        let id = self.next_proposal;
        self.next_proposal += 1;
        let side = &mut self.kv.as_mut().expect("kv mode").servers[server];
        if let Op::Get { key } = &command.op {
            side.reads.insert(id, (client, command.seq, key.clone()));
            self.step(server, Input::Read { id })
        } else {
            side.proposals.insert(id, (client, command.seq));
            let data = Bytes::from(kv::encode(&command));
            self.step(server, Input::Propose(Proposal { id, data }))
        }
    }

    fn kv_refuse(&mut self, server: usize, client: usize, seq: u64, reason: DropReason) {
        let hint = match reason {
            DropReason::NotLeader { hint } => hint.map(|h| h.0 - 1),
            DropReason::Transferring { .. } => None,
        };
        self.kv_reply(server, client, seq, Reply::WrongLeader { hint });
    }

    pub(super) fn kv_on_accepted(&mut self, server: usize, id: u64, index: Index, term: Term) {
        let Some(kv) = self.kv.as_mut() else { return };
        if let Some((client, seq)) = kv.servers[server].proposals.remove(&id) {
            kv.servers[server].writes.insert(index, (term, client, seq));
        }
    }

    pub(super) fn kv_on_dropped(&mut self, server: usize, id: u64, reason: DropReason) {
        let Some(kv) = self.kv.as_mut() else { return };
        let side = &mut kv.servers[server];
        let waiting = side.proposals.remove(&id).or_else(|| side.reads.remove(&id).map(|(c, s, _)| (c, s)));
        if let Some((client, seq)) = waiting {
            self.kv_refuse(server, client, seq, reason);
        }
    }

    pub(super) fn kv_on_read_ready(&mut self, server: usize, id: u64, index: Index) {
        let Some(kv) = self.kv.as_mut() else { return };
        if let Some((client, seq, key)) = kv.servers[server].reads.remove(&id) {
            kv.servers[server].ready.push((index, client, seq, key));
            self.kv_serve_reads(server);
        }
    }

    /// Answers reads whose index the state has applied.
    fn kv_serve_reads(&mut self, server: usize) {
        let kv = self.kv.as_mut().expect("kv mode");
        let applied = kv.states[server].applied();
        let ready = std::mem::take(&mut kv.servers[server].ready);
        let (due, wait): (Vec<_>, Vec<_>) = ready.into_iter().partition(|r| r.0 <= applied);
        kv.servers[server].ready = wait;
        let answers: Vec<(usize, u64, String)> =
            due.into_iter().map(|(_, client, seq, key)| (client, seq, kv.states[server].get(&key))).collect();
        for (client, seq, value) in answers {
            self.kv_reply(server, client, seq, Reply::Ok(value));
        }
    }

    pub(super) fn kv_on_apply(&mut self, server: usize, entries: &[Entry]) {
        let Some(kv) = self.kv.as_mut() else { return };
        let mut answers = Vec::new();
        for e in entries {
            let applied = kv.states[server].apply(e.index, &e.data);
            if let Some((term, client, seq)) = kv.servers[server].writes.remove(&e.index) {
                let reply = match applied {
                    Applied::Reply { seq: s, reply, .. } if term == e.term && s == seq => Reply::Ok(reply),
                    // Another entry took the place of the one accepted: the leader was deposed.
                    _ => Reply::WrongLeader { hint: None },
                };
                answers.push((client, seq, reply));
            }
        }
        for (client, seq, reply) in answers {
            self.kv_reply(server, client, seq, reply);
        }
        self.kv_serve_reads(server);
    }

    pub(super) fn kv_on_snapshot(&mut self, server: usize, snapshot: &Snapshot) -> Result<(), Violation> {
        let Some(kv) = self.kv.as_mut() else { return Ok(()) };
        match KvState::restore(&snapshot.data[8..]) {
            Ok(s) => kv.states[server] = s,
            Err(_) => {
                return Err(Violation {
                    invariant: Invariant::SnapshotMismatch,
                    detail: format!("n{} installed a KV snapshot that does not decode", server + 1),
                })
            }
        }
        // Writes waiting at indexes the snapshot covers: their outcome is in the sessions;
        // the clients retry and get the stored reply.
        let covered: Vec<Index> = kv.servers[server].writes.range(..=snapshot.meta.index).map(|(i, _)| *i).collect();
        let mut answers = Vec::new();
        for i in covered {
            let (_, client, seq) = kv.servers[server].writes.remove(&i).expect("listed");
            answers.push((client, seq));
        }
        for (client, seq) in answers {
            self.kv_reply(server, client, seq, Reply::Timeout);
        }
        self.kv_serve_reads(server);
        Ok(())
    }

    /// A crashed server forgets its requests in progress; its state comes back from its snapshot.
    pub(super) fn kv_on_crash(&mut self, server: usize) {
        if let Some(kv) = self.kv.as_mut() {
            kv.servers[server] = ServerSide::default();
        }
    }

    pub(super) fn kv_on_start(&mut self, server: usize, snapshot: Option<&Snapshot>) {
        let Some(kv) = self.kv.as_mut() else { return };
        kv.states[server] = snapshot.and_then(|s| KvState::restore(&s.data[8..]).ok()).unwrap_or_default();
    }

    /// Checks the recorded history (operations still in progress have unknown outcomes).
    pub fn kv_check(&self) -> Result<(), Violation> {
        let Some(kv) = self.kv.as_ref() else { return Ok(()) };
        match linearizability::check(&kv.history, Some(std::time::Duration::from_secs(20))) {
            Verdict::Linearizable | Verdict::Unknown => Ok(()),
            Verdict::Illegal { key, history } => Err(Violation {
                invariant: Invariant::NotLinearizable,
                detail: format!("key {key:?}:\n{}", Rendered(&history)),
            }),
        }
    }
}
