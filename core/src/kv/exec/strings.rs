//! String commands: `GET`, `SET` and its kin, counters, `APPEND`, ranges.

use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};

use super::{as_str, as_str_mut, reply_err, typed, Writer};
use crate::kv::blob::Blob;
use crate::kv::cmd::{Cmd, Cond, SetTtl};
use crate::kv::keyspace::Keyspace;
use crate::kv::parse::{parse_float, parse_int};
use crate::kv::reply::{errors, format_double, Resp};
use crate::kv::value::{Item, Value};

const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// `GETRANGE`'s bytes: as list ranges, except that an end before the start of the string
/// counts as its first byte (Redis 7), and two negative indexes out of order are empty.
fn byte_range(start: i64, end: i64, len: usize) -> core::ops::Range<usize> {
    let n = len as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return 0..0;
    }
    let start = if start < 0 { (n + start).max(0) } else { start };
    let end = if end < 0 { (n + end).max(0) } else { end.min(n - 1) };
    if start > end {
        return 0..0;
    }
    start as usize..end as usize + 1
}

fn string<'a>(ks: &'a Keyspace, key: &[u8], now: u64) -> Result<Option<&'a Blob>, Resp> {
    typed(ks, key, now, as_str)
}

pub(super) fn read(ks: &Keyspace, cmd: &Cmd, now: u64) -> Option<Resp> {
    Some(match cmd {
        Cmd::Get { key } => Resp::bulk_or_nil(reply_err!(string(ks, key, now)).map(Blob::to_bytes)),
        Cmd::MGet { keys } => Resp::Array(
            keys.iter().map(|k| Resp::bulk_or_nil(string(ks, k, now).ok().flatten().map(Blob::to_bytes))).collect(),
        ),
        Cmd::Strlen { key } => Resp::Int(reply_err!(string(ks, key, now)).map_or(0, |v| v.len() as i64)),
        Cmd::GetRange { key, start, end } => {
            let v = reply_err!(string(ks, key, now)).map_or(&[][..], Blob::as_slice);
            Resp::Bulk(Bytes::copy_from_slice(&v[byte_range(*start, *end, v.len())]))
        }
        _ => return None,
    })
}

