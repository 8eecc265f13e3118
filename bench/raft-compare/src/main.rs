//! skiff-core and raft-rs 0.7 in one harness, measured in the same run.
//!
//! Both libraries get the same work: one thread drives 3 nodes round-robin through
//! in-memory queues; persistence is acknowledged at once (raft-rs: its `MemStorage`; skiff:
//! each `Persist` record's entries kept in a `Vec` the same way, then `Persisted`); a batch
//! is proposed as one message (raft-rs: one `MsgPropose` with every entry; skiff:
//! `ProposeBatch`); every proposal is a fresh 64-byte buffer whose
//! first 8 bytes are its sequence number; every node applies every entry by inserting
//! `seq % 100000 -> payload[8..]` (a copy) into a `HashMap`; each node compacts its log every
//! 50,000 applied entries (raft-rs: `MemStorage::compact`; skiff: `Input::Snapshot` with an
//! empty state, as `compact` keeps none either). raft-rs runs with `batch_append`,
//! `max_size_per_msg` 1 MiB and `max_inflight_msgs` 256; skiff with the same window (256
//! messages in flight, 1 MiB per message).
//!
//! Loads: `batch B` proposes B entries to the leader, then passes one round of messages
//! (every node handles what it was sent, once), and so on: a pipeline kept full. `closed`
//! proposes one entry and waits until the leader applied it (committed on a majority: what a
//! client waits for) before the next. A rate is entries applied on all 3 nodes per second,
//! the time to drain what is in flight at the end included (ticking the clocks when no
//! message is left: followers learn a last commit index from a heartbeat).
//!
//! Run: `cargo run --release --manifest-path bench/raft-compare/Cargo.toml -- [--secs S]
//! [--rounds R]`: R rounds, each measuring every load on skiff then on raft-rs; then per load
//! the median rate of each and the median ratio skiff/raft-rs with its range.

mod raftrs;
mod skiff;

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Keys of the applied map (sequence numbers modulo this).
const KEYS: u64 = 100_000;
/// A node compacts its log once it applied this many entries since it last did.
const COMPACT_EVERY: u64 = 50_000;
/// The payload of each proposal.
const PAYLOAD: usize = 64;

/// What each node of a harness applies to.
#[derive(Default)]
pub struct StateMachine {
    map: HashMap<u64, Vec<u8>>,
    /// Entries applied (commands only).
    pub applied: u64,
    /// Applied when the log was last compacted.
    pub compacted_at: u64,
}

impl StateMachine {
    /// Applies one command's payload.
    pub fn apply(&mut self, payload: &[u8]) {
        let seq = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
        self.map.insert(seq % KEYS, payload[8..].to_vec());
        self.applied += 1;
    }

    /// Whether the log is due for compaction.
    pub fn compaction_due(&self) -> bool {
        self.applied - self.compacted_at >= COMPACT_EVERY
    }
}

/// A fresh proposal buffer carrying `seq`.
pub fn payload(seq: u64) -> Vec<u8> {
    let mut p = vec![0xAB; PAYLOAD];
    p[..8].copy_from_slice(&seq.to_le_bytes());
    p
}

/// One library's 3 nodes.
pub trait Harness {
    /// A cluster with node 1 leading.
    fn start() -> Self;
    /// Proposes `payloads` to the leader (one batch).
    fn propose(&mut self, payloads: Vec<Vec<u8>>);
    /// One round: each node handles the messages it was sent and acknowledges its persists;
    /// false if nothing happened.
    fn round(&mut self) -> bool;
    /// One tick of every node's clock (a leader's heartbeat carries its commit index to
    /// followers that got no append since it advanced).
    fn tick(&mut self);
    /// Commands applied on every node.
    fn applied_everywhere(&self) -> u64 {
        self.applied().into_iter().min().expect("3 nodes")
    }
    /// Each node's applied count, for a failure's message.
    fn applied(&self) -> Vec<u64>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    Batch(usize),
    Closed,
}

