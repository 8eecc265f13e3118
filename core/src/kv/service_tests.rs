//! Unit tests of [`Service`]: every request answered once, by its own entry, with clear
//! refusals; deadlines; snapshots.

use crate::Membership;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use bytes::Bytes;

use super::*;
use crate::io::{DropReason, Output, Proposal};
use crate::types::{Entry, EntryKind, Index, NodeId, Snapshot, SnapshotMeta, Term};

fn put(seq: u64) -> Command {
    Command { client: 7, seq, op: Op::put("k", "v") }
}

fn entry(index: u64, term: u64, cmd: &Command) -> Entry {
    let data = encode(&LogEntry { time: 0, body: Body::Write { command: cmd.clone(), max_value: 1 << 20 } });
    Entry { index: Index(index), term: Term(term), kind: EntryKind::Command, data: Bytes::from(data) }
}

/// A service whose state has client 7's session open.
fn service_with(config: ServiceConfig) -> Service<u32> {
    let data = KvState::with_session(7).snapshot();
    let start = Snapshot {
        meta: SnapshotMeta {
            index: Index(0),
            term: Term(0),
            membership: Membership::empty(),
            membership_index: Index(0),
        },
        data: data.into(),
    };
    Service::new(config, Some(&start)).unwrap()
}

fn service() -> Service<u32> {
    let config = ServiceConfig { max_key_bytes: 16, max_value_bytes: 16, request_timeout: 100, ..Default::default() };
    service_with(config)
}

fn replies(s: &mut Service<u32>) -> Vec<(u32, Reply)> {
    s.take_actions()
        .into_iter()
        .map(|a| match a {
            Action::Reply { to, reply } => (to, reply),
            other => panic!("not a reply: {other:?}"),
        })
        .collect()
}

/// The ids of the reads and proposals the service asked the core for (nothing else).
fn asked_ids(s: &mut Service<u32>) -> Vec<u64> {
    s.take_actions()
        .iter()
        .map(|a| match a {
            Action::Read { id } => *id,
            Action::Propose(p) => p.id,
            Action::Reply { .. } => panic!("a reply"),
        })
        .collect()
}

fn proposal(s: &mut Service<u32>) -> Proposal {
    match s.take_actions().as_slice() {
        [Action::Propose(p)] => p.clone(),
        other => panic!("not one proposal: {other:?}"),
    }
}

#[test]
fn a_write_is_answered_only_by_its_own_entry() {
    let mut s = service();
    s.request(put(1), 1, 0);
    let p = proposal(&mut s);
    s.accepted(p.id, Index(1), Term(2));
    // Another leader's entry took index 1: not ours.
    s.apply(&[entry(1, 3, &put(5))]);
    assert_eq!(replies(&mut s), vec![(1, Reply::WrongLeader { hint: None })]);
    // Same client and index, another term: not ours either.
    s.request(put(6), 2, 0);
    let p = proposal(&mut s);
    s.accepted(p.id, Index(2), Term(2));
    s.apply(&[entry(2, 3, &put(6))]);
    assert_eq!(replies(&mut s), vec![(2, Reply::WrongLeader { hint: None })]);
    s.request(put(7), 3, 0);
    let p = proposal(&mut s);
    assert!(s.on_output(&Output::Accepted { id: p.id, index: Index(3), term: Term(3) }).unwrap());
    assert!(s.on_output(&Output::Apply(vec![entry(3, 3, &put(7))])).unwrap());
    assert_eq!(replies(&mut s), vec![(3, Reply::Ok(Resp::Ok))]);
    assert!(s.idle());
}

