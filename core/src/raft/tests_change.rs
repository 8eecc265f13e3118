//! Unit tests of the leader's membership rules (`change.rs`), on a few nodes wired by
//! instant delivery: refusals, learners, joint changes and their automatic leave, and a
//! leader that removes itself.

use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use super::testkit::Cluster;
use crate::io::{DropReason, Input, Output, Proposal, Role};
use crate::membership::{ChangeRefused, ChangeStep, JointPolicy, Membership, MembershipChange, StepRefused};
use crate::message::MessageBody;
use crate::types::{EntryKind, Index, NodeId};

fn change(id: u64, steps: Vec<ChangeStep>, joint: JointPolicy) -> Input {
    Input::ChangeMembership(MembershipChange { id, steps, joint })
}

fn add_learner(n: u64) -> ChangeStep {
    ChangeStep::AddLearner { node: NodeId(n), address: Bytes::from(alloc::format!("addr-{n}")) }
}

fn add_voter(n: u64) -> ChangeStep {
    ChangeStep::AddVoter { node: NodeId(n), address: Bytes::new() }
}

fn remove(n: u64) -> ChangeStep {
    ChangeStep::Remove { node: NodeId(n) }
}

fn dropped(out: &[Output]) -> Option<DropReason> {
    out.iter().find_map(|o| if let Output::ProposalDropped { reason, .. } = o { Some(*reason) } else { None })
}

fn accepted(out: &[Output]) -> Option<Index> {
    out.iter().find_map(|o| if let Output::Accepted { index, .. } = o { Some(*index) } else { None })
}

fn voters(ids: &[u64]) -> Membership {
    Membership::from_voters(ids.iter().map(|i| NodeId(*i))).unwrap()
}

#[test]
fn a_change_is_refused_off_the_leader_before_its_own_term_commits_and_while_one_is_pending() {
    let mut c = Cluster::new(3, &[4]);
    // n1 leads and hands over to n2, but no append of n2 gets through: its no-op is not
    // committed.
    c.elect(1);
    c.tick(2);
    c.drop = |m| matches!(m.body, MessageBody::Append { .. });
    let _ = c.step(1, Input::TransferLeadership { to: NodeId(2) });
    assert_eq!(c.nodes[&2].view().role, Role::Leader);
    let out = c.step(2, change(1, vec![add_learner(4)], JointPolicy::Auto));
    assert_eq!(dropped(&out), Some(DropReason::Membership(ChangeRefused::OwnTermUncommitted)));
    let out = c.step(1, change(2, vec![add_learner(4)], JointPolicy::Auto));
    assert!(matches!(dropped(&out), Some(DropReason::NotLeader { .. })), "{out:?}");
    // Appends flow: the no-op commits. A change the others cannot hear stays pending.
    c.drop = |_| false;
    c.tick(3);
    c.cut.extend([1, 3]);
    let out = c.step(2, change(3, vec![add_learner(4)], JointPolicy::Auto));
    let index = accepted(&out).expect("accepted");
    let out = c.step(2, change(4, vec![add_learner(5)], JointPolicy::Auto));
    assert_eq!(dropped(&out), Some(DropReason::Membership(ChangeRefused::Pending { index })));
    // A change that does not apply to the configuration.
    c.cut.clear();
    c.tick(3);
    assert!(c.nodes[&2].view().membership_committed);
    let out = c.step(2, change(5, vec![add_voter(2)], JointPolicy::Auto));
    assert_eq!(
        dropped(&out),
        Some(DropReason::Membership(ChangeRefused::Invalid(StepRefused::AlreadyMember { node: NodeId(2) })))
    );
}

