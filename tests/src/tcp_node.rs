//! A node on the threaded runtime with FileStorage and the TCP transport, its applier
//! recording what it applied: what the multi-node tests over loopback start.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use skiff_core::{Config, NodeId};
use skiff_std::runtime::{RaftHandle, RaftNode};
use skiff_std::storage::{FileStorage, FileStorageOptions};
use skiff_std::transport::{TcpOptions, TcpTransport};

use crate::applier::{self, ServiceState};

/// Ticks of the nodes these tests start.
pub const TICK: Duration = Duration::from_millis(10);

/// A running node and what its service applied.
#[derive(Debug)]
pub struct Running {
    pub handle: RaftHandle,
    pub state: Arc<Mutex<ServiceState>>,
    pub applier: JoinHandle<()>,
}

/// Starts a node of `cluster_id` with `config` on the data directory `dir`, accepting on
/// `listener`; `peers` are the addresses it knows besides its configuration's. Its service
/// snapshots every `snapshot_every` entries.
pub fn start(
    config: Config,
    dir: &Path,
    listener: TcpListener,
    peers: &BTreeMap<NodeId, SocketAddr>,
    cluster_id: u64,
    snapshot_every: u64,
) -> Running {
    let (storage, restored) = FileStorage::open(dir, FileStorageOptions::default()).expect("storage opens");
    let state = applier::new_state();
    applier::restore(&state, restored.snapshot.as_ref());
    let opts = TcpOptions::new(config.id(), cluster_id, peers.clone());
    let (handle, applied) =
        RaftNode::start(config, restored, storage, TICK, |inbox| TcpTransport::start(opts, listener, inbox))
            .expect("node starts");
    let applier = applier::spawn(handle.snapshotter(), applied, state.clone(), Some(snapshot_every));
    Running { handle, state, applier }
}

/// Waits until `done`, failing the test (naming `what`) after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}
