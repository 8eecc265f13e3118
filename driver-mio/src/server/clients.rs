//! [`Clients`]: the accepted connections of the event loop (peers dialling in, native
//! clients, RESP clients), their tokens and backpressure, and the forward connections that
//! carry RESP sessions' requests to the node their clerk believes leads. Requests for this
//! node go to the [`Engine`]; its replies come back through [`Clients::deliver`].

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Registry, Token};
use skiff_core::kv::{validate_op, Reply};
use skiff_core::wire::{ClientRequest, ClientResponse};

use super::acl::WRONGPASS;
use skiff_core::{Input, NodeId};

pub(crate) use super::accepted::Port;
use super::accepted::{resp_saturated, Accepted, MAX_PIPELINE};
use super::budget::Budget;
use super::conn::{Conn, ReadState, MAX_OUTPUT};
use super::engine::Engine;
use super::forward::{Forward, SessionReply};
use super::kv::Waiter;
use super::native::NativeSession;
use super::peers::{read_peer, PeerCheck, PeerLink};
use super::resp_session::{Need, RespSession};
use super::wire::{PortsTls, TlsFailure, Wire};
use crate::resp::Limits;

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
    /// Most client connections (native and RESP) at once; one past it is refused.
    pub(crate) max_clients: usize,
    /// Most bytes all client connections may hold in their buffers together (input, parsed
    /// commands waiting, output); past it the connection holding the most is closed.
    pub(crate) max_client_buffers: usize,
    /// How long a connection to the peer port may take to send its handshake.
    pub(crate) peer_handshake_timeout: std::time::Duration,
    /// What RESP sessions tell of the server.
    pub(crate) facts: super::resp_commands::ServerFacts,
    /// Who may connect, and what each may run (shared with the RESP sessions).
    pub(crate) users: std::sync::Arc<std::sync::Mutex<super::acl::Users>>,
    pub(crate) metrics: crate::metrics::Metrics,
    pub(crate) tls: PortsTls,
}

/// Connections to the peer port still waiting for their handshake, at most.
const MAX_PENDING_PEERS: usize = 64;

