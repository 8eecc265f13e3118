//! [`Clerk`]: the client's logic, free of I/O and clocks. It guesses the leader, follows hints,
//! rotates through servers, resends a request with the same sequence number until one answer
//! comes back, and backs off (in ticks of the caller's clock) after a full round of refusals.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Command, Op, Reply};
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
    Done(String),
    /// The operation was refused for good (see `Reply::Invalid`).
    Failed(String),
}

/// One client. Invariants: sequence numbers of its requests strictly increase and a request
/// is resent only with its own number; attempt numbers strictly increase, and only the
/// answer to (or the timeout of) the attempt in flight moves the clerk on, so a duplicated
/// or late answer to an earlier attempt never starts another one.
#[derive(Clone, Debug)]
pub struct Clerk {
    id: u64,
    servers: Vec<NodeId>,
    /// Position in `servers` of the server the clerk believes leads.
    leader: usize,
    seq: u64,
    current: Option<Command>,
    /// The attempt in flight (or waiting out a backoff) and the server it goes to.
    attempt: u64,
    /// Refusals since the last success or backoff.
    refused: usize,
    backoff: u32,
}

impl Clerk {
    /// A clerk with a unique `id` talking to `servers` (in the order it tries them).
    pub fn new(id: u64, servers: Vec<NodeId>) -> Clerk {
        assert!(!servers.is_empty(), "a clerk needs at least one server");
        let leader = (id % servers.len() as u64) as usize;
        Clerk { id, servers, leader, seq: 0, current: None, attempt: 0, refused: 0, backoff: BACKOFF_MIN }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The servers, in the order the clerk tries them.
    pub fn servers(&self) -> &[NodeId] {
        &self.servers
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
        self.seq += 1;
        let command = Command { client: self.id, seq: self.seq, op };
        self.current = Some(command.clone());
        self.attempt += 1;
        ClerkStep::Send { to: self.leader(), attempt: self.attempt, command }
    }

    /// The reply to attempt `attempt`. `None` when that is not the attempt in flight (a
    /// duplicate, or a late answer to an earlier attempt): ignore it.
    pub fn on_reply(&mut self, attempt: u64, reply: Reply) -> Option<ClerkStep> {
        if attempt != self.attempt || self.current.is_none() {
            return None;
        }
        Some(match reply {
            Reply::Ok(value) => {
                self.refused = 0;
                self.backoff = BACKOFF_MIN;
                self.current = None;
                ClerkStep::Done(value)
            }
            Reply::WrongLeader { hint } => {
                let asked = self.leader;
                self.leader = match hint.and_then(|h| self.servers.iter().position(|s| *s == h)) {
                    Some(p) if p != asked => p,
                    _ => (asked + 1) % self.servers.len(),
                };
                self.retry()
            }
            Reply::Timeout => self.next_server(),
            Reply::Invalid { reason } => {
                self.current = None;
                ClerkStep::Failed(reason)
            }
        })
    }

    /// No answer in time to attempt `attempt`. `None` when that is not the attempt in flight.
    pub fn on_timeout(&mut self, attempt: u64) -> Option<ClerkStep> {
        if attempt != self.attempt || self.current.is_none() {
            return None;
        }
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
    use alloc::string::ToString;
    use alloc::vec;

    fn get() -> Op {
        Op::Get { key: "k".to_string() }
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
        assert_eq!(c.on_reply(1, Reply::Ok("late".to_string())), None);
        assert_eq!(c.on_timeout(1), None);
        assert_eq!(c.on_reply(2, Reply::Ok("v".to_string())), Some(ClerkStep::Done("v".to_string())));
        // A duplicate of the answer taken does not touch the next operation.
        assert_eq!(c.on_reply(2, Reply::Ok("dup".to_string())), None);
        // The next operation starts at the leader found, with the next numbers.
        let ClerkStep::Send { to, attempt, command } = c.start(get()) else { panic!() };
        assert_eq!((to, attempt, command.seq), (NodeId(10), 3, 2));
        assert_eq!(c.on_reply(2, Reply::Timeout), None);
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
