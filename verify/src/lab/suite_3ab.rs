//! The MIT 6.5840 Raft lab's parts 3A (leader election) and 3B (log agreement), with the
//! lab's limits (catalogue in `shared/reference/mit-6.5840-tests.md`).

use super::{cmd, Lab, SECOND};
use crate::rng::SimRng;
use bytes::Bytes;
use skiff_core::Index;

pub fn initial_election<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    c.check_one_leader()?;
    c.sleep(5)?;
    let term1 = c.check_terms()?;
    assert!(term1.0 >= 1, "term is {term1:?}, but should be at least 1");
    c.sleep(2 * SECOND)?;
    let term2 = c.check_terms()?;
    assert_eq!(term1, term2, "seed {seed}: term changed with no failures");
    c.check_one_leader()?;
    c.finish()
}

pub fn re_election<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    let leader1 = c.check_one_leader()?;
    c.disconnect(leader1);
    c.check_one_leader()?;
    // The old leader rejoining must not disturb the new one.
    c.connect(leader1);
    let leader2 = c.check_one_leader()?;
    // No quorum: no leader.
    c.disconnect(leader2);
    c.disconnect((leader2 + 1) % 3);
    c.sleep(2 * SECOND)?;
    c.check_no_leader()?;
    c.connect((leader2 + 1) % 3);
    c.check_one_leader()?;
    c.connect(leader2);
    c.check_one_leader()?;
    c.finish()
}

pub fn many_elections<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(7, seed, false);
    let mut rng = SimRng::new(seed);
    c.check_one_leader()?;
    for _ in 0..10 {
        let victims: Vec<usize> = (0..3).map(|_| rng.below(7)).collect();
        for v in &victims {
            c.disconnect(*v);
        }
        // Either the current leader is still alive, or the remaining four elect one.
        c.check_one_leader()?;
        for v in &victims {
            c.connect(*v);
        }
    }
    c.check_one_leader()?;
    c.finish()
}

pub fn basic_agree<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    c.check_one_leader()?;
    // Index 1 holds the first leader's no-op; commands follow it.
    let base = c.one(cmd(1), 3, false)?.0;
    for k in 1..=3u64 {
        let (n, _) = c.n_committed(Index(base + k))?;
        assert_eq!(n, 0, "seed {seed}: committed before Start");
        let index = c.one(cmd(k * 100), 3, false)?;
        assert_eq!(index, Index(base + k), "seed {seed}: got index {index:?}");
    }
    c.finish()
}

pub fn rpc_bytes<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    c.one(cmd(99), 3, false)?;
    let bytes0 = c.rpc_bytes();
    let mut rng = SimRng::new(seed);
    let mut sent = 0;
    for _ in 0..10 {
        let s: String = (0..5000).map(|_| (b'a' + (rng.below(26) as u8)) as char).collect();
        sent += s.len() as u64;
        c.one(Bytes::from(s), 3, false)?;
    }
    let got = c.rpc_bytes() - bytes0;
    // Each command goes to each of 2 followers about once; the lab allows 50 KB slack.
    let expected = sent * 2;
    assert!(got <= expected + 50_000, "seed {seed}: too many RPC bytes; got {got}, expected {expected}");
    c.finish()
}

pub fn follower_failure<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    c.one(cmd(101), 3, false)?;
    let leader1 = c.check_one_leader()?;
    c.disconnect((leader1 + 1) % 3);
    c.one(cmd(102), 2, false)?;
    c.sleep(SECOND)?;
    c.one(cmd(103), 2, false)?;
    let leader2 = c.check_one_leader()?;
    c.disconnect((leader2 + 1) % 3);
    c.disconnect((leader2 + 2) % 3);
    let (index, _) = c.start(leader2, cmd(104))?.ok_or_else(|| format!("seed {seed}: leader rejected Start"))?;
    c.sleep(2 * SECOND)?;
    let (n, _) = c.n_committed(index)?;
    assert_eq!(n, 0, "seed {seed}: {n} committed but no majority");
    c.finish()
}

