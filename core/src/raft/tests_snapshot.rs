//! Unit tests of snapshots: the service's compaction, restart from a snapshot and log tail, a
//! follower's install (Figure 13 rule 6) and the assembly of reordered chunks.

use crate::Membership;
use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use super::testkit::{persist_seq, step_durably};
use super::Node;
use crate::io::{Input, Output, Proposal, Restored};
use crate::message::{Message, MessageBody};
use crate::types::{Entry, EntryKind, HardState, Index, NodeId, Snapshot, SnapshotMeta, Term};
use crate::Config;

fn cfg(id: u64, n: u64) -> Config {
    Config::builder(NodeId(id), (1..=n).map(NodeId), 7).build().unwrap()
}

fn command(index: u64, term: u64) -> Entry {
    Entry { term: Term(term), index: Index(index), kind: EntryKind::Command, data: Bytes::from(vec![index as u8]) }
}

/// A single-node leader that committed and applied commands at 2..=`last` after its no-op.
fn single_leader(last: u64) -> Node {
    let mut n = Node::new(cfg(1, 1), Restored::default()).unwrap();
    step_durably(&mut n, Input::Campaign);
    for id in 2..=last {
        step_durably(&mut n, Input::Propose(Proposal { id, data: Bytes::from(vec![id as u8]) }));
    }
    assert_eq!(n.view().applied, Index(last));
    n
}

#[test]
fn a_snapshot_at_a_stale_or_unapplied_index_is_refused_and_counted() {
    let mut n = single_leader(5);
    let out = n.step(Input::Snapshot { index: Index(6), data: Bytes::from_static(b"future") });
    assert!(persist_seq(&out).is_none(), "nothing applied at 6 yet: {out:?}");
    assert_eq!(n.view().ignored.bad_snapshot, 1);

    let out = n.step(Input::Snapshot { index: Index(3), data: Bytes::from_static(b"s3") });
    let Some(Output::Persist(p)) = out.iter().find(|o| matches!(o, Output::Persist(_))) else {
        panic!("the snapshot is persisted: {out:?}")
    };
    let meta = &p.snapshot.as_ref().expect("carries the snapshot").meta;
    assert_eq!((meta.index, meta.term, meta.membership.voters()), (Index(3), Term(1), &[NodeId(1)][..]));
    assert_eq!(n.view().snapshot_index, Index(3));
    assert!(n.log().entry(Index(3)).is_none() && n.log().entry(Index(4)).is_some());

    for stale in [0, 2, 3] {
        let _ = n.step(Input::Snapshot { index: Index(stale), data: Bytes::new() });
    }
    assert_eq!(n.view().ignored.bad_snapshot, 4);
    assert_eq!(n.view().snapshot_index, Index(3));
}

#[test]
fn restart_from_a_snapshot_and_log_tail_continues_after_it() {
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: Index(3),
            term: Term(1),
            membership: Membership::from_voters(vec![NodeId(1), NodeId(2), NodeId(3)]).unwrap(),
            membership_index: Index(0),
        },
        data: Bytes::from_static(b"state@3"),
    };
    let restored = Restored {
        hard_state: HardState { term: Term(2), vote: None, commit: Index(4) },
        snapshot: Some(snapshot),
        entries: vec![command(4, 2), command(5, 2)],
    };
    let mut n = Node::new(cfg(1, 3), restored).unwrap();
    let v = n.view();
    assert_eq!((v.snapshot_index, v.commit, v.applied, v.last_index), (Index(3), Index(4), Index(3), Index(5)));
    // The service restored itself from the snapshot; applies go on from 4.
    let out = n.step(Input::Tick);
    assert!(out.contains(&Output::Apply(vec![command(4, 2)])), "{out:?}");
    assert!(!out.iter().any(|o| matches!(o, Output::ApplySnapshot(_))));
}

#[test]
fn a_restored_log_that_does_not_follow_its_snapshot_is_refused() {
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: Index(3),
            term: Term(1),
            membership: Membership::from_voters(vec![NodeId(1)]).unwrap(),
            membership_index: Index(0),
        },
        data: Bytes::new(),
    };
    let hard_state = HardState { term: Term(1), vote: None, commit: Index(3) };
    let gap = Restored { hard_state, snapshot: Some(snapshot), entries: vec![command(5, 1)] };
    assert!(Node::new(cfg(1, 1), gap).is_err());
}

