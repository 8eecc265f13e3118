//! The KV service in the simulator: every node runs the very `skiff_core::kv::Service` that
//! `skiff-node` and skiff-std run (writes through the log, reads through ReadIndex, deadlines,
//! snapshots), and simulated clients run the pure `Clerk` against them over the simulated
//! network (delays, drops, duplicates; a client reaches any live node, even one cut off from
//! the others). Every operation is recorded with its call and return times; the history is
//! checked for linearizability at the end of the run.
//!
//! The clients' operations: `GET`, `SET`, `APPEND`, `DEL`, `INCR`, `MSET` of two keys (one
//! history entry per key), and a compare-and-set built as Redis clients build one (`WATCH`,
//! `GET`, then `MULTI`/`SET`/`EXEC`). Besides, some operations on keys of their own that the
//! model does not follow (expiry, `SPOP`, sorted sets, hashes, lists) exercise the rest of
//! the state machine, and every service's state must be the same bytes as every other's at
//! the same applied index (replicas never diverge: expiry, random picks and versions are
//! decided by the log alone).

use std::collections::BTreeMap;

use bytes::Bytes;
use skiff_core::kv::{
    Action, Clerk, ClerkStep, Cmd, Command, Op, Reply, Resp, Service, ServiceConfig, SessionLimits, Watched,
    SERVICE_IDS,
};
use skiff_core::{DropReason, Entry, Index, Input, NodeId, Snapshot, Term};

use super::network::fate;
use super::{Event, Sim, Time, TICK};
use crate::checker::{Invariant, Violation};
use crate::linearizability::{self, Input as Model, Operation, Rendered, Verdict};
use crate::rng::SimRng;

use super::kv_ops::{untracked_op, watched};

/// How long a client waits for an answer before trying another server.
const CLIENT_TIMEOUT: Time = 30 * TICK;
/// How long a server keeps a request waiting before it answers `Timeout`.
const SERVER_TIMEOUT: Time = 30 * TICK;

/// Who waits for a server's reply: a client and its attempt.
type Waiter = (usize, u64);

/// The workload.
#[derive(Clone, Debug)]
pub struct KvWorkload {
    pub clients: usize,
    pub keys: usize,
    /// Ticks a client waits between operations (drawn up to this).
    pub think_ticks: u64,
    /// The session bound and ttl (in simulated time) the services register sessions with:
    /// small ones make clients lose their sessions while writes are in flight.
    pub sessions: SessionLimits,
    /// Each node's clock runs ahead of the simulated time by up to this much (drawn per node):
    /// the services stamp entries with their own, skewed, clocks.
    pub max_clock_skew: Time,
}

/// Client-side and server-side KV events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// A client's attempt reaches a server.
    Request { server: usize, client: usize, attempt: u64, command: Command },
    /// A server's answer to an attempt reaches its client.
    Reply { client: usize, attempt: u64, reply: Reply },
    /// A client's attempt `attempt` got no answer in time.
    Timeout { client: usize, attempt: u64 },
    /// A client's backoff (or think time) is over.
    Wake { client: usize, attempt: u64 },
}

/// Where a compare-and-set is.
#[derive(Debug)]
enum Cas {
    /// `WATCH key` in flight; the operation was called at `call`.
    Watching { key: String, call: Time },
    /// `GET key` in flight, with what the watch read.
    Reading { key: String, call: Time, watched: Watched },
    /// `EXEC` in flight: its history entry is in `ops`.
    Executing,
}

#[derive(Debug)]
struct Client {
    clerk: Clerk,
    /// The attempt to send at the next wake, if backing off.
    parked: Option<(NodeId, u64, Command)>,
    /// Wakes and timeouts carry this; a newer step makes older ones void.
    step: u64,
    /// History entries of the operation in progress (two for an `MSET`; none for one the
    /// model does not follow).
    ops: Vec<usize>,
    /// Whether an operation is in progress (its clerk steps are this client's).
    busy: bool,
    /// Whether the operation is a pipeline: its array of replies answers `ops` in order.
    pipelined: bool,
    cas: Option<Cas>,
    rng: SimRng,
}

