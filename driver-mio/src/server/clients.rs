//! [`Clients`]: the accepted connections of the event loop (peers dialling in, native
//! clients, RESP clients), their tokens and backpressure, and the forward connections that
//! carry RESP sessions' requests to the node their clerk believes leads. Requests for this
//! node go to the [`Engine`]; its replies come back through [`Clients::deliver`].

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Registry, Token};
use skiff_core::kv::{validate_op, Command, Reply};
use skiff_core::{Input, NodeId};

use super::conn::{Conn, ReadState};
use super::engine::Engine;
use super::forward::{Forward, SessionReply};
use super::kv::Waiter;
use super::native::NativeSession;
use super::peers::{read_peer, PeerCheck, PeerLink};
use super::resp_session::{Need, RespSession};
use crate::resp::Limits;

/// Requests of one client connection in progress (or queued) before reading from it waits.
const MAX_PIPELINE: usize = 1024;
/// Bytes of output waiting for a client to read before reading from it waits.
const MAX_OUTPUT: usize = 8 << 20;

/// Which listener a connection came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Port {
    Peer,
    Native,
    Resp,
}

/// An accepted connection.
#[derive(Debug)]
enum Accepted {
    /// A peer dialling in; `from` is set by its handshake.
    Peer {
        conn: Conn,
        from: Option<NodeId>,
    },
    Native(NativeSession),
    Resp(Box<RespSession>),
}

impl Accepted {
    fn conn(&mut self) -> &mut Conn {
        match self {
            Accepted::Peer { conn, .. } => conn,
            Accepted::Native(s) => &mut s.conn,
            Accepted::Resp(s) => &mut s.conn,
        }
    }

    /// Whether the connection can go: closing, everything written, nothing in progress.
    fn finished(&self) -> bool {
        match self {
            Accepted::Peer { conn, .. } => conn.finished(),
            Accepted::Native(s) => s.conn.finished() && s.in_flight == 0,
            Accepted::Resp(s) => s.conn.finished() && s.idle(),
        }
    }

    /// What the client asked and was not answered yet.
    fn busy(&self) -> bool {
        match self {
            Accepted::Peer { .. } => false,
            Accepted::Native(s) => s.in_flight > 0 || s.conn.pending() > 0,
            Accepted::Resp(s) => !s.idle() || s.conn.pending() > 0,
        }
    }

    /// Whether reading more from this client should wait: too many of its requests are in
    /// progress, or too much output waits for it to read (backpressure: the node's memory
    /// stays bounded whatever a client sends).
    fn saturated(&self) -> bool {
        match self {
            Accepted::Peer { .. } => false,
            Accepted::Native(s) => s.in_flight >= MAX_PIPELINE || s.conn.pending() >= MAX_OUTPUT,
            Accepted::Resp(s) => s.queued() >= MAX_PIPELINE || s.conn.pending() >= MAX_OUTPUT,
        }
    }
}

/// What a client connection's handling needs from the rest of the loop.
pub(crate) struct Ctx<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) engine: &'a mut Engine,
    /// For `INFO`.
    pub(crate) links: &'a [PeerLink],
}

/// Limits of client input.
#[derive(Debug)]
pub(crate) struct ClientLimits {
    pub(crate) resp: Limits,
    pub(crate) max_native_frame: u64,
    pub(crate) max_key_bytes: usize,
    pub(crate) max_value_bytes: usize,
    /// Largest answer read from a forward (answers may be larger than any request:
    /// appends grow values).
    pub(crate) max_forward_frame: u64,
}

#[derive(Debug)]
pub(crate) struct Clients {
    me: NodeId,
    /// The nodes a RESP session's clerk may send to, in order.
    servers: Vec<NodeId>,
    limits: ClientLimits,
    check: PeerCheck,
    accepted: HashMap<Token, Accepted>,
    next_token: usize,
    /// Connections with output queued this round.
    dirty: BTreeSet<Token>,
    /// Clients not read from until they are no longer saturated.
    paused: BTreeSet<Token>,
    forwards: Vec<Forward>,
    /// Answers for RESP sessions not delivered yet.
    replies: Vec<SessionReply>,
}