fn chunk(meta: &SnapshotMeta, offset: u64, data: &'static [u8], done: bool) -> Input {
    Input::Message(Message {
        from: NodeId(2),
        to: NodeId(1),
        term: Term(1),
        body: MessageBody::InstallSnapshot { meta: meta.clone(), offset, data: Bytes::from_static(data), done },
    })
}

fn responses(out: &[Output]) -> Vec<(u64, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(Message { body: MessageBody::SnapshotResponse { next_offset, done, .. }, .. }) => {
                Some((*next_offset, *done))
            }
            _ => None,
        })
        .collect()
}

/// A follower of leader n2 in term 1 holding `entries`, nothing committed.
fn follower(entries: Vec<Entry>) -> Node {
    let hard_state = HardState { term: Term(1), vote: Some(NodeId(2)), commit: Index(0) };
    Node::new(cfg(1, 3), Restored { hard_state, snapshot: None, entries }).unwrap()
}

#[test]
fn a_follower_holding_the_snapshots_last_entry_keeps_its_log_after_it() {
    let mut n = follower((1..=5).map(|i| command(i, 1)).collect());
    let meta = SnapshotMeta {
        index: Index(3),
        term: Term(1),
        membership: Membership::from_voters(vec![NodeId(1), NodeId(2), NodeId(3)]).unwrap(),
        membership_index: Index(0),
    };
    let out = n.step(chunk(&meta, 0, b"state@3", true));
    assert!(responses(&out).is_empty(), "done is said only once the snapshot is durable: {out:?}");
    let Some(Output::Persist(p)) = out.iter().find(|o| matches!(o, Output::Persist(_))) else { panic!("{out:?}") };
    assert_eq!(p.truncate_from, None, "entries 4 and 5 are kept");
    let out = n.step(Input::Persisted { up_to: p.seq });
    assert_eq!(responses(&out), vec![(7, true)]);
    assert!(out.iter().any(|o| matches!(o, Output::ApplySnapshot(s) if s.data == "state@3")));
    let v = n.view();
    assert_eq!((v.snapshot_index, v.commit, v.last_index), (Index(3), Index(3), Index(5)));
}

#[test]
fn a_follower_whose_log_conflicts_with_the_snapshot_discards_it() {
    let mut n = follower(vec![command(1, 1)]);
    let meta = SnapshotMeta {
        index: Index(3),
        term: Term(1),
        membership: Membership::from_voters(vec![NodeId(1), NodeId(2), NodeId(3)]).unwrap(),
        membership_index: Index(0),
    };
    step_durably(&mut n, chunk(&meta, 0, b"state@3", true));
    let v = n.view();
    assert_eq!((v.snapshot_index, v.commit, v.last_index, v.applied), (Index(3), Index(3), Index(3), Index(3)));
}

#[test]
fn reordered_chunks_are_assembled_without_a_resend() {
    let mut n = follower(vec![]);
    let meta = SnapshotMeta {
        index: Index(9),
        term: Term(1),
        membership: Membership::from_voters(vec![NodeId(1), NodeId(2), NodeId(3)]).unwrap(),
        membership_index: Index(0),
    };
    // Chunks arrive 2, 0, 0 again (a duplicate), then 1.
    let out = n.step(chunk(&meta, 4, b"cd", true));
    assert_eq!(responses(&out), vec![(0, false)]);
    let out = n.step(chunk(&meta, 0, b"ab", false));
    assert_eq!(responses(&out), vec![(2, false)]);
    let out = n.step(chunk(&meta, 0, b"ab", false));
    assert_eq!(responses(&out), vec![(2, false)]);
    let out = step_durably(&mut n, chunk(&meta, 2, b"__", false));
    assert_eq!(responses(&out), vec![(6, true)]);
    assert!(out.iter().any(|o| matches!(o, Output::ApplySnapshot(s) if s.data == "ab__cd")), "{out:?}");
}

