//! A 3-node skiff cluster with the KV service on tokio, in one process: the proof that the
//! core embeds in any runtime. Each node is one task that owns its `Node` (the Raft core) and
//! its `kv::Service`; unbounded channels are the network; a second task per node is its disk
//! (in memory here: a real one would append and fsync before answering). Clients run the pure
//! `kv::Clerk` over the same channels, with tokio's timers for timeouts and backoff.
//!
//! Run it: `cargo run -p skiff-core --example tokio_cluster`. The tests run it too
//! (`core/tests/tokio_example.rs`).
//!
//! The driver's rules (the crate doc's "Run loop") are the whole contract: send every
//! `Send` at once, acknowledge a `Persist` only once it is stored, hand every other output
//! to the service, and give the core what the service asks for.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use skiff_core::kv::{Action, Clerk, ClerkStep, Op, Reply, Service, ServiceConfig};
use skiff_core::{Config, Input, Message, Node, NodeId, Output, Persist, Restored};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{interval, sleep, timeout, Instant};

/// Wall time of one tick of the core.
const TICK: Duration = Duration::from_millis(10);

/// What a node's task is told.
#[derive(Debug)]
enum Event {
    Message(Message),
    Persisted(u64),
    Request(skiff_core::kv::Command, oneshot::Sender<Reply>),
}

/// Every node's inbox: the network.
type Net = Arc<BTreeMap<NodeId, mpsc::UnboundedSender<Event>>>;

/// One node: its core and its KV service, stepped by this task only.
struct NodeTask {
    node: Node,
    service: Service<oneshot::Sender<Reply>>,
    net: Net,
    disk: mpsc::UnboundedSender<Persist>,
    epoch: Instant,
}

impl NodeTask {
    /// Milliseconds since start: the service's clock (its request timeout is in these).
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Steps the core with `first` (if any), then with whatever the service asks for,
    /// until neither has anything left to do.
    fn step(&mut self, first: Option<Input>) -> Result<(), String> {
        let mut inputs: VecDeque<Input> = first.into_iter().collect();
        loop {
            for action in self.service.take_actions() {
                match action {
                    Action::Propose(p) => inputs.push_back(Input::Propose(p)),
                    Action::Read { id } => inputs.push_back(Input::Read { id }),
                    Action::Reply { to, reply } => {
                        let _ = to.send(reply);
                    }
                }
            }
            let Some(input) = inputs.pop_front() else { return Ok(()) };
            for output in self.node.step(input) {
                match output {
                    Output::Send(m) => {
                        if let Some(peer) = self.net.get(&m.to) {
                            let _ = peer.send(Event::Message(m));
                        }
                    }
                    Output::Persist(p) => self.disk.send(p).map_err(|_| "the disk task ended")?,
                    other => {
                        self.service.on_output(&other).map_err(|e| e.to_string())?;
                    }
                }
            }
        }
    }

    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Event>) -> Result<(), String> {
        let mut ticks = interval(TICK);
        loop {
            let input = tokio::select! {
                _ = ticks.tick() => {
                    let now = self.now();
                    self.service.expire(now);
                    Some(Input::Tick)
                }
                event = inbox.recv() => match event {
                    None => return Ok(()),
                    Some(Event::Message(m)) => Some(Input::Message(m)),
                    Some(Event::Persisted(seq)) => Some(Input::Persisted { up_to: seq }),
                    Some(Event::Request(command, reply)) => {
                        let now = self.now();
                        self.service.request(command, reply, now);
                        None // the step below carries out what the service asks for
                    }
                },
            };
            self.step(input)?;
        }
    }
}

/// The disk of one node: stores each record, then reports it durable (in order; one report
/// covers every record before it).
async fn disk_task(mut records: mpsc::UnboundedReceiver<Persist>, node: mpsc::UnboundedSender<Event>) {
    let mut stored = Vec::new();
    while let Some(p) = records.recv().await {
        let seq = p.seq;
        stored.push(p);
        if node.send(Event::Persisted(seq)).is_err() {
            return;
        }
    }
}

/// One client operation through the clerk, over the channels.
async fn call(net: &Net, clerk: &mut Clerk, op: Op) -> Result<String, String> {
    let mut step = clerk.start(op);
    loop {
        let (to, attempt, command) = match step {
            ClerkStep::Done(value) => return Ok(value.to_text()),
            ClerkStep::Failed(reason) | ClerkStep::InDoubt(reason) => return Err(reason),
            ClerkStep::Send { to, attempt, command } => (to, attempt, command),
            ClerkStep::Backoff { ticks, to, attempt, command } => {
                sleep(TICK * ticks).await;
                (to, attempt, command)
            }
        };
        let (tx, rx) = oneshot::channel();
        let sent = net.get(&to).is_some_and(|n| n.send(Event::Request(command, tx)).is_ok());
        let answered = match (sent, timeout(Duration::from_secs(1), rx).await) {
            (true, Ok(Ok(reply))) => clerk.on_reply(attempt, reply),
            _ => None,
        };
        step = match answered {
            Some(next) => next,
            None => clerk.on_timeout(attempt).ok_or("the clerk lost its attempt")?,
        };
    }
}

/// Starts 3 nodes, writes through one clerk and reads back through another (which starts at
/// a different node and follows the hints to the leader). Returns what was read.
pub async fn run() -> Result<String, String> {
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let mut inboxes = BTreeMap::new();
    let mut senders = BTreeMap::new();
    for id in &ids {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.insert(*id, tx);
        inboxes.insert(*id, rx);
    }
    let net: Net = Arc::new(senders);
    let mut tasks = Vec::new();
    for (id, inbox) in inboxes {
        let config = Config::builder(id, ids.clone(), 0x5eed ^ id.0).build().map_err(|e| e.to_string())?;
        let node = Node::new(config, Restored::default()).map_err(|e| e.to_string())?;
        let service = Service::new(ServiceConfig::default(), None).map_err(|e| e.to_string())?;
        let (disk, records) = mpsc::unbounded_channel();
        tasks.push(tokio::spawn(disk_task(records, net[&id].clone())));
        let task = NodeTask { node, service, net: net.clone(), disk, epoch: Instant::now() };
        tasks.push(tokio::spawn(async move {
            if let Err(e) = task.run(inbox).await {
                eprintln!("node {} stopped: {e}", id.0);
            }
        }));
    }
    let mut writer = Clerk::new(1, ids.clone());
    let mut reader = Clerk::new(2, ids.clone());
    assert_ne!(writer.leader(), reader.leader(), "the two clerks start at different nodes");
    let result = async {
        call(&net, &mut writer, Op::put("k", "v")).await?;
        call(&net, &mut reader, Op::append("k", "w")).await?;
        call(&net, &mut reader, Op::get("k")).await
    };
    let read = timeout(Duration::from_secs(30), result).await.map_err(|_| "no answer in 30 s".to_string())?;
    for t in tasks {
        t.abort();
    }
    read
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a tokio runtime");
    match rt.block_on(run()) {
        Ok(value) => println!("put k=v through one clerk, appended w through another, read back: {value}"),
        Err(e) => {
            eprintln!("tokio_cluster: {e}");
            std::process::exit(1);
        }
    }
}
