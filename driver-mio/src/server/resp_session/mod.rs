//! [`RespSession`]: one RESP connection and its client session. Commands are answered in the
//! order they arrived (pipelining is allowed). Data commands are parsed once
//! ([`Cmd::parse`]) and go through a pure [`Clerk`], one at a time, so the session's sequence
//! numbers make a write retried after a leader change apply once; the clerk decides which
//! node a request goes to and the event loop carries it there (this node's state machine, or
//! a forward to another node's client port). Connection and server commands are answered
//! here ([`super::resp_commands`]). `MULTI` queues data commands and `EXEC` sends them as one
//! operation, with the versions `WATCH` read.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_core::kv::{Clerk, ClerkStep, Cmd, Command, Op, Reply, Resp, Watched};
use skiff_core::{ChangeStep, Membership, NodeId};
use skiff_std::address::PeerAddress;

mod auth;
mod multi;
mod pipeline;

use self::multi::Multi;
use super::acl::{self, Role, Users};
use super::conn::{Conn, MAX_OUTPUT};
use super::resp_commands::{command_label, info_sections, local, ConnState, Local, ServerFacts};
use crate::metrics::Metrics;
use crate::resp::{encode, Limits, Parser, Proto};
use skiff_core::wire::Token;
use std::sync::{Arc, Mutex};

/// A request sent to a server and not answered within this time is sent elsewhere.
pub(crate) const SERVER_TIMEOUT: Duration = Duration::from_secs(2);
/// Wall time of one clerk backoff tick.
const BACKOFF_TICK: Duration = Duration::from_millis(10);

/// Something the session read and must answer, in order.
#[derive(Debug)]
enum Item {
    Command(Vec<Bytes>),
    /// A request that did not parse: answered with this error, then the connection closes.
    ProtocolError(String),
}

/// What the operation in flight answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A data command or `EXEC`: the state machine's reply, as it is.
    Data,
    /// `WATCH`: the versions read are kept for `EXEC`; the client gets `OK`.
    Watch,
    /// `SKIFF.MEMBER`: a membership change, answered by the loop.
    Member,
    /// Pipelined commands sent as one operation (their names in `batch`): its array of
    /// replies answers each in order.
    Batch,
    /// `EXEC`: its array of replies fills the places of `exec_answers` left empty.
    Exec,
}

#[derive(Debug)]
enum Wait {
    /// Sent to a server; given up on at `deadline`.
    Reply { deadline: Instant },
    /// Every server refused: send `command` to `to` as `attempt` at `until`.
    Backoff { until: Instant, to: NodeId, attempt: u64, command: Command },
    /// A membership change, answered with [`RespSession::answer_member`].
    Member,
}

/// What a session needs from the loop to go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Deliver attempt `attempt` of `command` to node `to` (this node's service, or a
    /// forward with the connection's credentials), and report its answer with
    /// [`RespSession::on_reply`].
    Send { to: NodeId, attempt: u64, command: Command, token: Option<Token> },
    /// The `INFO` text: give it with [`RespSession::answer_info`], then call
    /// [`RespSession::drive`] again.
    Info,
    /// `SKIFF.MEMBER LIST`: the configuration, given with [`RespSession::answer_info`].
    MemberList,
    /// A membership change of these steps, answered with [`RespSession::answer_member`].
    Member(Vec<ChangeStep>),
    /// `BGSAVE` (`start`) or `LASTSAVE`, answered with [`RespSession::answer_save`].
    Save { start: bool },
}

