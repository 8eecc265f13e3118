//! The simulator's random source: the core's splitmix64 ([`skiff_core::rng::SplitMix64`]),
//! so one `u64` seed reproduces a whole run.

use skiff_core::rng::SplitMix64;

/// A deterministic random source for the simulator and its fault profiles.
#[derive(Clone, Debug)]
pub struct SimRng {
    inner: SplitMix64,
}

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng { inner: SplitMix64::new(seed ^ 0x5EED_5EED_5EED_5EED) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in `[lo, hi]` (inclusive); `lo` when `hi <= lo`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in `[0, n)`; requires `n > 0`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A fresh independent seed.
    pub fn fork(&mut self) -> u64 {
        self.next_u64()
    }
}