#[test]
fn a_late_chunk_of_a_replaced_transfer_is_ignored() {
    let mut n = follower(vec![]);
    let voters = vec![NodeId(1), NodeId(2), NodeId(3)];
    let old = SnapshotMeta {
        index: Index(5),
        term: Term(1),
        membership: Membership::from_voters(voters.clone()).unwrap(),
        membership_index: Index(0),
    };
    let new = SnapshotMeta {
        index: Index(8),
        term: Term(1),
        membership: Membership::from_voters(voters).unwrap(),
        membership_index: Index(0),
    };
    let _ = n.step(chunk(&old, 0, b"old", false));
    let _ = n.step(chunk(&new, 0, b"new", false));
    let out = n.step(chunk(&old, 3, b"OLD", true));
    assert!(responses(&out).is_empty());
    assert_eq!(n.view().ignored.stale_chunk, 1);
    let out = step_durably(&mut n, chunk(&new, 3, b"NEW", true));
    assert!(out.iter().any(|o| matches!(o, Output::ApplySnapshot(s) if s.data == "newNEW")), "{out:?}");
}

/// A follower of leader n2 in term 1 that takes snapshots of at most `max` bytes, and the
/// meta of a snapshot n2 sends it.
fn bounded_follower(max: u64) -> (Node, SnapshotMeta) {
    let hard_state = HardState { term: Term(1), vote: Some(NodeId(2)), commit: Index(0) };
    let cfg = Config::builder(NodeId(1), (1..=3).map(NodeId), 7).max_snapshot_bytes(max).build().unwrap();
    let n = Node::new(cfg, Restored { hard_state, snapshot: None, entries: vec![] }).unwrap();
    (
        n,
        SnapshotMeta {
            index: Index(9),
            term: Term(1),
            membership: Membership::from_voters(vec![NodeId(1), NodeId(2), NodeId(3)]).unwrap(),
            membership_index: Index(0),
        },
    )
}

#[test]
fn a_snapshot_transfer_over_the_limit_is_dropped_not_buffered() {
    let (mut n, meta) = bounded_follower(5);
    assert_eq!(responses(&n.step(chunk(&meta, 0, b"abcd", false))), vec![(4, false)]);
    // The next chunk would make it 6 bytes: the transfer is dropped, no progress answered
    // (the refusal is the next test's).
    assert!(responses(&n.step(chunk(&meta, 4, b"ef", true))).is_empty());
    assert_eq!(n.view().ignored.too_large_snapshot, 1);
    // A chunk far past the limit is not held either (however sparse), and nothing installs.
    let _ = n.step(chunk(&meta, 1 << 40, b"x", true));
    assert_eq!(n.view().ignored.too_large_snapshot, 2);
    assert_eq!(n.view().snapshot_index, Index(0));
}

/// Node 1 leading nodes 2 and 3 in term 1 (node 2 voted), commands 2..=5 committed with node
/// 2 and applied, the log compacted at 5. Returns the node and its last output.
fn compacted_leader_of_three() -> (Node, Vec<Output>) {
    let cfg = Config::builder(NodeId(1), (1..=3).map(NodeId), 7).pre_vote(false).build().unwrap();
    let mut n = Node::new(cfg, Restored::default()).unwrap();
    step_durably(&mut n, Input::Campaign);
    let term = n.view().term;
    let vote = Message { from: NodeId(2), to: NodeId(1), term, body: MessageBody::VoteResponse { granted: true } };
    step_durably(&mut n, Input::Message(vote));
    for id in 2..=5 {
        step_durably(&mut n, Input::Propose(Proposal { id, data: Bytes::from(vec![id as u8]) }));
    }
    let ack = MessageBody::AppendResponse(crate::message::AppendResult::Success { match_index: Index(5) });
    step_durably(&mut n, Input::Message(Message { from: NodeId(2), to: NodeId(1), term, body: ack }));
    assert_eq!(n.view().applied, Index(5));
    let out = step_durably(&mut n, Input::Snapshot { index: Index(5), data: Bytes::from_static(b"state") });
    assert_eq!(n.view().snapshot_index, Index(5));
    (n, out)
}

fn snapshot_chunks_to(out: &[Output], to: u64) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Send(m) if m.to == NodeId(to) && matches!(m.body, MessageBody::InstallSnapshot { .. })))
        .count()
}

