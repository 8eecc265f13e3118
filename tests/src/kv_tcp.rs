//! A KV cluster on loopback TCP with file storage, for the end-to-end test and the benchmark.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use skiff_core::{Config, NodeId};
use skiff_std::kv::{KvOptions, KvServer, KvService};
use skiff_std::runtime::RaftNode;
use skiff_std::storage::{FileStorage, FileStorageOptions};
use skiff_std::transport::{TcpOptions, TcpTransport};

/// One node: its service and client port.
#[derive(Debug)]
pub struct TcpKvNode {
    pub service: KvService,
    pub port: KvServer,
    applier: JoinHandle<()>,
}

/// Addresses of a cluster: peer ports and client ports, by server index.
#[derive(Clone, Debug)]
pub struct Addresses {
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Each node's id and client address.
    pub clients: Vec<(NodeId, SocketAddr)>,
}

/// Binds `n` peer and client listeners on loopback.
pub fn bind(n: usize) -> (Addresses, Vec<(TcpListener, TcpListener)>) {
    let listeners: Vec<(TcpListener, TcpListener)> = (0..n)
        .map(|_| (TcpListener::bind("127.0.0.1:0").unwrap(), TcpListener::bind("127.0.0.1:0").unwrap()))
        .collect();
    let peers =
        listeners.iter().enumerate().map(|(i, (p, _))| (NodeId(i as u64 + 1), p.local_addr().unwrap())).collect();
    let clients =
        listeners.iter().enumerate().map(|(i, (_, c))| (NodeId(i as u64 + 1), c.local_addr().unwrap())).collect();
    (Addresses { peers, clients }, listeners)
}

/// Starts server `index` with its data in `dir`, snapshotting past `max_raft_state` bytes.
pub fn start(
    index: usize,
    dir: &Path,
    listeners: (TcpListener, TcpListener),
    addrs: &Addresses,
    max_raft_state: Option<u64>,
) -> TcpKvNode {
    let id = NodeId(index as u64 + 1);
    let (storage, restored) = FileStorage::open(dir, FileStorageOptions::default()).expect("storage opens");
    let snapshot = restored.snapshot.clone();
    let wal_bytes = storage.wal_bytes();
    let config = Config::builder(id, addrs.peers.keys().copied(), id.0)
        .heartbeat_ticks(5)
        .election_ticks(20, 40)
        .max_inflight_msgs(256)
        .build()
        .expect("valid config");
    let opts = TcpOptions::new(id, 9, addrs.peers.clone());
    let (peer, client) = listeners;
    let (raft, applied) = RaftNode::start(config, restored, storage, Duration::from_millis(10), |inbox| {
        TcpTransport::start(opts, peer, inbox)
    })
    .expect("node starts");
    let kv_opts = KvOptions {
        max_raft_state,
        raft_state_size: Box::new(move || wal_bytes.get()),
        max_key_bytes: 64,
        max_value_bytes: 4096,
        ..KvOptions::default()
    };
    let (service, applier) =
        KvService::start(raft, applied, snapshot.as_ref(), kv_opts).expect("the stored snapshot decodes");
    let port = KvServer::start(service.clone(), client, 1 << 20).expect("client port");
    TcpKvNode { service, port, applier }
}

impl TcpKvNode {
    /// Stops the client port and the node, and joins its threads.
    pub fn stop(mut self) {
        self.port.shutdown();
        self.service.raft().shutdown();
        let _ = self.applier.join();
    }
}
