//! What a simulated run exercised, summed over a sweep.

/// Counters of what a run exercised beyond plain replication.
#[derive(Clone, Copy, Debug, Default)]
pub struct FeatureStats {
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
    pub largest_installed_snapshot: u64,
    pub snapshot_chunks: u64,
    pub snapshot_chunk_bytes: u64,
    pub largest_snapshot_chunk: u64,
    pub timeout_now: u64,
    /// Reads leaders answered from their lease.
    pub lease_reads: u64,
    /// Snapshot chunks sent as slices of the sender's snapshot (all of them, or a violation).
    pub borrowed_chunks: u64,
    /// Snapshots read back from the disk (`snapshots_in_storage`).
    pub snapshot_loads: u64,
}

impl FeatureStats {
    pub fn add(&mut self, o: &FeatureStats) {
        self.snapshots_taken += o.snapshots_taken;
        self.snapshots_installed += o.snapshots_installed;
        self.largest_installed_snapshot = self.largest_installed_snapshot.max(o.largest_installed_snapshot);
        self.snapshot_chunks += o.snapshot_chunks;
        self.snapshot_chunk_bytes += o.snapshot_chunk_bytes;
        self.largest_snapshot_chunk = self.largest_snapshot_chunk.max(o.largest_snapshot_chunk);
        self.timeout_now += o.timeout_now;
        self.lease_reads += o.lease_reads;
        self.borrowed_chunks += o.borrowed_chunks;
        self.snapshot_loads += o.snapshot_loads;
    }
}
