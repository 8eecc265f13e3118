//! Membership-churn seeds that once failed, replayed on every run. Each must stay clean.

use skiff_verify::swarm::run_seed;

fn clean_with_churn(seed: u64) {
    let r = run_seed(seed, false);
    assert!(
        r.violation.is_none(),
        "seed {seed} violated {:?}; replay with: skiff-verify replay --seed {seed}",
        r.violation
    );
    assert!(r.sim.churn.accepted > 0, "seed {seed} no longer exercises membership changes");
}

/// Liveness: a leader removed itself (`{1, 2} -> {1}`), crashed before the one remaining
/// voter received the entry, and restarted as a node that votes in no configuration but its
/// committed one. It was barred from campaigning (it is no voter of its latest configuration),
/// and n1 could not win with its shorter log: no leader ever again. A node now campaigns
/// when it votes in its latest or its latest committed configuration.
#[test]
fn a_leader_that_removed_itself_and_restarted_can_still_finish_the_removal() {
    for seed in [794, 1682, 1800] {
        clean_with_churn(seed);
    }
}

/// Stack overflow: a joining node's service asked for a snapshot before the entry that set
/// its configuration (the core refuses: a snapshot must name one), and the simulated service
/// asked again at once, without end. First leaders now write the bootstrap configuration as
/// their first entry, and the service does not retry an index that was refused.
#[test]
fn a_joiner_whose_snapshot_is_refused_does_not_retry_in_a_loop() {
    clean_with_churn(341);
}

/// Liveness (a harness bug): the liveness phase stopped "removed" servers by a leader's view,
/// and a leader of an old term, not yet deposed, did not list a learner added since; that
/// learner stayed down and never applied the probe. Servers are now stopped in the liveness
/// phase only where they could disrupt, by the committed history.
#[test]
fn the_liveness_phase_stops_only_servers_the_committed_history_removed() {
    clean_with_churn(1_632_975);
    // And not one a newer configuration, not committed yet, adds (n4, a voter of {1, 2, 3, 4}
    // at index 74, was stopped as a non-member of the committed {1, 2, 3}).
    clean_with_churn(1_605_653);
}

/// Liveness: a single voter committed far ahead of two learners; after healing, the learners'
/// single-entry appends arrived out of order (each message's delay drawn on its own), so they
/// caught up at about one reject per entry and missed the probe's deadline. The healed
/// network now keeps each link in order, as a TCP connection does.
#[test]
fn learners_far_behind_catch_up_after_healing() {
    clean_with_churn(1_674_265);
}

/// Liveness (the deadline, not the cluster): a learner added about 770 entries behind one
/// voter, replicated one entry per message to a disk that takes up to 6 ticks a write, was
/// still applying steadily when the fixed 1000-tick deadline passed. The liveness phase now
/// goes on while the servers' applied indexes keep growing (up to 10,000 ticks).
#[test]
fn a_learner_still_catching_up_is_not_a_liveness_failure() {
    clean_with_churn(2_038_621);
}

/// SnapshotCopied, a false alarm of the check: a leader streaming its snapshot (bytes kept in
/// storage only) removed itself and stepped down in the step that sent a chunk, dropping the
/// transfer's copy; the chunk was still a slice of the copy its disk holds, which the check
/// now accepts (a real copy is still caught).
#[test]
fn a_leader_that_steps_down_in_the_step_it_sent_a_chunk_sent_a_slice() {
    assert!(skiff_verify::swarm::profile(4_394_748).0.snapshots_in_storage);
    clean_with_churn(4_394_748);
}
