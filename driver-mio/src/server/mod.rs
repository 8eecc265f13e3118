//! The event loop of `skiff-node`: one thread owns the Raft core, the KV state machine, the
//! peer connections, the client connections (native and RESP) and the tick timer, and steps
//! the core in the order events arrive. Persistence runs on a storage thread that group
//! commits and wakes the loop with what became durable ([`storage`]).
//!
//! Obligations kept (DESIGN §2): messages the core emits are queued on their link at once and
//! written before the loop waits again; `Persisted { up_to }` reaches the core only after
//! storage returned for every record up to `up_to`; applies go to the state machine in the
//! order the core emits them. The loop sleeps in `poll` until a socket is ready, storage
//! wakes it, or the next tick that can do something is due ([`Node::ticks_until_due`]; the
//! ticks that elapsed meanwhile are delivered together): an idle leader wakes once per
//! heartbeat interval, an idle follower when a heartbeat arrives.

mod conn;
mod forward;
mod kv;
mod peers;
mod resp_session;
mod storage;

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use skiff_core::codec::{decode_frame, encode_frame};
use skiff_core::kv::{Clerk, Command, Reply};
use skiff_core::{Index, Input, Message, Node, NodeId, Output, Proposal, Restored, Role};
use skiff_std::kv::{fresh_client_id, validate_op, ClientRequest, ClientResponse};
use skiff_std::runtime::batch_input;
use skiff_std::storage::{wal_size, Storage};
use skiff_std::transport::Hello;

use self::conn::{Conn, ReadState};
use self::forward::{Forward, SessionReply};
use self::kv::{LocalKv, Request, Waiter};
use self::peers::{frame_error, read_peer, PeerCheck, PeerLink};
use self::resp_session::RespSession;
use self::storage::{StorageEvent, StorageLink};
use crate::resp::Limits;

const WAKER: Token = Token(0);
const PEER_LISTENER: Token = Token(1);
const CLIENT_LISTENER: Token = Token(2);
const RESP_LISTENER: Token = Token(3);
/// Tokens of outgoing peer links start here (one per peer).
const PEER_LINKS: usize = 1 << 16;
/// Tokens of forward connections start here (one per clerk server).
const FORWARDS: usize = 2 << 16;
/// Accepted connections take tokens from here on, never reused.
const ACCEPTED: usize = 3 << 16;
/// Ticks between checks of the WAL size against the snapshot threshold.
const SNAPSHOT_CHECK_TICKS: u64 = 10;
/// Requests of one client connection in progress (or queued) before reading from it waits.
const MAX_PIPELINE: usize = 1024;
/// Bytes of output waiting for a client to read before reading from it waits.
const MAX_OUTPUT: usize = 8 << 20;
/// Longest sleep in `poll` (how soon a stop request is seen on a quiet node).
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Most ticks delivered at once after the loop slept long (a stopped process): the core
/// then sees its timers expired, without replaying a long pause tick by tick.
const MAX_TICK_BURST: u64 = 1000;

