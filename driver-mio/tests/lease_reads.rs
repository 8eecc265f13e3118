//! `--lease-reads` end to end: the leader answers reads from its lease (INFO counts them),
//! and after the leader is killed the new one serves the latest write, from its own lease
//! once a quorum answered its beats.

mod common;

use std::time::{Duration, Instant};

use common::{info_field, leader, resp, Cluster};

#[test]
fn a_cluster_with_lease_reads_serves_the_latest_write_across_a_leader_change() {
    let mut c = Cluster::with_flags(3, &["--lease-reads"]);
    let l = leader(&c);
    assert!(resp(c.resp[l], &["INFO", "raft"]).contains("read_mode:lease"));
    assert_eq!(resp(c.resp[l], &["SET", "k", "v1"]), "+OK\r\n");
    for _ in 0..20 {
        assert_eq!(resp(c.resp[l], &["GET", "k"]), "$2\r\nv1\r\n");
    }
    assert!(info_field(c.resp[l], "lease_reads") > 0, "the leader answered from its lease");

    c.kill(l);
    let next = leader(&c);
    assert_eq!(resp(c.resp[next], &["SET", "k", "v2"]), "+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = info_field(c.resp[next], "lease_reads");
    while info_field(c.resp[next], "lease_reads") == before {
        assert_eq!(resp(c.resp[next], &["GET", "k"]), "$2\r\nv2\r\n");
        assert!(Instant::now() < deadline, "the new leader never read from its lease");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The old leader comes back as a follower and forwards reads: never the old value.
    c.start(l);
    for _ in 0..20 {
        assert_eq!(resp(c.resp[l], &["GET", "k"]), "$2\r\nv2\r\n");
    }
}