#[test]
fn reads_wait_for_their_index_and_everything_times_out() {
    let mut s = service();
    let get = Command { client: 1, seq: 1, op: Op::get("k") };
    s.request(get.clone(), 1, 0);
    let [Action::Read { id }] = s.take_actions()[..] else { panic!("a read asks the core") };
    s.read_ready(id, Index(1));
    assert!(s.take_actions().is_empty(), "index 1 is not applied yet");
    s.apply(&[entry(1, 1, &put(1))]);
    assert_eq!(replies(&mut s), vec![(1, Reply::Ok(Resp::bulk("v")))]);
    // One request of each kind waiting: all answered Timeout at their deadline, not before.
    s.request(get.clone(), 2, 10);
    s.request(get, 3, 10);
    s.request(put(2), 4, 10);
    s.request(put(3), 5, 10);
    let ids = asked_ids(&mut s);
    s.read_ready(ids[1], Index(9));
    s.accepted(ids[2], Index(2), Term(1));
    assert_eq!(s.in_progress(), 4);
    s.expire(109);
    assert!(s.take_actions().is_empty());
    s.expire(110);
    let mut got: Vec<u32> = replies(&mut s)
        .into_iter()
        .map(|(to, r)| {
            assert_eq!(r, Reply::Timeout);
            to
        })
        .collect();
    got.sort();
    assert_eq!(got, [2, 3, 4, 5]);
    assert_eq!(s.in_progress(), 0);
    assert!(s.idle());
}

#[test]
fn a_snapshot_that_does_not_decode_is_an_error_not_a_silent_divergence() {
    let bad = Snapshot {
        meta: SnapshotMeta {
            index: Index(5),
            term: Term(1),
            membership: Membership::from_voters(vec![NodeId(1)]).unwrap(),
            membership_index: Index(0),
        },
        data: Bytes::from_static(b"\xff\xff not a KV state"),
    };
    let err = Service::<u32>::new(ServiceConfig::default(), Some(&bad)).unwrap_err();
    assert_eq!(err, ServiceError::BadSnapshot { index: Index(5), installed: false });
    assert!(err.to_string().contains("index 5 (restored from disk)"), "{err}");
    let mut s = service();
    s.request(put(1), 1, 0);
    let p = proposal(&mut s);
    s.accepted(p.id, Index(1), Term(1));
    let err = s.on_output(&Output::ApplySnapshot(bad)).unwrap_err();
    assert_eq!(err, ServiceError::BadSnapshot { index: Index(5), installed: true });
    // Nothing more is taken: the entry waited for is not applied to the old state.
    assert_eq!(s.on_output(&Output::Apply(vec![entry(1, 1, &put(1))])), Err(err));
    s.apply(&[entry(1, 1, &put(1))]);
    assert_eq!(s.state().applied(), Index(0));
    s.request(put(2), 2, 0);
    assert_eq!(replies(&mut s), vec![(2, Reply::Timeout)]);
}

#[test]
fn a_placement_learned_after_its_apply_is_answered_timeout() {
    // A threaded driver learns placements and applies on two paths.
    let mut s = service();
    s.request(put(1), 1, 0);
    let p = proposal(&mut s);
    s.apply(&[entry(1, 1, &put(1))]);
    s.accepted(p.id, Index(1), Term(1));
    assert_eq!(replies(&mut s), vec![(1, Reply::Timeout)]);
    assert!(s.idle());
}

#[test]
fn an_installed_snapshot_answers_the_writes_it_covers_and_the_reads_it_serves() {
    let mut s = service();
    s.request(put(1), 1, 0);
    let p = proposal(&mut s);
    s.accepted(p.id, Index(2), Term(1));
    let get = Command { client: 1, seq: 1, op: Op::get("k") };
    s.request(get, 2, 0);
    let [Action::Read { id }] = s.take_actions()[..] else { panic!() };
    s.read_ready(id, Index(3));
    // The leader's state through index 3, where k = v.
    let mut leader = service();
    leader.apply(&[entry(1, 1, &put(1)), entry(2, 1, &put(2)), entry(3, 1, &put(3))]);
    let (index, data) = leader.snapshot();
    assert_eq!(index, Index(3));
    let snap = Snapshot {
        meta: SnapshotMeta { index, term: Term(1), membership: Membership::empty(), membership_index: Index(0) },
        data: data.into(),
    };
    s.install(&snap).unwrap();
    assert_eq!(replies(&mut s), vec![(1, Reply::Timeout), (2, Reply::Ok(Resp::bulk("v")))]);
    assert_eq!((s.installed(), s.state().applied()), (1, Index(3)));
    // Entries at or below the snapshot are skipped.
    s.apply(&[entry(3, 1, &put(9))]);
    assert_eq!(s.state().applied(), Index(3));
}

