//! quickcheck properties of the core's pure parts against simple models: quorum arithmetic
//! against counting, the log's merge against a `Vec`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use bytes::Bytes;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

use super::log::RaftLog;
use super::quorum::{quorum_index, Tally, VoteResult};
use crate::types::{Entry, EntryKind, Index, NodeId, Term};

#[test]
fn quorum_index_is_the_majority_held_index() {
    fn prop(matches: Vec<u16>) -> TestResult {
        if matches.is_empty() {
            return TestResult::discard();
        }
        let quorum = matches.len() / 2 + 1;
        let mut idx: Vec<Index> = matches.iter().map(|m| Index(u64::from(*m))).collect();
        let got = quorum_index(&mut idx, quorum);
        // Model: the largest value that at least `quorum` entries reach.
        let model = matches
            .iter()
            .map(|m| u64::from(*m))
            .filter(|c| matches.iter().filter(|m| u64::from(**m) >= *c).count() >= quorum)
            .max()
            .unwrap_or(0);
        TestResult::from_bool(got == Index(model))
    }
    QuickCheck::new().tests(500).quickcheck(prop as fn(Vec<u16>) -> TestResult);
}

#[test]
fn tally_matches_counting() {
    fn prop(votes: Vec<(u8, bool)>, size: u8) -> TestResult {
        let n = 1 + (size % 7) as u64;
        let voters: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let quorum = voters.len() / 2 + 1;
        let mut tally = Tally::default();
        let mut first = BTreeMap::new();
        for (v, g) in votes {
            let id = NodeId(1 + u64::from(v) % n);
            tally.record(id, g);
            first.entry(id).or_insert(g);
        }
        let yes = first.values().filter(|g| **g).count();
        let no = first.values().filter(|g| !**g).count();
        let model = if yes >= quorum {
            VoteResult::Won
        } else if no + quorum > voters.len() {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        };
        TestResult::from_bool(tally.result(&voters, quorum) == model)
    }
    QuickCheck::new().tests(500).quickcheck(prop as fn(Vec<(u8, bool)>, u8) -> TestResult);
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
        let mut log = RaftLog::restored(None, Vec::new(), Index(0));
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
