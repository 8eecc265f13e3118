//! The leader's side of membership changes (Raft §6, thesis §4): proposing a change as a
//! `Config` entry, replicating to the members of the configurations in play, leaving a joint
//! configuration once it commits, and stepping down once a configuration without it commits.
//!
//! Rules, each enforced here:
//! - **One change at a time.** A change is refused while the latest configuration is not
//!   committed, or is joint (its leave entry is still to come or to commit).
//! - **Own term first.** A leader makes no change before it has committed an entry of its
//!   own term: otherwise a change of an earlier leader it cannot see committed may overlap
//!   its own, and two configurations without a common quorum commit (the single-server change
//!   bug, raft-dev 2015).
//! - **Auto-leave.** The moment a joint configuration commits, the leader appends the
//!   configuration that leaves it, inside the same step that broadcasts the commit (so the
//!   entry goes out at once), and a new leader that inherits a joint configuration leaves it
//!   as soon as its no-op commits.
//! - **Replication targets** are the members of the latest configuration and of the latest
//!   committed one, and for a while the nodes they removed: a removed node keeps receiving
//!   the log until it holds its removal and knows it committed, so it learns it was removed
//!   and stops campaigning.
//! - **A leader that is no longer a voter** (removed, or demoted to learner) keeps leading
//!   without counting itself until the configuration without it commits, then steps down and
//!   hands off with `TimeoutNow` to the most up-to-date voter.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use bytes::Bytes;

use super::progress::{Mode, Progress};
use super::transfer::Transfer;
use super::Node;
use crate::io::{DropReason, Output, Role};
use crate::membership::{ChangeRefused, Membership, MembershipChange};
use crate::message::{Message, MessageBody};
use crate::planted::PlantedBug;
use crate::types::{Entry, EntryKind, NodeId};

impl Node {
    /// Leader: proposes `change` (see the module docs for when it is refused).
    pub(super) fn change_membership(&mut self, change: MembershipChange, out: &mut Vec<Output>) {
        let id = change.id;
        match self.new_configuration(&change) {
            Ok(next) => {
                let data = Bytes::from(postcard::to_allocvec(&next).expect("a configuration encodes"));
                let max = self.cfg.max_entry_bytes();
                if data.len() > max {
                    out.push(Output::ProposalDropped { id, reason: DropReason::TooLarge { len: data.len(), max } });
                    return;
                }
                let index = self.log.last_index().next();
                self.append_local(Entry { term: self.term, index, kind: EntryKind::Config, data });
                self.sync_progress();
                out.push(Output::Accepted { id, index, term: self.term });
                // It commits once durable here and on the others (their answers, or our own
                // persist for a single voter, call `maybe_commit`).
                self.broadcast_append(false, out);
            }
            Err(reason) => out.push(Output::ProposalDropped { id, reason }),
        }
    }

    /// The configuration `change` leads to, or why this node cannot make it now.
    fn new_configuration(&self, change: &MembershipChange) -> Result<Membership, DropReason> {
        if self.role != Role::Leader {
            return Err(DropReason::NotLeader { hint: self.leader });
        }
        if let Some(t) = self.transfer {
            return Err(DropReason::Transferring { to: t.to });
        }
        let (index, latest) = (self.log.membership_index(), self.log.membership());
        if index > self.log.commit() || latest.is_joint() {
            return Err(DropReason::Membership(ChangeRefused::Pending { index }));
        }
        if self.log.term_at(self.log.commit()) != Some(self.term) && !self.cfg.has_bug(PlantedBug::NoOwnTermGuard) {
            return Err(DropReason::Membership(ChangeRefused::OwnTermUncommitted));
        }
        latest.apply(&change.steps, change.joint).map_err(|e| DropReason::Membership(ChangeRefused::Invalid(e)))
    }

    /// Leader: makes `progress` match the replication targets (the members of the latest
    /// configuration and of the latest committed one, but us). A new target starts probing
    /// after our last entry (its answer says where its log ends); one no longer targeted is
    /// dropped, with a transfer to it.
    pub(super) fn sync_progress(&mut self) {
        let me = self.cfg.id();
        let committed = self.log.membership_at(self.log.commit()).1;
        let targets: BTreeSet<NodeId> =
            self.log.membership().members().chain(committed.members()).filter(|id| *id != me).collect();
        for (id, pr) in self.progress.iter_mut() {
            pr.departing = if targets.contains(id) { None } else { Some(pr.departing.unwrap_or(0)) };
        }
        if self.cfg.has_bug(PlantedBug::NoDeparting) {
            self.progress.retain(|id, _| targets.contains(id));
        }
        self.drop_departed();
        let next = self.log.last_index().next();
        for id in targets {
            self.progress.entry(id).or_insert_with(|| Progress::new(next));
        }
        if self.transfer.is_some_and(|t| !self.progress.contains_key(&t.to)) {
            self.transfer = None;
        }
    }

