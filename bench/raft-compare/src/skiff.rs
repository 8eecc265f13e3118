//! skiff-core's 3 nodes in the harness.

use std::collections::VecDeque;

use bytes::Bytes;
use skiff_core::{Config, EntryKind, Index, Input, Message, Node, NodeId, Output, Proposal, Restored, Role};

use crate::{Harness, StateMachine};

struct Member {
    node: Node,
    sm: StateMachine,
    inbox: VecDeque<Message>,
    /// The highest persist not yet acknowledged.
    unacked: Option<u64>,
    /// What was persisted, kept as raft-rs's `MemStorage` keeps its log (truncated where a
    /// record says, compacted with the log).
    stored: Vec<skiff_core::Entry>,
    last_applied: Index,
}

pub struct Skiff {
    members: Vec<Member>,
    out: Vec<Output>,
    next_id: u64,
}

impl Skiff {
    fn step(&mut self, i: usize, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        self.members[i].node.step_into(input, &mut out);
        let mut compact = None;
        for o in out.drain(..) {
            match o {
                Output::Send(m) => {
                    let to = m.to.0 as usize - 1;
                    self.members[to].inbox.push_back(m);
                }
                Output::Persist(p) => {
                    let m = &mut self.members[i];
                    m.unacked = Some(p.seq);
                    if let Some(from) = p.truncate_from {
                        m.stored.retain(|e| e.index < from);
                    }
                    if let Some(s) = &p.snapshot {
                        m.stored.retain(|e| e.index > s.meta.index);
                    }
                    m.stored.extend(p.entries);
                }
                Output::Apply(entries) => {
                    let m = &mut self.members[i];
                    for e in &entries {
                        if e.kind == EntryKind::Command {
                            m.sm.apply(&e.data);
                        }
                        m.last_applied = e.index;
                    }
                    if m.sm.compaction_due() {
                        m.sm.compacted_at = m.sm.applied;
                        compact = Some(m.last_applied);
                    }
                }
                Output::ApplySnapshot(_) => panic!("no node falls behind a compaction here"),
                Output::ProposalDropped { id, reason } => panic!("proposal {id} dropped: {reason:?}"),
                _ => {}
            }
        }
        self.out = out;
        if let Some(index) = compact {
            self.step(i, Input::Snapshot { index, data: Bytes::new() });
        }
    }
}

impl Harness for Skiff {
    fn start() -> Skiff {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let members = ids
            .iter()
            .map(|id| {
                let cfg = Config::builder(*id, ids, id.0)
                    .max_inflight_msgs(256)
                    .max_bytes_per_msg(1 << 20)
                    .max_entries_per_msg(1 << 20)
                    .max_inflight_bytes(1 << 40)
                    .build()
                    .expect("valid");
                Member {
                    node: Node::new(cfg, Restored::default()).expect("fresh"),
                    sm: StateMachine::default(),
                    inbox: VecDeque::new(),
                    unacked: None,
                    stored: Vec::new(),
                    last_applied: Index(0),
                }
            })
            .collect();
        let mut s = Skiff { members, out: Vec::new(), next_id: 0 };
        s.step(0, Input::Campaign);
        while s.round() {}
        assert_eq!(s.members[0].node.view().role, Role::Leader);
        s
    }

    fn propose(&mut self, payloads: Vec<Vec<u8>>) {
        let mut ps: Vec<Proposal> = payloads
            .into_iter()
            .map(|p| {
                self.next_id += 1;
                Proposal { id: self.next_id, data: Bytes::from(p) }
            })
            .collect();
        let input = if ps.len() == 1 { Input::Propose(ps.pop().expect("one")) } else { Input::ProposeBatch(ps) };
        self.step(0, input);
    }

    fn round(&mut self) -> bool {
        let inboxes: Vec<VecDeque<Message>> = self.members.iter_mut().map(|m| std::mem::take(&mut m.inbox)).collect();
        let mut progressed = false;
        for (i, inbox) in inboxes.into_iter().enumerate() {
            for m in inbox {
                self.step(i, Input::Message(m));
                progressed = true;
            }
            if let Some(seq) = self.members[i].unacked.take() {
                self.step(i, Input::Persisted { up_to: seq });
                progressed = true;
            }
        }
        progressed
    }

    fn applied(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.sm.applied).collect()
    }

    fn tick(&mut self) {
        for i in 0..self.members.len() {
            self.step(i, Input::Tick);
        }
    }
}
