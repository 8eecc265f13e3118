//! Three nodes on loopback TCP with FileStorage in temporary directories: elect, replicate,
//! stop a node, go on until the others compact their logs, restart it from its files, and
//! watch it catch up through InstallSnapshot; every node must have applied the same sequence.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use skiff_core::{Config, Index, NodeId, Role};
use skiff_tests::applier::ServiceState;
use skiff_tests::tcp_node::{self, wait_for, Running};

const CLUSTER_ID: u64 = 0x5eed;
const SNAPSHOT_EVERY: u64 = 10;

fn start(id: u64, dir: &Path, listener: TcpListener, peers: &BTreeMap<NodeId, SocketAddr>) -> Running {
    let config = Config::builder(NodeId(id), peers.keys().copied(), id)
        .heartbeat_ticks(5)
        .election_ticks(20, 40)
        .snapshot_chunk_bytes(256)
        .build()
        .expect("valid config");
    tcp_node::start(config, dir, listener, peers, CLUSTER_ID, SNAPSHOT_EVERY)
}

fn leader(nodes: &BTreeMap<u64, Running>) -> Option<u64> {
    nodes.iter().find(|(_, n)| n.handle.status().is_some_and(|v| v.role == Role::Leader)).map(|(id, _)| *id)
}

/// Proposes `data` until some leader accepts it; returns where.
fn propose(nodes: &BTreeMap<u64, Running>, data: String) -> Index {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = leader(nodes) {
            if let Ok((index, _)) = nodes[&l].handle.propose(data.clone()) {
                return index;
            }
        }
        assert!(Instant::now() < deadline, "no leader accepted {data}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn applied(n: &Running) -> Index {
    n.state.lock().unwrap().applied()
}

#[test]
fn three_nodes_on_tcp_and_files_restart_and_catch_up_through_a_snapshot() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let peers: BTreeMap<NodeId, SocketAddr> =
        listeners.iter().enumerate().map(|(i, l)| (NodeId(i as u64 + 1), l.local_addr().unwrap())).collect();
    let mut nodes = BTreeMap::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let id = i as u64 + 1;
        nodes.insert(id, start(id, dirs[i].path(), l, &peers));
    }
    wait_for("a leader", Duration::from_secs(10), || leader(&nodes).is_some());

    let mut last = Index(0);
    for k in 0..25 {
        last = propose(&nodes, format!("a{k}"));
    }
    wait_for("all three to apply", Duration::from_secs(10), || nodes.values().all(|n| applied(n) >= last));

    // Stop a follower; the others go on well past their next snapshots.
    let victim = (1..=3).find(|id| Some(*id) != leader(&nodes)).unwrap();
    let stopped = nodes.remove(&victim).unwrap();
    stopped.handle.shutdown();
    stopped.applier.join().unwrap();
    let victim_applied = stopped.state.lock().unwrap().applied();
    for k in 0..40 {
        last = propose(&nodes, format!("b{k}"));
    }
    wait_for("the two to apply", Duration::from_secs(10), || nodes.values().all(|n| applied(n) >= last));
    for n in nodes.values() {
        let v = n.handle.status().unwrap();
        assert!(v.snapshot_index > victim_applied, "node {} compacted past the stopped node", v.id.0);
    }

    // Restart it from its directory, on its old address.
    let listener = TcpListener::bind(peers[&NodeId(victim)]).expect("rebind the old address");
    let restarted = start(victim, dirs[victim as usize - 1].path(), listener, &peers);
    assert!(applied(&restarted) >= Index(SNAPSHOT_EVERY), "the service restored its own snapshot");
    nodes.insert(victim, restarted);
    last = propose(&nodes, "c".to_string());
    wait_for("the restarted node to catch up", Duration::from_secs(20), || nodes.values().all(|n| applied(n) >= last));

    let states: Vec<ServiceState> = nodes.values().map(|n| n.state.lock().unwrap().clone()).collect();
    assert!(states[(victim - 1) as usize].installed >= 1, "the restarted node installed a snapshot");
    for s in &states {
        assert_eq!(s.error, None);
        let n = last.0 as usize;
        assert_eq!(s.log[..n], states[0].log[..n], "every node applied the same sequence");
    }
    for (_, n) in nodes {
        n.handle.shutdown();
        n.applier.join().unwrap();
    }
}
