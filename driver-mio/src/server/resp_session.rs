//! [`RespSession`]: one RESP2 connection and its client session. Commands are answered in the
//! order they arrived (pipelining is allowed); `GET`, `SET` and `APPEND` go through a pure
//! [`Clerk`], one at a time, so the session's sequence numbers make a write retried after a
//! leader change apply once. The clerk decides which node a request goes to; the event loop
//! carries it there (this node's state machine, or a forward to another node's client port).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use skiff_core::kv::{Clerk, ClerkStep, Command, Op, Reply};
use skiff_core::{ChangeStep, Membership, NodeId};
use skiff_std::address::PeerAddress;

use super::conn::{Conn, MAX_OUTPUT};
use crate::resp::{encode, Frame, Limits, Parser};

/// A request sent to a server and not answered within this time is sent elsewhere.
pub(crate) const SERVER_TIMEOUT: Duration = Duration::from_secs(2);
/// Wall time of one clerk backoff tick.
const BACKOFF_TICK: Duration = Duration::from_millis(10);

/// Something the session read and must answer, in order.
#[derive(Debug)]
enum Item {
    Command(Vec<Vec<u8>>),
    /// A request that did not parse: answered with this error, then the connection closes.
    ProtocolError(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Get,
    Set,
    Append,
    /// `SKIFF.MEMBER`: a membership change, answered by the loop.
    Member,
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
}

fn arity(name: &str) -> Frame {
    Frame::Error(format!("ERR wrong number of arguments for '{name}' command"))
}

fn text(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

impl RespSession {
    pub(crate) fn new(conn: Conn, clerk: Clerk) -> RespSession {
        RespSession { conn, clerk, queue: VecDeque::new(), queued_bytes: 0, parser: Parser::default(), flight: None }
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
                        self.queue.push_back(Item::Command(args));
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
        self.conn.rbuf.len() + self.parser.held() + self.queued_bytes + self.conn.pending()
    }

    /// Whether the session waits on nothing and has nothing queued.
    pub(crate) fn idle(&self) -> bool {
        self.flight.is_none() && self.queue.is_empty()
    }

    fn reply(&mut self, frame: &Frame) {
        encode(frame, &mut self.conn.wbuf);
    }

    /// A server to try besides those the session's clerk knows (a node added to the cluster).
    pub(crate) fn add_server(&mut self, server: NodeId) {
        self.clerk.add_server(server);
    }

    /// The `INFO` text the session asked for ([`Need::Info`]).
    pub(crate) fn answer_info(&mut self, text: String) {
        self.reply(&Frame::Bulk(Some(text.into_bytes())));
    }

    /// The outcome of the membership change in flight: the configuration reached, or why
    /// not. Then call [`RespSession::drive`] again.
    pub(crate) fn answer_member(&mut self, outcome: Result<Membership, String>) {
        if !matches!(self.flight, Some((Kind::Member, _))) {
            return;
        }
        self.flight = None;
        match outcome {
            Ok(m) => self.reply(&Frame::Simple(format!("OK {m}"))),
            Err(why) => self.reply(&Frame::Error(format!("ERR {why}"))),
        }
    }

    /// Answers queued commands until one needs something from the loop, or until
    /// [`MAX_OUTPUT`] bytes of answers wait for the client to read them (the loop drives the
    /// session again once they drain).
    pub(crate) fn drive(&mut self, now: Instant) -> Option<Need> {
        while self.flight.is_none() && self.conn.pending() < MAX_OUTPUT {
            let item = self.queue.pop_front()?;
            let args = match item {
                Item::Command(args) => {
                    self.queued_bytes -= args.iter().map(Vec::len).sum::<usize>();
                    args
                }
                Item::ProtocolError(e) => {
                    self.reply(&Frame::Error(e));
                    self.conn.closing = true;
                    self.queue.clear();
                    self.queued_bytes = 0;
                    return None;
                }
            };
            let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
            let (kind, op) = match (name.as_str(), args.len()) {
                ("ping", 1) => {
                    self.reply(&Frame::Simple("PONG".into()));
                    continue;
                }
                ("ping", 2) => {
                    self.reply(&Frame::Bulk(Some(args[1].clone())));
                    continue;
                }
                ("quit", _) => {
                    self.reply(&Frame::Simple("OK".into()));
                    self.conn.closing = true;
                    self.conn.stop_reading = true;
                    self.queue.clear();
                    self.queued_bytes = 0;
                    return None;
                }
                ("info", _) => return Some(Need::Info),
                ("skiff.member", _) => match member_command(&args[1..]) {
                    Ok(None) => return Some(Need::MemberList),
                    Ok(Some(steps)) => {
                        self.flight = Some((Kind::Member, Wait::Member));
                        return Some(Need::Member(steps));
                    }
                    Err(e) => {
                        self.reply(&Frame::Error(format!("ERR {e}")));
                        continue;
                    }
                },
                ("get", 2) => (Kind::Get, text(&args[1]).map(|key| Op::Get { key })),
                ("set", 3) => {
                    (Kind::Set, text(&args[1]).zip(text(&args[2])).map(|(key, value)| Op::Put { key, value }))
                }
                ("append", 3) => {
                    (Kind::Append, text(&args[1]).zip(text(&args[2])).map(|(key, value)| Op::Append { key, value }))
                }
                ("ping" | "get" | "set" | "append", _) => {
                    self.reply(&arity(&name));
                    continue;
                }
                _ => {
                    let shown: String = String::from_utf8_lossy(&args[0]).chars().take(64).collect();
                    self.reply(&Frame::Error(format!("ERR unknown command '{shown}'")));
                    continue;
                }
            };
            let Some(op) = op else {
                self.reply(&Frame::Error("ERR keys and values must be UTF-8".into()));
                continue;
            };
            let step = self.clerk.start(op);
            self.flight = Some((kind, Wait::Reply { deadline: now }));
            if let Some(send) = self.follow(step, now) {
                return Some(send);
            }
        }
        None
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
            ClerkStep::Done(value) => {
                let frame = match kind {
                    Kind::Get if value.is_empty() => Frame::Bulk(None),
                    Kind::Get => Frame::Bulk(Some(value.into_bytes())),
                    Kind::Set => Frame::Simple("OK".into()),
                    Kind::Append => Frame::Integer(value.parse().unwrap_or(0)),
                    Kind::Member => unreachable!("membership changes take no clerk steps"),
                };
                self.reply(&frame);
            }
            ClerkStep::Failed(reason) | ClerkStep::InDoubt(reason) => {
                self.reply(&Frame::Error(format!("ERR {reason}")))
            }
        }
        self.flight = None;
        None
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

/// The usage of `SKIFF.MEMBER`.
const MEMBER_USAGE: &str =
    "usage: SKIFF.MEMBER LIST | ADD-LEARNER id peer-addr [client-addr] | ADD-VOTER id peer-addr \
                            [client-addr] | PROMOTE id | DEMOTE id | REMOVE id";

/// Parses `SKIFF.MEMBER`'s arguments: `None` for `LIST`, else the change's steps.
fn member_command(args: &[Vec<u8>]) -> Result<Option<Vec<ChangeStep>>, String> {
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
        (RespSession::new(conn, Clerk::new(11, vec![NodeId(1), NodeId(2), NodeId(3)])), poll)
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
        assert_eq!(s.on_reply(attempt, Reply::Ok(String::new()), now), None);
        assert_eq!(s.on_reply(again, Reply::Ok(String::new()), now), Some(Need::Info), "then INFO");
        s.answer_info("# Raft\r\n".into());
        let (_, attempt, get) = sent(s.drive(now));
        assert!(matches!(get.op, Op::Get { .. }));
        assert_eq!(s.on_reply(attempt, Reply::Ok("v".into()), now), None);
        assert_eq!(s.conn.wbuf, b"+PONG\r\n+OK\r\n$8\r\n# Raft\r\n\r\n$1\r\nv\r\n-ERR unknown command 'NOPE'\r\n");
        assert!(s.idle());
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
        assert_eq!(s.on_reply(attempt, Reply::Ok(String::new()), now), None);
        assert_eq!(s.conn.wbuf, b"$-1\r\n-ERR Protocol error: invalid bulk length\r\n");
        assert!(s.conn.closing);
    }
}