#[test]
fn a_learner_receives_the_log_but_never_counts() {
    let mut c = Cluster::new(3, &[4]);
    c.elect(1);
    let out = c.step(1, change(1, vec![add_learner(4)], JointPolicy::Auto));
    let index = accepted(&out).expect("accepted");
    let v = c.nodes[&4].view();
    assert_eq!((v.membership.learners(), v.membership_index, v.membership_committed), (&[NodeId(4)][..], index, true));
    assert_eq!(v.membership.addresses().get(&NodeId(4)), Some(&Bytes::from_static(b"addr-4")));
    assert_eq!(c.nodes[&1].caught_up(NodeId(4), 0), Some(true));
    assert_eq!(c.nodes[&2].caught_up(NodeId(4), 0), None, "only a leader knows");
    // With both voters cut off, the learner's acknowledgement commits nothing.
    c.cut.extend([2, 3]);
    let out = c.step(1, Input::Propose(Proposal { id: 2, data: Bytes::from_static(b"x") }));
    let x = accepted(&out).expect("accepted");
    assert_eq!(c.nodes[&4].view().last_index, x, "the learner holds it");
    assert!(c.nodes[&1].view().commit < x, "but it does not count");
    // A learner is no target for leadership.
    let _ = c.step(1, Input::TransferLeadership { to: NodeId(4) });
    assert_eq!((c.nodes[&1].view().ignored.bad_transfer, c.nodes[&1].view().transferring_to), (1, None));
}

#[test]
fn a_joint_change_needs_both_majorities_and_is_left_as_soon_as_it_commits() {
    let mut c = Cluster::new(3, &[4]);
    c.elect(1);
    // Replacing n3 by n4 changes two voters: joint. With n2 and n3 cut off, C_new = {1, 2, 4}
    // has a majority (n1, n4) but C_old = {1, 2, 3} has not.
    c.cut.extend([2, 3]);
    let out = c.step(1, change(1, vec![add_voter(4), remove(3)], JointPolicy::Auto));
    let joint = accepted(&out).expect("accepted");
    let m = c.nodes[&1].view().membership;
    assert_eq!(
        (m.voters(), m.outgoing()),
        (&[NodeId(1), NodeId(2), NodeId(4)][..], &[NodeId(1), NodeId(2), NodeId(3)][..])
    );
    assert!(c.nodes[&1].view().commit < joint, "no majority of the outgoing voters");
    // Healed, the joint entry commits and the leave entry follows at once, unasked.
    c.cut.clear();
    c.tick(3);
    let leader = c.nodes[&1].view();
    assert_eq!((leader.membership.clone(), leader.membership_committed), (voters(&[1, 2, 4]), true));
    let leave = c.nodes[&1].log().entry(joint.next()).expect("the leave entry");
    assert_eq!(leave.kind, EntryKind::Config);
    // n3 got the configuration without it: it knows it is out, and stays silent.
    assert_eq!(c.nodes[&3].view().membership, voters(&[1, 2, 4]));
    assert!(c.nodes[&1].progress(NodeId(3)).is_none(), "no longer replicated to");
    let term = c.nodes[&3].view().term;
    for _ in 0..100 {
        let out = c.step(3, Input::Tick);
        assert!(out.iter().all(|o| !matches!(o, Output::Send(_))), "a removed node is silent: {out:?}");
    }
    // Nor did it move its term or count a campaign: it never tried.
    let v3 = c.nodes[&3].view();
    assert_eq!((v3.term, v3.ignored.bad_campaign), (term, 0));
    assert_eq!(c.nodes[&1].view().role, Role::Leader, "the leader is undisturbed");
}

