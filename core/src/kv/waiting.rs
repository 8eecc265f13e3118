//! The requests a [`super::Service`] keeps waiting, and how their deadlines answer them.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::Cmd;
use crate::types::Term;

/// A write waiting for its entry. `client` 0 (never a session id: ids are log indexes) marks
/// a `Register`.
#[derive(Debug)]
pub(super) struct Write<W> {
    pub(super) to: W,
    pub(super) client: u64,
    pub(super) seq: u64,
    pub(super) deadline: u64,
}

/// What a read runs once its index is applied.
#[derive(Debug)]
pub(super) enum ReadOp {
    Cmd(Cmd),
    Watch(alloc::vec::Vec<bytes::Bytes>),
    Batch(alloc::vec::Vec<Cmd>),
}

/// A read waiting for its leader's confirmation or its index.
#[derive(Debug)]
pub(super) struct Read<W> {
    pub(super) to: W,
    pub(super) op: ReadOp,
    pub(super) deadline: u64,
}

/// A request waiting for something, with its deadline.
pub(super) trait Waiting<W> {
    fn deadline(&self) -> u64;
    fn into_waiter(self) -> W;
}

impl<W> Waiting<W> for Write<W> {
    fn deadline(&self) -> u64 {
        self.deadline
    }
    fn into_waiter(self) -> W {
        self.to
    }
}

impl<W> Waiting<W> for (Term, Write<W>) {
    fn deadline(&self) -> u64 {
        self.1.deadline
    }
    fn into_waiter(self) -> W {
        self.1.to
    }
}

impl<W> Waiting<W> for Read<W> {
    fn deadline(&self) -> u64 {
        self.deadline
    }
    fn into_waiter(self) -> W {
        self.to
    }
}

/// Removes the requests of `map` due at `now`, adding their waiters to `late`.
pub(super) fn expire_each<K: Ord + Copy, T: Waiting<W>, W>(map: &mut BTreeMap<K, T>, now: u64, late: &mut Vec<W>) {
    let due: Vec<K> = map.iter().filter(|(_, v)| v.deadline() <= now).map(|(k, _)| *k).collect();
    late.extend(due.into_iter().filter_map(|k| map.remove(&k)).map(Waiting::into_waiter));
}

/// [`expire_each`] for lists of requests by key.
pub(super) fn expire_lists<K: Ord + Copy, T: Waiting<W>, W>(
    map: &mut BTreeMap<K, Vec<T>>,
    now: u64,
    late: &mut Vec<W>,
) {
    let touched: Vec<K> = map.iter().filter(|(_, v)| v.iter().any(|r| r.deadline() <= now)).map(|(k, _)| *k).collect();
    for k in touched {
        let Some(list) = map.remove(&k) else { continue };
        let (due, left): (Vec<T>, Vec<T>) = list.into_iter().partition(|r| r.deadline() <= now);
        late.extend(due.into_iter().map(Waiting::into_waiter));
        if !left.is_empty() {
            map.insert(k, left);
        }
    }
}
