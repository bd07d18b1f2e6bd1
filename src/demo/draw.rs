//! The draws the scenarios make (a chance, a range, a Poisson gap, a pick,
//! a weighted pick, a fate among troubles), as an extension of the shared
//! SplitMix64 in `crate::rng`. They only read numbers from it, so the
//! generator, `mon bench` and the tests share one stream definition.

use crate::rng::SplitMix64;

/// No two flow starts closer than this (a real feed has some spacing).
const MIN_GAP_MS: f64 = 50.0;

pub(super) trait Draw {
    fn chance(&mut self, p: f64) -> bool;

    /// Uniform in [lo, hi) (`lo` when the range is empty).
    fn between(&mut self, lo: i64, hi: i64) -> i64;

    /// An exponential gap with this mean: the time between arrivals of a
    /// Poisson stream, which is how independent traders' trades arrive.
    fn gap(&mut self, mean_ms: f64) -> i64;

    fn pick<T: Copy>(&mut self, items: &[T]) -> T;

    fn weighted<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T;

    /// One of the troubles by its probability, or `otherwise`.
    fn fate<T: Copy>(&mut self, troubles: &[(T, f64)], otherwise: T) -> T;
}

impl Draw for SplitMix64 {
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }

    fn gap(&mut self, mean_ms: f64) -> i64 {
        (-(1.0 - self.unit()).ln() * mean_ms).max(MIN_GAP_MS).round() as i64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.between(0, items.len() as i64) as usize]
    }

    fn weighted<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
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

    fn fate<T: Copy>(&mut self, troubles: &[(T, f64)], otherwise: T) -> T {
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
