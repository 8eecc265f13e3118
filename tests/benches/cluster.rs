//! Cluster benchmark: 3 nodes of the threaded runtime on loopback TCP with `FileStorage`
//! (fdatasync on every group commit), 64-byte commands from 1, 16 and 256 concurrent
//! proposers. Reports commits per second and the commit latency (propose until the entry
//! comes out of the leader's apply stream) at p50 and p99.
//!
//! `cargo bench -p skiff-tests --bench cluster` (optionally `-- SECONDS`, default 5 per run).
//! Data goes to a temporary directory on the same file system as `target/`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use skiff_core::{Config, NodeId, Role};
use skiff_std::runtime::{Applied, RaftHandle, RaftNode};
use skiff_std::storage::{FileStorage, FileStorageOptions};
use skiff_std::transport::{TcpOptions, TcpTransport};
use skiff_tests::load;

/// The leader's applied index, with a condition to wait on.
#[derive(Default)]
struct Progress {
    applied: Mutex<u64>,
    moved: Condvar,
}

fn cluster(base: &std::path::Path) -> (Vec<RaftHandle>, Vec<Arc<Progress>>) {
    let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let peers: BTreeMap<NodeId, SocketAddr> =
        listeners.iter().enumerate().map(|(i, l)| (NodeId(i as u64 + 1), l.local_addr().unwrap())).collect();
    let mut handles = Vec::new();
    let mut progress = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let id = NodeId(i as u64 + 1);
        let (storage, restored) =
            FileStorage::open(base.join(format!("n{}", id.0)), FileStorageOptions::default()).unwrap();
        let config = Config::builder(id, peers.keys().copied(), id.0)
            .heartbeat_ticks(10)
            .election_ticks(50, 100)
            .max_inflight_msgs(256)
            .build()
            .unwrap();
        let opts = TcpOptions::new(id, 1, peers.clone());
        let (h, applied) = RaftNode::start(config, restored, storage, Duration::from_millis(10), |inbox| {
            TcpTransport::start(opts, listener, inbox)
        })
        .unwrap();
        let p = Arc::new(Progress::default());
        let p2 = p.clone();
        thread::spawn(move || {
            while let Ok(first) = applied.recv() {
                let mut last = first;
                while let Ok(a) = applied.try_recv() {
                    last = a;
                }
                let index = match last {
                    Applied::Entry(e) => e.index.0,
                    Applied::Snapshot(s) => s.meta.index.0,
                };
                *p2.applied.lock().unwrap() = index;
                p2.moved.notify_all();
            }
        });
        handles.push(h);
        progress.push(p);
    }
    (handles, progress)
}

fn run(proposers: usize, secs: u64) {
    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (handles, progress) = cluster(base.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    let leader = loop {
        if let Some(l) = handles.iter().position(|h| h.status().is_some_and(|v| v.role == Role::Leader)) {
            break l;
        }
        assert!(Instant::now() < deadline, "no leader");
        thread::sleep(Duration::from_millis(10));
    };
    let r = load::run(proposers, Duration::from_secs(secs), |w| {
        let (h, p) = (handles[leader].clone(), progress[leader].clone());
        let payload = vec![w as u8; 64];
        move || {
            let Ok((index, _)) = h.propose(payload.clone()) else {
                thread::sleep(Duration::from_millis(1));
                return false;
            };
            let mut applied = p.applied.lock().unwrap();
            while *applied < index.0 {
                applied = p.moved.wait(applied).unwrap();
            }
            true
        }
    });
    println!(
        "proposers={proposers:>3} commits={:>7} commits_per_s={:>8.0} p50_ms={:.2} p99_ms={:.2}",
        r.ops, r.per_second, r.p50_ms, r.p99_ms
    );
    for h in handles {
        h.shutdown();
    }
}

fn main() {
    let secs = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    println!("cluster: 3 nodes, loopback TCP, FileStorage with fdatasync, 64-byte commands, {secs} s per run");
    for proposers in [1, 16, 256] {
        run(proposers, secs);
    }
}
