//! Helpers the node's unit tests share: building messages and driving persists.

use alloc::vec::Vec;

use super::Node;
use crate::io::{Input, Output};
use crate::message::{Message, MessageBody};
use crate::types::{Entry, Index, NodeId, SnapshotMeta, Term};

/// The sequence number of the first `Persist` in `out`.
pub(super) fn persist_seq(out: &[Output]) -> Option<u64> {
    out.iter().find_map(|o| if let Output::Persist(p) = o { Some(p.seq) } else { None })
}

/// Steps `input`, then acknowledges every persist it caused (and those caused by that).
pub(super) fn step_durably(n: &mut Node, input: Input) -> Vec<Output> {
    let mut out = n.step(input);
    let mut all = Vec::new();
    while let Some(seq) = persist_seq(&out) {
        all.append(&mut out);
        out = n.step(Input::Persisted { up_to: seq });
    }
    all.append(&mut out);
    all
}

/// An append from `from` to `to` in `term`, after `prev` = (index, term).
pub(super) fn append(from: u64, to: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Input {
    let body =
        MessageBody::Append { prev_index: Index(prev.0), prev_term: Term(prev.1), entries, commit: Index(commit) };
    Input::Message(Message { from: NodeId(from), to: NodeId(to), term: Term(term), body })
}

/// A whole snapshot in one chunk, from `from` to `to` in `term`.
pub(super) fn install(from: u64, to: u64, term: u64, meta: SnapshotMeta, data: &'static [u8]) -> Input {
    let body = MessageBody::InstallSnapshot { meta, offset: 0, data: bytes::Bytes::from_static(data), done: true };
    Input::Message(Message { from: NodeId(from), to: NodeId(to), term: Term(term), body })
}
