//! Running one `skiff-node`: storage, Raft, the KV service and its client ports.
//!
//! The node runs on the mio event loop of [`crate::server`]; this module checks the data
//! directory, recovers storage, binds the ports and hands everything to the loop.

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use skiff_core::Node;
use skiff_std::storage::{check_cluster, FileStorage, FileStorageOptions, RealFs, StorageError};

use crate::config::{ConfigError, NodeConfig};
use crate::metrics::Metrics;
use crate::server::{self, Listeners, ServerOptions};

/// Why a node could not start (or had to stop).
#[derive(Debug)]
pub enum NodeError {
    Config(ConfigError),
    Storage(StorageError),
    Io {
        what: String,
        source: io::Error,
    },
    /// The core refused the state storage recovered.
    Restore(skiff_core::RestoreError),
    /// The event loop stopped on an error (storage failed, a snapshot does not decode, ...).
    Serve(crate::server::ServeError),
    /// The TLS files cannot be used.
    Tls(skiff_std::tls::TlsError),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Config(e) => write!(f, "{e}"),
            NodeError::Storage(e) => write!(f, "storage: {e}"),
            NodeError::Io { what, source } => write!(f, "{what}: {source}"),
            NodeError::Restore(e) => write!(f, "the stored state is refused: {e}"),
            NodeError::Serve(e) => write!(f, "the node stopped: {e}"),
            NodeError::Tls(e) => write!(f, "tls: {e}"),
        }
    }
}

impl std::error::Error for NodeError {}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Io { what, source }
}

/// Runs a node until `stop` is set, then shuts it down cleanly (what storage was handed is
/// written; the ports close).
pub fn run(cfg: &NodeConfig, stop: Arc<AtomicBool>) -> Result<(), NodeError> {
    let resolved = cfg.validate().map_err(NodeError::Config)?;
    // The files are read before anything starts: a wrong path or key is an error now.
    // The certificate must be one this node can serve and authenticate with now.
    let identity = resolved
        .tls
        .as_ref()
        .map(|t| {
            let identity = skiff_std::tls::Identity::load(&t.files)?;
            identity.check_for_node(cfg.cluster_id, cfg.id)?;
            Ok(identity)
        })
        .transpose()
        .map_err(NodeError::Tls)?;
    check_cluster(&mut RealFs, &cfg.data_dir, cfg.cluster_id).map_err(NodeError::Storage)?;
    let (storage, restored) =
        FileStorage::open(&cfg.data_dir, FileStorageOptions::default()).map_err(NodeError::Storage)?;
    let bind = |a: std::net::SocketAddr| TcpListener::bind(a).map_err(io_err(format!("cannot listen on {a}")));
    let listeners = Listeners {
        peer: bind(resolved.peer_listen)?,
        client: bind(resolved.client_listen)?,
        resp: bind(resolved.resp_listen)?,
    };
    let node = Node::new(resolved.raft.clone(), restored.clone()).map_err(NodeError::Restore)?;
    let metrics = Metrics::new();
    if let Some(a) = resolved.metrics_listen {
        let tls = match (&identity, &resolved.tls) {
            (Some(id), Some(t)) if t.metrics != server::TlsMode::Off => Some(crate::metrics::MetricsTls {
                mode: t.metrics,
                config: id.server_config(false).map_err(NodeError::Tls)?,
            }),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let at = metrics.serve(bind(a)?, tls).map_err(io_err(format!("cannot serve metrics on {a}")))?;
        tracing::info!(%at, scheme, "metrics served at /metrics");
    }
    let tls = match (identity, &resolved.tls) {
        (Some(identity), Some(t)) => Some(server::TlsOptions {
            identity,
            peer: t.peer,
            native: t.native,
            resp: t.resp,
            handshake_timeout: t.handshake_timeout,
        }),
        _ => None,
    };
    let opts = ServerOptions {
        cluster_id: cfg.cluster_id,
        tick: Duration::from_millis(cfg.tick_ms),
        peers: resolved.peers.clone(),
        clients: resolved.clients.clone(),
        data_dir: cfg.data_dir.clone(),
        snapshot_threshold: Some(cfg.snapshot_threshold),
        max_key_bytes: cfg.max_key_bytes,
        max_value_bytes: cfg.max_value_bytes,
        request_timeout: Duration::from_secs(1),
        max_peer_frame: 64 << 20,
        sessions: resolved.sessions,
        max_clients: cfg.max_clients,
        max_client_buffers: cfg.max_client_buffer_bytes,
        peer_handshake_timeout: Duration::from_millis(cfg.peer_handshake_timeout_ms),
        metrics: metrics.clone(),
        users: cfg.users().map_err(|e| NodeError::Config(ConfigError::User(e.0)))?,
        tls,
    };
    tracing::info!(
        id = cfg.id,
        peer = %resolved.peer_listen,
        client = %resolved.client_listen,
        resp = %resolved.resp_listen,
        "skiff-node serving"
    );
    let served = server::serve(node, &restored, storage, listeners, opts, &stop);
    tracing::info!(id = cfg.id, "stopped");
    served.map_err(NodeError::Serve)
}
