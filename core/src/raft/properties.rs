//! quickcheck properties of the core's pure parts against simple models: joint quorum
//! arithmetic against counting over random configurations, the log's merge against a `Vec`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use bytes::Bytes;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

use super::log::RaftLog;
use super::quorum::{joint_index, joint_quorum, Tally, VoteResult};
use crate::membership::{ChangeStep, JointPolicy, Membership};
use crate::types::{Entry, EntryKind, Index, NodeId, Term};

/// A configuration over n1..n7 from bit masks: voters `old` (outgoing, while joint) changed
/// to `new` through a joint phase, and learners `learn` (outside both). `old` and `new` must
/// be non-empty; `old == new` gives a configuration that is not joint.
fn config_of_masks(old: u8, new: u8, learn: u8) -> Membership {
    let ids = |mask: u8| (0..7).filter(move |b| mask & (1 << b) != 0).map(|b| NodeId(b + 1));
    let start = Membership::from_voters(ids(old)).expect("non-empty");
    let mut steps: Vec<ChangeStep> =
        ids(new & !old).map(|node| ChangeStep::AddVoter { node, address: Bytes::new() }).collect();
    steps.extend(ids(old & !new).map(|node| ChangeStep::Remove { node }));
    steps.extend(ids(learn & !old & !new).map(|node| ChangeStep::AddLearner { node, address: Bytes::new() }));
    if steps.is_empty() {
        return start;
    }
    start.apply(&steps, JointPolicy::Always).expect("a valid change")
}

/// Random configurations: (old voters, new voters, learners) as masks over n1..n7.
fn masks(old: u8, new: u8, learn: u8) -> Option<Membership> {
    let (old, new) = (old & 0x7f, new & 0x7f);
    (old != 0 && new != 0).then(|| config_of_masks(old, new, learn & 0x7f))
}

/// Model: whether `holds` is true for a majority of each voting set, by counting.
fn majorities(m: &Membership, holds: impl Fn(NodeId) -> bool) -> bool {
    let sets: Vec<&[NodeId]> =
        if m.is_joint() { alloc::vec![m.voters(), m.outgoing()] } else { alloc::vec![m.voters()] };
    sets.iter().all(|set| set.iter().filter(|id| holds(**id)).count() * 2 > set.len())
}

#[test]
fn joint_index_is_the_highest_value_both_majorities_hold() {
    fn prop(old: u8, new: u8, learn: u8, values: Vec<u8>) -> TestResult {
        let Some(m) = masks(old, new, learn) else { return TestResult::discard() };
        let value = |id: NodeId| Index(u64::from(values.get(id.0 as usize).copied().unwrap_or(0)));
        let got = joint_index(&m, value);
        // Model: the largest candidate that majorities of every set reach (0 always does).
        let model = (0..=255u64).filter(|c| majorities(&m, |id| value(id).0 >= *c)).max().unwrap_or(0);
        TestResult::from_bool(got == Index(model))
    }
    QuickCheck::new().tests(2000).quickcheck(prop as fn(u8, u8, u8, Vec<u8>) -> TestResult);
}

#[test]
fn joint_quorum_needs_a_majority_of_every_voting_set() {
    fn prop(old: u8, new: u8, learn: u8, yes: u8) -> TestResult {
        let Some(m) = masks(old, new, learn) else { return TestResult::discard() };
        let holds = |id: NodeId| yes & (1 << (id.0 - 1)) != 0;
        TestResult::from_bool(joint_quorum(&m, holds) == majorities(&m, holds))
    }
    QuickCheck::new().tests(2000).quickcheck(prop as fn(u8, u8, u8, u8) -> TestResult);
    assert!(!joint_quorum(&Membership::empty(), |_| true), "an empty configuration has no quorum");
}

#[test]
fn tally_matches_counting() {
    fn prop(old: u8, new: u8, learn: u8, votes: Vec<(u8, bool)>) -> TestResult {
        let Some(m) = masks(old, new, learn) else { return TestResult::discard() };
        let mut tally = Tally::default();
        let mut first = BTreeMap::new();
        for (v, g) in votes {
            let id = NodeId(1 + u64::from(v) % 8); // n8 is never a member
            tally.record(id, g);
            first.entry(id).or_insert(g);
        }
        let model = if majorities(&m, |id| first.get(&id) == Some(&true)) {
            VoteResult::Won
        } else if !majorities(&m, |id| first.get(&id) != Some(&false)) {
            // Even if every voter yet to answer granted, some set would lack a majority.
            VoteResult::Lost
        } else {
            VoteResult::Pending
        };
        TestResult::from_bool(tally.result(&m) == model)
    }
    QuickCheck::new().tests(2000).quickcheck(prop as fn(u8, u8, u8, Vec<(u8, bool)>) -> TestResult);
    assert_eq!(Tally::default().result(&Membership::empty()), VoteResult::Lost);
}

/// A follower-side operation on a log: an append from a leader of `term` after `prev`.
#[derive(Clone, Debug)]
struct AppendOp {
    prev: u8,
    terms: Vec<u8>,
}

impl Arbitrary for AppendOp {
    fn arbitrary(g: &mut Gen) -> AppendOp {
        let len = usize::arbitrary(g) % 5;
        AppendOp { prev: u8::arbitrary(g) % 12, terms: (0..len).map(|_| 1 + u8::arbitrary(g) % 4).collect() }
    }
}

#[test]
fn log_merge_matches_a_vec_model() {
    fn prop(ops: Vec<AppendOp>) -> bool {
        let bootstrap = Membership::from_voters([NodeId(1)]).expect("one voter");
        let mut log = RaftLog::restored(None, Vec::new(), Index(0), &bootstrap).expect("an empty log");
        let mut model: Vec<Term> = Vec::new();
        for op in ops {
            let prev = Index(u64::from(op.prev));
            if prev.0 as usize > model.len() {
                continue;
            }
            // Keep terms sorted as Raft does: entries follow the term at prev.
            let base = if prev.0 == 0 { 0 } else { model[prev.0 as usize - 1].0 };
            let mut t = base;
            let entries: Vec<Entry> = op
                .terms
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    t = t.max(base + u64::from(*d) / 2);
                    Entry {
                        term: Term(t.max(1)),
                        index: Index(prev.0 + 1 + k as u64),
                        kind: EntryKind::Command,
                        data: Bytes::new(),
                    }
                })
                .collect();
            // The model never conflicts below a commit (nothing commits here).
            log.merge(entries.clone()).expect("no commit to conflict with");
            // Model: skip matching entries; at the first conflict, cut and append the rest.
            for e in &entries {
                let pos = e.index.0 as usize - 1;
                if pos < model.len() && model[pos] == e.term {
                    continue;
                }
                model.truncate(pos);
                model.push(e.term);
            }
            let got: Vec<Term> = (1..=log.last_index().0).map(|i| log.term_at(Index(i)).expect("held")).collect();
            if got != model {
                return false;
            }
            log.assert_invariants();
        }
        true
    }
    QuickCheck::new().tests(500).quickcheck(prop as fn(Vec<AppendOp>) -> bool);
}
