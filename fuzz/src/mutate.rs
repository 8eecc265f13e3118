//! Random inputs and mutations of valid ones, from a seed.

use skiff_core::rng::SplitMix64;

/// The cases' random source: skiff's splitmix64.
#[derive(Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Numbers decoders treat specially: lengths and counts at their edges.
const INTERESTING: [u64; 10] = [0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, u64::MAX];

/// Bytes of random length below `max`.
pub fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let len = rng.below(max as u64) as usize;
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// `input` changed by one to four mutations: bit flips, random or interesting bytes and
/// words, insertions, deletions, duplicated ranges, truncation.
pub fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = if v.is_empty() { 0 } else { rng.below(v.len() as u64) as usize };
        match rng.below(8) {
            0 if !v.is_empty() => v[at] ^= 1 << rng.below(8),
            1 if !v.is_empty() => v[at] = rng.next_u64() as u8,
            2 => v.insert(at, rng.next_u64() as u8),
            3 if !v.is_empty() => {
                v.remove(at);
            }
            4 => {
                let end = (at + 1 + rng.below(16) as usize).min(v.len());
                let copy = v[at.min(end)..end].to_vec();
                let to = rng.below(v.len() as u64 + 1) as usize;
                v.splice(to..to, copy);
            }
            5 => v.truncate(at),
            _ => {
                let value = INTERESTING[rng.below(INTERESTING.len() as u64) as usize];
                let width = [1, 2, 4, 8][rng.below(4) as usize];
                for (k, b) in value.to_le_bytes()[..width].iter().enumerate() {
                    if let Some(slot) = v.get_mut(at + k) {
                        *slot = *b;
                    }
                }
            }
        }
    }
    v
}

/// Half the time a mutation of one of `valid`, else random bytes below `max`.
pub fn input(rng: &mut Rng, valid: &[Vec<u8>], max: usize) -> Vec<u8> {
    if valid.is_empty() || rng.below(2) == 0 {
        random_bytes(rng, max)
    } else {
        let pick = &valid[rng.below(valid.len() as u64) as usize];
        mutate(rng, pick)
    }
}
