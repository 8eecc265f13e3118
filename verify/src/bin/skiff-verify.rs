//! `skiff-verify`: sweep many seeds of the swarm simulator, or replay one with a trace.
//!
//! ```text
//! skiff-verify sweep --seeds N [--start S] [--workload raft|kv]
//!                                    # ends with: seeds=N violations=V events=E elapsed_s=T
//! skiff-verify replay --seed S [--workload raft|kv]   # one seed, with a readable trace
//! skiff-verify explore --case NAME [--depth D] [--max-states N] [--seconds T] [--plant BUG]
//!                      [--crashes N] [--duplicates N] [--drops N] [--heartbeats N]
//!                      [--proposals N] [--max-term T] [--expect-violation]
//!                                    # every interleaving of a small case, to depth D
//! ```
//!
//! `--workload kv` adds KV clerks to every seed; their history is checked for linearizability.
//! `--plant BUG` plants a known membership bug in every node (to see which seeds and checks
//! catch it): no-own-term-guard, incoming-only-quorum, leader-counts-self, no-config-rollback,
//! latest-only-campaign, no-departing.

use std::process::ExitCode;
use std::time::Instant;

use skiff_core::PlantedBug;
use skiff_verify::swarm::{kv_workload, profile, run_seed_planted, Workload};

const USAGE: &str = "usage:\n  skiff-verify sweep --seeds N [--start S] [--workload raft|kv] [--plant BUG]\n  skiff-verify replay --seed S [--workload raft|kv] [--plant BUG]\n  skiff-verify explore --case NAME [--depth D] [--max-states N] [--seconds T] [--plant BUG] [--crashes N] [--duplicates N] [--drops N] [--heartbeats N] [--proposals N] [--max-term T] [--expect-violation]";

fn plant(args: &[String]) -> Result<Option<PlantedBug>, String> {
    let Some(p) = args.iter().position(|a| a == "--plant") else { return Ok(None) };
    let bug = match args.get(p + 1).map(String::as_str) {
        Some("no-own-term-guard") => PlantedBug::NoOwnTermGuard,
        Some("incoming-only-quorum") => PlantedBug::IncomingOnlyQuorum,
        Some("leader-counts-self") => PlantedBug::LeaderCountsSelfWhenRemoved,
        Some("no-config-rollback") => PlantedBug::NoConfigRollback,
        Some("latest-only-campaign") => PlantedBug::LatestOnlyCampaign,
        Some("no-departing") => PlantedBug::NoDeparting,
        Some("lease-from-answer") => PlantedBug::LeaseFromAnswer,
        Some("lease-through-transfer") => PlantedBug::LeaseThroughTransfer,
        Some("lease-forgets-restart") => PlantedBug::LeaseForgetsRestart,
        Some("lease-yields-to-higher-term") => PlantedBug::LeaseYieldsToHigherTerm,
        Some("release-before-install") => PlantedBug::ReleaseBeforeInstall,
        other => return Err(format!("--plant: unknown bug {other:?}")),
    };
    Ok(Some(bug))
}

fn workload(args: &[String]) -> Result<Workload, String> {
    match args.iter().position(|a| a == "--workload").map(|p| args.get(p + 1).map(String::as_str)) {
        None | Some(Some("raft")) => Ok(Workload::Raft),
        Some(Some("kv")) => Ok(Workload::Kv),
        Some(other) => Err(format!("--workload: expected raft or kv, got {other:?}")),
    }
}

