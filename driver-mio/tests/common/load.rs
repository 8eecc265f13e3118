//! Client load for the process tests: Redis clients (RESP, any node, forwarded to the
//! leader) that record every operation, and the checks on the history at the end: it is
//! linearizable, and every acknowledged append is in the final value of its key.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use skiff_verify::linearizability::{check, Input, Operation, Rendered, Verdict};
use skiff_verify::rng::SimRng;

use super::RespConn;

/// Keys the load spreads over (few, so operations contend).
pub const KEYS: usize = 3;

/// Redis clients running until [`Load::finish`].
pub struct Load {
    pub began: Instant,
    pub history: Arc<Mutex<Vec<Operation>>>,
    stop: Arc<AtomicBool>,
    /// Error replies seen (each an operation with an unknown outcome, or a read left out).
    pub errors: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// A load with no client yet; operations are timed from now.
    pub fn new() -> Load {
        Load {
            began: Instant::now(),
            history: Arc::default(),
            stop: Arc::default(),
            errors: Arc::default(),
            threads: Vec::new(),
        }
    }

    /// Starts Redis client `client` over `ports` (see [`resp_client`]). With
    /// `errors_allowed` false, an error reply fails the test; else it counts as an unknown
    /// outcome (a node being removed may answer that it gave up on a request).
    pub fn add_resp_client(&mut self, client: u64, ports: Vec<u16>, errors_allowed: bool) {
        let (history, stop, errors, began) = (self.history.clone(), self.stop.clone(), self.errors.clone(), self.began);
        self.threads.push(thread::spawn(move || {
            resp_client(client, ports, began, history, stop, errors_allowed.then_some(errors))
        }));
    }

    /// A thread of the caller's that runs until the load stops (it gets the stop flag).
    pub fn add_thread(&mut self, f: impl FnOnce(Arc<AtomicBool>) + Send + 'static) {
        let stop = self.stop.clone();
        self.threads.push(thread::spawn(move || f(stop)));
    }

    /// Stops every client and returns the history.
    pub fn finish(self) -> Vec<Operation> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("a client failed");
        }
        let h = self.history.lock().unwrap().clone();
        h
    }
}

/// A Redis client: one connection (one session) at a time to some node; when it breaks, the
/// request in flight has an unknown outcome and the client moves to the next node.
fn resp_client(
    client: u64,
    ports: Vec<u16>,
    began: Instant,
    history: Arc<Mutex<Vec<Operation>>>,
    stop: Arc<AtomicBool>,
    errors: Option<Arc<AtomicU64>>,
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
            Ok(r) if r.starts_with('-') => {
                let Some(errors) = errors.as_ref() else { panic!("a Redis client got an error: {r}") };
                errors.fetch_add(1, Ordering::Relaxed);
                if matches!(input, Input::Get { .. }) {
                    continue; // a read that failed changed nothing
                }
                (None, None)
            }
            Ok(r) => {
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

/// The history is linearizable (an undecided check passes, as in the lab, and says so), and
/// every acknowledged append is in the final value of its key (`read`) unless a later put
/// replaced it.
pub fn check_history(history: &[Operation], mut read: impl FnMut(&str) -> String) {
    assert!(history.len() > 100, "only {} operations completed", history.len());
    let verdict = check(history, Some(Duration::from_secs(30)));
    let unknown = history.iter().filter(|o| o.ret.is_none()).count();
    println!("{} operations ({unknown} with unknown outcome)", history.len());
    match verdict {
        Verdict::Illegal { key, history } => panic!("not linearizable; key {key}:\n{}", Rendered(&history)),
        Verdict::Unknown => println!("the linearizability check ran out of time (passes, as in the lab)"),
        Verdict::Linearizable => println!("linearizable"),
    }
    for k in 0..KEYS {
        let key = format!("k{k}");
        let last_put = history
            .iter()
            .filter(|o| matches!(&o.input, Input::Put { key: pk, .. } if *pk == key))
            .filter_map(|o| o.ret)
            .max()
            .unwrap_or(0);
        let value = read(&key);
        for o in history {
            if let Input::Append { key: ak, value: v } = &o.input {
                if *ak == key && o.ret.is_some() && o.call > last_put {
                    assert!(value.contains(v.as_str()), "acknowledged append {v} to {key} lost");
                }
            }
        }
    }
}
