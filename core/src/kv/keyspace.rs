//! [`Keyspace`]: the KV data, split by a fixed hash into shards that sit behind `Arc`s. A copy
//! of the keyspace costs one reference count per shard, whatever its size, so a driver can
//! freeze the state at an index and encode the snapshot on another thread while the state
//! machine applies on: a write to a shard the frozen copy still holds copies that shard once
//! (copy on write, about 1/4096 of the data: some 250 keys at 1M, tens of microseconds on
//! the write that pays it), later writes to it are free again. With 256 shards that copy was
//! 4,000 keys, and the first write to each shard after a freeze waited about a millisecond:
//! the SET p95 at one connection while 1M keys snapshot went from 0.5 ms to 1.5-2.4.
//!
//! Beside the shards, an index of the keys that have an expiry, by time, lets the leader's
//! sweep find the expired ones without a scan. It is rebuilt from the items when a snapshot
//! is decoded. The keyspace encodes as a map of keys to [`Item`]s, in shard order then key
//! order: the same bytes on every replica that holds the same data.
//!
//! Each shard is a hash map (hashbrown, with foldhash seeded at random per keyspace, so a
//! client cannot aim keys at one bucket): a lookup costs one hash and about one key comparison
//! whatever the state's size, where the B-tree it replaced cost a comparison per level and
//! per key scanned in each node, a cache miss each (at 632k keys, half the loop threads'
//! time under SET load). The hash order is each map's own, so everything that shows an order
//! (encoding, `KEYS`, `SCAN`) sorts a shard's keys first: replicas agree byte for byte.

use alloc::collections::BTreeSet;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;
use hashbrown::hash_map::EntryRef;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::blob::Blob;
use super::value::Item;

/// One shard's map.
type Shard = hashbrown::HashMap<Blob, Item, foldhash::fast::RandomState>;

/// Number of shards: a write after a freeze copies at most 1/SHARDS of the data.
pub(super) const SHARDS: usize = 4096;

/// Entries encoded between two calls of the pause of [`Paced`].
const PAUSE_EVERY: usize = 256;

/// The data. Invariants: `len` is the number of keys over all shards; every key sits in the
/// shard [`shard_of`] names; `occupied` marks exactly the shards that hold keys; `expiring`
/// holds exactly `(at, key)` for every item whose `expires` is `Some(at)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Keyspace {
    shards: Vec<Arc<Shard>>,
    /// Bit `s % 64` of word `s / 64` is set when shard `s` holds keys: a walk over a small
    /// keyspace (an encoding, a check, `SCAN`) visits its few shards, not all of them.
    occupied: [u64; SHARDS / 64],
    len: usize,
    expiring: Arc<BTreeSet<(u64, Blob)>>,
}

impl Default for Keyspace {
    fn default() -> Self {
        // One empty map shared by every shard until its first write copies it (a fresh keyspace
        // costs one allocation, not one per shard; the copies keep its hasher's seed).
        let shards = alloc::vec![Arc::new(Shard::default()); SHARDS];
        Keyspace { shards, occupied: [0; SHARDS / 64], len: 0, expiring: Arc::default() }
    }
}

