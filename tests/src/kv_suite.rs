//! The lab's KV tests (parts 4A and 4B), as functions over [`KvLab`]: `GenericTest` and the
//! special cases. Each panics with a message on failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use skiff_verify::rng::SimRng;

use crate::kv_lab::{KvLab, LabClerk};

/// The lab's `electionTimeout` for the KV tests.
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// How long clients run per round (the lab's 5 s).
const ROUND: Duration = Duration::from_secs(5);

/// The options of the lab's `GenericTest`.
#[derive(Clone, Copy, Debug)]
pub struct Generic {
    pub clients: usize,
    pub servers: usize,
    pub unreliable: bool,
    pub crash: bool,
    pub partitions: bool,
    /// `None` is the lab's `-1` (never snapshot).
    pub max_raft_state: Option<u64>,
    pub random_keys: bool,
}

impl Generic {
    /// `clients` clients on `servers` servers: reliable, no crashes or partitions, no
    /// snapshots, fixed keys; tests change what they need with `..Generic::new(c, s)`.
    pub fn new(clients: usize, servers: usize) -> Generic {
        Generic {
            clients,
            servers,
            unreliable: false,
            crash: false,
            partitions: false,
            max_raft_state: None,
            random_keys: false,
        }
    }
}

/// Every value `Append(key, "x c j y")` for j < count must be in `v` once, in order.
fn check_appends(client: usize, v: &str, count: usize) {
    let mut last = None;
    for j in 0..count {
        let wanted = format!("x {client} {j} y");
        let Some(at) = v.find(&wanted) else { panic!("client {client}: missing append {wanted:?} in {v:?}") };
        assert!(v[at + wanted.len()..].find(&wanted).is_none(), "client {client}: duplicate append {wanted:?}");
        if let Some(prev) = last {
            assert!(at > prev, "client {client}: append {wanted:?} out of order");
        }
        last = Some(at);
    }
}

/// One client of a round: appends and reads its key (or random keys) until told to stop;
/// returns how many appends (and puts) it made.
fn client_loop(mut ck: LabClerk, cli: usize, g: Generic, stop: Arc<AtomicBool>, seed: u64) -> usize {
    let mut rng = SimRng::new(seed ^ (cli as u64) << 20);
    let mut j = 0;
    let mut last = String::new();
    if !g.random_keys {
        ck.put(&cli.to_string(), &last);
    }
    while !stop.load(Ordering::Relaxed) {
        let key = if g.random_keys { rng.below(g.clients).to_string() } else { cli.to_string() };
        let nv = format!("x {cli} {j} y");
        if rng.below(1000) < 500 {
            ck.append(&key, &nv);
            if !g.random_keys {
                last.push_str(&nv);
            }
            j += 1;
        } else if g.random_keys && rng.below(1000) < 100 {
            ck.put(&key, &nv);
            j += 1;
        } else {
            let v = ck.get(&key);
            if !g.random_keys {
                assert_eq!(v, last, "client {cli}: get({key}) returned a wrong value");
            }
        }
    }
    j
}

/// Splits the servers at random every 1000-1199 ms until told to stop.
fn partitioner(lab: KvLab, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = SimRng::new(seed ^ 0x9a47);
    while !stop.load(Ordering::Relaxed) {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..lab.n() {
            if rng.below(2) == 0 {
                a.push(i);
            } else {
                b.push(i);
            }
        }
        lab.partition(&a, &b);
        thread::sleep(Duration::from_millis(1000 + rng.between(0, 200)));
    }
}

