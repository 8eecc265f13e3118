//! Hostile input for skiff (issue 12, items 10 and 11): every decoder that reads bytes from a
//! socket or a disk, and a Raft node driven by forged peers and clients, each fed random and
//! mutated inputs. The oracle: no panic, no hang, no single allocation beyond the declared
//! bound ([`alloc`]), and, for the node, its `View` invariants after every step.
//!
//! Every case is a function of `(target, seed)`: a failure prints both, and
//! `skiff-fuzz --target T --start SEED --cases 1` replays it.

pub mod alloc;
pub mod decoders;
pub mod mutate;
pub mod node;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// One fuzz target: a name and a case runner (`Err` describes a broken oracle).
#[derive(Debug)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(seed: u64) -> Result<(), String>,
}

/// Every target, in the order the binary runs them.
pub const TARGETS: &[Target] = &[
    Target { name: "resp", run: decoders::resp },
    Target { name: "native", run: decoders::native },
    Target { name: "peer", run: decoders::peer },
    Target { name: "wal", run: decoders::wal },
    Target { name: "snapshot", run: decoders::snapshot },
    Target { name: "node", run: node::run },
];

/// What a run of one target found.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: u64,
    /// `(seed, what)` of every failing case, panics included.
    pub failures: Vec<(u64, String)>,
    /// The largest single allocation any case made, in bytes.
    pub peak_alloc: usize,
}

/// Runs cases `start..start + cases` of `target`.
pub fn run_target(target: &Target, start: u64, cases: u64) -> Report {
    let mut report = Report::default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for seed in start..start + cases {
        alloc::reset_peak();
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(seed)));
        report.peak_alloc = report.peak_alloc.max(alloc::peak());
        report.cases += 1;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(what)) => report.failures.push((seed, what)),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                report.failures.push((seed, format!("panic: {what}")));
            }
        }
    }
    std::panic::set_hook(hook);
    report
}
