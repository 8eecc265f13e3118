//! The replicated key/value service's pure logic, written once for every driver and the
//! simulator: the state machine with exactly-once client sessions ([`KvState`]), the server
//! side that turns requests into proposals and reads and the core's outputs into replies
//! ([`Service`]), and the client's retry logic ([`Clerk`]). Drivers only carry bytes and
//! time: writes go through the Raft log as encoded [`Command`]s, reads through ReadIndex.
//!
//! Semantics (the MIT 6.5840 KV lab): `Get` returns the value or `""` for a missing key, `Put`
//! replaces it, `Append` appends to it (and answers the new length, as Redis does; the lab's
//! clerks ignore it). A client that writes first registers a session through the log (its
//! id is the index of its `Register` entry) and numbers its requests; a write applied once is
//! never applied again, whatever the retries. Sessions expire, deterministically on every
//! replica, by the time stamps leaders put on entries ([`LogEntry::time`]): see
//! [`SessionLimits`].

mod clerk;
mod keyspace;
mod service;
#[cfg(test)]
mod service_tests;
mod sessions;
mod state;

use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::types::NodeId;

pub use clerk::{Clerk, ClerkStep};
pub use service::{drop_hint, validate_op, Action, RequestError, Service, ServiceConfig, ServiceError, SERVICE_IDS};
pub use sessions::SessionLimits;
pub use state::{encode, Applied, KvState, SnapshotError};

/// A client's operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
    },
    Append {
        key: String,
        value: String,
    },
    /// Open a session: answered [`Reply::Registered`] with the new client id. The
    /// [`Clerk`] sends it before a client's first write (and after its session expired).
    Register,
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key } | Op::Put { key, .. } | Op::Append { key, .. } => key,
            Op::Register => "",
        }
    }

    /// Whether it changes the state (and so goes through the log).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }
}

/// A client request: `seq` numbers the client's requests from 1, one outstanding at a time.
/// `client` is the id its `Register` answered (0 before: only reads and `Register` need
/// none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub client: u64,
    pub seq: u64,
    pub op: Op,
}

/// A server's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Done: the value for a `Get`, `""` for a `Put`, the new length for an `Append`.
    Ok(String),
    /// This server does not lead; try `hint` (the node it believes leads) if known.
    WrongLeader { hint: Option<NodeId> },
    /// The server could not tell in time whether the request took effect: retry it (with the
    /// same sequence number).
    Timeout,
    /// The request can never succeed (a key or value over the server's limits, a malformed
    /// request): not retried.
    Invalid { reason: String },
    /// The session is open: its id, to put in every later request.
    Registered { client: u64 },
    /// The client's session expired (idle too long, or evicted past the bound) before this
    /// write: it was not applied. Whether an earlier attempt of it was, nobody can tell any
    /// more.
    SessionExpired,
}

/// What a write applied answers; kept in its session for duplicates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Done: `""` for a `Put`, the new length for an `Append`.
    Ok(String),
    /// Refused by the state, on every replica alike (an `Append` past the value limit): it
    /// changed nothing.
    Refused(String),
}

/// One log entry of the service: what a leader proposed, stamped with its clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The proposing leader's time. The replicated clock is the greatest stamp applied, so
    /// it never goes back, even when a new leader's clock is behind; session expiry is
    /// decided by it alone.
    pub time: u64,
    pub body: Body,
}

/// What a [`LogEntry`] does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Open a session whose id is this entry's index, under these limits.
    Register { limits: SessionLimits },
    /// A client's write.
    Request(Command),
    /// A client's write that can grow a value past what one request carries (`Append`):
    /// refused if the value would pass `max_value` bytes. The bound travels in the entry, so
    /// every replica refuses alike.
    Capped { command: Command, max_value: u64 },
}
