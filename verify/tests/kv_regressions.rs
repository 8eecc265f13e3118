//! KV seeds that once failed, replayed on every run. Each must stay clean.

use skiff_verify::swarm::{run_seed_with, Workload};

/// Message storms (200,001 events queued): the clerk took a duplicated or late answer to an
/// earlier attempt for the one in flight and started another attempt each time, so under
/// duplication the attempts multiplied. Fixed by numbering attempts (`Clerk::on_reply`).
#[test]
fn duplicated_answers_to_old_attempts_cause_no_message_storm() {
    for seed in [101_269u64, 101_945, 102_657, 201_969] {
        let r = run_seed_with(seed, false, Workload::Kv);
        assert!(
            r.violation.is_none(),
            "seed {seed} violated {:?}; replay with: skiff-verify replay --seed {seed} --workload kv",
            r.violation
        );
        let kv = r.sim.kv.as_ref().expect("kv workload");
        assert!(kv.completed > 10, "seed {seed}: clients got little done");
    }
}
