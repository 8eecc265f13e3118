//! The event loop of `skiff-node`: one thread owns the Raft core, the KV state machine, the
//! peer connections, the client connections (native and RESP) and the tick timer, and steps
//! the core in the order events arrive. Persistence runs on a storage thread that group
//! commits and wakes the loop with what became durable ([`storage`]).
//!
//! Obligations kept (DESIGN §2): messages the core emits are queued on their link at once and
//! written before the loop waits again, and its records are handed to storage after them
//! (the core holds back what must wait for durability); `Persisted { up_to }` reaches the
//! core only after storage returned for every record up to `up_to`; applies go to the state
//! machine in the order the core emits them. The loop sleeps in `poll` until a socket is
//! ready, storage wakes it, or the next tick that can do something is due
//! ([`Node::ticks_until_due`]; the ticks that elapsed meanwhile are delivered together): an
//! idle leader wakes once per heartbeat interval, an idle follower when a heartbeat arrives.

mod accepted;
pub mod acl;
mod budget;
mod clients;
mod conn;
mod engine;
mod forward;
mod info;
mod kv;
mod members;
mod native;
mod peers;
pub(crate) mod resp_commands;
mod resp_session;
mod snapshot_load;
mod snapshots;
mod stall;
mod storage;
mod wire;

pub use self::wire::TlsMode;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use skiff_core::kv::{ServiceConfig, ServiceError, SessionLimits};
use skiff_core::wire::Hello;
use skiff_core::{Membership, Node, NodeId, Restored};
use skiff_std::storage::Storage;

use self::clients::{ClientLimits, Clients, Ctx, Port};
use self::engine::Engine;
use self::forward::Forward;
use self::kv::LocalKv;
use self::peers::{PeerCheck, PeerLink};
use self::storage::StorageLink;
use crate::resp::Limits;

const WAKER: Token = Token(0);
const PEER_LISTENER: Token = Token(1);
const CLIENT_LISTENER: Token = Token(2);
const RESP_LISTENER: Token = Token(3);
/// Tokens of outgoing peer links start here (one per peer).
const PEER_LINKS: usize = 1 << 16;
/// Tokens of forward connections start here (one per other server).
const FORWARDS: usize = 2 << 16;
/// Accepted connections take tokens from here on, never reused.
const ACCEPTED: usize = 3 << 16;
/// Longest sleep in `poll` (how soon a stop request is seen on a quiet node).
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Most peer addresses kept from greetings (before a configuration is known).
const MAX_ADDRESSES: usize = 256;
/// A link to a node that is no member goes back to sleep after this long without a message.
const IDLE_LINK: Duration = Duration::from_secs(5);
/// Most ticks delivered at once after the loop slept long (a stopped process): the core
/// then sees its timers expired, without replaying a long pause tick by tick.
pub(crate) const MAX_TICK_BURST: u64 = 1000;

/// Everything the loop needs besides the core's state.
#[derive(Debug)]
pub struct ServerOptions {
    pub cluster_id: u64,
    pub tick: Duration,
    /// Every voter's peer address (this node's included).
    pub peers: std::collections::BTreeMap<NodeId, SocketAddr>,
    /// Every node's native client address, in the order RESP sessions' clerks try them.
    pub clients: Vec<(NodeId, SocketAddr)>,
    /// The data directory. With the core's `snapshots_in_storage` (skiff-node's default),
    /// the storage must keep its snapshot file there (`FileStorage` does): the node reads
    /// the snapshot back from it to send it to a follower.
    pub data_dir: PathBuf,
    /// Snapshot once this many bytes of log were written since the last snapshot.
    pub snapshot_threshold: Option<u64>,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// How long a request waits to be applied before it is answered `Timeout`.
    pub request_timeout: Duration,
    /// Largest peer message frame.
    pub max_peer_frame: u64,
    /// The client sessions' bound and expiry (the ttl in milliseconds).
    pub sessions: SessionLimits,
    /// Most client connections (native and RESP together) open at once.
    pub max_clients: usize,
    /// Most bytes all client connections' buffers hold together.
    pub max_client_buffers: usize,
    /// How long an incoming peer connection may take to send its handshake.
    pub peer_handshake_timeout: Duration,
    /// Where the node counts what it does (served on `--metrics-listen`, read by `INFO`).
    pub metrics: crate::metrics::Metrics,
    /// Who may connect and what each may run.
    pub users: acl::Users,
    /// TLS on the ports (none: plaintext everywhere).
    pub tls: Option<TlsOptions>,
}