impl Writer<'_> {
    pub(super) fn strings(&mut self, cmd: &Cmd) -> Option<Resp> {
        Some(match cmd {
            Cmd::Set { key, value, cond, get, ttl } => self.set(key, value, *cond, *get, *ttl),
            Cmd::SetNx { key, value } => match self.set(key, value, Cond::IfMissing, false, SetTtl::Clear) {
                Resp::Ok => Resp::Int(1),
                _ => Resp::Int(0),
            },
            Cmd::GetSet { key, value } => self.set(key, value, Cond::Always, true, SetTtl::Clear),
            Cmd::GetDel { key } => {
                let old = reply_err!(string(self.ks, key, self.now)).map(Blob::to_bytes);
                if old.is_some() {
                    self.delete(key);
                }
                Resp::bulk_or_nil(old)
            }
            Cmd::GetEx { key, ttl } => {
                let old = reply_err!(string(self.ks, key, self.now)).map(Blob::to_bytes);
                if old.is_some() {
                    let at = match ttl {
                        None | Some(SetTtl::Keep) => return Some(Resp::bulk_or_nil(old)),
                        Some(SetTtl::Clear) => None,
                        Some(SetTtl::After(ms)) => Some(self.now.saturating_add(*ms)),
                        Some(SetTtl::At(ms)) => Some(*ms),
                    };
                    if at.is_some_and(|at| at <= self.now) {
                        self.delete(key);
                    } else {
                        self.item_mut(key);
                        self.ks.set_expires(key, at);
                    }
                }
                Resp::bulk_or_nil(old)
            }
            Cmd::MSet { pairs, nx } => {
                if *nx && pairs.iter().any(|(k, _)| self.ks.live(k, self.now).is_some()) {
                    return Some(Resp::Int(0));
                }
                for (k, v) in pairs {
                    self.put(k, Value::Str(v.into()), None);
                }
                if *nx {
                    Resp::Int(1)
                } else {
                    Resp::Ok
                }
            }
            Cmd::IncrBy { key, by } => {
                let old = reply_err!(string(self.ks, key, self.now));
                let n = match old {
                    None => 0,
                    Some(v) => reply_err!(parse_int(v).ok_or_else(|| Resp::error(errors::NOT_INTEGER))),
                };
                let n = reply_err!(n.checked_add(*by).ok_or_else(|| Resp::error(errors::OVERFLOW)));
                self.set_keeping_ttl(key, Bytes::from(alloc::format!("{n}")));
                Resp::Int(n)
            }
            Cmd::IncrByFloat { key, by } => {
                let old = reply_err!(string(self.ks, key, self.now));
                let x = match old {
                    None => 0.0,
                    Some(v) => reply_err!(parse_float(v).map(|f| f.0).ok_or_else(|| Resp::error(errors::NOT_FLOAT))),
                };
                let x = x + by.0;
                if !x.is_finite() {
                    return Some(Resp::error(errors::NAN_OR_INF));
                }
                let text = format_double(x);
                self.set_keeping_ttl(key, Bytes::from(text.clone().into_bytes()));
                Resp::Bulk(Bytes::from(text.into_bytes()))
            }
            Cmd::Append { key, value } => {
                let old = reply_err!(string(self.ks, key, self.now)).map_or(&[][..], Blob::as_slice);
                let len = old.len() + value.len();
                if len as u64 > self.max_value {
                    return Some(Resp::error(TOO_BIG));
                }
                let mut v = BytesMut::with_capacity(len);
                v.extend_from_slice(old);
                v.extend_from_slice(value);
                self.set_keeping_ttl(key, v.freeze());
                Resp::Int(len as i64)
            }
            Cmd::SetRange { key, offset, value } => {
                let old = reply_err!(string(self.ks, key, self.now)).map(Blob::to_bytes);
                if value.is_empty() {
                    return Some(Resp::Int(old.map_or(0, |v| v.len() as i64)));
                }
                let end = *offset as usize + value.len();
                if end as u64 > self.max_value {
                    return Some(Resp::error(TOO_BIG));
                }
                let old = old.unwrap_or_default();
                let mut v: Vec<u8> = Vec::with_capacity(end.max(old.len()));
                v.extend_from_slice(&old);
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[*offset as usize..end].copy_from_slice(value);
                let len = v.len();
                self.set_keeping_ttl(key, Bytes::from(v));
                Resp::Int(len as i64)
            }
            _ => return None,
        })
    }

    /// `SET` with its options: `OK`, or the old value with `GET`, or nil if a condition
    /// stopped it.
    fn set(&mut self, key: &Bytes, value: &Bytes, cond: Cond, get: bool, ttl: SetTtl) -> Resp {
        // A plain SET (the common write) reads nothing of the old item: one lookup, the
        // insert, which hands back the old item. One that had expired counts as removed
        // first, as `purge` would have made it (for `WATCH`).
        if matches!(cond, Cond::Always) && !get && !matches!(ttl, SetTtl::Keep) {
            let expires = match ttl {
                SetTtl::After(ms) => Some(self.now.saturating_add(ms)),
                SetTtl::At(ms) => Some(ms),
                SetTtl::Clear | SetTtl::Keep => None,
            };
            let item = Item { value: Value::Str(value.into()), expires, version: self.index };
            if self.ks.insert(key, item).is_some_and(|old| old.expired(self.now)) {
                *self.last_delete = self.index;
            }
            return Resp::Ok;
        }
        self.purge(key);
        let old = self.ks.get(key);
        if get {
            if let Some(item) = old {
                if as_str(&item.value).is_none() {
                    return Resp::error(errors::WRONGTYPE);
                }
            }
        }
        let old_value = if get { old.and_then(|i| as_str(&i.value)).map(Blob::to_bytes) } else { None };
        let old_expires = old.and_then(|i| i.expires);
        let proceed = match cond {
            Cond::Always => true,
            Cond::IfMissing => old.is_none(),
            Cond::IfPresent => old.is_some(),
        };
        if proceed {
            let expires = match ttl {
                SetTtl::Clear => None,
                SetTtl::Keep => old_expires,
                SetTtl::After(ms) => Some(self.now.saturating_add(ms)),
                SetTtl::At(ms) => Some(ms),
            };
            self.put(key, Value::Str(value.into()), expires);
        }
        match (get, proceed) {
            (true, _) => Resp::bulk_or_nil(old_value),
            (false, true) => Resp::Ok,
            (false, false) => Resp::Nil,
        }
    }

    /// Sets string `key` to `v`, keeping its expiry (the counters and `APPEND`).
    fn set_keeping_ttl(&mut self, key: &Bytes, v: Bytes) {
        match self.typed_mut(key, as_str_mut, None) {
            Ok(Some(s)) => *s = v.into(),
            _ => self.put(key, Value::Str(v.into()), None),
        }
    }
}
