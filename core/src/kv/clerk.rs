//! [`Clerk`]: the client's logic, free of I/O and clocks. It guesses the leader, follows hints,
//! rotates through servers, resends a request with the same sequence number until one answer
//! comes back, and backs off (in ticks of the caller's clock) after a full round of refusals.
//!
//! Sessions: before its first write the clerk registers (an `Op::Register` request, answered
//! with the id it then puts in every request). When the cluster answers that the session
//! expired, the clerk registers again and resends the write under the new session, but only
//! if the write was never in doubt (every attempt so far was refused for sure). If an attempt
//! timed out, an earlier attempt may have been applied before the session expired, and a
//! resend could apply it twice: the operation ends [`ClerkStep::InDoubt`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Command, Op, Reply, Resp};
use crate::types::NodeId;

/// Backoff after the first full round of refusals, in ticks; doubled per round up to `MAX`.
const BACKOFF_MIN: u32 = 1;
const BACKOFF_MAX: u32 = 64;

/// What the caller does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClerkStep {
    /// Send `command` to server `to` as attempt `attempt`, and report its reply (or a
    /// timeout) with that attempt number.
    Send { to: NodeId, attempt: u64, command: Command },
    /// Wait `ticks`, then send `command` to `to` as attempt `attempt` (no timeout is due
    /// while waiting).
    Backoff { ticks: u32, to: NodeId, attempt: u64, command: Command },
    /// The operation completed with this result.
    Done(Resp),
    /// The operation was refused for good (see `Reply::Invalid`): it did not take effect.
    Failed(String),
    /// The write may or may not have taken effect, and nobody can tell any more: its session
    /// expired while it was in doubt.
    InDoubt(String),
}

/// One client. It assumes each attempt reaches a server at most once (a TCP request, not a
/// datagram that may be duplicated): a refusal of an attempt then says it was not applied.
/// Invariants: within a session, sequence numbers of its requests strictly
/// increase and a request is resent only with its own number; attempt numbers strictly
/// increase, and only the answer to (or the timeout of) the attempt in flight moves the clerk
/// on, so a duplicated or late answer to an earlier attempt never starts another one; a write
/// in doubt is never resent under another session.
#[derive(Clone, Debug)]
pub struct Clerk {
    /// The session's id (0 before the first registration).
    id: u64,
    servers: Vec<NodeId>,
    /// Position in `servers` of the server the clerk believes leads.
    leader: usize,
    seq: u64,
    /// The request in flight: the operation's, or the `Register` before it.
    current: Option<Command>,
    /// The operation waiting for the `Register` in flight.
    pending: Option<Op>,
    /// Whether an attempt of the operation in flight went unanswered (it may have applied).
    in_doubt: bool,
    /// The attempt in flight (or waiting out a backoff) and the server it goes to.
    attempt: u64,
    /// Refusals since the last success or backoff.
    refused: usize,
    backoff: u32,
}

impl Clerk {
    /// A clerk talking to `servers` (in the order it tries them), first to the one at
    /// `first % servers.len()` (spread clients over the servers with it).
    pub fn new(first: u64, servers: Vec<NodeId>) -> Clerk {
        assert!(!servers.is_empty(), "a clerk needs at least one server");
        let leader = (first % servers.len() as u64) as usize;
        Clerk {
            id: 0,
            servers,
            leader,
            seq: 0,
            current: None,
            pending: None,
            in_doubt: false,
            attempt: 0,
            refused: 0,
            backoff: BACKOFF_MIN,
        }
    }

    /// The session's id, 0 until the first write registered one.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The servers, in the order the clerk tries them.
    pub fn servers(&self) -> &[NodeId] {
        &self.servers
    }

    /// Adds `server` to those the clerk tries (last), if it is not there yet: a node added
    /// to the cluster, which may come to lead.
    pub fn add_server(&mut self, server: NodeId) {
        if !self.servers.contains(&server) {
            self.servers.push(server);
        }
    }

