//! [`Cmd`]: a Redis data command, parsed once from its arguments (by [`Cmd::parse`]) on the
//! node that takes it, then carried in the log (writes) or to a ReadIndex (reads) and run by
//! the state machine on every replica alike. Everything a command depends on is in it or in
//! the replicated state: relative expiry times are resolved against the entry's time stamp,
//! a random pick (`SPOP`) against the entry's index.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::value::Float;

/// `NX` / `XX`: act only if the key (or field, or member) is missing, or only if present.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cond {
    Always,
    IfMissing,
    IfPresent,
}

/// What `SET` does to the key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetTtl {
    /// Clear it (a plain `SET`).
    Clear,
    /// `KEEPTTL`.
    Keep,
    /// `EX`/`PX`: this many milliseconds after the entry's time stamp.
    After(u64),
    /// `EXAT`/`PXAT`: at this Unix time in milliseconds.
    At(u64),
}

/// When `EXPIRE` and its kin set a key to expire: milliseconds after the entry's time stamp
/// (may be negative: at once), or at a Unix time in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum When {
    After(i64),
    At(i64),
}

/// `EXPIRE`'s `NX | XX | GT | LT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCond {
    Always,
    /// Only if the key has no expiry.
    NoTtl,
    /// Only if it has one.
    HasTtl,
    /// Only if the new time is later (a key without expiry counts as never expiring).
    Later,
    /// Only if it is sooner.
    Sooner,
}

/// `ZADD`'s flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZAddFlags {
    pub cond: Cond,
    /// `GT` (`Some(true)`) or `LT` (`Some(false)`): update only to a greater (lesser) score.
    pub greater: Option<bool>,
    /// `CH`: count changed members, not only added ones.
    pub changed: bool,
    /// `INCR`: add to the score, answer the new one.
    pub incr: bool,
}

