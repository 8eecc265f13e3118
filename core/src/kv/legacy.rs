//! What skiff 0.1's first KV format wrote, read so a data directory from before binary-safe
//! Redis values comes up with everything it held: log entries of `Get`/`Put`/`Append` on
//! UTF-8 strings (`Body::Request` and `Body::Capped`), and snapshots of a string map whose
//! sessions stored text answers. Nothing new is written in it.

use alloc::collections::BTreeMap;
use alloc::string::String;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::cmd::{Cmd, Cond, SetTtl};
use super::reply::Resp;
use super::sessions::SessionLimits;

/// The first format's operation (the variant order is the format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegacyOp {
    Get { key: String },
    Put { key: String, value: String },
    Append { key: String, value: String },
    Register,
}

/// The first format's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyCommand {
    pub client: u64,
    pub seq: u64,
    pub op: LegacyOp,
}

fn b(s: String) -> Bytes {
    Bytes::from(s.into_bytes())
}

impl LegacyOp {
    /// The command it was (`None`: a register, which has no business in a request entry).
    pub(super) fn into_cmd(self) -> Option<Cmd> {
        Some(match self {
            LegacyOp::Get { key } => Cmd::Get { key: b(key) },
            LegacyOp::Put { key, value } => {
                Cmd::Set { key: b(key), value: b(value), cond: Cond::Always, get: false, ttl: SetTtl::Clear }
            }
            LegacyOp::Append { key, value } => Cmd::Append { key: b(key), value: b(value) },
            LegacyOp::Register => return None,
        })
    }
}

/// A first-format answer: it meant `""` (a put), a length (an append) or a value (a get).
#[derive(Deserialize)]
pub(super) enum LegacyAnswer {
    Ok(String),
    Refused(String),
}

impl LegacyAnswer {
    /// What the command would answer now: a put's `""` is `OK`, an append's length an
    /// integer. A duplicate of the command gets it.
    pub(super) fn into_resp(self) -> Resp {
        match self {
            LegacyAnswer::Ok(s) if s.is_empty() => Resp::Ok,
            LegacyAnswer::Ok(s) => s.parse().map_or_else(|_| Resp::Bulk(b(s)), Resp::Int),
            LegacyAnswer::Refused(reason) => Resp::Error(alloc::format!("ERR {reason}")),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct LegacySession {
    pub seq: u64,
    pub reply: LegacyAnswer,
    pub last_active: u64,
}

#[derive(Deserialize)]
pub(super) struct LegacySessions {
    pub table: BTreeMap<u64, LegacySession>,
    pub limits: Option<SessionLimits>,
}

/// The first format's snapshot.
#[derive(Deserialize)]
pub(super) struct LegacyState {
    pub data: BTreeMap<String, String>,
    pub sessions: LegacySessions,
    pub applied: crate::types::Index,
    pub clock: u64,
}