/// One RESP connection.
#[derive(Debug)]
pub(crate) struct RespSession {
    pub(crate) conn: Conn,
    clerk: Clerk,
    queue: VecDeque<Item>,
    /// Bytes of the arguments in `queue`.
    queued_bytes: usize,
    parser: Parser,
    /// The operation in flight: its kind (the form of its reply) and what it waits for.
    flight: Option<(Kind, Wait)>,
    state: ConnState,
    facts: ServerFacts,
    multi: Option<Multi>,
    watched: Option<Watched>,
    /// The sections the `INFO` asked for waits on.
    info_args: Vec<Bytes>,
    /// The keys of the `WATCH` in flight.
    watching: Vec<Bytes>,
    metrics: Metrics,
    /// The command in flight (its metrics label) and when it was taken from the queue.
    started: (&'static str, Instant),
    users: Arc<Mutex<Users>>,
    /// Who the connection authenticated as: user, role, and the password (sent with its
    /// forwarded requests, which the leader checks again).
    authed: Option<(String, Role, Bytes)>,
    /// Failed authentications so far.
    failures: u32,
    /// The metrics labels of the pipelined commands in flight ([`Kind::Batch`]).
    batch: Vec<&'static str>,
    /// The answers of an `EXEC` in flight known when queued, in order; `None` where a
    /// command's reply comes from the entry.
    exec_answers: Vec<Option<Resp>>,
}

fn unknown_command(args: &[Bytes]) -> Resp {
    let shown = |b: &Bytes| String::from_utf8_lossy(b).chars().take(128).collect::<String>();
    let rest: String = args[1..].iter().take(8).map(|a| format!("'{}' ", shown(a))).collect();
    Resp::Error(format!("ERR unknown command '{}', with args beginning with: {rest}", shown(&args[0])))
}

impl RespSession {
    pub(crate) fn new(
        conn: Conn,
        clerk: Clerk,
        facts: ServerFacts,
        metrics: Metrics,
        users: Arc<Mutex<Users>>,
    ) -> RespSession {
        let addr = conn.stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let state = ConnState {
            id: conn.token.0 as u64,
            proto: Proto::Resp2,
            name: Bytes::new(),
            lib_name: Bytes::new(),
            lib_ver: Bytes::new(),
            addr,
        };
        RespSession {
            conn,
            clerk,
            queue: VecDeque::new(),
            queued_bytes: 0,
            parser: Parser::default(),
            flight: None,
            state,
            facts,
            multi: None,
            watched: None,
            info_args: Vec::new(),
            watching: Vec::new(),
            metrics,
            started: ("", Instant::now()),
            batch: Vec::new(),
            exec_answers: Vec::new(),
            users,
            authed: None,
            failures: 0,
        }
    }

    /// Parses what was read into commands. After a protocol error nothing more is read; the
    /// commands before it are answered, then the error, then the connection closes.
    pub(crate) fn parse(&mut self, limits: &Limits) {
        let mut used = 0;
        while !self.conn.stop_reading {
            match self.parser.parse(&self.conn.rbuf[used..], limits) {
                Ok((Some(args), n)) => {
                    used += n;
                    if !args.is_empty() {
                        self.queued_bytes += args.iter().map(Vec::len).sum::<usize>();
                        self.queue.push_back(Item::Command(args.into_iter().map(Bytes::from).collect()));
                    }
                }
                Ok((None, n)) => {
                    used += n;
                    break;
                }
                Err(e) => {
                    self.queue.push_back(Item::ProtocolError(format!("ERR {e}")));
                    self.conn.stop_reading = true;
                    used = self.conn.rbuf.len();
                }
            }
        }
        self.conn.rbuf.drain(..used);
    }

    /// Commands read and not answered yet (the one in flight included).
    pub(crate) fn queued(&self) -> usize {
        self.queue.len() + usize::from(self.flight.is_some())
    }

    /// Bytes of the commands queued.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Bytes this connection holds: unparsed input, the partly read command, queued commands
    /// and unwritten output.
    pub(crate) fn buffered(&self) -> usize {
        let multi = self.multi.as_ref().map_or(0, |m| m.bytes + m.queued.len() * 64);
        self.conn.rbuf.len() + self.parser.held() + self.queued_bytes + self.conn.pending() + multi
    }

    /// Whether the session waits on nothing and has nothing queued.
    pub(crate) fn idle(&self) -> bool {
        self.flight.is_none() && self.queue.is_empty()
    }

    fn reply(&mut self, reply: &Resp) {
        encode(reply, self.state.proto, &mut self.conn.wbuf);
    }

    /// Answers the command taken at `self.started` with `reply`, counting it.
    fn answer(&mut self, reply: &Resp, now: Instant) {
        let (name, began) = self.started;
        self.metrics.command(name, now.saturating_duration_since(began), reply.is_error());
        self.reply(reply);
    }

