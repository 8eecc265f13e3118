//! [`Clerk`]: the client's logic, free of I/O and clocks. It guesses the leader, follows hints,
//! rotates through servers, resends a request with the same sequence number until one answer
//! comes back, and backs off (in ticks of the caller's clock) after a full round of refusals.

use alloc::string::String;

use super::{Command, Op, Reply};

/// Backoff after the first full round of refusals, in ticks; doubled per round up to `MAX`.
const BACKOFF_MIN: u32 = 1;
const BACKOFF_MAX: u32 = 64;

/// What the caller does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClerkStep {
    /// Send `command` to server `server` and report its reply (or a timeout).
    Send { server: u64, command: Command },
    /// Wait `ticks`, then send `command` to `server`.
    Backoff { ticks: u32, server: u64, command: Command },
    /// The operation completed with this result.
    Done(String),
    /// The operation was refused for good (see `Reply::Invalid`).
    Failed(String),
}

/// One client. Invariant: sequence numbers of its requests strictly increase; a request is
/// resent only with its own number.
#[derive(Clone, Debug)]
pub struct Clerk {
    id: u64,
    servers: u64,
    leader: u64,
    seq: u64,
    current: Option<Command>,
    /// Refusals since the last success or backoff.
    refused: u64,
    backoff: u32,
}

impl Clerk {
    /// A clerk with a unique `id` talking to `servers` servers (numbered from 0).
    pub fn new(id: u64, servers: u64) -> Clerk {
        assert!(servers > 0, "a clerk needs at least one server");
        Clerk { id, servers, leader: id % servers, seq: 0, current: None, refused: 0, backoff: BACKOFF_MIN }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The server the clerk believes leads.
    pub fn leader(&self) -> u64 {
        self.leader
    }

    /// The request in flight, if any.
    pub fn current(&self) -> Option<&Command> {
        self.current.as_ref()
    }

    /// Starts an operation (the previous one must be done).
    pub fn start(&mut self, op: Op) -> ClerkStep {
        debug_assert!(self.current.is_none(), "one operation at a time");
        self.seq += 1;
        let command = Command { client: self.id, seq: self.seq, op };
        self.current = Some(command.clone());
        ClerkStep::Send { server: self.leader, command }
    }

    /// The reply of `server` to request `seq`. `None` when it is not for the request in flight
    /// (a late answer to an earlier attempt): ignore it.
    pub fn on_reply(&mut self, server: u64, seq: u64, reply: Reply) -> Option<ClerkStep> {
        if !matches!(&self.current, Some(c) if c.seq == seq) {
            return None;
        }
        Some(match reply {
            Reply::Ok(value) => {
                self.leader = server;
                self.refused = 0;
                self.backoff = BACKOFF_MIN;
                self.current = None;
                ClerkStep::Done(value)
            }
            Reply::WrongLeader { hint } => {
                self.leader = match hint {
                    Some(h) if h < self.servers && h != server => h,
                    _ => (server + 1) % self.servers,
                };
                self.retry()
            }
            Reply::Timeout => {
                self.leader = (server + 1) % self.servers;
                self.retry()
            }
            Reply::Invalid { reason } => {
                self.current = None;
                ClerkStep::Failed(reason)
            }
        })
    }

    /// No answer from the server the request went to.
    pub fn on_timeout(&mut self) -> ClerkStep {
        self.leader = (self.leader + 1) % self.servers;
        self.retry()
    }

    fn retry(&mut self) -> ClerkStep {
        let command = self.current.clone().expect("a request in flight");
        self.refused += 1;
        if self.refused < self.servers {
            return ClerkStep::Send { server: self.leader, command };
        }
        // Everyone refused: no leader right now. Wait before the next round.
        self.refused = 0;
        let ticks = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        ClerkStep::Backoff { ticks, server: self.leader, command }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn get() -> Op {
        Op::Get { key: "k".to_string() }
    }

    #[test]
    fn retries_keep_the_sequence_number_and_follow_hints() {
        let mut c = Clerk::new(5, 3);
        let ClerkStep::Send { server, command } = c.start(get()) else { panic!() };
        assert_eq!((server, command.seq), (2, 1));
        let step = c.on_reply(2, 1, Reply::WrongLeader { hint: Some(0) });
        assert_eq!(step, Some(ClerkStep::Send { server: 0, command: command.clone() }));
        assert_eq!(c.on_reply(0, 1, Reply::Ok("v".to_string())), Some(ClerkStep::Done("v".to_string())));
        // A late answer to the finished request is not taken for the next one.
        assert_eq!(c.on_reply(2, 1, Reply::Ok("late".to_string())), None);
        // The next operation starts at the leader found, with the next number.
        let ClerkStep::Send { server, command } = c.start(get()) else { panic!() };
        assert_eq!((server, command.seq), (0, 2));
    }

    #[test]
    fn a_full_round_of_refusals_backs_off_exponentially() {
        let mut c = Clerk::new(0, 3);
        let _ = c.start(get());
        let mut backoffs = alloc::vec::Vec::new();
        for _ in 0..12 {
            match c.on_timeout() {
                ClerkStep::Backoff { ticks, .. } => backoffs.push(ticks),
                ClerkStep::Send { .. } => {}
                ClerkStep::Done(_) | ClerkStep::Failed(_) => panic!("not done"),
            }
        }
        assert_eq!(backoffs, [1, 2, 4, 8]);
        // A bogus hint (itself, or out of range) moves on to the next server.
        let mut c = Clerk::new(0, 3);
        let _ = c.start(get());
        assert!(matches!(
            c.on_reply(0, 1, Reply::WrongLeader { hint: Some(0) }),
            Some(ClerkStep::Send { server: 1, .. })
        ));
        assert!(matches!(
            c.on_reply(1, 1, Reply::WrongLeader { hint: Some(9) }),
            Some(ClerkStep::Send { server: 2, .. })
        ));
    }
}
