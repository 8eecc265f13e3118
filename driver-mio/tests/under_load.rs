//! Three `skiff-node` processes under load from concurrent clerks (native port) and Redis
//! clients (RESP port, any node, forwarded to the leader) while the leader is killed with
//! SIGKILL and restarted (repeatedly), a follower is frozen with SIGSTOP for longer than an
//! election timeout, and finally every node is restarted at once. Every operation is
//! recorded (a RESP request whose connection died has an unknown outcome); the history must be
//! linearizable and every acknowledged append present at the end.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{leader, Cluster, RespConn};
use skiff_std::kv::KvClerk;
use skiff_verify::linearizability::{check, Input, Operation, Rendered, Verdict};
use skiff_verify::rng::SimRng;

const KEYS: usize = 3;

/// A Redis client: one connection (one session) at a time to some node; when it breaks, the
/// request in flight has an unknown outcome and the client moves to the next node.
fn resp_client(
    client: u64,
    ports: Vec<u16>,
    began: Instant,
    history: Arc<Mutex<Vec<Operation>>>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = SimRng::new(client);
    let mut target = client as usize % ports.len();
    let mut conn: Option<RespConn> = None;
    let mut sessions = 0;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            match RespConn::connect(ports[target], Duration::from_secs(5)) {
                Ok(c) => {
                    conn = Some(c);
                    sessions += 1;
                }
                Err(_) => {
                    target = (target + 1) % ports.len();
                    thread::sleep(Duration::from_millis(50));
                }
            }
            continue;
        };
        // Each session is its own client in the history: a request lost with a connection
        // may still take effect while the next session runs.
        let id = client * 1000 + sessions;
        let key = format!("k{}", rng.below(KEYS));
        let call = began.elapsed().as_micros() as u64;
        let (input, reply) = match rng.below(3) {
            0 => (Input::Get { key: key.clone() }, c.call(&["GET", &key])),
            1 => {
                let value = format!("[r{client}.{n}]");
                let reply = c.call(&["APPEND", &key, &value]);
                (Input::Append { key, value }, reply)
            }
            _ => {
                let value = format!("r{client}.{n}");
                let reply = c.call(&["SET", &key, &value]);
                (Input::Put { key, value }, reply)
            }
        };
        n += 1;
        let (ret, output) = match reply {
            Ok(r) => {
                assert!(!r.starts_with('-'), "a Redis client got an error: {r}");
                let output = match &input {
                    Input::Get { .. } if r == "(nil)" => String::new(),
                    Input::Get { .. } => r,
                    _ => String::new(),
                };
                (Some(began.elapsed().as_micros() as u64), Some(output))
            }
            Err(_) => {
                conn = None;
                target = (target + 1) % ports.len();
                if matches!(input, Input::Get { .. }) {
                    continue; // a read with no answer changed nothing
                }
                (None, None)
            }
        };
        history.lock().unwrap().push(Operation { client: id, input, call, ret, output });
        thread::sleep(Duration::from_millis(2));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn clerks_under_kill_9_sigstop_and_full_restart_stay_linearizable() {
    let mut c = Cluster::new(3);
    let servers: Vec<(skiff_core::NodeId, SocketAddr)> = c
        .native
        .iter()
        .enumerate()
        .map(|(i, p)| (skiff_core::NodeId(i as u64 + 1), SocketAddr::from(([127, 0, 0, 1], *p))))
        .collect();
    let began = Instant::now();
    let history = Arc::new(Mutex::new(Vec::<Operation>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4u64)
        .map(|client| {
            let (servers, history, stop) = (servers.clone(), history.clone(), stop.clone());
            thread::spawn(move || {
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
                    history.lock().unwrap().push(Operation {
                        client,
                        input,
                        call,
                        ret: Some(ret),
                        output: Some(output),
                    });
                    n += 1;
                    thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    let redis: Vec<_> = (0..3u64)
        .map(|client| {
            let (ports, history, stop) = (c.resp.clone(), history.clone(), stop.clone());
            thread::spawn(move || resp_client(100 + client, ports, began, history, stop))
        })
        .collect();

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
    stop.store(true, Ordering::Relaxed);
    for t in clients.into_iter().chain(redis) {
        t.join().expect("a client failed");
    }

    let history = history.lock().unwrap().clone();
    assert!(history.len() > 100, "only {} operations completed", history.len());
    let verdict = check(&history, Some(Duration::from_secs(30)));
    // Informational (shown with --nocapture).
    let unknown = history.iter().filter(|o| o.ret.is_none()).count();
    let via_resp = history.iter().filter(|o| o.client >= 100_000).count();
    println!("{} operations ({via_resp} over RESP, {unknown} with unknown outcome)", history.len());
    match verdict {
        Verdict::Illegal { key, history } => panic!("not linearizable; key {key}:\n{}", Rendered(&history)),
        Verdict::Unknown => println!("the linearizability check ran out of time (passes, as in the lab)"),
        Verdict::Linearizable => println!("linearizable"),
    }
    // Every acknowledged append is in the final value of its key, unless a later put replaced it.
    let mut ck = KvClerk::new(servers, Duration::from_millis(500));
    for k in 0..KEYS {
        let key = format!("k{k}");
        let last_put = history
            .iter()
            .filter(|o| matches!(&o.input, Input::Put { key: pk, .. } if *pk == key))
            .filter_map(|o| o.ret)
            .max()
            .unwrap_or(0);
        let value = ck.get(&key).unwrap();
        for o in &history {
            if let Input::Append { key: ak, value: v } = &o.input {
                if *ak == key && o.ret.is_some() && o.call > last_put {
                    assert!(value.contains(v.as_str()), "acknowledged append {v} to {key} lost");
                }
            }
        }
    }
}
