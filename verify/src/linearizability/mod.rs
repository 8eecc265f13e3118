//! A linearizability checker for key/value histories: the Wing-Gong search with Lowe's
//! memoisation, as Porcupine does it, partitioned by key.
//!
//! A history is a set of [`Operation`]s, each with a call time and a return time (closed
//! intervals: two operations whose intervals touch are concurrent). An operation whose client
//! gave up (timed out) has an unknown outcome: it may or may not have taken effect, at any
//! time after its call; it is modelled as returning at infinity with any output.
//!
//! The search keeps the history as a list ordered by event time and repeatedly tries to
//! linearize a pending operation that was called before any operation returned; a state
//! (set of linearized operations, model value) seen before is not explored again. The model
//! of one key is its value (`""` when missing): a get must read it, a put replaces it, an
//! append extends it, a delete empties it, an increment reads it as Redis's integer (or
//! fails, changing nothing) and a compare-and-set (`WATCH`, `GET`, `MULTI`/`SET`/`EXEC`)
//! that succeeded found the value it expected. A multi-key write (`MSET`) enters the history
//! once per key: each key's projection of a linearizable history is linearizable.

mod search;

use std::fmt;
use std::time::Duration;

pub use search::check_partition;

/// What a client asked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
    },
    Append {
        key: String,
        value: String,
    },
    /// `DEL`: the key is missing after it.
    Del {
        key: String,
    },
    /// `INCR`: answers the new value, or an error (changing nothing) when the value is not
    /// an integer.
    Incr {
        key: String,
    },
    /// A watched read-modify-write: applied (`"ok"`) only if the value was still `expect`,
    /// else aborted (`"aborted"`), which may happen whatever the value (a watch aborts on any
    /// write to the key).
    Cas {
        key: String,
        expect: String,
        new: String,
    },
}

/// What a successful [`Input::Cas`] answers, and an aborted one.
pub const CAS_OK: &str = "ok";
pub const CAS_ABORTED: &str = "aborted";

/// What `INCR` makes of `value` (`""` is a missing key): the new value, or `None` if it is
/// not an integer (or would overflow), which Redis answers with an error.
pub fn incremented(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("1".into());
    }
    let n = skiff_core::kv::parse_int(value.as_bytes())?;
    n.checked_add(1).map(|n| n.to_string())
}

impl Input {
    /// The service's operation that does it.
    pub fn to_op(&self) -> skiff_core::kv::Op {
        use skiff_core::kv::Op;
        match self.clone() {
            Input::Get { key } => Op::get(key),
            Input::Put { key, value } => Op::put(key, value),
            Input::Append { key, value } => Op::append(key, value),
            Input::Del { key } => Op::Cmd(skiff_core::kv::Cmd::Del { keys: vec![key.into()] }),
            Input::Incr { key } => Op::Cmd(skiff_core::kv::Cmd::IncrBy { key: key.into(), by: 1 }),
            Input::Cas { .. } => unreachable!("a compare-and-set is three operations (see the simulator)"),
        }
    }

    /// What the model records of `reply`: the value a `Get` read (`""` if missing), and
    /// nothing for a write (its acknowledgement is its return).
    pub fn output_of(&self, reply: &skiff_core::kv::Resp) -> String {
        use skiff_core::kv::Resp;
        match (self, reply) {
            (Input::Get { .. }, _) => reply.to_text(),
            (Input::Incr { .. }, Resp::Int(n)) => n.to_string(),
            (Input::Incr { .. }, _) => "error".into(),
            (Input::Cas { .. }, Resp::NilArray) => CAS_ABORTED.into(),
            (Input::Cas { .. }, _) => CAS_OK.into(),
            (Input::Put { .. } | Input::Append { .. } | Input::Del { .. }, _) => String::new(),
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Input::Get { key }
            | Input::Put { key, .. }
            | Input::Append { key, .. }
            | Input::Del { key }
            | Input::Incr { key }
            | Input::Cas { key, .. } => key,
        }
    }
}

