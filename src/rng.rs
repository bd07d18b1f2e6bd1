//! SplitMix64, the one random number generator of the binary and its tests:
//! small, fast, and the same numbers on every platform, so a seed names a
//! stream. `mon demo`'s generator, `mon bench`'s synthetic stream and the
//! service recovery test's kill points all come from it, and each is a
//! deterministic function of its seed; changing a line here changes them
//! all. It is not for secrets.
//!
//! This file must stand alone (no `use crate::...`): integration tests are
//! crates of their own and cannot import the binary's modules, so
//! `tests/support/rng.rs` compiles this same file by path instead of
//! keeping a copy.

/// The SplitMix64 increment: 2^64 divided by the golden ratio, odd.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser: a good 64-bit mix of its input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent seed for one purpose (a stream, a date) of a seed.
pub fn derive(seed: u64, salt: u64) -> u64 {
    mix(seed ^ mix(salt.wrapping_add(GOLDEN_GAMMA)))
}

/// A SplitMix64 stream: the same seed gives the same numbers.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
