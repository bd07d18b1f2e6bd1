//! Notifications the payload tests share, and the tests of resolving
//! channels at start.

use std::collections::BTreeMap;

use mon_compiler::ir::{Channel, ChannelKind, ChannelTarget, Program, RecordKind, Severity};
use mon_runtime::alerts::{AlertBrief, AlertState, Notification, NotificationEvent};

use super::config::{NotifyConfig, Secret, Secrets, SmsConfig, SmtpConfig};
use super::Notifiers;
use crate::error::{Domain, Retry};

/// 2026-03-03T09:30:00Z.
pub const AT: i64 = 1_772_530_200_000;

fn key(trade: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("trade_id".to_string(), trade.to_string())])
}

/// A firing group of three missing ACKs in one book.
pub fn sample() -> Notification {
    Notification {
        id: "n-1:7".into(),
        channel: "trade_support".into(),
        at: AT,
        event: NotificationEvent::Firing,
        group_key: "g:trade_lifecycle/sys3_ack".into(),
        workflow: "trade_lifecycle".into(),
        step: "sys3_ack".into(),
        kind: RecordKind::Missing,
        severity: Severity::High,
        group: BTreeMap::from([("book".to_string(), "EQ-LDN".to_string())]),
        runbook: Some("https://wiki.example.com/runbooks/sys3".into()),
        program_hash: "ab12cd34".into(),
        active: 3,
        acknowledged: 0,
        new: 3,
        resolved: 0,
        escalated: false,
        acknowledged_by: None,
        alerts: ["T-1001", "T-1002", "T-1003"]
            .iter()
            .enumerate()
            .map(|(i, trade)| AlertBrief {
                id: format!("a-{i}"),
                key: key(trade),
                state: AlertState::Open,
                opened_at: AT - 60_000 + i as i64 * 1000,
                deadline: Some(AT - 120_000 + i as i64 * 1000),
            })
            .collect(),
        summary: "trade_lifecycle.sys3_ack missing: 3 trades in book EQ-LDN (T-1001, T-1002, T-1003)".into(),
    }
}

/// The same group, resolved ten minutes later.
pub fn resolved() -> Notification {
    let mut n = sample();
    n.id = "n-1:8".into();
    n.at = AT + 600_000;
    n.event = NotificationEvent::Resolved;
    n.active = 0;
    n.new = 0;
    n.resolved = 3;
    n.runbook = None;
    n.acknowledged_by = Some("ops@example.com".into());
    for alert in &mut n.alerts {
        alert.state = AlertState::Resolved;
        alert.deadline = None;
    }
    n.summary = "trade_lifecycle.sys3_ack missing: resolved (3 trades in book EQ-LDN)".into();
    n
}

pub fn program(channels: Vec<(&str, ChannelKind, Vec<ChannelTarget>)>) -> Program {
    Program {
        ir_version: mon_compiler::ir::IR_VERSION,
        events: Vec::new(),
        workflows: Vec::new(),
        channels: channels
            .into_iter()
            .enumerate()
            .map(|(id, (name, kind, targets))| Channel { id: id as u32, name: name.into(), kind, targets })
            .collect(),
        calendars: Vec::new(),
        maintenance: Vec::new(),
        candidates: Vec::new(),
    }
}

fn literal(text: &str) -> ChannelTarget {
    ChannelTarget::Literal(text.into())
}