/// The shard of `key`: FNV-1a, the same on every replica and every platform.
pub(super) fn shard_of(key: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

impl Keyspace {
    /// Keys held, expired ones not yet removed included.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Keys with an expiry.
    pub(super) fn volatile(&self) -> usize {
        self.expiring.len()
    }

    /// The item of `key`, even if expired (callers check [`Item::expired`]).
    pub(super) fn get(&self, key: &[u8]) -> Option<&Item> {
        self.shards[shard_of(key)].get(key)
    }

    /// The item of `key` if it exists at time `now`.
    pub(super) fn live(&self, key: &[u8], now: u64) -> Option<&Item> {
        self.get(key).filter(|i| !i.expired(now))
    }

    /// Sets `key` to `item`; returns the item it replaces. The key is copied into a [`Blob`]
    /// only if it is new, and cloned only for the expiry index.
    pub(super) fn insert(&mut self, key: &[u8], item: Item) -> Option<Item> {
        let expires = item.expires;
        let s = shard_of(key);
        let shard = Arc::make_mut(&mut self.shards[s]);
        let (key, old) = match shard.entry_ref(key) {
            EntryRef::Occupied(mut e) => {
                let old = e.insert(item);
                let indexed = old.expires.is_some() || expires.is_some();
                (indexed.then(|| e.key().clone()), Some(old))
            }
            EntryRef::Vacant(e) => {
                let blob = Blob::new(key);
                let key = expires.map(|_| blob.clone());
                e.insert_with_key(blob, item);
                self.len += 1;
                self.occupied[s / 64] |= 1 << (s % 64);
                (key, None)
            }
        };
        let Some(key) = key else { return old };
        // The old entry goes from the index before the new one comes in: they may be equal.
        if let Some(o) = &old {
            self.unindex(&key, o.expires);
        }
        if let Some(at) = expires {
            Arc::make_mut(&mut self.expiring).insert((at, key));
        }
        old
    }

    pub(super) fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let s = shard_of(key);
        // Looked up first: a shard a frozen copy holds is not copied for a missing key.
        self.shards[s].get(key)?;
        let shard = Arc::make_mut(&mut self.shards[s]);
        let (k, old) = shard.remove_entry(key)?;
        if shard.is_empty() {
            self.occupied[s / 64] &= !(1 << (s % 64));
        }
        self.len -= 1;
        self.unindex(&k, old.expires);
        Some(old)
    }

    fn unindex(&mut self, key: &Blob, expires: Option<u64>) {
        if let Some(at) = expires {
            Arc::make_mut(&mut self.expiring).remove(&(at, key.clone()));
        }
    }

    /// The item of `key` to change in place, its expiry excepted (see
    /// [`Keyspace::set_expires`]).
    pub(super) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Item> {
        Arc::make_mut(&mut self.shards[shard_of(key)]).get_mut(key)
    }

    /// Sets when `key` expires (if it exists).
    pub(super) fn set_expires(&mut self, key: &[u8], at: Option<u64>) {
        let shard = Arc::make_mut(&mut self.shards[shard_of(key)]);
        let Some((k, item)) = shard.get_key_value(key) else { return };
        let (k, old) = (k.clone(), item.expires);
        if old == at {
            return;
        }
        let index = Arc::make_mut(&mut self.expiring);
        if let Some(o) = old {
            index.remove(&(o, k.clone()));
        }
        if let Some(a) = at {
            index.insert((a, k.clone()));
        }
        if let Some(item) = shard.get_mut(&k) {
            item.expires = at;
        }
    }

    /// Up to `max` keys expired at `now`, soonest first.
    pub(super) fn expired(&self, now: u64, max: usize) -> Vec<Bytes> {
        self.expiring.iter().take_while(|(at, _)| *at <= now).take(max).map(|(_, k)| k.to_bytes()).collect()
    }

    /// How many keys have expired at `now` (and wait for the sweep).
    pub(super) fn expired_count(&self, now: u64) -> usize {
        self.expiring.iter().take_while(|(at, _)| *at <= now).count()
    }

    /// The soonest expiry time, if any key has one.
    pub(super) fn next_expiry(&self) -> Option<u64> {
        self.expiring.first().map(|(at, _)| *at)
    }

    /// Every key and item of shard `shard`, in key order (sorted here: the map has none).
    pub(super) fn shard(&self, shard: usize) -> impl Iterator<Item = (&Blob, &Item)> {
        let mut entries: Vec<(&Blob, &Item)> = self.shards[shard].iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries.into_iter()
    }

    /// The shards that hold keys, from shard `from` on, in order.
    pub(super) fn occupied_from(&self, from: usize) -> impl Iterator<Item = usize> + '_ {
        (from / 64..SHARDS / 64).flat_map(move |w| {
            // The word's bits, those below `from` cleared (in its first word only).
            let below = from.saturating_sub(w * 64) as u32;
            let mut bits = self.occupied[w] & (!0u64).checked_shl(below).unwrap_or(0);
            core::iter::from_fn(move || {
                let b = bits.trailing_zeros() as usize;
                (bits != 0).then(|| {
                    bits &= bits - 1;
                    w * 64 + b
                })
            })
        })
    }

    /// Every key and item, in encoding order (shard by shard, each sorted by key).
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Blob, &Item)> {
        self.occupied_from(0).flat_map(|s| self.shard(s))
    }

    /// Every key and item in no particular order (no sort: for what only counts or checks).
    fn unordered(&self) -> impl Iterator<Item = (&Blob, &Item)> {
        self.occupied_from(0).flat_map(|s| self.shards[s].iter())
    }

    /// Whether the invariants hold: the count, the marks of the occupied shards, and the
    /// expiry index against the items (for tests and checkers; walks every key, not every
    /// shard: a key in an unmarked shard shows as a count short of `len`).
    pub fn consistent(&self) -> bool {
        let index: BTreeSet<(u64, Blob)> =
            self.unordered().filter_map(|(k, i)| i.expires.map(|at| (at, k.clone()))).collect();
        self.occupied_from(0).all(|s| !self.shards[s].is_empty())
            && self.unordered().count() == self.len
            && index == *self.expiring
    }
}

impl Serialize for Keyspace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Paced(self, &|| {}).serialize(serializer)
    }
}

/// A keyspace that encodes as itself (the same bytes), calling its pause after each shard
/// sorted and every [`PAUSE_EVERY`] entries: an encoder on a thread of its own yields the
/// CPU there, so the event loop's threads never wait long behind it for a core.
pub(super) struct Paced<'a>(pub(super) &'a Keyspace, pub(super) &'a dyn Fn());

