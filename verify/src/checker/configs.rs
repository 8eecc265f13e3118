//! Membership invariants. The checker derives every node's configuration itself, from the
//! `Config` entries of its log and its snapshot's metadata (never from the core's own
//! history), and checks after every step:
//! - `ConfigNotLatest`: the node acts on the latest configuration in its log;
//! - `UncommittedConfigs`: a log holds at most one configuration entry not yet committed;
//! - `ConfigGuard`: a leader appends a configuration only once the one before is committed
//!   (and not joint, unless the new one leaves it) and an entry of its own term is committed
//!   (writing down the configuration in force, as a first leader does, is no change);
//! - `ConfigQuorumsDisjoint`: each configuration a leader appends, and each committed one
//!   after the one before, has a quorum in common with its predecessor;
//! - `ElectedWithoutQuorum`: a new leader's voters make a quorum of its configuration;
//! - `NonVoterCampaigned`: only voters of their latest or latest committed configuration
//!   ask for votes;
//! - `SnapshotMembership`: a snapshot names the configuration the committed history gives at
//!   its index.
//!
//! Commitment itself (`CommittedNotDurableOnMajority`) uses the committing node's derived
//! configuration, joint-aware.

use std::collections::{BTreeMap, BTreeSet};

use skiff_core::{Entry, EntryKind, Index, Membership, MessageBody, Node, NodeId, Output, Role, Term};

use super::{violation, Checker, Durable, Invariant, Violation};

/// The configuration an entry holds, if it is a `Config` entry holding one.
pub fn decode(e: &Entry) -> Option<Membership> {
    (e.kind == EntryKind::Config).then(|| postcard::from_bytes(&e.data).ok()).flatten()
}

/// Whether the nodes for which `holds` is true make a majority of every voting set of `m`
/// (the voters and, while joint, the outgoing voters). Never true for an empty configuration.
pub fn is_quorum(m: &Membership, holds: impl Fn(NodeId) -> bool) -> bool {
    let majority = |set: &[NodeId]| set.iter().filter(|id| holds(**id)).count() * 2 > set.len();
    !m.voters().is_empty() && majority(m.voters()) && (!m.is_joint() || majority(m.outgoing()))
}

/// Whether every quorum of `a` meets every quorum of `b`: no set of nodes is a quorum of `a`
/// while the rest of the nodes is a quorum of `b` (by brute force over the at most 2^14
/// subsets of the voters of both).
pub fn quorums_intersect(a: &Membership, b: &Membership) -> bool {
    let ids: Vec<NodeId> = a
        .voters()
        .iter()
        .chain(a.outgoing())
        .chain(b.voters())
        .chain(b.outgoing())
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(ids.len() <= 16, "too many voters to check by brute force");
    (0u32..1 << ids.len()).all(|mask| {
        let inside = |id: NodeId| ids.iter().position(|x| *x == id).is_some_and(|k| mask & (1 << k) != 0);
        !(is_quorum(a, inside) && is_quorum(b, |id| !inside(id)))
    })
}

/// The configuration in force at `at` in `node`'s log: the latest `Config` entry at or before
/// it, or the snapshot's configuration, or `bootstrap`; with the index that set it.
pub fn config_at(node: &Node, at: Index, bootstrap: &Membership) -> (Index, Membership) {
    let log = node.log();
    let base = log.snapshot_index();
    if at > base {
        for e in log.range(base.next(), at).iter().rev() {
            if let Some(m) = decode(e) {
                return (e.index, m);
            }
        }
    }
    match log.snapshot_meta() {
        Some(m) => (m.membership_index, m.membership.clone()),
        None => (Index(0), bootstrap.clone()),
    }
}

/// What the checker knows of configurations besides each node's log.
#[derive(Clone, Debug, Default)]
pub(super) struct Configs {
    /// The configuration every node bootstraps with, unless registered otherwise.
    pub initial: Membership,
    /// Nodes that bootstrap otherwise (joiners, with the empty configuration).
    pub bootstrap: BTreeMap<NodeId, Membership>,
    /// Per node: its latest configuration as last derived, valid until its log changes.
    pub latest: BTreeMap<NodeId, (Index, Membership)>,
    /// The configurations of the committed history, in index order.
    pub committed: Vec<(Index, Membership)>,
    /// Invariants a test chose not to check (to see what a planted bug leads to next).
    pub muted: BTreeSet<Invariant>,
}

