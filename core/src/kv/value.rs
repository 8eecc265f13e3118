//! The values a key holds ([`Value`]: a string, hash, list, set or sorted set) and what the
//! keyspace keeps beside each ([`Item`]: its expiry time and the index of its last change).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use core::cmp::Ordering;

use bytes::Bytes;

use super::blob::Blob;
use serde::{Deserialize, Serialize};

/// A float that is never NaN, ordered totally (scores, increments): what a command parser
/// hands the state machine.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Float) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Float {}
impl PartialOrd for Float {
    fn partial_cmp(&self, other: &Float) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Float {
    fn cmp(&self, other: &Float) -> Ordering {
        // -0.0 and 0.0 are one score, as in Redis.
        let (a, b) = (self.0 + 0.0, other.0 + 0.0);
        a.partial_cmp(&b).unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
    }
}

/// A sorted set: members with scores, ordered by (score, member). Invariant: `by_rank`
/// holds exactly `(scores[m], m)` for every member `m`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZSet {
    scores: BTreeMap<Bytes, Float>,
    by_rank: BTreeSet<(Float, Bytes)>,
}

impl ZSet {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<Float> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns the old one.
    pub fn insert(&mut self, member: Bytes, score: Float) -> Option<Float> {
        let old = self.scores.insert(member.clone(), score);
        if let Some(o) = old {
            self.by_rank.remove(&(o, member.clone()));
        }
        self.by_rank.insert((score, member));
        old
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<Float> {
        let (m, s) = self.scores.remove_entry(member)?;
        self.by_rank.remove(&(s, m));
        Some(s)
    }

    /// Members in rank order (lowest score first).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &(Float, Bytes)> + ExactSizeIterator {
        self.by_rank.iter()
    }

    /// Removes and returns the member of lowest rank.
    pub fn pop_first(&mut self) -> Option<(Float, Bytes)> {
        let (s, m) = self.by_rank.pop_first()?;
        self.scores.remove(&m);
        Some((s, m))
    }
}

impl Serialize for ZSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.scores.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ZSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let scores = BTreeMap::<Bytes, Float>::deserialize(d)?;
        let by_rank = scores.iter().map(|(m, s)| (*s, m.clone())).collect();
        Ok(ZSet { scores, by_rank })
    }
}

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// Held as a [`Blob`] (see there: 24 bytes, inline up to 22, one allocation beyond).
    Str(Blob),
    Hash(BTreeMap<Bytes, Bytes>),
    List(VecDeque<Bytes>),
    Set(BTreeSet<Bytes>),
    /// Boxed: its two maps would make every value (strings included) 16 bytes larger.
    ZSet(alloc::boxed::Box<ZSet>),
}

impl Value {
    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Whether an aggregate holds nothing (Redis removes such keys): never for a string.
    pub fn is_empty_aggregate(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }

    /// Bytes held, about: keys and values plus a per-element overhead.
    pub fn weight(&self) -> usize {
        const EACH: usize = 16;
        match self {
            Value::Str(b) => b.len(),
            Value::Hash(h) => h.iter().map(|(k, v)| k.len() + v.len() + EACH).sum(),
            Value::List(l) => l.iter().map(|v| v.len() + EACH).sum(),
            Value::Set(s) => s.iter().map(|v| v.len() + EACH).sum(),
            Value::ZSet(z) => z.iter().map(|(_, m)| m.len() + 8 + EACH).sum(),
        }
    }
}

/// One key's entry. `version` is the log index of the write that last changed it (what
/// `WATCH` compares); `expires`, the replicated time at which it stops existing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub value: Value,
    pub expires: Option<u64>,
    pub version: u64,
}

impl Item {
    /// Whether the key is gone at replicated time `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}
