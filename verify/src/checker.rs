//! Safety invariants of Raft (Figure 3 of the paper), checked after every simulator event,
//! plus the durability promises of persistence gating and "nothing acknowledged is lost".
//!
//! The checker sees each node's in-memory log and view, its durable state as the simulated
//! disk holds it, and every output. It never trusts the core's own bookkeeping.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use skiff_core::{
    AppendResult, Entry, EntryKind, HardState, Index, Message, MessageBody, Node, NodeId, Persist, Role, Term,
};

/// What a node's disk holds in the simulation: only acknowledged persists reach it.
#[derive(Clone, Debug, Default)]
pub struct Durable {
    pub hard_state: HardState,
    /// Contiguous from index 1.
    pub log: Vec<Entry>,
}

impl Durable {
    /// Applies one persist record, as a real storage would (see `skiff_core::Persist`).
    pub fn apply(&mut self, p: &Persist) {
        if let Some(t) = p.truncate_from {
            self.log.truncate(t.0.saturating_sub(1) as usize);
        }
        if let Some(first) = p.entries.first() {
            self.log.truncate(first.index.0.saturating_sub(1) as usize);
            assert_eq!(self.log.len() as u64 + 1, first.index.0, "persist leaves a gap in the durable log");
            self.log.extend(p.entries.iter().cloned());
        }
        if let Some(hs) = p.hard_state {
            self.hard_state = hs;
        }
    }

    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index.0 == 0 {
            return Some(Term(0));
        }
        self.log.get(index.0 as usize - 1).map(|e| e.term)
    }
}

/// Which invariant broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invariant {
    ElectionSafety,
    LeaderAppendOnly,
    LogMatching,
    LeaderCompleteness,
    StateMachineSafety,
    CommittedNotDurableOnMajority,
    ResponseBeforeDurable,
    AcknowledgedLost,
    /// A read answered with an index below a commit that happened before the read was issued.
    StaleRead,
    Liveness,
}

/// A broken invariant, with enough context to start debugging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.invariant, self.detail)
    }
}

impl std::error::Error for Violation {}

