//! The simulated network: per-message delay, loss, duplication and long delays drawn from a
//! profile, and directional link cuts for symmetric and asymmetric partitions.

use std::collections::BTreeSet;

use crate::rng::SimRng;

/// Time in simulator units; one core tick is [`super::TICK`] units.
pub type Time = u64;

/// How the network misbehaves. Probabilities are per message.
#[derive(Clone, Debug, PartialEq)]
pub struct NetProfile {
    pub drop: f64,
    pub duplicate: f64,
    /// Normal one-way delay range, inclusive, in units.
    pub delay: (Time, Time),
    pub long_delay_prob: f64,
    /// Range of a long delay (reordering far behind later messages), in units.
    pub long_delay: (Time, Time),
}

impl NetProfile {
    /// A reliable network with small delays.
    pub fn reliable() -> NetProfile {
        NetProfile { drop: 0.0, duplicate: 0.0, delay: (1, 10), long_delay_prob: 0.0, long_delay: (0, 0) }
    }

    /// The lab's unreliable network, in spirit: some loss, some delay, some duplication.
    pub fn unreliable() -> NetProfile {
        NetProfile { drop: 0.1, duplicate: 0.02, delay: (1, 270), long_delay_prob: 0.0, long_delay: (0, 0) }
    }

    /// The lab's long reordering on top of unreliable: many messages arrive far too late.
    pub fn unreliable_long_reordering() -> NetProfile {
        NetProfile { long_delay_prob: 0.3, long_delay: (2_000, 22_000), ..NetProfile::unreliable() }
    }
}

/// Directional link cuts between node indexes.
#[derive(Clone, Debug, Default)]
pub struct Links {
    cut: BTreeSet<(usize, usize)>,
}

impl Links {
    pub fn is_open(&self, from: usize, to: usize) -> bool {
        !self.cut.contains(&(from, to))
    }

    pub fn cut(&mut self, from: usize, to: usize) {
        self.cut.insert((from, to));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Cuts every link of `node`, both ways.
    pub fn isolate(&mut self, node: usize, n: usize) {
        for other in (0..n).filter(|o| *o != node) {
            self.cut.insert((node, other));
            self.cut.insert((other, node));
        }
    }

    /// Restores every link of `node`, both ways (links to nodes that are isolated on their
    /// own side stay cut only through their own entries).
    pub fn reconnect(&mut self, node: usize) {
        self.cut.retain(|(a, b)| *a != node && *b != node);
    }

    /// Splits nodes into `side` (true) and the rest; links across are cut both ways.
    pub fn partition(&mut self, side: &[bool]) {
        self.cut.clear();
        for a in 0..side.len() {
            for b in 0..side.len() {
                if side[a] != side[b] {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    pub fn any_cut(&self) -> bool {
        !self.cut.is_empty()
    }
}

/// The fate of one sent message: the delays of each copy to deliver (none when dropped).
pub fn fate(profile: &NetProfile, rng: &mut SimRng) -> impl Iterator<Item = Time> {
    let mut copies = [None, None];
    if !rng.chance(profile.drop) {
        copies[0] = Some(one_delay(profile, rng));
        if rng.chance(profile.duplicate) {
            copies[1] = Some(one_delay(profile, rng));
        }
    }
    copies.into_iter().flatten()
}

fn one_delay(profile: &NetProfile, rng: &mut SimRng) -> Time {
    if rng.chance(profile.long_delay_prob) {
        rng.between(profile.long_delay.0, profile.long_delay.1)
    } else {
        rng.between(profile.delay.0, profile.delay.1)
    }
}
