//! List commands.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{as_list, as_list_mut, index_range, position, reply_err, typed, Writer};
use crate::kv::cmd::Cmd;
use crate::kv::keyspace::Keyspace;
use crate::kv::reply::{errors, Resp};
use crate::kv::value::Value;

fn new_list() -> Value {
    Value::List(VecDeque::new())
}

pub(super) fn read(ks: &Keyspace, cmd: &Cmd, now: u64) -> Option<Resp> {
    let list = |key| typed(ks, key, now, as_list);
    Some(match cmd {
        Cmd::LLen { key } => Resp::Int(reply_err!(list(key)).map_or(0, |l| l.len() as i64)),
        Cmd::LRange { key, start, stop } => match reply_err!(list(key)) {
            None => Resp::Array(Vec::new()),
            Some(l) => Resp::bulks(l.range(index_range(*start, *stop, l.len())).cloned()),
        },
        Cmd::LIndex { key, index } => {
            let l = reply_err!(list(key));
            Resp::bulk_or_nil(l.and_then(|l| position(*index, l.len()).map(|p| l[p].clone())))
        }
        _ => return None,
    })
}

impl Writer<'_> {
    pub(super) fn list(&mut self, cmd: &Cmd) -> Option<Resp> {
        let reply = match cmd {
            Cmd::Push { key, values, left, existing } => {
                let create = if *existing { None } else { Some(new_list as fn() -> Value) };
                match reply_err!(self.typed_mut(key, as_list_mut, create)) {
                    None => Resp::Int(0),
                    Some(l) => {
                        for v in values {
                            if *left {
                                l.push_front(v.clone());
                            } else {
                                l.push_back(v.clone());
                            }
                        }
                        Resp::Int(l.len() as i64)
                    }
                }
            }
            Cmd::Pop { key, left, count } => match (reply_err!(self.typed_mut(key, as_list_mut, None)), count) {
                (None, None) => Resp::Nil,
                (None, Some(_)) => Resp::NilArray,
                (Some(l), None) => Resp::bulk_or_nil(if *left { l.pop_front() } else { l.pop_back() }),
                (Some(l), Some(n)) => {
                    let n = (*n as usize).min(l.len());
                    let popped: Vec<_> =
                        (0..n).filter_map(|_| if *left { l.pop_front() } else { l.pop_back() }).collect();
                    Resp::bulks(popped)
                }
            },
            Cmd::LSet { key, index, value } => match reply_err!(self.typed_mut(key, as_list_mut, None)) {
                None => Resp::error(errors::NO_SUCH_KEY),
                Some(l) => match position(*index, l.len()) {
                    Some(p) => {
                        l[p] = value.clone();
                        Resp::Ok
                    }
                    None => Resp::error("ERR index out of range"),
                },
            },
            _ => return None,
        };
        if let Some(key) = cmd.key() {
            self.settle(key);
        }
        Some(reply)
    }
}