    /// A server to try besides those the session's clerk knows (a node added to the cluster).
    pub(crate) fn add_server(&mut self, server: NodeId) {
        self.clerk.add_server(server);
    }

    /// The `INFO` text the session asked for ([`Need::Info`]), every section: the session
    /// keeps those asked for.
    pub(crate) fn answer_info(&mut self, text: String) {
        let text = info_sections(&text, &std::mem::take(&mut self.info_args));
        self.reply(&Resp::Bulk(Bytes::from(text.into_bytes())));
    }

    /// The answer to `Need::Save`. Then call [`RespSession::drive`] again.
    pub(crate) fn answer_save(&mut self, reply: Resp) {
        self.reply(&reply);
    }

    /// The outcome of the membership change in flight: the configuration reached, or why
    /// not. Then call [`RespSession::drive`] again.
    pub(crate) fn answer_member(&mut self, outcome: Result<Membership, String>) {
        if !matches!(self.flight, Some((Kind::Member, _))) {
            return;
        }
        self.flight = None;
        match outcome {
            Ok(m) => self.reply(&Resp::Simple(format!("OK {m}"))),
            Err(why) => self.reply(&Resp::Error(format!("ERR {why}"))),
        }
    }

    fn close_after(&mut self, reply: &Resp) {
        self.reply(reply);
        self.conn.closing = true;
        self.conn.stop_reading = true;
        self.queue.clear();
        self.queued_bytes = 0;
    }

    /// Answers queued commands until one needs something from the loop, or until
    /// [`MAX_OUTPUT`] bytes of answers wait for the client to read them (the loop drives the
    /// session again once they drain).
    pub(crate) fn drive(&mut self, now: Instant) -> Option<Need> {
        while self.flight.is_none() && self.conn.pending() < MAX_OUTPUT {
            let args = match self.queue.pop_front()? {
                Item::Command(args) => {
                    self.queued_bytes -= args.iter().map(Bytes::len).sum::<usize>();
                    args
                }
                Item::ProtocolError(e) => {
                    self.close_after(&Resp::Error(e));
                    return None;
                }
            };
            let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
            self.started = (command_label(&name), now);
            let before = self.conn.wbuf.len();
            if let Err(refused) = self.gate(&name, &args) {
                if let Some(m) = self.multi.as_mut() {
                    m.dirty = true;
                }
                self.reply(&refused);
                self.metrics.command(self.started.0, Duration::ZERO, true);
                continue;
            }
            let op = if self.multi.is_some() { self.in_multi(&name, &args) } else { self.command(&name, &args) };
            match op {
                Step::Answered => {
                    // Answered here: counted, an error if its reply is one.
                    let error = self.conn.wbuf.get(before) == Some(&b'-');
                    self.metrics.command(self.started.0, Duration::ZERO, error);
                }
                Step::Need(need) => return Some(need),
                Step::Start(kind, op) => {
                    let step = self.clerk.start(op);
                    self.flight = Some((kind, Wait::Reply { deadline: now }));
                    if let Some(send) = self.follow(step, now) {
                        return Some(send);
                    }
                }
            }
        }
        None
    }

