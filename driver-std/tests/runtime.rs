//! The threaded runtime on a single node with file storage: proposals come out of the apply
//! stream in order, reads get a read index, a restart recovers, and neither `shutdown` nor
//! dropping the last handle leaves a thread behind. (One test in this binary, so the thread
//! count of the process is ours alone.)

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use skiff_core::{Config, EntryKind, Index, NodeId, Role};
use skiff_std::runtime::{Applied, ProposeError, RaftHandle, RaftNode};
use skiff_std::storage::{FileStorage, FileStorageOptions};
use skiff_std::transport::{TcpOptions, TcpTransport};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

fn start(dir: &std::path::Path) -> (RaftHandle, std::sync::mpsc::Receiver<Applied>) {
    let (storage, restored) = FileStorage::open(dir, FileStorageOptions::default()).unwrap();
    let config = Config::builder(NodeId(1), [NodeId(1)], 1).build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peers = BTreeMap::from([(NodeId(1), listener.local_addr().unwrap())]);
    let opts = TcpOptions::new(NodeId(1), 1, peers);
    RaftNode::start(config, restored, storage, Duration::from_millis(5), |inbox| {
        TcpTransport::start(opts, listener, inbox)
    })
    .unwrap()
}

fn wait_leader(h: &RaftHandle) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.status().map(|v| v.role) != Some(Role::Leader) {
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_single_node_applies_reads_restarts_and_stops_cleanly() {
    let refused = |tune: fn(skiff_core::ConfigBuilder) -> skiff_core::ConfigBuilder| {
        let disk = skiff_std::storage::MemDisk::new();
        let cfg = tune(Config::builder(NodeId(1), [NodeId(1)], 1)).build().unwrap();
        let started = RaftNode::start(
            cfg,
            disk.restored(),
            skiff_std::storage::MemStorage::new(disk),
            Duration::from_millis(5),
            |_| -> std::io::Result<TcpTransport> { unreachable!("no transport is built for a refused configuration") },
        );
        started.expect_err("refused")
    };
    // Lease reads are refused up front: this runtime's ticks may lag its reads.
    assert!(matches!(refused(|b| b.lease_reads(50)), skiff_std::runtime::StartError::LeaseReadsUnsupported));
    // So are snapshots kept in storage only: its storage thread does not read them back.
    let in_storage = refused(|b| b.snapshots_in_storage(true));
    assert!(matches!(in_storage, skiff_std::runtime::StartError::SnapshotsInStorageUnsupported));
    let before = threads();
    let dir = tempfile::tempdir().unwrap();
    let (h, applied) = start(dir.path());
    wait_leader(&h);
    let mut last = Index(0);
    for k in 0..20 {
        last = h.propose(format!("c{k}")).unwrap().0;
    }
    let mut commands = Vec::new();
    while commands.len() < 20 {
        match applied.recv_timeout(Duration::from_secs(10)).unwrap() {
            Applied::Entry(e) if e.kind == EntryKind::Command => commands.push(e.data),
            _ => {}
        }
    }
    assert_eq!(commands, (0..20).map(|k| bytes::Bytes::from(format!("c{k}"))).collect::<Vec<_>>());
    assert!(h.read_index().unwrap() >= last);
    h.shutdown();
    assert_eq!(h.propose("late"), Err(ProposeError::Stopped));
    assert!(h.status().is_none());

    // Restart from the files: the log is there, applies start over from the beginning.
    let (h, applied) = start(dir.path());
    assert!(h.status().unwrap().last_index >= last);
    wait_leader(&h);
    let replayed = applied.iter().take_while(|a| !matches!(a, Applied::Entry(e) if e.index >= last)).count();
    assert!(replayed >= 20);
    // Dropping the last handle stops the node and joins its threads.
    drop(h);
    let deadline = Instant::now() + Duration::from_secs(5);
    while threads() > before {
        assert!(Instant::now() < deadline, "threads left behind: {} > {before}", threads());
        std::thread::sleep(Duration::from_millis(10));
    }
}
