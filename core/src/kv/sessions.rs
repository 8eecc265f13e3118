//! [`Sessions`]: the replicated table of client sessions (Raft thesis §6.3). A client
//! registers through the log (a `Register` entry) and its id is that entry's index, so no
//! two clients ever share an id. Each session keeps the sequence number and reply of its last
//! write, which makes a retried write apply once.
//!
//! Expiry is decided by the replicated clock only (the leaders' time stamps on entries, see
//! [`super::LogEntry`]), never by a replica's own clock, so every replica removes the same
//! sessions at the same log index:
//! - a session idle (no write applied) for `ttl` is removed;
//! - registering past `max` sessions removes the least recently active ones (ties: the
//!   oldest id), so the table never holds more than `max`.
//!
//! The limits come with each `Register` entry (the registering leader's configuration), so
//! replicas agree even if their configurations differ; they hold until the next one.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::legacy::LegacySessions;
use super::Resp;

/// How many sessions a state keeps and for how long: set by each `Register` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLimits {
    /// Most sessions held at once (at least 1).
    pub max: u32,
    /// A session with no write applied for this long (in the time stamps' unit) is removed.
    pub ttl: u64,
}

impl Default for SessionLimits {
    /// 10,000 sessions, an hour (if the stamps count milliseconds).
    fn default() -> Self {
        SessionLimits { max: 10_000, ttl: 3_600_000 }
    }
}

/// The last write applied for one client, its reply, and when the client last wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    reply: Resp,
    last_active: u64,
}

/// What the table says of a write `(client, seq)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Check<'a> {
    /// No such session (expired, evicted, or never registered).
    Unknown,
    /// Older than the client's last write: the client has moved on.
    Stale,
    /// The client's last write again: answer it with the stored reply.
    Duplicate(&'a Resp),
    /// A new write: apply it, then [`Sessions::record`] it.
    New,
}

/// The session table. Invariants: `by_age` holds exactly `(last_active, id)` of every
/// session; `table.len() <= limits.max` once any session registered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub(super) struct Sessions {
    table: BTreeMap<u64, Session>,
    by_age: BTreeSet<(u64, u64)>,
    limits: Option<SessionLimits>,
}

/// What a snapshot holds of the table (the age index is rebuilt from it).
#[derive(Serialize, Deserialize)]
struct Stored {
    table: BTreeMap<u64, Session>,
    limits: Option<SessionLimits>,
}

impl From<Stored> for Sessions {
    fn from(s: Stored) -> Sessions {
        let by_age = s.table.iter().map(|(id, session)| (session.last_active, *id)).collect();
        Sessions { table: s.table, by_age, limits: s.limits }
    }
}

impl From<Sessions> for Stored {
    fn from(s: Sessions) -> Stored {
        Stored { table: s.table, limits: s.limits }
    }
}

impl From<LegacySessions> for Sessions {
    fn from(s: LegacySessions) -> Sessions {
        let table = s
            .table
            .into_iter()
            .map(|(id, l)| (id, Session { seq: l.seq, reply: l.reply.into_resp(), last_active: l.last_active }))
            .collect();
        Sessions::from(Stored { table, limits: s.limits })
    }
}

impl Sessions {
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// The replicated clock reached `now`: removes the sessions idle for the ttl. Returns
    /// how many.
    pub(super) fn expire(&mut self, now: u64) -> usize {
        let Some(limits) = self.limits else { return 0 };
        let mut removed = 0;
        while let Some(&(last, id)) = self.by_age.first() {
            if last.saturating_add(limits.ttl) > now {
                break;
            }
            self.remove_oldest(last, id);
            removed += 1;
        }
        removed
    }

