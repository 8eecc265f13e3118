//! Helpers the node's unit tests share: building messages and driving persists.

use alloc::vec::Vec;

use super::Node;
use crate::config::ConfigBuilder;
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

/// Nodes wired together by instant delivery and instant persistence, for rule-by-rule tests
/// of several nodes. Messages to or from a node in `cut`, or between the two nodes of a pair
/// in `cut_links` (either way), are dropped.
pub(super) struct Cluster {
    pub nodes: alloc::collections::BTreeMap<u64, Node>,
    pub cut: alloc::collections::BTreeSet<u64>,
    pub cut_links: alloc::collections::BTreeSet<(u64, u64)>,
    /// Messages for which this says true are dropped too.
    pub drop: fn(&Message) -> bool,
    /// Every output of every step, with the node that emitted it.
    pub log: Vec<(u64, Output)>,
}

impl Cluster {
    /// Nodes `1..=n` bootstrapped as voters of one cluster, plus `joiners` waiting to join.
    pub(super) fn new(n: u64, joiners: &[u64]) -> Cluster {
        Cluster::with_builder(n, joiners, |b| b)
    }

    /// As [`Cluster::new`], with `tune` applied to the voters' configurations.
    pub(super) fn with_builder(n: u64, joiners: &[u64], tune: fn(ConfigBuilder) -> ConfigBuilder) -> Cluster {
        let mut nodes = alloc::collections::BTreeMap::new();
        for id in 1..=n {
            let cfg = tune(crate::Config::builder(NodeId(id), (1..=n).map(NodeId), id)).build().unwrap();
            nodes.insert(id, Node::new(cfg, crate::io::Restored::default()).unwrap());
        }
        for &id in joiners {
            let cfg = crate::Config::joining(NodeId(id), id).build().unwrap();
            nodes.insert(id, Node::new(cfg, crate::io::Restored::default()).unwrap());
        }
        Cluster { nodes, cut: Default::default(), cut_links: Default::default(), drop: |_| false, log: Vec::new() }
    }

    /// Steps `input` on node `id`, then carries out everything that follows until no
    /// message or persist is left. Returns the outputs of that first node's steps.
    pub(super) fn step(&mut self, id: u64, input: Input) -> Vec<Output> {
        let mut queue = alloc::collections::VecDeque::from([(id, input)]);
        let mut first = Vec::new();
        while let Some((at, input)) = queue.pop_front() {
            let out = self.nodes.get_mut(&at).expect("a node").step(input);
            for o in &out {
                match o {
                    Output::Send(m) if self.delivers(m) => queue.push_back((m.to.0, Input::Message(m.clone()))),
                    Output::Persist(p) => queue.push_back((at, Input::Persisted { up_to: p.seq })),
                    _ => {}
                }
                if at == id {
                    first.push(o.clone());
                }
                self.log.push((at, o.clone()));
            }
        }
        first
    }

    fn delivers(&self, m: &Message) -> bool {
        let (from, to) = (m.from.0, m.to.0);
        let cut = self.cut.contains(&from)
            || self.cut.contains(&to)
            || self.cut_links.contains(&(from, to))
            || self.cut_links.contains(&(to, from));
        !cut && !(self.drop)(m) && self.nodes.contains_key(&m.to.0)
    }

    /// `Campaign` on `id`, and checks that it leads.
    pub(super) fn elect(&mut self, id: u64) {
        let _ = self.step(id, Input::Campaign);
        assert_eq!(self.nodes[&id].view().role, crate::io::Role::Leader, "n{id} leads");
    }

    /// Ticks every node once, `n` times.
    pub(super) fn tick(&mut self, n: usize) {
        for _ in 0..n {
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            for id in ids {
                let _ = self.step(id, Input::Tick);
            }
        }
    }
}
