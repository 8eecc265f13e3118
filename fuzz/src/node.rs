//! The node target: node 1 of a three-node cluster, driven through `step` by forged peers
//! (random messages, and mutations of what the node itself sent: reflected, re-termed,
//! re-indexed) and by its local clients and storage (proposals, reads, transfers, snapshots,
//! `Persisted` acknowledgements true and false, snapshots read back whether asked for or
//! not). After every step the `View` invariants must hold; nothing may panic.

use std::collections::BTreeMap;

use bytes::Bytes;
use skiff_core::{
    AppendResult, ChangeStep, Config, Entry, EntryKind, Index, Input, JointPolicy, Membership, Message, MessageBody,
    Node, NodeId, Output, Proposal, Restored, Snapshot, SnapshotMeta, Term, View,
};

use crate::mutate::Rng;

/// Steps per case.
const STEPS: usize = 200;

fn near(rng: &mut Rng, around: u64, spread: u64) -> u64 {
    (around + rng.below(2 * spread + 1)).saturating_sub(spread)
}

/// A configuration of two to four voters out of n1..n5, some learners and, now and then,
/// outgoing voters; sometimes empty (which no leader sends).
fn membership(rng: &mut Rng) -> Membership {
    fn pick(rng: &mut Rng, n: u64) -> Vec<NodeId> {
        (0..n).map(|_| NodeId(1 + rng.below(5))).collect()
    }
    let (nv, nl) = (2 + rng.below(3), rng.below(2));
    let (voters, learners) = (pick(rng, nv), pick(rng, nl));
    let m = Membership::new(voters, learners, BTreeMap::new()).unwrap_or_else(|_| Membership::empty());
    if rng.below(8) == 0 {
        Membership::empty()
    } else if rng.below(4) == 0 && !m.is_empty() {
        let n = 1 + rng.below(3);
        let out = pick(rng, n);
        m.apply(&out.iter().map(|&node| ChangeStep::Remove { node }).collect::<Vec<_>>(), JointPolicy::Always)
            .unwrap_or(m)
    } else {
        m
    }
}

fn entries(rng: &mut Rng, after: Index, term: u64) -> Vec<Entry> {
    let mut t = term.saturating_sub(rng.below(3));
    (1..=rng.below(4))
        .map(|k| {
            t += rng.below(2);
            let (kind, data) = match rng.below(8) {
                0 | 1 => (EntryKind::Noop, Bytes::new()),
                // A configuration: valid, or bytes that do not decode as one.
                2 if rng.below(2) == 0 => {
                    (EntryKind::Config, Bytes::from(postcard::to_allocvec(&membership(rng)).expect("encodes")))
                }
                2 => (EntryKind::Config, Bytes::from(vec![k as u8; rng.below(8) as usize])),
                _ => (EntryKind::Command, Bytes::from(vec![k as u8; rng.below(8) as usize])),
            };
            Entry { index: Index(after.0 + k), term: Term(t), kind, data }
        })
        .collect()
}

/// A message of any kind, with numbers near the node's own so that many pass its checks.
fn forged(rng: &mut Rng, v: &View) -> Message {
    let (term, last) = (v.term.0, v.last_index.0);
    let index = |rng: &mut Rng| Index(near(rng, last, 3));
    // Mostly the node's own term, so that it can lead and follow for a while.
    let t = |rng: &mut Rng| {
        Term(match rng.below(20) {
            0..=13 => term,
            14..=16 => term + 1,
            17 | 18 => term.saturating_sub(1 + rng.below(2)),
            _ => term + 2,
        })
    };
    let body = match rng.below(13) {
        0 => MessageBody::PreVote { last_index: index(rng), last_term: t(rng) },
        1 => MessageBody::PreVoteResponse { granted: rng.below(2) == 0 },
        2 => MessageBody::Vote { last_index: index(rng), last_term: t(rng), transfer: rng.below(4) == 0 },
        3 => MessageBody::VoteResponse { granted: rng.below(3) != 0 },
        4 | 5 => {
            let prev = index(rng);
            let es = entries(rng, prev, term);
            MessageBody::Append { prev_index: prev, prev_term: t(rng), entries: es, commit: index(rng) }
        }
        6 => MessageBody::AppendResponse(match rng.below(3) {
            0 => AppendResult::Success { match_index: index(rng) },
            1 => AppendResult::Reject {
                rejected_prev: index(rng),
                conflict_term: (rng.below(2) == 0).then(|| t(rng)),
                conflict_first: index(rng),
                last_index: index(rng),
            },
            _ => AppendResult::StaleTerm,
        }),
        7 => MessageBody::Heartbeat { commit: index(rng), read_round: rng.below(5), sent_at: rng.below(50) },
        8 => MessageBody::HeartbeatResponse { read_round: rng.below(5), sent_at: rng.below(50) },
        9 => MessageBody::TimeoutNow,
        10 => {
            let meta_index = index(rng);
            MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    index: meta_index,
                    term: t(rng),
                    membership: membership(rng),
                    membership_index: Index(near(rng, meta_index.0, 2)),
                },
                offset: rng.below(3) * 4,
                data: Bytes::from(vec![9u8; rng.below(6) as usize]),
                done: rng.below(2) == 0,
            }
        }
        11 => MessageBody::SnapshotResponse { index: index(rng), next_offset: rng.below(10), done: rng.below(2) == 0 },
        _ => MessageBody::SnapshotRefused { index: index(rng), max_bytes: rng.below(10) },
    };
    let from = if rng.below(10) == 0 { NodeId(rng.below(6)) } else { NodeId(2 + rng.below(2)) };
    let to = if rng.below(10) == 0 { NodeId(rng.below(4)) } else { NodeId(1) };
    Message { from, to, term: t(rng), body }
}