#[test]
fn a_leader_that_removes_itself_leads_without_counting_itself_then_hands_off() {
    let mut c = Cluster::new(3, &[]);
    c.elect(1);
    c.cut.insert(3);
    let out = c.step(1, change(1, vec![remove(1)], JointPolicy::Auto));
    let index = accepted(&out).expect("accepted");
    // n1 and n2 hold it: a majority of {1, 2, 3}, not of {2, 3}, where n1 does not count.
    assert_eq!(c.nodes[&2].view().last_index, index);
    assert!(c.nodes[&1].view().commit < index);
    assert_eq!(c.nodes[&1].view().role, Role::Leader);
    c.cut.clear();
    c.tick(2);
    let old = c.nodes[&1].view();
    assert_eq!((old.role, old.membership.clone()), (Role::Follower, voters(&[2, 3])));
    // TimeoutNow went to an up-to-date voter, which leads now (in the next term).
    assert!(c
        .log
        .iter()
        .any(|(from, o)| *from == 1 && matches!(o, Output::Send(m) if m.body == MessageBody::TimeoutNow)));
    let leaders: Vec<u64> = c.nodes.iter().filter(|(_, n)| n.view().role == Role::Leader).map(|(id, _)| *id).collect();
    assert_eq!(leaders.len(), 1);
    assert!(leaders[0] == 2 || leaders[0] == 3);
    assert_eq!(c.nodes[&leaders[0]].view().term.0, old.term.0 + 1);
    // The old leader never campaigns again.
    let _ = c.step(1, Input::Campaign);
    assert_eq!(c.nodes[&1].view().ignored.bad_campaign, 1);
}

/// Appends that carry a client command (one entry per append in these tests).
fn carries_command(m: &crate::message::Message) -> bool {
    matches!(&m.body, MessageBody::Append { entries, .. } if entries.iter().any(|e| e.kind == EntryKind::Command))
}

/// A leader that removed itself while it holds entries no voter has yet: its removal commits
/// with the voters one entry behind it. Returns the cluster and the command's index.
fn removal_committed_with_voters_behind() -> (Cluster, Index) {
    let mut c = Cluster::with_builder(3, &[], |b| b.max_entries_per_msg(1));
    c.elect(1);
    c.cut.insert(3);
    let out = c.step(1, change(1, vec![remove(1)], JointPolicy::Auto));
    let config = accepted(&out).expect("accepted");
    c.drop = carries_command;
    let out = c.step(1, Input::Propose(Proposal { id: 2, data: Bytes::from_static(b"cmd") }));
    let command = accepted(&out).expect("a command accepted before the removal commits");
    c.cut.clear();
    c.tick(2);
    assert!(c.nodes[&1].view().commit >= config, "the removal committed");
    assert!(c.nodes[&3].view().last_index < command, "no voter holds the command");
    (c, command)
}

#[test]
fn a_removed_leader_brings_a_voter_up_to_date_before_it_hands_off() {
    let (mut c, command) = removal_committed_with_voters_behind();
    // It does not step down without a successor ready: it transfers, refusing commands.
    assert_eq!(c.nodes[&1].view().role, Role::Leader);
    let out = c.step(1, Input::Propose(Proposal { id: 3, data: Bytes::from_static(b"late") }));
    assert!(matches!(dropped(&out), Some(DropReason::Transferring { .. })), "{out:?}");
    // Once the successor holds everything, TimeoutNow, and it leads at once: no election
    // timeout passes (the minimum is 10 ticks).
    c.drop = |_| false;
    c.tick(2);
    let old = c.nodes[&1].view();
    assert_eq!(old.role, Role::Follower);
    let leaders: Vec<u64> = c.nodes.iter().filter(|(_, n)| n.view().role == Role::Leader).map(|(id, _)| *id).collect();
    assert_eq!(leaders.len(), 1, "a successor leads within 4 ticks of the commit");
    assert_eq!(c.nodes[&leaders[0]].view().term.0, old.term.0 + 1);
    // And the command the old leader accepted last is not lost.
    c.tick(2);
    assert!(c.nodes[&leaders[0]].view().commit >= command);
    assert!(c
        .log
        .iter()
        .any(|(at, o)| *at == leaders[0] && matches!(o, Output::Apply(es) if es.iter().any(|e| e.index == command))));
}

