//! Slack's incoming webhooks (api.slack.com/messaging/webhooks): a Block
//! Kit message — a header, the group's facts as fields, the first keys,
//! the time, and the runbook — with `text` as the fallback that
//! notifications and old clients show.
//!
//! Slack's limits are kept: a header's text is at most 150 characters, a
//! section's 3000. Text from events (keys, group values) is escaped as
//! Slack's mrkdwn asks (`&`, `<`, `>`), so a key cannot make a link or a
//! mention. Slack has no idempotency key; a repeat shows twice.

use mon_runtime::alerts::{Notification, NotificationEvent};
use serde_json::{json, Value};

use super::{key_fields, rfc3339, truncate};

/// The first keys listed (of the notification's first alerts).
const KEYS_SHOWN: usize = 10;

/// The body of the POST.
pub fn payload(n: &Notification, public_url: Option<&str>) -> Value {
    let field = |label: &str, value: String| json!({"type": "mrkdwn", "text": format!("*{label}*\n{value}")});
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&title(n), 150)}}),
        json!({"type": "section", "fields": [
            field("Workflow", escape(&n.workflow)),
            field("Step", escape(&n.step)),
            field("Kind", n.kind.name().to_string()),
            field("Severity", n.severity.name().to_string()),
            field("Active", n.active.to_string()),
            field("New", n.new.to_string()),
            field("Resolved", n.resolved.to_string()),
        ]}),
    ];
    if !n.alerts.is_empty() {
        let lines: Vec<String> = n
            .alerts
            .iter()
            .take(KEYS_SHOWN)
            .map(|a| match a.deadline {
                Some(deadline) => format!("• `{}` (deadline {})", escape(&key_fields(&a.key)), rfc3339(deadline)),
                None => format!("• `{}`", escape(&key_fields(&a.key))),
            })
            .collect();
        let heading = if n.event == NotificationEvent::Resolved { "Last keys" } else { "First keys" };
        blocks.push(json!({"type": "section", "text": {
            "type": "mrkdwn", "text": truncate(&format!("*{heading}*\n{}", lines.join("\n")), 3000)
        }}));
    }
    let mut context = vec![json!({"type": "mrkdwn", "text": format!("{} · notification {}", rfc3339(n.at), n.id)})];
    if let Some(by) = &n.acknowledged_by {
        context.push(json!({"type": "mrkdwn", "text": format!("acknowledged by {}", escape(by))}));
    }
    if let Some(url) = public_url {
        context.push(json!({"type": "mrkdwn", "text": format!("<{url}|mon>")}));
    }
    blocks.push(json!({"type": "context", "elements": context}));
    if let Some(runbook) = &n.runbook {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("<{runbook}|Runbook>")}}));
    }
    json!({"text": n.summary, "blocks": blocks})
}

/// Text as Slack's mrkdwn shows it literally.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `FIRING · high · trade_lifecycle.sys3_ack missing`.
fn title(n: &Notification) -> String {
    let escalated = if n.escalated { " (escalated)" } else { "" };
    format!(
        "{}{escalated} · {} · {}.{} {}",
        n.event.name().to_uppercase(),
        n.severity.name(),
        n.workflow,
        n.step,
        n.kind.name()
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{resolved, sample};
    use super::*;

    #[test]
    fn a_block_kit_message_with_the_summary_as_fallback() {
        insta::assert_snapshot!(
            serde_json::to_string_pretty(&payload(&sample(), Some("https://mon.example.com"))).unwrap()
        );
    }

    #[test]
    fn resolved_without_runbook_or_link() {
        let body = payload(&resolved(), None);
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(body["text"], resolved().summary);
        assert!(blocks[0]["text"]["text"].as_str().unwrap().starts_with("RESOLVED"));
        assert!(!body.to_string().contains("Runbook"));
        assert!(!body.to_string().contains("|mon>"));
    }

    #[test]
    fn keys_cannot_make_links_or_mentions() {
        let mut n = sample();
        n.alerts[0].key.insert("trade_id".into(), "<!channel> & <http://x|y>".into());
        let text = payload(&n, None)["blocks"][2]["text"]["text"].as_str().unwrap().to_string();
        assert!(text.contains("&lt;!channel&gt; &amp; &lt;http://x|y&gt;"), "{text}");
    }
}
