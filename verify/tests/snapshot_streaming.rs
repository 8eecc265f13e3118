//! A large snapshot streamed to two lagging followers at once. The simulator checks at every
//! send that each chunk is a slice of the leader's one copy of its snapshot (never a copy per
//! chunk or per follower), and the checker that each installed snapshot equals the committed
//! state at its index. Run twice: with the leader holding its snapshot, and with the bytes
//! kept in storage only (`snapshots_in_storage`), read back for the transfer.

use skiff_verify::harness::{cmd, Cluster, Lab};

/// 4 MiB snapshots, sent in the default 64 KiB chunks.
const SNAPSHOT_BYTES: usize = 4 << 20;
const CHUNK_BYTES: u64 = 64 << 10;

#[test]
fn four_mib_snapshot_reaches_two_followers_without_copies() {
    for (seed, in_storage) in [(0, false), (1, false), (0, true), (1, true)] {
        let mut cfg = Cluster::lab_config(5, seed, false);
        cfg.snapshots_in_storage = in_storage;
        cfg.snapshot_every = Some(50);
        cfg.snapshot_bytes = SNAPSHOT_BYTES;
        cfg.snapshot_chunk_bytes = CHUNK_BYTES;
        let mut c = Cluster::from_config(cfg);
        let leader = c.check_one_leader().unwrap_or_else(|e| panic!("{e}"));
        let lagging = [(leader + 1) % 5, (leader + 2) % 5];
        for &i in &lagging {
            c.disconnect(i);
        }
        for k in 0..60 {
            c.one(cmd(k), 3, true).unwrap_or_else(|e| panic!("{e}"));
        }
        for &i in &lagging {
            c.connect(i);
        }
        c.one(cmd(1000), 5, true).unwrap_or_else(|e| panic!("{e}"));
        c.finish().unwrap_or_else(|e| panic!("{e}"));

        let s = c.sim.stats;
        let chunks_per_snapshot = (SNAPSHOT_BYTES as u64).div_ceil(CHUNK_BYTES);
        assert!(
            s.snapshots_installed >= 2,
            "seed {seed}: {} installs, expected one per lagging follower",
            s.snapshots_installed
        );
        assert_eq!(s.largest_installed_snapshot, SNAPSHOT_BYTES as u64, "seed {seed}");
        assert_eq!(s.largest_snapshot_chunk, CHUNK_BYTES, "seed {seed}");
        assert!(s.borrowed_chunks >= 2 * chunks_per_snapshot, "seed {seed}: only {} chunks sent", s.borrowed_chunks);
        // Chunks sent before the followers reconnected are lost; once connected, a reliable
        // network needs each chunk delivered once.
        assert_eq!(s.snapshot_chunks, 2 * chunks_per_snapshot, "seed {seed}: chunks delivered more than once");
        assert_eq!(s.snapshot_loads > 0, in_storage, "seed {seed}: {} snapshots read back", s.snapshot_loads);
        println!(
            "seed {seed} (in storage: {in_storage}): {} installs of a {} B snapshot, {} chunks of {} B sent, {} delivered, every one a slice of the leader's snapshot, {} read back",
            s.snapshots_installed, s.largest_installed_snapshot, s.borrowed_chunks, s.largest_snapshot_chunk, s.snapshot_chunks, s.snapshot_loads
        );
    }
}