/// The lab's `GenericTest`: 3 rounds of clients under the chosen faults, then per-client
/// append checks, log and snapshot size bounds, and linearizability of everything.
pub fn generic(g: Generic, seed: u64) {
    let lab = KvLab::new(g.servers, g.unreliable, g.max_raft_state, seed);
    let mut ck = lab.clerk();
    for round in 0..3 {
        let stop_clients = Arc::new(AtomicBool::new(false));
        let stop_partitioner = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..g.clients)
            .map(|cli| {
                let (c, stop) = (lab.clerk(), stop_clients.clone());
                thread::spawn(move || client_loop(c, cli, g, stop, seed ^ round))
            })
            .collect();
        let parts = g.partitions.then(|| {
            thread::sleep(Duration::from_secs(1));
            let (l, stop) = (lab.clone(), stop_partitioner.clone());
            thread::spawn(move || partitioner(l, stop, seed ^ round))
        });
        thread::sleep(ROUND);
        stop_clients.store(true, Ordering::Relaxed);
        stop_partitioner.store(true, Ordering::Relaxed);
        if let Some(p) = parts {
            p.join().expect("partitioner");
            lab.connect_all();
            thread::sleep(ELECTION_TIMEOUT);
        }
        if g.crash {
            for i in 0..g.servers {
                lab.shutdown_server(i);
            }
            thread::sleep(ELECTION_TIMEOUT);
            for i in 0..g.servers {
                lab.start_server(i);
            }
            lab.connect_all();
        }
        for (cli, c) in clients.into_iter().enumerate() {
            let appended = c.join().expect("a client failed");
            let v = ck.get(&cli.to_string());
            if !g.random_keys {
                check_appends(cli, &v, appended);
            }
        }
        match g.max_raft_state {
            Some(max) => {
                let size = lab.log_size() as u64;
                assert!(size <= 8 * max, "round {round}: persisted Raft state {size} bytes, over 8 x {max}");
            }
            None => assert_eq!(lab.snapshot_size(), 0, "round {round}: snapshotted with no max_raft_state"),
        }
    }
    if let Err(e) = lab.check_linearizable() {
        panic!("{e}");
    }
}

/// The lab's `GenericTestSpeed` as a correctness test: 1000 sequential appends are all there,
/// in order. (Their speed is measured by the `kv` benchmark, not asserted here.)
pub fn speed(max_raft_state: Option<u64>, seed: u64) {
    let lab = KvLab::new(3, false, max_raft_state, seed);
    let mut ck = lab.clerk();
    ck.get("x");
    for i in 0..1000 {
        ck.append("x", &format!("x 0 {i} y"));
    }
    check_appends(0, &ck.get("x"), 1000);
}