#[test]
fn a_removed_leader_whose_successor_never_catches_up_steps_down_after_an_election_timeout() {
    let (mut c, _) = removal_committed_with_voters_behind();
    c.cut.insert(2);
    c.cut.insert(3);
    c.tick(5);
    // Asking it to transfer again does not restart the deadline.
    let _ = c.step(1, Input::TransferLeadership { to: NodeId(2) });
    c.tick(4);
    assert_eq!(c.nodes[&1].view().role, Role::Leader, "handing over");
    c.tick(2);
    assert_eq!(c.nodes[&1].view().role, Role::Follower, "the transfer gave up, and so did the removed leader");
    let _ = c.step(1, Input::Campaign);
    assert_eq!(c.nodes[&1].view().ignored.bad_campaign, 1);
}

#[test]
fn a_new_leader_that_inherits_a_joint_configuration_leaves_it_after_its_no_op() {
    let mut c = Cluster::new(3, &[4]);
    c.elect(1);
    // The joint configuration commits, but the entry leaving it reaches no one.
    c.drop = |m| match &m.body {
        MessageBody::Append { entries, .. } => {
            entries.iter().any(|e| super::log::decode_config(e).is_some_and(|m| !m.is_joint()))
        }
        _ => false,
    };
    let out = c.step(1, change(1, vec![add_voter(4), remove(3)], JointPolicy::Auto));
    let joint = accepted(&out).expect("accepted");
    c.tick(2);
    assert!(c.nodes[&2].view().commit >= joint && c.nodes[&2].view().membership.is_joint());
    // n1 is lost with its leave entry; another is elected by both majorities.
    c.cut.insert(1);
    c.drop = |_| false;
    c.tick(40);
    let leader = *c.nodes.keys().find(|id| c.nodes[id].view().role == Role::Leader).expect("a leader");
    assert_ne!(leader, 1);
    let v = c.nodes[&leader].view();
    assert_eq!((v.membership.clone(), v.membership_committed), (voters(&[1, 2, 4]), true), "left, not stuck");
    // n1 comes back: its own leave entry is replaced by the new leader's log.
    c.cut.clear();
    c.tick(3);
    let v1 = c.nodes[&1].view();
    assert_eq!((v1.role, v1.membership.clone(), v1.membership_committed), (Role::Follower, voters(&[1, 2, 4]), true));
    let rolled_back = c.log.iter().any(|(from, o)| {
        *from == 1 && matches!(o, Output::MembershipChanged { index, membership, .. } if *index == joint && membership.is_joint())
    });
    assert!(rolled_back, "n1 went back to the joint configuration when its leave entry was truncated");
}

#[test]
fn a_node_removed_while_cut_off_learns_of_its_removal_once_it_is_back() {
    let mut c = Cluster::new(3, &[]);
    c.elect(1);
    c.cut.insert(3);
    let out = c.step(1, change(1, vec![remove(3)], JointPolicy::Auto));
    let index = accepted(&out).expect("accepted");
    c.tick(2);
    assert!(c.nodes[&1].view().commit >= index, "{{1, 2}} commits it without n3");
    assert!(c.nodes[&1].progress(NodeId(3)).is_some(), "n3 does not know yet: still replicated to");
    c.cut.clear();
    c.tick(3);
    let v3 = c.nodes[&3].view();
    assert_eq!((v3.membership.clone(), v3.membership_committed), (voters(&[1, 2]), true));
    assert!(c.nodes[&1].progress(NodeId(3)).is_none(), "told, it is dropped");
    // One that never comes back is dropped after a while.
    c.cut.insert(2);
    let out = c.step(1, change(2, vec![remove(2)], JointPolicy::Auto));
    assert!(accepted(&out).is_some());
    c.cut.clear();
    c.cut.insert(2);
    assert!(c.nodes[&1].progress(NodeId(2)).is_some());
    c.tick(2 * 20 + 1);
    assert!(c.nodes[&1].progress(NodeId(2)).is_none(), "given up on");
}