/// Everything the KV workload adds to a simulation.
#[derive(Debug)]
pub struct KvWorld {
    workload: KvWorkload,
    /// Each node's service; `None` while the node is down (its requests in progress are lost
    /// with it).
    pub services: Vec<Option<Service<Waiter>>>,
    clients: Vec<Client>,
    pub history: Vec<Operation>,
    /// No new operations once false (the end of a run).
    pub running: bool,
    pub completed: u64,
    /// Set when the linearizability check ran out of time: the history got no verdict.
    pub unchecked: bool,
    /// How far each node's clock runs ahead of the simulated time.
    skew: Vec<Time>,
    /// Writes whose session expired while they were in doubt (their outcome is unknown).
    pub in_doubt: u64,
    /// A digest of the state some service had at each applied index (recent ones), and
    /// which service: every other must have the same there.
    pub(super) digests: BTreeMap<u64, (u64, usize)>,
}

/// Applied indexes whose state digests are kept to compare replicas.
pub(super) const DIGESTS_KEPT: usize = 4096;

fn service_config(sessions: SessionLimits) -> ServiceConfig {
    ServiceConfig { request_timeout: SERVER_TIMEOUT, sessions, ..ServiceConfig::default() }
}

impl KvWorld {
    pub fn new(workload: KvWorkload, nodes: usize, seed: u64) -> KvWorld {
        let servers: Vec<NodeId> = (1..=nodes as u64).map(NodeId).collect();
        let clients = (0..workload.clients)
            .map(|c| Client {
                clerk: Clerk::new(c as u64 + 1, servers.clone()),
                parked: None,
                step: 0,
                ops: Vec::new(),
                busy: false,
                pipelined: false,
                cas: None,
                rng: SimRng::new(seed ^ (0xC11E_0000 + c as u64)),
            })
            .collect();
        let mut skew_rng = SimRng::new(seed ^ 0x5C3E_0000_0000_0001);
        let skew = (0..nodes).map(|_| skew_rng.between(0, workload.max_clock_skew)).collect();
        KvWorld {
            skew,
            in_doubt: 0,
            workload,
            services: (0..nodes).map(|_| None).collect(),
            clients,
            history: Vec::new(),
            running: true,
            completed: 0,
            unchecked: false,
            digests: BTreeMap::new(),
        }
    }

    /// The snapshot node `i`'s service takes now (the sim's policy decides when).
    pub(super) fn snapshot(&mut self, i: usize, digest: u64) -> Option<Bytes> {
        let (_, state) = self.services[i].as_mut()?.snapshot();
        let mut data = digest.to_le_bytes().to_vec();
        data.extend_from_slice(&state);
        Some(Bytes::from(data))
    }
}

