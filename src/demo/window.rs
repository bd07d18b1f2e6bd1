//! Which part of time the generator shows: the backlog before the demo's
//! start, and which occurrences of the scheduled feeds the engine watches.

use super::scenarios::file_receipt::{POSITIONS, PRICES};
use super::{HISTORY_MS, SECOND};

/// Which part of time the generator shows.
#[derive(Clone, Copy)]
pub(super) struct Window {
    /// The backlog begins here.
    pub(super) history_start: i64,
    /// The demo's start: the engine watches the feed occurrences whose deadline is at or after it.
    pub(super) start: i64,
}

impl Window {
    /// The backlog is the [`HISTORY_MS`] before the start, unless a feed's
    /// deadline falls in it: then it begins just after that deadline. An
    /// engine that starts monitoring at the start does not watch that
    /// occurrence (LANGUAGE.md §3.5: no alerts on history it never
    /// watched), so its file would be a stray; and one that starts at the
    /// first event must not watch it either, or it would miss a file it was
    /// never shown. Either way the two agree on which occurrences exist.
    pub(super) fn new(start: i64) -> Window {
        let mut history_start = start.saturating_sub(HISTORY_MS);
        for feed in [&POSITIONS, &PRICES] {
            for date in feed.date_of(history_start) - 1..=feed.date_of(start) + 1 {
                if let Some(deadline) = feed.deadline(date).filter(|d| (history_start..start).contains(d)) {
                    history_start = deadline + SECOND;
                }
            }
        }
        Window { history_start, start }
    }

    /// Whether the engine watches the occurrence with this deadline.
    pub(super) fn watches(&self, deadline: i64) -> bool {
        deadline >= self.start
    }
}
