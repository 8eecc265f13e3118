//! Lease reads, rule by rule: a read is answered at once while the lease holds and goes
//! through ReadIndex once it lapses; and each way the lease could outlive the followers'
//! refusal of votes (dating it from the answer, keeping it through a transfer, a follower
//! that restarts and votes at once) is shown to give a stale read when planted, and none
//! without it.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::testkit::Cluster;
use super::Node;
use crate::io::{Input, Output, Restored, Role};
use crate::message::{Message, MessageBody};
use crate::planted::PlantedBug;
use crate::types::{HardState, Index, NodeId};
use crate::Config;

/// Three voters with lease reads (no drift bound: the lease is `election_min - 1` ticks),
/// election timeouts in `[min, 2 * min)`, and `plant` planted if the feature allows.
fn leased(min: u32, plant: Option<PlantedBug>) -> Cluster {
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let b = Config::builder(NodeId(id), (1..=3).map(NodeId), id).election_ticks(min, 2 * min).lease_reads(0);
        #[cfg(feature = "planted-bugs")]
        let b = match plant {
            Some(bug) => b.plant(bug),
            None => b,
        };
        #[cfg(not(feature = "planted-bugs"))]
        let _ = plant;
        nodes.insert(id, Node::new(b.build().unwrap(), Restored::default()).unwrap());
    }
    Cluster { nodes, cut: BTreeSet::new(), cut_links: BTreeSet::new(), drop: |_| false, log: Vec::new() }
}

/// Ticks every node until one leads and has committed its first entry; returns it and the
/// other two.
fn settle(c: &mut Cluster) -> (u64, u64, u64) {
    for _ in 0..200 {
        c.tick(1);
        let leader = c.nodes.iter().find(|(_, n)| n.view().role == Role::Leader).map(|(id, _)| *id);
        if let Some(l) = leader {
            if c.nodes[&l].view().commit > Index(0) {
                let others: Vec<u64> = (1..=3).filter(|i| *i != l).collect();
                return (l, others[0], others[1]);
            }
        }
    }
    panic!("no leader after 200 ticks");
}

/// `Some(index)` if `id` answered a read in the step that asked.
fn read_now(c: &mut Cluster, id: u64) -> Option<Index> {
    let out = c.step(id, Input::Read { id: 99 });
    out.iter().find_map(|o| if let Output::ReadReady { index, .. } = o { Some(*index) } else { None })
}

/// A scenario's outcome: the index a read at the old leader was answered at (if it was),
/// or the stale index and what was already committed.
type Outcome = Result<Option<Index>, (Index, Index)>;

/// Runs `scenario` with `bug` planted (where the feature allows), which must give a stale
/// read, then without it; returns the clean outcome.
fn guarded(scenario: fn(Option<PlantedBug>) -> Outcome, bug: PlantedBug) -> Outcome {
    #[cfg(feature = "planted-bugs")]
    {
        let planted = scenario(Some(bug));
        assert!(planted.is_err(), "{bug:?} planted, yet no stale read: {planted:?}");
    }
    #[cfg(not(feature = "planted-bugs"))]
    let _ = bug;
    scenario(None)
}

