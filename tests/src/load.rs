//! Timed load for the benchmarks: N worker threads repeat an operation for a while; the
//! result is the throughput and the latency percentiles.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What a load run measured.
#[derive(Clone, Copy, Debug)]
pub struct LoadResult {
    pub ops: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `workers` threads for `duration`; worker `w` repeats the operation `make(w)` returns.
/// An operation that returns `false` is not counted (a refused attempt).
pub fn run<F>(workers: usize, duration: Duration, make: impl Fn(usize) -> F) -> LoadResult
where
    F: FnMut() -> bool + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (mut op, stop) = (make(w), stop.clone());
            thread::spawn(move || {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if op() {
                        lat.push(t.elapsed());
                    }
                }
                lat
            })
        })
        .collect();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().expect("a load worker panicked")).collect();
    let elapsed = began.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    LoadResult { ops: lat.len(), per_second: lat.len() as f64 / elapsed, p50_ms: pct(0.5), p99_ms: pct(0.99) }
}