    /// The server the clerk believes leads.
    pub fn leader(&self) -> NodeId {
        self.servers[self.leader]
    }

    /// The request in flight, if any.
    pub fn current(&self) -> Option<&Command> {
        self.current.as_ref()
    }

    /// The number of the attempt in flight (0 before the first).
    pub fn attempt(&self) -> u64 {
        self.attempt
    }

    /// Starts an operation (the previous one must be done).
    pub fn start(&mut self, op: Op) -> ClerkStep {
        debug_assert!(self.current.is_none(), "one operation at a time");
        if op.is_write() && self.id == 0 {
            return self.register(op);
        }
        self.begin(op)
    }

    /// Sends `op` under the session held.
    fn begin(&mut self, op: Op) -> ClerkStep {
        self.seq += 1;
        self.in_doubt = false;
        self.send_new(Command { client: self.id, seq: self.seq, op })
    }

    /// Opens a session, then sends `op` under it.
    fn register(&mut self, op: Op) -> ClerkStep {
        self.id = 0;
        self.seq = 0;
        self.pending = Some(op);
        self.send_new(Command { client: 0, seq: 0, op: Op::Register })
    }

    fn send_new(&mut self, command: Command) -> ClerkStep {
        self.current = Some(command.clone());
        self.attempt += 1;
        ClerkStep::Send { to: self.leader(), attempt: self.attempt, command }
    }

