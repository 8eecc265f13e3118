//! `MULTI`, `EXEC` and `DISCARD` in a RESP session: what is queued, the limits of a
//! transaction, and how `EXEC`'s answers are put together from the entry's replies and those
//! known when queued.

use bytes::Bytes;
use skiff_core::kv::{Cmd, Op, Resp};

use super::{unknown_command, Kind, RespSession, Step};
use crate::server::resp_commands::all_commands;

/// What `MULTI` queued: a command for the entry, or an answer known now (`PING`, `ECHO`, a
/// command whose arguments Redis would refuse only when running it, as `INCRBY k x`).
#[derive(Debug)]
pub(super) enum Queued {
    Cmd(Cmd),
    Answer(Resp),
}

/// The commands queued since `MULTI`.
#[derive(Debug, Default)]
pub(super) struct Multi {
    pub(super) queued: Vec<Queued>,
    /// Bytes of the queued commands' arguments.
    pub(super) bytes: usize,
    /// A command failed to queue (unknown, wrong arity, over the size limit): `EXEC`
    /// discards the transaction.
    pub(super) dirty: bool,
}

/// Most commands one `MULTI` queues.
const MAX_MULTI: usize = 10_000;

impl RespSession {
    /// A command inside `MULTI`: queued if it is a data command, else `EXEC`, `DISCARD` or
    /// an error that dooms the transaction.
    pub(super) fn in_multi(&mut self, name: &str, args: &[Bytes]) -> Step {
        let multi = self.multi.as_mut().expect("in a transaction");
        let reply = match name {
            "exec" => {
                let m = self.multi.take().expect("in a transaction");
                let watched = self.watched.take();
                if m.dirty {
                    self.reply(&Resp::error("EXECABORT Transaction discarded because of previous errors."));
                    return Step::Answered;
                }
                let mut commands = Vec::new();
                self.exec_answers = m
                    .queued
                    .into_iter()
                    .map(|q| match q {
                        Queued::Cmd(c) => {
                            commands.push(c);
                            None
                        }
                        Queued::Answer(r) => Some(r),
                    })
                    .collect();
                if commands.is_empty() && watched.is_none() {
                    let answers = std::mem::take(&mut self.exec_answers).into_iter().flatten().collect();
                    self.reply(&Resp::Array(answers));
                    return Step::Answered;
                }
                return Step::Start(Kind::Exec, Op::Exec { commands, watched });
            }
            "discard" => {
                self.multi = None;
                self.watched = None;
                Resp::Ok
            }
            "multi" => Resp::error("ERR MULTI calls can not be nested"),
            "watch" => {
                multi.dirty = true;
                Resp::error("ERR WATCH inside MULTI is not allowed")
            }
            _ => {
                let size: usize = args.iter().map(Bytes::len).sum();
                let max_bytes = 2 * (self.facts.max_key_bytes + self.facts.max_value_bytes);
                if multi.queued.len() >= MAX_MULTI || multi.bytes + size > max_bytes {
                    multi.dirty = true;
                    let why = format!(
                        "ERR a transaction holds at most {MAX_MULTI} commands and {max_bytes} bytes of arguments"
                    );
                    self.reply(&Resp::Error(why));
                    return Step::Answered;
                }
                let queued = match (name, Cmd::parse(args)) {
                    (_, Some(Ok(cmd))) => Ok(Queued::Cmd(cmd)),
                    // Redis refuses a wrong number of arguments when queueing; other argument
                    // errors come back from EXEC, in the command's place.
                    (_, Some(Err(e))) if e == skiff_core::kv::arity_error(name) => Err(e),
                    (_, Some(Err(e))) => Ok(Queued::Answer(e)),
                    ("ping", None) if args.len() <= 2 => {
                        Ok(Queued::Answer(args.get(1).map_or(Resp::Simple("PONG".into()), |m| Resp::Bulk(m.clone()))))
                    }
                    ("echo", None) if args.len() == 2 => Ok(Queued::Answer(Resp::Bulk(args[1].clone()))),
                    (_, None) if all_commands().any(|n| n == name) => {
                        Err(Resp::Error(format!("ERR '{name}' is not allowed inside MULTI by skiff")))
                    }
                    (_, None) => Err(unknown_command(args)),
                };
                match queued {
                    Ok(q) => {
                        multi.queued.push(q);
                        multi.bytes += size;
                        Resp::Simple("QUEUED".into())
                    }
                    Err(e) => {
                        multi.dirty = true;
                        e
                    }
                }
            }
        };
        self.reply(&reply);
        Step::Answered
    }
}