/// The lab's `TestUnreliableOneKey`: 5 clerks x 10 appends to one key on an unreliable network;
/// every append present once, each clerk's in order.
pub fn unreliable_one_key(seed: u64) {
    let lab = KvLab::new(3, true, None, seed);
    let mut ck = lab.clerk();
    ck.put("k", "");
    let clients: Vec<_> = (0..5)
        .map(|cli| {
            let mut c = lab.clerk();
            thread::spawn(move || {
                for j in 0..10 {
                    c.append("k", &format!("x {cli} {j} y"));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }
    let v = ck.get("k");
    for cli in 0..5 {
        check_appends(cli, &v, 10);
    }
    assert_eq!(v.len(), (0..5).map(|c| (0..10).map(|j| format!("x {c} {j} y").len()).sum::<usize>()).sum());
}

/// The lab's `TestOnePartition`: the majority side makes progress; operations on the minority
/// side (with the old leader) do not complete; after healing they do.
pub fn one_partition(seed: u64) {
    let lab = KvLab::new(5, false, None, seed);
    let mut ck = lab.clerk();
    ck.put("1", "13");
    // The leader and one other on the minority side (the lab's `make_partition`).
    let leader = lab.leader().expect("a leader after a completed Put");
    let p2 = [leader, (leader + 1) % 5];
    let p1: Vec<usize> = (0..5).filter(|i| !p2.contains(i)).collect();
    lab.partition(&p1, &p2);
    let mut ckp1 = lab.clerk();
    ckp1.connect_only(&p1);
    let mut ckp2a = lab.clerk();
    ckp2a.connect_only(&p2);
    let mut ckp2b = lab.clerk();
    ckp2b.connect_only(&p2);
    ckp1.put("1", "14");
    assert_eq!(ckp1.get("1"), "14");
    let done_put = Arc::new(AtomicBool::new(false));
    let done_get = Arc::new(AtomicBool::new(false));
    let (dp, dg) = (done_put.clone(), done_get.clone());
    let (links_a, links_b) = (ckp2a.links(), ckp2b.links());
    let t1 = thread::spawn(move || {
        ckp2a.put("1", "15");
        dp.store(true, Ordering::SeqCst);
    });
    let t2 = thread::spawn(move || {
        ckp2b.get("1");
        dg.store(true, Ordering::SeqCst);
    });
    thread::sleep(Duration::from_secs(1));
    assert!(!done_put.load(Ordering::SeqCst), "a Put completed in the minority");
    assert!(!done_get.load(Ordering::SeqCst), "a Get completed in the minority");
    assert_eq!(ckp1.get("1"), "14");
    ckp1.put("1", "16");
    assert_eq!(ckp1.get("1"), "16");
    lab.connect_all();
    *links_a.lock().expect("links") = vec![true; 5];
    *links_b.lock().expect("links") = vec![true; 5];
    t1.join().expect("minority put");
    t2.join().expect("minority get");
    assert_eq!(ck.get("1"), "15");
    if let Err(e) = lab.check_linearizable() {
        panic!("{e}");
    }
}

/// The lab's `TestSnapshotRPC`: a server cut off while the others commit past a snapshot
/// catches up by InstallSnapshot; the log stays bounded.
pub fn snapshot_rpc(seed: u64) {
    let max = 1000;
    let lab = KvLab::new(3, false, Some(max), seed);
    let mut ck = lab.clerk();
    ck.put("a", "A");
    assert_eq!(ck.get("a"), "A");
    lab.partition(&[0, 1], &[2]);
    let mut ck1 = lab.clerk();
    ck1.connect_only(&[0, 1]);
    for i in 0..50 {
        ck1.put(&i.to_string(), &i.to_string());
    }
    thread::sleep(ELECTION_TIMEOUT);
    ck1.put("b", "B");
    let size = lab.log_size() as u64;
    assert!(size <= 8 * max, "persisted Raft state {size} bytes, over {}", 8 * max);
    // Now server 2 with one of the others: it must catch up to serve.
    lab.partition(&[0, 2], &[1]);
    let mut ck1 = lab.clerk();
    ck1.connect_only(&[0, 2]);
    ck1.put("c", "C");
    ck1.put("d", "D");
    assert_eq!(ck1.get("a"), "A");
    assert_eq!(ck1.get("b"), "B");
    assert_eq!(ck1.get("1"), "1");
    assert_eq!(ck1.get("49"), "49");
    lab.connect_all();
    ck.put("e", "E");
    for (k, v) in [("c", "C"), ("e", "E"), ("1", "1")] {
        assert_eq!(ck.get(k), v);
    }
    let size = lab.log_size() as u64;
    assert!(size <= 8 * max, "persisted Raft state {size} bytes, over {}", 8 * max);
    if let Err(e) = lab.check_linearizable() {
        panic!("{e}");
    }
}

/// The lab's `TestSnapshotSize`: with one client and few keys, the log and the snapshot stay
/// small.
pub fn snapshot_size(seed: u64) {
    let (max, max_snapshot) = (1000u64, 500usize);
    let lab = KvLab::new(3, false, Some(max), seed);
    let mut ck = lab.clerk();
    for _ in 0..200 {
        ck.put("x", "0");
        assert_eq!(ck.get("x"), "0");
        ck.put("x", "1");
        assert_eq!(ck.get("x"), "1");
    }
    let size = lab.log_size() as u64;
    assert!(size <= 8 * max, "persisted Raft state {size} bytes, over {}", 8 * max);
    let snap = lab.snapshot_size();
    assert!(snap <= max_snapshot, "snapshot of {snap} bytes, over {max_snapshot}");
}
