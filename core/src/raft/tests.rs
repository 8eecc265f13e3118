//! Unit tests of the node against its contract: gating, refusals, restarts, bad input.

use crate::Membership;
use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use super::testkit::{append, persist_seq};
use super::Node;
use crate::io::{DropReason, Input, Output, Proposal, RestoreError, Restored, Role};
use crate::message::{AppendResult, Message, MessageBody};
use crate::types::{Entry, EntryKind, HardState, Index, NodeId, Term};
use crate::Config;

fn node(id: u64, n: u64) -> Node {
    let cfg = Config::builder(NodeId(id), (1..=n).map(NodeId), 7).build().unwrap();
    Node::new(cfg, Restored::default()).unwrap()
}

fn sends(out: &[Output]) -> Vec<&Message> {
    out.iter().filter_map(|o| if let Output::Send(m) = o { Some(m) } else { None }).collect()
}

fn vote_request(from: u64, to: u64, term: u64) -> Input {
    Input::Message(Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::Vote { last_index: Index(0), last_term: Term(0), transfer: false },
    })
}

#[test]
fn a_vote_is_granted_only_once_durable() {
    let mut n = node(2, 3);
    let out = n.step(vote_request(1, 2, 1));
    assert!(sends(&out).is_empty(), "the grant must wait for its persist: {out:?}");
    let seq = persist_seq(&out).expect("term and vote persisted");
    let out = n.step(Input::Persisted { up_to: seq });
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].body, MessageBody::VoteResponse { granted: true });
    assert_eq!(n.view().vote, Some(NodeId(1)));
    // A second candidate in the same term is refused.
    let out = n.step(vote_request(3, 2, 1));
    assert_eq!(sends(&out)[0].body, MessageBody::VoteResponse { granted: false });
}

#[test]
fn a_single_node_leads_commits_and_applies_only_after_persisting() {
    let mut n = node(1, 1);
    let out = n.step(Input::Campaign);
    assert_ne!(n.view().role, Role::Leader, "its own vote is not durable yet");
    let out = n.step(Input::Persisted { up_to: persist_seq(&out).unwrap() });
    assert_eq!(n.view().role, Role::Leader);
    assert!(!out.iter().any(|o| matches!(o, Output::Apply(_))), "its first entry is not durable yet");
    let seq = persist_seq(&out).unwrap();
    let out = n.step(Input::Persisted { up_to: seq });
    // A first leader's own entry writes down the bootstrap configuration.
    assert!(out.iter().any(|o| matches!(o, Output::Apply(e) if e.len() == 1 && e[0].kind == EntryKind::Config)));
    let out = n.step(Input::Propose(Proposal { id: 9, data: Bytes::from_static(b"a") }));
    assert!(out.contains(&Output::Accepted { id: 9, index: Index(2), term: Term(1) }));
}

#[test]
fn a_proposal_over_the_entry_limit_is_refused_and_the_rest_of_its_batch_accepted() {
    let cfg = Config::builder(NodeId(1), [NodeId(1)], 7).max_entry_bytes(4).build().unwrap();
    let mut n = Node::new(cfg, Restored::default()).unwrap();
    let out = n.step(Input::Campaign);
    let out = n.step(Input::Persisted { up_to: persist_seq(&out).unwrap() });
    let _ = n.step(Input::Persisted { up_to: persist_seq(&out).unwrap() });
    let p = |id, data: &'static [u8]| Proposal { id, data: Bytes::from_static(data) };
    let out = n.step(Input::ProposeBatch(vec![p(1, b"four"), p(2, b"fives"), p(3, b"ok")]));
    assert!(out.contains(&Output::Accepted { id: 1, index: Index(2), term: Term(1) }), "{out:?}");
    assert!(
        out.contains(&Output::ProposalDropped { id: 2, reason: DropReason::TooLarge { len: 5, max: 4 } }),
        "{out:?}"
    );
    assert!(out.contains(&Output::Accepted { id: 3, index: Index(3), term: Term(1) }), "{out:?}");
}

