//! Running one `skiff-node`: storage, Raft, the KV service and its client ports.
//!
//! Today the node runs on skiff-std's threaded runtime; the mio event loop the issue asks for
//! is not built yet. The ports, the configuration and the behaviour are the ones the mio
//! runtime will keep.

use std::fmt;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use skiff_std::kv::{KvOptions, KvServer, KvService};
use skiff_std::runtime::RaftNode;
use skiff_std::storage::{wal_size, FileStorage, FileStorageOptions, StorageError};
use skiff_std::transport::{TcpOptions, TcpTransport};

use crate::config::{ConfigError, NodeConfig};
use crate::resp_server::RespServer;

/// Why a node could not start (or had to stop).
#[derive(Debug)]
pub enum NodeError {
    Config(ConfigError),
    Storage(StorageError),
    /// The data directory belongs to another cluster.
    WrongCluster {
        dir: String,
        found: String,
        expected: u64,
    },
    Io {
        what: String,
        source: io::Error,
    },
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Config(e) => write!(f, "{e}"),
            NodeError::Storage(e) => write!(f, "storage: {e}"),
            NodeError::WrongCluster { dir, found, expected } => {
                write!(f, "{dir} belongs to cluster {found}, not {expected}: refusing to start")
            }
            NodeError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for NodeError {}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Io { what, source }
}

/// The data directory records its cluster id; another cluster's directory is refused.
fn check_cluster(dir: &Path, cluster_id: u64) -> Result<(), NodeError> {
    fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    let marker = dir.join("cluster_id");
    match fs::read_to_string(&marker) {
        Ok(found) if found.trim() == cluster_id.to_string() => Ok(()),
        Ok(found) => Err(NodeError::WrongCluster {
            dir: dir.display().to_string(),
            found: found.trim().to_string(),
            expected: cluster_id,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::write(&marker, cluster_id.to_string()).map_err(io_err(format!("cannot write {}", marker.display())))
        }
        Err(e) => Err(io_err(format!("cannot read {}", marker.display()))(e)),
    }
}

/// Runs a node until `stop` is set, then shuts it down cleanly (what storage was handed is
/// written; the ports close).
pub fn run(cfg: &NodeConfig, stop: Arc<AtomicBool>) -> Result<(), NodeError> {
    let resolved = cfg.validate().map_err(NodeError::Config)?;
    check_cluster(&cfg.data_dir, cfg.cluster_id)?;
    let (storage, restored) =
        FileStorage::open(&cfg.data_dir, FileStorageOptions::default()).map_err(NodeError::Storage)?;
    let snapshot = restored.snapshot.clone();
    let peer_listener = TcpListener::bind(resolved.peer_listen)
        .map_err(io_err(format!("cannot listen on {}", resolved.peer_listen)))?;
    let client_listener = TcpListener::bind(resolved.client_listen)
        .map_err(io_err(format!("cannot listen on {}", resolved.client_listen)))?;
    let resp_listener = TcpListener::bind(resolved.resp_listen)
        .map_err(io_err(format!("cannot listen on {}", resolved.resp_listen)))?;
    let opts = TcpOptions::new(resolved.raft.id(), cfg.cluster_id, resolved.peers.clone());
    let tick = Duration::from_millis(cfg.tick_ms);
    let (raft, applied) = RaftNode::start(resolved.raft.clone(), restored, storage, tick, |inbox| {
        TcpTransport::start(opts, peer_listener, inbox)
    })
    .map_err(|e| NodeError::Io { what: "cannot start the node".into(), source: io::Error::other(e.to_string()) })?;
    let dir = cfg.data_dir.clone();
    let kv_opts = KvOptions {
        max_raft_state: Some(cfg.snapshot_threshold),
        raft_state_size: Box::new(move || wal_size(&dir)),
        max_key_bytes: cfg.max_key_bytes,
        max_value_bytes: cfg.max_value_bytes,
        request_timeout: Duration::from_secs(1),
    };
    let (service, applier) = KvService::start(raft.clone(), applied, snapshot.as_ref(), kv_opts);
    let max_frame = (cfg.max_key_bytes + cfg.max_value_bytes + 1024) as u64;
    let mut native = KvServer::start(service.clone(), client_listener, max_frame).map_err(io_err("client port"))?;
    let mut resp = RespServer::start(resp_listener, resolved.clients.clone(), service.clone(), cfg.max_value_bytes)
        .map_err(io_err("RESP port"))?;
    tracing::info!(
        id = cfg.id,
        peer = %resolved.peer_listen,
        client = %resolved.client_listen,
        resp = %resolved.resp_listen,
        "skiff-node serving"
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!(id = cfg.id, "stopping");
    resp.shutdown();
    native.shutdown();
    raft.shutdown();
    let _ = applier.join();
    Ok(())
}