/// What it got back. `None` is an unknown outcome (the client timed out).
pub type Output = Option<String>;

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub client: u64,
    pub input: Input,
    /// When the call was made.
    pub call: u64,
    /// When the answer came back; `None` when it never did (unknown outcome).
    pub ret: Option<u64>,
    /// For a `Get`, the value read (`Some("")` for a missing key); for `Put`/`Append`,
    /// `Some(String::new())` once acknowledged; `None` when unknown.
    pub output: Output,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No linearization exists; `history` is the failing key's operations, by call time.
    Illegal {
        key: String,
        history: Vec<Operation>,
    },
    /// The search ran out of time.
    Unknown,
}

/// The operations of one key that can bear on its verdict; leaving out the others only
/// shrinks the search (unknown outcomes multiply it: each may take effect anywhere after its
/// call, or never). Left out:
/// - a read that never returned: it constrains nothing and changes no state;
/// - a write with an unknown outcome whose value no returned read contains. Had it taken
///   effect, every read until the next put would contain its value, so none came before the
///   next put: any linearization with it stays one without it, and one without it is one
///   where it never took effect.
///
/// A value is seen when a returned read answered it or a successful compare-and-set found it;
/// an increment that failed saw some value that is no integer, so with one of those nothing
/// is left out.
fn relevant(ops: Vec<Operation>) -> Vec<Operation> {
    let returned = || ops.iter().filter(|o| o.ret.is_some());
    let mut seen: Vec<&str> =
        returned().filter(|o| matches!(o.input, Input::Get { .. })).filter_map(|o| o.output.as_deref()).collect();
    seen.extend(returned().filter_map(|o| match (&o.input, o.output.as_deref()) {
        (Input::Cas { expect, .. }, Some(CAS_OK)) => Some(expect.as_str()),
        _ => None,
    }));
    let failed_incr = returned().any(|o| matches!(o.input, Input::Incr { .. }) && o.output.as_deref() == Some("error"));
    let bears = |o: &Operation| match &o.input {
        _ if o.ret.is_some() || failed_incr => true,
        Input::Get { .. } => false,
        Input::Put { value, .. } | Input::Append { value, .. } => seen.iter().any(|r| r.contains(value.as_str())),
        // Their effect shows in other ways than a value read (an empty value, a number, a
        // value a later operation expects): kept.
        Input::Del { .. } | Input::Incr { .. } | Input::Cas { .. } => true,
    };
    let keep: Vec<bool> = ops.iter().map(bears).collect();
    ops.into_iter().zip(keep).filter_map(|(o, k)| k.then_some(o)).collect()
}

/// Checks a whole history, key by key. `timeout` bounds the total search time.
pub fn check(history: &[Operation], timeout: Option<Duration>) -> Verdict {
    let mut keys: Vec<&str> = history.iter().map(|o| o.input.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let mut unknown = false;
    for key in keys {
        let ops = relevant(history.iter().filter(|o| o.input.key() == key).cloned().collect());
        match check_partition(&ops, deadline) {
            Some(true) => {}
            Some(false) => {
                let mut ops = ops;
                ops.sort_by_key(|o| (o.call, o.ret));
                return Verdict::Illegal { key: key.to_string(), history: ops };
            }
            None => unknown = true,
        }
    }
    if unknown {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    }
}

/// A readable rendering of one key's history: one line per operation.
#[derive(Debug)]
pub struct Rendered<'a>(pub &'a [Operation]);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in self.0 {
            let ret = o.ret.map_or("never".to_string(), |r| r.to_string());
            let out = match (&o.input, &o.output) {
                (_, None) => "unknown".to_string(),
                (Input::Get { .. } | Input::Incr { .. } | Input::Cas { .. }, Some(v)) => format!("-> {v:?}"),
                (_, Some(_)) => "ok".to_string(),
            };
            let what = match &o.input {
                Input::Get { key } => format!("get({key:?})"),
                Input::Put { key, value } => format!("put({key:?}, {value:?})"),
                Input::Append { key, value } => format!("append({key:?}, {value:?})"),
                Input::Del { key } => format!("del({key:?})"),
                Input::Incr { key } => format!("incr({key:?})"),
                Input::Cas { key, expect, new } => format!("cas({key:?}, {expect:?} -> {new:?})"),
            };
            writeln!(f, "  client {:>3} [{:>8}, {:>8}] {what} {out}", o.client, o.call, ret)?;
        }
        Ok(())
    }
}
