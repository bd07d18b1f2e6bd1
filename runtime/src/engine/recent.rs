//! Entries per second over the last minute: the entry rate of a stage.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Entries counted per second of event time over the last minute.
///
/// Why not every entry instant (as until issue 13): a busy stage holds
/// one per entry, 3 million at 50,000 entries a second, in memory and in
/// every snapshot; here at most 60 counts. The rate it gives counts the
/// entries of the current second and the 59 before it. A snapshot from
/// before (field `recent_entries`) restores with an empty minute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentEntries(VecDeque<(i64, u32)>);

const WINDOW_SECONDS: i64 = 60;

/// Serializes the field that older snapshots carried, empty (see
/// `Counters::legacy_recent_entries`).
pub(super) fn empty_list<S: serde::Serializer>(_: &(), serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(std::iter::empty::<i64>())
}

impl RecentEntries {
    /// Counts an entry at `at` (ms) and forgets seconds that left the
    /// minute before it.
    pub fn add(&mut self, at: i64) {
        let second = at.div_euclid(1000);
        match self.0.back_mut() {
            Some((last, count)) if *last == second => *count = count.saturating_add(1),
            // An entry earlier than the newest second (event time is not
            // ordered across items): counted in its own second, in order.
            Some((last, _)) if *last > second => self.count_in(second, 1),
            _ => self.0.push_back((second, 1)),
        }
        self.forget_old();
    }

    /// Adds `count` to `second`'s count, keeping the seconds in order.
    fn count_in(&mut self, second: i64, count: u32) {
        match self.0.binary_search_by_key(&second, |&(s, _)| s) {
            Ok(i) => self.0[i].1 = self.0[i].1.saturating_add(count),
            Err(i) => self.0.insert(i, (second, count)),
        }
    }

    /// Drops the seconds that left the minute before the newest one.
    fn forget_old(&mut self) {
        let Some(&(newest, _)) = self.0.back() else { return };
        while self.0.front().is_some_and(|&(s, _)| s <= newest - WINDOW_SECONDS) {
            self.0.pop_front();
        }
    }

    /// Entries in the minute that ends with the second of `now`.
    pub fn last_minute(&self, now: i64) -> u64 {
        let second = now.div_euclid(1000);
        self.0.iter().filter(|&&(s, _)| s > second - WINDOW_SECONDS && s <= second).map(|&(_, n)| u64::from(n)).sum()
    }

    /// Adds another stage's or group's entries (see `Counters::absorb`).
    pub fn absorb(&mut self, other: RecentEntries) {
        for (second, count) in other.0 {
            self.count_in(second, count);
        }
        self.forget_old();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_772_438_400_000; // a whole second

    #[test]
    fn counts_the_current_second_and_the_59_before() {
        let mut recent = RecentEntries::default();
        recent.add(T0);
        recent.add(T0 + 999);
        recent.add(T0 + 30_500);
        assert_eq!(recent.last_minute(T0 + 30_999), 3);
        // At T0 + 59.999 s, T0's second is the oldest of the 60.
        assert_eq!(recent.last_minute(T0 + 59_999), 3);
        assert_eq!(recent.last_minute(T0 + 60_000), 1);
        assert_eq!(recent.last_minute(T0 + 89_999), 1);
        assert_eq!(recent.last_minute(T0 + 90_000), 0);
        // Entries after `now` are not counted.
        assert_eq!(recent.last_minute(T0 - 1), 0);
    }

    #[test]
    fn keeps_at_most_a_minute_of_seconds() {
        let mut recent = RecentEntries::default();
        for n in 0..10_000 {
            recent.add(T0 + n * 100);
        }
        assert_eq!(recent.0.len(), 60);
        assert_eq!(recent.last_minute(T0 + 999_999), 600);
    }

    #[test]
    fn an_earlier_entry_goes_to_its_own_second() {
        let mut recent = RecentEntries::default();
        recent.add(T0 + 5_000);
        recent.add(T0 + 2_000);
        recent.add(T0 + 2_500);
        recent.add(T0 + 4_000);
        assert_eq!(recent.0, VecDeque::from([(T0 / 1000 + 2, 2), (T0 / 1000 + 4, 1), (T0 / 1000 + 5, 1)]));
        // Older than the minute before the newest: gone at once.
        recent.add(T0 - 60_000);
        assert_eq!(recent.last_minute(T0 + 5_000), 4);
    }

    #[test]
    fn absorbing_merges_seconds_in_order() {
        let (mut a, mut b) = (RecentEntries::default(), RecentEntries::default());
        a.add(T0);
        a.add(T0 + 2_000);
        b.add(T0 + 1_000);
        b.add(T0 + 2_000);
        a.absorb(b);
        let second = T0 / 1000;
        assert_eq!(a.0, VecDeque::from([(second, 1), (second + 1, 1), (second + 2, 2)]));
        // A minute later in the other one: the older seconds are dropped.
        let mut later = RecentEntries::default();
        later.add(T0 + 61_000);
        a.absorb(later);
        assert_eq!(a.0, VecDeque::from([(second + 2, 2), (second + 61, 1)]));
    }

    #[test]
    fn a_snapshot_from_before_restores_with_an_empty_minute() {
        let old = r#"{"entered":3,"completed":0,"failed":0,"late":0,"duplicate":0,"out_of_order":0,"unexpected":0,"stay_ms":[],"recent_entries":[1,2,3]}"#;
        let counters: super::super::Counters = serde_json::from_str(old).unwrap();
        assert_eq!(counters.entered, 3);
        assert_eq!(counters.recent, RecentEntries::default());
    }

    /// A mon from before requires `recent_entries`: a rolling upgrade of
    /// a fail-over group may have it restore this one's snapshot.
    #[test]
    fn a_snapshot_still_carries_the_old_field_empty() {
        let mut counters = super::super::Counters::default();
        counters.recent.add(T0);
        let json: serde_json::Value = serde_json::to_value(&counters).unwrap();
        assert_eq!(json["recent_entries"], serde_json::json!([]));
        let back: super::super::Counters = serde_json::from_value(json).unwrap();
        assert_eq!(back, counters);
    }
}