/// TLS of the node's ports: its identity (certificate, key, cluster CA) and each port's mode.
/// Peers authenticate each other: the peer port asks for a client certificate, and every
/// certificate must chain to the CA and name the node it speaks for.
#[derive(Debug)]
pub struct TlsOptions {
    pub identity: skiff_std::tls::Identity,
    pub peer: TlsMode,
    pub native: TlsMode,
    pub resp: TlsMode,
    /// How long an accepted connection may take to complete its TLS handshake.
    pub handshake_timeout: Duration,
}

/// The listening ports' TLS and how this node dials others, from `opts.tls`.
struct Tls {
    ports: wire::PortsTls,
    /// For peer links (when the peer port speaks TLS).
    peer_dial: Option<wire::Dial>,
}

fn tls_setup(opts: &ServerOptions) -> Result<Tls, ServeError> {
    let Some(t) = &opts.tls else {
        return Ok(Tls { ports: wire::PortsTls::default(), peer_dial: None });
    };
    let bad = |e: skiff_std::tls::TlsError| ServeError::Io(io::Error::other(e.0));
    let counted = |port: &'static str| wire::Counted { port, metrics: opts.metrics.clone() };
    let port = |mode: TlsMode, peers: bool, name: &'static str| -> Result<Option<wire::PortTls>, ServeError> {
        if mode == TlsMode::Off {
            return Ok(None);
        }
        let config = t.identity.server_config(peers).map_err(bad)?;
        Ok(Some(wire::PortTls { mode, config, counted: counted(name) }))
    };
    if t.peer == TlsMode::Optional {
        tracing::warn!(
            "the peer port takes plaintext too (tls.peer = \"optional\"): plaintext peers are not \
             authenticated; set it to required once every node speaks TLS"
        );
    }
    let config = t.identity.client_config().map_err(bad)?;
    let dial = |name| wire::Dial {
        config: config.clone(),
        cluster: opts.cluster_id,
        handshake_timeout: t.handshake_timeout,
        counted: counted(name),
    };
    Ok(Tls {
        ports: wire::PortsTls {
            peer: port(t.peer, true, "peer")?,
            native: port(t.native, false, "native")?,
            resp: port(t.resp, false, "resp")?,
            handshake_timeout: t.handshake_timeout,
            forward_dial: (t.native != TlsMode::Off).then(|| dial("forward")),
        },
        peer_dial: (t.peer != TlsMode::Off).then(|| dial("peer-dial")),
    })
}

/// Bound listening sockets.
#[derive(Debug)]
pub struct Listeners {
    pub peer: std::net::TcpListener,
    pub client: std::net::TcpListener,
    pub resp: std::net::TcpListener,
}

