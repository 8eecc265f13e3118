//! The KV workload's helpers: the replicas' agreement check, what a `WATCH` answered, and
//! the commands on keys the linearizability model does not follow.

use bytes::Bytes;
use skiff_core::kv::{Cmd, Op, Resp, Watched};

use super::kv::{KvWorld, DIGESTS_KEPT};
use super::TICK;
use crate::checker::{Invariant, Violation};
use crate::rng::SimRng;

impl KvWorld {
    /// Node `server`'s state must be what every other service had at the same applied
    /// index.
    pub(super) fn check_agreement(&mut self, server: usize) -> Result<(), Violation> {
        let Some(service) = self.services[server].as_ref() else { return Ok(()) };
        let state = service.state();
        let index = state.applied().0;
        if !state.consistent() {
            return Err(Violation {
                invariant: Invariant::ReplicasDiverge,
                detail: format!("n{}: the keyspace's expiry index does not match its keys at {index}", server + 1),
            });
        }
        let digest = fnv(&state.snapshot());
        match self.digests.get(&index) {
            Some(&(d, other)) if d != digest => {
                return Err(Violation {
                    invariant: Invariant::ReplicasDiverge,
                    detail: format!("n{} and n{} hold different KV states at index {index}", other + 1, server + 1),
                })
            }
            Some(_) => {}
            None => {
                self.digests.insert(index, (digest, server));
                while self.digests.len() > DIGESTS_KEPT {
                    self.digests.pop_first();
                }
            }
        }
        Ok(())
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// What a `WATCH` of `key` answered, as `EXEC` carries it.
pub(super) fn watched(key: &str, reply: &Resp) -> Watched {
    let Resp::Array(items) = reply else { panic!("WATCH answered {reply:?}") };
    let (Some(Resp::Int(at)), Some(version)) = (items.first(), items.get(1)) else {
        panic!("WATCH answered {reply:?}")
    };
    let version = match version {
        Resp::Int(v) => Some(*v as u64),
        _ => None,
    };
    Watched { at: *at as u64, keys: vec![(Bytes::from(key.to_string()), version)] }
}

/// A command on keys the linearizability model does not follow (`x0`..`x5`): expiry, random
/// picks, sorted sets, hashes and lists, for the replicas' agreement.
pub(super) fn untracked_op(rng: &mut SimRng) -> Op {
    let ms = rng.between(1, 40 * TICK).to_string();
    let n = rng.below(100).to_string();
    let words: Vec<&str> = match rng.below(16) {
        0 => vec!["SET", "x0", "v", "PX", &ms],
        1 => vec!["PEXPIRE", "x0", &ms],
        2 => vec!["PERSIST", "x0"],
        3 => vec!["SADD", "x1", "a", "b", "c", &n],
        4 => vec!["SPOP", "x1"],
        5 => vec!["ZADD", "x2", &n, &ms],
        6 => vec!["ZPOPMIN", "x2"],
        7 => vec!["HINCRBY", "x3", &n, "1"],
        8 => vec!["RPUSH", "x4", &n, &ms],
        9 => vec!["LPOP", "x4"],
        10 => vec!["SET", "x5", &n, "PX", &ms, "GET"],
        11 => vec!["SET", "x0", &n, "KEEPTTL"],
        12 => vec!["RENAME", "x0", "x5"],
        13 => vec!["GETEX", "x5", "PX", &ms],
        14 => vec!["SPOP", "x1", "2"],
        _ => vec!["PEXPIRE", "x1", &ms],
    };
    let args: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
    Op::Cmd(Cmd::parse(&args).expect("a data command").expect("valid"))
}
