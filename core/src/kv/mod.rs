//! The replicated key/value service's pure logic, written once for every driver and the
//! simulator: the state machine with exactly-once client sessions ([`KvState`]), the server
//! side that turns requests into proposals and reads and the core's outputs into replies
//! ([`Service`]), and the client's retry logic ([`Clerk`]). Drivers only carry bytes and
//! time: writes go through the Raft log as encoded [`Command`]s, reads through ReadIndex.
//!
//! Semantics are Redis's: keys and values are bytes, a key holds a string, hash, list, set or
//! sorted set, commands are parsed once into a [`Cmd`] ([`Cmd::parse`]) and answered with a
//! [`Resp`] tree the drivers encode in RESP2 or RESP3. Each write is one log entry; a
//! transaction ([`Op::Exec`]) is one entry too, applied atomically, and only if the keys it
//! watched did not change. Expiry compares against the replicated clock (the greatest time
//! stamp a leader put on an entry, [`LogEntry::time`]), never a replica's own clock, so
//! every replica expires the same keys at the same index; the leader sweeps expired keys
//! through the log and keeps the clock fresh while any key has an expiry.
//!
//! A client that writes first registers a session through the log (its id is the index of
//! its `Register` entry) and numbers its requests; a write applied once is never applied
//! again, whatever the retries. Sessions expire by the same clock: see [`SessionLimits`].

pub mod blob;
mod clerk;
pub mod cmd;
mod exec;
mod keyspace;
mod legacy;
mod parse;
pub mod reply;
mod service;
#[cfg(test)]
mod service_tests;
mod sessions;
mod state;
#[cfg(test)]
mod state_tests;
pub mod value;
mod waiting;

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::types::NodeId;

pub use clerk::{Clerk, ClerkStep};
pub use cmd::Cmd;
pub use exec::glob_match;
pub use legacy::{LegacyCommand, LegacyOp};
pub use parse::{arity_error, arity_of, parse_float, parse_int};
pub use reply::Resp;
pub use service::{drop_hint, validate_op, Action, RequestError, Service, ServiceConfig, ServiceError, SERVICE_IDS};
pub use sessions::SessionLimits;
pub use state::{encode, Applied, KvState, SnapshotError};

/// A client's operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Open a session: answered [`Reply::Registered`] with the new client id. The
    /// [`Clerk`] sends it before a client's first write (and after its session expired).
    Register,
    /// One data command: a read at a ReadIndex, or a write through the log.
    Cmd(Cmd),
    /// `WATCH`: read the keys' versions (linearizably, as any read). Answered with an array:
    /// the index the state was read at, then each key's version (`Nil` if missing); give
    /// them back in [`Op::Exec`].
    Watch { keys: Vec<Bytes> },
    /// `EXEC`: the commands queued since `MULTI`, applied as one entry, in order, only if
    /// every watched key still has the version `WATCH` read. Answered with an array of
    /// their replies, or [`Resp::NilArray`] if a watched key changed. Without `watched`, it
    /// is also how a pipeline of commands that writes goes: one entry, one sequence number.
    Exec { commands: Vec<Cmd>, watched: Option<Watched> },
    /// A pipeline of reads: run in order at one ReadIndex, answered with an array of their
    /// replies.
    Reads { commands: Vec<Cmd> },
}

/// What `WATCH` read: the index the state was at and each key's version then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    pub at: u64,
    pub keys: Vec<(Bytes, Option<u64>)>,
}

impl Op {
    /// `GET key`.
    pub fn get(key: impl Into<Bytes>) -> Op {
        Op::Cmd(Cmd::Get { key: key.into() })
    }

    /// `SET key value`.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Op {
        let (key, value) = (key.into(), value.into());
        Op::Cmd(Cmd::Set { key, value, cond: cmd::Cond::Always, get: false, ttl: cmd::SetTtl::Clear })
    }

    /// `APPEND key value`.
    pub fn append(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Op {
        Op::Cmd(Cmd::Append { key: key.into(), value: value.into() })
    }

    /// Whether it changes the state (and so goes through the log).
    pub fn is_write(&self) -> bool {
        match self {
            Op::Cmd(c) => c.is_write(),
            Op::Watch { .. } | Op::Reads { .. } => false,
            Op::Register | Op::Exec { .. } => true,
        }
    }

    /// The commands it runs.
    pub fn commands(&self) -> &[Cmd] {
        match self {
            Op::Cmd(c) => core::slice::from_ref(c),
            Op::Exec { commands, .. } | Op::Reads { commands } => commands,
            Op::Register | Op::Watch { .. } => &[],
        }
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
    /// Done: what the command answers (Redis's reply, an error reply such as `WRONGTYPE`
    /// included: the command ran, on every replica alike).
    Ok(Resp),
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

/// One log entry of the service: what a leader proposed, stamped with its clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The proposing leader's time. The replicated clock is the greatest stamp applied, so
    /// it never goes back, even when a new leader's clock is behind; expiry is decided by it
    /// alone.
    pub time: u64,
    pub body: Body,
}

/// What a [`LogEntry`] does. The variant order is the log format: new variants go last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Open a session whose id is this entry's index, under these limits.
    Register { limits: SessionLimits },
    /// A write of the first format (read from old logs, never written now).
    Request(LegacyCommand),
    /// An `Append` of the first format, capped (read from old logs, never written now).
    Capped { command: LegacyCommand, max_value: u64 },
    /// A client's write. `max_value` bounds what a string may grow to (`APPEND`,
    /// `SETRANGE`): the bound travels in the entry, so every replica refuses alike.
    Write { command: Command, max_value: u64 },
    /// The leader's clock and sweep: moves the replicated clock to the entry's stamp and
    /// removes up to `max` keys expired by then.
    Sweep { max: u32 },
}
