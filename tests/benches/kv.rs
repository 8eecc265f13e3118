//! KV benchmarks.
//!
//! - The lab's speed test as a measurement: 1000 sequential appends by one clerk, in ms per
//!   operation (the lab demands under 33.3 ms), on the in-process lab cluster (memory
//!   storage) and on loopback TCP with `FileStorage` and fdatasync.
//! - Throughput of 16 concurrent clerks (appends to their own keys) on TCP with files:
//!   operations per second and latency p50/p99.
//!
//! `cargo bench -p skiff-tests --bench kv` (optionally `-- SECONDS`, default 5).

use std::time::{Duration, Instant};

use skiff_std::kv::KvClerk;
use skiff_tests::kv_lab::KvLab;
use skiff_tests::kv_tcp::{bind, start};
use skiff_tests::load;

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

    let r = load::run(16, Duration::from_secs(secs), |w| {
        let mut ck = KvClerk::new(addrs.clients.clone(), Duration::from_secs(1));
        let key = format!("k{w}");
        move || ck.append(&key, "v").is_ok()
    });
    println!(
        "16 clerks (TCP, FileStorage with fdatasync): {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
        r.per_second, r.p50_ms, r.p99_ms
    );
    for n in nodes {
        n.stop();
    }
}
