//! The generic webhook: the notification itself as JSON, with its times as
//! RFC 3339 (UTC) and a `version` for the receiver to check, sent with an
//! `Idempotency-Key` header holding the notification's id so that a
//! receiver can drop a repeat (IETF draft "The Idempotency-Key HTTP Header
//! Field").

use mon_runtime::alerts::Notification;
use serde_json::{json, Value};

use super::rfc3339;

/// The payload's shape; bumped when a field changes meaning or goes away
/// (a new field is not a new version).
pub const VERSION: u32 = 1;

/// The body of the POST.
pub fn payload(n: &Notification) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            let mut alert = json!({
                "id": a.id,
                "key": a.key,
                "state": a.state.name(),
                "opened_at": rfc3339(a.opened_at),
            });
            if let (Some(deadline), Value::Object(map)) = (a.deadline, &mut alert) {
                map.insert("deadline".into(), rfc3339(deadline).into());
            }
            alert
        })
        .collect();
    let mut body = json!({
        "version": VERSION,
        "id": n.id,
        "channel": n.channel,
        "at": rfc3339(n.at),
        "event": n.event.name(),
        "group_key": n.group_key,
        "workflow": n.workflow,
        "step": n.step,
        "kind": n.kind.name(),
        "severity": n.severity.name(),
        "group": n.group,
        "program_hash": n.program_hash,
        "active": n.active,
        "acknowledged": n.acknowledged,
        "new": n.new,
        "resolved": n.resolved,
        "escalated": n.escalated,
        "alerts": alerts,
        "summary": n.summary,
    });
    if let Value::Object(map) = &mut body {
        if let Some(runbook) = &n.runbook {
            map.insert("runbook".into(), runbook.clone().into());
        }
        if let Some(by) = &n.acknowledged_by {
            map.insert("acknowledged_by".into(), by.clone().into());
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::super::tests::{resolved, sample};
    use super::*;

    #[test]
    fn the_notification_with_times_in_rfc3339() {
        insta::assert_snapshot!(serde_json::to_string_pretty(&payload(&sample())).unwrap());
    }

    #[test]
    fn every_field_of_the_notification_is_there() {
        // A field added to `Notification` must be added here too.
        let n = resolved();
        let body = payload(&n);
        let original = serde_json::to_value(&n).unwrap();
        for field in original.as_object().unwrap().keys() {
            assert!(body.get(field).is_some(), "{field} is missing from the webhook payload");
        }
    }
}
