//! A short run of every fuzz target (the binary runs 10^6 cases of each): fixed seeds, so it
//! is deterministic; it fails on any panic, broken invariant or oversized allocation.

use skiff_fuzz::alloc::Counting;
use skiff_fuzz::{run_target, TARGETS};

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn every_target_survives_a_short_run() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let cases = if target.name == "node" { 300 } else { 3000 };
        let report = run_target(target, 0, cases);
        println!("{}: {} cases, peak allocation {} bytes", target.name, report.cases, report.peak_alloc);
        failures.extend(report.failures.into_iter().map(|(seed, what)| format!("{} seed {seed}: {what}", target.name)));
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures[..failures.len().min(20)].join("\n"));
}
