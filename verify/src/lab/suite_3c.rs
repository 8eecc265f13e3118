//! The MIT 6.5840 Raft lab's part 3C (persistence, Figure 8, unreliable networks, churn). A
//! crash loses every persist not yet acknowledged; a restart sees only what the disk holds.

use super::{cmd, Lab, SECOND};
use crate::rng::SimRng;
use skiff_core::Index;

fn crash_and_restart<L: Lab>(c: &mut L, i: usize) {
    c.crash(i);
    c.restart(i);
    c.connect(i);
}

pub fn persist1<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    c.one(cmd(11), 3, true)?;
    for i in 0..3 {
        crash_and_restart(&mut c, i);
    }
    for i in 0..3 {
        c.disconnect(i);
        c.connect(i);
    }
    c.one(cmd(12), 3, true)?;
    let leader1 = c.check_one_leader()?;
    crash_and_restart(&mut c, leader1);
    c.one(cmd(13), 3, true)?;
    let leader2 = c.check_one_leader()?;
    c.disconnect(leader2);
    let i14 = c.one(cmd(14), 2, true)?;
    crash_and_restart(&mut c, leader2);
    c.wait(i14, 3, None)?;
    let leader3 = c.check_one_leader()?;
    let i3 = (leader3 + 1) % 3;
    c.disconnect(i3);
    c.one(cmd(15), 2, true)?;
    crash_and_restart(&mut c, i3);
    c.one(cmd(16), 3, true)?;
    c.finish()
}

pub fn persist2<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(5, seed, false);
    let mut index = 1;
    for _ in 0..5 {
        c.one(cmd(10 + index), 5, true)?;
        index += 1;
        let leader1 = c.check_one_leader()?;
        c.disconnect((leader1 + 1) % 5);
        c.disconnect((leader1 + 2) % 5);
        c.one(cmd(10 + index), 3, true)?;
        index += 1;
        for k in [0, 3, 4] {
            c.crash((leader1 + k) % 5);
        }
        for k in [1, 2] {
            crash_and_restart(&mut c, (leader1 + k) % 5);
        }
        c.sleep(SECOND)?;
        crash_and_restart(&mut c, (leader1 + 3) % 5);
        c.one(cmd(10 + index), 3, true)?;
        index += 1;
        for k in [4, 0] {
            crash_and_restart(&mut c, (leader1 + k) % 5);
        }
    }
    c.one(cmd(1000), 5, true)?;
    c.finish()
}

pub fn persist3<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    c.one(cmd(101), 3, true)?;
    let leader = c.check_one_leader()?;
    c.disconnect((leader + 2) % 3);
    c.one(cmd(102), 2, true)?;
    c.crash(leader % 3);
    c.crash((leader + 1) % 3);
    c.connect((leader + 2) % 3);
    crash_and_restart(&mut c, leader % 3);
    c.one(cmd(103), 2, true)?;
    crash_and_restart(&mut c, (leader + 1) % 3);
    c.one(cmd(104), 3, true)?;
    c.finish()
}

/// Figure 8: leaders crash often with entries on a minority; no index may ever commit two
/// values (the checker runs after every event).
fn figure8_run<L: Lab>(seed: u64, unreliable: bool) -> Result<(), String> {
    let mut c = L::make(5, seed, unreliable);
    let mut rng = SimRng::new(seed);
    c.one(cmd(rng.next_u64() % 10_000), 1, true)?;
    let mut up = 5;
    for iter in 0..1000 {
        if unreliable && iter == 200 {
            c.set_long_reordering(true);
        }
        let mut leader = None;
        for i in 0..5 {
            if (unreliable || c.is_up(i)) && c.start(i, cmd(rng.next_u64() % 10_000))?.is_some() {
                leader = Some(i);
            }
        }
        let pause = if rng.chance(0.1) { rng.between(0, 50) } else { rng.between(0, 2) };
        c.sleep(pause)?;
        if let Some(l) = leader {
            if unreliable {
                if rng.chance(0.5) {
                    c.disconnect(l);
                    up -= 1;
                }
            } else {
                c.crash(l);
                up -= 1;
            }
        }
        if up < 3 {
            let s = rng.below(5);
            if unreliable {
                if !c.is_connected(s) {
                    c.connect(s);
                    up += 1;
                }
            } else if !c.is_up(s) {
                crash_and_restart(&mut c, s);
                up += 1;
            }
        }
    }
    if unreliable {
        c.set_unreliable(true);
    }
    for i in 0..5 {
        if !c.is_up(i) {
            c.restart(i);
        }
        c.connect(i);
    }
    c.one(cmd(rng.next_u64() % 10_000), 5, true)?;
    c.finish()
}