/// A message the node sent, turned back on it: reflected as if from its addressee, with its
/// term or indexes shifted.
fn reflected(rng: &mut Rng, sent: &Message) -> Message {
    let mut m = sent.clone();
    std::mem::swap(&mut m.from, &mut m.to);
    let shift = |rng: &mut Rng, x: u64| near(rng, x, 2);
    if rng.below(2) == 0 {
        m.term = Term(shift(rng, m.term.0));
    }
    match &mut m.body {
        MessageBody::Append { prev_index, commit, .. } => {
            *prev_index = Index(shift(rng, prev_index.0));
            *commit = Index(shift(rng, commit.0));
        }
        MessageBody::Heartbeat { commit, .. } => *commit = Index(shift(rng, commit.0)),
        MessageBody::InstallSnapshot { offset, .. } => *offset = shift(rng, *offset),
        _ => {}
    }
    m
}

fn check(v: &View) -> Result<(), String> {
    if v.applied > v.commit {
        return Err(format!("applied {} above commit {}", v.applied.0, v.commit.0));
    }
    if v.applied > v.durable {
        return Err(format!("applied {} above durable {}", v.applied.0, v.durable.0));
    }
    Ok(())
}

/// One case: a fresh node and [`STEPS`] hostile steps.
pub fn run(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    // Snapshot loads from a stream of their own: the main stream's cases stay as they were.
    let mut loads = Rng::new(seed ^ 0x5A0B_D15C_0000_0005);
    let cfg = Config::builder(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)], seed)
        .pre_vote(rng.below(2) == 0)
        .check_quorum(rng.below(2) == 0)
        .snapshots_in_storage(loads.below(2) == 0)
        .max_entry_bytes(6)
        .build()
        .map_err(|e| format!("{e:?}"))?;
    let mut node = Node::new(cfg, Restored::default()).map_err(|e| e.to_string())?;
    let (mut issued, mut sent): (u64, Vec<Message>) = (0, Vec::new());
    for step in 0..STEPS {
        let v = node.view();
        let input = match rng.below(20) {
            0..=6 => Input::Message(forged(&mut rng, &v)),
            7..=9 if !sent.is_empty() => {
                let m = &sent[rng.below(sent.len() as u64) as usize];
                Input::Message(reflected(&mut rng, m))
            }
            10..=12 => Input::Persisted { up_to: if rng.below(8) == 0 { rng.below(issued + 3) } else { issued } },
            13 => Input::Tick,
            14 => Input::Campaign,
            15 => Input::Propose(Proposal { id: step as u64, data: Bytes::from(vec![1u8; rng.below(9) as usize]) }),
            16 => Input::Read { id: step as u64 },
            17 => Input::TransferLeadership { to: NodeId(rng.below(5)) },
            18 => Input::Snapshot { index: Index(near(&mut rng, v.applied.0, 2)), data: Bytes::from_static(b"s") },
            _ => {
                for _ in 0..rng.below(25) {
                    let _ = node.step(Input::Tick);
                }
                Input::Tick
            }
        };
        if loads.below(16) == 0 {
            // A read-back nobody asked for, or of a snapshot the node does not hold.
            let meta = SnapshotMeta {
                index: Index(near(&mut loads, v.applied.0, 3)),
                term: Term(loads.below(4)),
                membership: v.membership.clone(),
                membership_index: Index(loads.below(3)),
            };
            let loaded = (loads.below(3) != 0).then(|| Snapshot { meta, data: Bytes::from_static(b"s") });
            for out in node.step(Input::SnapshotLoaded(loaded)) {
                if let Output::Persist(p) = out {
                    issued = issued.max(p.seq);
                }
            }
        }
        for out in node.step(input) {
            match out {
                Output::Persist(p) => issued = issued.max(p.seq),
                Output::Send(m) => {
                    if sent.len() >= 32 {
                        sent.remove(0);
                    }
                    sent.push(m);
                }
                _ => {}
            }
        }
        check(&node.view()).map_err(|e| format!("after step {step}: {e}"))?;
    }
    Ok(())
}