    /// A command outside a transaction.
    fn command(&mut self, name: &str, args: &[Bytes]) -> Step {
        match name {
            "multi" => {
                self.multi = Some(Multi::default());
                self.reply(&Resp::Ok);
            }
            "exec" | "discard" => self.reply(&Resp::Error(format!("ERR {} without MULTI", name.to_uppercase()))),
            "watch" if args.len() >= 2 => {
                self.watching = args[1..].to_vec();
                return Step::Start(Kind::Watch, Op::Watch { keys: args[1..].to_vec() });
            }
            "unwatch" => {
                self.watched = None;
                self.reply(&Resp::Ok);
            }
            "auth" if self.users.lock().expect("users").required() => match &args[1..] {
                [password] => return self.authenticate("default", password),
                [user, password] => return self.authenticate(&String::from_utf8_lossy(user), password),
                _ => self.reply(&skiff_core::kv::arity_error("auth")),
            },
            "hello" => return self.hello(args),
            "info" => {
                self.info_args = args[1..].to_vec();
                return Step::Need(Need::Info);
            }
            "bgsave" => match &args[1..] {
                [] => return Step::Need(Need::Save { start: true }),
                [s] if s.eq_ignore_ascii_case(b"schedule") => return Step::Need(Need::Save { start: true }),
                _ => self.reply(&Resp::error("ERR syntax error")),
            },
            "lastsave" if args.len() == 1 => return Step::Need(Need::Save { start: false }),
            "lastsave" => self.reply(&skiff_core::kv::arity_error("lastsave")),
            "skiff.member" => match member_command(&args[1..]) {
                Ok(None) => return Step::Need(Need::MemberList),
                Ok(Some(steps)) => {
                    self.flight = Some((Kind::Member, Wait::Member));
                    return Step::Need(Need::Member(steps));
                }
                Err(e) => self.reply(&Resp::Error(format!("ERR {e}"))),
            },
            _ => match Cmd::parse(args) {
                Some(Ok(cmd)) => return self.pipeline(cmd, args.iter().map(Bytes::len).sum()),
                Some(Err(e)) => self.reply(&e),
                None => {
                    if name == "reset" {
                        self.multi = None;
                        self.watched = None;
                    }
                    match local(name, &args[1..], &mut self.state, &self.facts) {
                        Local::Reply(r) => self.reply(&r),
                        Local::Close(r) => {
                            self.close_after(&r);
                            return Step::Answered;
                        }
                        Local::No => self.reply(&unknown_command(args)),
                    }
                }
            },
        }
        Step::Answered
    }

    /// Carries out one clerk step for the operation in flight (never a membership change).
    fn follow(&mut self, step: ClerkStep, now: Instant) -> Option<Need> {
        let (kind, wait) = self.flight.as_mut().expect("an operation in flight");
        let kind = *kind;
        match step {
            ClerkStep::Send { to, attempt, command } => {
                *wait = Wait::Reply { deadline: now + SERVER_TIMEOUT };
                return Some(Need::Send { to, attempt, command, token: self.token() });
            }
            ClerkStep::Backoff { ticks, to, attempt, command } => {
                *wait = Wait::Backoff { until: now + BACKOFF_TICK * ticks, to, attempt, command };
                return None;
            }
            ClerkStep::Done(Resp::Array(replies)) if kind == Kind::Batch && replies.len() == self.batch.len() => {
                for (name, reply) in std::mem::take(&mut self.batch).into_iter().zip(replies) {
                    self.started.0 = name;
                    self.answer(&reply, now);
                }
            }
            ClerkStep::Done(_) | ClerkStep::Failed(_) | ClerkStep::InDoubt(_) if kind == Kind::Batch => {
                let why = match step {
                    ClerkStep::Failed(reason) | ClerkStep::InDoubt(reason) => Resp::Error(format!("ERR {reason}")),
                    // A retry of a pipeline whose replies were too large to keep is told so.
                    ClerkStep::Done(e @ Resp::Error(_)) => e,
                    _ => Resp::error("ERR the pipeline's replies did not come back; it was applied once"),
                };
                for name in std::mem::take(&mut self.batch) {
                    self.started.0 = name;
                    self.answer(&why, now);
                }
            }
            ClerkStep::Done(Resp::Array(replies)) if kind == Kind::Exec => {
                let mut from_entry = replies.into_iter();
                let answers = std::mem::take(&mut self.exec_answers)
                    .into_iter()
                    .map(|known| known.or_else(|| from_entry.next()).unwrap_or(Resp::Nil))
                    .collect();
                self.answer(&Resp::Array(answers), now);
            }
            ClerkStep::Done(value) if kind == Kind::Exec => {
                // Aborted (a watched key changed), or a retry told the reply was not kept.
                self.exec_answers.clear();
                self.answer(&value, now);
            }
            ClerkStep::Done(value) if kind == Kind::Watch => {
                self.watch_read(&value);
                self.answer(&Resp::Ok, now);
            }
            ClerkStep::Done(value) => self.answer(&value, now),
            ClerkStep::Failed(reason) | ClerkStep::InDoubt(reason) => {
                self.answer(&Resp::Error(format!("ERR {reason}")), now)
            }
        }
        self.flight = None;
        None
    }