pub fn figure8<L: Lab>(seed: u64) -> Result<(), String> {
    figure8_run::<L>(seed, false)
}

pub fn figure8_unreliable<L: Lab>(seed: u64) -> Result<(), String> {
    figure8_run::<L>(seed, true)
}

pub fn unreliable_agree<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(5, seed, true);
    for iter in 1..50u64 {
        for j in 0..4u64 {
            c.one(cmd(100 * iter + j), 1, true)?;
        }
        c.one(cmd(iter), 1, true)?;
    }
    c.set_unreliable(false);
    c.one(cmd(100), 5, true)?;
    c.finish()
}

/// Churn: clients keep proposing on every live server while servers are disconnected,
/// crashed and restarted at random; every value a client saw committed must survive.
fn churn<L: Lab>(seed: u64, unreliable: bool) -> Result<(), String> {
    let mut c = L::make(5, seed, unreliable);
    let mut rng = SimRng::new(seed);
    let mut seen_committed: Vec<(Index, bytes::Bytes)> = Vec::new();
    let mut pending: Vec<(Index, bytes::Bytes, u64)> = Vec::new();
    for _ in 0..20 {
        // 700 ms of client traffic and faults.
        for _ in 0..70 {
            for i in 0..5 {
                if c.is_up(i) && rng.chance(0.3) {
                    let x = cmd(rng.next_u64() >> 1);
                    if let Some((index, _)) = c.start(i, x.clone())? {
                        pending.push((index, x, c.now()));
                    }
                }
            }
            c.sleep(1)?;
            let mut still = Vec::new();
            for (index, x, at) in pending.drain(..) {
                match c.n_committed(index)? {
                    (n, Some(d)) if n > 0 && d == x => seen_committed.push((index, x)),
                    _ => still.push((index, x, at)),
                }
            }
            pending = still;
            // Clients give up after 200 ms, as the lab's do.
            let now = c.now();
            pending.retain(|(_, _, at)| now - at < 20);
        }
        if rng.chance(0.2) {
            let i = rng.below(5);
            c.disconnect(i);
        }
        if rng.chance(0.5) {
            let i = rng.below(5);
            if !c.is_up(i) {
                c.restart(i);
            }
            c.connect(i);
        }
        if rng.chance(0.2) {
            let i = rng.below(5);
            c.crash(i);
        }
    }
    c.sleep(SECOND)?;
    c.set_unreliable(false);
    for i in 0..5 {
        if !c.is_up(i) {
            c.restart(i);
        }
        c.connect(i);
    }
    let last = c.one(cmd(u64::MAX - 1), 5, true)?;
    for i in 1..=last.0 {
        c.wait(Index(i), 5, None)?;
    }
    for (index, x) in seen_committed {
        let (_, data) = c.n_committed(index)?;
        assert_eq!(data.as_ref(), Some(&x), "seed {seed}: committed value at {} lost", index.0);
    }
    c.finish()
}

pub fn reliable_churn<L: Lab>(seed: u64) -> Result<(), String> {
    churn::<L>(seed, false)
}

pub fn unreliable_churn<L: Lab>(seed: u64) -> Result<(), String> {
    churn::<L>(seed, true)
}
