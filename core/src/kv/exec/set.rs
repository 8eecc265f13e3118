//! Set commands. `SPOP`'s pick is drawn from the entry's index, so every replica pops the
//! same members: the first member at or after a byte string drawn from it (wrapping around),
//! found in O(log n); not uniform (a member after a wide gap is picked more often), which
//! `SPOP` does not promise to the state machine's clients either way.

use alloc::collections::BTreeSet;

use alloc::vec::Vec;
use bytes::Bytes;

use super::{as_set, as_set_mut, reply_err, typed, Writer};
use crate::kv::cmd::Cmd;
use crate::kv::keyspace::Keyspace;
use crate::kv::reply::Resp;
use crate::kv::value::Value;

fn new_set() -> Value {
    Value::Set(BTreeSet::new())
}

pub(super) fn read(ks: &Keyspace, cmd: &Cmd, now: u64) -> Option<Resp> {
    let set = |key| typed(ks, key, now, as_set);
    Some(match cmd {
        Cmd::SMembers { key } => {
            Resp::Set(reply_err!(set(key)).map_or(Vec::new(), |s| s.iter().cloned().map(Resp::Bulk).collect()))
        }
        Cmd::SIsMember { key, member } => {
            Resp::Int(i64::from(reply_err!(set(key)).is_some_and(|s| s.contains(member))))
        }
        Cmd::SCard { key } => Resp::Int(reply_err!(set(key)).map_or(0, |s| s.len() as i64)),
        _ => return None,
    })
}

/// A pseudo-random number from `seed` (splitmix64): the same on every replica.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Writer<'_> {
    pub(super) fn sets(&mut self, cmd: &Cmd) -> Option<Resp> {
        let index = self.index;
        let reply = match cmd {
            Cmd::SAdd { key, members } => {
                let s = reply_err!(self.typed_mut(key, as_set_mut, Some(new_set))).expect("created");
                Resp::Int(members.iter().filter(|m| s.insert((*m).clone())).count() as i64)
            }
            Cmd::SRem { key, members } => match reply_err!(self.typed_mut(key, as_set_mut, None)) {
                None => Resp::Int(0),
                Some(s) => Resp::Int(members.iter().filter(|m| s.remove(*m)).count() as i64),
            },
            Cmd::SPop { key, count } => {
                let s = reply_err!(self.typed_mut(key, as_set_mut, None));
                let pop = |s: &mut BTreeSet<Bytes>, draw: u64| {
                    let from = Bytes::copy_from_slice(&mix(index ^ draw.rotate_left(32)).to_be_bytes());
                    let m = s.range(from..).next().or_else(|| s.iter().next()).cloned().expect("not empty");
                    s.remove(&m);
                    m
                };
                match (s, count) {
                    (None, None) => Resp::Nil,
                    (None, Some(_)) => Resp::Set(Vec::new()),
                    (Some(s), None) => Resp::Bulk(pop(s, 0)),
                    (Some(s), Some(n)) if *n as usize >= s.len() => {
                        Resp::Set(core::mem::take(s).into_iter().map(Resp::Bulk).collect())
                    }
                    (Some(s), Some(n)) => Resp::Set((0..*n).map(|d| Resp::Bulk(pop(s, d))).collect()),
                }
            }
            _ => return None,
        };
        if let Some(key) = cmd.key() {
            self.settle(key);
        }
        Some(reply)
    }
}
