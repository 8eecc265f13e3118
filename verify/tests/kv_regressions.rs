//! KV seeds that once failed, replayed on every run. Each must stay clean.

use skiff_verify::swarm::{run_seed_with, Report, Workload};

/// Runs `seed` with the KV workload; it must be clean.
fn clean(seed: u64) -> Report {
    let r = run_seed_with(seed, false, Workload::Kv);
    assert!(
        r.violation.is_none(),
        "seed {seed} violated {:?}; replay with: skiff-verify replay --seed {seed} --workload kv",
        r.violation
    );
    r
}

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

/// A put applied twice (the history lost an append between its two applies): the simulator
/// delivered a request twice, one copy was refused (so the clerk took the attempt as not
/// applied) while the other committed; the session then expired and the clerk resent the put
/// under a new session. Requests travel over TCP, which never duplicates them: the simulator
/// now delivers each at most once, as the clerk assumes (answers may still be duplicated).
#[test]
fn a_refused_copy_of_a_duplicated_request_is_not_taken_for_the_attempt() {
    clean(644);
}

/// Liveness: one voter and four learners under KV load, snapshotting every few entries with
/// 32-byte chunks. The leader restarted every snapshot transfer whenever it took a newer
/// snapshot, which it did faster than a transfer took: no learner ever finished one, while
/// the voter committed alone. A transfer now goes on with the snapshot it began with.
#[test]
fn a_snapshot_transfer_finishes_however_often_the_leader_snapshots() {
    let r = clean(2_001_964);
    assert!(r.sim.churn.accepted > 0, "seed 2001964 no longer adds learners");
}
