//! What the alert book asks the service to send: one [`Notification`] per
//! channel and alert group at one moment. Notifiers (in `mon-service`)
//! turn it into each receiver's documented payload; `mon simulate
//! --notifications` prints it as JSON. Everything here is plain data, built
//! deterministically from the journal, so a replay after a crash gives the
//! same notification ids and receivers can drop repeats by id.

use std::collections::BTreeMap;

use mon_compiler::ir::{RecordKind, Severity};
use serde::{Deserialize, Serialize};

mon_compiler::vocabulary! {
    /// Why a group is being notified now.
    pub enum NotificationEvent {
        /// The group's first message: alerts opened (after the group wait).
        Firing = "firing",
        /// Alerts were added to or resolved in a group already notified
        /// (after the group interval).
        Update = "update",
        /// Nothing changed, but alerts are still open and unacknowledged
        /// after `renotify`.
        Renotify = "renotify",
        /// Every active alert of the group is acknowledged.
        Acknowledged = "acknowledged",
        /// No alert of the group is active any more.
        Resolved = "resolved",
    }
}

mon_compiler::vocabulary! {
    /// The state of one alert, in the order of an alert's life.
    pub enum AlertState {
        Open = "open",
        Acknowledged = "acknowledged",
        Suppressed = "suppressed",
        Resolved = "resolved",
    }
}

/// One alert as a notification lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertBrief {
    pub id: String,
    /// Key field name to value.
    pub key: BTreeMap<String, String>,
    pub state: AlertState,
    /// When the record that opened it was made (ms since the epoch).
    pub opened_at: i64,
    /// The deadline that was missed or is at risk (ms), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
}

/// One message to one channel about one alert group.
///
/// A group is (channel, workflow, step, kind, group-by values): 10,000
/// stalled trades of one step in one book give one notification with the
/// count and the first keys, then updates (Alertmanager's model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Deterministic (the group and its message number): the same journal
    /// gives the same ids, and receivers can drop repeats.
    pub id: String,
    /// The channel's name, as declared in the rules.
    pub channel: String,
    /// When the book decided to send it (ms since the epoch).
    pub at: i64,
    pub event: NotificationEvent,
    /// Stable for the group: PagerDuty's `dedup_key`, Alertmanager's
    /// grouping, a mail thread.
    pub group_key: String,
    pub workflow: String,
    pub step: String,
    pub kind: RecordKind,
    /// The highest severity among the group's alerts.
    pub severity: Severity,
    /// The workflow's `group by` field name to value; empty without one.
    pub group: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    /// The hash of the rule version that made the alerts.
    pub program_hash: String,
    /// Alerts of the group that are open or acknowledged now.
    pub active: u32,
    /// Of those, acknowledged.
    pub acknowledged: u32,
    /// Opened since the group's previous notification.
    pub new: u32,
    /// Resolved since the group's previous notification.
    pub resolved: u32,
    /// Sent because an alert stayed unacknowledged past `escalate after`.
    pub escalated: bool,
    /// Who acknowledged, for [`NotificationEvent::Acknowledged`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// The first active alerts (at most [`FIRST_ALERTS`]), oldest first;
    /// for `resolved`, the last ones that were active.
    pub alerts: Vec<AlertBrief>,
    /// One line for a title or an SMS: what, where, how many, first keys.
    pub summary: String,
}

/// How many alerts a notification lists by key.
pub const FIRST_ALERTS: usize = 10;
