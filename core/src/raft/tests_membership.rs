//! Unit tests of how a node follows its configuration: the latest `Config` entry in its log
//! takes effect when appended and is rolled back when truncated; restore, compaction and
//! snapshot install carry it; non-voters never campaign.

use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use super::testkit::{append, install, persist_seq, step_durably};
use super::Node;
use crate::io::{Input, Output, Restored, Role};
use crate::membership::Membership;
use crate::types::{Entry, EntryKind, HardState, Index, NodeId, SnapshotMeta, Term};
use crate::Config;

fn voters(ids: &[u64]) -> Membership {
    Membership::from_voters(ids.iter().map(|i| NodeId(*i))).unwrap()
}

fn config_entry(index: u64, term: u64, m: &Membership) -> Entry {
    let data = Bytes::from(postcard::to_allocvec(m).unwrap());
    Entry { term: Term(term), index: Index(index), kind: EntryKind::Config, data }
}

fn command(index: u64, term: u64) -> Entry {
    Entry { term: Term(term), index: Index(index), kind: EntryKind::Command, data: Bytes::from(vec![index as u8]) }
}

fn changes(out: &[Output]) -> Vec<(Index, Membership, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::MembershipChanged { index, membership, committed } => {
                Some((*index, membership.clone(), *committed))
            }
            _ => None,
        })
        .collect()
}

fn follower(id: u64, n: u64) -> Node {
    let cfg = Config::builder(NodeId(id), (1..=n).map(NodeId), 7).build().unwrap();
    Node::new(cfg, Restored::default()).unwrap()
}

#[test]
fn a_configuration_takes_effect_when_appended_and_is_reported_again_when_committed() {
    let mut n = follower(2, 3);
    assert_eq!((n.view().membership, n.view().membership_index), (voters(&[1, 2, 3]), Index(0)));
    let four = voters(&[1, 2, 3, 4]);
    let out = n.step(append(1, 2, 1, (0, 0), vec![command(1, 1), config_entry(2, 1, &four)], 0));
    assert_eq!(changes(&out), vec![(Index(2), four.clone(), false)]);
    let v = n.view();
    assert_eq!((v.membership, v.membership_index, v.membership_committed), (four.clone(), Index(2), false));
    // Committing it is reported once.
    let _ = n.step(Input::Persisted { up_to: persist_seq(&out).unwrap() });
    let out = n.step(append(1, 2, 1, (2, 1), vec![], 2));
    assert_eq!(changes(&out), vec![(Index(2), four.clone(), true)]);
    let out = n.step(append(1, 2, 1, (2, 1), vec![command(3, 1)], 3));
    assert!(changes(&out).is_empty(), "{out:?}");
    n.log().assert_invariants();
}

#[test]
fn a_truncated_configuration_entry_rolls_back_to_the_one_before() {
    let mut n = follower(2, 3);
    let four = voters(&[1, 2, 3, 4]);
    let _ = n.step(append(1, 2, 1, (0, 0), vec![command(1, 1), config_entry(2, 1, &four)], 1));
    assert_eq!(n.view().membership, four);
    // A leader of term 2 never had entry 2: it replaces it.
    let out = n.step(append(3, 2, 2, (1, 1), vec![command(2, 2)], 1));
    assert_eq!(changes(&out), vec![(Index(0), voters(&[1, 2, 3]), true)]);
    assert_eq!(n.view().membership_index, Index(0));
    n.log().assert_invariants();
}

#[test]
fn a_restored_log_gives_its_latest_configuration_without_a_report() {
    let five = voters(&[1, 2, 3, 4, 5]);
    let restored = Restored {
        hard_state: HardState { term: Term(2), vote: None, commit: Index(1) },
        snapshot: None,
        entries: vec![command(1, 1), config_entry(2, 2, &voters(&[1, 2, 3, 4])), config_entry(3, 2, &five)],
    };
    let cfg = Config::builder(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)], 1).build().unwrap();
    let mut n = Node::new(cfg, restored).unwrap();
    let v = n.view();
    assert_eq!((v.membership, v.membership_index, v.membership_committed), (five, Index(3), false));
    let out = n.step(Input::Tick);
    assert!(changes(&out).is_empty(), "nothing is reported at start: {out:?}");
}