/// The service's part of a simulated snapshot: after the 8-byte state digest (for the Raft
/// checker) come the KV state's bytes.
fn service_part(snapshot: &Snapshot) -> Snapshot {
    Snapshot { meta: snapshot.meta.clone(), data: snapshot.data.slice(8..) }
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
        let kv = self.kv.as_mut().expect("kv mode");
        match ev {
            KvEvent::Request { server, client, attempt, command } => {
                let now = self.now + kv.skew[server];
                let Some(Some(service)) = kv.services.get_mut(server) else { return Ok(()) };
                service.request(command, (client, attempt), now);
                self.kv_act(server)
            }
            KvEvent::Reply { client, attempt, reply } => {
                let Some(step) = kv.clients[client].clerk.on_reply(attempt, reply) else { return Ok(()) };
                self.kv_client_step(client, step);
                Ok(())
            }
            KvEvent::Timeout { client, attempt } => {
                let c = &mut kv.clients[client];
                if c.parked.is_some() {
                    return Ok(());
                }
                let Some(step) = c.clerk.on_timeout(attempt) else { return Ok(()) };
                self.kv_client_step(client, step);
                Ok(())
            }
            KvEvent::Wake { client, attempt } => {
                let c = &mut kv.clients[client];
                if c.step != attempt {
                    return Ok(());
                }
                if let Some((to, attempt, command)) = c.parked.take() {
                    self.kv_send(client, to, attempt, command);
                } else if !c.busy && kv.running {
                    self.kv_next_op(client);
                }
                Ok(())
            }
        }
    }

    /// Carries out what node `server`'s service asked for: proposals and reads go to its
    /// core, replies to the clients over the network.
    fn kv_act(&mut self, server: usize) -> Result<(), Violation> {
        let Some(Some(service)) = self.kv.as_mut().map(|kv| &mut kv.services[server]) else { return Ok(()) };
        for action in service.take_actions() {
            match action {
                Action::Propose(p) => self.step(server, Input::Propose(p))?,
                Action::Read { id } => self.step(server, Input::Read { id })?,
                Action::Reply { to: (client, attempt), reply } => self.kv_reply(client, attempt, reply),
            }
        }
        Ok(())
    }

    /// Node `server`'s service, if it is up and `id` is one of its ids (the swarm's own
    /// proposals and reads are not).
    fn kv_service(&mut self, server: usize, id: u64) -> Option<&mut Service<Waiter>> {
        if id & SERVICE_IDS == 0 {
            return None;
        }
        self.kv.as_mut()?.services[server].as_mut()
    }

    /// Client `client` starts a new random operation.
    fn kv_next_op(&mut self, client: usize) {
        let now = self.now;
        let kv = self.kv.as_mut().expect("kv mode");
        let keys = kv.workload.keys;
        let c = &mut kv.clients[client];
        let key = format!("k{}", c.rng.below(keys));
        let n = kv.history.len();
        c.busy = true;
        let record = |input: Model, kv: &mut KvWorld| {
            kv.history.push(Operation { client: client as u64, input, call: now, ret: None, output: None });
            kv.history.len() - 1
        };
        c.pipelined = false;
        let op = match c.rng.below(24) {
            // Counters, apart: an increment that fails (of a value that is no integer)
            // keeps the checker from leaving out writes of unknown outcome, so increments go
            // to keys of their own, where they never fail.
            0 => linearizability::Input::Get { key: format!("c{}", c.rng.below(2)) },
            1..=5 => linearizability::Input::Get { key },
            6 | 7 => linearizability::Input::Put { key, value: format!("{client}.{n}") },
            8 | 9 => linearizability::Input::Append { key, value: format!("[{client}.{n}]") },
            10 if c.rng.below(2) == 0 => linearizability::Input::Del { key },
            10 => linearizability::Input::Del { key: format!("c{}", c.rng.below(2)) },
            11 | 12 => linearizability::Input::Incr { key: format!("c{}", c.rng.below(2)) },
            13 | 14 => {
                let other = format!("k{}", c.rng.below(keys));
                let (a, b) = (format!("{client}.{n}a"), format!("{client}.{n}b"));
                let pairs = vec![
                    (Bytes::from(key.clone()), Bytes::from(a.clone())),
                    (Bytes::from(other.clone()), Bytes::from(b.clone())),
                ];
                let step = c.clerk.start(Op::Cmd(Cmd::MSet { pairs, nx: false }));
                let first = record(Model::Put { key: key.clone(), value: a }, kv);
                // Setting one key twice leaves the second value.
                let ops = if other == key {
                    kv.history[first].input = Model::Put { key, value: b };
                    vec![first]
                } else {
                    vec![first, record(Model::Put { key: other, value: b }, kv)]
                };
                kv.clients[client].ops = ops;
                return self.kv_client_step(client, step);
            }
            15..=17 => {
                c.cas = Some(Cas::Watching { key: key.clone(), call: now });
                let step = c.clerk.start(Op::Watch { keys: vec![Bytes::from(key)] });
                return self.kv_client_step(client, step);
            }
            18 | 19 => {
                let op = untracked_op(&mut c.rng);
                let step = c.clerk.start(op);
                return self.kv_client_step(client, step);
            }
            // A pipeline, as a RESP session sends one: writes as one entry, or reads at one
            // ReadIndex, each answered from the array.
            r => {
                let other = format!("k{}", c.rng.below(keys));
                let inputs = if r < 22 {
                    vec![
                        Model::Put { key, value: format!("{client}.{n}p") },
                        Model::Append { key: other, value: format!("[{client}.{n}p]") },
                    ]
                } else {
                    vec![Model::Get { key }, Model::Get { key: other }]
                };
                let commands: Vec<Cmd> = inputs
                    .iter()
                    .map(|i| match i.to_op() {
                        Op::Cmd(c) => c,
                        other => unreachable!("{other:?}"),
                    })
                    .collect();
                let op = if r < 22 { Op::Exec { commands, watched: None } } else { Op::Reads { commands } };
                c.pipelined = true;
                let step = c.clerk.start(op);
                let ops = inputs.into_iter().map(|i| record(i, kv)).collect();
                kv.clients[client].ops = ops;
                return self.kv_client_step(client, step);
            }
        };
        let step = c.clerk.start(op.to_op());
        let k = record(op, kv);
        kv.clients[client].ops = vec![k];
        self.kv_client_step(client, step);
    }

    fn kv_client_step(&mut self, client: usize, step: ClerkStep) {
        let now = self.now;
        let kv = self.kv.as_mut().expect("kv mode");
        let c = &mut kv.clients[client];
        c.step += 1;
        match step {
            ClerkStep::Send { to, attempt, command } => self.kv_send(client, to, attempt, command),
            ClerkStep::Backoff { ticks, to, attempt, command } => {
                c.parked = Some((to, attempt, command));
                let wake = c.step;
                self.push(now + u64::from(ticks) * TICK, Event::Kv(KvEvent::Wake { client, attempt: wake }));
            }
            ClerkStep::Failed(reason) => unreachable!("the simulated servers accept every request: {reason}"),
            ClerkStep::InDoubt(_) => {
                // Left without a return: the checker lets it take effect at any time after its
                // call, or never.
                c.ops.clear();
                c.cas = None;
                c.busy = false;
                kv.in_doubt += 1;
                let wake = c.step;
                self.push(now + 1, Event::Kv(KvEvent::Wake { client, attempt: wake }));
            }
            ClerkStep::Done(value) => {
                // A compare-and-set goes on to its next step.
                match c.cas.take() {
                    Some(Cas::Watching { key, call }) => {
                        let watched = watched(&key, &value);
                        c.cas = Some(Cas::Reading { key: key.clone(), call, watched });
                        let step = c.clerk.start(Op::get(key));
                        return self.kv_client_step(client, step);
                    }
                    Some(Cas::Reading { key, call, watched }) => {
                        let expect = value.to_text();
                        let new = format!("{expect}<{client}.{}>", kv.history.len());
                        let set = Cmd::parse(&[Bytes::from("SET"), Bytes::from(key.clone()), Bytes::from(new.clone())]);
                        let set = set.expect("a data command").expect("valid");
                        let input = Model::Cas { key, expect, new };
                        kv.history.push(Operation { client: client as u64, input, call, ret: None, output: None });
                        c.ops = vec![kv.history.len() - 1];
                        c.cas = Some(Cas::Executing);
                        let step = c.clerk.start(Op::Exec { commands: vec![set], watched: Some(watched) });
                        return self.kv_client_step(client, step);
                    }
                    Some(Cas::Executing) | None => {}
                }
                let ops = std::mem::take(&mut c.ops);
                let each: Vec<&Resp> = match &value {
                    Resp::Array(items) if c.pipelined && items.len() == ops.len() => items.iter().collect(),
                    _ => vec![&value; ops.len()],
                };
                for (k, reply) in ops.into_iter().zip(each) {
                    kv.history[k].ret = Some(now);
                    kv.history[k].output = Some(kv.history[k].input.output_of(reply));
                }
                c.busy = false;
                kv.completed += 1;
                let think = c.rng.between(0, kv.workload.think_ticks) * TICK + 1;
                let wake = c.step;
                self.push(now + think, Event::Kv(KvEvent::Wake { client, attempt: wake }));
            }
        }
    }

    fn kv_send(&mut self, client: usize, to: NodeId, attempt: u64, command: Command) {
        let server = (to.0 - 1) as usize;
        // At most one copy: a request travels over TCP, which never duplicates it (the clerk
        // relies on that: a refused attempt was not applied). Answers may still be
        // duplicated, delayed or lost.
        let copies: Vec<Time> = fate(&self.cfg.net, &mut self.rng).take(1).collect();
        for delay in copies {
            let ev = KvEvent::Request { server, client, attempt, command: command.clone() };
            self.push(self.now + delay.max(1), Event::Kv(ev));
        }
        self.push(self.now + CLIENT_TIMEOUT, Event::Kv(KvEvent::Timeout { client, attempt }));
    }

    fn kv_reply(&mut self, client: usize, attempt: u64, reply: Reply) {
        let copies: Vec<Time> = fate(&self.cfg.net, &mut self.rng).collect();
        for delay in copies {
            let ev = KvEvent::Reply { client, attempt, reply: reply.clone() };
            self.push(self.now + delay.max(1), Event::Kv(ev));
        }
    }

    pub(super) fn kv_on_accepted(&mut self, server: usize, id: u64, index: Index, term: Term) {
        if let Some(service) = self.kv_service(server, id) {
            service.accepted(id, index, term);
        }
    }

    /// Node `server`'s role changed: a service that no longer leads answers what it waited
    /// for (as `skiff-node` feeds it every output).
    pub(super) fn kv_on_role(&mut self, server: usize, output: &skiff_core::Output) {
        let Some(Some(service)) = self.kv.as_mut().map(|kv| &mut kv.services[server]) else { return };
        if service.on_output(output).is_ok() {
            let _ = self.kv_act(server);
        }
    }

    /// A proposal or a read of the service was refused.
    pub(super) fn kv_on_dropped(&mut self, server: usize, id: u64, reason: DropReason, read: bool) {
        if let Some(service) = self.kv_service(server, id) {
            if read {
                service.read_dropped(id, &reason);
            } else {
                service.proposal_dropped(id, &reason);
            }
            let _ = self.kv_act(server);
        }
    }

    pub(super) fn kv_on_read_ready(&mut self, server: usize, id: u64, index: Index) {
        if let Some(service) = self.kv_service(server, id) {
            service.read_ready(id, index);
            let _ = self.kv_act(server);
        }
    }

    pub(super) fn kv_on_apply(&mut self, server: usize, entries: &[Entry]) -> Result<(), Violation> {
        let Some(kv) = self.kv.as_mut() else { return Ok(()) };
        let Some(service) = kv.services[server].as_mut() else { return Ok(()) };
        service.apply(entries);
        kv.check_agreement(server)?;
        let _ = self.kv_act(server);
        Ok(())
    }

    pub(super) fn kv_on_snapshot(&mut self, server: usize, snapshot: &Snapshot) -> Result<(), Violation> {
        let Some(Some(service)) = self.kv.as_mut().map(|kv| &mut kv.services[server]) else { return Ok(()) };
        service.install(&service_part(snapshot)).map_err(|e| Violation {
            invariant: Invariant::SnapshotMismatch,
            detail: format!("n{}: {e}", server + 1),
        })?;
        let _ = self.kv_act(server);
        Ok(())
    }

    /// Time passed on node `server`: requests past their deadline are answered.
    pub(super) fn kv_on_tick(&mut self, server: usize) {
        let Some(kv) = self.kv.as_mut() else { return };
        let now = self.now + kv.skew[server];
        let Some(service) = kv.services[server].as_mut() else { return };
        service.expire(now);
        let _ = self.kv_act(server);
    }

    /// A crashed server forgets its requests in progress.
    pub(super) fn kv_on_crash(&mut self, server: usize) {
        if let Some(kv) = self.kv.as_mut() {
            kv.services[server] = None;
        }
    }

    /// A server (re)starts from its stored snapshot, as every driver does.
    pub(super) fn kv_on_start(&mut self, server: usize, snapshot: Option<&Snapshot>) -> Result<(), Violation> {
        let Some(kv) = self.kv.as_mut() else { return Ok(()) };
        let restored = snapshot.map(service_part);
        let service = Service::new(service_config(kv.workload.sessions), restored.as_ref()).map_err(|e| Violation {
            invariant: Invariant::SnapshotMismatch,
            detail: format!("n{}: {e}", server + 1),
        })?;
        kv.services[server] = Some(service);
        Ok(())
    }

    /// Checks the recorded history (operations still in progress have unknown outcomes).
    pub fn kv_check(&mut self) -> Result<(), Violation> {
        let Some(kv) = self.kv.as_mut() else { return Ok(()) };
        match linearizability::check(&kv.history, Some(check_budget())) {
            Verdict::Linearizable => Ok(()),
            Verdict::Unknown => {
                kv.unchecked = true;
                Ok(())
            }
            Verdict::Illegal { key, history } => Err(Violation {
                invariant: Invariant::NotLinearizable,
                detail: format!("key {key:?}:\n{}", Rendered(&history)),
            }),
        }
    }
}

/// How long the linearizability check of one history may search: 20 s, or
/// `SKIFF_CHECK_SECS` seconds (to decide a seed a sweep left unchecked on a busy machine).
fn check_budget() -> std::time::Duration {
    let secs = std::env::var("SKIFF_CHECK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    std::time::Duration::from_secs(secs)
}

/// The KV workload of a run, if any. Cloning one that holds a workload panics: the
/// explorer, the only caller that forks runs, runs none (the clients' services are not
/// meant to be copied).
#[derive(Debug, Default)]
pub struct KvSlot(pub Option<KvWorld>);

impl Clone for KvSlot {
    fn clone(&self) -> KvSlot {
        assert!(self.0.is_none(), "a simulation with a KV workload cannot be forked");
        KvSlot(None)
    }
}

impl std::ops::Deref for KvSlot {
    type Target = Option<KvWorld>;
    fn deref(&self) -> &Option<KvWorld> {
        &self.0
    }
}

impl std::ops::DerefMut for KvSlot {
    fn deref_mut(&mut self) -> &mut Option<KvWorld> {
        &mut self.0
    }
}
