//! [`SplitMix64`]: the one tiny deterministic PRNG of the project. The core draws election
//! timeouts from it (never from an OS random source: the seed comes from `Config`), and the
//! simulator builds its seeded random source on it.

/// splitmix64: fast, 64-bit state, good enough to spread election timeouts and to drive a
/// simulation. The same seed always gives the same sequence.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`; requires `lo < hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        debug_assert!(lo < hi);
        let span = u64::from(hi - lo);
        lo + (self.next_u64() % span) as u32
    }
}
