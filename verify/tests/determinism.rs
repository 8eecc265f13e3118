//! One seed, one run: the same seed must give the same trace twice, and different seeds
//! different ones.

use skiff_verify::swarm::run_seed;

#[test]
fn same_seed_same_trace() {
    for seed in [1u64, 17, 4242] {
        let a = run_seed(seed, true);
        let b = run_seed(seed, true);
        assert!(a.violation.is_none(), "seed {seed}: {:?}", a.violation);
        assert_eq!(a.sim.trace, b.sim.trace, "seed {seed}: traces differ");
        assert_eq!(a.digest, b.digest, "seed {seed}: digests differ");
        assert_eq!(a.events, b.events);
        assert!(!a.sim.trace.is_empty());
    }
    assert_ne!(run_seed(1, false).digest, run_seed(2, false).digest);
}

#[test]
fn a_short_sweep_finds_no_violation() {
    for seed in 0..60 {
        let r = run_seed(seed, false);
        assert!(
            r.violation.is_none(),
            "seed {seed} violated {:?}; replay with: skiff-verify replay --seed {seed}",
            r.violation
        );
        assert!(r.committed > 0, "seed {seed}: nothing committed");
    }
}

#[test]
fn kv_seeds_replay_exactly_and_their_histories_are_linearizable() {
    use skiff_verify::swarm::{run_seed_with, Workload};
    for seed in [3u64, 4] {
        let a = run_seed_with(seed, true, Workload::Kv);
        let b = run_seed_with(seed, true, Workload::Kv);
        assert!(a.violation.is_none(), "seed {seed}: {:?}", a.violation);
        assert_eq!(a.sim.trace, b.sim.trace, "seed {seed}: traces differ");
        let (ha, hb) = (&a.sim.kv.as_ref().unwrap().history, &b.sim.kv.as_ref().unwrap().history);
        assert_eq!(ha, hb, "seed {seed}: histories differ");
        assert!(ha.iter().filter(|o| o.ret.is_some()).count() > 10, "seed {seed}: clients got little done");
    }
}