impl Load {
    fn name(self) -> String {
        match self {
            Load::Batch(b) => format!("batch-{b}"),
            Load::Closed => "closed-1".to_string(),
        }
    }
}

/// Entries applied on all 3 nodes per second under `load` for `secs`.
fn measure<H: Harness>(load: Load, secs: f64) -> f64 {
    let mut h = H::start();
    let mut seq = 0u64;
    let base = h.applied_everywhere();
    let began = Instant::now();
    let budget = Duration::from_secs_f64(secs);
    while began.elapsed() < budget {
        for _ in 0..16 {
            match load {
                Load::Batch(b) => {
                    h.propose(
                        (0..b)
                            .map(|_| {
                                seq += 1;
                                payload(seq)
                            })
                            .collect(),
                    );
                    h.round();
                }
                Load::Closed => {
                    // The client's view: the next proposal once the leader applied this one.
                    seq += 1;
                    h.propose(vec![payload(seq)]);
                    while h.applied()[0] - base < seq {
                        assert!(h.round(), "the cluster stalled with entry {seq} unapplied");
                    }
                }
            }
        }
    }
    // What is in flight still counts once applied on all 3; the time to drain it counts too.
    let mut ticks = 0;
    while h.applied_everywhere() - base < seq {
        if !h.round() {
            h.tick();
            ticks += 1;
            assert!(ticks < 1000, "the cluster stalled: {seq} proposed, applied {:?}", h.applied());
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    assert_eq!(h.applied_everywhere() - base, seq, "every proposal applied on all 3 nodes");
    seq as f64 / elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|p| args.get(p + 1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let secs = flag("--secs", 3.0);
    let rounds = flag("--rounds", 3.0) as usize;
    // `--profile skiff|raft-rs LOAD`: one library, one load, for a profiler.
    if let Some(p) = args.iter().position(|a| a == "--profile") {
        let load = match args.get(p + 2).map(String::as_str) {
            Some("closed-1") => Load::Closed,
            Some(b) => Load::Batch(b.trim_start_matches("batch-").parse().expect("batch-N or closed-1")),
            None => Load::Batch(64),
        };
        let rate = match args.get(p + 1).map(String::as_str) {
            Some("raft-rs") => measure::<raftrs::RaftRs>(load, secs),
            _ => measure::<skiff::Skiff>(load, secs),
        };
        println!("{} {rate:.0} entries/s", load.name());
        return;
    }
    let loads = [Load::Batch(1), Load::Batch(64), Load::Batch(1024), Load::Closed];
    println!("# skiff-core vs raft-rs 0.7: 3 nodes in one thread, 64-byte proposals, {rounds} rounds of {secs} s");
    let mut results: Vec<(Load, Vec<f64>, Vec<f64>)> = loads.iter().map(|l| (*l, Vec::new(), Vec::new())).collect();
    for r in 1..=rounds {
        for (load, skiff, raft) in &mut results {
            // Who goes first alternates from round to round.
            let (s, o) = if r % 2 == 1 {
                let s = measure::<skiff::Skiff>(*load, secs);
                (s, measure::<raftrs::RaftRs>(*load, secs))
            } else {
                let o = measure::<raftrs::RaftRs>(*load, secs);
                (measure::<skiff::Skiff>(*load, secs), o)
            };
            println!("round={r} load={} skiff={s:.0} raft-rs={o:.0} ratio={:.2}", load.name(), s / o);
            skiff.push(s);
            raft.push(o);
        }
    }
    for (load, skiff, raft) in results {
        let ratios: Vec<f64> = skiff.iter().zip(&raft).map(|(s, o)| s / o).collect();
        let (lo, hi) = ratios.iter().fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        println!(
            "raft-compare {} skiff_entries_per_s={:.0} raft_rs_entries_per_s={:.0} ratio={:.2} [{lo:.2}-{hi:.2}]",
            load.name(),
            median(skiff),
            median(raft),
            median(ratios)
        );
    }
}
