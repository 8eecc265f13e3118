//! Membership changes on the threaded runtime over loopback TCP with FileStorage, under a
//! steady stream of proposals: grow 3 to 5 (two learners that join with no configuration,
//! catch up through a snapshot, then are promoted together through a joint configuration),
//! remove the leader, and shrink to 3. Every proposal a leader acknowledged must be applied,
//! in the same order, on every node that stays; the joiners learn where everyone is from the
//! configuration alone.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_core::{ChangeStep, Config, Index, JointPolicy, Membership, NodeId, Role};
use skiff_std::address::PeerAddress;
use skiff_std::runtime::RaftHandle;
use skiff_tests::applier::ServiceState;
use skiff_tests::tcp_node::{self, wait_for, Running};

const CLUSTER_ID: u64 = 0x14;
const SNAPSHOT_EVERY: u64 = 50;

type Nodes = Arc<Mutex<BTreeMap<u64, Running>>>;

fn address(l: &TcpListener) -> PeerAddress {
    PeerAddress { raft: l.local_addr().unwrap(), client: None }
}

/// Starts node `id`: one of the bootstrap voters (with everyone's address), or a joiner that
/// knows nobody.
fn start(id: u64, dir: &Path, listener: TcpListener, bootstrap: Option<&BTreeMap<NodeId, PeerAddress>>) -> Running {
    let builder = match bootstrap {
        Some(b) => Config::builder(NodeId(id), b.keys().copied(), id)
            .initial_addresses(b.iter().map(|(n, a)| (*n, a.encode())).collect()),
        None => Config::joining(NodeId(id), id),
    };
    let config = builder.heartbeat_ticks(5).election_ticks(20, 40).snapshot_chunk_bytes(512).build().expect("valid");
    tcp_node::start(config, dir, listener, &BTreeMap::new(), CLUSTER_ID, SNAPSHOT_EVERY)
}

fn leader(nodes: &Nodes) -> Option<(u64, RaftHandle)> {
    let nodes = nodes.lock().unwrap();
    let mut best = None;
    for (id, n) in nodes.iter() {
        if let Some(v) = n.handle.status().filter(|v| v.role == Role::Leader) {
            if best.as_ref().map_or(true, |(t, _, _)| v.term > *t) {
                best = Some((v.term, *id, n.handle.clone()));
            }
        }
    }
    best.map(|(_, id, h)| (id, h))
}

/// Makes a change on whoever leads, retrying while it is refused (no leader yet, a change
/// still pending, the leader's own term not committed yet), and waits until a configuration
/// past it is committed and not joint.
fn change(nodes: &Nodes, steps: Vec<ChangeStep>, joint: JointPolicy) -> Membership {
    let deadline = Instant::now() + Duration::from_secs(20);
    let index = loop {
        assert!(Instant::now() < deadline, "no leader accepted {steps:?}");
        if let Some((_, h)) = leader(nodes) {
            match h.change_membership(steps.clone(), joint) {
                Ok((index, _)) => break index,
                Err(e) => eprintln!("change refused, retrying: {e}"),
            }
        }
        thread::sleep(Duration::from_millis(50));
    };
    let mut done = None;
    wait_for("the change to complete", Duration::from_secs(20), || {
        done = leader(nodes)
            .and_then(|(_, h)| h.status())
            .filter(|v| v.membership_index >= index && v.membership_committed && !v.membership.is_joint());
        done.is_some()
    });
    done.unwrap().membership
}

/// Proposes `p0, p1, ...` to whoever leads until stopped; returns the acknowledged ones.
fn load(nodes: Nodes, stop: Arc<AtomicBool>) -> JoinHandle<Vec<(Index, Bytes)>> {
    thread::spawn(move || {
        let mut acked = Vec::new();
        let mut k = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if let Some((_, h)) = leader(&nodes) {
                let data = Bytes::from(format!("p{k}"));
                if let Ok((index, _)) = h.propose(data.clone()) {
                    acked.push((index, data));
                    k += 1;
                }
            }
            thread::sleep(Duration::from_millis(3));
        }
        acked
    })
}

fn stop_node(nodes: &Nodes, id: u64) -> ServiceState {
    let n = nodes.lock().unwrap().remove(&id).expect("running");
    n.handle.shutdown();
    n.applier.join().unwrap();
    let s = n.state.lock().unwrap().clone();
    s
}

