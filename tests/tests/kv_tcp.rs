//! The KV service end to end: 3 nodes on loopback TCP with file storage, each with a client
//! port; a clerk writes and reads through whichever node leads, survives the leader being
//! stopped and restarted, and gets clear refusals for oversized requests; garbage on a
//! client port closes that connection only.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use skiff_core::{Config, NodeId, Role};
use skiff_std::kv::{ClerkError, KvClerk, KvOptions, KvServer, KvService};
use skiff_std::runtime::RaftNode;
use skiff_std::storage::{wal_size, FileStorage, FileStorageOptions};
use skiff_std::transport::{TcpOptions, TcpTransport};

struct Server {
    service: KvService,
    port: KvServer,
    applier: std::thread::JoinHandle<()>,
}

fn start(id: u64, dir: &Path, peer: TcpListener, client: TcpListener, peers: &BTreeMap<NodeId, SocketAddr>) -> Server {
    let (storage, restored) = FileStorage::open(dir, FileStorageOptions::default()).unwrap();
    let snapshot = restored.snapshot.clone();
    let config = Config::builder(NodeId(id), peers.keys().copied(), id)
        .heartbeat_ticks(5)
        .election_ticks(20, 40)
        .build()
        .unwrap();
    let opts = TcpOptions::new(NodeId(id), 9, peers.clone());
    let (raft, applied) = RaftNode::start(config, restored, storage, Duration::from_millis(10), |inbox| {
        TcpTransport::start(opts, peer, inbox)
    })
    .unwrap();
    let d = dir.to_path_buf();
    let kv_opts = KvOptions {
        max_raft_state: Some(4096),
        raft_state_size: Box::new(move || wal_size(&d)),
        max_key_bytes: 64,
        max_value_bytes: 4096,
        ..KvOptions::default()
    };
    let (service, applier) = KvService::start(raft, applied, snapshot.as_ref(), kv_opts);
    let port = KvServer::start(service.clone(), client, 1 << 20).unwrap();
    Server { service, port, applier }
}

fn stop(mut s: Server) {
    s.port.shutdown();
    s.service.raft().shutdown();
    s.applier.join().unwrap();
}

#[test]
fn a_clerk_writes_and_reads_through_leader_changes() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let peer_l: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let client_l: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let peers: BTreeMap<NodeId, SocketAddr> =
        peer_l.iter().enumerate().map(|(i, l)| (NodeId(i as u64 + 1), l.local_addr().unwrap())).collect();
    let client_addrs: Vec<SocketAddr> = client_l.iter().map(|l| l.local_addr().unwrap()).collect();
    let mut servers: Vec<Option<Server>> = Vec::new();
    for (i, (p, c)) in peer_l.into_iter().zip(client_l).enumerate() {
        servers.push(Some(start(i as u64 + 1, dirs[i].path(), p, c, &peers)));
    }
    let mut clerk = KvClerk::new(client_addrs.clone(), Duration::from_millis(500));
    clerk.put("a", "1").unwrap();
    for k in 0..200 {
        clerk.append("a", &format!(",{k}")).unwrap();
    }
    let expected: String = std::iter::once("1".to_string()).chain((0..200).map(|k| format!(",{k}"))).collect();
    assert_eq!(clerk.get("a").unwrap(), expected);
    assert_eq!(clerk.get("missing").unwrap(), "");

    // Stop the leader; the clerk finds the new one.
    let leader = (0..3)
        .find(|i| servers[*i].as_ref().unwrap().service.raft().status().is_some_and(|v| v.role == Role::Leader))
        .expect("a leader");
    stop(servers[leader].take().unwrap());
    clerk.append("a", ",after").unwrap();
    assert_eq!(clerk.get("a").unwrap(), format!("{expected},after"));

    // Restart it from its files on its old addresses: it catches up (its peers snapshotted).
    let p = TcpListener::bind(peers[&NodeId(leader as u64 + 1)]).unwrap();
    let c = TcpListener::bind(client_addrs[leader]).unwrap();
    servers[leader] = Some(start(leader as u64 + 1, dirs[leader].path(), p, c, &peers));
    clerk.put("b", "2").unwrap();
    let back = servers[leader].as_ref().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while back.service.local_get("b") != "2" {
        assert!(std::time::Instant::now() < deadline, "the restarted node did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(back.service.local_get("a"), format!("{expected},after"));

    // Refusals.
    assert!(matches!(clerk.put(&"k".repeat(65), "v"), Err(ClerkError::Invalid(_))));
    assert!(matches!(clerk.append("a", &"v".repeat(5000)), Err(ClerkError::Invalid(_))));
    // Garbage and a 4 GiB length on a client port close that connection only.
    for junk in [vec![0xffu8; 32], u32::MAX.to_be_bytes().to_vec()] {
        let mut s = TcpStream::connect(client_addrs[0]).unwrap();
        s.write_all(&junk).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest); // an Invalid answer, then the close
    }
    assert_eq!(clerk.get("b").unwrap(), "2");
    for s in servers.into_iter().flatten() {
        stop(s);
    }
}