#[test]
fn a_follower_refusing_an_oversized_snapshot_tells_the_leader_which_stops_sending_it() {
    // The follower's side: a chunk past its bound is answered with a refusal.
    let (mut f, meta) = bounded_follower(3);
    let out = f.step(chunk(&meta, 0, b"state", true));
    let refusal = out.iter().find_map(|o| match o {
        Output::Send(m) if matches!(m.body, MessageBody::SnapshotRefused { .. }) => Some(m.clone()),
        _ => None,
    });
    let refusal = refusal.expect("the refusal is sent");
    assert_eq!(
        (refusal.to, &refusal.body),
        (NodeId(2), &MessageBody::SnapshotRefused { index: Index(9), max_bytes: 3 })
    );

    // The leader's side: node 3 lost its log, so it needs the snapshot.
    let (mut n, out) = compacted_leader_of_three();
    let term = n.view().term;
    let prev = out
        .iter()
        .rev()
        .find_map(|o| match o {
            Output::Send(Message { to: NodeId(3), body: MessageBody::Append { prev_index, .. }, .. }) => {
                Some(*prev_index)
            }
            _ => None,
        })
        .unwrap_or(Index(0));
    let reject = crate::message::AppendResult::Reject {
        rejected_prev: prev,
        conflict_term: None,
        conflict_first: Index(0),
        last_index: Index(0),
    };
    let from3 = |body| Input::Message(Message { from: NodeId(3), to: NodeId(1), term, body });
    let mut out = n.step(from3(MessageBody::AppendResponse(reject)));
    for _ in 0..20 {
        if snapshot_chunks_to(&out, 3) > 0 {
            break;
        }
        out = n.step(Input::Tick);
        out.extend(n.step(from3(MessageBody::HeartbeatResponse { read_round: 0, sent_at: 0 })));
    }
    assert!(snapshot_chunks_to(&out, 3) > 0, "the leader streams its snapshot to node 3");
    let _ = n.step(from3(MessageBody::SnapshotRefused { index: Index(5), max_bytes: 3 }));
    assert_eq!(n.progress(NodeId(3)).unwrap().snapshot_refused, Some((Index(5), 3)));
    // Heartbeats go on, the refused snapshot does not.
    let mut resent = 0;
    for _ in 0..50 {
        resent += snapshot_chunks_to(&n.step(Input::Tick), 3);
        resent += snapshot_chunks_to(&n.step(from3(MessageBody::HeartbeatResponse { read_round: 0, sent_at: 0 })), 3);
    }
    assert_eq!(resent, 0, "a refused snapshot is not streamed again");
    // A newer snapshot is offered.
    step_durably(&mut n, Input::Propose(Proposal { id: 6, data: Bytes::from_static(b"6") }));
    let ack = MessageBody::AppendResponse(crate::message::AppendResult::Success { match_index: Index(6) });
    let _ = step_durably(&mut n, Input::Message(Message { from: NodeId(2), to: NodeId(1), term, body: ack }));
    let _ = step_durably(&mut n, Input::Snapshot { index: Index(6), data: Bytes::from_static(b"st") });
    let mut offered = 0;
    for _ in 0..20 {
        offered += snapshot_chunks_to(&n.step(Input::Tick), 3);
        offered += snapshot_chunks_to(&n.step(from3(MessageBody::HeartbeatResponse { read_round: 0, sent_at: 0 })), 3);
    }
    assert!(offered > 0, "the next snapshot is offered again");
    // Refused too, it is offered again after a while: the follower's bound may have been
    // raised.
    let _ = n.step(from3(MessageBody::SnapshotRefused { index: Index(6), max_bytes: 3 }));
    let mut beats = 0;
    loop {
        let out = n.step(Input::Tick);
        beats += out
            .iter()
            .filter(|o| matches!(o, Output::Send(m) if m.to == NodeId(3) && matches!(m.body, MessageBody::Heartbeat { .. })))
            .count();
        let out2 = n.step(from3(MessageBody::HeartbeatResponse { read_round: 0, sent_at: 0 }));
        if snapshot_chunks_to(&out, 3) + snapshot_chunks_to(&out2, 3) > 0 {
            break;
        }
        assert!(beats <= super::progress::REFUSAL_BEATS as usize + 1, "never offered again");
    }
    assert!(beats >= super::progress::REFUSAL_BEATS as usize, "offered again after only {beats} heartbeats");
}