    fn registering(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.op == Op::Register)
    }

    fn writing(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.op.is_write() && c.op != Op::Register)
    }

    fn done(&mut self) {
        self.refused = 0;
        self.backoff = BACKOFF_MIN;
        self.current = None;
        self.pending = None;
    }

    /// The reply to attempt `attempt`. `None` when that is not the attempt in flight (a
    /// duplicate, or a late answer to an earlier attempt): ignore it.
    pub fn on_reply(&mut self, attempt: u64, reply: Reply) -> Option<ClerkStep> {
        if attempt != self.attempt || self.current.is_none() {
            return None;
        }
        Some(match reply {
            // A `Register` is answered `Registered` only: anything else is not its answer.
            Reply::Ok(_) | Reply::SessionExpired if self.registering() => return None,
            Reply::Registered { .. } if !self.registering() => return None,
            Reply::Ok(value) => {
                self.done();
                ClerkStep::Done(value)
            }
            Reply::Registered { client } => {
                let op = self.pending.take().expect("a registration is for an operation");
                self.id = client;
                self.refused = 0;
                self.backoff = BACKOFF_MIN;
                self.begin(op)
            }
            Reply::SessionExpired if self.in_doubt => {
                // A new write under a new session will register first.
                self.id = 0;
                self.done();
                ClerkStep::InDoubt(
                    "the client session expired while a write was in doubt: it may or may not have taken effect".into(),
                )
            }
            Reply::SessionExpired => {
                let op = self.current.take().expect("a request in flight").op;
                self.register(op)
            }
            Reply::WrongLeader { hint } => {
                let asked = self.leader;
                self.leader = match hint.and_then(|h| self.servers.iter().position(|s| *s == h)) {
                    Some(p) if p != asked => p,
                    _ => (asked + 1) % self.servers.len(),
                };
                self.retry()
            }
            Reply::Timeout => {
                self.in_doubt |= self.writing();
                self.next_server()
            }
            // A refusal after an unanswered attempt says nothing of that attempt (the node
            // that refused may have other limits than the one that took it).
            Reply::Invalid { reason } if self.in_doubt => {
                self.done();
                ClerkStep::InDoubt(format!(
                    "refused after an unanswered attempt, which may have taken effect: {reason}"
                ))
            }
            Reply::Invalid { reason } => {
                self.done();
                ClerkStep::Failed(reason)
            }
        })
    }

    /// No answer in time to attempt `attempt`. `None` when that is not the attempt in flight.
    pub fn on_timeout(&mut self, attempt: u64) -> Option<ClerkStep> {
        if attempt != self.attempt || self.current.is_none() {
            return None;
        }
        self.in_doubt |= self.writing();
        Some(self.next_server())
    }

    fn next_server(&mut self) -> ClerkStep {
        self.leader = (self.leader + 1) % self.servers.len();
        self.retry()
    }

    fn retry(&mut self) -> ClerkStep {
        let command = self.current.clone().expect("a request in flight");
        self.attempt += 1;
        self.refused += 1;
        if self.refused < self.servers.len() {
            return ClerkStep::Send { to: self.leader(), attempt: self.attempt, command };
        }
        // Everyone refused: no leader right now. Wait before the next round.
        self.refused = 0;
        let ticks = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        ClerkStep::Backoff { ticks, to: self.leader(), attempt: self.attempt, command }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn get() -> Op {
        Op::get("k")
    }

    fn nodes() -> Vec<NodeId> {
        vec![NodeId(10), NodeId(20), NodeId(30)]
    }

    #[test]
    fn retries_keep_the_sequence_number_and_follow_hints() {
        let mut c = Clerk::new(5, nodes());
        let ClerkStep::Send { to, attempt, command } = c.start(get()) else { panic!() };
        assert_eq!((to, attempt, command.seq), (NodeId(30), 1, 1));
        let step = c.on_reply(1, Reply::WrongLeader { hint: Some(NodeId(10)) });
        assert_eq!(step, Some(ClerkStep::Send { to: NodeId(10), attempt: 2, command: command.clone() }));
        // The first attempt's late answer is not taken for the second's.
        assert_eq!(c.on_reply(1, Reply::Ok(Resp::bulk("late"))), None);
        assert_eq!(c.on_timeout(1), None);
        assert_eq!(c.on_reply(2, Reply::Ok(Resp::bulk("v"))), Some(ClerkStep::Done(Resp::bulk("v"))));
        // A duplicate of the answer taken does not touch the next operation.
        assert_eq!(c.on_reply(2, Reply::Ok(Resp::bulk("dup"))), None);
        // The next operation starts at the leader found, with the next numbers.
        let ClerkStep::Send { to, attempt, command } = c.start(get()) else { panic!() };
        assert_eq!((to, attempt, command.seq), (NodeId(10), 3, 2));
        assert_eq!(c.on_reply(2, Reply::Timeout), None);
    }

    fn sent(step: Option<ClerkStep>) -> (NodeId, u64, Command) {
        match step {
            Some(ClerkStep::Send { to, attempt, command }) => (to, attempt, command),
            other => panic!("not a send: {other:?}"),
        }
    }

    #[test]
    fn the_first_write_registers_and_an_expired_session_registers_again_unless_in_doubt() {
        let put = Op::put("k", "v");
        let mut c = Clerk::new(0, nodes());
        let (to, attempt, command) = sent(Some(c.start(put.clone())));
        assert_eq!(command, Command { client: 0, seq: 0, op: Op::Register });
        assert_eq!(c.on_reply(attempt, Reply::Ok(Resp::Ok)), None, "not the answer to a Register");
        let (again, attempt, command) = sent(c.on_reply(attempt, Reply::Registered { client: 42 }));
        assert_eq!((again, command.clone()), (to, Command { client: 42, seq: 1, op: put.clone() }));
        assert_eq!(c.on_reply(attempt, Reply::Registered { client: 43 }), None, "not the answer to a write");
        assert_eq!(c.on_reply(attempt, Reply::Ok(Resp::Ok)), Some(ClerkStep::Done(Resp::Ok)));
        // Refused for sure, then expired: registers again and sends under the new session.
        let (_, attempt, command) = sent(Some(c.start(put.clone())));
        assert_eq!((command.client, command.seq), (42, 2));
        let (_, attempt, _) = sent(c.on_reply(attempt, Reply::WrongLeader { hint: None }));
        let (_, attempt, command) = sent(c.on_reply(attempt, Reply::SessionExpired));
        assert_eq!(command.op, Op::Register);
        let (_, attempt, command) = sent(c.on_reply(attempt, Reply::Registered { client: 50 }));
        assert_eq!(command, Command { client: 50, seq: 1, op: put.clone() });
        assert_eq!(c.on_reply(attempt, Reply::Ok(Resp::Ok)), Some(ClerkStep::Done(Resp::Ok)));
        // Unanswered once, then expired: it may have applied, so it is not resent.
        let (_, attempt, _) = sent(Some(c.start(put.clone())));
        let (_, attempt, _) = sent(c.on_timeout(attempt));
        assert!(matches!(c.on_reply(attempt, Reply::SessionExpired), Some(ClerkStep::InDoubt(_))));
        assert_eq!((c.id(), c.current()), (0, None));
        // A read needs no session; the next write opens one.
        let (_, attempt, command) = sent(Some(c.start(get())));
        assert_eq!((command.client, command.op), (0, get()));
        assert_eq!(c.on_reply(attempt, Reply::Ok(Resp::bulk("v"))), Some(ClerkStep::Done(Resp::bulk("v"))));
        let (_, attempt, command) = sent(Some(c.start(put.clone())));
        assert_eq!(command.op, Op::Register);
        // Unanswered, then refused (by a node with other limits): in doubt, not failed.
        let (_, attempt, _) = sent(c.on_reply(attempt, Reply::Registered { client: 60 }));
        let (_, attempt, _) = sent(c.on_reply(attempt, Reply::Timeout));
        assert!(matches!(c.on_reply(attempt, Reply::Invalid { reason: "x".into() }), Some(ClerkStep::InDoubt(_))));
        // Refused for sure on the first attempt: failed (it did not take effect).
        let (_, attempt, _) = sent(Some(c.start(put)));
        assert_eq!(c.on_reply(attempt, Reply::Invalid { reason: "y".into() }), Some(ClerkStep::Failed("y".into())));
    }

    #[test]
    fn duplicated_answers_start_no_extra_attempts() {
        // Every refusal is delivered three times: only the first of each moves the clerk.
        let mut c = Clerk::new(0, nodes());
        let ClerkStep::Send { mut attempt, .. } = c.start(get()) else { panic!() };
        let mut sends = 1;
        for _ in 0..5 {
            let mut next = None;
            for _ in 0..3 {
                if let Some(step) = c.on_reply(attempt, Reply::WrongLeader { hint: None }) {
                    assert!(next.is_none(), "a duplicate answer was taken");
                    next = Some(step);
                }
            }
            match next.expect("the first answer is taken") {
                ClerkStep::Send { attempt: a, .. } | ClerkStep::Backoff { attempt: a, .. } => attempt = a,
                other => panic!("{other:?}"),
            }
            sends += 1;
        }
        assert_eq!((sends, c.attempt()), (6, 6));
    }

    #[test]
    fn a_full_round_of_refusals_backs_off_exponentially() {
        let mut c = Clerk::new(0, nodes());
        let _ = c.start(get());
        let mut backoffs = Vec::new();
        for _ in 0..12 {
            match c.on_timeout(c.attempt()) {
                Some(ClerkStep::Backoff { ticks, .. }) => backoffs.push(ticks),
                Some(ClerkStep::Send { .. }) => {}
                other => panic!("not done: {other:?}"),
            }
        }
        assert_eq!(backoffs, [1, 2, 4, 8]);
        // A bogus hint (the server asked, or one not in the list) moves on to the next server.
        let mut c = Clerk::new(0, nodes());
        let _ = c.start(get());
        assert!(matches!(
            c.on_reply(1, Reply::WrongLeader { hint: Some(NodeId(10)) }),
            Some(ClerkStep::Send { to: NodeId(20), attempt: 2, .. })
        ));
        assert!(matches!(
            c.on_reply(2, Reply::WrongLeader { hint: Some(NodeId(99)) }),
            Some(ClerkStep::Send { to: NodeId(30), attempt: 3, .. })
        ));
    }
}