#[test]
fn grow_three_to_five_remove_the_leader_and_shrink_to_three_under_load() {
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let listeners: Vec<TcpListener> = (0..5).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let addrs: Vec<PeerAddress> = listeners.iter().map(address).collect();
    let bootstrap: BTreeMap<NodeId, PeerAddress> = (0..3).map(|i| (NodeId(i as u64 + 1), addrs[i])).collect();
    let nodes: Nodes = Arc::new(Mutex::new(BTreeMap::new()));
    for (i, l) in listeners.into_iter().enumerate() {
        let id = i as u64 + 1;
        let running = start(id, dirs[i].path(), l, (i < 3).then_some(&bootstrap));
        nodes.lock().unwrap().insert(id, running);
    }
    wait_for("a leader", Duration::from_secs(10), || leader(&nodes).is_some());
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(nodes.clone(), stop.clone());
    // Let the log pass a few snapshots, so the learners catch up through one.
    wait_for("some load", Duration::from_secs(20), || {
        leader(&nodes).and_then(|(_, h)| h.status()).is_some_and(|v| v.snapshot_index.0 >= 2 * SNAPSHOT_EVERY)
    });

    // Grow: two learners, then both promoted at once (a joint configuration).
    for n in [4u64, 5] {
        let a = addrs[n as usize - 1].encode();
        change(&nodes, vec![ChangeStep::AddLearner { node: NodeId(n), address: a }], JointPolicy::Auto);
    }
    wait_for("the learners to catch up", Duration::from_secs(20), || {
        leader(&nodes).is_some_and(|(_, h)| [4, 5].iter().all(|n| h.caught_up(NodeId(*n), 20) == Some(true)))
    });
    let promote = [4, 5].map(|n| ChangeStep::AddVoter { node: NodeId(n), address: Bytes::new() }).to_vec();
    let m = change(&nodes, promote, JointPolicy::Auto);
    assert_eq!(m.voters(), &[1, 2, 3, 4, 5].map(NodeId)[..]);
    assert!(m.learners().is_empty());
    for n in [4, 5] {
        let installed = nodes.lock().unwrap()[&n].state.lock().unwrap().installed;
        assert!(installed >= 1, "n{n} caught up through a snapshot");
    }

    // Remove the leader: another takes over, and the old one is told it is out.
    let (old, _) = leader(&nodes).expect("a leader");
    let m = change(&nodes, vec![ChangeStep::Remove { node: NodeId(old) }], JointPolicy::Auto);
    assert!(!m.is_member(NodeId(old)));
    wait_for("another leader", Duration::from_secs(10), || leader(&nodes).is_some_and(|(l, _)| l != old));
    wait_for("the removed leader to learn it is out", Duration::from_secs(10), || {
        nodes.lock().unwrap()[&old].handle.status().is_some_and(|v| !v.membership.is_member(NodeId(old)))
    });
    stop_node(&nodes, old);

    // Shrink to three: remove one more voter (not the leader).
    let (l, _) = leader(&nodes).expect("a leader");
    let victim = *m.voters().iter().find(|v| v.0 != l).expect("another voter");
    let m = change(&nodes, vec![ChangeStep::Remove { node: victim }], JointPolicy::Auto);
    assert_eq!(m.voters().len(), 3);
    stop_node(&nodes, victim.0);

    stop.store(true, Ordering::Relaxed);
    let acked = loader.join().unwrap();
    assert!(acked.len() > 50, "the load went on: {} proposals acknowledged", acked.len());
    // The last acknowledged proposal is applied everywhere; then every acknowledged one is
    // in every log, at its index (a new leader may have replaced some: those must not count).
    let (l, h) = leader(&nodes).expect("a leader");
    let last = h.propose("final").expect("the leader takes it").0;
    wait_for("every node to apply", Duration::from_secs(20), || {
        nodes.lock().unwrap().values().all(|n| n.state.lock().unwrap().applied() >= last)
    });
    let states: Vec<ServiceState> = nodes.lock().unwrap().values().map(|n| n.state.lock().unwrap().clone()).collect();
    let n = last.0 as usize;
    for s in &states {
        assert_eq!(s.error, None);
        assert_eq!(s.log[..n], states[0].log[..n], "every node applied the same sequence");
    }
    let lost: Vec<&(Index, Bytes)> =
        acked.iter().filter(|(i, d)| states[0].log.get(i.0 as usize - 1) != Some(d)).collect();
    // `propose` answers when the leader appended (not committed): a leader change drops the
    // few that were in flight, never more than a handful per change.
    assert!(lost.len() <= 50, "appended proposals missing at their index: {lost:?}");
    eprintln!("{} proposals acknowledged, {} replaced by a later leader; leader n{l}", acked.len(), lost.len());
    let ids: Vec<u64> = nodes.lock().unwrap().keys().copied().collect();
    for id in ids {
        stop_node(&nodes, id);
    }
}