impl Configs {
    pub(super) fn bootstrap_of(&self, id: NodeId) -> &Membership {
        self.bootstrap.get(&id).unwrap_or(&self.initial)
    }

    /// The configuration the committed history gives at `index`.
    fn committed_at(&self, index: Index) -> (Index, &Membership) {
        let p = self.committed.partition_point(|(i, _)| *i <= index);
        match p {
            0 => (Index(0), &self.initial),
            _ => (self.committed[p - 1].0, &self.committed[p - 1].1),
        }
    }

    fn fail(&self, invariant: Invariant, detail: String) -> Result<(), Violation> {
        if self.muted.contains(&invariant) {
            return Ok(());
        }
        violation(invariant, detail)
    }
}

impl Checker {
    /// The latest configuration of `node`, derived again if this step changed its log.
    pub(super) fn derive_config(&mut self, node: &Node, outputs: &[Output]) -> (Index, Membership) {
        let id = node.config().id();
        let changed = outputs.iter().any(|o| {
            matches!(o, Output::Persist(p) if p.snapshot.is_some() || p.truncate_from.is_some() || p.entries.iter().any(|e| e.kind == EntryKind::Config))
        });
        if changed || !self.configs.latest.contains_key(&id) {
            let derived = config_at(node, node.log().last_index(), self.configs.bootstrap_of(id));
            self.configs.latest.insert(id, derived);
        }
        self.configs.latest[&id].clone()
    }

    /// An entry committed for the first time: remember it if it holds a configuration, and
    /// check that it has a quorum in common with the committed one before it.
    pub(super) fn note_committed(&mut self, e: &Entry) -> Result<(), Violation> {
        let Some(next) = decode(e) else { return Ok(()) };
        let (prev_index, prev) = self.configs.committed_at(e.index);
        if !quorums_intersect(prev, &next) {
            let detail = format!(
                "committed configuration {next} at {} shares no quorum with {prev} of {}",
                e.index.0, prev_index.0
            );
            self.configs.fail(Invariant::ConfigQuorumsDisjoint, detail)?;
        }
        self.configs.committed.push((e.index, next));
        Ok(())
    }

    /// The membership checks of one step (see the module docs).
    pub(super) fn check_configs(
        &mut self,
        node: &Node,
        disks: &BTreeMap<NodeId, &Durable>,
        outputs: &[Output],
        (index, latest): &(Index, Membership),
        new_leader: bool,
    ) -> Result<(), Violation> {
        let (index, latest) = (*index, latest);
        let view = node.view();
        let id = view.id;
        if (view.membership_index, &view.membership) != (index, latest)
            || view.membership_committed != (index <= view.commit)
        {
            let detail = format!(
                "{id} acts on {} of {} (committed: {}), but its log's latest is {latest} of {} (commit {})",
                view.membership, view.membership_index.0, view.membership_committed, index.0, view.commit.0
            );
            self.configs.fail(Invariant::ConfigNotLatest, detail)?;
        }
        if new_leader {
            let t = view.term;
            let voted = |v: NodeId| {
                disks
                    .get(&v)
                    .is_some_and(|d| d.hard_state.term > t || (d.hard_state.term == t && d.hard_state.vote == Some(id)))
            };
            if !is_quorum(latest, voted) {
                self.configs.fail(
                    Invariant::ElectedWithoutQuorum,
                    format!("{id} leads term {} without a quorum of {latest}", t.0),
                )?;
            }
        }
        for o in outputs {
            match o {
                Output::Send(m) if matches!(m.body, MessageBody::PreVote { .. } | MessageBody::Vote { .. }) => {
                    let committed = || config_at(node, node.log().commit(), self.configs.bootstrap_of(id)).1;
                    if !latest.is_voter(id) && !committed().is_voter(id) {
                        let detail = format!(
                            "{id} asks for votes ({}) but is no voter of {latest}, nor of its committed {}",
                            m.body.name(),
                            committed()
                        );
                        self.configs.fail(Invariant::NonVoterCampaigned, detail)?;
                    }
                }
                Output::Persist(p) => {
                    if let Some(s) = &p.snapshot {
                        self.check_snapshot_membership(id, s.meta.index, s.meta.membership_index, &s.meta.membership)?;
                    }
                    if view.role == Role::Leader {
                        for e in p.entries.iter().filter(|e| e.term == view.term && e.kind == EntryKind::Config) {
                            self.check_appended_config(node, e)?;
                        }
                    }
                }
                Output::ApplySnapshot(s) => {
                    self.check_snapshot_membership(id, s.meta.index, s.meta.membership_index, &s.meta.membership)?
                }
                _ => {}
            }
        }
        if outputs.iter().any(|o| matches!(o, Output::Persist(_))) {
            self.check_uncommitted_configs(node)?;
        }
        Ok(())
    }

