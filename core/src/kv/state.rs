//! [`KvState`]: the keyspace and the client session table, replicated by applying the same
//! entries in the same order on every server.

use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::exec::{self, Writer};
use super::keyspace::{Keyspace, Paced};
use super::legacy::{LegacyCommand, LegacyState};
use super::sessions::{Check, Sessions};
use super::value::{Item, Value};
use super::{Body, Cmd, Command, LogEntry, Op, Resp, Watched};
use crate::types::Index;

/// Longest any string may grow to, in bytes (Redis's `proto-max-bulk-len` default).
const MAX_STRING: u64 = 512 << 20;

/// The largest reply a session keeps for a retried write, about, in bytes: the session
/// table holds at most `SessionLimits::max` of them.
pub const MAX_KEPT_REPLY: usize = 64 << 10;

/// What a retry of a write whose reply was over [`MAX_KEPT_REPLY`] answers.
pub const REPLY_NOT_KEPT: &str =
    "ERR this request was applied once, but its reply was too large to keep for a retry; read the keys again";

/// The first bytes of a snapshot of this format (one of the first format has none).
const SNAPSHOT_MAGIC: &[u8; 4] = b"SKV\x02";

/// The replicated state. Invariant: for every session, the stored sequence number is the
/// highest of its writes applied, and no write with a lower or equal number is ever applied
/// again; a write from a session not in the table is never applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    data: Keyspace,
    sessions: Sessions,
    /// The log index of the last entry applied.
    applied: Index,
    /// The replicated clock: the greatest time stamp applied.
    clock: u64,
    /// The index of the last entry that deleted a key (see [`Op::Exec`]).
    last_delete: u64,
}

/// What applying one log entry did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A write applied now (or the stored reply of its duplicate): answer the client.
    Reply { client: u64, seq: u64, reply: Resp },
    /// A session opened: its id is the entry's index.
    Registered { client: u64 },
    /// A write from a session that is not (or no longer) in the table: not applied.
    Expired { client: u64, seq: u64 },
    /// An older duplicate of a write already answered: the client has moved on.
    Stale,
    /// The leader's sweep: this many expired keys removed.
    Swept(usize),
    /// An entry that is not the service's (a leader's no-op), or does not decode.
    NotACommand,
}

/// A snapshot that does not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotError;

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the KV snapshot does not decode")
    }
}

impl KvState {
    pub fn new() -> KvState {
        KvState::default()
    }

    /// The log index of the last entry applied (or restored from a snapshot).
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// The replicated clock: the greatest time stamp of the entries applied.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Runs read command `cmd` on the state as it is (once it applied the read's ReadIndex),
    /// at the replicated clock.
    pub fn read(&self, cmd: &Cmd) -> Resp {
        exec::read(&self.data, cmd, self.clock)
    }

