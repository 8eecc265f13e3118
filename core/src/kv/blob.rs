//! [`Blob`]: the bytes of a key or of a string value as the keyspace holds them, in 24 bytes
//! and at most one allocation: up to [`INLINE`] bytes inside the value itself, longer ones in
//! one heap allocation of exactly their length.
//!
//! Why not `Bytes`, which commands carry: a `Bytes` is 32 bytes, and one cloned out of a
//! command (or decoded from a snapshot) is a shared one, a 24-byte header allocation beside
//! its data; a 16-byte key and a 64-byte value cost four allocations and 160 bytes of slot
//! before the map's own overhead. As blobs, the key sits in the map's slot and the value in
//! one allocation (measured by `bench/kv-memory`).
//!
//! The price: cloning a long blob copies it (a `Bytes` clone counts a reference). The
//! keyspace clones items only when a write reaches a shard a frozen snapshot still shares
//! (once per shard and snapshot), and replies copy a value out once (as writing it to the
//! socket does anyway).
//!
//! A blob encodes as serde bytes, as `Bytes` does: snapshots keep their format.

use alloc::boxed::Box;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::Deref;

use bytes::Bytes;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest blob held inline (no allocation).
pub const INLINE: usize = 22;

/// Bytes, held inline when short. Compares, orders and hashes as the byte slice it holds,
/// so a map keyed by blobs is searched with a `&[u8]`.
#[derive(Clone)]
pub struct Blob(Repr);

/// Invariant: `Inline`'s `len` is at most [`INLINE`] and the bytes past it are zero; a
/// `Heap` blob is longer than [`INLINE`] (so each content has one representation).
#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Blob {
    /// A copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Blob {
        if bytes.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..bytes.len()].copy_from_slice(bytes);
            Blob(Repr::Inline { len: bytes.len() as u8, buf })
        } else {
            Blob(Repr::Heap(bytes.into()))
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }

    /// A `Bytes` holding a copy (for replies).
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.as_slice())
    }

    /// Whether the bytes sit on the heap (longer than [`INLINE`]).
    pub fn is_heap(&self) -> bool {
        matches!(self.0, Repr::Heap(_))
    }
}

impl Default for Blob {
    fn default() -> Blob {
        Blob::new(&[])
    }
}

impl Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for Blob {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<&[u8]> for Blob {
    fn from(b: &[u8]) -> Blob {
        Blob::new(b)
    }
}

impl From<&Bytes> for Blob {
    fn from(b: &Bytes) -> Blob {
        Blob::new(b)
    }
}

impl From<Bytes> for Blob {
    fn from(b: Bytes) -> Blob {
        Blob::new(&b)
    }
}

impl PartialEq for Blob {
    fn eq(&self, other: &Blob) -> bool {
        self.as_slice() == other.as_slice()
    }
}
impl Eq for Blob {}

impl PartialOrd for Blob {
    fn partial_cmp(&self, other: &Blob) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Blob {
    fn cmp(&self, other: &Blob) -> core::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

/// As the slice hashes: `Borrow<[u8]>` lookups find what `Blob` keys were stored under.
impl Hash for Blob {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self.as_slice()), f)
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob::new(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut v = alloc::vec::Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(Blob::new(&v))
            }
        }
        d.deserialize_bytes(BlobVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn a_blob_is_24_bytes_and_holds_short_bytes_inline() {
        assert_eq!(core::mem::size_of::<Blob>(), 24);
        assert!(!Blob::new(&[7; INLINE]).is_heap());
        assert!(Blob::new(&[7; INLINE + 1]).is_heap());
    }

    #[test]
    fn blobs_compare_hash_and_encode_as_their_bytes() {
        fn prop(a: Vec<u8>, b: Vec<u8>) -> bool {
            let (x, y) = (Blob::new(&a), Blob::new(&b));
            let h = |s: &[u8]| {
                use core::hash::BuildHasher;
                foldhash::fast::FixedState::with_seed(1).hash_one(s)
            };
            let h_blob = |s: &Blob| {
                use core::hash::BuildHasher;
                foldhash::fast::FixedState::with_seed(1).hash_one(s)
            };
            let encoded = postcard::to_allocvec(&x).unwrap();
            x.as_slice() == &a[..]
                && (x == y) == (a == b)
                && x.cmp(&y) == a.cmp(&b)
                && h_blob(&x) == h(&a)
                && encoded == postcard::to_allocvec(&Bytes::from(a.clone())).unwrap()
                && postcard::from_bytes::<Blob>(&encoded).unwrap() == x
        }
        quickcheck::QuickCheck::new().tests(2000).quickcheck(prop as fn(Vec<u8>, Vec<u8>) -> bool);
    }
}
