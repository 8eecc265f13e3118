//! `skiff-fuzz`: runs the fuzz targets of `skiff_fuzz` and reports cases, failures and the
//! largest allocation per target.
//!
//! ```text
//! skiff-fuzz [--cases N] [--start SEED] [--target NAME]   # default: 1,000,000 cases of each
//! ```
//! Exits 1 if any case fails (each failure prints its target and seed, which replay it).

use std::process::ExitCode;
use std::time::Instant;

use skiff_fuzz::alloc::Counting;
use skiff_fuzz::{run_target, TARGETS};

#[global_allocator]
static ALLOC: Counting = Counting;

fn value(args: &[String], name: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(p) => args.get(p + 1).cloned().map(Some).ok_or_else(|| format!("{name} needs a value")),
    }
}

fn number(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    value(args, name)?.map_or(Ok(default), |v| v.parse().map_err(|_| format!("{name}: '{v}' is not a number")))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| -> Result<_, String> {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        let only = value(&args, "--target")?;
        if let Some(t) = &only {
            if !names.contains(&t.as_str()) {
                return Err(format!("--target: '{t}' is none of {names:?}"));
            }
        }
        Ok((number(&args, "--cases", 1_000_000)?, number(&args, "--start", 0)?, only))
    })();
    let (cases, start, only) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}\nusage: skiff-fuzz [--cases N] [--start SEED] [--target NAME]");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    for target in TARGETS.iter().filter(|t| only.as_deref().map_or(true, |o| o == t.name)) {
        let began = Instant::now();
        let report = run_target(target, start, cases);
        for (seed, what) in report.failures.iter().take(10) {
            eprintln!("FAIL target={} seed={seed}: {what}", target.name);
        }
        failed |= !report.failures.is_empty();
        println!(
            "target={} cases={} start={start} failures={} peak_alloc_bytes={} elapsed_s={:.1}",
            target.name,
            report.cases,
            report.failures.len(),
            report.peak_alloc,
            began.elapsed().as_secs_f64()
        );
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
