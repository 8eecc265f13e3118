//! The MIT 6.5840 Raft lab's part 3D (snapshots): every server's service snapshots every 10
//! applied entries, a lagging or restarted server catches up through InstallSnapshot, and the
//! persisted Raft state (hard state and log, not the snapshot) stays under the lab's 2000
//! bytes. The cluster's applier checks that applies continue from a snapshot's index + 1.

use super::{cmd, Lab};
use crate::rng::SimRng;
use skiff_core::Index;

/// The lab's `MAXLOGSIZE`.
const MAX_LOG_SIZE: usize = 2000;
/// The lab's `SnapShotInterval`.
const SNAPSHOT_INTERVAL: u64 = 10;

#[derive(Clone, Copy, PartialEq)]
enum Victim {
    /// Nobody fails; followers keep up (no InstallSnapshot needed).
    None,
    Disconnect,
    Crash,
}

/// The lab's `snapcommon`: 30 rounds in which a victim (a follower, or every third round the
/// leader) is cut off while the others commit past a snapshot, then returns and catches up.
fn snapcommon<L: Lab>(seed: u64, victim_kind: Victim, unreliable: bool) -> Result<(), String> {
    let servers = 3;
    let mut c = L::make_snapshotting(servers, seed, unreliable);
    let mut rng = SimRng::new(seed ^ 0x3d);
    c.one(cmd(rng.next_u64()), servers, true)?;
    let mut leader = c.check_one_leader()?;
    let mut largest = 0;
    for round in 0..30 {
        let (mut victim, mut sender) = ((leader + 1) % servers, leader);
        if round % 3 == 1 {
            (victim, sender) = (leader, (leader + 1) % servers);
        }
        match victim_kind {
            Victim::None => {}
            Victim::Disconnect => {
                c.disconnect(victim);
                c.one(cmd(rng.next_u64()), servers - 1, true)?;
            }
            Victim::Crash => {
                c.crash(victim);
                c.one(cmd(rng.next_u64()), servers - 1, true)?;
            }
        }
        // Enough proposals to pass a snapshot (the sender may not lead: then they are refused).
        let nn = SNAPSHOT_INTERVAL / 2 + rng.next_u64() % SNAPSHOT_INTERVAL;
        for _ in 0..nn {
            c.start(sender, cmd(rng.next_u64()))?;
        }
        let expected = if victim_kind == Victim::None { servers } else { servers - 1 };
        c.one(cmd(rng.next_u64()), expected, true)?;
        let size = c.log_size();
        largest = largest.max(size);
        if size >= MAX_LOG_SIZE {
            return Err(format!(
                "seed {seed} round {round}: persisted Raft state is {size} bytes, over {MAX_LOG_SIZE}"
            ));
        }
        match victim_kind {
            Victim::None => {}
            Victim::Disconnect => {
                c.connect(victim);
                c.one(cmd(rng.next_u64()), servers, true)?;
                leader = c.check_one_leader()?;
            }
            Victim::Crash => {
                c.restart(victim);
                c.connect(victim);
                c.one(cmd(rng.next_u64()), servers, true)?;
                leader = c.check_one_leader()?;
            }
        }
    }
    // Informational (shown with --nocapture).
    println!("seed {seed}: largest persisted Raft state {largest} bytes");
    if victim_kind != Victim::None && c.snapshots_installed() == 0 {
        return Err(format!("seed {seed}: no server caught up through InstallSnapshot"));
    }
    c.finish()
}

pub fn snapshot_basic<L: Lab>(seed: u64) -> Result<(), String> {
    snapcommon::<L>(seed, Victim::None, false)
}

pub fn snapshot_install<L: Lab>(seed: u64) -> Result<(), String> {
    snapcommon::<L>(seed, Victim::Disconnect, false)
}

pub fn snapshot_install_unreliable<L: Lab>(seed: u64) -> Result<(), String> {
    snapcommon::<L>(seed, Victim::Disconnect, true)
}

pub fn snapshot_install_crash<L: Lab>(seed: u64) -> Result<(), String> {
    snapcommon::<L>(seed, Victim::Crash, false)
}

pub fn snapshot_install_uncrash<L: Lab>(seed: u64) -> Result<(), String> {
    snapcommon::<L>(seed, Victim::Crash, true)
}

fn crash_and_restart_all<L: Lab>(c: &mut L) {
    for i in 0..c.n() {
        c.crash(i);
    }
    for i in 0..c.n() {
        c.restart(i);
        c.connect(i);
    }
}

/// The lab's `TestSnapshotAllCrash3D`: every server crashes at once and restarts from its
/// snapshot and log tail; the log goes on after the last agreed index.
pub fn snapshot_all_crash<L: Lab>(seed: u64) -> Result<(), String> {
    let servers = 3;
    let mut c = L::make_snapshotting(servers, seed, true);
    let mut rng = SimRng::new(seed ^ 0xac);
    c.one(cmd(rng.next_u64()), servers, true)?;
    for _ in 0..5 {
        let nn = SNAPSHOT_INTERVAL / 2 + rng.next_u64() % SNAPSHOT_INTERVAL;
        for _ in 0..nn {
            c.one(cmd(rng.next_u64()), servers, true)?;
        }
        let index1 = c.one(cmd(rng.next_u64()), servers, true)?;
        crash_and_restart_all(&mut c);
        let index2 = c.one(cmd(rng.next_u64()), servers, true)?;
        if index2 < Index(index1.0 + 1) {
            return Err(format!("seed {seed}: index {} after the crash, not past {}", index2.0, index1.0));
        }
    }
    c.finish()
}

/// The lab's `TestSnapshotInit3D`: a server restarted from a snapshot keeps it as its base, so
/// a later persist does not lose it (a second crash would otherwise find no snapshot).
pub fn snapshot_init<L: Lab>(seed: u64) -> Result<(), String> {
    let servers = 3;
    let mut c = L::make_snapshotting(servers, seed, true);
    let mut rng = SimRng::new(seed ^ 0x1b);
    c.one(cmd(rng.next_u64()), servers, true)?;
    for _ in 0..=SNAPSHOT_INTERVAL {
        c.one(cmd(rng.next_u64()), servers, true)?;
    }
    crash_and_restart_all(&mut c);
    c.one(cmd(rng.next_u64()), servers, true)?;
    crash_and_restart_all(&mut c);
    c.one(cmd(rng.next_u64()), servers, true)?;
    if (0..c.n()).any(|i| !c.has_snapshot(i)) {
        return Err(format!("seed {seed}: a server lost its snapshot across restarts"));
    }
    c.finish()
}
