//! The replicated key/value service's pure logic, written once for every driver and the
//! simulator: the state machine with exactly-once client sessions ([`KvState`]), the server
//! side that turns requests into proposals and reads and the core's outputs into replies
//! ([`Service`]), and the client's retry logic ([`Clerk`]). Drivers only carry bytes and
//! time: writes go through the Raft log as encoded [`Command`]s, reads through ReadIndex.
//!
//! Semantics (the MIT 6.5840 KV lab): `Get` returns the value or `""` for a missing key, `Put`
//! replaces it, `Append` appends to it (and answers the new length, as Redis does; the lab's
//! clerks ignore it). Every client numbers its
//! requests; a write applied once is never applied again, whatever the retries.

mod clerk;
mod service;
#[cfg(test)]
mod service_tests;
mod state;

use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::types::NodeId;

pub use clerk::{Clerk, ClerkStep};
pub use service::{drop_hint, validate_op, Action, RequestError, Service, ServiceConfig, ServiceError, SERVICE_IDS};
pub use state::{encode, Applied, KvState, SnapshotError};

/// A client's operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Get { key: String },
    Put { key: String, value: String },
    Append { key: String, value: String },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key } | Op::Put { key, .. } | Op::Append { key, .. } => key,
        }
    }

    /// Whether it changes the state (and so goes through the log).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }
}

/// A client request: `seq` numbers the client's requests from 1, one outstanding at a time.
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
}
