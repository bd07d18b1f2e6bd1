//! Prometheus Alertmanager's API v2 (`POST {base}/api/v2/alerts`, the
//! `postableAlerts` of its OpenAPI spec): the group becomes one alert,
//! which Alertmanager then routes, groups, silences and inhibits as it does
//! Prometheus's.
//!
//! An alert's identity in Alertmanager is its label set, so the labels are
//! what stays the same for a group: `alertname` (`mon_<kind>`), `workflow`,
//! `step`, `kind`, `severity` and each `group by` field as
//! `group_<field>`. Sending again with the same labels updates the alert
//! (so a repeat is harmless). A change of severity within a group changes
//! the label set: Alertmanager then holds two alerts until the old one's
//! `endsAt` passes.
//!
//! Alertmanager expects clients to re-send an alert while it is active, and
//! resolves it by itself at `endsAt`. mon sends only on a change or a
//! renotify, so an active alert's `endsAt` is the notification's time plus
//! [`HORIZON_MS`] (24 hours); a group that is active longer and gets no
//! notification in that time shows resolved in Alertmanager (use
//! `renotify` shorter than a day on such channels). `resolved` sets
//! `endsAt` to the notification's time, which resolves it at once.
//! Alertmanager has no acknowledgement: `acknowledged` is sent as an
//! update, with the `acknowledged_by` annotation.

use mon_runtime::alerts::{Notification, NotificationEvent};
use serde_json::{json, Map, Value};

use super::{key_fields, rfc3339};

/// How long an active alert stays active in Alertmanager without news.
pub const HORIZON_MS: i64 = 24 * 3600 * 1000;

/// The endpoint under an Alertmanager's base URL.
pub fn alerts_url(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// The body of the POST: an array of one alert.
pub fn payload(n: &Notification, public_url: Option<&str>) -> Value {
    let mut labels = Map::new();
    labels.insert("alertname".into(), format!("mon_{}", n.kind.name()).into());
    labels.insert("workflow".into(), n.workflow.clone().into());
    labels.insert("step".into(), n.step.clone().into());
    labels.insert("kind".into(), n.kind.name().into());
    labels.insert("severity".into(), n.severity.name().into());
    for (field, value) in &n.group {
        labels.insert(format!("group_{}", label_name(field)), value.clone().into());
    }
    let mut annotations = Map::new();
    annotations.insert("summary".into(), n.summary.clone().into());
    if let Some(runbook) = &n.runbook {
        annotations.insert("runbook_url".into(), runbook.clone().into());
    }
    annotations.insert("active".into(), n.active.to_string().into());
    annotations.insert("acknowledged".into(), n.acknowledged.to_string().into());
    let keys: Vec<String> = n.alerts.iter().map(|a| key_fields(&a.key)).collect();
    annotations.insert("first_keys".into(), keys.join("; ").into());
    if let Some(by) = &n.acknowledged_by {
        annotations.insert("acknowledged_by".into(), by.clone().into());
    }
    annotations.insert("notification_id".into(), n.id.clone().into());
    let starts = n.alerts.iter().map(|a| a.opened_at).min().unwrap_or(n.at).min(n.at);
    let ends = match n.event {
        NotificationEvent::Resolved => n.at,
        _ => n.at + HORIZON_MS,
    };
    let mut alert = json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
    });
    if let (Some(url), Value::Object(map)) = (public_url, &mut alert) {
        map.insert("generatorURL".into(), url.into());
    }
    json!([alert])
}

/// A label name Alertmanager accepts (`[a-zA-Z_][a-zA-Z0-9_]*`); mon's
/// field names already are, this keeps it so.
fn label_name(field: &str) -> String {
    field.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{resolved, sample};
    use super::*;

    #[test]
    fn one_alert_labelled_by_its_group() {
        insta::assert_snapshot!(
            serde_json::to_string_pretty(&payload(&sample(), Some("https://mon.example.com"))).unwrap()
        );
    }

    #[test]
    fn resolved_ends_at_the_notification_time_with_the_same_labels() {
        let (firing, resolved) = (payload(&sample(), None), payload(&resolved(), None));
        assert_eq!(firing[0]["labels"], resolved[0]["labels"]);
        assert_eq!(resolved[0]["endsAt"], rfc3339(super::super::tests::resolved().at));
        assert!(firing[0].get("generatorURL").is_none());
    }

    #[test]
    fn the_endpoint_under_the_base() {
        assert_eq!(alerts_url("http://am:9093/"), "http://am:9093/api/v2/alerts");
        assert_eq!(alerts_url("http://h/am"), "http://h/am/api/v2/alerts");
    }
}
