//! Membership changes on real `skiff-node` processes while Redis clients on every node read,
//! write and append: the cluster grows from 3 to 5 voters (two learners caught up and
//! promoted), a killed node is replaced (a new learner promoted, the dead one removed), a
//! change is made and its leader killed at once (SIGKILL, then restarted on its disk), and
//! the cluster shrinks back to 3 by removing a follower and then the leader itself. The whole
//! history must be linearizable and every acknowledged append present at the end. A second
//! test makes changes while peer links are black-holed by relays: the leader stops hearing
//! its followers as it adds a learner, and a follower hears nothing while the learner is
//! promoted.

mod common;

use std::thread;
use std::time::Duration;

use common::load::{check_history, Load};
use common::{info_field, leader, member, members, resp, signal, wait_for, Cluster, RespConn};

const CHANGE: Duration = Duration::from_secs(30);

/// `SKIFF.MEMBER ADD-LEARNER` arguments for spare `i`.
fn learner_args(c: &Cluster, i: usize) -> Vec<String> {
    let (peer, native) = (format!("127.0.0.1:{}", c.dial[i]), format!("127.0.0.1:{}", c.native[i]));
    vec!["ADD-LEARNER".into(), (i + 1).to_string(), peer, native]
}

fn start_joiner(c: &mut Cluster, i: usize) {
    c.start(i);
    wait_for("the joiner to answer", CHANGE, || resp(c.resp[i], &["PING"]) == "+PONG\r\n");
}

fn wait_caught_up(c: &Cluster, i: usize) {
    let caught_up = format!("peer_{}_caught_up:true", i + 1);
    wait_for("the learner to catch up", CHANGE, || resp(c.resp[leader(c)], &["INFO"]).contains(&caught_up));
}

/// A committed configuration that is not joint, as the leader sees it.
fn wait_settled(c: &Cluster) {
    wait_for("a committed configuration", CHANGE, || {
        let (_, _, outgoing, committed) = members(c);
        outgoing.is_empty() && committed
    });
}

