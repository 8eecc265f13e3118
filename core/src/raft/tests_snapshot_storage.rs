//! Unit tests of snapshots kept in storage only (`snapshots_in_storage`): the bytes go once
//! durable and installed, come back through `LoadSnapshot` / `SnapshotLoaded` when a
//! follower needs them, and a read-back that is not the current snapshot is ignored.

use alloc::vec::Vec;
use bytes::Bytes;

use super::testkit::{step_durably, Cluster};
use super::Node;
use crate::io::{Input, Output, Proposal, Restored};
use crate::types::{HardState, Index, NodeId, Snapshot, SnapshotMeta, Term};
use crate::{Config, Membership};

/// A 3-node cluster keeping snapshots in storage, led by 1, with node 3 cut off while 1 and
/// 2 commit `commands` and 1 compacts everything it applied into `state`.
fn leader_compacted_while_3_away(commands: u64, state: &'static [u8]) -> (Cluster, Snapshot) {
    let mut c = Cluster::with_builder(3, &[], |b| b.snapshots_in_storage(true));
    c.elect(1);
    c.cut.insert(3);
    for id in 0..commands {
        let _ = c.step(1, Input::Propose(Proposal { id, data: Bytes::from_static(b"x") }));
    }
    c.tick(3);
    let applied = c.nodes[&1].view().applied;
    let _ = c.step(1, Input::Snapshot { index: applied, data: Bytes::from_static(state) });
    let log = c.nodes[&1].log();
    let meta = log.snapshot_meta().expect("compacted").clone();
    assert_eq!(meta.index, applied);
    assert!(log.snapshot().is_none(), "durable, so released");
    (c, Snapshot { meta, data: Bytes::from_static(state) })
}

/// The `LoadSnapshot`s node `id` emitted so far.
fn loads(c: &Cluster, id: u64) -> Vec<Index> {
    c.log
        .iter()
        .filter_map(|(at, o)| matches!(o, Output::LoadSnapshot { .. } if *at == id).then_some(o))
        .map(|o| match o {
            Output::LoadSnapshot { index } => *index,
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn a_released_snapshot_is_read_back_for_a_follower_and_released_again() {
    let (mut c, snapshot) = leader_compacted_while_3_away(5, b"state");
    c.cut.clear();
    c.tick(4);
    assert_eq!(loads(&c, 1), [snapshot.meta.index], "asked once, however many heartbeats find n3 behind");
    assert_eq!(c.nodes[&3].view().snapshot_index, Index(0), "nothing sent without the bytes");

    // A read-back of another snapshot (storage still writing ours) is ignored; the next
    // heartbeat asks again.
    let other = Snapshot { meta: SnapshotMeta { index: Index(1), ..snapshot.meta.clone() }, data: Bytes::new() };
    let _ = c.step(1, Input::SnapshotLoaded(Some(other)));
    assert_eq!(c.nodes[&1].view().ignored.stale_snapshot_load, 1);
    c.tick(3);
    assert_eq!(loads(&c, 1).len(), 2, "asked again");

    let _ = c.step(1, Input::SnapshotLoaded(Some(snapshot.clone())));
    let v3 = c.nodes[&3].view();
    assert_eq!((v3.snapshot_index, v3.applied), (snapshot.meta.index, snapshot.meta.index), "n3 installed it");
    let installed = c.log.iter().any(|(at, o)| *at == 3 && *o == Output::ApplySnapshot(snapshot.clone()));
    assert!(installed, "n3's service got the bytes");
    for id in [1, 3] {
        assert!(c.nodes[&id].log().snapshot().is_none(), "n{id} released the bytes again");
    }
    // A read-back nobody asked for is ignored too.
    let _ = c.step(1, Input::SnapshotLoaded(Some(snapshot)));
    assert_eq!(c.nodes[&1].view().ignored.stale_snapshot_load, 2);
    assert!(c.nodes[&1].log().snapshot().is_none());
}

#[test]
fn bytes_stay_until_the_record_carrying_them_is_durable() {
    let cfg = Config::builder(NodeId(1), [NodeId(1)], 7).snapshots_in_storage(true).build().unwrap();
    let mut n = Node::new(cfg, Restored::default()).unwrap();
    step_durably(&mut n, Input::Campaign);
    step_durably(&mut n, Input::Propose(Proposal { id: 1, data: Bytes::from_static(b"x") }));
    let applied = n.view().applied;
    let out = n.step(Input::Snapshot { index: applied, data: Bytes::from_static(b"s") });
    let seq = out.iter().find_map(|o| if let Output::Persist(p) = o { Some(p.seq) } else { None }).unwrap();
    assert!(n.log().snapshot().is_some(), "held while its record is not durable");
    let _ = n.step(Input::Persisted { up_to: seq });
    assert!(n.log().snapshot().is_none() && n.view().snapshot_index == applied);
}

#[test]
fn a_restored_snapshot_is_released_at_the_first_step_and_kept_without_the_option() {
    let meta = SnapshotMeta {
        index: Index(3),
        term: Term(1),
        membership: Membership::from_voters([NodeId(1), NodeId(2), NodeId(3)]).unwrap(),
        membership_index: Index(0),
    };
    let restored = || Restored {
        hard_state: HardState { term: Term(1), vote: None, commit: Index(3) },
        snapshot: Some(Snapshot { meta: meta.clone(), data: Bytes::from_static(b"state@3") }),
        entries: Vec::new(),
    };
    for on in [true, false] {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let cfg = Config::builder(NodeId(1), ids, 7).snapshots_in_storage(on).build().unwrap();
        let mut n = Node::new(cfg, restored()).unwrap();
        let _ = n.step(Input::Tick);
        assert_eq!(n.log().snapshot().is_none(), on, "snapshots_in_storage {on}");
        assert_eq!(n.log().snapshot_meta(), Some(&meta));
    }
}

#[test]
fn a_second_follower_shares_the_copy_a_transfer_holds() {
    // Five nodes: 1 leads, 4 and 5 are away while 1 compacts; 4 comes back and is sent the
    // snapshot read back; 5 comes back while that transfer still holds the bytes (its
    // chunks to 4 are dropped, so it never ends) and shares them: no second read.
    let mut c = Cluster::with_builder(5, &[], |b| b.snapshots_in_storage(true).snapshot_chunk_bytes(2));
    c.elect(1);
    c.cut.extend([4, 5]);
    for id in 0..5 {
        let _ = c.step(1, Input::Propose(Proposal { id, data: Bytes::from_static(b"x") }));
    }
    c.tick(3);
    let applied = c.nodes[&1].view().applied;
    let _ = c.step(1, Input::Snapshot { index: applied, data: Bytes::from_static(b"a larger state") });
    let snapshot = Snapshot {
        meta: c.nodes[&1].log().snapshot_meta().unwrap().clone(),
        data: Bytes::from_static(b"a larger state"),
    };
    c.cut.remove(&4);
    c.drop = |m| matches!(m.body, crate::message::MessageBody::InstallSnapshot { .. }) && m.to == NodeId(4);
    c.tick(3);
    assert_eq!(loads(&c, 1).len(), 1);
    let _ = c.step(1, Input::SnapshotLoaded(Some(snapshot.clone())));
    assert!(c.nodes[&1].log().snapshot().is_none(), "only the transfer holds the bytes");
    c.cut.remove(&5);
    c.tick(3);
    assert_eq!(loads(&c, 1).len(), 1, "5's transfer shares 4's copy");
    assert_eq!(c.nodes[&5].view().snapshot_index, snapshot.meta.index, "n5 installed it");
}