/// Why the loop stopped other than by request.
#[derive(Debug)]
pub enum ServeError {
    Io(io::Error),
    /// The storage thread failed to write: durability can no longer be promised.
    Storage(skiff_std::storage::StorageError),
    /// The storage thread ended without saying why (it panicked).
    StorageEnded,
    /// The KV service cannot go on (a snapshot that does not decode).
    Service(ServiceError),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Io(e) => write!(f, "event loop: {e}"),
            ServeError::Storage(e) => {
                write!(f, "storage failed, so the node stops (it can no longer promise durability): {e}")
            }
            ServeError::StorageEnded => write!(f, "the storage thread ended unexpectedly; see the log above"),
            ServeError::Service(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<io::Error> for ServeError {
    fn from(e: io::Error) -> Self {
        ServeError::Io(e)
    }
}

struct Server {
    poll: Poll,
    engine: Engine,
    clients: Clients,
    opts: ServerOptions,
    hello: Hello,
    links: Vec<PeerLink>,
    link_of: HashMap<NodeId, usize>,
    /// Where each peer listens: the configuration's addresses over the peers table, and
    /// what peers that dialled in said (for nodes the configuration has no address of).
    addresses: std::collections::BTreeMap<NodeId, SocketAddr>,
    /// The latest configuration the core reported.
    members: Option<Membership>,
    listeners: Vec<TcpListener>,
    /// How peer links dial (TLS or not).
    peer_dial: Option<wire::Dial>,
}

/// Runs a node on the event loop until `stop` is set or storage fails. On stop: the
/// listeners close, clients are dropped, what storage was given is written, peers get what
/// was queued for them.
pub fn serve<S: Storage>(
    node: Node,
    restored: &Restored,
    storage: S,
    listeners: Listeners,
    mut opts: ServerOptions,
    stop: &AtomicBool,
) -> Result<(), ServeError> {
    let tls = tls_setup(&opts)?;
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let id = node.view().id;
    let storage = StorageLink::start(storage, waker, format!("skiff-storage-{}", id.0), opts.metrics.clone())?;
    let resp_port = listeners.resp.local_addr().map_or(0, |a| a.port());
    let mut mio_listeners = Vec::new();
    for (l, token) in
        [(listeners.peer, PEER_LISTENER), (listeners.client, CLIENT_LISTENER), (listeners.resp, RESP_LISTENER)]
    {
        l.set_nonblocking(true)?;
        let mut l = TcpListener::from_std(l);
        poll.registry().register(&mut l, token, Interest::READABLE)?;
        mio_listeners.push(l);
    }
    let now = Instant::now();
    let mut links = Vec::new();
    let mut link_of = HashMap::new();
    for (peer, addr) in opts.peers.iter().filter(|(p, _)| **p != id) {
        link_of.insert(*peer, links.len());
        links.push(PeerLink::new(*peer, *addr, Token(PEER_LINKS + links.len()), now));
    }
    // The clerks of this node's sessions reach it directly (it is always a server to them,
    // even when it advertises no client address), the others through their client ports.
    let mut servers: Vec<NodeId> = opts.clients.iter().map(|(n, _)| *n).collect();
    if !servers.contains(&id) {
        servers.push(id);
        servers.sort_unstable();
    }
    let forwards = opts
        .clients
        .iter()
        .filter(|(n, _)| *n != id)
        .enumerate()
        .map(|(i, (n, addr))| Forward::new(*n, *addr, Token(FORWARDS + i), tls.ports.forward_dial.clone()))
        .collect();
    let config = ServiceConfig {
        max_key_bytes: opts.max_key_bytes,
        max_value_bytes: opts.max_value_bytes,
        request_timeout: opts.request_timeout.as_millis() as u64,
        // The loop's own policy decides (`Engine::snapshot_policy`), not the lab's.
        max_raft_state: None,
        sessions: opts.sessions,
        ..ServiceConfig::default()
    };
    let kv = LocalKv::new(config, restored.snapshot.as_ref(), now).map_err(ServeError::Service)?;
    let check = PeerCheck { cluster_id: opts.cluster_id, me: id, max_frame: opts.max_peer_frame };
    let limits = ClientLimits {
        resp: Limits {
            max_bulk: opts.max_value_bytes.max(opts.max_key_bytes) + 1024,
            max_command: opts.max_key_bytes + opts.max_value_bytes + 4096,
            ..Limits::default()
        },
        // Twice a command's limits: room for a transaction or pipeline forwarded by a node.
        max_native_frame: (2 * (opts.max_key_bytes + opts.max_value_bytes) + (64 << 10)) as u64,
        max_key_bytes: opts.max_key_bytes,
        max_value_bytes: opts.max_value_bytes,
        max_forward_frame: opts.max_peer_frame,
        max_clients: opts.max_clients,
        max_client_buffers: opts.max_client_buffers,
        peer_handshake_timeout: opts.peer_handshake_timeout,
        facts: resp_commands::ServerFacts {
            node: id.0,
            resp_port,
            max_key_bytes: opts.max_key_bytes,
            max_value_bytes: opts.max_value_bytes,
            max_clients: opts.max_clients,
        },
        metrics: opts.metrics.clone(),
        users: Arc::new(std::sync::Mutex::new(std::mem::take(&mut opts.users))),
        tls: tls.ports,
    };
    let mut engine =
        Engine::new(node, kv, storage, opts.snapshot_threshold, opts.data_dir.clone(), opts.metrics.clone(), opts.tick);
    // The restored configuration's addresses, for the peer links.
    engine.new_membership = Some(engine.node.view().membership);
    let mut server = Server {
        poll,
        engine,
        clients: Clients::new(id, servers, forwards, limits, check, ACCEPTED),
        hello: Hello::new(opts.cluster_id, id, own_address(&opts, id)),
        addresses: opts.peers.clone(),
        members: None,
        opts,
        links,
        link_of,
        listeners: mio_listeners,
        peer_dial: tls.peer_dial,
    };
    let result = server.run(stop);
    server.shut_down();
    result
}

impl Server {
    fn run(&mut self, stop: &AtomicBool) -> Result<(), ServeError> {
        let mut events = Events::with_capacity(1024);
        let tick = self.opts.tick;
        for link in &mut self.links {
            link.connect_if_due(Instant::now(), self.poll.registry(), &self.hello, self.peer_dial.as_ref());
        }
        while !stop.load(Ordering::Relaxed) {
            // Capped so that a stop request is noticed soon even when the node is quiet.
            let due = (self.engine.last_tick() + tick * self.ticks_until_due()).min(Instant::now() + MAX_SLEEP);
            if let Err(e) = self.poll.poll(&mut events, Some(due.saturating_duration_since(Instant::now()))) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            let now = Instant::now();
            // Ticks that elapsed come first: the events were read after them. (With lease
            // reads the engine catches up again before each read and peer message.)
            let delivered = self.engine.catch_up(now) + self.engine.take_ticks_caught_up();
            if delivered > 0 {
                self.ticks_elapsed(now);
            }
            for event in events.iter() {
                self.on_event(event, now)?;
            }
            self.deliver(now);
            if self.clients.has_paused() {
                let mut ctx = Ctx { registry: self.poll.registry(), engine: &mut self.engine, links: &self.links };
                self.clients.resume(now, &mut ctx);
                self.deliver(now);
            }
            self.flush(now);
            if let Some(e) = self.engine.fatal.take() {
                return Err(e);
            }
            if self.engine.storage.ended() {
                return Err(ServeError::StorageEnded);
            }
            let took = now.elapsed();
            if self.engine.loop_stalls.record(took) {
                tracing::debug!(ms = took.as_millis() as u64, events = events.iter().count(), "slow loop round");
            }
        }
        Ok(())
    }

    /// Ticks the loop may sleep before it has anything to do: the engine's when the node is
    /// quiet, one while clients wait on deadlines or backoffs, or a peer link is down and
    /// must be redialled. Cheapest checks first: under load one of them holds and the walk
    /// over every RESP session is skipped.
    fn ticks_until_due(&self) -> u32 {
        let due = self.engine.ticks_until_due();
        if due <= 1 || !self.links.iter().all(|l| l.is_up() || l.is_dormant()) || self.clients.busy() {
            1
        } else {
            due
        }
    }

    fn on_event(&mut self, event: &Event, now: Instant) -> Result<(), ServeError> {
        match event.token() {
            WAKER => self.engine.storage_events()?,
            PEER_LISTENER | CLIENT_LISTENER | RESP_LISTENER => self.accept(event.token(), now),
            Token(t) if (PEER_LINKS..FORWARDS).contains(&t) => {
                if let Some(link) = self.links.get_mut(t - PEER_LINKS) {
                    link.on_event(now, self.poll.registry());
                }
            }
            Token(t) if (FORWARDS..ACCEPTED).contains(&t) => {
                self.clients.on_forward(t - FORWARDS, event, self.poll.registry())
            }
            token => {
                let mut ctx = Ctx { registry: self.poll.registry(), engine: &mut self.engine, links: &self.links };
                self.clients.saw(token, event);
                self.clients.on_ready(token, now, &mut ctx);
            }
        }
        Ok(())
    }

    fn accept(&mut self, token: Token, now: Instant) {
        let index = token.0 - PEER_LISTENER.0;
        let port = [Port::Peer, Port::Native, Port::Resp][index];
        loop {
            let (stream, _) = match self.listeners[index].accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: the listener stays; log and go on.
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            };
            let mut ctx = Ctx { registry: self.poll.registry(), engine: &mut self.engine, links: &self.links };
            self.clients.accept(port, stream, now, &mut ctx);
        }
    }

    /// Requests answered go to their clients; messages the engine emitted go to their links.
    fn deliver(&mut self, now: Instant) {
        let mut ctx = Ctx { registry: self.poll.registry(), engine: &mut self.engine, links: &self.links };
        self.clients.deliver(now, &mut ctx);
        self.route();
    }

    /// Queues the engine's messages on their peer links, starting a link to a node the
    /// first time a message goes to it (if its address is known).
    fn route(&mut self) {
        let outbox = std::mem::take(&mut self.engine.outbox);
        for m in &outbox {
            let i = match self.link_of.get(&m.to) {
                Some(&i) => i,
                None => match self.addresses.get(&m.to) {
                    Some(addr)
                        if m.to != self.engine.node.config().id() && self.links.len() < FORWARDS - PEER_LINKS =>
                    {
                        let i = self.links.len();
                        self.links.push(PeerLink::new(m.to, *addr, Token(PEER_LINKS + i), Instant::now()));
                        self.link_of.insert(m.to, i);
                        i
                    }
                    _ => continue,
                },
            };
            self.links[i].send(m, self.opts.max_peer_frame);
        }
        self.engine.outbox = outbox;
        self.engine.outbox.clear();
        // After the messages: a commit notice to a node this configuration removes is
        // queued before its link goes to sleep.
        self.follow_membership();
    }

    /// Takes in what changed about peers: addresses peers gave when they dialled in, and a
    /// new configuration (its addresses win; links to nodes no longer members go to sleep,
    /// and a link whose address changed is started afresh).
    fn follow_membership(&mut self) {
        // Greeting addresses only while this node knows no configuration (it joins): after,
        // a stranger naming itself and an address must not make us open links without end.
        let joining = self.members.as_ref().map_or(true, Membership::is_empty);
        for (id, addr) in self.clients.learned.drain(..) {
            if joining && self.addresses.len() < MAX_ADDRESSES {
                self.addresses.entry(id).or_insert(addr);
            }
        }
        let Some(m) = self.engine.new_membership.take() else { return };
        self.members = Some(m.clone());
        self.clients.learn_servers(&m);
        for (id, bytes) in m.addresses() {
            match skiff_std::address::PeerAddress::decode(bytes) {
                Ok(a) => {
                    self.addresses.insert(*id, a.raft);
                }
                Err(e) => tracing::warn!(node = id.0, "ignoring the configuration's address of a peer: {e}"),
            }
        }
        let registry = self.poll.registry();
        for link in &mut self.links {
            if !m.is_member(link.id) {
                link.sleep();
            } else if self.addresses.get(&link.id).is_some_and(|a| *a != link.addr()) {
                link.close(registry);
                let addr = self.addresses[&link.id];
                *link = PeerLink::new(link.id, addr, link.token(), Instant::now());
            }
        }
    }

    /// Ticks passed (the engine delivered them to the core): the engine's timed work,
    /// sessions' retries, redials.
    fn ticks_elapsed(&mut self, now: Instant) {
        self.engine.after_ticks(now);
        let mut ctx = Ctx { registry: self.poll.registry(), engine: &mut self.engine, links: &self.links };
        self.clients.on_tick(now, &mut ctx);
        for link in &mut self.links {
            if self.members.as_ref().is_some_and(|m| !m.is_member(link.id)) {
                link.sleep_if_idle(now, IDLE_LINK);
            }
            link.check_handshake(now, self.poll.registry());
            link.connect_if_due(now, self.poll.registry(), &self.hello, self.peer_dial.as_ref());
        }
    }

    /// Writes what was queued: on peer links, forwards and client connections; then gives
    /// storage the round's records (see [`Engine::hand_over_persists`]).
    fn flush(&mut self, now: Instant) {
        self.route();
        let registry = self.poll.registry();
        for link in &mut self.links {
            link.flush(now, registry);
        }
        self.clients.flush(registry);
        self.engine.hand_over_persists();
    }

    fn shut_down(&mut self) {
        let registry = self.poll.registry();
        for mut l in self.listeners.drain(..) {
            let _ = registry.deregister(&mut l);
        }
        self.clients.close_all(registry);
        self.engine.hand_over_persists();
        self.engine.storage.finish();
        // Give the peers what was queued for them (a last append, a vote), briefly.
        self.route();
        let deadline = Instant::now() + Duration::from_millis(200);
        while Instant::now() < deadline && !self.links.iter().all(PeerLink::drained) {
            let mut events = Events::with_capacity(64);
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(10)));
            for link in &mut self.links {
                link.flush(Instant::now(), self.poll.registry());
            }
        }
    }
}

/// What this node tells the peers it dials about where it listens (its entry in the peers
/// table, if any).
fn own_address(opts: &ServerOptions, id: NodeId) -> bytes::Bytes {
    opts.peers
        .get(&id)
        .map(|raft| skiff_std::address::PeerAddress { raft: *raft, client: None }.encode())
        .unwrap_or_default()
}