impl Clients {
    /// `forwards` holds a connection to every other server; accepted connections take tokens
    /// from `first_token` on, never reused.
    pub(crate) fn new(
        me: NodeId,
        servers: Vec<NodeId>,
        forwards: Vec<Forward>,
        limits: ClientLimits,
        check: PeerCheck,
        first_token: usize,
    ) -> Clients {
        Clients {
            me,
            servers,
            limits,
            check,
            accepted: HashMap::new(),
            next_token: first_token,
            dirty: BTreeSet::new(),
            paused: BTreeSet::new(),
            forwards,
            replies: Vec::new(),
        }
    }

    /// Whether anything waits on time: paused clients, forwarded requests, RESP sessions
    /// with an operation in progress (for backoffs and deadlines nothing else tracks).
    pub(crate) fn busy(&self) -> bool {
        !self.paused.is_empty()
            || self.forwards.iter().any(Forward::busy)
            || self.accepted.values().any(|a| matches!(a, Accepted::Resp(s) if !s.idle()))
    }

    pub(crate) fn has_paused(&self) -> bool {
        !self.paused.is_empty()
    }

    /// A connection accepted on `port`.
    pub(crate) fn accept(&mut self, port: Port, stream: TcpStream, now: Instant, ctx: &mut Ctx<'_>) {
        let _ = stream.set_nodelay(true);
        let t = Token(self.next_token);
        self.next_token += 1;
        let conn = match Conn::register(stream, t, ctx.registry) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch an accepted connection; closing it");
                return;
            }
        };
        let accepted = match port {
            Port::Peer => Accepted::Peer { conn, from: None },
            Port::Native => Accepted::Native(NativeSession::new(conn)),
            Port::Resp => {
                let clerk = skiff_core::kv::Clerk::new(skiff_std::kv::fresh_client_id(), self.servers.clone());
                Accepted::Resp(Box::new(RespSession::new(conn, clerk)))
            }
        };
        self.accepted.insert(t, accepted);
        // Bytes may have arrived with the connection: edge-triggered readiness for them may
        // already be spent, so read now.
        self.on_ready(t, now, ctx);
    }

    /// Readiness on a forward connection (token offset `i`).
    pub(crate) fn on_forward(&mut self, i: usize, registry: &Registry) {
        if let Some(f) = self.forwards.get_mut(i) {
            f.on_event(registry, self.limits.max_forward_frame, &mut self.replies);
        }
    }

    /// Readiness on an accepted connection.
    pub(crate) fn on_ready(&mut self, token: Token, now: Instant, ctx: &mut Ctx<'_>) {
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
            Accepted::Peer { conn, from } => self.read_peer_conn(conn, from, ctx),
            Accepted::Native(session) => self.read_native(session, now, ctx),
            Accepted::Resp(session) => self.read_resp(session, now, ctx),
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
            a.conn().deregister(ctx.registry);
        }
    }

    /// Reads again from paused clients that are no longer saturated.
    pub(crate) fn resume(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        let ready: Vec<Token> =
            self.paused.iter().copied().filter(|t| self.accepted.get(t).is_some_and(|a| !a.saturated())).collect();
        for token in ready {
            self.paused.remove(&token);
            self.on_ready(token, now, ctx);
        }
        self.paused.retain(|t| self.accepted.contains_key(t));
    }

    fn read_peer_conn(&mut self, conn: &mut Conn, from: &mut Option<NodeId>, ctx: &mut Ctx<'_>) -> bool {
        let mut msgs = Vec::new();
        loop {
            let state = conn.fill();
            let parsed = read_peer(conn, from, &self.check, &mut msgs);
            for m in msgs.drain(..) {
                ctx.engine.step(Input::Message(m));
            }
            if let Err(why) = parsed {
                tracing::warn!(node = self.me.0, "closing peer connection: {why}");
                return false;
            }
            match state {
                ReadState::More => continue,
                ReadState::Drained => return true,
                ReadState::Closed => return false,
            }
        }
    }

    fn read_native(&mut self, session: &mut NativeSession, now: Instant, ctx: &mut Ctx<'_>) -> bool {
        let mut requests = Vec::new();
        loop {
            let state = session.conn.fill();
            session.parse(self.limits.max_native_frame, &mut requests);
            let token = session.conn.token;
            for req in requests.drain(..) {
                ctx.engine.submit(req.command, Waiter::Native { token, id: req.id }, now);
            }
            match state {
                _ if session.conn.stop_reading => return true,
                ReadState::More if session.in_flight < MAX_PIPELINE => continue,
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

    fn read_resp(&mut self, session: &mut RespSession, now: Instant, ctx: &mut Ctx<'_>) -> bool {
        loop {
            let state = session.conn.fill();
            session.parse(&self.limits.resp);
            let need = session.drive(now);
            self.serve_need(session, need, now, ctx);
            match state {
                _ if session.conn.stop_reading => return true,
                ReadState::More if session.queued() < MAX_PIPELINE => continue,
                ReadState::Closed => {
                    session.conn.closing = true;
                    return false;
                }
                ReadState::More => {
                    self.paused.insert(session.conn.token);
                    return true;
                }
                ReadState::Drained => return true,
            }
        }
    }

    /// Gives a RESP session what it asked for, until it waits on a server.
    fn serve_need(&mut self, session: &mut RespSession, mut need: Option<Need>, now: Instant, ctx: &mut Ctx<'_>) {
        while let Some(n) = need.take() {
            match n {
                Need::Info => {
                    session.answer_info(ctx.engine.info(ctx.links));
                    need = session.drive(now);
                }
                Need::Send { to, attempt, command } => {
                    self.dispatch(session.conn.token, to, attempt, command, now, ctx)
                }
            }
        }
    }

    /// Sends a RESP session's attempt to node `to`: this node's service, or a forward.
    fn dispatch(
        &mut self,
        session: Token,
        to: NodeId,
        attempt: u64,
        command: Command,
        now: Instant,
        ctx: &mut Ctx<'_>,
    ) {
        if to == self.me {
            ctx.engine.submit(command, Waiter::Resp { token: session, attempt }, now);
            return;
        }
        // Refused here rather than by the remote node, whose refusal would close the shared
        // forward connection under every session's requests.
        if let Err(e) = validate_op(&command.op, self.limits.max_key_bytes, self.limits.max_value_bytes) {
            self.replies.push((session, attempt, Reply::Invalid { reason: e.to_string() }));
            return;
        }
        match self.forwards.iter_mut().position(|f| f.node == to) {
            Some(i) => self.forwards[i].send(ctx.registry, session, attempt, command, &mut self.replies),
            None => self.replies.push((session, attempt, Reply::Timeout)),
        }
    }

    /// Delivers answers until none is left: native clients get theirs written, RESP sessions
    /// move on (and may send their next request, which may be answered at once).
    pub(crate) fn deliver(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        loop {
            ctx.engine.settle();
            for (waiter, reply) in std::mem::take(&mut ctx.engine.replies) {
                match waiter {
                    Waiter::Native { token, id } => {
                        if let Some(Accepted::Native(session)) = self.accepted.get_mut(&token) {
                            session.respond(id, reply);
                            self.dirty.insert(token);
                        }
                    }
                    Waiter::Resp { token, attempt } => self.replies.push((token, attempt, reply)),
                }
            }
            if self.replies.is_empty() {
                break;
            }
            for (token, attempt, reply) in std::mem::take(&mut self.replies) {
                self.with_resp(token, ctx, |s| s.on_reply(attempt, reply, now), now);
            }
        }
    }

    /// Time passed: RESP sessions give up on servers that did not answer and end backoffs.
    pub(crate) fn on_tick(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        let busy: Vec<Token> = self
            .accepted
            .iter()
            .filter(|(_, a)| matches!(a, Accepted::Resp(s) if !s.idle()))
            .map(|(t, _)| *t)
            .collect();
        for token in busy {
            self.with_resp(token, ctx, |s| s.on_tick(now), now);
        }
    }

    /// Runs `f` on RESP session `token` (if still there) and serves what it then needs.
    fn with_resp(
        &mut self,
        token: Token,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut RespSession) -> Option<Need>,
        now: Instant,
    ) {
        let mut session = match self.accepted.remove(&token) {
            Some(Accepted::Resp(session)) => session,
            Some(other) => {
                self.accepted.insert(token, other);
                return;
            }
            None => return,
        };
        let need = f(&mut session);
        self.serve_need(&mut session, need, now, ctx);
        self.accepted.insert(token, Accepted::Resp(session));
        self.dirty.insert(token);
    }

    /// Writes what was queued: on forwards and the connections marked dirty.
    pub(crate) fn flush(&mut self, registry: &Registry) {
        for f in &mut self.forwards {
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

    /// Drops every accepted connection.
    pub(crate) fn close_all(&mut self, registry: &Registry) {
        for (_, mut a) in self.accepted.drain() {
            a.conn().deregister(registry);
        }
    }
}
