//! Client sessions are bounded (issue 12, items 8-9): 100,000 short RESP connections that
//! each SET once leave at most `max_sessions` (10,000 by default) sessions on every node, and
//! a snapshot whose size does not grow with the number of clients that ever wrote.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{info_field, leader, resp, Cluster, RespConn};

/// Short connections: each connects, SETs one key, and closes.
const CONNECTIONS: u64 = 100_000;
const THREADS: u64 = 32;
/// The default `max_sessions`.
const BOUND: u64 = 10_000;

#[test]
fn a_hundred_thousand_short_connections_leave_at_most_the_bound_of_sessions() {
    // Snapshots every MiB of WAL, so the state is snapshotted many times under the load.
    let c = Cluster::with_flags(3, &["--snapshot-threshold", "1000000"]);
    let l = leader(&c);
    let port = c.resp[l];
    let next = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let next = next.clone();
            thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= CONNECTIONS {
                    return;
                }
                let mut conn = RespConn::connect(port, Duration::from_secs(30)).expect("connect to the leader");
                // Few keys: the state's data stays small, so its size is the sessions'.
                let key = format!("k{}", i % 100);
                assert_eq!(conn.call(&["SET", &key, "v"]).unwrap(), "+OK", "connection {i}");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a client thread");
    }
    eprintln!("{CONNECTIONS} connections in {:.1} s", began.elapsed().as_secs_f64());
    // Every node applies the same entries: each holds exactly the bound once all committed.
    let deadline = Instant::now() + Duration::from_secs(30);
    for &p in &c.resp {
        loop {
            let sessions = info_field(p, "kv_sessions");
            assert!(sessions <= BOUND, "port {p}: {sessions} sessions over the bound of {BOUND}");
            if sessions == BOUND {
                break;
            }
            assert!(Instant::now() < deadline, "port {p}: {sessions} sessions, never reached the bound");
            thread::sleep(Duration::from_millis(100));
        }
    }
    // The latest snapshot holds the bounded table: a few hundred KiB, however many clients
    // wrote (without the bound it would hold 100,000 sessions).
    for (i, dir) in c.dirs.iter().enumerate() {
        let size = std::fs::metadata(dir.path().join("snapshot")).expect("a snapshot was taken").len();
        eprintln!("node {}: snapshot of {size} bytes", i + 1);
        assert!(size < 512 << 10, "node {}: a snapshot of {size} bytes", i + 1);
    }
}

#[test]
fn a_connection_whose_session_was_evicted_registers_again_transparently() {
    let c = Cluster::with_flags(1, &["--max-sessions", "1"]);
    let port = c.resp[0];
    assert_eq!(resp(port, &["PING"]).trim(), "+PONG", "the node is up");
    let mut a = RespConn::connect(port, Duration::from_secs(10)).unwrap();
    let mut b = RespConn::connect(port, Duration::from_secs(10)).unwrap();
    assert_eq!(a.call(&["SET", "a", "1"]).unwrap(), "+OK");
    // b's registration evicts a's session (the bound is 1).
    assert_eq!(b.call(&["SET", "b", "1"]).unwrap(), "+OK");
    // a's next write finds its session gone; nothing of it was in doubt, so it registers
    // again and the write applies once.
    assert_eq!(a.call(&["APPEND", "a", "2"]).unwrap(), ":2");
    assert_eq!(a.call(&["GET", "a"]).unwrap(), "12");
    assert_eq!(info_field(port, "kv_sessions"), 1);
}
