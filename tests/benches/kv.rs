//! KV benchmarks.
//!
//! - The lab's speed test as a measurement: 1000 sequential appends by one clerk, in ms per
//!   operation (the lab demands under 33.3 ms), on the in-process lab cluster (memory
//!   storage) and on loopback TCP with `FileStorage` and fdatasync.
//! - Throughput of 16 concurrent clerks (appends to their own keys) on TCP with files:
//!   operations per second and latency p50/p99.
//!
//! `cargo bench -p skiff-tests --bench kv` (optionally `-- SECONDS`, default 5).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use skiff_std::kv::KvClerk;
use skiff_tests::kv_lab::KvLab;
use skiff_tests::kv_tcp::{bind, start};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let secs = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5u64);

    let lab = KvLab::new(3, false, None, 1);
    let mut ck = lab.clerk();
    ck.get("x");
    let t = Instant::now();
    for i in 0..1000 {
        ck.append("x", &format!("x 0 {i} y"));
    }
    let ms = t.elapsed().as_secs_f64() * 1e3 / 1000.0;
    println!("speed (lab cluster, memory storage): 1000 sequential appends, {ms:.3} ms/op");
    drop(ck);
    drop(lab);

    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (addrs, listeners) = bind(3);
    let nodes: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| start(i, &base.path().join(format!("n{i}")), l, &addrs, Some(1 << 20)))
        .collect();
    let mut ck = KvClerk::new(addrs.clients.clone(), Duration::from_secs(1));
    ck.get("x").unwrap();
    let t = Instant::now();
    for i in 0..1000 {
        ck.append("x", &format!("x 0 {i} y")).unwrap();
    }
    let ms = t.elapsed().as_secs_f64() * 1e3 / 1000.0;
    println!("speed (TCP, FileStorage with fdatasync): 1000 sequential appends, {ms:.3} ms/op");

    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (servers, stop) = (addrs.clients.clone(), stop.clone());
            thread::spawn(move || {
                let mut ck = KvClerk::new(servers, Duration::from_secs(1));
                let mut lat = Vec::new();
                let key = format!("k{w}");
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    ck.append(&key, "v").unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<Duration> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let elapsed = began.elapsed().as_secs_f64();
    lat.sort_unstable();
    println!(
        "16 clerks (TCP, FileStorage with fdatasync): {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
        lat.len() as f64 / elapsed,
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    for n in nodes {
        n.stop();
    }
}
