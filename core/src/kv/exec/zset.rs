//! Sorted set commands.

use alloc::vec::Vec;

use bytes::Bytes;

use super::{as_zset, as_zset_mut, index_range, reply_err, typed, Writer};
use crate::kv::cmd::{Cmd, Cond, ZAddFlags};
use crate::kv::keyspace::Keyspace;
use crate::kv::reply::{errors, format_double, Resp};
use crate::kv::value::{Float, Value, ZSet};

fn new_zset() -> Value {
    Value::ZSet(alloc::boxed::Box::default())
}

fn double(f: Float) -> Resp {
    Resp::Double(format_double(f.0))
}

fn pair(score: Float, member: &Bytes) -> (Resp, Resp) {
    (Resp::Bulk(member.clone()), double(score))
}

pub(super) fn read(ks: &Keyspace, cmd: &Cmd, now: u64) -> Option<Resp> {
    let zset = |key| typed(ks, key, now, as_zset);
    Some(match cmd {
        Cmd::ZScore { key, member } => reply_err!(zset(key)).and_then(|z| z.score(member)).map_or(Resp::Nil, double),
        Cmd::ZCard { key } => Resp::Int(reply_err!(zset(key)).map_or(0, |z| z.len() as i64)),
        Cmd::ZRank { key, member, rev } => {
            let Some(z) = reply_err!(zset(key)) else { return Some(Resp::Nil) };
            match z.iter().position(|(_, m)| m == member) {
                Some(r) if *rev => Resp::Int((z.len() - 1 - r) as i64),
                Some(r) => Resp::Int(r as i64),
                None => Resp::Nil,
            }
        }
        Cmd::ZRange { key, start, stop, rev, scores } => {
            let Some(z) = reply_err!(zset(key)) else { return Some(Resp::Array(Vec::new())) };
            let r = index_range(*start, *stop, z.len());
            let picked: Vec<&(Float, Bytes)> = if *rev {
                z.iter().rev().skip(r.start).take(r.len()).collect()
            } else {
                z.iter().skip(r.start).take(r.len()).collect()
            };
            if *scores {
                Resp::Pairs(picked.into_iter().map(|(s, m)| pair(*s, m)).collect())
            } else {
                Resp::bulks(picked.into_iter().map(|(_, m)| m.clone()))
            }
        }
        _ => return None,
    })
}

/// What `ZADD` did to one member.
enum Added {
    New(Float),
    Changed(Float),
    Same(Float),
    Skipped,
}

fn zadd_one(z: &mut ZSet, flags: ZAddFlags, score: Float, member: &Bytes) -> Result<Added, Resp> {
    match z.score(member) {
        Some(old) => {
            if flags.cond == Cond::IfMissing {
                return Ok(Added::Skipped);
            }
            let new = if flags.incr { Float(old.0 + score.0) } else { score };
            if new.0.is_nan() {
                return Err(Resp::error(errors::ZSET_NAN));
            }
            match flags.greater {
                Some(true) if new <= old => return Ok(Added::Skipped),
                Some(false) if new >= old => return Ok(Added::Skipped),
                _ => {}
            }
            if new == old {
                return Ok(Added::Same(new));
            }
            z.insert(member.clone(), new);
            Ok(Added::Changed(new))
        }
        None if flags.cond == Cond::IfPresent => Ok(Added::Skipped),
        None => {
            z.insert(member.clone(), score);
            Ok(Added::New(score))
        }
    }
}

impl Writer<'_> {
    pub(super) fn zset(&mut self, cmd: &Cmd) -> Option<Resp> {
        let reply = match cmd {
            Cmd::ZAdd { key, flags, pairs } => self.zadd(key, *flags, pairs),
            Cmd::ZIncrBy { key, by, member } => {
                let flags = ZAddFlags { cond: Cond::Always, greater: None, changed: false, incr: true };
                self.zadd(key, flags, &[(*by, member.clone())])
            }
            Cmd::ZRem { key, members } => match reply_err!(self.typed_mut(key, as_zset_mut, None)) {
                None => Resp::Int(0),
                Some(z) => Resp::Int(members.iter().filter(|m| z.remove(m).is_some()).count() as i64),
            },
            Cmd::ZPopMin { key, count, max } => {
                let z = reply_err!(self.typed_mut(key, as_zset_mut, None));
                let n = count.map_or(1, |c| c as usize);
                let mut popped = Vec::new();
                if let Some(z) = z {
                    for _ in 0..n.min(z.len()) {
                        let next = if *max { z.iter().next_back().cloned() } else { z.iter().next().cloned() };
                        let Some((s, m)) = next else { break };
                        z.remove(&m);
                        popped.push(pair(s, &m));
                    }
                }
                if count.is_some() {
                    Resp::Pairs(popped)
                } else {
                    Resp::Array(popped.into_iter().flat_map(|(m, s)| [m, s]).collect())
                }
            }
            _ => return None,
        };
        if let Some(key) = cmd.key() {
            self.settle(key);
        }
        Some(reply)
    }

    fn zadd(&mut self, key: &Bytes, flags: ZAddFlags, pairs: &[(Float, Bytes)]) -> Resp {
        let z = reply_err!(self.typed_mut(key, as_zset_mut, Some(new_zset))).expect("created");
        let (mut added, mut changed, mut last) = (0, 0, None);
        for (score, member) in pairs {
            match reply_err!(zadd_one(z, flags, *score, member)) {
                Added::New(s) => {
                    added += 1;
                    last = Some(s);
                }
                Added::Changed(s) => {
                    changed += 1;
                    last = Some(s);
                }
                Added::Same(s) => last = Some(s),
                Added::Skipped => {}
            }
        }
        if flags.incr {
            return last.map_or(Resp::Nil, double);
        }
        Resp::Int(if flags.changed { added + changed } else { added })
    }
}