    fn check_snapshot_membership(&self, id: NodeId, at: Index, index: Index, m: &Membership) -> Result<(), Violation> {
        let (want_index, want) = self.configs.committed_at(at);
        if (want_index, want) != (index, m) {
            let detail = format!(
                "{id}'s snapshot at {} names {m} of {}, but the committed history has {want} of {} there",
                at.0, index.0, want_index.0
            );
            return self.configs.fail(Invariant::SnapshotMembership, detail);
        }
        Ok(())
    }

    /// A leader appended configuration entry `e`: the guard, and quorum intersection with
    /// the configuration before it.
    fn check_appended_config(&self, node: &Node, e: &Entry) -> Result<(), Violation> {
        let id = node.config().id();
        let Some(next) = decode(e) else {
            return self
                .configs
                .fail(Invariant::ConfigGuard, format!("{id} appended an undecodable configuration at {}", e.index.0));
        };
        let (prev_index, prev) = config_at(node, e.index.prev(), self.configs.bootstrap_of(id));
        let commit = node.log().commit();
        let own_term = node.log().term_at(commit) == Some(node.view().term);
        let leaves = prev.is_joint() && next == prev.leave_joint();
        // Writing down the configuration in force (a first leader's bootstrap one) changes
        // nothing, and needs no guard.
        let unchanged = next == prev;
        if !unchanged && (prev_index > commit || !own_term || (prev.is_joint() && !leaves)) {
            let detail = format!(
                "leader {id} appended {next} at {} over {prev} of {} with commit {} (own term committed: {own_term})",
                e.index.0, prev_index.0, commit.0
            );
            self.configs.fail(Invariant::ConfigGuard, detail)?;
        }
        if !quorums_intersect(&prev, &next) {
            let detail = format!("leader {id} appended {next} at {}, sharing no quorum with {prev}", e.index.0);
            self.configs.fail(Invariant::ConfigQuorumsDisjoint, detail)?;
        }
        Ok(())
    }

    /// At most one configuration entry past the node's commit index (entries up to it are
    /// the committed history, which the commit checks cover).
    fn check_uncommitted_configs(&self, node: &Node) -> Result<(), Violation> {
        let log = node.log();
        let from = log.commit().max(log.snapshot_index()).next();
        let pending: Vec<(Index, Term)> = log
            .range(from, log.last_index())
            .iter()
            .filter(|e| e.kind == EntryKind::Config)
            .map(|e| (e.index, e.term))
            .collect();
        // Entries past the commit index may be committed already elsewhere: count only those
        // the history does not hold.
        let uncommitted: Vec<&(Index, Term)> =
            pending.iter().filter(|(i, t)| self.canonical.get(i.0 as usize - 1).is_none_or(|c| c.term != *t)).collect();
        if uncommitted.len() > 1 {
            let detail = format!(
                "{} holds {} uncommitted configuration entries: {uncommitted:?}",
                node.config().id(),
                uncommitted.len()
            );
            return self.configs.fail(Invariant::UncommittedConfigs, detail);
        }
        Ok(())
    }
}
