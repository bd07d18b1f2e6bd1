//! When each step of an instance happened and which event took it, in 64
//! bytes instead of 88: a base time, then per step a 32-bit offset in
//! milliseconds and the 32-bit fingerprint of the event's id, inline for
//! up to six steps. A million in-flight items are a million of these.
//!
//! The offsets reach about 24.8 days either side of the base (the first
//! time set). An instance whose steps lie further apart switches to wide
//! times (each one whole, in two halves): rare, and exact.
//!
//! What it must not do: change a time or an id. Every one that goes in
//! comes out unchanged, and a snapshot holds them as before: the times as
//! a list of whole numbers ([`NOT_TAKEN`] for a step not taken) and the
//! ids as a list of fingerprints (0: none).

use smallvec::SmallVec;

use super::state::NOT_TAKEN;

/// An offset for a step not taken.
const NOT: u32 = i32::MIN as u32;

/// `base` when the times are wide.
const WIDE: i64 = i64::MIN;

/// `base` before the first time is set.
const UNSET: i64 = i64::MIN + 1;

#[derive(Clone, Debug)]
pub struct Steps {
    /// The time the offsets count from (the first one set), [`UNSET`]
    /// before that, or [`WIDE`].
    base: i64,
    /// Narrow: per step, the offset (an `i32`, or [`NOT`]) and the id.
    /// Wide: per step, the whole time's high and low halves, and the id.
    words: SmallVec<[u32; 12]>,
}

/// Equal when every step's time and id are: the layout (narrow or wide,
/// the base) depends on the order the times came in.
impl PartialEq for Steps {
    fn eq(&self, other: &Steps) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Steps {
    /// `steps` steps, none taken.
    pub fn new(steps: usize) -> Steps {
        let words = (0..2 * steps).map(|word| if word % 2 == 0 { NOT } else { 0 }).collect();
        Steps { base: UNSET, words }
    }

    fn wide(&self) -> bool {
        self.base == WIDE
    }

    fn stride(&self) -> usize {
        if self.wide() {
            3
        } else {
            2
        }
    }

    pub fn len(&self) -> usize {
        self.words.len() / self.stride()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The time of `step` ([`NOT_TAKEN`] if not taken), `None` beyond the
    /// last step.
    pub fn time(&self, step: usize) -> Option<i64> {
        if self.wide() {
            let at = 3 * step;
            let high = *self.words.get(at)?;
            return Some((i64::from(high as i32) << 32) | i64::from(self.words[at + 1]));
        }
        let offset = *self.words.get(2 * step)?;
        Some(if offset == NOT { NOT_TAKEN } else { self.base + i64::from(offset as i32) })
    }

    /// The fingerprint of the event that took `step` (0: none), `None`
    /// beyond the last step.
    pub fn id(&self, step: usize) -> Option<u32> {
        let stride = self.stride();
        self.words.get(stride * step + stride - 1).copied()
    }

    /// Sets the time and id of `step` (which must exist); [`NOT_TAKEN`]
    /// unsets the time.
    pub fn set(&mut self, step: usize, time: i64, id: u32) {
        // Indexing below panics as well; this says why, in tests.
        debug_assert!(step < self.len(), "step {step} of {}", self.len());
        if !self.wide() {
            self.words[2 * step + 1] = id;
            if time == NOT_TAKEN {
                self.words[2 * step] = NOT;
                return;
            }
            // A first time equal to `UNSET` itself cannot be the base (it
            // goes wide below).
            if self.base == UNSET && time != UNSET {
                self.base = time;
            }
            let offset =
                (self.base != UNSET).then(|| time.checked_sub(self.base).and_then(|o| i32::try_from(o).ok())).flatten();
            if let Some(offset) = offset.map(|o| o as u32).filter(|o| *o != NOT) {
                self.words[2 * step] = offset;
                return;
            }
            self.widen();
        }
        let at = 3 * step;
        self.words[at] = (time >> 32) as u32;
        self.words[at + 1] = time as u32;
        self.words[at + 2] = id;
    }

    fn widen(&mut self) {
        let whole: Vec<(i64, u32)> = self.iter().collect();
        self.base = WIDE;
        self.words = SmallVec::from_elem(0, 3 * whole.len());
        for (step, (time, id)) in whole.into_iter().enumerate() {
            self.set(step, time, id);
        }
    }

    /// Every step's time ([`NOT_TAKEN`] for those not taken) and id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        (0..self.len()).map(|step| (self.time(step).unwrap_or(NOT_TAKEN), self.id(step).unwrap_or(0)))
    }

    /// From a snapshot's two lists: the times decide the step count, as
    /// they did before the two were packed; a missing id is 0 (none).
    pub fn from_parts(times: &[i64], ids: &[u32]) -> Steps {
        let mut steps = Steps::new(times.len());
        for (step, time) in times.iter().enumerate() {
            steps.set(step, *time, ids.get(step).copied().unwrap_or(0));
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sixty_four_bytes() {
        assert_eq!(std::mem::size_of::<Steps>(), 64);
    }

    #[test]
    fn steps_far_apart_widen_and_keep_every_time_and_id() {
        let mut steps = Steps::new(3);
        steps.set(1, 1_000, 7);
        steps.set(0, 1_000 - 5, 8);
        assert!(!steps.wide());
        let day = 86_400_000;
        steps.set(2, 1_000 + 30 * day, 9);
        assert!(steps.wide());
        assert_eq!(steps.iter().collect::<Vec<_>>(), vec![(995, 8), (1_000, 7), (1_000 + 30 * day, 9)]);
        steps.set(0, NOT_TAKEN, 0);
        assert_eq!((steps.time(0), steps.id(0)), (Some(NOT_TAKEN), Some(0)));
        assert_eq!((steps.time(3), steps.id(3)), (None, None));
        let short_ids = Steps::from_parts(&[1, 2], &[3]);
        assert_eq!(short_ids.iter().collect::<Vec<_>>(), vec![(1, 3), (2, 0)], "the times decide the step count");
    }

    proptest! {
        /// Whatever goes in, in whatever order, comes out.
        #[test]
        fn every_time_and_id_set_comes_back(
            sets in proptest::collection::vec(
                (0usize..8, prop_oneof![
                    Just(NOT_TAKEN),
                    Just(i64::MAX),
                    Just(NOT_TAKEN + 1),
                    1_700_000_000_000i64..1_700_000_000_000 + 100 * 86_400_000,
                    any::<i64>(),
                ], any::<u32>()),
                0..24,
            ),
        ) {
            let mut steps = Steps::new(8);
            let mut plain = [(NOT_TAKEN, 0u32); 8];
            for (step, time, id) in sets {
                steps.set(step, time, id);
                plain[step] = (time, id);
                prop_assert_eq!(steps.iter().collect::<Vec<_>>(), plain.to_vec());
            }
            let (times, ids): (Vec<i64>, Vec<u32>) = plain.iter().copied().unzip();
            let back = Steps::from_parts(&times, &ids);
            prop_assert_eq!(back.iter().collect::<Vec<_>>(), plain.to_vec());
            prop_assert_eq!(&back, &steps, "equal whatever the order they came in");
        }
    }
}
