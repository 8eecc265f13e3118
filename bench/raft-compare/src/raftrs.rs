//! raft-rs 0.7's 3 nodes in the harness (`RawNode` on `MemStorage`, the Ready loop of its
//! documentation).

use std::collections::VecDeque;

use raft::eraftpb::{Entry, EntryType, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};

use crate::{Harness, StateMachine};

struct Member {
    node: RawNode<MemStorage>,
    storage: MemStorage,
    sm: StateMachine,
    inbox: VecDeque<Message>,
    last_applied: u64,
}

pub struct RaftRs {
    members: Vec<Member>,
    /// Messages produced, to route after the node's turn.
    outbox: Vec<Message>,
}

fn apply(m: &mut Member, entries: Vec<Entry>) {
    for e in entries {
        m.last_applied = e.index;
        // A new leader's empty entry, and configuration changes, are not commands.
        if e.data.is_empty() || e.get_entry_type() != EntryType::EntryNormal {
            continue;
        }
        m.sm.apply(&e.data);
    }
    if m.sm.compaction_due() {
        m.sm.compacted_at = m.sm.applied;
        m.storage.wl().compact(m.last_applied).expect("compact what was applied");
    }
}

impl RaftRs {
    /// Handles node `i`'s Ready, if any: messages out, entries applied and stored.
    fn ready(&mut self, i: usize) -> bool {
        let m = &mut self.members[i];
        if !m.node.has_ready() {
            return false;
        }
        let mut rd = m.node.ready();
        self.outbox.extend(rd.take_messages());
        assert!(rd.snapshot().data.is_empty() && rd.snapshot().get_metadata().index == 0, "no snapshot here");
        apply(m, rd.take_committed_entries());
        if !rd.entries().is_empty() {
            m.storage.wl().append(rd.entries()).expect("append");
        }
        if let Some(hs) = rd.hs() {
            m.storage.wl().set_hardstate(hs.clone());
        }
        self.outbox.extend(rd.take_persisted_messages());
        let mut light = m.node.advance(rd);
        if let Some(commit) = light.commit_index() {
            m.storage.wl().mut_hard_state().set_commit(commit);
        }
        self.outbox.extend(light.take_messages());
        apply(m, light.take_committed_entries());
        m.node.advance_apply();
        for msg in self.outbox.drain(..) {
            let to = msg.to as usize - 1;
            self.members[to].inbox.push_back(msg);
        }
        true
    }
}

impl Harness for RaftRs {
    fn start() -> RaftRs {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let members = (1..=3u64)
            .map(|id| {
                let storage = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
                let cfg = Config {
                    id,
                    election_tick: 10,
                    heartbeat_tick: 3,
                    max_size_per_msg: 1 << 20,
                    max_inflight_msgs: 256,
                    batch_append: true,
                    ..Default::default()
                };
                Member {
                    node: RawNode::new(&cfg, storage.clone(), &logger).expect("valid"),
                    storage,
                    sm: StateMachine::default(),
                    inbox: VecDeque::new(),
                    last_applied: 0,
                }
            })
            .collect();
        let mut r = RaftRs { members, outbox: Vec::new() };
        r.members[0].node.campaign().expect("campaign");
        while r.round() {}
        assert_eq!(r.members[0].node.raft.state, StateRole::Leader);
        r
    }

    fn propose(&mut self, payloads: Vec<Vec<u8>>) {
        // One proposal message carrying the whole batch (what `propose` builds for one).
        let mut m = Message::default();
        m.set_msg_type(raft::eraftpb::MessageType::MsgPropose);
        m.from = 1;
        m.to = 1;
        m.entries = payloads
            .into_iter()
            .map(|p| {
                let mut e = Entry::default();
                e.data = p.into();
                e
            })
            .collect();
        self.members[0].node.step(m).expect("the leader takes it");
        self.ready(0);
    }

    fn round(&mut self) -> bool {
        let inboxes: Vec<VecDeque<Message>> = self.members.iter_mut().map(|m| std::mem::take(&mut m.inbox)).collect();
        let mut progressed = false;
        for (i, inbox) in inboxes.into_iter().enumerate() {
            for msg in inbox {
                self.members[i].node.step(msg).expect("step");
                progressed = true;
            }
            progressed |= self.ready(i);
        }
        progressed
    }

    fn applied(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.sm.applied).collect()
    }

    fn tick(&mut self) {
        for m in &mut self.members {
            m.node.tick();
        }
    }
}