/// The messages of kind `name` sent since the cluster's log held `before` outputs (dropped
/// ones included: the log records every output).
fn sent_since(c: &Cluster, before: usize, name: &str) -> Vec<Message> {
    c.log[before..]
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Send(m) if m.body.name() == name => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// The highest commit index any node knows.
fn highest_commit(c: &Cluster) -> Index {
    c.nodes.values().map(|n| n.view().commit).max().unwrap()
}

/// Reads at `leader` now; `Err` if it answers below what some node already committed.
fn read_is_fresh(c: &mut Cluster, leader: u64) -> Outcome {
    let committed = highest_commit(c);
    match read_now(c, leader) {
        Some(index) if index < committed => Err((index, committed)),
        other => Ok(other),
    }
}

#[test]
fn a_lease_read_is_answered_at_once_and_after_the_lease_through_read_index() {
    let mut c = leased(10, None);
    let (l, a, b) = settle(&mut c);
    assert_eq!(c.nodes[&l].config().lease_ticks(), 9);
    // A new leader's lease starts with the first beat a quorum answers.
    c.tick(2);
    let out = c.step(l, Input::Read { id: 1 });
    let commit = c.nodes[&l].view().commit;
    assert!(out.contains(&Output::ReadReady { id: 1, index: commit }), "{out:?}");
    assert!(!out.iter().any(|o| matches!(o, Output::Send(_))), "a lease read sends nothing: {out:?}");
    assert_eq!(c.nodes[&l].view().lease_reads, 1);
    // Cut off, the leader's lease lapses within `lease_ticks` of its last answered beat.
    c.cut.extend([a, b]);
    for _ in 0..9 {
        let _ = c.step(l, Input::Tick);
    }
    assert_eq!(c.nodes[&l].view().role, Role::Leader, "check-quorum has not fired yet");
    let out = c.step(l, Input::Read { id: 2 });
    assert!(!out.iter().any(|o| matches!(o, Output::ReadReady { .. })), "the lease lapsed: {out:?}");
    assert!(out.iter().any(|o| matches!(o, Output::Send(Message { body: MessageBody::Heartbeat { .. }, .. }))));
    assert_eq!(c.nodes[&l].view().pending_reads, 1, "the read waits for a heartbeat round");
}

#[test]
fn lease_reads_need_check_quorum_and_a_lease_of_a_tick() {
    use crate::config::ConfigError;
    let b = || Config::builder(NodeId(1), [NodeId(1)], 1);
    assert_eq!(b().lease_reads(50).check_quorum(false).build(), Err(ConfigError::LeaseWithoutCheckQuorum));
    assert_eq!(
        b().election_ticks(3, 6).heartbeat_ticks(1).lease_reads(500).build(),
        Err(ConfigError::LeaseTooShort { election_min: 3, drift_permille: 500 })
    );
    // (10 - 1) * 950 / 1050 = 8.14: the default timeouts with a 5% bound lease 8 ticks.
    assert_eq!(b().lease_reads(50).build().unwrap().lease_ticks(), 8);
    assert_eq!(b().build().unwrap().lease_ticks(), 0, "off by default");
}

#[test]
fn a_follower_that_hears_a_leader_ignores_campaign_with_leases_on() {
    let mut c = leased(10, None);
    let (l, a, _) = settle(&mut c);
    let before = c.nodes[&a].view().ignored.bad_campaign;
    let out = c.step(a, Input::Campaign);
    assert_eq!(c.nodes[&a].view().ignored.bad_campaign, before + 1);
    assert!(!out.iter().any(|o| matches!(o, Output::Send(_))), "no pre-vote goes out: {out:?}");
    assert_eq!(c.nodes[&l].view().role, Role::Leader);
    assert_eq!(c.nodes[&a].view().role, Role::Follower);
}

/// The answers to one beat arrive late; the lease must still date from the beat's send.
fn answers_arrive_late(plant: Option<PlantedBug>) -> Outcome {
    let mut c = leased(30, plant);
    let (l, a, b) = settle(&mut c);
    // Hold the followers' answers to the next beat.
    c.drop = |m| matches!(m.body, MessageBody::HeartbeatResponse { .. });
    let before = c.log.len();
    while !c.log[before..].iter().any(|(_, o)| matches!(o, Output::Send(m) if m.body.name() == "HeartbeatResponse")) {
        c.tick(1);
    }
    let held = sent_since(&c, before, "HeartbeatResponse");
    // The leader is cut off; the answers reach it 10 ticks after the beat.
    c.cut.extend([a, b]);
    for _ in 0..10 {
        let _ = c.step(l, Input::Tick);
    }
    for m in held {
        let _ = c.nodes.get_mut(&l).unwrap().step(Input::Message(m));
    }
    // 29 ticks after the beat the followers stop refusing votes; they elect one of them.
    for _ in 0..19 {
        let _ = c.step(l, Input::Tick);
    }
    c.cut.clear();
    c.drop = |_| false;
    c.cut.insert(l);
    for _ in 0..60 {
        for id in [a, b] {
            let _ = c.step(id, Input::Tick);
        }
        if [a, b].iter().any(|id| c.nodes[id].view().role == Role::Leader) {
            break;
        }
    }
    assert!([a, b].iter().any(|id| c.nodes[id].view().role == Role::Leader), "the others elected a leader");
    assert_eq!(c.nodes[&l].view().role, Role::Leader, "the old leader does not know yet");
    read_is_fresh(&mut c, l)
}

#[test]
fn the_lease_dates_from_the_beat_not_from_its_answer() {
    let clean = guarded(answers_arrive_late, PlantedBug::LeaseFromAnswer);
    assert_eq!(clean, Ok(None), "the lease lapsed 29 ticks after the beat");
}

/// A transfer's `TimeoutNow` arrives after the transfer was abandoned and the lease renewed.
fn timeout_now_arrives_late(plant: Option<PlantedBug>) -> Outcome {
    let mut c = leased(10, plant);
    let (l, a, _) = settle(&mut c);
    c.drop = |m| m.body == MessageBody::TimeoutNow;
    let before = c.log.len();
    let _ = c.step(l, Input::TransferLeadership { to: NodeId(a) });
    let timeout_now =
        sent_since(&c, before, "TimeoutNow").pop().expect("the target is up to date: TimeoutNow goes at once");
    c.drop = |_| false;
    c.tick(12);
    assert_eq!(c.nodes[&l].view().transferring_to, None, "the transfer was abandoned");
    assert_eq!(c.nodes[&l].view().role, Role::Leader);
    // Now the leader is cut off and the old TimeoutNow reaches its target, which is elected
    // over the followers' lease (as a transfer's campaign must be).
    c.cut.insert(l);
    let _ = c.step(a, Input::Message(timeout_now));
    assert_eq!(c.nodes[&a].view().role, Role::Leader, "the target won");
    read_is_fresh(&mut c, l)
}

#[test]
fn a_transfer_ends_the_lease_for_the_rest_of_the_term() {
    let clean = guarded(timeout_now_arrives_late, PlantedBug::LeaseThroughTransfer);
    assert_eq!(clean, Ok(None), "no lease read after a transfer started");
}

/// A follower restarts while the leader's lease counts on it, and another asks its vote.
fn a_voter_restarts(plant: Option<PlantedBug>) -> Outcome {
    let mut c = leased(10, plant);
    let (l, a, b) = settle(&mut c);
    // `b` no longer hears the leader (nor the leader `b`); `a` hears both.
    c.cut_links.insert((l, b));
    // `b` times out and asks `a`, which refuses: it hears the leader.
    c.tick(25);
    assert_eq!(c.nodes[&l].view().role, Role::Leader);
    assert_ne!(c.nodes[&b].view().role, Role::Leader);
    // `a` restarts from its (instantly durable) state and `b` campaigns again at once.
    let old = &c.nodes[&a];
    let v = old.view();
    let restored = Restored {
        hard_state: HardState { term: v.term, vote: v.vote, commit: v.commit },
        snapshot: None,
        entries: old.log().range(Index(1), v.last_index).to_vec(),
    };
    let cfg = old.config().clone();
    c.nodes.insert(a, Node::new(cfg, restored).unwrap());
    let _ = c.step(b, Input::Campaign);
    read_is_fresh(&mut c, l)
}

#[test]
fn a_restarted_voter_stays_quiet_for_an_election_timeout() {
    let fresh = guarded(a_voter_restarts, PlantedBug::LeaseForgetsRestart);
    assert!(fresh.is_ok_and(|r| r.is_some()), "no one else leads: the lease read is served ({fresh:?})");
}

/// A leased follower is handed an answer of a later term (an old election's), then another
/// node campaigns: the follower must keep refusing while its leader's lease counts on it.
fn an_old_answer_arrives(plant: Option<PlantedBug>) -> Outcome {
    let mut c = leased(10, plant);
    let (l, a, b) = settle(&mut c);
    c.tick(2);
    // `b` no longer hears the leader (nor the leader `b`).
    c.cut_links.insert((l, b));
    let term = c.nodes[&a].view().term;
    let late = Message {
        from: NodeId(b),
        to: NodeId(a),
        term: crate::types::Term(term.0 + 1),
        body: MessageBody::VoteResponse { granted: false },
    };
    let _ = c.step(a, Input::Message(late));
    // `b` times out and campaigns; only `a` hears it.
    for _ in 0..60 {
        let _ = c.step(b, Input::Tick);
        if c.nodes[&b].view().role == Role::Leader {
            break;
        }
    }
    assert_eq!(c.nodes[&l].view().role, Role::Leader, "the leader does not know of any other");
    read_is_fresh(&mut c, l)
}

#[test]
fn a_leased_follower_drops_a_later_term_that_no_leader_sent() {
    let fresh = guarded(an_old_answer_arrives, PlantedBug::LeaseYieldsToHigherTerm);
    assert!(fresh.is_ok_and(|r| r.is_some()), "no one else leads: the lease read is served ({fresh:?})");
}