/// A data command. `Vec`s of keys, fields or members are never empty (the parser checks
/// arity).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmd {
    // Strings.
    Get {
        key: Bytes,
    },
    Set {
        key: Bytes,
        value: Bytes,
        cond: Cond,
        get: bool,
        ttl: SetTtl,
    },
    SetNx {
        key: Bytes,
        value: Bytes,
    },
    GetSet {
        key: Bytes,
        value: Bytes,
    },
    GetDel {
        key: Bytes,
    },
    /// `GETEX`: the value, changing its expiry (`None`: left as it is; `SetTtl::Clear`:
    /// `PERSIST`).
    GetEx {
        key: Bytes,
        ttl: Option<SetTtl>,
    },
    MGet {
        keys: Vec<Bytes>,
    },
    MSet {
        pairs: Vec<(Bytes, Bytes)>,
        nx: bool,
    },
    IncrBy {
        key: Bytes,
        by: i64,
    },
    IncrByFloat {
        key: Bytes,
        by: Float,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    Strlen {
        key: Bytes,
    },
    GetRange {
        key: Bytes,
        start: i64,
        end: i64,
    },
    SetRange {
        key: Bytes,
        offset: u64,
        value: Bytes,
    },
    // Keys.
    Del {
        keys: Vec<Bytes>,
    },
    Exists {
        keys: Vec<Bytes>,
    },
    Type {
        key: Bytes,
    },
    Rename {
        from: Bytes,
        to: Bytes,
        nx: bool,
    },
    Keys {
        pattern: Bytes,
    },
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: u64,
        kind: Option<String>,
    },
    DbSize,
    FlushDb,
    Expire {
        key: Bytes,
        when: When,
        cond: ExpireCond,
    },
    /// `TTL` (seconds) or `PTTL` (`millis`).
    Ttl {
        key: Bytes,
        millis: bool,
    },
    Persist {
        key: Bytes,
    },
    /// `EXPIRETIME` (seconds) or `PEXPIRETIME` (`millis`): the absolute expiry time.
    ExpireTime {
        key: Bytes,
        millis: bool,
    },
    // Hashes.
    /// `HSET` (answers how many fields were added) or `HMSET` (answers `OK`).
    HSet {
        key: Bytes,
        pairs: Vec<(Bytes, Bytes)>,
        ok: bool,
    },
    HSetNx {
        key: Bytes,
        field: Bytes,
        value: Bytes,
    },
    HGet {
        key: Bytes,
        field: Bytes,
    },
    HMGet {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    HDel {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    HGetAll {
        key: Bytes,
    },
    HKeys {
        key: Bytes,
    },
    HVals {
        key: Bytes,
    },
    HLen {
        key: Bytes,
    },
    HExists {
        key: Bytes,
        field: Bytes,
    },
    HStrlen {
        key: Bytes,
        field: Bytes,
    },
    HIncrBy {
        key: Bytes,
        field: Bytes,
        by: i64,
    },
    HIncrByFloat {
        key: Bytes,
        field: Bytes,
        by: Float,
    },
    // Lists.
    /// `LPUSH`/`RPUSH` (`left`), and their `X` forms that push only to an existing list.
    Push {
        key: Bytes,
        values: Vec<Bytes>,
        left: bool,
        existing: bool,
    },
    /// `LPOP`/`RPOP`, with a count (answered as an array) or without.
    Pop {
        key: Bytes,
        left: bool,
        count: Option<u64>,
    },
    LLen {
        key: Bytes,
    },
    LRange {
        key: Bytes,
        start: i64,
        stop: i64,
    },
    LIndex {
        key: Bytes,
        index: i64,
    },
    LSet {
        key: Bytes,
        index: i64,
        value: Bytes,
    },
    // Sets.
    SAdd {
        key: Bytes,
        members: Vec<Bytes>,
    },
    SRem {
        key: Bytes,
        members: Vec<Bytes>,
    },
    SMembers {
        key: Bytes,
    },
    SIsMember {
        key: Bytes,
        member: Bytes,
    },
    SCard {
        key: Bytes,
    },
    SPop {
        key: Bytes,
        count: Option<u64>,
    },
    // Sorted sets.
    ZAdd {
        key: Bytes,
        flags: ZAddFlags,
        pairs: Vec<(Float, Bytes)>,
    },
    ZIncrBy {
        key: Bytes,
        by: Float,
        member: Bytes,
    },
    ZRem {
        key: Bytes,
        members: Vec<Bytes>,
    },
    ZScore {
        key: Bytes,
        member: Bytes,
    },
    ZRank {
        key: Bytes,
        member: Bytes,
        rev: bool,
    },
    ZRange {
        key: Bytes,
        start: i64,
        stop: i64,
        rev: bool,
        scores: bool,
    },
    ZCard {
        key: Bytes,
    },
    ZPopMin {
        key: Bytes,
        count: Option<u64>,
        max: bool,
    },
}

impl Cmd {
    /// Whether it may change the state (and so goes through the log). A read goes through
    /// ReadIndex and is run on the state as of that index.
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Cmd::Get { .. }
                | Cmd::MGet { .. }
                | Cmd::Strlen { .. }
                | Cmd::GetRange { .. }
                | Cmd::Exists { .. }
                | Cmd::Type { .. }
                | Cmd::Keys { .. }
                | Cmd::Scan { .. }
                | Cmd::DbSize
                | Cmd::Ttl { .. }
                | Cmd::ExpireTime { .. }
                | Cmd::HGet { .. }
                | Cmd::HMGet { .. }
                | Cmd::HGetAll { .. }
                | Cmd::HKeys { .. }
                | Cmd::HVals { .. }
                | Cmd::HLen { .. }
                | Cmd::HExists { .. }
                | Cmd::HStrlen { .. }
                | Cmd::LLen { .. }
                | Cmd::LRange { .. }
                | Cmd::LIndex { .. }
                | Cmd::SMembers { .. }
                | Cmd::SIsMember { .. }
                | Cmd::SCard { .. }
                | Cmd::ZScore { .. }
                | Cmd::ZRank { .. }
                | Cmd::ZRange { .. }
                | Cmd::ZCard { .. }
        )
    }

    /// The keys it names (for limits and `WATCH`).
    pub fn keys(&self) -> Vec<&Bytes> {
        match self {
            Cmd::MGet { keys } | Cmd::Del { keys } | Cmd::Exists { keys } => keys.iter().collect(),
            Cmd::MSet { pairs, .. } => pairs.iter().map(|(k, _)| k).collect(),
            Cmd::Rename { from, to, .. } => alloc::vec![from, to],
            Cmd::Keys { .. } | Cmd::Scan { .. } | Cmd::DbSize | Cmd::FlushDb => Vec::new(),
            other => other.key().into_iter().collect(),
        }
    }

    /// The one key of a single-key command (without the allocation of [`Cmd::keys`]).
    pub(crate) fn key(&self) -> Option<&Bytes> {
        use Cmd::*;
        match self {
            Get { key }
            | Set { key, .. }
            | SetNx { key, .. }
            | GetSet { key, .. }
            | GetDel { key }
            | GetEx { key, .. }
            | ExpireTime { key, .. }
            | IncrBy { key, .. }
            | IncrByFloat { key, .. }
            | Append { key, .. }
            | Strlen { key }
            | GetRange { key, .. }
            | SetRange { key, .. }
            | Type { key }
            | Expire { key, .. }
            | Ttl { key, .. }
            | Persist { key }
            | HSet { key, .. }
            | HSetNx { key, .. }
            | HGet { key, .. }
            | HMGet { key, .. }
            | HDel { key, .. }
            | HGetAll { key }
            | HKeys { key }
            | HVals { key }
            | HLen { key }
            | HExists { key, .. }
            | HStrlen { key, .. }
            | HIncrBy { key, .. }
            | HIncrByFloat { key, .. }
            | Push { key, .. }
            | Pop { key, .. }
            | LLen { key }
            | LRange { key, .. }
            | LIndex { key, .. }
            | LSet { key, .. }
            | SAdd { key, .. }
            | SRem { key, .. }
            | SMembers { key }
            | SIsMember { key, .. }
            | SCard { key }
            | SPop { key, .. }
            | ZAdd { key, .. }
            | ZIncrBy { key, .. }
            | ZRem { key, .. }
            | ZScore { key, .. }
            | ZRank { key, .. }
            | ZRange { key, .. }
            | ZCard { key }
            | ZPopMin { key, .. } => Some(key),
            MGet { .. }
            | MSet { .. }
            | Del { .. }
            | Exists { .. }
            | Rename { .. }
            | Keys { .. }
            | Scan { .. }
            | DbSize
            | FlushDb => None,
        }
    }

    /// The longest value (or field, or member) it carries, in bytes: what the value limit
    /// checks.
    pub fn longest_value(&self) -> usize {
        let longest = |v: &mut dyn Iterator<Item = &Bytes>| v.map(Bytes::len).max().unwrap_or(0);
        use Cmd::*;
        match self {
            Set { value, .. } | SetNx { value, .. } | GetSet { value, .. } | Append { value, .. } => value.len(),
            SetRange { value, offset, .. } => value.len().saturating_add(*offset as usize),
            LSet { value, .. } => value.len(),
            MSet { pairs, .. } | HSet { pairs, .. } => longest(&mut pairs.iter().flat_map(|(a, b)| [a, b])),
            HSetNx { field, value, .. } => field.len().max(value.len()),
            Push { values, .. } => longest(&mut values.iter()),
            SAdd { members, .. } => longest(&mut members.iter()),
            ZAdd { pairs, .. } => longest(&mut pairs.iter().map(|(_, m)| m)),
            ZIncrBy { member, .. } => member.len(),
            HIncrBy { field, .. } | HIncrByFloat { field, .. } => field.len(),
            _ => 0,
        }
    }
}