#[test]
fn oversized_requests_and_refusals_get_clear_answers_with_node_hints() {
    let mut s = service();
    let big = Command { client: 1, seq: 1, op: Op::put("k".repeat(17), "") };
    s.request(big, 1, 0);
    let long = Command { client: 1, seq: 2, op: Op::append("k", "v".repeat(17)) };
    s.request(long, 2, 0);
    let r = replies(&mut s);
    assert_eq!(r[0].1, Reply::Invalid { reason: "key of 17 bytes over the limit of 16".into() });
    assert_eq!(r[1].1, Reply::Invalid { reason: "value of 17 bytes over the limit of 16".into() });
    s.request(put(1), 3, 0);
    let p = proposal(&mut s);
    s.proposal_dropped(p.id, &DropReason::NotLeader { hint: Some(NodeId(42)) });
    let mut got = replies(&mut s);
    s.request(put(2), 4, 0);
    let p = proposal(&mut s);
    s.on_output(&Output::ProposalDropped { id: p.id, reason: DropReason::Transferring { to: NodeId(7) } }).unwrap();
    got.extend(replies(&mut s));
    let get = Command { client: 1, seq: 3, op: Op::get("k") };
    s.request(get, 5, 0);
    let [Action::Read { id }] = s.take_actions()[..] else { panic!() };
    s.read_dropped(id, &DropReason::NotLeader { hint: None });
    got.extend(replies(&mut s));
    assert_eq!(
        got,
        vec![
            (3, Reply::WrongLeader { hint: Some(NodeId(42)) }),
            (4, Reply::WrongLeader { hint: Some(NodeId(7)) }),
            (5, Reply::WrongLeader { hint: None }),
        ]
    );
    // Answers about requests it does not know are ignored.
    s.accepted(999, Index(1), Term(1));
    s.read_ready(999, Index(1));
    assert!(s.take_actions().is_empty() && s.idle());
}

#[test]
fn the_snapshot_policy_waits_for_the_bound_and_for_new_entries() {
    let config = ServiceConfig { max_raft_state: Some(1000), ..ServiceConfig::default() };
    let mut s = service_with(config);
    assert_eq!(s.snapshot_due(5000), None, "nothing applied");
    s.apply(&[entry(1, 1, &put(1))]);
    assert_eq!(s.snapshot_due(899), None, "under 9/10 of the bound");
    let (index, data) = s.snapshot_due(900).expect("due");
    assert_eq!(index, Index(1));
    assert_eq!(KvState::restore(&data).unwrap().get(b"k"), Some(Bytes::from("v")));
    assert_eq!(s.snapshot_due(5000), None, "nothing applied since");
    let mut never = service_with(ServiceConfig::default());
    never.apply(&[entry(1, 1, &put(1))]);
    assert_eq!(never.snapshot_due(u64::MAX), None, "no bound, no snapshots");
}

#[test]
fn answers_about_the_drivers_own_ids_are_left_alone() {
    let mut s = service();
    s.request(put(1), 1, 0);
    let p = proposal(&mut s);
    assert_ne!(p.id & SERVICE_IDS, 0, "the service's ids carry the bit");
    // The driver's own proposal number 1 is accepted at index 1; that is not the service's.
    let own = Output::Accepted { id: p.id & !SERVICE_IDS, index: Index(1), term: Term(1) };
    assert_eq!(s.on_output(&own), Ok(false));
    assert_eq!(s.on_output(&Output::ReadDropped { id: 1, reason: DropReason::NotLeader { hint: None } }), Ok(false));
    assert_eq!(s.in_progress(), 1, "still waiting for its own placement");
    assert!(s.on_output(&Output::Accepted { id: p.id, index: Index(2), term: Term(1) }).unwrap());
    assert!(s.take_actions().is_empty());
}