#[test]
fn compaction_and_install_carry_the_configuration_in_force_at_the_snapshot() {
    // A follower holding a configuration at 2 compacts at 3: the snapshot names it.
    let mut n = follower(2, 3);
    let four = voters(&[1, 2, 3, 4]);
    let out = n.step(append(1, 2, 1, (0, 0), vec![command(1, 1), config_entry(2, 1, &four), command(3, 1)], 3));
    let _ = n.step(Input::Persisted { up_to: persist_seq(&out).unwrap() });
    let out = n.step(Input::Snapshot { index: Index(3), data: Bytes::from_static(b"s") });
    let Some(Output::Persist(p)) = out.iter().find(|o| matches!(o, Output::Persist(_))) else { panic!("{out:?}") };
    let meta = &p.snapshot.as_ref().expect("the snapshot").meta;
    assert_eq!((meta.membership_index, &meta.membership), (Index(2), &four));
    assert_eq!(n.view().membership, four);
    n.log().assert_invariants();

    // An install that discards the log takes the snapshot's configuration, whatever the log
    // held (openraft's stale-membership-after-install bug).
    // Its configuration entry past the snapshot goes with the rest of the log.
    let mut n = follower(2, 3);
    let mut entries = vec![command(1, 1), config_entry(2, 1, &four)];
    entries.extend((3..=6).map(|i| command(i, 1)));
    entries.push(config_entry(7, 1, &voters(&[1, 2, 3, 4, 7])));
    let _ = n.step(append(1, 2, 1, (0, 0), entries, 0));
    assert_eq!(n.view().membership_index, Index(7));
    let five = voters(&[1, 2, 3, 5]);
    let meta = SnapshotMeta { index: Index(6), term: Term(2), membership: five.clone(), membership_index: Index(5) };
    let out = n.step(install(3, 2, 2, meta, b"s6"));
    assert_eq!(changes(&out), vec![(Index(5), five.clone(), true)]);
    n.log().assert_invariants();
    // Entries after it bring a newer one; an install that keeps them keeps it.
    let six = voters(&[1, 2, 3, 5, 6]);
    let _ = step_durably(&mut n, append(3, 2, 2, (6, 2), vec![command(7, 2), config_entry(8, 2, &six)], 6));
    assert_eq!(n.view().membership, six);
    let meta = SnapshotMeta { index: Index(7), term: Term(2), membership: five, membership_index: Index(5) };
    let out = n.step(install(3, 2, 2, meta, b"s7"));
    assert!(changes(&out).is_empty(), "the latest is still the kept entry's: {out:?}");
    assert_eq!((n.view().membership, n.view().membership_index), (six, Index(8)));
    n.log().assert_invariants();
}

#[test]
fn non_voters_never_campaign_until_a_configuration_makes_them_voters() {
    // A joining node: no configuration at all.
    let cfg = Config::joining(NodeId(4), 3).build().unwrap();
    let mut n = Node::new(cfg, Restored::default()).unwrap();
    for _ in 0..200 {
        let out = n.step(Input::Tick);
        assert!(out.iter().all(|o| !matches!(o, Output::Send(_))), "a joiner stays silent: {out:?}");
    }
    let _ = n.step(Input::Campaign);
    assert_eq!((n.view().role, n.view().ignored.bad_campaign), (Role::Follower, 1));
    // It learns the cluster as a learner: still silent.
    let with_learner = voters(&[1, 2, 3])
        .apply(&[crate::ChangeStep::AddLearner { node: NodeId(4), address: Bytes::new() }], Default::default())
        .unwrap();
    let _ = step_durably(&mut n, append(1, 4, 1, (0, 0), vec![command(1, 1), config_entry(2, 1, &with_learner)], 2));
    for _ in 0..200 {
        let out = n.step(Input::Tick);
        assert!(out.iter().all(|o| !matches!(o, Output::Send(_))), "a learner stays silent: {out:?}");
    }
    // Promoted, it campaigns once its timer runs out.
    let promoted = with_learner
        .apply(&[crate::ChangeStep::AddVoter { node: NodeId(4), address: Bytes::new() }], Default::default())
        .unwrap();
    let _ = step_durably(&mut n, append(1, 4, 1, (2, 1), vec![config_entry(3, 1, &promoted)], 3));
    let campaigned = (0..200).any(|_| n.step(Input::Tick).iter().any(|o| matches!(o, Output::Send(_))));
    assert!(campaigned, "a voter campaigns when it hears no leader");
}