fn flag(args: &[String], name: &str) -> Result<Option<u64>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(p) => {
            let v = args.get(p + 1).ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map(Some).map_err(|_| format!("{name}: '{v}' is not a non-negative integer"))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sweep") => sweep(&args[1..]),
        Some("replay") => replay(&args[1..]),
        Some("explore") => explore(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn sweep(args: &[String]) -> Result<ExitCode, String> {
    let seeds = flag(args, "--seeds")?.ok_or("sweep needs --seeds N")?;
    let start = flag(args, "--start")?.unwrap_or(0);
    let workload = workload(args)?;
    let planted = plant(args)?;
    let began = Instant::now();
    let (mut kv_ops, mut kv_unknown, mut kv_in_doubt) = (0u64, 0u64, 0u64);
    let mut unchecked = Vec::new();
    let mut stats = skiff_verify::sim::FeatureStats::default();
    let (mut churn, mut churn_seeds) = (skiff_verify::sim::membership::ChurnStats::default(), 0u64);
    let (mut violations, mut events, mut committed, mut reads) = (0u64, 0u64, 0u64, 0u64);
    for seed in start..start + seeds {
        let report = run_seed_planted(seed, false, workload, planted);
        if let Some(kv) = report.sim.kv.as_ref() {
            kv_ops += kv.history.len() as u64;
            kv_unknown += kv.history.iter().filter(|o| o.ret.is_none()).count() as u64;
            kv_in_doubt += kv.in_doubt;
            if kv.unchecked {
                println!("seed {seed}: the linearizability check ran out of time (no verdict)");
                unchecked.push(seed);
            }
        }
        events += report.events;
        committed += report.committed;
        reads += report.sim.reads_served;
        stats.add(&report.sim.stats);
        let mut c = report.sim.churn;
        (c.committed, c.joint_committed) = report.sim.checker.configs_committed();
        churn_seeds += u64::from(c.proposed > 0);
        churn.add(&c);
        if let Some(v) = report.violation {
            violations += 1;
            println!("seed {seed} violated {v}");
            let w = if workload == Workload::Kv { " --workload kv" } else { "" };
            println!("  replay: cargo run --release -p skiff-verify -- replay --seed {seed}{w}");
        }
    }
    println!("committed_entries={committed} reads_served={reads}");
    if workload == Workload::Kv {
        println!(
            "kv_operations={kv_ops} kv_unknown_outcome={kv_unknown} kv_expired_in_doubt={kv_in_doubt} kv_unchecked_seeds={}",
            unchecked.len()
        );
    }
    let s = stats;
    println!(
        "snapshots_taken={} snapshots_installed={} largest_installed={}B snapshot_chunks={} chunk_bytes={} largest_chunk={}B timeout_now={} lease_reads={} snapshot_loads={}",
        s.snapshots_taken,
        s.snapshots_installed,
        s.largest_installed_snapshot,
        s.snapshot_chunks,
        s.snapshot_chunk_bytes,
        s.largest_snapshot_chunk,
        s.timeout_now,
        s.lease_reads,
        s.snapshot_loads
    );
    println!(
        "churn_seeds={churn_seeds} changes_proposed={} accepted={} refused={} configs_committed={} joint_committed={} leader_removed={} learners_promoted={}",
        churn.proposed, churn.accepted, churn.refused, churn.committed, churn.joint_committed, churn.leader_removed, churn.learners_promoted
    );
    println!("seeds={seeds} violations={violations} events={events} elapsed_s={:.1}", began.elapsed().as_secs_f64());
    Ok(if violations == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn replay(args: &[String]) -> Result<ExitCode, String> {
    let seed = flag(args, "--seed")?.ok_or("replay needs --seed S")?;
    let (cfg, faults) = profile(seed);
    println!("seed {seed}: {} nodes, {:?}", cfg.nodes, cfg.net);
    println!(
        "  persist delay {:?}, pre-vote {}, check-quorum {}, inflight {}, entries/msg {}",
        cfg.persist_delay, cfg.pre_vote, cfg.check_quorum, cfg.max_inflight_msgs, cfg.max_entries_per_msg
    );
    println!("  {faults:?}");
    let workload = workload(args)?;
    if workload == Workload::Kv {
        println!("  {:?}", kv_workload(seed));
    }
    let report = run_seed_planted(seed, true, workload, plant(args)?);
    for line in &report.sim.trace {
        println!("{line}");
    }
    println!("{}", report.sim.status());
    println!(
        "events={} committed={} acked={} digest={:016x}",
        report.events, report.committed, report.acked, report.digest
    );
    match report.violation {
        Some(v) => {
            println!("VIOLATION {v}");
            Ok(ExitCode::FAILURE)
        }
        None if report.sim.kv.as_ref().is_some_and(|kv| kv.unchecked) => {
            println!("no verdict: the linearizability check ran out of time (raise SKIFF_CHECK_SECS)");
            Ok(ExitCode::FAILURE)
        }
        None => {
            println!("no violation");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn explore(args: &[String]) -> Result<ExitCode, String> {
    use skiff_verify::explore::{case, explore, Limits, CASES};
    let name =
        args.iter().position(|a| a == "--case").and_then(|p| args.get(p + 1)).ok_or("explore needs --case NAME")?;
    let mut case = case(name).ok_or_else(|| format!("--case: unknown case {name:?} (cases: {})", CASES.join(", ")))?;
    let b = &mut case.budgets;
    for (name, slot) in [
        ("--crashes", &mut b.crashes),
        ("--duplicates", &mut b.duplicates),
        ("--drops", &mut b.drops),
        ("--heartbeats", &mut b.heartbeats),
        ("--proposals", &mut b.proposals),
    ] {
        if let Some(v) = flag(args, name)? {
            *slot = u8::try_from(v).map_err(|_| format!("{name}: at most 255"))?;
        }
    }
    case.max_term = flag(args, "--max-term")?.unwrap_or(case.max_term);
    let limits = Limits {
        depth: flag(args, "--depth")?.unwrap_or(12) as u32,
        max_states: flag(args, "--max-states")?.unwrap_or(5_000_000) as usize,
        time: std::time::Duration::from_secs(flag(args, "--seconds")?.unwrap_or(600)),
    };
    let expect = args.iter().any(|a| a == "--expect-violation");
    let planted = plant(args)?;
    let report = explore(&case, planted, limits).map_err(|v| format!("the start state violates {v}"))?;
    let per_depth: Vec<String> = report.per_depth.iter().map(u64::to_string).collect();
    println!("new states per depth: {}", per_depth.join(" "));
    if let Some((v, path, trace)) = &report.violation {
        println!("VIOLATION after {} actions: {v}", path.len());
        for line in trace {
            println!("{line}");
        }
    }
    println!("budgets: {:?} max_term={}", case.budgets, case.max_term);
    println!(
        "case={} depth={} states={} transitions={} deepest={} complete={} violation={} elapsed_s={:.1}",
        case.name,
        limits.depth,
        report.states,
        report.transitions,
        report.per_depth.len() - 1,
        report.complete,
        report.violation.is_some(),
        report.elapsed.as_secs_f64()
    );
    let ok = if expect { report.violation.is_some() } else { report.violation.is_none() && report.complete };
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