#[test]
fn proposals_on_a_follower_are_dropped_with_a_hint() {
    let mut n = node(2, 3);
    let hb = Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(3),
        body: MessageBody::Heartbeat { commit: Index(0), read_round: 0, sent_at: 0 },
    };
    let _ = n.step(Input::Message(hb));
    let out = n.step(Input::Propose(Proposal { id: 1, data: Bytes::new() }));
    assert_eq!(out, vec![Output::ProposalDropped { id: 1, reason: DropReason::NotLeader { hint: Some(NodeId(1)) } }]);
}

#[test]
fn bad_input_is_counted_never_a_panic() {
    let mut n = node(2, 3);
    let _ = n.step(vote_request(1, 2, 5));
    let before = n.view().ignored;
    // Misaddressed, from ourselves.
    let _ = n.step(vote_request(1, 3, 5));
    let _ = n.step(vote_request(2, 2, 5));
    // A sender outside the configuration is heard (a node being added may be one): refused,
    // since this term's vote went to n1.
    let _ = n.step(vote_request(9, 2, 5));
    assert_eq!(n.view().vote, Some(NodeId(1)));
    // An older term.
    let _ = n.step(vote_request(3, 2, 1));
    // An append whose entries do not follow prev.
    let _ = n.step(append(
        1,
        2,
        5,
        (0, 0),
        vec![Entry { term: Term(5), index: Index(7), kind: EntryKind::Command, data: Bytes::new() }],
        0,
    ));
    // An append whose configuration entry holds no configuration: nothing of it is taken.
    let entries = vec![
        Entry { term: Term(5), index: Index(1), kind: EntryKind::Noop, data: Bytes::new() },
        Entry { term: Term(5), index: Index(2), kind: EntryKind::Config, data: Bytes::from_static(b"??") },
    ];
    let _ = n.step(append(1, 2, 5, (0, 0), entries, 0));
    assert_eq!(n.view().last_index, Index(0));
    // A stray answer, and an acknowledgement of a persist never issued.
    let stray = Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(5),
        body: MessageBody::AppendResponse(AppendResult::Success { match_index: Index(3) }),
    };
    let _ = n.step(Input::Message(stray));
    let _ = n.step(Input::Persisted { up_to: 1000 });
    let after = n.view().ignored;
    assert_eq!(after.misaddressed, before.misaddressed + 2);
    assert_eq!(after.stale_term, before.stale_term + 1);
    assert_eq!(after.malformed, before.malformed + 2);
    assert_eq!(after.stray_response, before.stray_response + 1);
    assert_eq!(after.bad_persisted, before.bad_persisted + 1);
}

#[test]
fn restart_gives_back_term_vote_and_log() {
    let entries = vec![
        Entry { term: Term(1), index: Index(1), kind: EntryKind::Noop, data: Bytes::new() },
        Entry { term: Term(2), index: Index(2), kind: EntryKind::Command, data: Bytes::from_static(b"x") },
    ];
    let restored = Restored {
        hard_state: HardState { term: Term(3), vote: Some(NodeId(2)), commit: Index(1) },
        snapshot: None,
        entries: entries.clone(),
    };
    let cfg = Config::builder(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)], 1).build().unwrap();
    let mut n = Node::new(cfg, restored).unwrap();
    let v = n.view();
    assert_eq!(
        (v.term, v.vote, v.commit, v.last_index, v.durable),
        (Term(3), Some(NodeId(2)), Index(1), Index(2), Index(2))
    );
    // Committed and durable entries are applied again from the start on the first step.
    let out = n.step(Input::Tick);
    assert!(out.contains(&Output::Apply(entries[..1].to_vec())));
}