fn secret(name: &str) -> ChannelTarget {
    ChannelTarget::Secret(name.into())
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn a_missing_secret_names_the_channel_and_the_secret() {
    let program = program(vec![("pager", ChannelKind::Pagerduty, vec![secret("PD_KEY")])]);
    let error = Notifiers::with_env(&NotifyConfig::default(), &Secrets::new(), &program, no_env).unwrap_err();
    assert_eq!((error.domain, error.retry), (Domain::Config, Retry::Never));
    let text = error.to_string();
    assert!(text.contains("channel pager") && text.contains("\"PD_KEY\""), "{text}");
}

#[test]
fn secrets_come_from_the_table_then_the_environment_and_are_never_shown() {
    let program = program(vec![
        ("pager", ChannelKind::Pagerduty, vec![secret("PD_KEY")]),
        ("chat", ChannelKind::Slack, vec![secret("SLACK_URL")]),
    ]);
    let secrets = Secrets::from([("PD_KEY".to_string(), Secret::new("pd-routing-value"))]);
    let env = |name: &str| (name == "SLACK_URL").then(|| "https://hooks.example.com/T0/B0/xyzzy".to_string());
    let notifiers = Notifiers::with_env(&NotifyConfig::default(), &secrets, &program, env).unwrap();
    assert_eq!(notifiers.channel_names().collect::<Vec<_>>(), ["chat", "pager"]);
    assert_eq!(notifiers.channel_kind("pager"), Some(ChannelKind::Pagerduty));
    assert_eq!(notifiers.channel_kind("nope"), None);
    let debug = format!("{notifiers:?}");
    assert!(!debug.contains("pd-routing-value") && !debug.contains("xyzzy"), "{debug}");
    assert!(debug.contains("secret(\\\"PD_KEY\\\")"), "{debug}");
}

#[test]
fn email_and_sms_need_their_sections_and_every_problem_is_reported() {
    let program = program(vec![
        ("mail", ChannelKind::Email, vec![literal("ops@example.com")]),
        ("text", ChannelKind::Sms, vec![literal("+441234567890")]),
        ("hook", ChannelKind::Webhook, vec![literal("not a url")]),
    ]);
    let text =
        Notifiers::with_env(&NotifyConfig::default(), &Secrets::new(), &program, no_env).unwrap_err().to_string();
    assert!(text.contains("channel mail: an email channel needs [notify.smtp]"), "{text}");
    assert!(text.contains("channel text: an sms channel needs [notify.sms]"), "{text}");
    assert!(text.contains("channel hook: \"not a url\" is not an http(s) URL"), "{text}");

    let config = NotifyConfig {
        smtp: Some(SmtpConfig { host: "127.0.0.1".into(), from: "mon@example.com".into(), ..Default::default() }),
        sms: Some(SmsConfig { url: "http://127.0.0.1:1/sms".into(), ..Default::default() }),
        ..Default::default()
    };
    let program = super::tests::program(vec![
        ("mail", ChannelKind::Email, vec![literal("ops@example.com"), literal("not an address")]),
        ("text", ChannelKind::Sms, vec![literal("+441234567890")]),
    ]);
    let text = Notifiers::with_env(&config, &Secrets::new(), &program, no_env).unwrap_err().to_string();
    assert!(text.contains("channel mail: \"not an address\" is not an email address"), "{text}");
    assert!(!text.contains("channel text"), "{text}");
}

#[test]
fn an_smtp_password_secret_must_resolve() {
    let config = NotifyConfig {
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            from: "mon@example.com".into(),
            username: Some("mon".into()),
            password_secret: Some("SMTP_PASSWORD".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let program = program(vec![("mail", ChannelKind::Email, vec![literal("ops@example.com")])]);
    let text = Notifiers::with_env(&config, &Secrets::new(), &program, no_env).unwrap_err().to_string();
    assert!(text.contains("channel mail") && text.contains("\"SMTP_PASSWORD\""), "{text}");
    let env = |name: &str| (name == "SMTP_PASSWORD").then(|| "pw".to_string());
    assert!(Notifiers::with_env(&config, &Secrets::new(), &program, env).is_ok());
}

#[tokio::test]
async fn a_notification_for_an_unknown_channel_is_refused_for_good() {
    let notifiers = Notifiers::with_env(&NotifyConfig::default(), &Secrets::new(), &program(vec![]), no_env).unwrap();
    let failure = notifiers.send(&sample()).await.unwrap_err();
    assert_eq!(failure.retry, Retry::Never);
    assert!(failure.message.contains("trade_support"), "{}", failure.message);
}
