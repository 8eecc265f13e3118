//! The search over one key's history.

use std::collections::HashSet;
use std::time::Instant;

use super::{step, Operation};

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

/// Whether one key's operations are linearizable; `None` if the deadline passed.
pub fn check_partition(ops: &[Operation], deadline: Option<Instant>) -> Option<bool> {
    let mut list = List::build(ops);
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, String)> = HashSet::new();
    let mut state = String::new();
    // (call node, state before it) for every operation linearized so far.
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut entry = list.nodes[HEAD].next;
    let mut steps = 0u64;
    while list.nodes[HEAD].next != NIL {
        steps += 1;
        // Often enough that a step which copies a long value (a key with many appends) cannot
        // carry the search far past its deadline.
        if steps.is_multiple_of(64) && deadline.is_some_and(|d| Instant::now() > d) {
            return None;
        }
        let node = list.nodes[entry];
        if node.is_call {
            let op = &ops[node.op];
            if let Some(next_state) = step(&state, &op.input, &op.output) {
                let bit = (node.op / 64, 1u64 << (node.op % 64));
                linearized[bit.0] |= bit.1;
                if seen.insert((linearized.clone(), next_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    list.lift(entry);
                    entry = list.nodes[HEAD].next;
                    continue;
                }
                linearized[bit.0] &= !bit.1;
            }
            entry = node.next;
        } else {
            // A return before any pending call could go first: undo the last choice.
            let Some((call, before)) = stack.pop() else { return Some(false) };
            state = before;
            let op = list.nodes[call].op;
            linearized[op / 64] &= !(1u64 << (op % 64));
            list.unlift(call);
            entry = list.nodes[call].next;
        }
    }
    Some(true)
}