#[derive(Debug)]
pub(crate) struct Clients {
    me: NodeId,
    /// The nodes a RESP session's clerk may send to, in order.
    servers: Vec<NodeId>,
    limits: ClientLimits,
    check: PeerCheck,
    /// Where peers that dialled in said they listen, for the loop's address book.
    pub(crate) learned: Vec<(NodeId, std::net::SocketAddr)>,
    accepted: HashMap<Token, Accepted>,
    next_token: usize,
    /// Connections with output queued this round.
    dirty: BTreeSet<Token>,
    /// Clients not read from until they are no longer saturated.
    paused: BTreeSet<Token>,
    forwards: Vec<Forward>,
    /// Answers for RESP sessions not delivered yet.
    replies: Vec<SessionReply>,
    /// What the client connections hold, as last counted (see [`Clients::account`]).
    budget: Budget,
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
            learned: Vec::new(),
            accepted: HashMap::new(),
            next_token: first_token,
            dirty: BTreeSet::new(),
            paused: BTreeSet::new(),
            forwards,
            replies: Vec::new(),
            budget: Budget::default(),
        }
    }

    /// Counts connection `token`'s buffers again (a closed one counts for nothing).
    fn account(&mut self, token: Token) {
        let now = self.accepted.get(&token).filter(|a| !matches!(a, Accepted::Peer { .. })).map(Accepted::buffered);
        self.budget.set(token, now);
        self.limits.metrics.connections.set(self.budget.connections() as i64);
    }

    /// While the client buffers pass their bound, closes the connection holding the most,
    /// with an error where its protocol has one (as Redis's client buffer limits do).
    fn enforce_buffer_bound(&mut self, registry: &Registry) {
        while self.budget.total() > self.limits.max_client_buffers {
            let Some((token, bytes)) = self.budget.largest() else { return };
            let Some(mut a) = self.accepted.remove(&token) else {
                self.account(token);
                continue;
            };
            tracing::warn!(
                bytes,
                total = self.budget.total(),
                max = self.limits.max_client_buffers,
                "closing the client connection holding the most buffered bytes: client buffers over their bound"
            );
            let why = "client buffers of the node over their limit; closing the connection holding the most";
            let port = a.port();
            let conn = a.conn();
            // A RESP client is told why, unless part of an answer already went out (the error
            // would land inside it). A native client is not: its requests may still commit,
            // and a refusal would tell its clerk they did not (a lost connection is in doubt).
            if port == Port::Resp && !conn.mid_frame() && conn.plaintext() {
                conn.wbuf = Vec::new();
                refuse(port, &mut conn.stream, why);
            }
            conn.deregister(registry);
            self.budget.evicted += 1;
            self.account(token);
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
        let (wire, by) = match self.limits.tls.of(port) {
            Some(p) => (Wire::Undecided(p.clone()), Some(now + self.limits.tls.handshake_timeout)),
            None => (Wire::Plain, None),
        };
        let conn = match Conn::register(stream, t, ctx.registry, wire, by) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch an accepted connection; closing it");
                return;
            }
        };
        let pending_peers =
            || self.accepted.values().filter(|a| matches!(a, Accepted::Peer { from: None, .. })).count();
        let full = match port {
            Port::Peer => pending_peers() >= MAX_PENDING_PEERS,
            Port::Native | Port::Resp => self.budget.connections() >= self.limits.max_clients,
        };
        if full {
            let mut conn = conn;
            tracing::warn!(?port, "refusing a connection: too many open");
            // Raw bytes would break a TLS handshake: a TLS port's client is only closed.
            if conn.plaintext() {
                refuse(port, &mut conn.stream, "max number of clients reached");
            }
            conn.deregister(ctx.registry);
            self.budget.refused += 1;
            return;
        }
        let accepted = match port {
            Port::Peer => Accepted::Peer { conn, from: None, deadline: now + self.limits.peer_handshake_timeout },
            Port::Native => Accepted::Native(NativeSession::new(conn)),
            Port::Resp => {
                let clerk = skiff_core::kv::Clerk::new(t.0 as u64, self.servers.clone());
                Accepted::Resp(Box::new(RespSession::new(
                    conn,
                    clerk,
                    self.limits.facts.clone(),
                    self.limits.metrics.clone(),
                    self.limits.users.clone(),
                )))
            }
        };
        let client = !matches!(accepted, Accepted::Peer { .. });
        self.accepted.insert(t, accepted);
        if client {
            self.budget.open(t);
            self.limits.metrics.connections_total.inc();
        }
        // Bytes may have arrived with the connection: edge-triggered readiness for them may
        // already be spent, so read now.
        self.on_ready(t, now, ctx);
    }

    /// Readiness on a forward connection (token offset `i`).
    pub(crate) fn on_forward(&mut self, i: usize, event: &Event, registry: &Registry) {
        if let Some(f) = self.forwards.get_mut(i) {
            f.on_event(event, registry, self.limits.max_forward_frame, &mut self.replies);
        }
    }

    /// Notes a readiness event of an accepted connection (see [`Conn::saw`]), before
    /// [`Clients::on_ready`] reads for it.
    pub(crate) fn saw(&mut self, token: Token, event: &Event) {
        if let Some(a) = self.accepted.get_mut(&token) {
            a.conn().saw(event);
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
            Accepted::Peer { conn, from, .. } => self.read_peer_conn(conn, from, ctx),
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
            // Checked after every read, not once per round: a round reads up to a buffer's
            // worth from each ready connection, so the total passes its bound by at most one
            // read.
            self.account(token);
            self.enforce_buffer_bound(ctx.registry);
        } else {
            if matches!(a.conn().failure, Some(TlsFailure::Plaintext)) {
                let port = a.port();
                refuse(port, &mut a.conn().stream, "this port requires TLS (a Redis client: --tls, ssl=True)");
            }
            a.conn().deregister(ctx.registry);
            self.account(token);
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
            let parsed = read_peer(conn, from, &self.check, &mut msgs, &mut self.learned);
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

    /// Whether the users let native request `req` run: `Err` with Redis's error text.
    fn permit(&self, req: &ClientRequest) -> Result<(), String> {
        let mut users = self.limits.users.lock().expect("users");
        if !users.required() {
            return Ok(());
        }
        let Some(t) = &req.token else { return Err("NOAUTH Authentication required.".into()) };
        let role = users.check(&t.user, &t.password).map_err(|_| WRONGPASS.to_string())?;
        let needed = super::acl::needs_op(&req.command.op);
        if role < needed {
            return Err(format!("NOPERM User {} has no permissions to run this command", t.user));
        }
        Ok(())
    }

    fn read_native(&mut self, session: &mut NativeSession, now: Instant, ctx: &mut Ctx<'_>) -> bool {
        let mut requests = Vec::new();
        loop {
            let state = session.conn.fill();
            session.parse(self.limits.max_native_frame, &mut requests);
            let token = session.conn.token;
            for req in requests.drain(..) {
                // With users configured, a request is run only with credentials that check
                // and a role that allows it (the forwards of RESP sessions carry theirs).
                if let Err(reason) = self.permit(&req) {
                    session.respond(req.id, Reply::Invalid { reason });
                    continue;
                }
                ctx.engine.submit(req.command, Waiter::Native { token, id: req.id }, now);
            }
            match state {
                _ if session.conn.stop_reading => return true,
                ReadState::More if session.in_flight < MAX_PIPELINE && session.conn.pending() < MAX_OUTPUT => continue,
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
                ReadState::More if !resp_saturated(session) => continue,
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
                    let mut info = super::info::process_sections(&super::info::ClientFacts {
                        facts: &self.limits.facts,
                        metrics: &self.limits.metrics,
                        connected: self.budget.connections(),
                        buffered: self.budget.total(),
                        rejected: self.budget.refused,
                        evicted: self.budget.evicted,
                    });
                    info.push_str(&ctx.engine.info(ctx.links));
                    session.answer_info(info);
                    need = session.drive(now);
                }
                send @ Need::Send { .. } => self.dispatch(session.conn.token, send, now, ctx),
                Need::MemberList => {
                    session.answer_info(ctx.engine.member_list());
                    need = session.drive(now);
                }
                Need::Save { start } => {
                    session.answer_save(ctx.engine.save_command(start));
                    need = session.drive(now);
                }
                Need::Member(steps) => {
                    // Answered through `deliver` (at once if refused).
                    ctx.engine.change_membership(steps, session.conn.token);
                }
            }
        }
    }

    /// Sends a RESP session's attempt ([`Need::Send`]) to its node: this node's service, or a forward.
    fn dispatch(&mut self, session: Token, send: Need, now: Instant, ctx: &mut Ctx<'_>) {
        let Need::Send { to, attempt, command, token: credentials } = send else { return };
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
            Some(i) => self.forwards[i].send(ctx.registry, session, attempt, command, credentials, &mut self.replies),
            None => self.replies.push((session, attempt, Reply::Timeout)),
        }
    }

    /// A configuration arrived: its members that give a client address become servers the
    /// RESP sessions' clerks may try (and forward to), so that a node added to the cluster
    /// serves them, and leads them if it comes to lead.
    pub(crate) fn learn_servers(&mut self, m: &skiff_core::Membership) {
        for (id, bytes) in m.addresses() {
            let Some(client) = skiff_std::address::PeerAddress::decode(bytes).ok().and_then(|a| a.client) else {
                continue;
            };
            if self.servers.contains(id) {
                continue;
            }
            self.servers.push(*id);
            if *id != self.me && !self.forwards.iter().any(|f| f.node == *id) {
                let token = Token(super::FORWARDS + self.forwards.len());
                self.forwards.push(Forward::new(*id, client, token, self.limits.tls.forward_dial.clone()));
            }
            for a in self.accepted.values_mut() {
                if let Accepted::Resp(session) = a {
                    session.add_server(*id);
                }
            }
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
            for (token, outcome) in std::mem::take(&mut ctx.engine.members.answers) {
                self.with_resp(
                    token,
                    ctx,
                    |s| {
                        s.answer_member(outcome);
                        s.drive(now)
                    },
                    now,
                );
            }
            if self.replies.is_empty() && ctx.engine.members.answers.is_empty() {
                break;
            }
            for (token, attempt, reply) in std::mem::take(&mut self.replies) {
                self.with_resp(token, ctx, |s| s.on_reply(attempt, reply, now), now);
            }
        }
    }

    /// Time passed: RESP sessions give up on servers that did not answer and end backoffs;
    /// connections whose TLS handshake did not complete in time, and peer connections that
    /// did not send their handshake in time, are closed.
    pub(crate) fn on_tick(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        for f in &mut self.forwards {
            f.check_handshake(now, ctx.registry, &mut self.replies);
        }
        let stalled: Vec<Token> =
            self.accepted.iter_mut().filter_map(|(t, a)| a.conn().handshake_late(now).then_some(*t)).collect();
        for token in stalled {
            // (Counted as a refusal by `handshake_late`.)
            if let Some(mut a) = self.accepted.remove(&token) {
                a.conn().deregister(ctx.registry);
                self.account(token);
            }
        }
        let late: Vec<Token> = self
            .accepted
            .iter()
            .filter(|(_, a)| matches!(a, Accepted::Peer { from: None, deadline, .. } if *deadline <= now))
            .map(|(t, _)| *t)
            .collect();
        for token in late {
            if let Some(mut a) = self.accepted.remove(&token) {
                tracing::warn!(node = self.me.0, "closing a peer connection that sent no handshake in time");
                a.conn().deregister(ctx.registry);
            }
        }
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
            if let Some(a) = self.accepted.get_mut(&token) {
                if a.conn().flush(registry).is_err() || a.finished() {
                    a.conn().deregister(registry);
                    self.accepted.remove(&token);
                }
            }
            self.account(token);
        }
        self.enforce_buffer_bound(registry);
    }

    /// Drops every accepted connection.
    pub(crate) fn close_all(&mut self, registry: &Registry) {
        for (_, mut a) in self.accepted.drain() {
            a.conn().deregister(registry);
        }
        self.budget.clear();
    }
}

/// Writes what a refused connection of `port` is told, in its protocol, as far as the socket
/// takes it now (the connection closes right after).
fn refuse(port: Port, stream: &mut TcpStream, why: &str) {
    use std::io::Write;
    let mut out = Vec::new();
    match port {
        Port::Resp => {
            crate::resp::encode(&crate::resp::Resp::Error(format!("ERR {why}")), crate::resp::Proto::Resp2, &mut out)
        }
        Port::Native => {
            let reply = ClientResponse::new(0, Reply::Invalid { reason: why.to_string() });
            let _ = skiff_core::codec::encode_frame(&reply, &mut out);
        }
        Port::Peer => {}
    }
    let _ = stream.write(&out);
}
