//! Runs [`Cmd`]s on the keyspace: reads on a shared reference at a time stamp, writes through
//! a [`Writer`] that also knows the entry's index (for versions and deterministic picks) and
//! the value limit the entry carries. One copy of each command's semantics, for every
//! replica, the reads at a ReadIndex and the commands inside a transaction.
//!
//! Expiry is lazy and replicated: a key whose expiry time is at or before `now` (the
//! replicated clock) does not exist for any command; a write that meets one removes it
//! first. The leader's sweep removes the rest through the log.

mod hash;
mod keys;
mod list;
mod set;
mod strings;
mod zset;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;

use bytes::Bytes;

use super::blob::Blob;
use super::cmd::Cmd;
use super::keyspace::Keyspace;
use super::reply::{errors, Resp};
use super::value::{Item, Value, ZSet};

pub use keys::glob_match;

/// The replicated facts a write runs with.
#[derive(Debug)]
pub(super) struct Writer<'a> {
    pub(super) ks: &'a mut Keyspace,
    /// The replicated clock at this entry.
    pub(super) now: u64,
    /// The entry's log index: the version of every key it changes.
    pub(super) index: u64,
    /// Longest a string may grow to, from the entry.
    pub(super) max_value: u64,
    /// The index of the last entry that deleted a key (what `WATCH` of a missing key checks).
    pub(super) last_delete: &'a mut u64,
}

/// Picks the `T` a value holds, if it is of that type.
type Pick<T> = fn(&Value) -> Option<&T>;
type PickMut<T> = fn(&mut Value) -> Option<&mut T>;

/// The `T` of live `key`: `Ok(None)` if missing, `WRONGTYPE` if of another type.
pub(super) fn typed<'a, T>(ks: &'a Keyspace, key: &[u8], now: u64, pick: Pick<T>) -> Result<Option<&'a T>, Resp> {
    match ks.live(key, now) {
        None => Ok(None),
        Some(item) => pick(&item.value).map(Some).ok_or_else(|| Resp::error(errors::WRONGTYPE)),
    }
}

macro_rules! picks {
    ($($name:ident, $name_mut:ident, $variant:ident, $t:ty;)*) => {$(
        pub(super) fn $name(v: &Value) -> Option<&$t> {
            match v { Value::$variant(x) => Some(x), _ => None }
        }
        pub(super) fn $name_mut(v: &mut Value) -> Option<&mut $t> {
            match v { Value::$variant(x) => Some(x), _ => None }
        }
    )*};
}

picks! {
    as_str, as_str_mut, Str, Blob;
    as_hash, as_hash_mut, Hash, BTreeMap<Bytes, Bytes>;
    as_list, as_list_mut, List, VecDeque<Bytes>;
    as_set, as_set_mut, Set, BTreeSet<Bytes>;
    as_zset, as_zset_mut, ZSet, ZSet;
}

/// Unwraps a `Result<_, Resp>` or returns its error as the reply.
macro_rules! reply_err {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r.into(),
        }
    };
}
pub(super) use reply_err;

/// Runs read command `cmd` on `ks` at replicated time `now`.
pub(super) fn read(ks: &Keyspace, cmd: &Cmd, now: u64) -> Resp {
    strings::read(ks, cmd, now)
        .or_else(|| keys::read(ks, cmd, now))
        .or_else(|| hash::read(ks, cmd, now))
        .or_else(|| list::read(ks, cmd, now))
        .or_else(|| set::read(ks, cmd, now))
        .or_else(|| zset::read(ks, cmd, now))
        .unwrap_or_else(|| Resp::error(String::from("ERR not a read command")))
}

impl Writer<'_> {
    /// Runs `cmd` (a read too, as inside a transaction).
    pub(super) fn run(&mut self, cmd: &Cmd) -> Resp {
        if !cmd.is_write() {
            return read(self.ks, cmd, self.now);
        }
        self.strings(cmd)
            .or_else(|| self.keys(cmd))
            .or_else(|| self.hash(cmd))
            .or_else(|| self.list(cmd))
            .or_else(|| self.sets(cmd))
            .or_else(|| self.zset(cmd))
            .unwrap_or_else(|| Resp::error(String::from("ERR not a write command")))
    }

    /// Removes `key` if it expired, so the write sees it missing (a removal, for `WATCH`).
    fn purge(&mut self, key: &[u8]) {
        if self.ks.get(key).is_some_and(|i| i.expired(self.now)) {
            self.ks.remove(key);
            *self.last_delete = self.index;
        }
    }

    /// The live item of `key`, marked changed by this entry.
    fn item_mut(&mut self, key: &[u8]) -> Option<&mut Item> {
        self.purge(key);
        let index = self.index;
        let item = self.ks.get_mut(key)?;
        item.version = index;
        Some(item)
    }

    /// The `T` of `key` to change: `WRONGTYPE` if of another type; if missing, a new empty
    /// one when `create` gives it, else `None`. Marks the key changed. Call
    /// [`Writer::settle`] after changing it, so an aggregate left empty goes.
    fn typed_mut<T>(
        &mut self,
        key: &Bytes,
        pick: PickMut<T>,
        create: Option<fn() -> Value>,
    ) -> Result<Option<&mut T>, Resp> {
        self.purge(key);
        if self.ks.get(key).is_none() {
            let Some(make) = create else { return Ok(None) };
            self.ks.insert(key, Item { value: make(), expires: None, version: self.index });
        }
        let index = self.index;
        let item = self.ks.get_mut(key).expect("present");
        // A command refused for the type changes nothing, its version neither.
        if pick(&mut item.value).is_none() {
            return Err(Resp::error(errors::WRONGTYPE));
        }
        item.version = index;
        Ok(pick(&mut item.value))
    }

    /// Removes `key` if it holds an empty aggregate.
    fn settle(&mut self, key: &[u8]) {
        if self.ks.get(key).is_some_and(|i| i.value.is_empty_aggregate()) {
            self.delete(key);
        }
    }

    /// Sets `key` to `value` expiring at `expires`.
    fn put(&mut self, key: &[u8], value: Value, expires: Option<u64>) {
        self.ks.insert(key, Item { value, expires, version: self.index });
    }

    /// Deletes `key`; whether it existed (live).
    fn delete(&mut self, key: &[u8]) -> bool {
        self.purge(key);
        let existed = self.ks.remove(key).is_some();
        if existed {
            *self.last_delete = self.index;
        }
        existed
    }
}

/// Redis's `start..=stop` range with negative indexes from the end, clamped to `len`: the
/// half-open range of positions, empty when nothing is in it.
pub(super) fn index_range(start: i64, stop: i64, len: usize) -> core::ops::Range<usize> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    if start > stop || start >= len {
        return 0..0;
    }
    start as usize..stop as usize + 1
}

/// A position in a list from a Redis index (negative from the end), if in range.
pub(super) fn position(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&i).then_some(i as usize)
}
