//! [`KvState`]: the key/value map and the client session table, replicated by applying the
//! same commands in the same order on every server.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use super::{Command, Op};
use crate::types::Index;

/// The last write applied for one client, and its reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    reply: String,
}

/// The replicated state. Invariant: for every client, `sessions[client].seq` is the highest
/// sequence number of its writes applied, and no write with a lower or equal number is ever
/// applied again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    data: BTreeMap<String, String>,
    sessions: BTreeMap<u64, Session>,
    /// The log index of the last entry applied.
    applied: Index,
}

/// What applying one log entry did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A write applied now (or the stored reply of its duplicate): answer the client.
    Reply { client: u64, seq: u64, reply: String },
    /// An older duplicate of a write already answered: the client has moved on.
    Stale,
    /// An entry that is not a command (a leader's no-op), or does not decode.
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
        self.data.is_empty()
    }

    /// Applies the log entry at `index` whose payload is `data` (an encoded [`Command`], or
    /// anything else, which is skipped). Indexes must come in order.
    pub fn apply(&mut self, index: Index, data: &[u8]) -> Applied {
        debug_assert!(index > self.applied, "apply at {} after {}", index.0, self.applied.0);
        self.applied = index;
        // Exactly a command: bytes left over mean the entry is something else that happens to
        // start like one.
        let Ok((cmd, [])) = postcard::take_from_bytes::<Command>(data) else { return Applied::NotACommand };
        self.apply_command(cmd)
    }

    fn apply_command(&mut self, cmd: Command) -> Applied {
        let Command { client, seq, op } = cmd;
        if let Some(s) = self.sessions.get(&client) {
            if seq < s.seq {
                return Applied::Stale;
            }
            if seq == s.seq {
                return Applied::Reply { client, seq, reply: s.reply.clone() };
            }
        }
        let reply = match op {
            Op::Get { key } => self.get(&key),
            Op::Put { key, value } => {
                self.data.insert(key, value);
                String::new()
            }
            Op::Append { key, value } => {
                let v = self.data.entry(key).or_default();
                v.push_str(&value);
                // The new length, as Redis answers APPEND (the lab's clerks ignore it).
                v.len().to_string()
            }
        };
        self.sessions.insert(client, Session { seq, reply: reply.clone() });
        Applied::Reply { client, seq, reply }
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

/// Encodes a command for the log.
pub fn encode(cmd: &Command) -> Vec<u8> {
    postcard::to_allocvec(cmd).expect("commands always encode")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn cmd(client: u64, seq: u64, op: Op) -> Vec<u8> {
        encode(&Command { client, seq, op })
    }

    fn append(key: &str, value: &str) -> Op {
        Op::Append { key: key.to_string(), value: value.to_string() }
    }

    #[test]
    fn a_retried_write_is_applied_once_and_answered_again() {
        let mut s = KvState::new();
        let first = s.apply(Index(1), &cmd(7, 1, append("k", "a")));
        assert_eq!(first, Applied::Reply { client: 7, seq: 1, reply: "1".to_string() });
        // The same request, committed again after a leader change: answered, not applied.
        assert_eq!(s.apply(Index(2), &cmd(7, 1, append("k", "a"))), first);
        assert_eq!(s.get("k"), "a");
        s.apply(Index(3), &cmd(7, 2, append("k", "b")));
        assert_eq!(s.apply(Index(4), &cmd(7, 1, append("k", "a"))), Applied::Stale);
        assert_eq!(s.get("k"), "ab");
        // Another client's numbers are its own.
        s.apply(Index(5), &cmd(8, 1, Op::Put { key: "k".to_string(), value: "z".to_string() }));
        assert_eq!(s.get("k"), "z");
        assert_eq!(s.apply(Index(6), b"noop"), Applied::NotACommand);
        let mut trailing = cmd(9, 1, append("k", "x"));
        trailing.push(0);
        assert_eq!(s.apply(Index(7), &trailing), Applied::NotACommand, "a command with bytes after it");
        assert_eq!(s.applied(), Index(7));
    }

    #[test]
    fn a_snapshot_carries_data_sessions_and_index() {
        let mut s = KvState::new();
        s.apply(Index(1), &cmd(1, 1, append("x", "1")));
        s.apply(Index(2), &cmd(2, 5, append("y", "2")));
        let mut r = KvState::restore(&s.snapshot()).unwrap();
        assert_eq!(r, s);
        // The session survived: the duplicate is not applied again.
        r.apply(Index(3), &cmd(2, 5, append("y", "2")));
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
