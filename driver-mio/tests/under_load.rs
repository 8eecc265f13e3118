//! Three `skiff-node` processes under load from concurrent clerks (native port) and Redis
//! clients (RESP port, any node, forwarded to the leader) while the leader is killed with
//! SIGKILL and restarted (repeatedly), a follower is frozen with SIGSTOP for longer than an
//! election timeout, and finally every node is restarted at once. Every operation is
//! recorded (a RESP request whose connection died has an unknown outcome); the history must be
//! linearizable and every acknowledged append present at the end.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use common::load::{check_history, Load, KEYS};
use common::{leader, signal, Cluster};
use skiff_std::kv::KvClerk;
use skiff_verify::linearizability::{Input, Operation};
use skiff_verify::rng::SimRng;

#[test]
fn clerks_under_kill_9_sigstop_and_full_restart_stay_linearizable() {
    let mut c = Cluster::new(3);
    let servers: Vec<(skiff_core::NodeId, SocketAddr)> = c
        .native
        .iter()
        .enumerate()
        .map(|(i, p)| (skiff_core::NodeId(i as u64 + 1), SocketAddr::from(([127, 0, 0, 1], *p))))
        .collect();
    let mut load = Load::new();
    for client in 0..4u64 {
        let (servers, history, began) = (servers.clone(), load.history.clone(), load.began);
        load.add_thread(move |stop| {
            let mut ck = KvClerk::new(servers, Duration::from_millis(500));
            let mut rng = SimRng::new(client);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k{}", rng.below(KEYS));
                let call = began.elapsed().as_micros() as u64;
                let (input, output) = match rng.below(3) {
                    0 => (Input::Get { key: key.clone() }, ck.get(&key).unwrap()),
                    1 => {
                        let value = format!("[{client}.{n}]");
                        ck.append(&key, &value).unwrap();
                        (Input::Append { key, value }, String::new())
                    }
                    _ => {
                        let value = format!("{client}.{n}");
                        ck.put(&key, &value).unwrap();
                        (Input::Put { key, value }, String::new())
                    }
                };
                let ret = began.elapsed().as_micros() as u64;
                history.lock().unwrap().push(Operation { client, input, call, ret: Some(ret), output: Some(output) });
                n += 1;
                thread::sleep(Duration::from_millis(2));
            }
        });
    }
    for client in 0..3u64 {
        load.add_resp_client(100 + client, c.resp.clone(), false);
    }

    // kill -9 the leader and restart it, three times.
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(1500));
        let l = leader(&c);
        c.kill(l);
        thread::sleep(Duration::from_millis(500));
        c.start(l);
    }
    // Freeze a follower past an election timeout, then let it go.
    thread::sleep(Duration::from_millis(1000));
    let l = leader(&c);
    let f = (l + 1) % 3;
    let pid = c.children[f].as_ref().unwrap().id();
    signal(pid, "-STOP");
    thread::sleep(Duration::from_millis(2000));
    signal(pid, "-CONT");
    // Everyone at once.
    thread::sleep(Duration::from_millis(1000));
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.start(i);
    }
    thread::sleep(Duration::from_millis(1500));
    let history = load.finish();
    let via_resp = history.iter().filter(|o| o.client >= 100_000).count();
    println!("{via_resp} operations over RESP");
    let mut ck = KvClerk::new(servers, Duration::from_millis(500));
    check_history(&history, |key| ck.get(key).unwrap());
}