/// Adds spare `i` as a learner, waits until the leader sees it caught up, promotes it.
fn add_voter(c: &mut Cluster, i: usize) {
    start_joiner(c, i);
    let args = learner_args(c, i);
    let answer = member(c, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(answer.starts_with("+OK"), "add-learner {}: {answer}", i + 1);
    wait_caught_up(c, i);
    let id = (i + 1).to_string();
    let answer = member(c, &["PROMOTE", &id]);
    assert!(answer.starts_with("+OK"), "promote {id}: {answer}");
    assert!(members(c).0.contains(&i), "{i} votes");
}

/// Removes node `i` (through the leader, which may be `i`), waits for a leader that is not
/// `i` with the change committed, then stops `i` for good.
fn remove(c: &mut Cluster, i: usize) {
    let answer = member(c, &["REMOVE", &(i + 1).to_string()]);
    assert!(answer.starts_with("+OK"), "remove {}: {answer}", i + 1);
    wait_for("a leader without the removed node", CHANGE, || {
        (0..c.children.len())
            .any(|k| k != i && c.children[k].is_some() && resp(c.resp[k], &["INFO"]).contains("role:Leader"))
    });
    c.kill(i);
    let (voters, learners, outgoing, committed) = members(c);
    assert!(!voters.contains(&i) && !learners.contains(&i) && outgoing.is_empty() && committed, "{voters:?}");
}

#[test]
fn grow_replace_kill_mid_change_and_shrink_under_load() {
    let mut c = Cluster::with_spares(3, 3, &["--snapshot-threshold", "200000"]);
    leader(&c);
    let mut load = Load::new();
    for client in 0..3u64 {
        load.add_resp_client(100 + client, c.resp.clone(), true);
    }
    thread::sleep(Duration::from_millis(800));

    // Grow 3 to 5.
    add_voter(&mut c, 3);
    add_voter(&mut c, 4);
    assert_eq!(members(&c).0, vec![0, 1, 2, 3, 4]);

    // Replace a killed follower: a new node is added and promoted, the dead one removed.
    let l = leader(&c);
    let dead = [2, 1].into_iter().find(|i| *i != l).expect("a follower");
    c.kill(dead);
    thread::sleep(Duration::from_millis(500));
    add_voter(&mut c, 5);
    let answer = member(&c, &["REMOVE", &(dead + 1).to_string()]);
    assert!(answer.starts_with("+OK"), "{answer}");
    assert_eq!(members(&c).0.len(), 5);

    // A change whose leader is killed mid-way: the other voters are frozen (SIGSTOP), so the
    // leader appends the change but cannot commit it; it is killed then, and the others
    // thawed. The change survives or it does not (the frozen nodes may still read it from
    // their sockets), the cluster goes on, and the old leader comes back on its disk.
    let l = leader(&c);
    let (voters, ..) = members(&c);
    let victim = *voters.iter().find(|v| **v != l).expect("another voter");
    let frozen: Vec<u32> =
        voters.iter().filter(|v| **v != l).map(|v| c.children[*v].as_ref().expect("up").id()).collect();
    for pid in &frozen {
        signal(*pid, "-STOP");
    }
    let port = c.resp[l];
    let asked = thread::spawn(move || {
        if let Ok(mut conn) = RespConn::connect(port, Duration::from_secs(10)) {
            let _ = conn.call(&["SKIFF.MEMBER", "REMOVE", &(victim + 1).to_string()]);
        }
    });
    wait_for("the leader to append the change", CHANGE, || {
        resp(c.resp[l], &["INFO"]).contains("membership_committed:false")
    });
    c.kill(l);
    for pid in &frozen {
        signal(*pid, "-CONT");
    }
    asked.join().unwrap();
    wait_for("a new leader", CHANGE, || leader(&c) != l);
    c.start(l);
    wait_settled(&c);
    let (voters, ..) = members(&c);
    println!("after the leader was killed mid-change: voters {voters:?} (victim {victim})");
    if voters.contains(&victim) {
        remove(&mut c, victim);
    } else {
        c.kill(victim);
    }
    assert_eq!(members(&c).0.len(), 4);

    // Shrink to 3: the leader removes itself.
    let l = leader(&c);
    remove(&mut c, l);
    let (voters, ..) = members(&c);
    assert_eq!(voters.len(), 3, "{voters:?}");
    thread::sleep(Duration::from_millis(1000));

    check_final(&c, load, 200, &voters);
}

/// Stops the load; at least `min_acked` operations were acknowledged, the history checks
/// pass (final values read through the leader), and every voter catches up with the
/// leader's commit index.
fn check_final(c: &Cluster, load: Load, min_acked: usize, voters: &[usize]) {
    let errors = load.errors.load(std::sync::atomic::Ordering::Relaxed);
    let history = load.finish();
    let acked = history.iter().filter(|o| o.ret.is_some()).count();
    println!("{acked} operations acknowledged, {errors} error replies");
    assert!(acked > min_acked, "only {acked} operations acknowledged ({errors} error replies)");
    let l = leader(c);
    let mut conn = RespConn::connect(c.resp[l], Duration::from_secs(10)).unwrap();
    check_history(&history, |key| {
        let v = conn.call(&["GET", key]).unwrap();
        if v == "(nil)" {
            String::new()
        } else {
            v
        }
    });
    let commit = info_field(c.resp[l], "commit_index");
    for &i in voters {
        wait_for("the voters to apply everything", CHANGE, || info_field(c.resp[i], "applied_index") >= commit);
    }
}

#[test]
fn changes_across_black_holed_links_stay_linearizable() {
    let mut c = Cluster::with_relays(3, 1, &[]);
    leader(&c);
    let mut load = Load::new();
    for client in 0..3u64 {
        load.add_resp_client(200 + client, c.resp[..3].to_vec(), true);
    }
    thread::sleep(Duration::from_millis(800));

    // The leader stops hearing its followers just as it adds a learner: it cannot commit,
    // steps down (check-quorum), and the others elect a leader among themselves.
    start_joiner(&mut c, 3);
    let l = leader(&c);
    let (port, args) = (c.resp[l], learner_args(&c, 3));
    c.relays[l].cut();
    let asked = thread::spawn(move || {
        if let Ok(mut conn) = RespConn::connect(port, Duration::from_secs(10)) {
            let mut command = vec!["SKIFF.MEMBER"];
            command.extend(args.iter().map(String::as_str));
            let _ = conn.call(&command);
        }
    });
    wait_for("a leader among the others", CHANGE, || {
        (0..3).any(|k| k != l && resp(c.resp[k], &["INFO"]).contains("role:Leader"))
    });
    thread::sleep(Duration::from_millis(1000));
    c.relays[l].heal();
    asked.join().unwrap();
    wait_settled(&c);
    let (voters, learners, ..) = members(&c);
    println!("after the cut: voters {voters:?} learners {learners:?}");
    if !learners.contains(&3) {
        let args = learner_args(&c, 3);
        let answer = member(&c, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(answer.starts_with("+OK"), "{answer}");
    }
    wait_caught_up(&c, 3);

    // A follower hears nothing while the learner is promoted: the others commit it.
    let l = leader(&c);
    let f = (0..3).find(|k| *k != l).expect("a follower");
    c.relays[f].cut();
    let answer = member(&c, &["PROMOTE", "4"]);
    assert!(answer.starts_with("+OK v=1,2,3,4"), "{answer}");
    thread::sleep(Duration::from_millis(1000));
    c.relays[f].heal();
    wait_settled(&c);
    let (voters, ..) = members(&c);
    assert_eq!(voters, vec![0, 1, 2, 3]);
    thread::sleep(Duration::from_millis(500));

    check_final(&c, load, 100, &voters);
}
