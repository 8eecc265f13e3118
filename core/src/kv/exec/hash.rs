//! Hash commands.

use alloc::collections::BTreeMap;
use alloc::format;

use bytes::Bytes;

use super::{as_hash, as_hash_mut, reply_err, typed, Writer};
use crate::kv::cmd::Cmd;
use crate::kv::keyspace::Keyspace;
use crate::kv::parse::{parse_float, parse_int};
use crate::kv::reply::{errors, format_double, Resp};
use crate::kv::value::Value;

fn new_hash() -> Value {
    Value::Hash(BTreeMap::new())
}

pub(super) fn read(ks: &Keyspace, cmd: &Cmd, now: u64) -> Option<Resp> {
    let hash = |key: &Bytes| typed(ks, key, now, as_hash);
    let empty = BTreeMap::new();
    Some(match cmd {
        Cmd::HGet { key, field } => Resp::bulk_or_nil(reply_err!(hash(key)).and_then(|h| h.get(field)).cloned()),
        Cmd::HMGet { key, fields } => {
            let h = reply_err!(hash(key)).unwrap_or(&empty);
            Resp::Array(fields.iter().map(|f| Resp::bulk_or_nil(h.get(f).cloned())).collect())
        }
        Cmd::HGetAll { key } => Resp::Map(
            reply_err!(hash(key))
                .unwrap_or(&empty)
                .iter()
                .map(|(f, v)| (Resp::Bulk(f.clone()), Resp::Bulk(v.clone())))
                .collect(),
        ),
        Cmd::HKeys { key } => Resp::bulks(reply_err!(hash(key)).unwrap_or(&empty).keys().cloned()),
        Cmd::HVals { key } => Resp::bulks(reply_err!(hash(key)).unwrap_or(&empty).values().cloned()),
        Cmd::HLen { key } => Resp::Int(reply_err!(hash(key)).map_or(0, |h| h.len() as i64)),
        Cmd::HExists { key, field } => {
            Resp::Int(i64::from(reply_err!(hash(key)).is_some_and(|h| h.contains_key(field))))
        }
        Cmd::HStrlen { key, field } => {
            Resp::Int(reply_err!(hash(key)).and_then(|h| h.get(field)).map_or(0, |v| v.len() as i64))
        }
        _ => return None,
    })
}

impl Writer<'_> {
    pub(super) fn hash(&mut self, cmd: &Cmd) -> Option<Resp> {
        let reply = match cmd {
            Cmd::HSet { key, pairs, ok } => {
                let h = reply_err!(self.typed_mut(key, as_hash_mut, Some(new_hash))).expect("created");
                let added = pairs.iter().filter(|(f, v)| h.insert(f.clone(), v.clone()).is_none()).count();
                if *ok {
                    Resp::Ok
                } else {
                    Resp::Int(added as i64)
                }
            }
            Cmd::HSetNx { key, field, value } => {
                let h = reply_err!(self.typed_mut(key, as_hash_mut, Some(new_hash))).expect("created");
                let added = !h.contains_key(field);
                if added {
                    h.insert(field.clone(), value.clone());
                }
                Resp::Int(i64::from(added))
            }
            Cmd::HDel { key, fields } => match reply_err!(self.typed_mut(key, as_hash_mut, None)) {
                None => Resp::Int(0),
                Some(h) => Resp::Int(fields.iter().filter(|f| h.remove(*f).is_some()).count() as i64),
            },
            Cmd::HIncrBy { key, field, by } => {
                let h = reply_err!(self.typed_mut(key, as_hash_mut, Some(new_hash))).expect("created");
                let old = match h.get(field) {
                    None => 0,
                    Some(v) => reply_err!(parse_int(v).ok_or_else(|| Resp::error(errors::HASH_NOT_INTEGER))),
                };
                let n = reply_err!(old.checked_add(*by).ok_or_else(|| Resp::error(errors::OVERFLOW)));
                h.insert(field.clone(), Bytes::from(format!("{n}")));
                Resp::Int(n)
            }
            Cmd::HIncrByFloat { key, field, by } => {
                let h = reply_err!(self.typed_mut(key, as_hash_mut, Some(new_hash))).expect("created");
                let old = match h.get(field) {
                    None => 0.0,
                    Some(v) => {
                        reply_err!(parse_float(v).map(|f| f.0).ok_or_else(|| Resp::error(errors::HASH_NOT_FLOAT)))
                    }
                };
                let x = old + by.0;
                if x.is_finite() {
                    let text = Bytes::from(format_double(x).into_bytes());
                    h.insert(field.clone(), text.clone());
                    Resp::Bulk(text)
                } else {
                    Resp::error(errors::NAN_OR_INF)
                }
            }
            _ => return None,
        };
        // A hash created for a command that then failed, or emptied, goes.
        if let Some(key) = cmd.key() {
            self.settle(key);
        }
        Some(reply)
    }
}
