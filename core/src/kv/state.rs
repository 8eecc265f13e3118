//! [`KvState`]: the key/value map and the client session table, replicated by applying the
//! same commands in the same order on every server.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use super::keyspace::Keyspace;
use super::sessions::{Check, Sessions};
use super::{Answer, Body, Command, LogEntry, Op};
use crate::types::Index;

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
}

/// What applying one log entry did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A write applied now (or the stored reply of its duplicate): answer the client.
    Reply { client: u64, seq: u64, reply: Answer },
    /// A session opened: its id is the entry's index.
    Registered { client: u64 },
    /// A write from a session that is not (or no longer) in the table: not applied.
    Expired { client: u64, seq: u64 },
    /// An older duplicate of a write already answered: the client has moved on.
    Stale,
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

    /// The value of `key` (`""` when missing): what a `Get` answers once the state has applied
    /// the read's ReadIndex.
    pub fn get(&self, key: &str) -> String {
        self.data.get(key).cloned().unwrap_or_default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.len() == 0
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
            Body::Request(cmd) => self.apply_command(cmd, None),
            Body::Capped { command, max_value } => self.apply_command(command, Some(max_value)),
        }
    }

    fn apply_command(&mut self, cmd: Command, max_value: Option<u64>) -> Applied {
        let Command { client, seq, op } = cmd;
        match self.sessions.check(client, seq) {
            Check::Unknown => return Applied::Expired { client, seq },
            Check::Stale => return Applied::Stale,
            Check::Duplicate(reply) => return Applied::Reply { client, seq, reply: reply.clone() },
            Check::New => {}
        }
        let reply = match op {
            // A register or a read has no business in a request entry (the service never
            // proposes one): answered, nothing changed.
            Op::Register => String::new(),
            Op::Get { key } => self.get(&key),
            Op::Put { key, value } => {
                self.data.insert(key, value);
                String::new()
            }
            Op::Append { key, value } => {
                let len = self.data.get(&key).map_or(0, String::len) + value.len();
                match max_value {
                    Some(max) if len as u64 > max => {
                        let reply = Answer::Refused(format!("the value would be {len} bytes, over the limit of {max}"));
                        self.sessions.record(client, seq, reply.clone(), self.clock);
                        return Applied::Reply { client, seq, reply };
                    }
                    _ => {}
                }
                let v = self.data.value_mut(key);
                v.push_str(&value);
                // The new length, as Redis answers APPEND (the lab's clerks ignore it).
                v.len().to_string()
            }
        };
        let reply = Answer::Ok(reply);
        self.sessions.record(client, seq, reply.clone(), self.clock);
        Applied::Reply { client, seq, reply }
    }

    /// A copy to encode elsewhere (another thread) while this one applies on: it costs one
    /// reference count per data shard and a copy of the session table, whatever the data's
    /// size (see [`super::keyspace`]).
    pub fn freeze(&self) -> KvState {
        self.clone()
    }

    /// The whole state, sessions included, as postcard bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("the KV state always encodes")
    }

    /// The state a snapshot holds.
    pub fn restore(bytes: &[u8]) -> Result<KvState, SnapshotError> {
        postcard::from_bytes(bytes).map_err(|_| SnapshotError)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::SessionLimits;
    use alloc::string::ToString;
    use alloc::vec;

    const LIMITS: SessionLimits = SessionLimits { max: 2, ttl: 1000 };

    fn at(time: u64, body: Body) -> Vec<u8> {
        encode(&LogEntry { time, body })
    }

    fn cmd(client: u64, seq: u64, op: Op) -> Vec<u8> {
        at(0, Body::Request(Command { client, seq, op }))
    }

    fn register(time: u64) -> Vec<u8> {
        at(time, Body::Register { limits: LIMITS })
    }

    fn append(key: &str, value: &str) -> Op {
        Op::Append { key: key.to_string(), value: value.to_string() }
    }

    #[test]
    fn a_retried_write_is_applied_once_and_answered_again() {
        let mut s = KvState::new();
        assert_eq!(s.apply(Index(1), &register(0)), Applied::Registered { client: 1 });
        assert_eq!(s.apply(Index(2), &register(0)), Applied::Registered { client: 2 });
        let first = s.apply(Index(3), &cmd(1, 1, append("k", "a")));
        assert_eq!(first, Applied::Reply { client: 1, seq: 1, reply: Answer::Ok("1".to_string()) });
        // The same request, committed again after a leader change: answered, not applied.
        assert_eq!(s.apply(Index(4), &cmd(1, 1, append("k", "a"))), first);
        assert_eq!(s.get("k"), "a");
        s.apply(Index(5), &cmd(1, 2, append("k", "b")));
        assert_eq!(s.apply(Index(6), &cmd(1, 1, append("k", "a"))), Applied::Stale);
        assert_eq!(s.get("k"), "ab");
        // Another client's numbers are its own.
        s.apply(Index(7), &cmd(2, 1, Op::Put { key: "k".to_string(), value: "z".to_string() }));
        assert_eq!(s.get("k"), "z");
        assert_eq!(s.apply(Index(8), b"noop"), Applied::NotACommand);
        let mut trailing = cmd(1, 3, append("k", "x"));
        trailing.push(0);
        assert_eq!(s.apply(Index(9), &trailing), Applied::NotACommand, "an entry with bytes after it");
        assert_eq!(s.applied(), Index(9));
    }

    #[test]
    fn a_write_of_an_unknown_or_expired_session_is_not_applied() {
        let mut s = KvState::new();
        // Never registered (a forged or pre-registration id).
        assert_eq!(s.apply(Index(1), &cmd(1, 1, append("k", "a"))), Applied::Expired { client: 1, seq: 1 });
        s.apply(Index(2), &register(100));
        s.apply(Index(3), &at(600, Body::Request(Command { client: 2, seq: 1, op: append("k", "a") })));
        // A stamp behind the clock (a new leader whose clock is late) does not move it back.
        s.apply(Index(4), &register(50));
        assert_eq!(s.clock(), 600);
        s.apply(Index(5), &at(1200, Body::Request(Command { client: 4, seq: 1, op: append("j", "x") })));
        // The clock passes client 2's last write plus the ttl: it expired, on every replica.
        let late = at(1600, Body::Request(Command { client: 2, seq: 2, op: append("k", "b") }));
        assert_eq!(s.apply(Index(6), &late), Applied::Expired { client: 2, seq: 2 });
        assert_eq!(s.get("k"), "a");
        assert_eq!(s.session_ids(), vec![4]);
        // Past the bound, the least recently active session goes.
        s.apply(Index(7), &register(1600));
        s.apply(Index(8), &register(1601));
        assert_eq!(s.session_ids(), vec![7, 8]);
    }

    #[test]
    fn an_append_past_the_cap_in_its_entry_is_refused_alike_everywhere() {
        let mut s = KvState::new();
        s.apply(Index(1), &register(0));
        let capped = |seq, v: &str| {
            at(0, Body::Capped { command: Command { client: 1, seq, op: append("k", v) }, max_value: 4 })
        };
        assert_eq!(
            s.apply(Index(2), &capped(1, "abc")),
            Applied::Reply { client: 1, seq: 1, reply: Answer::Ok("3".into()) }
        );
        let refused = Answer::Refused("the value would be 5 bytes, over the limit of 4".into());
        assert_eq!(s.apply(Index(3), &capped(2, "de")), Applied::Reply { client: 1, seq: 2, reply: refused.clone() });
        // Its retry gets the same refusal; nothing changed.
        assert_eq!(s.apply(Index(4), &capped(2, "de")), Applied::Reply { client: 1, seq: 2, reply: refused });
        assert_eq!(s.get("k"), "abc");
    }

    #[test]
    fn a_snapshot_carries_data_sessions_clock_and_index() {
        let mut s = KvState::new();
        s.apply(Index(1), &register(5));
        s.apply(Index(2), &cmd(1, 5, append("y", "2")));
        let mut r = KvState::restore(&s.snapshot()).unwrap();
        assert_eq!(r, s);
        assert_eq!(r.clock(), 5);
        // The session survived: the duplicate is not applied again.
        r.apply(Index(3), &cmd(1, 5, append("y", "2")));
        assert_eq!(r.get("y"), "2");
        assert_eq!(KvState::restore(b"\xff\xff garbage"), Err(SnapshotError));
    }

    #[test]
    fn snapshots_are_due_near_the_bound_and_never_without_one() {
        assert!(!KvState::should_snapshot(10_000, None));
        assert!(!KvState::should_snapshot(800, Some(1000)));
        assert!(KvState::should_snapshot(900, Some(1000)));
    }
}
