//! Membership changes on real `skiff-node` processes, through `SKIFF.MEMBER` on the leader's
//! RESP port (what `skiff member` sends): a node started with `--join` and an empty data
//! directory is added as a learner, promoted, and the leader removes itself; every key
//! written before and during the changes reads back afterwards, through any node that stays,
//! the new one included. Refusals come back as errors that say why.

mod common;

use std::time::Duration;

use common::{info_field, leader, member, resp, wait_for, Cluster};

fn set(port: u16, k: &str, v: &str) {
    assert_eq!(resp(port, &["SET", k, v]), "+OK\r\n", "SET {k}");
}

fn get(port: u16, k: &str) -> String {
    resp(port, &["GET", k])
}

#[test]
fn a_joining_node_is_added_promoted_and_the_leader_removes_itself() {
    let mut c = Cluster::with_spares(3, 1, &["--snapshot-threshold", "20000"]);
    let l = leader(&c);
    for k in 0..200 {
        set(c.resp[l], &format!("a{k}"), &format!("value-{k}-{}", "x".repeat(100)));
    }

    // Node 4 joins: with no configuration it waits, silent, to be added.
    c.start(3);
    wait_for("node 4 to answer", Duration::from_secs(10), || resp(c.resp[3], &["PING"]) == "+PONG\r\n");
    let peer4 = format!("127.0.0.1:{}", c.peer[3]);
    let native4 = format!("127.0.0.1:{}", c.native[3]);
    let answer = member(&c, &["ADD-LEARNER", "4", &peer4, &native4]);
    assert!(answer.starts_with("+OK v=1,2,3 l=4"), "{answer}");
    let commit = info_field(c.resp[leader(&c)], "commit_index");
    wait_for("the learner to catch up", Duration::from_secs(20), || info_field(c.resp[3], "applied_index") >= commit);
    // It caught up through the leader's snapshot, which the leader keeps in its file only:
    // read back for the transfer, and out of memory again after it.
    let l = leader(&c);
    assert!(info_field(c.resp[3], "snapshots_installed") >= 1, "the learner installed a snapshot");
    assert!(info_field(c.resp[l], "snapshots_read_back") >= 1, "the leader read its snapshot back");
    wait_for("the leader to drop the bytes again", Duration::from_secs(10), || {
        info_field(c.resp[l], "snapshot_in_memory") == 0
    });

    // A learner serves reads (forwarded to the leader) once it knows the cluster.
    let want = format!("value-7-{}", "x".repeat(100));
    assert_eq!(get(c.resp[3], "a7"), format!("${}\r\n{want}\r\n", want.len()), "a read through the learner");

    // Refusals say why: a node that is not a member, a follower asked.
    let answer = member(&c, &["PROMOTE", "9"]);
    assert!(answer.starts_with("-ERR n9 is not a member"), "{answer}");
    let follower = (0..3).find(|i| *i != leader(&c)).unwrap();
    let answer = resp(c.resp[follower], &["SKIFF.MEMBER", "PROMOTE", "4"]);
    assert!(answer.starts_with("-ERR not the leader"), "{answer}");
    let answer = resp(c.resp[follower], &["SKIFF.MEMBER", "FROB"]);
    assert!(answer.starts_with("-ERR usage: SKIFF.MEMBER"), "{answer}");

    let answer = member(&c, &["PROMOTE", "4"]);
    assert!(answer.starts_with("+OK v=1,2,3,4"), "{answer}");
    let list = member(&c, &["LIST"]);
    assert!(list.contains("voters: 1 2 3 4") && list.contains("committed: true"), "{list}");
    for k in 0..50 {
        set(c.resp[3], &format!("b{k}"), &format!("{k}"));
    }

    // The leader removes itself: another leads, and the old one is told it is out.
    let old = leader(&c);
    let answer = member(&c, &["REMOVE", &(old + 1).to_string()]);
    let voters =
        answer.strip_prefix("+OK v=").and_then(|r| r.split([' ', '\r']).next()).unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(voters.split(',').count(), 3, "{answer}");
    assert!(!voters.split(',').any(|v| v == (old + 1).to_string()), "{answer}");
    wait_for("another leader", Duration::from_secs(10), || {
        (0..4).filter(|i| *i != old).any(|i| resp(c.resp[i], &["INFO"]).contains("role:Leader"))
    });
    c.kill(old);
    // A follower removed learns that its removal committed (it is told before it is let go).
    let l = leader(&c);
    let removed = (0..4).find(|i| *i != old && *i != l && *i != 3).expect("a follower to remove");
    let answer = member(&c, &["REMOVE", &(removed + 1).to_string()]);
    assert!(answer.starts_with("+OK v="), "{answer}");
    wait_for("the removed follower to learn its removal committed", Duration::from_secs(10), || {
        let info = resp(c.resp[removed], &["INFO"]);
        let voters = info.lines().find_map(|l| l.strip_prefix("voters:")).unwrap_or("").to_string();
        info.contains("membership_committed:true") && !voters.split(',').any(|v| v == (removed + 1).to_string())
    });
    c.kill(removed);
    let stays: Vec<usize> = (0..4).filter(|i| *i != old && *i != removed).collect();
    for k in 0..50 {
        set(c.resp[stays[k % stays.len()]], &format!("c{k}"), &format!("{k}"));
    }
    // Everything written reads back through every node that stays, the joiner included.
    for &i in &stays {
        for k in (0..200).step_by(37) {
            let want = format!("value-{k}-{}", "x".repeat(100));
            assert_eq!(
                get(c.resp[i], &format!("a{k}")),
                format!("${}\r\n{want}\r\n", want.len()),
                "a{k} on node {}",
                i + 1
            );
        }
        assert_eq!(get(c.resp[i], "b49"), "$2\r\n49\r\n");
        assert_eq!(get(c.resp[i], "c49"), "$2\r\n49\r\n");
    }
    let status = resp(c.resp[stays[0]], &["INFO"]);
    assert!(status.contains("membership_committed:true") && status.contains("learners:\r\n"), "{status}");
}
