//! The snapshot policy (issue 12, item 13): a node snapshots once per `snapshot_threshold`
//! bytes of log written, not once per check while the WAL stays over the threshold (before,
//! a WAL whose active segment alone passed the threshold made the node snapshot its whole
//! state every 100 ms until the segment rolled). `BGSAVE` snapshots at once, whatever the
//! threshold; `LASTSAVE` tells when.

mod common;

use std::time::Duration;

use common::{info_field, resp, Cluster, RespConn};

#[test]
fn snapshots_follow_the_bytes_written_not_the_size_of_the_wal() {
    const THRESHOLD: u64 = 100_000;
    let c = Cluster::with_flags(1, &["--snapshot-threshold", &THRESHOLD.to_string()]);
    let port = c.resp[0];
    assert_eq!(resp(port, &["SET", "k", "v"]).trim(), "+OK");
    let mut conn = RespConn::connect(port, Duration::from_secs(10)).unwrap();
    let value = "x".repeat(100);
    // 2,000 writes of about 150 bytes of log each: about 300 KB, three thresholds' worth,
    // spread over seconds (many policy checks).
    for i in 0..2000 {
        assert_eq!(conn.call(&["SET", &format!("key{}", i % 50), &value]).unwrap(), "+OK");
    }
    std::thread::sleep(Duration::from_millis(500));
    let taken = info_field(port, "snapshots_taken");
    eprintln!("snapshots taken: {taken}");
    assert!((2..=4).contains(&taken), "{taken} snapshots for about 300 KB of log at a threshold of {THRESHOLD}");
    assert!(info_field(port, "snapshot_index") > 1000);
}

#[test]
fn bgsave_snapshots_at_once_and_lastsave_tells_when() {
    let c = Cluster::with_flags(1, &["--snapshot-threshold", "1000000000"]);
    let port = c.resp[0];
    let started = resp(port, &["LASTSAVE"]);
    assert!(started.starts_with(':'), "{started}");
    for i in 0..100 {
        assert_eq!(resp(port, &["SET", &format!("k{i}"), "v"]).trim(), "+OK");
    }
    assert_eq!(info_field(port, "snapshots_taken"), 0, "far below the threshold");
    assert_eq!(resp(port, &["BGSAVE"]), "+Background saving started\r\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while info_field(port, "snapshots_taken") == 0 {
        assert!(std::time::Instant::now() < deadline, "BGSAVE took no snapshot");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(info_field(port, "snapshot_index") >= 100);
    let last: u64 = resp(port, &["LASTSAVE"]).trim().trim_start_matches(':').parse().unwrap();
    let first: u64 = started.trim().trim_start_matches(':').parse().unwrap();
    assert!(last >= first);
    assert_eq!(resp(port, &["BGSAVE", "SCHEDULE"]), "+Background saving started\r\n");
    assert_eq!(resp(port, &["BGSAVE", "NOW"]), "-ERR syntax error\r\n");
    assert!(resp(port, &["LASTSAVE", "x"]).starts_with("-ERR wrong number of arguments"));
}
