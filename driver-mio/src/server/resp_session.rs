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
use skiff_core::kv::{validate_op, Clerk, ClerkStep, Cmd, Command, Op, Reply, Resp, Watched};
use skiff_core::{ChangeStep, Membership, NodeId};
use skiff_std::address::PeerAddress;

use super::conn::{Conn, MAX_OUTPUT};
use super::resp_commands::{all_commands, command_label, info_sections, local, ConnState, Local, ServerFacts};
use crate::metrics::Metrics;
use crate::resp::{encode, Limits, Parser, Proto};

/// Most pipelined commands sent as one operation.
const MAX_BATCH: usize = 256;

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
    /// forward), and report its answer with [`RespSession::on_reply`].
    Send { to: NodeId, attempt: u64, command: Command },
    /// The `INFO` text: give it with [`RespSession::answer_info`], then call
    /// [`RespSession::drive`] again.
    Info,
    /// `SKIFF.MEMBER LIST`: the configuration, given with [`RespSession::answer_info`].
    MemberList,
    /// A membership change of these steps, answered with [`RespSession::answer_member`].
    Member(Vec<ChangeStep>),
}

/// What `MULTI` queued: a command for the entry, or an answer known now (`PING`, `ECHO`, a
/// command whose arguments Redis would refuse only when running it, as `INCRBY k x`).
#[derive(Debug)]
enum Queued {
    Cmd(Cmd),
    Answer(Resp),
}

/// The commands queued since `MULTI`.
#[derive(Debug, Default)]
struct Multi {
    queued: Vec<Queued>,
    /// Bytes of the queued commands' arguments.
    bytes: usize,
    /// A command failed to queue (unknown, wrong arity, over the size limit): `EXEC`
    /// discards the transaction.
    dirty: bool,
}