#[test]
fn compacted_entries_are_freed_a_bounded_number_per_tick() {
    let mut n = single_leader(10_000);
    let _ = n.step(Input::Snapshot { index: Index(10_000), data: Bytes::from_static(b"s") });
    assert_eq!(n.view().snapshot_index, Index(10_000));
    assert_eq!(n.log.garbage_len(), 10_000, "the compacted entries wait to be freed");
    assert_eq!(n.ticks_until_due(), 1, "the driver ticks soon to free them");
    // Other steps free one per entry appended (a driver's round may take any number of
    // them, so a step's freeing is bounded by its own work).
    for id in 1..=20 {
        step_durably(&mut n, Input::Propose(Proposal { id, data: Bytes::from_static(b"x") }));
    }
    assert_eq!(n.log.garbage_len(), 10_000 - 20);
    let mut ticks = 0;
    while n.log.garbage_len() > 0 {
        let before = n.log.garbage_len();
        let _ = n.step(Input::Tick);
        let freed = before - n.log.garbage_len();
        assert!(freed <= super::GARBAGE_PER_TICK.max(before / 16), "{freed} of {before} at once");
        ticks += 1;
    }
    assert_eq!(ticks, 9_980usize.div_ceil(super::GARBAGE_PER_TICK));
}

#[test]
fn the_log_gives_back_the_buffers_of_a_spike_in_its_length() {
    let mut n = single_leader(100_000);
    let _ = n.step(Input::Snapshot { index: Index(100_000), data: Bytes::from_static(b"s") });
    while n.log.garbage_len() > 0 {
        let _ = n.step(Input::Tick);
    }
    assert!(n.log.buffers_capacity() >= 100_000, "the spike's buffer is kept for the next entries");
    // The log now stays short: the next compactions let the big buffer go.
    for round in 0..3u64 {
        for id in 0..100 {
            step_durably(&mut n, Input::Propose(Proposal { id: 1_000_000 + round * 1000 + id, data: Bytes::new() }));
        }
        let applied = n.view().applied;
        let _ = n.step(Input::Snapshot { index: applied, data: Bytes::from_static(b"s") });
        while n.log.garbage_len() > 0 {
            let _ = n.step(Input::Tick);
        }
    }
    assert!(n.log.buffers_capacity() <= 4 * 8192, "{} entries of capacity held", n.log.buffers_capacity());
}

#[test]
fn without_ticks_the_compacted_backlog_stays_within_one_compaction() {
    // A driver that ticks rarely (a benchmark, a busy loop): appends free as they go.
    let mut n = single_leader(1_000);
    for round in 1..=20u64 {
        for id in 0..1_000 {
            step_durably(&mut n, Input::Propose(Proposal { id: round * 10_000 + id, data: Bytes::from_static(b"x") }));
        }
        let applied = n.view().applied;
        let _ = n.step(Input::Snapshot { index: applied, data: Bytes::from_static(b"s") });
        // At most the largest compaction (the first, of 2,000) waits; it no longer grows.
        assert!(n.log.garbage_len() <= 2_000, "round {round}: {} compacted entries wait", n.log.garbage_len());
    }
}

#[test]
fn a_large_backlog_of_compacted_entries_shrinks_geometrically() {
    let mut n = single_leader(200_000);
    let _ = n.step(Input::Snapshot { index: Index(200_000), data: Bytes::from_static(b"s") });
    let _ = n.step(Input::Tick);
    assert_eq!(n.log.garbage_len(), 200_000 - 200_000 / 16, "a sixteenth of a large backlog per tick");
    let mut ticks = 1;
    while n.log.garbage_len() > 0 {
        let _ = n.step(Input::Tick);
        ticks += 1;
    }
    assert!(ticks < 60, "{ticks} ticks to free 200,000 entries");
}

#[test]
fn a_long_committed_log_is_applied_a_bounded_batch_per_step() {
    use crate::raft::log::MAX_APPLY_ENTRIES;
    let total = MAX_APPLY_ENTRIES as u64 * 2 + 10;
    let entries: Vec<Entry> = (1..=total).map(|i| command(i, 1)).collect();
    let hard_state = HardState { term: Term(1), vote: Some(NodeId(1)), commit: Index(total) };
    let mut n = Node::new(cfg(1, 3), Restored { hard_state, snapshot: None, entries }).unwrap();
    let mut batches = Vec::new();
    for _ in 0..10 {
        assert!(n.ticks_until_due() == 1 || n.view().applied == Index(total));
        for o in n.step(Input::Tick) {
            if let Output::Apply(e) = o {
                batches.push(e.len());
            }
        }
    }
    assert_eq!(batches, vec![MAX_APPLY_ENTRIES, MAX_APPLY_ENTRIES, 10]);
    assert_eq!(n.view().applied, Index(total));
}