    /// Leader: drops removed nodes that know of their removal (they hold the latest
    /// configuration and were sent a commit index covering it) or had their time: until
    /// then they get appends and heartbeats like members, so that one cut off during its
    /// removal learns of it, rather than campaigning for ever in a configuration it thinks
    /// it is in. They never count.
    fn drop_departed(&mut self) {
        let (latest, patience) = (self.log.membership_index(), 2 * self.cfg.election_ticks_max());
        self.progress.retain(|_, pr| match pr.departing {
            None => true,
            Some(ticks) => ticks < patience && (pr.match_index < latest || pr.commit_sent < latest),
        });
    }

    /// Leader, every tick: the departing nodes' time runs.
    pub(super) fn tick_departing(&mut self) {
        let mut any = false;
        for pr in self.progress.values_mut() {
            if let Some(t) = pr.departing.as_mut() {
                *t += 1;
                any = true;
            }
        }
        if any {
            self.drop_departed();
        }
    }

    /// Leader, after the commit moved: appends the configuration that leaves a joint one
    /// that is now committed. Our own term's entry has just committed, so the guard holds.
    pub(super) fn maybe_leave_joint(&mut self) {
        let latest = self.log.membership();
        if self.role != Role::Leader || !latest.is_joint() || self.log.membership_index() > self.log.commit() {
            return;
        }
        let next = latest.leave_joint();
        let data = Bytes::from(postcard::to_allocvec(&next).expect("a configuration encodes"));
        let index = self.log.last_index().next();
        self.append_local(Entry { term: self.term, index, kind: EntryKind::Config, data });
        self.sync_progress();
    }

    /// Whether this node leads a committed configuration (not joint) in which it does not
    /// vote: it removed or demoted itself, and must hand over.
    pub(super) fn leads_without_a_vote(&self) -> bool {
        let latest = self.log.membership();
        self.role == Role::Leader
            && !latest.is_joint()
            && !latest.is_voter(self.cfg.id())
            && self.log.membership_index() <= self.log.commit()
    }

    /// Leader, after the commit moved: once a configuration in which we do not vote is
    /// committed (and not joint), hands over to the most up-to-date voter. If that voter
    /// holds our whole log, `TimeoutNow` goes to it and we step down at once; else we
    /// transfer leadership to it (refusing proposals, bringing it up to date, then
    /// `TimeoutNow`: see `try_finish_transfer`), so that entries accepted after the change
    /// are not lost and the cluster need not wait out an election timeout. A transfer
    /// that does not finish within its bound gives up, and then we step down anyway.
    pub(super) fn maybe_step_down_removed(&mut self, out: &mut Vec<Output>) {
        if !self.leads_without_a_vote() || self.transfer.is_some() {
            return;
        }
        let latest = self.log.membership();
        let best = latest.voters().iter().filter_map(|id| self.progress.get(id).map(|p| (p.match_index, *id))).max();
        match best {
            Some((matched, to)) if matched == self.log.last_index() => {
                let msg = Message { from: self.cfg.id(), to, term: self.term, body: MessageBody::TimeoutNow };
                out.push(Output::Send(msg));
                self.become_follower(self.term, None);
            }
            Some((_, to)) => {
                self.transfer = Some(Transfer { to, elapsed: 0 });
                self.revoke_lease();
                self.try_finish_transfer(out);
            }
            None => self.become_follower(self.term, None),
        }
    }

    /// Leader: whether `peer` has caught up: it is replicating (not probing or taking a
    /// snapshot) and its log is within `within` entries of ours. `None` unless this node
    /// leads and replicates to `peer`. Promote a learner once this holds, so that adding it
    /// to the voters does not stall commits while it catches up.
    pub fn caught_up(&self, peer: NodeId, within: u64) -> Option<bool> {
        if self.role != Role::Leader {
            return None;
        }
        let pr = self.progress.get(&peer)?;
        let behind = self.log.last_index().0.saturating_sub(pr.match_index.0);
        Some(pr.mode == Mode::Replicate && behind <= within)
    }
}
