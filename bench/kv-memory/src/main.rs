//! Heap bytes per key of skiff's KV state: applies N SETs of distinct 16-byte keys and
//! 64-byte values to a `KvState` (one per entry, or `per-entry` of them in one pipelined
//! entry), under a global allocator that counts live bytes and allocations by size, then
//! prints the bytes and allocations per key, the sizes that dominate, and the snapshot's
//! size. Usage: kv-memory [keys (632000)] [per-entry (1)]
#![allow(unsafe_code)] // a global allocator cannot be written without it

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use skiff_core::kv::{Body, Cmd, Command, KvState, LogEntry, Op, SessionLimits};
use skiff_core::Index;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Live allocations by size (the last slot: 256 bytes and more).
static BY_SIZE: [AtomicUsize; 257] = [const { AtomicUsize::new(0) }; 257];

struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; only counters are updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        BY_SIZE[l.size().min(256)].fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        COUNT.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's obligations on `l` are passed on as they are.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        BY_SIZE[l.size().min(256)].fetch_sub(1, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        COUNT.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `p` was allocated by `System` with `l` (see `alloc`).
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(632_000, |s| s.parse().expect("keys: a number"));
    let per: usize = args.next().map_or(1, |s| s.parse().expect("per-entry: a number")).max(1);
    let mut kv = KvState::new();
    let register = LogEntry { time: 5, body: Body::Register { limits: SessionLimits::default() } };
    kv.apply(Index(1), &postcard::to_allocvec(&register).expect("encodes"));
    let (bytes0, count0) = (LIVE.load(Ordering::Relaxed), COUNT.load(Ordering::Relaxed));
    let value = "x".repeat(64);
    let mut index = 1;
    for first in (0..n).step_by(per) {
        let mut cmds: Vec<Cmd> = (first..(first + per).min(n))
            .map(|i| {
                let words = ["SET".to_string(), format!("key:{i:012}"), value.clone()];
                let args: Vec<bytes::Bytes> =
                    words.iter().map(|w| bytes::Bytes::copy_from_slice(w.as_bytes())).collect();
                Cmd::parse(&args).expect("a data command").expect("valid")
            })
            .collect();
        let op = if per == 1 { Op::Cmd(cmds.pop().expect("one")) } else { Op::Exec { commands: cmds, watched: None } };
        index += 1;
        let command = Command { client: 1, seq: index - 1, op };
        let entry = LogEntry { time: 6 + index, body: Body::Write { command, max_value: 1 << 20 } };
        kv.apply(Index(index), &postcard::to_allocvec(&entry).expect("encodes"));
    }
    let (bytes1, count1) = (LIVE.load(Ordering::Relaxed), COUNT.load(Ordering::Relaxed));
    println!(
        "keys={n} heap_bytes={} bytes_per_key={:.1} allocations_per_key={:.2}",
        bytes1 - bytes0,
        (bytes1 - bytes0) as f64 / n as f64,
        (count1 - count0) as f64 / n as f64
    );
    for (size, live) in BY_SIZE.iter().enumerate() {
        let live = live.load(Ordering::Relaxed);
        if live >= n / 2 {
            println!("  {live} live allocations of {size}{} bytes", if size == 256 { " or more" } else { "" });
        }
    }
    let snapshot = kv.snapshot();
    println!("snapshot_bytes={} per_key={:.1}", snapshot.len(), snapshot.len() as f64 / n as f64);
}