fn violation(invariant: Invariant, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

/// One committed entry of the canonical history.
#[derive(Clone, Debug)]
struct Committed {
    term: Term,
    kind: EntryKind,
    data: Bytes,
    /// The term of the node that first reported it committed: an upper bound on the term in
    /// which it was committed.
    seen_in_term: Term,
}

/// The checker's memory of a run.
#[derive(Debug, Default)]
pub struct Checker {
    quorum: usize,
    leaders: BTreeMap<Term, NodeId>,
    /// (index, term) -> (term of the previous entry, payload): Log Matching holds iff every
    /// entry ever written anywhere agrees with this map.
    entries: BTreeMap<(Index, Term), (Term, EntryKind, Bytes)>,
    canonical: Vec<Committed>,
    /// Per node: how far its commit index was checked, and how far it applied (this lifetime).
    checked_commit: BTreeMap<NodeId, Index>,
    applied: BTreeMap<NodeId, Index>,
    /// Leaders' last index in their term, for append-only.
    pub checks: u64,
}

impl Checker {
    pub fn new(voters: usize) -> Checker {
        Checker { quorum: voters / 2 + 1, ..Checker::default() }
    }

    /// The canonical committed history, as (term, kind, payload).
    pub fn committed(&self) -> impl Iterator<Item = (Index, Term, &Bytes)> + '_ {
        self.canonical.iter().enumerate().map(|(k, c)| (Index(k as u64 + 1), c.term, &c.data))
    }

    pub fn committed_len(&self) -> u64 {
        self.canonical.len() as u64
    }

    /// A node restarted: its applied sequence starts again from nothing.
    pub fn restarted(&mut self, id: NodeId) {
        self.applied.remove(&id);
        self.checked_commit.remove(&id);
    }

    /// Checks one node after it stepped. `disks` holds every node's durable state (for the
    /// majority check); `outputs` are what the step returned.
    pub fn after_step(
        &mut self,
        node: &Node,
        disks: &BTreeMap<NodeId, &Durable>,
        outputs: &[skiff_core::Output],
    ) -> Result<(), Violation> {
        self.checks += 1;
        let view = node.view();
        let id = view.id;
        let log = node.log();
        // Election Safety: at most one leader per term.
        if view.role == Role::Leader {
            match self.leaders.get(&view.term) {
                Some(other) if *other != id => {
                    return violation(
                        Invariant::ElectionSafety,
                        format!("{id} and {other} both lead term {}", view.term.0),
                    )
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(view.term, id);
                    // Leader Completeness: a new leader holds every entry committed in an
                    // earlier term.
                    for (k, c) in self.canonical.iter().enumerate() {
                        let index = Index(k as u64 + 1);
                        if c.seen_in_term < view.term && log.term_at(index) != Some(c.term) {
                            return violation(
                                Invariant::LeaderCompleteness,
                                format!(
                                    "{id} leads term {} without committed entry {} of term {}",
                                    view.term.0, index.0, c.term.0
                                ),
                            );
                        }
                    }
                }
            }
        }
        let disk = disks[&id];
        for out in outputs {
            match out {
                skiff_core::Output::Persist(p) => self.check_persist(node, p)?,
                skiff_core::Output::Send(m) => check_send_durable(m, node, disk)?,
                _ => {}
            }
        }
        self.check_commit(node, disks)?;
        for out in outputs {
            if let skiff_core::Output::Apply(entries) = out {
                self.check_apply(id, entries)?;
            }
        }
        Ok(())
    }

    fn check_persist(&mut self, node: &Node, p: &Persist) -> Result<(), Violation> {
        let view = node.view();
        let id = view.id;
        if view.role == Role::Leader && p.truncate_from.is_some() {
            return violation(
                Invariant::LeaderAppendOnly,
                format!("leader {id} of term {} truncates its log at {:?}", view.term.0, p.truncate_from),
            );
        }
        for e in &p.entries {
            let prev_term = node.log().term_at(e.index.prev());
            let Some(current) = node.log().entry(e.index) else {
                // Overwritten again within the same step; what stays is checked instead.
                continue;
            };
            if current.term != e.term {
                continue;
            }
            let prev_term = prev_term.expect("an entry's predecessor is in the log");
            let record = (prev_term, e.kind, e.data.clone());
            match self.entries.get(&(e.index, e.term)) {
                None => {
                    self.entries.insert((e.index, e.term), record);
                }
                Some(seen) if *seen == record => {}
                Some(seen) => {
                    return violation(
                        Invariant::LogMatching,
                        format!(
                            "{id} holds entry {} of term {} with previous term {} and {} payload bytes; elsewhere previous term {} and {} bytes",
                            e.index.0, e.term.0, prev_term.0, e.data.len(), seen.0 .0, seen.2.len()
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    fn check_commit(&mut self, node: &Node, disks: &BTreeMap<NodeId, &Durable>) -> Result<(), Violation> {
        let view = node.view();
        let id = view.id;
        let from = self.checked_commit.get(&id).copied().unwrap_or(Index(0));
        if view.commit <= from {
            return Ok(());
        }
        for i in from.0 + 1..=view.commit.0 {
            let index = Index(i);
            let e = node.log().entry(index).expect("a node holds every entry it calls committed");
            if let Some(c) = self.canonical.get(i as usize - 1) {
                if c.term != e.term || c.data != e.data || c.kind != e.kind {
                    return violation(
                        Invariant::StateMachineSafety,
                        format!(
                            "{id} commits index {i} with term {}, but term {} was committed there",
                            e.term.0, c.term.0
                        ),
                    );
                }
                continue;
            }
            // First time anyone commits index i: it must be durable on a majority.
            let holders = disks.values().filter(|d| d.term_at(index) == Some(e.term)).count();
            if holders < self.quorum {
                return violation(
                    Invariant::CommittedNotDurableOnMajority,
                    format!("{id} commits index {i} (term {}) held durably by only {holders} nodes", e.term.0),
                );
            }
            self.canonical.push(Committed {
                term: e.term,
                kind: e.kind,
                data: e.data.clone(),
                seen_in_term: view.term,
            });
        }
        self.checked_commit.insert(id, view.commit);
        Ok(())
    }

    /// Leader Completeness for leaders that exist when new entries commit.
    pub fn check_leaders_hold_committed(&self, node: &Node) -> Result<(), Violation> {
        let view = node.view();
        if view.role != Role::Leader {
            return Ok(());
        }
        for (k, c) in self.canonical.iter().enumerate().rev().take(64) {
            let index = Index(k as u64 + 1);
            if c.seen_in_term < view.term && node.log().term_at(index) != Some(c.term) {
                return violation(
                    Invariant::LeaderCompleteness,
                    format!("leader {} of term {} lacks committed entry {}", view.id, view.term.0, index.0),
                );
            }
        }
        Ok(())
    }

    fn check_apply(&mut self, id: NodeId, entries: &[Entry]) -> Result<(), Violation> {
        let applied = self.applied.entry(id).or_insert(Index(0));
        for e in entries {
            if e.index != applied.next() {
                return violation(
                    Invariant::StateMachineSafety,
                    format!("{id} applies index {} after {}", e.index.0, applied.0),
                );
            }
            match self.canonical.get(e.index.0 as usize - 1) {
                Some(c) if c.term == e.term && c.data == e.data => {}
                _ => {
                    return violation(
                        Invariant::StateMachineSafety,
                        format!(
                            "{id} applies index {} (term {}) that differs from the committed history",
                            e.index.0, e.term.0
                        ),
                    )
                }
            }
            *applied = e.index;
        }
        Ok(())
    }
}

/// A response may only leave once what it promises is on the responder's disk.
fn check_send_durable(m: &Message, node: &Node, disk: &Durable) -> Result<(), Violation> {
    let id = m.from;
    let hs = disk.hard_state;
    if m.term < node.view().term {
        // Released after the node moved on to a newer term; what it promised then may since
        // have been superseded on disk. The term, at least, must be durable.
        return if hs.term < m.term {
            violation(
                Invariant::ResponseBeforeDurable,
                format!("{id} sent {} with term {} above durable {}", m.body.name(), m.term.0, hs.term.0),
            )
        } else {
            Ok(())
        };
    }
    let broken = |what: String| {
        violation(Invariant::ResponseBeforeDurable, format!("{id} sent {} to {}: {what}", m.body.name(), m.to))
    };
    match &m.body {
        MessageBody::PreVoteResponse { granted: true } => Ok(()),
        MessageBody::VoteResponse { granted: true } => {
            if hs.term != m.term || hs.vote != Some(m.to) {
                return broken(format!(
                    "durable term {} vote {:?}, promised term {} vote {}",
                    hs.term.0, hs.vote, m.term.0, m.to
                ));
            }
            Ok(())
        }
        MessageBody::AppendResponse(AppendResult::Success { match_index }) => {
            if hs.term < m.term {
                return broken(format!("durable term {} below {}", hs.term.0, m.term.0));
            }
            let mem = node.log().term_at(*match_index);
            if disk.term_at(*match_index).is_none() || disk.term_at(*match_index) != mem {
                return broken(format!("match {} not durable (disk holds {} entries)", match_index.0, disk.log.len()));
            }
            Ok(())
        }
        body if body.is_response() => {
            if hs.term < m.term {
                return broken(format!("durable term {} below {}", hs.term.0, m.term.0));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