impl Serialize for Paced<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Paced(ks, pause) = *self;
        let mut map = serializer.serialize_map(Some(ks.len))?;
        for s in ks.occupied_from(0) {
            let entries = ks.shard(s);
            pause();
            for (n, (k, v)) in entries.enumerate() {
                map.serialize_entry(k, v)?;
                if n % PAUSE_EVERY == PAUSE_EVERY - 1 {
                    pause();
                }
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Keyspace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyspaceVisitor;
        impl<'de> Visitor<'de> for KeyspaceVisitor {
            type Value = Keyspace;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of keys to items")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Keyspace, A::Error> {
                let mut ks = Keyspace::default();
                while let Some((k, v)) = access.next_entry::<Blob, Item>()? {
                    ks.insert(&k, v);
                }
                Ok(ks)
            }
        }
        deserializer.deserialize_map(KeyspaceVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::value::Value;
    use alloc::format;

    fn item(v: &str, expires: Option<u64>) -> Item {
        Item { value: Value::Str(v.as_bytes().into()), expires, version: 1 }
    }

    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_frozen_copy_keeps_its_contents_while_the_live_one_changes() {
        let mut live = Keyspace::default();
        for i in 0..1000 {
            live.insert(&key(&format!("k{i}")), item(&format!("v{i}"), None));
        }
        let frozen = live.clone();
        live.insert(&key("k1"), item("changed", None));
        live.get_mut(b"k2").unwrap().version = 9;
        live.insert(&key("new"), item("x", None));
        assert_eq!((live.len(), frozen.len()), (1001, 1000));
        assert_eq!(frozen.get(b"k1"), Some(&item("v1", None)));
        assert_eq!(frozen.get(b"k2").map(|i| i.version), Some(1));
        assert_eq!(frozen.get(b"new"), None);
        // Only the shards written were copied.
        let shared = live.shards.iter().zip(&frozen.shards).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert!(shared >= SHARDS - 3, "{shared} shards still shared");
    }

    #[test]
    fn the_occupied_shards_are_exactly_those_that_hold_keys() {
        fn prop(ops: Vec<(bool, u16)>, from: u16) -> bool {
            let mut ks = Keyspace::default();
            for (add, k) in ops {
                let key = key(&alloc::format!("k{}", k % 300));
                if add {
                    ks.insert(&key, item("v", None));
                } else {
                    ks.remove(&key);
                }
            }
            let from = usize::from(from) % (SHARDS + 1);
            let marked: Vec<usize> = ks.occupied_from(from).collect();
            let holding: Vec<usize> = (from..SHARDS).filter(|&s| !ks.shards[s].is_empty()).collect();
            marked == holding && ks.consistent()
        }
        quickcheck::QuickCheck::new().tests(300).quickcheck(prop as fn(Vec<(bool, u16)>, u16) -> bool);
    }

    #[test]
    fn the_index_matches_the_items_after_any_sequence_of_changes() {
        // Few keys and few times, so overwrites with the same expiry happen often.
        fn prop(ops: Vec<(u8, u8, u8)>) -> bool {
            let mut ks = Keyspace::default();
            for (op, k, t) in ops {
                let key = key(&alloc::format!("k{}", k % 4));
                let at = (t % 4 != 0).then_some(u64::from(t % 4));
                match op % 4 {
                    0 | 1 => {
                        ks.insert(&key, item("v", at));
                    }
                    2 => ks.set_expires(&key, at),
                    _ => {
                        ks.remove(&key);
                    }
                }
                if !ks.consistent() {
                    return false;
                }
            }
            true
        }
        quickcheck::QuickCheck::new().tests(2000).quickcheck(prop as fn(Vec<(u8, u8, u8)>) -> bool);
    }

    #[test]
    fn the_expiry_index_follows_every_change_and_survives_encoding() {
        let mut ks = Keyspace::default();
        ks.insert(&key("a"), item("1", Some(50)));
        ks.insert(&key("b"), item("2", Some(20)));
        ks.insert(&key("c"), item("3", None));
        assert_eq!(ks.expired(30, 10), [key("b")]);
        assert_eq!(ks.next_expiry(), Some(20));
        ks.set_expires(b"b", None);
        ks.set_expires(b"c", Some(10));
        ks.insert(&key("a"), item("1", Some(5)));
        assert_eq!(ks.expired(100, 10), [key("a"), key("c")]);
        assert_eq!(ks.expired(100, 1), [key("a")]);
        ks.remove(b"a");
        assert_eq!(ks.volatile(), 1);
        assert!(ks.live(b"c", 10).is_none() && ks.live(b"c", 9).is_some());
        let back: Keyspace = postcard::from_bytes(&postcard::to_allocvec(&ks).unwrap()).unwrap();
        assert_eq!(back, ks);
        assert_eq!(back.expired(100, 10), [key("c")]);
    }
}
