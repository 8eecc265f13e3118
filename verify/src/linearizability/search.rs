//! The search over one key's history.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::{Input, Operation};

/// One event of the history list: an operation's call or its return.
#[derive(Clone, Copy, Debug)]
struct Node {
    op: usize,
    is_call: bool,
    /// For a call, the index of its return node.
    matching: usize,
    prev: usize,
    next: usize,
}

/// The doubly linked list of events with a head sentinel at index `HEAD`.
struct List {
    nodes: Vec<Node>,
}

const HEAD: usize = 0;
const NIL: usize = usize::MAX;

impl List {
    fn build(ops: &[Operation]) -> List {
        // Events by time; at equal times calls come first, so touching intervals overlap.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (k, o) in ops.iter().enumerate() {
            events.push((o.call, true, k));
            events.push((o.ret.unwrap_or(u64::MAX), false, k));
        }
        events.sort_by_key(|&(t, is_call, k)| (t, !is_call, k));
        let mut nodes = vec![Node { op: NIL, is_call: false, matching: NIL, prev: NIL, next: NIL }];
        let mut ret_node = vec![NIL; ops.len()];
        for (pos, &(_, is_call, k)) in events.iter().enumerate() {
            let id = pos + 1;
            nodes.push(Node { op: k, is_call, matching: NIL, prev: id - 1, next: NIL });
            nodes[id - 1].next = id;
            if !is_call {
                ret_node[k] = id;
            }
        }
        for n in nodes.iter_mut().skip(1) {
            if n.is_call {
                n.matching = ret_node[n.op];
            }
        }
        List { nodes }
    }

    /// Takes the call `c` and its return out of the list.
    fn lift(&mut self, c: usize) {
        for id in [c, self.nodes[c].matching] {
            let Node { prev, next, .. } = self.nodes[id];
            self.nodes[prev].next = next;
            if next != NIL {
                self.nodes[next].prev = prev;
            }
        }
    }

    /// Puts them back (the inverse of `lift`, in reverse order).
    fn unlift(&mut self, c: usize) {
        for id in [self.nodes[c].matching, c] {
            let Node { prev, next, .. } = self.nodes[id];
            self.nodes[prev].next = id;
            if next != NIL {
                self.nodes[next].prev = id;
            }
        }
    }
}

/// Arithmetic modulo the Mersenne prime 2^61 - 1, for polynomial string hashes.
const P: u64 = (1 << 61) - 1;

fn mul(a: u64, b: u64) -> u64 {
    let x = a as u128 * b as u128;
    let r = (x & P as u128) as u64 + (x >> 61) as u64;
    if r >= P {
        r - P
    } else {
        r
    }
}

fn add(a: u64, b: u64) -> u64 {
    let r = a + b;
    if r >= P {
        r - P
    } else {
        r
    }
}

/// A hash of a string that two bases make 122 bits wide, computable piece by piece:
/// `hash(a + b) = hash(a) * shift(b) + hash(b)`, so a value's hash follows from the hashes of
/// what was appended, whatever the order of the pieces' concatenation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct StrHash([u64; 2]);

const BASES: [u64; 2] = [0x1f3d_5b79_a2c4_e681 % P, 0x7a41_93e2_5c0b_d1f7 % P];

impl StrHash {
    /// The hash of `s` and `BASE^len(s)` (the factor that shifts a hash past `s`).
    fn of(s: &str) -> (StrHash, StrHash) {
        let (mut h, mut shift) = ([0, 0], [1, 1]);
        for &b in s.as_bytes() {
            for k in 0..2 {
                h[k] = add(mul(h[k], BASES[k]), b as u64 + 1);
                shift[k] = mul(shift[k], BASES[k]);
            }
        }
        (StrHash(h), StrHash(shift))
    }

    fn append(self, (piece, shift): (StrHash, StrHash)) -> StrHash {
        StrHash([0, 1].map(|k| add(mul(self.0[k], shift.0[k]), piece.0[k])))
    }
}