#[test]
fn impossible_restored_states_are_refused() {
    let cfg = || Config::builder(NodeId(1), [NodeId(1), NodeId(2)], 1).build().unwrap();
    let e = |i, t| Entry { term: Term(t), index: Index(i), kind: EntryKind::Command, data: Bytes::new() };
    let hs = HardState { term: Term(2), vote: None, commit: Index(0) };
    let gap = Restored { hard_state: hs, snapshot: None, entries: vec![e(1, 1), e(3, 1)] };
    assert_eq!(Node::new(cfg(), gap).unwrap_err(), RestoreError::Gap { expected: Index(2), found: Index(3) });
    let down = Restored { hard_state: hs, snapshot: None, entries: vec![e(1, 2), e(2, 1)] };
    assert_eq!(Node::new(cfg(), down).unwrap_err(), RestoreError::TermDecreases { index: Index(2) });
    let above = Restored { hard_state: hs, snapshot: None, entries: vec![e(1, 3)] };
    assert!(matches!(Node::new(cfg(), above).unwrap_err(), RestoreError::EntryAboveTerm { .. }));
    // A vote may name a node this one never heard of (added in a configuration it missed).
    let vote = Restored { hard_state: HardState { vote: Some(NodeId(9)), ..hs }, snapshot: None, entries: vec![] };
    assert!(Node::new(cfg(), vote).is_ok());
    let config = |i, data: &[u8]| Entry { kind: EntryKind::Config, data: Bytes::copy_from_slice(data), ..e(i, 1) };
    let bad = Restored { hard_state: hs, snapshot: None, entries: vec![e(1, 1), config(2, b"\xff\xff")] };
    assert_eq!(Node::new(cfg(), bad).unwrap_err(), RestoreError::BadConfigEntry { index: Index(2) });
    let empty = postcard::to_allocvec(&Membership::empty()).unwrap();
    let bad = Restored { hard_state: hs, snapshot: None, entries: vec![config(1, &empty)] };
    assert_eq!(Node::new(cfg(), bad).unwrap_err(), RestoreError::BadConfigEntry { index: Index(1) });
    let meta = crate::types::SnapshotMeta {
        index: Index(3),
        term: Term(1),
        membership: Membership::from_voters([NodeId(1)]).unwrap(),
        membership_index: Index(4),
    };
    let snapshot = Some(crate::types::Snapshot { meta: meta.clone(), data: Bytes::new() });
    let bad = Restored { hard_state: hs, snapshot, entries: vec![] };
    assert_eq!(Node::new(cfg(), bad).unwrap_err(), RestoreError::BadSnapshotMembership { meta });
}

#[test]
fn election_timeouts_fall_in_the_configured_range() {
    for seed in 0..50 {
        let cfg =
            Config::builder(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)], seed).election_ticks(10, 20).build().unwrap();
        let mut n = Node::new(cfg, Restored::default()).unwrap();
        let mut ticks = 0;
        while n.view().role == Role::Follower {
            let _ = n.step(Input::Tick);
            ticks += 1;
            assert!(ticks < 20, "seed {seed}: no election after {ticks} ticks");
        }
        assert!(ticks >= 10, "seed {seed}: election after only {ticks} ticks");
        assert_eq!(n.view().role, Role::PreCandidate, "pre-vote comes first");
        assert_eq!(n.view().term, Term(0), "pre-vote does not bump the term");
    }
}

fn msg(from: u64, to: u64, term: Term, body: MessageBody) -> Input {
    Input::Message(Message { from: NodeId(from), to: NodeId(to), term, body })
}

fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to)
        .map(|i| Entry { term: Term(term), index: Index(i), kind: EntryKind::Command, data: Bytes::new() })
        .collect()
}

/// Node 1 of 3, elected (without pre-vote) with node 2's vote, its no-op durable.
fn leader_of_three() -> Node {
    let cfg = Config::builder(NodeId(1), (1..=3).map(NodeId), 7).pre_vote(false).build().unwrap();
    let mut n = Node::new(cfg, Restored::default()).unwrap();
    let out = n.step(Input::Campaign);
    let _ = n.step(Input::Persisted { up_to: persist_seq(&out).unwrap() });
    let term = n.view().term;
    let out = n.step(msg(2, 1, term, MessageBody::VoteResponse { granted: true }));
    assert_eq!(n.view().role, Role::Leader);
    let _ = n.step(Input::Persisted { up_to: persist_seq(&out).unwrap() });
    n
}