/// Most commands one `MULTI` queues.
const MAX_MULTI: usize = 10_000;

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
    pub(crate) fn new(conn: Conn, clerk: Clerk, facts: ServerFacts, metrics: Metrics) -> RespSession {
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
            "info" => {
                self.info_args = args[1..].to_vec();
                return Step::Need(Need::Info);
            }
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

    /// Data command `first` and the data commands queued right after it (a client that
    /// pipelines), sent as one operation: a read pipeline at one ReadIndex, or, if any
    /// writes, one log entry applied in order (one sequence number, so a retry applies it
    /// once). Each is answered in order from the array of replies. The batch ends before
    /// anything else (a connection command, `MULTI`, a command that does not parse or is over
    /// a limit: it then goes alone and gets its own error), at [`MAX_BATCH`] commands, or at
    /// the value limit in bytes, so the entry always fits.
    fn pipeline(&mut self, first: Cmd, first_size: usize) -> Step {
        let limits = (self.facts.max_key_bytes, self.facts.max_value_bytes);
        let fits = |c: &Cmd| validate_op(&Op::Cmd(c.clone()), limits.0, limits.1).is_ok();
        if !fits(&first) {
            return Step::Start(Kind::Data, Op::Cmd(first));
        }
        // The batch's arguments, with room for each command's encoding, stay within the value
        // limit, so the operation fits a native frame when it is forwarded (its bound is
        // twice the key and value limits).
        let mut bytes = first_size + 64;
        let mut commands = vec![first];
        let mut labels = vec![self.started.0];
        while commands.len() < MAX_BATCH {
            let Some(Item::Command(args)) = self.queue.front() else { break };
            let size: usize = args.iter().map(Bytes::len).sum();
            if bytes + size + 64 > limits.1 {
                break;
            }
            let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
            let Some(Ok(cmd)) = Cmd::parse(args) else { break };
            if !fits(&cmd) {
                break;
            }
            self.queue.pop_front();
            self.queued_bytes -= size;
            bytes += size + 64;
            commands.push(cmd);
            labels.push(command_label(&name));
        }
        if commands.len() == 1 {
            return Step::Start(Kind::Data, Op::Cmd(commands.pop().expect("one")));
        }
        self.batch = labels;
        let op = if commands.iter().any(Cmd::is_write) {
            Op::Exec { commands, watched: None }
        } else {
            Op::Reads { commands }
        };
        Step::Start(Kind::Batch, op)
    }

    /// A command inside `MULTI`: queued if it is a data command, else `EXEC`, `DISCARD` or
    /// an error that dooms the transaction.
    fn in_multi(&mut self, name: &str, args: &[Bytes]) -> Step {
        let multi = self.multi.as_mut().expect("in a transaction");
        let reply = match name {
            "exec" => {
                let m = self.multi.take().expect("in a transaction");
                let watched = self.watched.take();
                if m.dirty {
                    self.reply(&Resp::error("EXECABORT Transaction discarded because of previous errors."));
                    return Step::Answered;
                }
                let mut commands = Vec::new();
                self.exec_answers = m
                    .queued
                    .into_iter()
                    .map(|q| match q {
                        Queued::Cmd(c) => {
                            commands.push(c);
                            None
                        }
                        Queued::Answer(r) => Some(r),
                    })
                    .collect();
                if commands.is_empty() && watched.is_none() {
                    let answers = std::mem::take(&mut self.exec_answers).into_iter().flatten().collect();
                    self.reply(&Resp::Array(answers));
                    return Step::Answered;
                }
                return Step::Start(Kind::Exec, Op::Exec { commands, watched });
            }
            "discard" => {
                self.multi = None;
                self.watched = None;
                Resp::Ok
            }
            "multi" => Resp::error("ERR MULTI calls can not be nested"),
            "watch" => {
                multi.dirty = true;
                Resp::error("ERR WATCH inside MULTI is not allowed")
            }
            _ => {
                let size: usize = args.iter().map(Bytes::len).sum();
                let max_bytes = 2 * (self.facts.max_key_bytes + self.facts.max_value_bytes);
                if multi.queued.len() >= MAX_MULTI || multi.bytes + size > max_bytes {
                    multi.dirty = true;
                    let why = format!(
                        "ERR a transaction holds at most {MAX_MULTI} commands and {max_bytes} bytes of arguments"
                    );
                    self.reply(&Resp::Error(why));
                    return Step::Answered;
                }
                let queued = match (name, Cmd::parse(args)) {
                    (_, Some(Ok(cmd))) => Ok(Queued::Cmd(cmd)),
                    // Redis refuses a wrong number of arguments when queueing; other argument
                    // errors come back from EXEC, in the command's place.
                    (_, Some(Err(e))) if e == skiff_core::kv::arity_error(name) => Err(e),
                    (_, Some(Err(e))) => Ok(Queued::Answer(e)),
                    ("ping", None) if args.len() <= 2 => {
                        Ok(Queued::Answer(args.get(1).map_or(Resp::Simple("PONG".into()), |m| Resp::Bulk(m.clone()))))
                    }
                    ("echo", None) if args.len() == 2 => Ok(Queued::Answer(Resp::Bulk(args[1].clone()))),
                    (_, None) if all_commands().any(|n| n == name) => {
                        Err(Resp::Error(format!("ERR '{name}' is not allowed inside MULTI by skiff")))
                    }
                    (_, None) => Err(unknown_command(args)),
                };
                match queued {
                    Ok(q) => {
                        multi.queued.push(q);
                        multi.bytes += size;
                        Resp::Simple("QUEUED".into())
                    }
                    Err(e) => {
                        multi.dirty = true;
                        e
                    }
                }
            }
        };
        self.reply(&reply);
        Step::Answered
    }

    /// Carries out one clerk step for the operation in flight (never a membership change).
    fn follow(&mut self, step: ClerkStep, now: Instant) -> Option<Need> {
        let (kind, wait) = self.flight.as_mut().expect("an operation in flight");
        let kind = *kind;
        match step {
            ClerkStep::Send { to, attempt, command } => {
                *wait = Wait::Reply { deadline: now + SERVER_TIMEOUT };
                return Some(Need::Send { to, attempt, command });
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
mod tests {
    use super::*;
    use mio::net::{TcpListener, TcpStream};
    use mio::{Poll, Token};

    fn session() -> (RespSession, Poll) {
        let poll = Poll::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let conn = Conn::register(stream, Token(1), poll.registry()).unwrap();
        let facts =
            ServerFacts { node: 1, resp_port: 6379, max_key_bytes: 1024, max_value_bytes: 1 << 20, max_clients: 10 };
        (RespSession::new(conn, Clerk::new(11, vec![NodeId(1), NodeId(2), NodeId(3)]), facts, Metrics::new()), poll)
    }

    fn sent(need: Option<Need>) -> (NodeId, u64, Command) {
        match need {
            Some(Need::Send { to, attempt, command }) => (to, attempt, command),
            other => panic!("not a send: {other:?}"),
        }
    }

    #[test]
    fn pipelined_commands_are_answered_in_order_with_kv_ops_one_at_a_time() {
        let (mut s, _poll) = session();
        let now = Instant::now();
        s.conn.rbuf.extend_from_slice(
            b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nINFO\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nNOPE\r\n",
        );
        s.parse(&Limits::default());
        let (_, attempt, register) = sent(s.drive(now));
        assert_eq!(s.conn.wbuf, b"+PONG\r\n");
        // The first write opens the connection's session.
        assert_eq!(register.op, Op::Register);
        let (to, attempt, cmd) = sent(s.on_reply(attempt, Reply::Registered { client: 9 }, now));
        assert_eq!((cmd.client, cmd.seq), (9, 1));
        // The current leader guess refuses with a hint; the clerk follows it.
        let (next, again, resent) = sent(s.on_reply(attempt, Reply::WrongLeader { hint: Some(NodeId(2)) }, now));
        assert_eq!((to, next, resent.seq), (NodeId(3), NodeId(2), cmd.seq));
        // A duplicate of the refusal is not taken for the new attempt's answer.
        assert_eq!(s.on_reply(attempt, Reply::Ok(Resp::Ok), now), None);
        assert_eq!(s.on_reply(again, Reply::Ok(Resp::Ok), now), Some(Need::Info), "then INFO");
        s.answer_info("# Raft\r\n".into());
        let (_, attempt, get) = sent(s.drive(now));
        assert!(matches!(get.op, Op::Cmd(Cmd::Get { .. })));
        assert_eq!(s.on_reply(attempt, Reply::Ok(Resp::bulk("v")), now), None);
        assert_eq!(s.conn.wbuf, b"+PONG\r\n+OK\r\n$8\r\n# Raft\r\n\r\n$1\r\nv\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n");
        assert!(s.idle());
    }

    fn wire(cmds: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            let words: Vec<&str> = c.split(' ').collect();
            out.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
            for w in words {
                out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
            }
        }
        out
    }

    #[test]
    fn pipelined_data_commands_go_as_one_operation_and_are_answered_in_order() {
        let (mut s, _poll) = session();
        let now = Instant::now();
        s.conn.rbuf.extend_from_slice(&wire(&["SET a 1", "INCR a", "LPUSH a x", "GET a", "PING", "GET a", "GET b"]));
        s.parse(&Limits::default());
        let (_, attempt, register) = sent(s.drive(now));
        assert_eq!(register.op, Op::Register);
        let (_, attempt, cmd) = sent(s.on_reply(attempt, Reply::Registered { client: 9 }, now));
        let Op::Exec { commands, watched: None } = &cmd.op else { panic!("{:?}", cmd.op) };
        assert_eq!(commands.len(), 4, "up to the PING");
        let wrongtype = Resp::error("WRONGTYPE Operation against a key holding the wrong kind of value");
        let replies = Resp::Array(vec![Resp::Ok, Resp::Int(2), wrongtype, Resp::bulk("2")]);
        // The PING is answered here; then the reads after it go as one read pipeline.
        let (_, attempt, reads) = sent(s.on_reply(attempt, Reply::Ok(replies), now));
        assert!(matches!(&reads.op, Op::Reads { commands } if commands.len() == 2), "{:?}", reads.op);
        assert_eq!(s.on_reply(attempt, Reply::Ok(Resp::Array(vec![Resp::bulk("2"), Resp::Nil])), now), None);
        let got = String::from_utf8(s.conn.wbuf.clone()).unwrap();
        assert_eq!(
            got,
            "+OK\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n$1\r\n2\r\n+PONG\r\n\
             $1\r\n2\r\n$-1\r\n"
        );
        // A refusal of the whole pipeline answers each of its commands with it.
        s.conn.wbuf.clear();
        s.conn.rbuf.extend_from_slice(&wire(&["SET a 1", "SET b 2"]));
        s.parse(&Limits::default());
        let (_, attempt, _) = sent(s.drive(now));
        assert_eq!(s.on_reply(attempt, Reply::Invalid { reason: "no".into() }, now), None);
        assert_eq!(s.conn.wbuf, b"-ERR no\r\n-ERR no\r\n");
        assert!(s.idle());
    }

    #[test]
    fn a_transaction_queues_data_commands_and_answers_in_their_places() {
        let (mut s, _poll) = session();
        let now = Instant::now();
        let exec = wire(&["EXEC"]);
        s.conn.rbuf.extend_from_slice(&exec);
        s.conn.rbuf.extend_from_slice(&wire(&["MULTI", "SET a 1", "INCRBY a x", "PING", "GET a", "EXEC"]));
        s.parse(&Limits::default());
        let (_, attempt, register) = sent(s.drive(now));
        assert_eq!(register.op, Op::Register);
        let (_, attempt, cmd) = sent(s.on_reply(attempt, Reply::Registered { client: 9 }, now));
        let Op::Exec { commands, watched: None } = &cmd.op else { panic!("{:?}", cmd.op) };
        assert_eq!(commands.len(), 2, "SET and GET go in the entry");
        assert_eq!(s.on_reply(attempt, Reply::Ok(Resp::Array(vec![Resp::Ok, Resp::bulk("1")])), now), None);
        assert_eq!(
            String::from_utf8(std::mem::take(&mut s.conn.wbuf)).unwrap(),
            "-ERR EXEC without MULTI\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
             *4\r\n+OK\r\n-ERR value is not an integer or out of range\r\n+PONG\r\n$1\r\n1\r\n"
        );
        // A wrong number of arguments, an unknown command or WATCH dooms it; DISCARD drops it.
        for doom in ["GET", "FROB x", "WATCH a", "CLIENT ID"] {
            s.conn.rbuf.extend_from_slice(&wire(&["MULTI", "SET a 1", doom, "EXEC"]));
            s.parse(&Limits::default());
            assert_eq!(s.drive(now), None);
            let out = String::from_utf8(std::mem::take(&mut s.conn.wbuf)).unwrap();
            assert!(out.ends_with("-EXECABORT Transaction discarded because of previous errors.\r\n"), "{doom}: {out}");
        }
        s.conn.rbuf.extend_from_slice(&wire(&["MULTI", "SET a 1", "DISCARD", "DISCARD"]));
        s.parse(&Limits::default());
        assert_eq!(s.drive(now), None);
        assert_eq!(s.conn.wbuf, b"+OK\r\n+QUEUED\r\n+OK\r\n-ERR DISCARD without MULTI\r\n");
        // A transaction of answers only needs no entry.
        s.conn.wbuf.clear();
        s.conn.rbuf.extend_from_slice(&wire(&["MULTI", "PING", "EXEC"]));
        s.parse(&Limits::default());
        assert_eq!(s.drive(now), None);
        assert_eq!(s.conn.wbuf, b"+OK\r\n+QUEUED\r\n*1\r\n+PONG\r\n");
        assert!(s.idle());
    }

    #[test]
    fn a_pipeline_stops_at_the_value_limit_so_its_entry_and_frame_fit() {
        let (mut s, _poll) = session();
        let now = Instant::now();
        // 1 MiB of values in all: no batch passes it.
        let value = "v".repeat(300 << 10);
        let sets: Vec<String> = (0..4).map(|i| format!("SET k{i} {value}")).collect();
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        s.conn.rbuf.extend_from_slice(&wire(&refs));
        s.parse(&Limits::default());
        let (_, attempt, _) = sent(s.drive(now));
        let (_, _, cmd) = sent(s.on_reply(attempt, Reply::Registered { client: 9 }, now));
        let Op::Exec { commands, .. } = &cmd.op else { panic!("{:?}", cmd.op) };
        assert_eq!(commands.len(), 3, "the fourth would pass 1 MiB");
    }

    #[test]
    fn an_unanswered_server_is_given_up_on_and_garbage_closes_the_connection() {
        let (mut s, _poll) = session();
        let now = Instant::now();
        s.conn.rbuf.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$99999999999\r\n");
        s.parse(&Limits::default());
        let (first, _, cmd) = sent(s.drive(now));
        assert_eq!(s.on_tick(now), None, "not yet");
        let (second, attempt, again) = sent(s.on_tick(now + SERVER_TIMEOUT));
        assert_ne!(first, second);
        assert_eq!(again.seq, cmd.seq);
        assert_eq!(s.on_reply(attempt, Reply::Ok(Resp::Nil), now), None);
        assert_eq!(s.conn.wbuf, b"$-1\r\n-ERR Protocol error: invalid bulk length\r\n");
        assert!(s.conn.closing);
    }
}