pub fn leader_failure<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    c.one(cmd(101), 3, false)?;
    let leader1 = c.check_one_leader()?;
    c.disconnect(leader1);
    c.one(cmd(102), 2, false)?;
    c.sleep(SECOND)?;
    c.one(cmd(103), 2, false)?;
    let leader2 = c.check_one_leader()?;
    c.disconnect(leader2);
    let mut indexes = Vec::new();
    for i in 0..3 {
        if let Some((index, _)) = c.start(i, cmd(104))? {
            indexes.push(index);
        }
    }
    c.sleep(2 * SECOND)?;
    for index in indexes {
        let (n, _) = c.n_committed(index)?;
        assert_eq!(n, 0, "seed {seed}: {n} committed but no majority");
    }
    c.finish()
}

pub fn fail_agree<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    c.one(cmd(101), 3, false)?;
    let leader = c.check_one_leader()?;
    c.disconnect((leader + 1) % 3);
    for k in 102..=105 {
        c.one(cmd(k), 2, false)?;
        c.sleep(SECOND)?;
    }
    c.connect((leader + 1) % 3);
    c.one(cmd(106), 3, true)?;
    c.sleep(SECOND)?;
    c.one(cmd(107), 3, true)?;
    c.finish()
}

pub fn fail_no_agree<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(5, seed, false);
    let base = c.one(cmd(10), 5, false)?;
    let leader = c.check_one_leader()?;
    for k in 1..=3 {
        c.disconnect((leader + k) % 5);
    }
    let (index, _) = c.start(leader, cmd(20))?.ok_or_else(|| format!("seed {seed}: leader rejected Start"))?;
    assert_eq!(index, base.next(), "seed {seed}: expected index {}", base.0 + 1);
    c.sleep(2 * SECOND)?;
    let (n, _) = c.n_committed(index)?;
    assert_eq!(n, 0, "seed {seed}: {n} committed but no majority");
    for k in 1..=3 {
        c.connect((leader + k) % 5);
    }
    // The disconnected majority may have chosen a leader of its own; either way, the
    // uncommitted command 20 may be lost, and agreement resumes.
    let leader2 = c.check_one_leader()?;
    let (index2, _) = c.start(leader2, cmd(30))?.ok_or_else(|| format!("seed {seed}: leader2 rejected Start"))?;
    assert!(index2.0 > base.0 && index2.0 <= base.0 + 3, "seed {seed}: unexpected index {index2:?}");
    c.one(cmd(1000), 5, true)?;
    c.finish()
}

pub fn concurrent_starts<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    let mut ok = false;
    'tries: for attempt in 0..5 {
        if attempt > 0 {
            c.sleep(3 * SECOND)?;
        }
        let leader = c.check_one_leader()?;
        let Some((_, term)) = c.start(leader, cmd(1))? else { continue };
        let mut indexes = Vec::new();
        for k in 0..5 {
            match c.start(leader, cmd(100 + k))? {
                Some((index, t)) if t == term => indexes.push((index, 100 + k)),
                _ => continue 'tries,
            }
        }
        let mut seen = Vec::new();
        for (index, _) in &indexes {
            match c.wait(*index, 3, Some(term))? {
                Some(data) => seen.push(data),
                None => continue 'tries,
            }
        }
        for (_, k) in indexes {
            assert!(seen.contains(&cmd(k)), "seed {seed}: command {k} missing");
        }
        ok = true;
        break;
    }
    assert!(ok, "seed {seed}: term changed too often");
    c.finish()
}

pub fn rejoin<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    c.one(cmd(101), 3, true)?;
    let leader1 = c.check_one_leader()?;
    c.disconnect(leader1);
    // The isolated leader appends entries that never commit.
    for k in 102..=104 {
        c.start(leader1, cmd(k))?;
    }
    c.one(cmd(103), 2, true)?;
    let leader2 = c.check_one_leader()?;
    c.disconnect(leader2);
    c.connect(leader1);
    c.one(cmd(104), 2, true)?;
    c.connect(leader2);
    c.one(cmd(105), 3, true)?;
    c.finish()
}