/// A random 128-bit value per operation, so that the set of operations linearized has a
/// fingerprint updated by one XOR per change (Zobrist hashing).
fn zobrist(k: usize) -> u128 {
    let mut x = (k as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (next() as u128) << 64 | next() as u128
}

/// How to take back one linearized operation.
enum Undo {
    Nothing,
    /// A put: the value before it.
    Value(String),
    /// An append: the length before it.
    Length(usize),
}

/// A hasher for fingerprints, which are random already: it folds the words it is given.
#[derive(Default)]
struct Fold(u64);

impl Hasher for Fold {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
    fn write_u128(&mut self, x: u128) {
        self.write_u64(x as u64);
        self.write_u64((x >> 64) as u64);
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

/// Among the calls that may go first (those before the list's first return), a read that
/// returned the current value. Linearizing it at once loses nothing: if any order of what is
/// left works, the one with this read first does too (it changes no state, and nothing
/// pending had to precede it), so its alternatives need no search.
fn ready_read(list: &List, ops: &[Operation], state: &str) -> Option<usize> {
    let mut at = list.nodes[HEAD].next;
    while at != NIL && list.nodes[at].is_call {
        let op = &ops[list.nodes[at].op];
        if matches!(op.input, Input::Get { .. }) && op.output.as_deref() == Some(state) {
            return Some(at);
        }
        at = list.nodes[at].next;
    }
    None
}

/// What a delete, increment or compare-and-set does to the value `state`, given its output
/// (`None`: unknown).
enum Replaced {
    /// It cannot have answered that here.
    Impossible,
    Unchanged,
    With(String),
}

fn replacement(input: &Input, output: Option<&str>, state: &str) -> Replaced {
    match input {
        Input::Del { .. } => Replaced::With(String::new()),
        Input::Incr { .. } => match (super::incremented(state), output) {
            (Some(next), Some(out)) if out != next => Replaced::Impossible,
            (Some(next), _) => Replaced::With(next),
            (None, Some(out)) if out != "error" => Replaced::Impossible,
            (None, _) => Replaced::Unchanged,
        },
        Input::Cas { expect, new, .. } => match output {
            // An abort changes nothing, whatever the value.
            Some(super::CAS_ABORTED) => Replaced::Unchanged,
            Some(_) if expect != state => Replaced::Impossible,
            Some(_) => Replaced::With(new.clone()),
            // Unknown: applied if it could be (placing it later, or at the end where nothing
            // sees it, covers the abort).
            None if expect == state => Replaced::With(new.clone()),
            None => Replaced::Unchanged,
        },
        Input::Get { .. } | Input::Put { .. } | Input::Append { .. } => Replaced::Unchanged,
    }
}

/// One linearized operation: its call node, how to undo it, the value hash before it, and
/// whether it was forced (a ready read, whose alternatives are not searched).
struct Choice {
    call: usize,
    undo: Undo,
    hash: StrHash,
    forced: bool,
}

/// Whether one key's operations are linearizable; `None` if the deadline passed.
///
/// The state (the key's value) is changed in place and restored from an undo record, and a
/// state seen before is recognised by a fingerprint: the XOR of the linearized operations'
/// random values, and a 122-bit hash of the value. So a step costs what its own value costs,
/// however long the value has grown or however many operations the key has. (A fingerprint
/// collision would prune a state not seen; at 2^-122 per pair it is left out of account.)
/// Reads that can go now go at once ([`ready_read`]), so concurrent reads of one value do
/// not multiply the search.
pub fn check_partition(ops: &[Operation], deadline: Option<Instant>) -> Option<bool> {
    let mut list = List::build(ops);
    let pieces: Vec<(StrHash, StrHash)> = ops
        .iter()
        .map(|o| match &o.input {
            Input::Put { value, .. } | Input::Append { value, .. } => StrHash::of(value),
            Input::Get { .. } | Input::Del { .. } | Input::Incr { .. } | Input::Cas { .. } => Default::default(),
        })
        .collect();
    let marks: Vec<u128> = (0..ops.len()).map(zobrist).collect();
    let mut seen: HashSet<(u128, StrHash), BuildHasherDefault<Fold>> = HashSet::default();
    let (mut state, mut hash, mut linearized) = (String::new(), StrHash::of("").0, 0u128);
    let mut stack: Vec<Choice> = Vec::new();
    let mut entry = list.nodes[HEAD].next;
    let mut steps = 0u64;
    while list.nodes[HEAD].next != NIL {
        steps += 1;
        if steps.is_multiple_of(1024) && deadline.is_some_and(|d| Instant::now() > d) {
            return None;
        }
        let fresh = entry == list.nodes[HEAD].next;
        let forced = if fresh { ready_read(&list, ops, &state) } else { None };
        let node = list.nodes[forced.unwrap_or(entry)];
        let mut failed = !node.is_call;
        if node.is_call {
            let call = forced.unwrap_or(entry);
            let k = node.op;
            let op = &ops[k];
            // The value after the operation, when it is not the hash of a piece: `None` if the
            // operation cannot go here.
            let replaced = replacement(&op.input, op.output.as_deref(), &state);
            let next_hash = match (&op.input, &replaced) {
                (Input::Get { .. }, _) => match &op.output {
                    Some(v) if *v != state => None,
                    _ => Some(hash),
                },
                (Input::Put { .. }, _) => Some(pieces[k].0),
                (Input::Append { .. }, _) => Some(hash.append(pieces[k])),
                (_, Replaced::Impossible) => None,
                (_, Replaced::Unchanged) => Some(hash),
                (_, Replaced::With(v)) => Some(StrHash::of(v).0),
            };
            match next_hash {
                Some(next_hash) if seen.insert((linearized ^ marks[k], next_hash)) => {
                    let undo = match &op.input {
                        Input::Get { .. } => Undo::Nothing,
                        Input::Put { value, .. } => Undo::Value(std::mem::replace(&mut state, value.clone())),
                        Input::Append { value, .. } => {
                            let before = state.len();
                            state.push_str(value);
                            Undo::Length(before)
                        }
                        Input::Del { .. } | Input::Incr { .. } | Input::Cas { .. } => match replaced {
                            Replaced::With(v) => Undo::Value(std::mem::replace(&mut state, v)),
                            _ => Undo::Nothing,
                        },
                    };
                    stack.push(Choice { call, undo, hash, forced: forced.is_some() });
                    hash = next_hash;
                    linearized ^= marks[k];
                    list.lift(call);
                    entry = list.nodes[HEAD].next;
                    continue;
                }
                // A ready read already explored from here: so was everything else.
                _ if forced.is_some() => failed = true,
                _ => entry = node.next,
            }
        }
        if failed {
            // Nothing more can go first here: undo the last choice, and the ones before it
            // while they were forced.
            loop {
                let Some(c) = stack.pop() else { return Some(false) };
                match c.undo {
                    Undo::Nothing => {}
                    Undo::Value(v) => state = v,
                    Undo::Length(n) => state.truncate(n),
                }
                hash = c.hash;
                linearized ^= marks[list.nodes[c.call].op];
                list.unlift(c.call);
                if !c.forced {
                    entry = list.nodes[c.call].next;
                    break;
                }
            }
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_hashes_alike_however_it_was_built() {
        let whole = StrHash::of("[1.2][3.4]x").0;
        let built = StrHash::of("").0.append(StrHash::of("[1.2]")).append(StrHash::of("[3.4]x"));
        let other = StrHash::of("[1.2]").0.append(StrHash::of("[3.4]")).append(StrHash::of("x"));
        assert_eq!((whole, whole), (built, other));
        assert_ne!(StrHash::of("ab").0, StrHash::of("ba").0);
        assert_ne!(StrHash::of("").0, StrHash::of("\0").0);
    }
}
