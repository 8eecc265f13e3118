//! The MIT 6.5840 Raft lab's test suite (parts 3A-3D), written once against the [`Lab`]
//! trait: the lab's tester (`config.go`) as a handful of primitives, with the lab's helpers
//! (`check_one_leader`, `check_terms`, `check_no_leader`, `n_committed`, `one`, `wait`) built
//! on them. The simulator's [`crate::harness::Cluster`] runs the suite on virtual time over
//! many seeds; the driver tests run the same functions on real threads.
//!
//! Time is in ticks of 10 ms: the lab's "5 seconds" is 500 ticks.

pub mod suite_3ab;
pub mod suite_3c;
pub mod suite_3d;

use std::collections::BTreeMap;

use bytes::Bytes;
use skiff_core::{Index, Role, Term, View};

/// Ticks per second (10 ms ticks).
pub const SECOND: u64 = 100;

/// A command of the lab's tests: a number, carried as its decimal text.
pub fn cmd(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

/// Runs one suite function for each seed; a failure panics with its message (which names the
/// seed).
pub fn each_seed(seeds: std::ops::Range<u64>, f: impl Fn(u64) -> Result<(), String>) {
    for seed in seeds {
        if let Err(e) = f(seed) {
            panic!("{e}");
        }
    }
}

/// A lab cluster: `n` servers, numbered `0..n`, behind a network the test controls.
pub trait Lab: Sized {
    /// The lab's `make_config(n, unreliable, snapshot=false)`.
    fn make(n: usize, seed: u64, unreliable: bool) -> Self;
    /// The same with the snapshotting applier: each service snapshots every 10 entries.
    fn make_snapshotting(n: usize, seed: u64, unreliable: bool) -> Self;
    fn seed(&self) -> u64;
    fn n(&self) -> usize;
    /// Lets time pass; a safety violation or an applier error seen meanwhile fails the test.
    fn sleep(&mut self, ticks: u64) -> Result<(), String>;
    /// Ticks since the cluster was made.
    fn now(&self) -> u64;
    fn set_unreliable(&mut self, on: bool);
    /// Replies delayed by 200-2200 ms about two times in three (on an unreliable network).
    fn set_long_reordering(&mut self, on: bool);
    fn disconnect(&mut self, i: usize);
    fn connect(&mut self, i: usize);
    fn is_connected(&self, i: usize) -> bool;
    /// The lab's `crash1`: disconnected, stopped, and whatever it had not persisted is lost.
    fn crash(&mut self, i: usize);
    /// The lab's `start1`: a fresh server from what was persisted (still disconnected).
    fn restart(&mut self, i: usize);
    fn is_up(&self, i: usize) -> bool;
    /// Server `i`'s view, if it is up.
    fn view(&self, i: usize) -> Option<View>;
    /// The command server `i` holds committed at `index` (its service applied it, or in the
    /// simulator, the core committed it), if it got that far.
    fn committed_command(&self, i: usize, index: Index) -> Option<Bytes>;
    /// The lab's `Start` on server `i`: where the command went if `i` leads.
    fn start(&mut self, i: usize, command: Bytes) -> Result<Option<(Index, Term)>, String>;
    /// Requests sent so far (a call and its reply count once).
    fn rpc_count(&self) -> u64;
    /// Entry payload bytes sent so far.
    fn rpc_bytes(&self) -> u64;
    /// The lab's `LogSize`: the most Raft state (hard state and log) any server persisted.
    fn log_size(&self) -> usize;
    /// Snapshots installed from a leader so far, over all servers.
    fn snapshots_installed(&self) -> u64;
    /// Whether server `i`'s storage holds a snapshot.
    fn has_snapshot(&self, i: usize) -> bool;
    /// Checks at the end of a test: nothing acknowledged lost, appliers agree.
    fn final_check(&mut self) -> Result<(), String>;
    /// A one-paragraph account of the cluster for failure messages.
    fn describe(&self) -> String;

    /// A failure message naming the seed, with the cluster's state.
    fn fail(&self, what: String) -> String {
        format!("seed {}: {what}\n{}", self.seed(), self.describe())
    }

    /// Connected, live servers that believe they lead, with their terms.
    fn leaders(&self) -> Vec<(usize, Term)> {
        (0..self.n())
            .filter(|i| self.is_connected(*i))
            .filter_map(|i| self.view(i).filter(|v| v.role == Role::Leader).map(|v| (i, v.term)))
            .collect()
    }

    /// A leader among connected servers within about 5 s, and never two in one term.
    fn check_one_leader(&mut self) -> Result<usize, String> {
        for _ in 0..10 {
            self.sleep(50)?;
            let mut by_term = BTreeMap::new();
            for (i, t) in self.leaders() {
                if let Some(other) = by_term.insert(t, i) {
                    return Err(self.fail(format!("term {} has leaders {other} and {i}", t.0)));
                }
            }
            if let Some((_, i)) = by_term.iter().next_back() {
                return Ok(*i);
            }
        }
        Err(self.fail("expected one leader, got none".into()))
    }

    /// Every connected server agrees on the term; returns it.
    fn check_terms(&self) -> Result<Term, String> {
        let mut term = None;
        for i in (0..self.n()).filter(|i| self.is_connected(*i)) {
            if let Some(v) = self.view(i) {
                match term {
                    None => term = Some(v.term),
                    Some(t) if t != v.term => return Err(self.fail("servers disagree on term".into())),
                    _ => {}
                }
            }
        }
        term.ok_or_else(|| self.fail("no connected server".into()))
    }

    /// No connected server believes it leads.
    fn check_no_leader(&self) -> Result<(), String> {
        match self.leaders().first() {
            Some((i, _)) => Err(self.fail(format!("expected no leader among connected servers, but {i} claims to be"))),
            None => Ok(()),
        }
    }

    /// How many live servers have applied `index`, and the command there. Two servers with
    /// different commands at one index fail the test.
    fn n_committed(&self, index: Index) -> Result<(usize, Option<Bytes>), String> {
        let mut count = 0;
        let mut data: Option<Bytes> = None;
        for i in (0..self.n()).filter(|i| self.is_up(*i)) {
            if let Some(here) = self.committed_command(i, index) {
                if let Some(d) = &data {
                    if *d != here {
                        return Err(self.fail(format!("committed values differ at index {}", index.0)));
                    }
                }
                count += 1;
                data = Some(here);
            }
        }
        Ok((count, data))
    }

    /// The lab's `one`: submit `command` to whichever connected server leads, and require
    /// `expected` servers to commit it, within 10 s. With `retry`, a lost proposal is tried
    /// again on the next leader.
    fn one(&mut self, command: Bytes, expected: usize, retry: bool) -> Result<Index, String> {
        let deadline = self.now() + 10 * SECOND;
        let mut starts = 0;
        while self.now() < deadline {
            let mut index = None;
            for _ in 0..self.n() {
                starts = (starts + 1) % self.n();
                if self.is_connected(starts) {
                    if let Some((i, _)) = self.start(starts, command.clone())? {
                        index = Some(i);
                        break;
                    }
                }
            }
            if let Some(index) = index {
                let give_up = self.now() + 2 * SECOND;
                while self.now() < give_up {
                    let (n, data) = self.n_committed(index)?;
                    if n > 0 && n >= expected && data.as_ref() == Some(&command) {
                        return Ok(index);
                    }
                    self.sleep(2)?;
                }
                if !retry {
                    return Err(self.fail(format!("one({command:?}) failed to reach agreement at index {}", index.0)));
                }
            } else {
                self.sleep(5)?;
            }
        }
        Err(self.fail(format!("one({command:?}) failed to reach agreement within 10 s")))
    }

    /// The lab's `wait`: until `n` servers commit `index` (or a term moves past
    /// `start_term`); returns the command there.
    fn wait(&mut self, index: Index, n: usize, start_term: Option<Term>) -> Result<Option<Bytes>, String> {
        let mut pause = 1;
        for _ in 0..30 {
            let (count, data) = self.n_committed(index)?;
            if count >= n {
                return Ok(data);
            }
            self.sleep(pause)?;
            pause = (pause * 2).min(100);
            if let Some(t) = start_term {
                if (0..self.n()).filter_map(|i| self.view(i)).any(|v| v.term > t) {
                    return Ok(None);
                }
            }
        }
        let (count, _) = self.n_committed(index)?;
        if count < n {
            return Err(self.fail(format!("only {count} decided for index {}; wanted {n}", index.0)));
        }
        Ok(None)
    }

    /// Heals, restarts and reconnects everything, then requires agreement and runs the final
    /// checks.
    fn finish(&mut self) -> Result<(), String> {
        for i in 0..self.n() {
            if !self.is_up(i) {
                self.restart(i);
            }
            self.connect(i);
        }
        self.set_unreliable(false);
        self.one(cmd(u64::MAX), self.n(), true)?;
        self.final_check()
    }
}