pub fn backup<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(5, seed, false);
    let mut rng = SimRng::new(seed);
    let mut r = || cmd(rng.next_u64() >> 1);
    c.one(r(), 5, true)?;
    // Leader and one follower isolated: 50 entries that will not commit.
    let leader1 = c.check_one_leader()?;
    for k in 2..5 {
        c.disconnect((leader1 + k) % 5);
    }
    for _ in 0..50 {
        c.start(leader1, r())?;
    }
    c.sleep(SECOND / 2)?;
    c.disconnect(leader1);
    c.disconnect((leader1 + 1) % 5);
    // The other three commit 50 entries of their own.
    for k in 2..5 {
        c.connect((leader1 + k) % 5);
    }
    for _ in 0..50 {
        c.one(r(), 3, true)?;
    }
    // The new leader and one follower isolated: 50 more that will not commit.
    let leader2 = c.check_one_leader()?;
    let mut other = (leader1 + 2) % 5;
    if leader2 == other {
        other = (leader2 + 1) % 5;
    }
    c.disconnect(other);
    for _ in 0..50 {
        c.start(leader2, r())?;
    }
    c.sleep(SECOND / 2)?;
    // The original leader, its follower and `other` must catch up with fast backtracking.
    for i in 0..5 {
        c.disconnect(i);
    }
    c.connect(leader1);
    c.connect((leader1 + 1) % 5);
    c.connect(other);
    for _ in 0..50 {
        c.one(r(), 3, true)?;
    }
    for i in 0..5 {
        c.connect(i);
    }
    c.one(r(), 5, true)?;
    c.finish()
}

pub fn count<L: Lab>(seed: u64) -> Result<(), String> {
    let mut c = L::make(3, seed, false);
    c.check_one_leader()?;
    let elect = c.rpc_count();
    assert!((1..=30).contains(&elect), "seed {seed}: {elect} RPCs to elect; the lab allows 1..=30");
    let mut ok = false;
    let mut agree = 0;
    'tries: for attempt in 0..5 {
        if attempt > 0 {
            c.sleep(3 * SECOND)?;
        }
        let leader = c.check_one_leader()?;
        let before = c.rpc_count();
        let Some((start_index, term)) = c.start(leader, cmd(1))? else { continue };
        let mut cmds = Vec::new();
        for k in 1..=10u64 {
            let x = 100 + k;
            cmds.push(x);
            match c.start(leader, cmd(x))? {
                Some((index, t)) if t == term && index.0 == start_index.0 + k => {}
                _ => continue 'tries,
            }
        }
        for k in 1..=10u64 {
            match c.wait(Index(start_index.0 + k), 3, Some(term))? {
                Some(data) if data == cmd(cmds[k as usize - 1]) => {}
                Some(_) => return Err(format!("seed {seed}: wrong value committed")),
                None => continue 'tries,
            }
        }
        let total = c.rpc_count() - before;
        agree = total;
        assert!(total <= (10 + 1 + 3) * 3, "seed {seed}: too many RPCs ({total}) for 11 entries; the lab allows 42");
        ok = true;
        break;
    }
    assert!(ok, "seed {seed}: term changed too often");
    c.sleep(SECOND)?;
    let before = c.rpc_count();
    c.sleep(SECOND)?;
    let idle = c.rpc_count() - before;
    // Informational (shown with --nocapture).
    println!("seed {seed}: RPCs to elect {elect}, for 11 agreements {agree}, in an idle second {idle}");
    assert!(idle <= 3 * 20, "seed {seed}: too many RPCs ({idle}) in 1 s of idleness; the lab allows 60");
    c.finish()
}
