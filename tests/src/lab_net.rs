//! The lab's `labrpc` network for real threads: every node's transport hands messages to one
//! [`LabNet`], which drops or delays them as the test configured (disconnected servers,
//! the unreliable mode, long reordering) and counts RPCs and bytes.
//!
//! Unreliable mode (as labrpc): each request delayed 0-27 ms, 10% of requests and 10% of
//! replies dropped. Long reordering: about two thirds of replies delayed 200-2200 ms. A
//! crashed server's transport is retired (its generation bumped), so a zombie's messages
//! never arrive.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use skiff_core::{Message, MessageBody};
use skiff_std::transport::{Inbox, Transport};

struct Delayed {
    at: Instant,
    seq: u64,
    msg: Message,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct State {
    connected: Vec<bool>,
    /// Partition group of each server: messages cross only within a group.
    group: Vec<u8>,
    inboxes: Vec<Option<Inbox>>,
    generation: Vec<u64>,
    unreliable: bool,
    long_reordering: bool,
    rng: u64,
    seq: u64,
    delayed: BinaryHeap<Reverse<Delayed>>,
    stop: bool,
}

impl State {
    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_rand() % n
    }

    fn open(&self, from: usize, to: usize) -> bool {
        self.connected[from] && self.connected[to] && self.group[from] == self.group[to]
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    rpc_count: AtomicU64,
    rpc_bytes: AtomicU64,
}

/// The fault-injecting in-process network.
pub struct LabNet {
    shared: Arc<Shared>,
    delayer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LabNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LabNet")
    }
}

fn index(id: skiff_core::NodeId) -> usize {
    id.0 as usize - 1
}

impl LabNet {
    /// A network for `n` servers, all connected, reliable.
    pub fn new(n: usize, seed: u64) -> LabNet {
        let state = State {
            connected: vec![true; n],
            group: vec![0; n],
            inboxes: vec![None; n],
            generation: vec![0; n],
            unreliable: false,
            long_reordering: false,
            rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            seq: 0,
            delayed: BinaryHeap::new(),
            stop: false,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Condvar::new(),
            rpc_count: AtomicU64::new(0),
            rpc_bytes: AtomicU64::new(0),
        });
        let s = shared.clone();
        let delayer = thread::Builder::new().name("labnet-delay".into()).spawn(move || delayer(s)).expect("spawn");
        LabNet { shared, delayer: Some(delayer) }
    }

    /// Server `i`'s transport for its new life: messages go out through it and arrive in
    /// `inbox`. Any earlier transport of `i` goes dead.
    pub fn attach(&self, i: usize, inbox: Inbox) -> LabTransport {
        let mut st = self.shared.state.lock().expect("net lock");
        st.generation[i] += 1;
        st.inboxes[i] = Some(inbox);
        LabTransport { shared: self.shared.clone(), from: i, generation: st.generation[i] }
    }

    /// Server `i` is gone: nothing more reaches it or comes from it.
    pub fn detach(&self, i: usize) {
        let mut st = self.shared.state.lock().expect("net lock");
        st.generation[i] += 1;
        st.inboxes[i] = None;
    }

    pub fn set_connected(&self, i: usize, on: bool) {
        self.shared.state.lock().expect("net lock").connected[i] = on;
    }

    /// Splits the servers: `group[i]` names server `i`'s side; messages cross no side.
    pub fn set_groups(&self, group: Vec<u8>) {
        self.shared.state.lock().expect("net lock").group = group;
    }

    pub fn set_unreliable(&self, on: bool) {
        self.shared.state.lock().expect("net lock").unreliable = on;
    }

    pub fn set_long_reordering(&self, on: bool) {
        self.shared.state.lock().expect("net lock").long_reordering = on;
    }

    pub fn rpc_count(&self) -> u64 {
        self.shared.rpc_count.load(Ordering::Relaxed)
    }

    pub fn rpc_bytes(&self) -> u64 {
        self.shared.rpc_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for LabNet {
    fn drop(&mut self) {
        self.shared.state.lock().expect("net lock").stop = true;
        self.shared.wake.notify_all();
        if let Some(d) = self.delayer.take() {
            let _ = d.join();
        }
    }
}

/// One server's view of the [`LabNet`].
pub struct LabTransport {
    shared: Arc<Shared>,
    from: usize,
    generation: u64,
}

impl std::fmt::Debug for LabTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LabTransport(server {})", self.from)
    }
}

impl Transport for LabTransport {
    fn send(&mut self, msg: Message) {
        let to = index(msg.to);
        let inbox = {
            let mut st = self.shared.state.lock().expect("net lock");
            if st.generation[self.from] != self.generation || to >= st.connected.len() || !st.open(self.from, to) {
                return;
            }
            let reply = msg.body.is_response();
            if !reply {
                self.shared.rpc_count.fetch_add(1, Ordering::Relaxed);
            }
            if let MessageBody::Append { entries, .. } = &msg.body {
                let bytes = entries.iter().map(|e| e.data.len() as u64).sum::<u64>();
                self.shared.rpc_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            let mut delay = Duration::ZERO;
            if st.unreliable {
                if st.below(10) == 0 {
                    return; // 10% of requests, and of replies, lost
                }
                if !reply {
                    delay = Duration::from_millis(st.below(27));
                }
            }
            if reply && st.long_reordering && st.below(900) < 600 {
                let extra = st.below(2001);
                delay = Duration::from_millis(200 + st.below(extra + 1));
            }
            if delay.is_zero() {
                st.inboxes[to].clone()
            } else {
                st.seq += 1;
                let d = Delayed { at: Instant::now() + delay, seq: st.seq, msg };
                st.delayed.push(Reverse(d));
                self.shared.wake.notify_all();
                return;
            }
        };
        if let Some(inbox) = inbox {
            inbox.deliver(msg);
        }
    }

    fn shutdown(&mut self) {}
}

/// Delivers delayed messages when due, if both ends are still connected.
fn delayer(shared: Arc<Shared>) {
    let mut st = shared.state.lock().expect("net lock");
    loop {
        if st.stop {
            return;
        }
        let now = Instant::now();
        match st.delayed.peek() {
            Some(Reverse(d)) if d.at <= now => {
                let Reverse(d) = st.delayed.pop().expect("peeked");
                let (from, to) = (index(d.msg.from), index(d.msg.to));
                let inbox = if st.open(from, to) { st.inboxes[to].clone() } else { None };
                drop(st);
                if let Some(inbox) = inbox {
                    inbox.deliver(d.msg);
                }
                st = shared.state.lock().expect("net lock");
            }
            Some(Reverse(d)) => {
                let wait = d.at - now;
                st = shared.wake.wait_timeout(st, wait).expect("net lock").0;
            }
            None => st = shared.wake.wait(st).expect("net lock"),
        }
    }
}
