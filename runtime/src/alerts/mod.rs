//! The alert book: what happens to an alert after the engine made its
//! record. Deduplication, grouping, acknowledgement, suppression,
//! maintenance, renotification and escalation, as a deterministic state
//! machine: records, clearances (an awaited step happened, an instance
//! closed), operator commands and ticks in; alerts and notifications out.

pub mod notification;

pub use notification::{AlertBrief, AlertState, Notification, NotificationEvent, FIRST_ALERTS};
