//! PagerDuty's Events API v2 (developer.pagerduty.com, "Send an Alert
//! Event"): one event per routing key, with the group key as `dedup_key`,
//! so that PagerDuty keeps one incident per alert group and a repeat is
//! merged into it.
//!
//! `firing`, `update` and `renotify` trigger (PagerDuty updates the open
//! incident of the same `dedup_key`); `acknowledged` acknowledges and
//! `resolved` resolves, with nothing but the routing key, the action and
//! the `dedup_key`, as the API asks. mon's five severities map onto
//! PagerDuty's four: critical → critical, high → error, medium → warning,
//! low and info → info.

use mon_compiler::ir::Severity;
use mon_runtime::alerts::{Notification, NotificationEvent};
use serde_json::{json, Value};

use super::{key_fields, rfc3339, truncate};

/// PagerDuty refuses a longer `payload.summary`.
const SUMMARY_MAX: usize = 1024;

/// PagerDuty's word for a mon severity.
pub fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "info",
    }
}

/// The event for one routing key.
pub fn payload(n: &Notification, routing_key: &str) -> Value {
    let action = match n.event {
        NotificationEvent::Firing | NotificationEvent::Update | NotificationEvent::Renotify => "trigger",
        NotificationEvent::Acknowledged => "acknowledge",
        NotificationEvent::Resolved => "resolve",
    };
    if action != "trigger" {
        return json!({"routing_key": routing_key, "event_action": action, "dedup_key": n.group_key});
    }
    let first_keys: Vec<String> = n.alerts.iter().map(|a| key_fields(&a.key)).collect();
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": n.group_key,
        "payload": {
            "summary": truncate(&n.summary, SUMMARY_MAX),
            "source": "mon",
            "severity": severity(n.severity),
            "timestamp": rfc3339(n.at),
            "component": n.workflow,
            "group": n.step,
            "class": n.kind.name(),
            "custom_details": {
                "notification_id": n.id,
                "event": n.event.name(),
                "mon_severity": n.severity.name(),
                "active": n.active,
                "acknowledged": n.acknowledged,
                "new": n.new,
                "resolved": n.resolved,
                "escalated": n.escalated,
                "group": n.group,
                "first_keys": first_keys,
                "program_hash": n.program_hash,
            },
        },
        "client": "mon",
    });
    if let (Some(runbook), Value::Object(map)) = (&n.runbook, &mut body) {
        map.insert("links".into(), json!([{"href": runbook, "text": "Runbook"}]));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::super::tests::{resolved, sample};
    use super::*;

    #[test]
    fn a_trigger_with_the_group_key_as_dedup_key() {
        insta::assert_snapshot!(serde_json::to_string_pretty(&payload(&sample(), "ROUTING-KEY")).unwrap());
    }

    #[test]
    fn resolve_and_acknowledge_carry_only_the_key_and_the_action() {
        let body = payload(&resolved(), "K");
        assert_eq!(body, json!({"routing_key": "K", "event_action": "resolve", "dedup_key": resolved().group_key}));
        let mut acknowledged = sample();
        acknowledged.event = NotificationEvent::Acknowledged;
        assert_eq!(payload(&acknowledged, "K")["event_action"], "acknowledge");
        assert_eq!(payload(&acknowledged, "K").as_object().unwrap().len(), 3);
    }

    #[test]
    fn a_long_summary_is_cut_to_pagerdutys_limit() {
        let mut n = sample();
        n.summary = "é".repeat(2000);
        let summary = payload(&n, "K")["payload"]["summary"].as_str().unwrap().to_string();
        assert_eq!(summary.chars().count(), SUMMARY_MAX);
    }

    #[test]
    fn every_severity_has_a_pagerduty_word() {
        let words: Vec<&str> = Severity::ALL.iter().map(|(_, s)| severity(*s)).collect();
        assert_eq!(words, ["info", "info", "warning", "error", "critical"]);
    }
}
