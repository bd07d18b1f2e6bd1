//! The alert book: what happens to an alert after the engine made its
//! record. A deterministic state machine beside the engine: records and
//! clearances (an awaited step happened, an item closed) in, operator
//! commands in, the clock in; alerts and [`Notification`]s out. The service
//! journals commands and ticks like events, so replaying the journal
//! rebuilds the same book, and a restart loses no acknowledgement.
//!
//! - **Lifecycle.** An alert opens from a record that carries a severity.
//!   It is `open`, then `acknowledged` by a person (which stops renotifying
//!   and escalating), `suppressed` (by a person until a time, or because
//!   the record was made in a maintenance window), and finally `resolved`:
//!   by the awaited step happening (late, or an alternative of it), by the
//!   item closing or being forgotten, by a person, or, for alerts about
//!   something that happened once (`late`, `early`, `out_of_order`,
//!   `duplicate`, `unexpected`), `retain` after it opened.
//! - **Deduplication** by (workflow, step, kind, key): a second record for an
//!   active alert counts as a repeat of it. A `missing` alert supersedes the
//!   `at_risk` alert of the same step, and a `late` step that resolves a
//!   `missing` alert is told in that alert's resolution, not as a new alert.
//! - **Grouping** (Alertmanager's model): notifications go per (channel,
//!   workflow, step, kind, group-by values). A group's first message waits
//!   `group_wait` to gather its alerts; after that, changes are sent at most
//!   every `group_interval`; with `renotify D`, a group with open,
//!   unacknowledged alerts is sent again every `D`. When every active alert
//!   of a group is acknowledged it says so once, and when none is active
//!   it sends `resolved`.
//! - **Routing and escalation:** a step's `notify CHANNEL [when severity >=
//!   LEVEL]` picks the channels; `escalate after D to CHANNEL` adds one when
//!   the alert is still open and unacknowledged `D` after it opened.
//! - **Maintenance:** alerts made in a window stay suppressed (LANGUAGE.md
//!   §3.8: recorded, not sent); a group whose message falls due inside a
//!   window of its workflow holds it and looks again every minute.
//!
//! Like the engine, nothing here does I/O or reads a clock.

mod book;
mod command;
mod group;
pub mod notification;

pub use book::{Alert, AlertBook, AlertEntry, BookConfig, BookState};

use crate::engine::Engine;
use crate::record::Record;

/// What every driver does after an engine call: hand its records and
/// clearances to the book, if alerting is on; without a book, drop the
/// clearances, which the engine always collects, so they cannot pile up.
pub fn follow(
    book: Option<&mut AlertBook>,
    records: &[Record],
    engine: &mut Engine,
    now: i64,
    out: &mut Vec<Notification>,
) {
    match book {
        Some(book) => book.observe(records, engine, now, out),
        None => engine.clearances.clear(),
    }
}
pub use command::{Action, Command, CommandError};
pub use group::key_text;
pub use notification::{AlertBrief, AlertState, Notification, NotificationEvent, FIRST_ALERTS};