#[test]
fn a_forged_reject_beyond_the_leaders_log_is_ignored() {
    let mut n = leader_of_three();
    let term = n.view().term;
    // Node 2 holds the no-op: its progress goes to Replicate.
    let _ = n.step(msg(2, 1, term, MessageBody::AppendResponse(AppendResult::Success { match_index: Index(1) })));
    let before = n.view().ignored.malformed;
    let forged = AppendResult::Reject {
        rejected_prev: Index(50),
        conflict_term: None,
        conflict_first: Index(0),
        last_index: Index(60),
    };
    let _ = n.step(msg(2, 1, term, MessageBody::AppendResponse(forged)));
    assert_eq!(n.view().ignored.malformed, before + 1);
    // Replication to node 2 goes on.
    let out = n.step(Input::Propose(Proposal { id: 1, data: Bytes::from_static(b"x") }));
    assert!(sends(&out).iter().any(|m| m.to == NodeId(2) && matches!(m.body, MessageBody::Append { .. })));
}

#[test]
fn an_append_conflicting_with_committed_entries_is_ignored() {
    let mut n = node(2, 3);
    let append = |term: u64, entries: Vec<Entry>, commit: u64| {
        msg(
            1,
            2,
            Term(term),
            MessageBody::Append { prev_index: Index(0), prev_term: Term(0), entries, commit: Index(commit) },
        )
    };
    let out = n.step(append(1, entries(1, 2, 1), 2));
    let _ = n.step(Input::Persisted { up_to: persist_seq(&out).unwrap() });
    assert_eq!(n.view().commit, Index(2));
    let before = n.view().ignored.malformed;
    // A leader of term 2 that rewrites committed index 1: impossible in Raft, so a forgery.
    let out = n.step(append(2, entries(1, 3, 2), 2));
    assert_eq!(n.view().ignored.malformed, before + 1);
    assert!(persist_seq(&out).is_none() || n.view().last_index == Index(2), "nothing rewritten: {out:?}");
    assert_eq!(n.view().commit, Index(2));
}

#[test]
fn an_append_whose_entries_after_our_snapshot_have_a_lower_term_is_ignored() {
    // Found by skiff-fuzz (target node): the entries were checked against the message's
    // prev_term only, and the first one kept after the snapshot fell below its term.
    let cfg = Config::builder(NodeId(1), (1..=3).map(NodeId), 7).build().unwrap();
    let meta = crate::types::SnapshotMeta {
        index: Index(5),
        term: Term(3),
        membership: Membership::from_voters((1..=3).map(NodeId)).unwrap(),
        membership_index: Index(0),
    };
    let restored = Restored {
        hard_state: HardState { term: Term(3), vote: None, commit: Index(5) },
        snapshot: Some(crate::types::Snapshot { meta, data: Bytes::new() }),
        entries: Vec::new(),
    };
    let mut n = Node::new(cfg, restored).unwrap();
    let e = |i, t| Entry { index: Index(i), term: Term(t), kind: EntryKind::Command, data: Bytes::new() };
    let body = MessageBody::Append {
        prev_index: Index(2),
        prev_term: Term(1),
        entries: vec![e(3, 1), e(4, 1), e(5, 1), e(6, 1), e(7, 2)],
        commit: Index(5),
    };
    let _ = n.step(Input::Message(Message { from: NodeId(2), to: NodeId(1), term: Term(3), body }));
    assert_eq!(n.view().last_index, Index(5));
    assert_eq!(n.view().ignored.malformed, 1);
}

#[test]
fn a_snapshot_of_a_later_term_than_its_sender_is_ignored() {
    // Found by skiff-fuzz (target node): taking it left a log whose last term was above the
    // node's, and winning the next election panicked appending the leader's no-op.
    let mut n = node(1, 3);
    let meta = crate::types::SnapshotMeta {
        index: Index(4),
        term: Term(9),
        membership: Membership::from_voters((1..=3).map(NodeId)).unwrap(),
        membership_index: Index(0),
    };
    let body = MessageBody::InstallSnapshot { meta, offset: 0, data: Bytes::from_static(b"s"), done: true };
    let _ = n.step(Input::Message(Message { from: NodeId(2), to: NodeId(1), term: Term(2), body }));
    assert_eq!(n.view().snapshot_index, Index(0));
    assert_eq!(n.view().ignored.malformed, 1);
}
