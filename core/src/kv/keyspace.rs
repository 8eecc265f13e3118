//! [`Keyspace`]: the KV data, split by a fixed hash into shards that sit behind `Arc`s. A copy
//! of the keyspace costs one reference count per shard, whatever its size, so a driver can
//! freeze the state at an index and encode the snapshot on another thread while the state
//! machine applies on: a write to a shard the frozen copy still holds copies that shard once
//! (copy on write, about 1/256 of the data), later writes to it are free again.
//!
//! It encodes as a map of keys to values (what a `BTreeMap<String, String>` encodes as), in
//! shard order then key order: the same bytes on every replica that holds the same data.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of shards: a write after a freeze copies at most 1/SHARDS of the data.
const SHARDS: usize = 256;

/// The data. Invariant: `len` is the number of keys over all shards, and every key sits in
/// the shard [`shard_of`] names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Keyspace {
    shards: Vec<Arc<BTreeMap<String, String>>>,
    len: usize,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace { shards: (0..SHARDS).map(|_| Arc::new(BTreeMap::new())).collect(), len: 0 }
    }
}

/// The shard of `key`: FNV-1a, the same on every replica and every platform.
fn shard_of(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

impl Keyspace {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, key: &str) -> Option<&String> {
        self.shards[shard_of(key)].get(key)
    }

    /// Sets `key` to `value`.
    pub(super) fn insert(&mut self, key: String, value: String) {
        let shard = Arc::make_mut(&mut self.shards[shard_of(&key)]);
        if shard.insert(key, value).is_none() {
            self.len += 1;
        }
    }

    /// The value of `key` to change in place (created empty if missing).
    pub(super) fn value_mut(&mut self, key: String) -> &mut String {
        let shard = Arc::make_mut(&mut self.shards[shard_of(&key)]);
        if !shard.contains_key(&key) {
            self.len += 1;
        }
        shard.entry(key).or_default()
    }

    /// Every key and value, in encoding order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

impl Serialize for Keyspace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
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
                f.write_str("a map of keys to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Keyspace, A::Error> {
                let mut ks = Keyspace::default();
                while let Some((k, v)) = access.next_entry::<String, String>()? {
                    ks.insert(k, v);
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
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn a_frozen_copy_keeps_its_contents_while_the_live_one_changes() {
        let mut live = Keyspace::default();
        for i in 0..1000 {
            live.insert(format!("k{i}"), format!("v{i}"));
        }
        let frozen = live.clone();
        live.insert("k1".to_string(), "changed".to_string());
        live.value_mut("k2".to_string()).push('!');
        live.value_mut("new".to_string()).push('x');
        assert_eq!((live.len(), frozen.len()), (1001, 1000));
        assert_eq!(frozen.get("k1").map(String::as_str), Some("v1"));
        assert_eq!(frozen.get("k2").map(String::as_str), Some("v2"));
        assert_eq!(live.get("k2").map(String::as_str), Some("v2!"));
        assert_eq!(frozen.get("new"), None);
        // Only the shards written were copied.
        let shared = live.shards.iter().zip(&frozen.shards).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert!(shared >= SHARDS - 3, "{shared} shards still shared");
    }

    #[test]
    fn it_encodes_as_a_map_and_decodes_to_the_same_keyspace() {
        let mut ks = Keyspace::default();
        ks.insert("a".to_string(), "1".to_string());
        ks.insert("b".to_string(), "2".to_string());
        let bytes = postcard::to_allocvec(&ks).unwrap();
        let as_map: BTreeMap<String, String> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(as_map.len(), 2);
        let back: Keyspace = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, ks);
        let from_map: Keyspace = postcard::from_bytes(&postcard::to_allocvec(&as_map).unwrap()).unwrap();
        assert_eq!(from_map, ks);
    }
}