#[test]
fn a_register_is_answered_with_its_index_and_writes_are_stamped_with_the_clock() {
    let config = ServiceConfig { sessions: SessionLimits { max: 5, ttl: 50 }, ..ServiceConfig::default() };
    let mut s: Service<u32> = Service::new(config, None).unwrap();
    s.request(Command { client: 0, seq: 0, op: Op::Register }, 1, 30);
    let p = proposal(&mut s);
    let logged: LogEntry = postcard::from_bytes(&p.data).unwrap();
    assert_eq!(logged, LogEntry { time: 30, body: Body::Register { limits: SessionLimits { max: 5, ttl: 50 } } });
    s.accepted(p.id, Index(4), Term(1));
    let registered = Entry { index: Index(4), term: Term(1), kind: EntryKind::Command, data: p.data };
    s.apply(&[registered]);
    assert_eq!(replies(&mut s), vec![(1, Reply::Registered { client: 4 })]);
    assert_eq!(s.state().sessions(), 1);
    // A clock that goes back stands still: stamps never decrease.
    s.expire(100);
    let late = Command { client: 4, seq: 1, op: Op::put("k", "v") };
    s.request(late, 2, 20);
    let p = proposal(&mut s);
    let logged: LogEntry = postcard::from_bytes(&p.data).unwrap();
    assert_eq!(logged.time, 100);
    s.accepted(p.id, Index(5), Term(1));
    s.apply(&[Entry { index: Index(5), term: Term(1), kind: EntryKind::Command, data: p.data }]);
    // Idle since 30 with a ttl of 50: expired by the entry's own stamp, so not applied.
    assert_eq!(replies(&mut s), vec![(2, Reply::SessionExpired)]);
    assert_eq!((s.state().get(b"k"), s.state().sessions()), (None, 0));
}

#[test]
fn an_append_that_would_pass_the_value_limit_is_refused_by_the_state() {
    let mut s = service();
    s.apply(&[entry(1, 1, &put(1))]);
    let grow = Command { client: 7, seq: 2, op: Op::append("k", "v".repeat(16)) };
    s.request(grow, 1, 0);
    let p = proposal(&mut s);
    s.accepted(p.id, Index(2), Term(1));
    s.apply(&[Entry { index: Index(2), term: Term(1), kind: EntryKind::Command, data: p.data }]);
    let refused = Resp::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    assert_eq!(replies(&mut s), vec![(1, Reply::Ok(refused))]);
    assert_eq!(s.state().get(b"k"), Some(Bytes::from("v")));
}

#[test]
fn a_leader_that_steps_down_answers_what_it_waits_for_at_once() {
    let mut s = service();
    let get = Command { client: 1, seq: 1, op: Op::get("k") };
    s.request(put(1), 1, 0);
    s.request(get.clone(), 2, 0);
    s.request(get, 3, 0);
    let ids = asked_ids(&mut s);
    s.accepted(ids[0], Index(1), Term(1));
    s.read_ready(ids[2], Index(1));
    // Still leading: nothing is answered.
    let leads = Output::RoleChanged { role: crate::io::Role::Leader, term: Term(1), leader: Some(NodeId(1)) };
    assert!(!s.on_output(&leads).unwrap());
    assert!(s.take_actions().is_empty());
    // Stepped down: the placed write and the unconfirmed read at once; the confirmed read
    // waits for its index.
    let follows = Output::RoleChanged { role: crate::io::Role::Follower, term: Term(1), leader: None };
    assert!(s.on_output(&follows).unwrap());
    let mut got = replies(&mut s);
    got.sort_by_key(|(to, _)| *to);
    assert_eq!(got, vec![(1, Reply::Timeout), (2, Reply::Timeout)]);
    s.apply(&[entry(1, 1, &put(1))]);
    assert_eq!(replies(&mut s), vec![(3, Reply::Ok(Resp::bulk("v")))]);
}