/// Everything the loop needs besides the core's state.
#[derive(Debug)]
pub struct ServerOptions {
    pub cluster_id: u64,
    pub tick: Duration,
    /// Every voter's peer address (this node's included).
    pub peers: std::collections::BTreeMap<NodeId, SocketAddr>,
    /// Native client addresses by clerk server number (node ids in order).
    pub clients: Vec<(NodeId, SocketAddr)>,
    pub data_dir: PathBuf,
    /// Snapshot once the WAL reaches about this many bytes.
    pub snapshot_threshold: Option<u64>,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// How long a request waits to be applied before it is answered `Timeout`.
    pub request_timeout: Duration,
    /// Largest peer message frame.
    pub max_peer_frame: u64,
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
    Storage(String),
    /// A snapshot (restored or installed) does not decode: the state machine would diverge.
    Snapshot(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Io(e) => write!(f, "event loop: {e}"),
            ServeError::Storage(e) => write!(f, "storage failed: {e}"),
            ServeError::Snapshot(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<io::Error> for ServeError {
    fn from(e: io::Error) -> Self {
        ServeError::Io(e)
    }
}

/// An accepted connection.
#[derive(Debug)]
enum Accepted {
    /// A peer dialling in; `from` is set by its handshake.
    Peer {
        conn: Conn,
        from: Option<NodeId>,
    },
    /// A native client; `in_flight` counts its requests not answered yet.
    Native {
        conn: Conn,
        in_flight: usize,
    },
    Resp(Box<RespSession>),
}

impl Accepted {
    fn conn(&mut self) -> &mut Conn {
        match self {
            Accepted::Peer { conn, .. } | Accepted::Native { conn, .. } => conn,
            Accepted::Resp(s) => &mut s.conn,
        }
    }

    /// Whether the connection can go: closing, everything written, nothing in progress.
    fn finished(&self) -> bool {
        match self {
            Accepted::Peer { conn, .. } => conn.finished(),
            Accepted::Native { conn, in_flight } => conn.finished() && *in_flight == 0,
            Accepted::Resp(s) => s.conn.finished() && s.idle(),
        }
    }

    /// What the client asked and was not answered yet.
    fn busy(&self) -> bool {
        match self {
            Accepted::Peer { .. } => false,
            Accepted::Native { conn, in_flight } => *in_flight > 0 || conn.pending() > 0,
            Accepted::Resp(s) => !s.idle() || s.conn.pending() > 0,
        }
    }

    /// Whether reading more from this client should wait: too many of its requests are in
    /// progress, or too much output waits for it to read (backpressure: the node's memory
    /// stays bounded whatever a client sends).
    fn saturated(&self) -> bool {
        match self {
            Accepted::Peer { .. } => false,
            Accepted::Native { conn, in_flight } => *in_flight >= MAX_PIPELINE || conn.pending() >= MAX_OUTPUT,
            Accepted::Resp(s) => s.queued() >= MAX_PIPELINE || s.conn.pending() >= MAX_OUTPUT,
        }
    }
}

struct Server {
    poll: Poll,
    node: Node,
    out: Vec<Output>,
    kv: LocalKv,
    storage: StorageLink,
    opts: ServerOptions,
    check: PeerCheck,
    hello: Hello,
    /// This node's clerk server number.
    me: u64,
    links: Vec<PeerLink>,
    link_of: HashMap<NodeId, usize>,
    /// By clerk server number; `None` for this node.
    forwards: Vec<Option<Forward>>,
    listeners: Vec<TcpListener>,
    accepted: HashMap<Token, Accepted>,
    next_token: usize,
    /// Connections with output queued this round.
    dirty: BTreeSet<Token>,
    /// Clients not read from until they are no longer saturated.
    paused: BTreeSet<Token>,
    batch: Vec<Proposal>,
    /// Answers for RESP sessions not delivered yet.
    replies: Vec<SessionReply>,
    limits: Limits,
    max_native_frame: u64,
    ticks: u64,
    /// Applied index at the last snapshot-policy check.
    checked_at: Index,
    /// Set when the node cannot go on (a snapshot that does not decode): the loop stops.
    fatal: Option<ServeError>,
}

/// Runs a node on the event loop until `stop` is set or storage fails. On stop: the
/// listeners close, clients are dropped, what storage was given is written, peers get what
/// was queued for them.
pub fn serve<S: Storage>(
    node: Node,
    restored: &Restored,
    storage: S,
    listeners: Listeners,
    opts: ServerOptions,
    stop: &AtomicBool,
) -> Result<(), ServeError> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let id = node.view().id;
    let storage = StorageLink::start(storage, waker, format!("skiff-storage-{}", id.0))?;
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
    let servers: Vec<NodeId> = opts.clients.iter().map(|(n, _)| *n).collect();
    let me = servers.iter().position(|n| *n == id).unwrap_or(0) as u64;
    let forwards = opts
        .clients
        .iter()
        .enumerate()
        .map(|(i, (n, addr))| (*n != id).then(|| Forward::new(i as u64, *addr, Token(FORWARDS + i))))
        .collect();
    let kv = LocalKv::new(
        restored.snapshot.as_ref(),
        (opts.max_key_bytes, opts.max_value_bytes),
        opts.request_timeout,
        servers,
    )
    .map_err(ServeError::Snapshot)?;
    let check =
        PeerCheck { cluster_id: opts.cluster_id, me: id, peers: opts.peers.clone(), max_frame: opts.max_peer_frame };
    let max_native_frame = (opts.max_key_bytes + opts.max_value_bytes + 1024) as u64;
    let limits = Limits { max_bulk: opts.max_value_bytes.max(opts.max_key_bytes) + 1024, ..Limits::default() };
    let mut server = Server {
        poll,
        node,
        out: Vec::new(),
        kv,
        storage,
        hello: Hello::new(opts.cluster_id, id),
        opts,
        check,
        me,
        links,
        link_of,
        forwards,
        listeners: mio_listeners,
        accepted: HashMap::new(),
        next_token: ACCEPTED,
        dirty: BTreeSet::new(),
        paused: BTreeSet::new(),
        batch: Vec::new(),
        replies: Vec::new(),
        limits,
        max_native_frame,
        ticks: 0,
        checked_at: Index(0),
        fatal: None,
    };
    let result = server.run(stop);
    server.shut_down();
    result
}

impl Server {
    fn run(&mut self, stop: &AtomicBool) -> Result<(), ServeError> {
        let mut events = Events::with_capacity(1024);
        let tick = self.opts.tick;
        // The wall time of the last tick delivered to the core.
        let mut last_tick = Instant::now();
        for link in &mut self.links {
            link.connect_if_due(Instant::now(), self.poll.registry(), &self.hello);
        }
        while !stop.load(Ordering::Relaxed) {
            // Capped so that a stop request is noticed soon even when the node is quiet.
            let due = (last_tick + tick * self.ticks_until_due()).min(Instant::now() + MAX_SLEEP);
            if let Err(e) = self.poll.poll(&mut events, Some(due.saturating_duration_since(Instant::now()))) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            let now = Instant::now();
            // Ticks that elapsed come first: the events were read after them.
            let elapsed = (now.duration_since(last_tick).as_nanos() / tick.as_nanos().max(1)) as u64;
            if elapsed > 0 {
                self.ticks_elapsed(elapsed.min(MAX_TICK_BURST), now);
                last_tick = if elapsed > MAX_TICK_BURST { now } else { last_tick + tick * elapsed as u32 };
            }
            for event in events.iter() {
                self.on_event(event.token(), now)?;
            }
            self.settle(now);
            if !self.paused.is_empty() {
                self.resume(now);
                self.settle(now);
            }
            self.flush(now);
            if let Some(e) = self.fatal.take() {
                return Err(e);
            }
            if self.storage.ended() {
                return Err(ServeError::Storage("the storage thread ended".into()));
            }
        }
        Ok(())
    }

    /// Ticks the loop may sleep before it has anything to do: the core's own
    /// ([`Node::ticks_until_due`]) when the node is quiet, one while requests wait for
    /// deadlines or backoffs, or a peer link is down and must be redialled.
    fn ticks_until_due(&self) -> u32 {
        // Cheapest checks first: under load one of them holds and the walk over every RESP
        // session (for backoffs and deadlines nothing else tracks) is skipped.
        let busy = !self.kv.idle()
            || !self.paused.is_empty()
            || self.forwards.iter().flatten().any(Forward::busy)
            || !self.links.iter().all(PeerLink::is_up)
            || self.accepted.values().any(|a| matches!(a, Accepted::Resp(s) if !s.idle()));
        if busy {
            1
        } else {
            self.node.ticks_until_due()
        }
    }

    fn on_event(&mut self, token: Token, now: Instant) -> Result<(), ServeError> {
        match token {
            WAKER => loop {
                match self.storage.events.try_recv() {
                    Ok(StorageEvent::Persisted(up_to)) => self.step(Input::Persisted { up_to }),
                    Ok(StorageEvent::Failed(e)) => return Err(ServeError::Storage(e)),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        return Err(ServeError::Storage("the storage thread ended".into()))
                    }
                }
            },
            PEER_LISTENER | CLIENT_LISTENER | RESP_LISTENER => self.accept(token)?,
            Token(t) if (PEER_LINKS..FORWARDS).contains(&t) => {
                if let Some(link) = self.links.get_mut(t - PEER_LINKS) {
                    link.on_event(now, self.poll.registry());
                }
            }
            Token(t) if (FORWARDS..ACCEPTED).contains(&t) => {
                if let Some(Some(f)) = self.forwards.get_mut(t - FORWARDS) {
                    // Answers may be larger than any request: appends grow values.
                    f.on_event(self.poll.registry(), self.opts.max_peer_frame, &mut self.replies);
                }
            }
            token => self.on_accepted(token, now),
        }
        Ok(())
    }

    fn accept(&mut self, token: Token) -> io::Result<()> {
        let index = token.0 - PEER_LISTENER.0;
        loop {
            let (stream, _) = match self.listeners[index].accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: the listener stays; log and go on.
                    tracing::warn!(error = %e, "accept failed");
                    return Ok(());
                }
            };
            let _ = stream.set_nodelay(true);
            let t = Token(self.next_token);
            self.next_token += 1;
            let conn = match Conn::register(stream, t, self.poll.registry()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch an accepted connection; closing it");
                    continue;
                }
            };
            let accepted = match token {
                PEER_LISTENER => Accepted::Peer { conn, from: None },
                CLIENT_LISTENER => Accepted::Native { conn, in_flight: 0 },
                _ => Accepted::Resp(Box::new(RespSession::new(conn, Clerk::new(fresh_client_id(), self.servers())))),
            };
            self.accepted.insert(t, accepted);
            // Bytes may have arrived with the connection: edge-triggered readiness for them
            // may already be spent, so read now.
            self.on_accepted(t, Instant::now());
        }
    }

    fn servers(&self) -> u64 {
        self.forwards.len().max(1) as u64
    }

    /// Readiness on an accepted connection.
    fn on_accepted(&mut self, token: Token, now: Instant) {
        let Some(mut a) = self.accepted.remove(&token) else { return };
        if a.conn().stop_reading {
            self.accepted.insert(token, a);
            return;
        }
        if a.saturated() {
            // Read later (see `resume`): edge-triggered readiness will not repeat itself.
            self.paused.insert(token);
            self.accepted.insert(token, a);
            self.dirty.insert(token);
            return;
        }
        let keep = match &mut a {
            Accepted::Peer { conn, from } => self.read_peer_conn(conn, from),
            Accepted::Native { conn, in_flight } => self.read_native(conn, in_flight, now),
            Accepted::Resp(session) => self.read_resp(session, now),
        };
        // A client that closed its side still gets the answers to what it sent.
        let keep = keep || (!matches!(a, Accepted::Peer { .. }) && a.busy());
        if keep {
            if a.conn().closing && !a.conn().stop_reading {
                a.conn().stop_reading = true;
            }
            if a.saturated() {
                self.paused.insert(token);
            }
            self.accepted.insert(token, a);
            self.dirty.insert(token);
        } else {
            a.conn().deregister(self.poll.registry());
        }
    }

    /// Reads again from paused clients that are no longer saturated.
    fn resume(&mut self, now: Instant) {
        let ready: Vec<Token> =
            self.paused.iter().copied().filter(|t| self.accepted.get(t).is_some_and(|a| !a.saturated())).collect();
        for token in ready {
            self.paused.remove(&token);
            self.on_accepted(token, now);
        }
        self.paused.retain(|t| self.accepted.contains_key(t));
    }

    fn read_peer_conn(&mut self, conn: &mut Conn, from: &mut Option<NodeId>) -> bool {
        let mut msgs = Vec::new();
        loop {
            let state = conn.fill();
            let parsed = read_peer(conn, from, &self.check, &mut msgs);
            for m in msgs.drain(..) {
                self.step(Input::Message(m));
            }
            if let Err(why) = parsed {
                tracing::warn!(node = self.check.me.0, "closing peer connection: {why}");
                return false;
            }
            match state {
                ReadState::More => continue,
                ReadState::Drained => return true,
                ReadState::Closed => return false,
            }
        }
    }

    fn read_native(&mut self, conn: &mut Conn, in_flight: &mut usize, now: Instant) -> bool {
        loop {
            let state = conn.fill();
            let mut used = 0;
            while !conn.stop_reading {
                match decode_frame::<ClientRequest>(&conn.rbuf[used..], self.max_native_frame) {
                    Ok(Some((req, n))) => {
                        used += n;
                        let waiter = Waiter::Native { token: conn.token, id: req.id };
                        *in_flight += 1;
                        self.submit(req.command, waiter, now);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let reason = match e {
                            skiff_core::codec::CodecError::Malformed => "malformed request".to_string(),
                            other => format!("request refused: {}", frame_error(&other)),
                        };
                        tracing::debug!("closing a client connection: {reason}");
                        respond(conn, 0, Reply::Invalid { reason });
                        conn.closing = true;
                        conn.stop_reading = true;
                        used = conn.rbuf.len();
                    }
                }
            }
            conn.rbuf.drain(..used);
            match state {
                _ if conn.stop_reading => return true,
                ReadState::More if *in_flight < MAX_PIPELINE => continue,
                ReadState::Closed => {
                    conn.closing = true;
                    return false;
                }
                ReadState::More => {
                    self.paused.insert(conn.token);
                    return true;
                }
                ReadState::Drained => return true,
            }
        }
    }

    fn read_resp(&mut self, session: &mut RespSession, now: Instant) -> bool {
        loop {
            let state = session.conn.fill();
            session.parse(&self.limits);
            let token = session.conn.token;
            let mut info = || info_text(&self.node, &self.kv, &self.links);
            if let Some((server, command)) = session.drive(now, &mut info) {
                self.dispatch(token, server, command);
            }
            match state {
                _ if session.conn.stop_reading => return true,
                ReadState::More if session.queued() < MAX_PIPELINE => continue,
                ReadState::Closed => {
                    session.conn.closing = true;
                    return false;
                }
                ReadState::More => {
                    self.paused.insert(token);
                    return true;
                }
                ReadState::Drained => return true,
            }
        }
    }

    /// Sends a RESP session's request to clerk server `server`: this node's state machine,
    /// or a forward.
    fn dispatch(&mut self, session: Token, server: u64, command: Command) {
        if server == self.me {
            let waiter = Waiter::Resp { token: session, seq: command.seq };
            self.submit(command, waiter, Instant::now());
            return;
        }
        // Refused here rather than by the remote node, whose refusal would close the shared
        // forward connection under every session's requests.
        if let Err(reason) = validate_op(&command.op, self.opts.max_key_bytes, self.opts.max_value_bytes) {
            self.replies.push((session, server, command.seq, Reply::Invalid { reason }));
            return;
        }
        match self.forwards.get_mut(server as usize) {
            Some(Some(f)) => {
                f.send(self.poll.registry(), session, command, &mut self.replies);
                self.dirty.insert(Token(FORWARDS + server as usize));
            }
            _ => self.replies.push((session, server, command.seq, Reply::Timeout)),
        }
    }

    /// A request for this node's state machine.
    fn submit(&mut self, command: Command, waiter: Waiter, now: Instant) {
        match self.kv.request(command, waiter, now) {
            Request::Propose(p) => self.batch.push(p),
            Request::Read(id) => {
                self.flush_batch();
                self.step(Input::Read { id });
            }
            Request::Answered => {}
        }
    }

    fn flush_batch(&mut self) {
        if let Some(input) = batch_input(&mut self.batch) {
            self.step(input);
        }
    }

    fn step(&mut self, input: Input) {
        if !matches!(input, Input::Propose(_) | Input::ProposeBatch(_)) {
            self.flush_batch();
        }
        let mut out = std::mem::take(&mut self.out);
        self.node.step_into(input, &mut out);
        for o in out.drain(..) {
            self.carry_out(o);
        }
        self.out = out;
    }

    fn carry_out(&mut self, o: Output) {
        match o {
            Output::Send(m) => self.send(&m),
            Output::Persist(p) => self.storage.persist(p),
            Output::Apply(entries) => self.kv.apply(entries),
            Output::ApplySnapshot(s) => {
                if let Err(e) = self.kv.install(&s) {
                    self.fatal = Some(ServeError::Snapshot(e));
                }
            }
            Output::Accepted { id, index, term } => self.kv.accepted(id, index, term),
            Output::ProposalDropped { id, reason } => self.kv.proposal_dropped(id, &reason),
            Output::ReadReady { id, index } => self.kv.read_ready(id, index),
            Output::ReadDropped { id, reason } => self.kv.read_dropped(id, &reason),
            Output::RoleChanged { role, term, leader } => {
                tracing::info!(node = self.check.me.0, ?role, term = term.0, leader = ?leader.map(|l| l.0), "role changed");
            }
        }
    }

    fn send(&mut self, m: &Message) {
        if let Some(&i) = self.link_of.get(&m.to) {
            self.links[i].send(m, self.opts.max_peer_frame);
        }
    }

    /// `n` ticks of the clock passed: the core's, then request deadlines, sessions' retries,
    /// redials, and the snapshot policy.
    fn ticks_elapsed(&mut self, n: u64, now: Instant) {
        for _ in 0..n {
            self.step(Input::Tick);
        }
        self.kv.expire(now);
        let tokens: Vec<Token> = self.accepted.keys().copied().collect();
        for token in tokens {
            let Some(Accepted::Resp(session)) = self.accepted.get_mut(&token) else { continue };
            if session.idle() {
                continue;
            }
            let mut info = || info_text(&self.node, &self.kv, &self.links);
            if let Some((server, command)) = session.on_tick(now, &mut info) {
                self.dispatch(token, server, command);
            }
            self.dirty.insert(token);
        }
        for link in &mut self.links {
            link.connect_if_due(now, self.poll.registry(), &self.hello);
        }
        self.ticks += 1;
        // Only when something was applied since the last check: an idle node does no I/O.
        let applied = self.node.view().applied;
        if self.ticks % SNAPSHOT_CHECK_TICKS == 0 && self.opts.snapshot_threshold.is_some() && applied > self.checked_at
        {
            self.checked_at = applied;
            let wal = wal_size(&self.opts.data_dir);
            if let Some((index, data)) = self.kv.snapshot_due(wal, self.opts.snapshot_threshold) {
                tracing::debug!(index = index.0, wal, "snapshot");
                self.step(Input::Snapshot { index, data: data.into() });
            }
        }
    }

    /// Delivers answers until none is left: native clients get theirs written, RESP sessions
    /// move on (and may send their next request, which may be answered at once).
    fn settle(&mut self, now: Instant) {
        loop {
            self.flush_batch();
            for (waiter, reply) in self.kv.take_done() {
                match waiter {
                    Waiter::Native { token, id } => {
                        if let Some(Accepted::Native { conn, in_flight }) = self.accepted.get_mut(&token) {
                            *in_flight = in_flight.saturating_sub(1);
                            respond(conn, id, reply);
                            self.dirty.insert(token);
                        }
                    }
                    Waiter::Resp { token, seq } => self.replies.push((token, self.me, seq, reply)),
                }
            }
            if self.replies.is_empty() {
                break;
            }
            for (token, server, seq, reply) in std::mem::take(&mut self.replies) {
                let Some(Accepted::Resp(session)) = self.accepted.get_mut(&token) else { continue };
                let mut info = || info_text(&self.node, &self.kv, &self.links);
                if let Some((server, command)) = session.on_reply(server, seq, reply, now, &mut info) {
                    self.dispatch(token, server, command);
                }
                self.dirty.insert(token);
            }
        }
    }

    /// Writes what was queued: on peer links, forwards, and the connections marked dirty.
    fn flush(&mut self, now: Instant) {
        let registry = self.poll.registry();
        for link in &mut self.links {
            link.flush(now, registry);
        }
        for f in self.forwards.iter_mut().flatten() {
            f.flush(registry, &mut self.replies);
        }
        for token in std::mem::take(&mut self.dirty) {
            let Some(a) = self.accepted.get_mut(&token) else { continue };
            if a.conn().flush(registry).is_err() || a.finished() {
                a.conn().deregister(registry);
                self.accepted.remove(&token);
            }
        }
    }

    fn shut_down(&mut self) {
        let registry = self.poll.registry();
        for mut l in self.listeners.drain(..) {
            let _ = registry.deregister(&mut l);
        }
        for (_, mut a) in self.accepted.drain() {
            a.conn().deregister(registry);
        }
        self.storage.finish();
        // Give the peers what was queued for them (a last append, a vote), briefly.
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

fn respond(conn: &mut Conn, id: u64, reply: Reply) {
    if encode_frame(&ClientResponse { id, reply }, &mut conn.wbuf).is_err() {
        tracing::warn!("an answer did not encode");
    }
}

/// The `INFO` text: the node's Raft state and, on a leader, each peer's match index.
fn info_text(node: &Node, kv: &LocalKv, links: &[PeerLink]) -> String {
    let v = node.view();
    let mut s = format!(
        "# Raft\r\nnode_id:{}\r\nrole:{:?}\r\nterm:{}\r\nleader:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nlast_index:{}\r\nsnapshot_index:{}\r\n",
        v.id.0,
        v.role,
        v.term.0,
        v.leader.map_or("none".to_string(), |l| l.0.to_string()),
        v.commit.0,
        v.applied.0,
        v.last_index.0,
        v.snapshot_index.0
    );
    if v.role == Role::Leader {
        for link in links {
            if let Some(p) = node.progress(link.id) {
                s.push_str(&format!("peer_{}_match:{}\r\n", link.id.0, p.match_index.0));
            }
        }
    }
    for link in links {
        s.push_str(&format!("peer_{}_dropped:{}\r\n", link.id.0, link.dropped));
    }
    s.push_str(&format!(
        "# Keyspace\r\nkeys:{}\r\nrequests_in_progress:{}\r\nsnapshots_installed:{}\r\n",
        kv.keys(),
        kv.in_progress(),
        kv.installed
    ));
    s
}
