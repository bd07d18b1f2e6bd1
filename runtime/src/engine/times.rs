//! When each step of an instance happened, in 40 bytes instead of 56: a
//! base time and one 32-bit offset in milliseconds per step, inline for up
//! to six steps. A million in-flight items are a million of these.
//!
//! The offsets reach about 24.8 days either side of the base (the first
//! time set). An instance whose steps lie further apart switches to wide
//! times (each one whole, in two halves, on the heap): rare, and exact.
//!
//! What it must not do: change a time. Every time that goes in comes out
//! unchanged, and a snapshot holds the times as whole numbers, as before
//! (a sequence of `i64`, [`NOT_TAKEN`] for a step not taken).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

use super::state::NOT_TAKEN;

/// An offset for a step not taken.
const NOT: i32 = i32::MIN;

/// `base` when the times are wide.
const WIDE: i64 = i64::MIN;

#[derive(Clone, Debug, PartialEq)]
pub struct Times {
    /// The time the offsets count from, or [`WIDE`].
    base: i64,
    /// Narrow: one offset per step, or [`NOT`]. Wide: two halves per step
    /// (high, then low) of the whole time.
    offsets: SmallVec<[i32; 6]>,
}

impl Times {
    /// `steps` steps, none taken.
    pub fn new(steps: usize) -> Times {
        Times { base: 0, offsets: SmallVec::from_elem(NOT, steps) }
    }

    fn wide(&self) -> bool {
        self.base == WIDE
    }

    pub fn len(&self) -> usize {
        if self.wide() {
            self.offsets.len() / 2
        } else {
            self.offsets.len()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The time of `step` ([`NOT_TAKEN`] if not taken), `None` beyond the
    /// last step.
    pub fn get(&self, step: usize) -> Option<i64> {
        if self.wide() {
            let high = *self.offsets.get(2 * step)?;
            let low = self.offsets[2 * step + 1];
            return Some((i64::from(high) << 32) | i64::from(low as u32));
        }
        let offset = *self.offsets.get(step)?;
        Some(if offset == NOT { NOT_TAKEN } else { self.base + i64::from(offset) })
    }

    /// Sets the time of `step` (which must exist); [`NOT_TAKEN`] unsets it.
    pub fn set(&mut self, step: usize, time: i64) {
        assert!(step < self.len(), "step {step} of {}", self.len());
        if !self.wide() {
            if time == NOT_TAKEN {
                self.offsets[step] = NOT;
                return;
            }
            if self.offsets.iter().all(|o| *o == NOT) {
                self.base = time;
            }
            if let Some(offset) = time.checked_sub(self.base).and_then(|o| i32::try_from(o).ok()).filter(|o| *o != NOT)
            {
                self.offsets[step] = offset;
                return;
            }
            self.widen();
        }
        self.offsets[2 * step] = (time >> 32) as i32;
        self.offsets[2 * step + 1] = time as u32 as i32;
    }

    fn widen(&mut self) {
        let whole: Vec<i64> = (0..self.len()).map(|step| self.get(step).unwrap_or(NOT_TAKEN)).collect();
        self.base = WIDE;
        self.offsets = SmallVec::from_elem(0, 2 * whole.len());
        for (step, time) in whole.into_iter().enumerate() {
            self.set(step, time);
        }
    }

    /// Every step's time, [`NOT_TAKEN`] for those not taken.
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|step| self.get(step).unwrap_or(NOT_TAKEN))
    }
}

impl FromIterator<i64> for Times {
    fn from_iter<I: IntoIterator<Item = i64>>(times: I) -> Times {
        let times: SmallVec<[i64; 6]> = times.into_iter().collect();
        let mut out = Times::new(times.len());
        for (step, time) in times.into_iter().enumerate() {
            out.set(step, time);
        }
        out
    }
}

impl Serialize for Times {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Times {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Times, D::Error> {
        let times = SmallVec::<[i64; 6]>::deserialize(deserializer)?;
        Ok(times.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forty_bytes() {
        assert_eq!(std::mem::size_of::<Times>(), 40);
    }

    #[test]
    fn steps_far_apart_widen_and_keep_every_time() {
        let mut times = Times::new(3);
        times.set(1, 1_000);
        times.set(0, 1_000 - 5);
        assert!(!times.wide());
        let day = 86_400_000;
        times.set(2, 1_000 + 30 * day);
        assert!(times.wide());
        assert_eq!(times.iter().collect::<Vec<_>>(), vec![995, 1_000, 1_000 + 30 * day]);
        times.set(0, NOT_TAKEN);
        assert_eq!(times.get(0), Some(NOT_TAKEN));
        assert_eq!(times.get(3), None);
    }

    proptest! {
        /// Whatever goes in, in whatever order, comes out, and through a
        /// snapshot as the plain list of times it was before.
        #[test]
        fn every_time_set_comes_back(
            sets in proptest::collection::vec(
                (0usize..8, prop_oneof![
                    Just(NOT_TAKEN),
                    Just(i64::MAX),
                    Just(NOT_TAKEN + 1),
                    1_700_000_000_000i64..1_700_000_000_000 + 100 * 86_400_000,
                    any::<i64>(),
                ]),
                0..24,
            ),
        ) {
            let mut times = Times::new(8);
            let mut plain = [NOT_TAKEN; 8];
            for (step, time) in sets {
                times.set(step, time);
                plain[step] = time;
                prop_assert_eq!(times.iter().collect::<Vec<_>>(), plain.to_vec());
            }
            let json = serde_json::to_string(&times).unwrap();
            prop_assert_eq!(&json, &serde_json::to_string(&plain.to_vec()).unwrap());
            let back: Times = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.iter().collect::<Vec<_>>(), plain.to_vec());
        }
    }
}
