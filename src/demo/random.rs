//! Random numbers for the generator: splitmix64, small and deterministic on
//! every platform, with the draws the scenarios make (a chance, a range, a
//! Poisson gap, a weighted pick, a fate among troubles).

/// No two flow starts closer than this (a real feed has some spacing).
const MIN_GAP_MS: f64 = 50.0;

/// The splitmix64 finaliser: a good 64-bit mix of its input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent seed for one purpose (a stream, a date) of a seed.
pub(super) fn derive(seed: u64, salt: u64) -> u64 {
    mix(seed ^ mix(salt.wrapping_add(0x9E37_79B9_7F4A_7C15)))
}

pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [lo, hi) (`lo` when the range is empty).
    pub(super) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }

    /// An exponential gap with this mean: the time between arrivals of a
    /// Poisson stream, which is how independent traders' trades arrive.
    pub(super) fn gap(&mut self, mean_ms: f64) -> i64 {
        (-(1.0 - self.unit()).ln() * mean_ms).max(MIN_GAP_MS).round() as i64
    }

    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.between(0, items.len() as i64) as usize]
    }

    pub(super) fn weighted<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
        let total: i64 = items.iter().map(|i| i64::from(weight(i))).sum();
        let mut ticket = self.between(0, total);
        for item in items {
            ticket -= i64::from(weight(item));
            if ticket < 0 {
                return item;
            }
        }
        &items[items.len() - 1]
    }

    /// One of the troubles by its probability, or `otherwise`.
    pub(super) fn fate<T: Copy>(&mut self, troubles: &[(T, f64)], otherwise: T) -> T {
        let mut ticket = self.unit();
        for &(fate, p) in troubles {
            if ticket < p {
                return fate;
            }
            ticket -= p;
        }
        otherwise
    }
}