    /// Keeps what a `WATCH` read (with what earlier ones did: the earliest index counts).
    fn watch_read(&mut self, value: &Resp) {
        let Resp::Array(items) = value else { return };
        let Some((Resp::Int(at), versions)) = items.split_first() else { return };
        let keys = std::mem::take(&mut self.watching);
        let read = keys.into_iter().zip(versions.iter().map(|v| match v {
            Resp::Int(n) => Some(*n as u64),
            _ => None,
        }));
        let w = self.watched.get_or_insert(Watched { at: *at as u64, keys: Vec::new() });
        w.at = w.at.min(*at as u64);
        for (k, v) in read {
            if !w.keys.iter().any(|(seen, _)| *seen == k) {
                w.keys.push((k, v));
            }
        }
    }

    /// The answer to attempt `attempt` (ignored unless it is the attempt in flight).
    pub(crate) fn on_reply(&mut self, attempt: u64, reply: Reply, now: Instant) -> Option<Need> {
        let step = self.clerk.on_reply(attempt, reply)?;
        if let Some(need) = self.follow(step, now) {
            return Some(need);
        }
        self.drive(now)
    }

    /// Time passed: a server that did not answer in time is given up on; a backoff ends.
    pub(crate) fn on_tick(&mut self, now: Instant) -> Option<Need> {
        let step = match &self.flight {
            Some((_, Wait::Member)) => return None,
            Some((_, Wait::Reply { deadline, .. })) if *deadline <= now => {
                let attempt = self.clerk.attempt();
                self.clerk.on_timeout(attempt)?
            }
            Some((_, Wait::Backoff { until, to, attempt, command })) if *until <= now => {
                ClerkStep::Send { to: *to, attempt: *attempt, command: command.clone() }
            }
            _ => return None,
        };
        if let Some(need) = self.follow(step, now) {
            return Some(need);
        }
        self.drive(now)
    }
}

/// What one command of the queue led to.
enum Step {
    Answered,
    Need(Need),
    /// An operation for the clerk, answered as `Kind` says.
    Start(Kind, Op),
}

/// The usage of `SKIFF.MEMBER`.
const MEMBER_USAGE: &str =
    "usage: SKIFF.MEMBER LIST | ADD-LEARNER id peer-addr [client-addr] | ADD-VOTER id peer-addr \
                            [client-addr] | PROMOTE id | DEMOTE id | REMOVE id";

/// Parses `SKIFF.MEMBER`'s arguments: `None` for `LIST`, else the change's steps.
fn member_command(args: &[Bytes]) -> Result<Option<Vec<ChangeStep>>, String> {
    let words: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let verb = words.first().map(|w| w.to_ascii_lowercase()).ok_or(MEMBER_USAGE)?;
    let node = || -> Result<NodeId, String> {
        let w = words.get(1).ok_or(MEMBER_USAGE)?;
        w.parse().map(NodeId).map_err(|_| format!("'{w}' is not a node id"))
    };
    let address = || -> Result<bytes::Bytes, String> {
        let parse = |w: &String| w.parse().map_err(|_| format!("'{w}' is not an IP address and port"));
        let raft = parse(words.get(2).ok_or(MEMBER_USAGE)?)?;
        let client = words.get(3).map(parse).transpose()?;
        Ok(PeerAddress { raft, client }.encode())
    };
    let step = match (verb.as_str(), words.len()) {
        ("list", 1) => return Ok(None),
        ("add-learner", 3 | 4) => ChangeStep::AddLearner { node: node()?, address: address()? },
        ("add-voter", 3 | 4) => ChangeStep::AddVoter { node: node()?, address: address()? },
        ("promote", 2) => ChangeStep::Promote { node: node()? },
        ("demote", 2) => ChangeStep::Demote { node: node()? },
        ("remove", 2) => ChangeStep::Remove { node: node()? },
        _ => return Err(MEMBER_USAGE.to_string()),
    };
    Ok(Some(vec![step]))
}

#[cfg(test)]
mod tests;