    /// Registers client `id` (the index of its `Register` entry) at `now`, removing the least
    /// recently active sessions to stay within `limits.max`. Returns how many were removed.
    pub(super) fn register(&mut self, id: u64, now: u64, limits: SessionLimits) -> usize {
        self.limits = Some(limits);
        let mut removed = self.expire(now);
        let max = limits.max.max(1) as usize;
        while self.table.len() >= max {
            let &(last, old) = self.by_age.first().expect("the age index matches the table");
            self.remove_oldest(last, old);
            removed += 1;
        }
        self.table.insert(id, Session { seq: 0, reply: Resp::Ok, last_active: now });
        self.by_age.insert((now, id));
        removed
    }

    fn remove_oldest(&mut self, last: u64, id: u64) {
        self.by_age.remove(&(last, id));
        self.table.remove(&id);
    }

    /// What the table says of write `seq` of `client`.
    pub(super) fn check(&self, client: u64, seq: u64) -> Check<'_> {
        match self.table.get(&client) {
            None => Check::Unknown,
            Some(s) if seq < s.seq => Check::Stale,
            Some(s) if seq == s.seq => Check::Duplicate(&s.reply),
            Some(_) => Check::New,
        }
    }

    /// Write `seq` of `client` (checked [`Check::New`]) was applied at `now` with `reply`.
    pub(super) fn record(&mut self, client: u64, seq: u64, reply: Resp, now: u64) {
        let Some(s) = self.table.get_mut(&client) else { return };
        self.by_age.remove(&(s.last_active, client));
        // The clock never goes back, so neither does a session's activity.
        s.last_active = s.last_active.max(now);
        s.seq = seq;
        s.reply = reply;
        self.by_age.insert((s.last_active, client));
    }

    /// The ids held, oldest activity first (for tests and status).
    pub fn ids_by_age(&self) -> Vec<u64> {
        self.by_age.iter().map(|(_, id)| *id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const LIMITS: SessionLimits = SessionLimits { max: 3, ttl: 100 };

    #[test]
    fn the_table_keeps_the_most_recently_active_sessions_within_the_bound() {
        let mut s = Sessions::default();
        for id in 1..=3 {
            assert_eq!(s.register(id, id * 10, LIMITS), 0);
        }
        // Client 1 writes, so client 2 is now the least recently active.
        assert_eq!(s.check(1, 1), Check::New);
        s.record(1, 1, Resp::bulk("r"), 40);
        assert_eq!(s.register(4, 50, LIMITS), 1);
        assert_eq!(s.ids_by_age(), vec![3, 1, 4]);
        assert_eq!(s.check(2, 1), Check::Unknown);
        assert_eq!(s.check(1, 1), Check::Duplicate(&Resp::bulk("r")));
        assert_eq!(s.check(1, 0), Check::Stale);
        // A lower bound from a later registration evicts down to it.
        assert_eq!(s.register(5, 60, SessionLimits { max: 1, ttl: 100 }), 3);
        assert_eq!(s.ids_by_age(), vec![5]);
    }

    #[test]
    fn sessions_idle_for_the_ttl_expire_on_the_replicated_clock() {
        let mut s = Sessions::default();
        assert_eq!(s.expire(1_000_000), 0, "no limits before the first registration");
        s.register(1, 0, LIMITS);
        s.register(2, 50, LIMITS);
        assert_eq!(s.expire(99), 0);
        assert_eq!(s.expire(100), 1, "idle for exactly the ttl");
        assert_eq!(s.ids_by_age(), vec![2]);
        s.record(2, 1, Resp::Ok, 120);
        assert_eq!(s.expire(219), 0, "the write renewed it");
        assert_eq!(s.expire(220), 1);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_snapshot_of_the_table_rebuilds_its_age_index() {
        let mut s = Sessions::default();
        s.register(7, 5, LIMITS);
        s.register(9, 6, LIMITS);
        s.record(7, 3, Resp::error("ERR x"), 8);
        let bytes = postcard::to_allocvec(&s).unwrap();
        let r: Sessions = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(r, s);
        assert_eq!(r.ids_by_age(), vec![9, 7]);
    }
}