    /// The string `key` holds now (`None` if missing or not a string): for tests and the
    /// lab's `Get`.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        match &self.data.live(key, self.clock)?.value {
            Value::Str(v) => Some(v.to_bytes()),
            _ => None,
        }
    }

    /// What `WATCH keys` answers: the index read at, then each key's version.
    pub fn watch(&self, keys: &[Bytes]) -> Resp {
        let mut out = Vec::with_capacity(keys.len() + 1);
        out.push(Resp::Int(self.applied.0 as i64));
        out.extend(keys.iter().map(|k| self.version(k).map_or(Resp::Nil, |v| Resp::Int(v as i64))));
        Resp::Array(out)
    }

    /// The version of live `key`: the index of the entry that last changed it.
    pub fn version(&self, key: &[u8]) -> Option<u64> {
        self.data.live(key, self.clock).map(|i| i.version)
    }

    /// Keys held (those expired and not yet swept included).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.len() == 0
    }

    /// Whether the keyspace's invariants hold (walks every key: for tests and checkers).
    pub fn consistent(&self) -> bool {
        self.data.consistent()
    }

    /// Keys with an expiry.
    pub fn volatile(&self) -> usize {
        self.data.volatile()
    }

    /// The soonest expiry time of any key.
    pub fn next_expiry(&self) -> Option<u64> {
        self.data.next_expiry()
    }

    /// Number of client sessions held.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The session ids held, least recently active first.
    pub fn session_ids(&self) -> Vec<u64> {
        self.sessions.ids_by_age()
    }

    /// Applies the log entry at `index` whose payload is `data` (an encoded [`LogEntry`], or
    /// anything else, which is skipped). Indexes must come in order.
    pub fn apply(&mut self, index: Index, data: &[u8]) -> Applied {
        debug_assert!(index > self.applied, "apply at {} after {}", index.0, self.applied.0);
        self.applied = index;
        // Exactly an entry: bytes left over mean the entry is something else that happens to
        // start like one.
        let Ok((entry, [])) = postcard::take_from_bytes::<LogEntry>(data) else { return Applied::NotACommand };
        self.clock = self.clock.max(entry.time);
        self.sessions.expire(self.clock);
        match entry.body {
            Body::Register { limits } => {
                self.sessions.register(index.0, self.clock, limits);
                Applied::Registered { client: index.0 }
            }
            Body::Request(legacy) => self.apply_legacy(legacy, u64::MAX),
            Body::Capped { command, max_value } => self.apply_legacy(command, max_value),
            Body::Write { command, max_value } => self.apply_command(command, max_value),
            Body::Sweep { max } => Applied::Swept(self.writer(u64::MAX).sweep(max as usize)),
        }
    }

    fn apply_legacy(&mut self, c: LegacyCommand, max_value: u64) -> Applied {
        let op = c.op.into_cmd().map_or(Op::Register, Op::Cmd);
        self.apply_command(Command { client: c.client, seq: c.seq, op }, max_value)
    }

    fn writer(&mut self, max_value: u64) -> Writer<'_> {
        Writer {
            ks: &mut self.data,
            now: self.clock,
            index: self.applied.0,
            // Whatever an entry says, no string grows past Redis's own largest bulk (an entry
            // of the first format carries no bound).
            max_value: max_value.min(MAX_STRING),
            last_delete: &mut self.last_delete,
        }
    }

    fn apply_command(&mut self, cmd: Command, max_value: u64) -> Applied {
        let Command { client, seq, op } = cmd;
        match self.sessions.check(client, seq) {
            Check::Unknown => return Applied::Expired { client, seq },
            Check::Stale => return Applied::Stale,
            Check::Duplicate(reply) => return Applied::Reply { client, seq, reply: reply.clone() },
            Check::New => {}
        }
        let reply = match op {
            Op::Cmd(c) => self.writer(max_value).run(&c),
            Op::Exec { commands, watched } => self.exec(&commands, watched.as_ref(), max_value),
            // A register or a watch has no business in a request entry (the service never
            // proposes one): answered, nothing changed.
            Op::Register | Op::Watch { .. } | Op::Reads { .. } => Resp::Ok,
        };
        // A session keeps its last reply for a retry; one too large to keep for every
        // session is kept as a note that the write was applied (the same on every replica).
        let kept = if reply.weight() > MAX_KEPT_REPLY { Resp::error(REPLY_NOT_KEPT) } else { reply.clone() };
        self.sessions.record(client, seq, kept, self.clock);
        Applied::Reply { client, seq, reply }
    }

    /// A transaction: every command in order, unless a watched key changed since `WATCH`
    /// read it.
    fn exec(&mut self, commands: &[Cmd], watched: Option<&Watched>, max_value: u64) -> Resp {
        if let Some(w) = watched {
            let changed = w.keys.iter().any(|(k, seen)| {
                let now = self.version(k);
                // Missing then and now: it may have been created since (and have expired), or
                // created and deleted (any removal, the sweep's included, counts).
                let created = || self.data.get(k).is_some_and(|i| i.version > w.at);
                now != *seen || (now.is_none() && (self.last_delete > w.at || created()))
            });
            if changed {
                return Resp::NilArray;
            }
        }
        let mut writer = self.writer(max_value);
        Resp::Array(commands.iter().map(|c| writer.run(c)).collect())
    }

    /// A copy to encode elsewhere (another thread) while this one applies on: it costs one
    /// reference count per data shard and a copy of the session table, whatever the data's
    /// size (see [`super::keyspace`]).
    pub fn freeze(&self) -> KvState {
        self.clone()
    }

    /// The whole state, sessions included, as postcard bytes after a format mark.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_paced(&|| {})
    }

    /// [`KvState::snapshot`], calling `pause` every few hundred keys encoded (and after each
    /// of the keyspace's shards is sorted, some 250 keys at 1M): an encoder on a thread of its
    /// own passes `std::thread::yield_now`, and the threads that answer clients never wait
    /// behind it for a core more than about a hundred microseconds.
    pub fn snapshot_paced(&self, pause: &dyn Fn()) -> Vec<u8> {
        /// Encodes as `KvState` does (postcard: the fields in order), with the data paced.
        #[derive(Serialize)]
        struct Encoded<'a> {
            data: Paced<'a>,
            sessions: &'a Sessions,
            applied: Index,
            clock: u64,
            last_delete: u64,
        }
        let s = self;
        let encoded = Encoded {
            data: Paced(&s.data, pause),
            sessions: &s.sessions,
            applied: s.applied,
            clock: s.clock,
            last_delete: s.last_delete,
        };
        postcard::to_extend(&encoded, SNAPSHOT_MAGIC.to_vec()).expect("the KV state always encodes")
    }

    /// The state a snapshot holds (of this format or the first).
    pub fn restore(bytes: &[u8]) -> Result<KvState, SnapshotError> {
        if let Some(rest) = bytes.strip_prefix(SNAPSHOT_MAGIC) {
            if let Ok(s) = postcard::from_bytes(rest) {
                return Ok(s);
            }
        }
        let old: LegacyState = postcard::from_bytes(bytes).map_err(|_| SnapshotError)?;
        let mut data = Keyspace::default();
        for (k, v) in old.data {
            let item = Item { value: Value::Str(v.as_bytes().into()), expires: None, version: old.applied.0 };
            data.insert(k.as_bytes(), item);
        }
        Ok(KvState {
            data,
            sessions: Sessions::from(old.sessions),
            applied: old.applied,
            clock: old.clock,
            last_delete: old.applied.0,
        })
    }

    /// Whether the service should snapshot: the persisted Raft state passed `max_raft_state`
    /// bytes (never when unset, the lab's `-1`). Snapshotting at 9/10 of the bound leaves room
    /// for the entries that arrive while the snapshot is taken.
    pub fn should_snapshot(raft_state_bytes: u64, max_raft_state: Option<u64>) -> bool {
        max_raft_state.is_some_and(|max| raft_state_bytes >= max / 10 * 9)
    }
}

#[cfg(test)]
impl KvState {
    /// An empty state with client `client`'s session open (for tests of the service).
    pub(super) fn with_session(client: u64) -> KvState {
        let mut s = KvState::new();
        s.sessions.register(client, 0, super::SessionLimits::default());
        s
    }
}

/// Encodes a log entry of the service.
pub fn encode(entry: &LogEntry) -> Vec<u8> {
    postcard::to_allocvec(entry).expect("log entries always encode")
}
