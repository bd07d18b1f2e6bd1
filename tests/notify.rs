//! The notifiers (`mon_service::notify`) against real receivers: an SMTP
//! server (aiosmtpd), HTTP servers that record what they get (webhook,
//! Slack, PagerDuty's Events API, an SMS gateway), a real Prometheus
//! Alertmanager, and receivers that misbehave, to check how each failure
//! is classified for the outbox. Channels come from rules compiled by the
//! compiler, settings from `Config::load`, as in `mon run`.

#[path = "support/receivers.rs"]
mod receivers;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mon_compiler::ir::{Program, RecordKind, Severity};
use mon_runtime::alerts::{AlertBrief, AlertState, Notification, NotificationEvent};
use mon_service::config::{Config, Overrides};
use mon_service::error::{Domain, Retry};
use mon_service::notify::Notifiers;
use receivers::{garbage_server, hanging_server, wait_until, Alertmanager, HttpReceiver, SmtpServer};

fn compile(rules: &str) -> Program {
    let source = mon_compiler::SourceFile { path: "channels.mon".into(), text: rules.into() };
    let compilation = mon_compiler::compile(&[source], mon_stdlib::registry(), &mon_compiler::NoSchemas);
    compilation.program.unwrap_or_else(|| panic!("rules do not compile: {:?}", compilation.diagnostics))
}

/// The configuration `mon run` would read from this mon.toml text and
/// these `MON_*` variables.
fn config(toml: &str, env: &[(&str, &str)]) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mon.toml");
    std::fs::write(&path, toml).unwrap();
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::load(Some(&path), env, &Overrides::default()).unwrap()
}

fn notifiers_for(rules: &str, toml: &str) -> Notifiers {
    let config = config(toml, &[]);
    Notifiers::new(&config.notify, &config.secrets, &compile(rules)).unwrap()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A firing group of two missing ACKs, now.
fn firing(channel: &str) -> Notification {
    let at = now_ms();
    let key = |trade: &str| BTreeMap::from([("trade_id".to_string(), trade.to_string())]);
    Notification {
        id: format!("{channel}-group-1.1"),
        channel: channel.into(),
        at,
        event: NotificationEvent::Firing,
        group_key: format!("{channel}-group-1"),
        workflow: "trade_lifecycle".into(),
        step: "sys3_ack".into(),
        kind: RecordKind::Missing,
        severity: Severity::High,
        group: BTreeMap::from([("book".to_string(), "EQ-LDN".to_string())]),
        runbook: Some("https://wiki.example.com/runbooks/sys3".into()),
        program_hash: "ab12cd34".into(),
        active: 2,
        acknowledged: 0,
        new: 2,
        resolved: 0,
        escalated: false,
        acknowledged_by: None,
        alerts: vec![
            AlertBrief {
                id: "a1".into(),
                key: key("T-1001"),
                state: AlertState::Open,
                opened_at: at - 60_000,
                deadline: Some(at - 90_000),
            },
            AlertBrief {
                id: "a2".into(),
                key: key("T-1002"),
                state: AlertState::Open,
                opened_at: at - 30_000,
                deadline: Some(at - 45_000),
            },
        ],
        summary: "trade_lifecycle.sys3_ack missing: 2 trades in book EQ-LDN (T-1001, T-1002)".into(),
    }
}

fn resolved(channel: &str) -> Notification {
    let mut n = firing(channel);
    n.id = format!("{channel}-group-1.2");
    n.event = NotificationEvent::Resolved;
    n.active = 0;
    n.new = 0;
    n.resolved = 2;
    n.summary = "trade_lifecycle.sys3_ack missing: resolved".into();
    n
}

// ---------------------------------------------------------------- email

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_a_real_smtp_server_configured_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path());
    let port = smtp.port.to_string();
    // The exact variables an operator would set; the file has only `from`.
    let config = config(
        "[notify.smtp]\nfrom = \"mon <mon@example.com>\"\n",
        &[
            ("MON_NOTIFY__SMTP__HOST", "127.0.0.1"),
            ("MON_NOTIFY__SMTP__PORT", &port),
            ("MON_NOTIFY__SMTP__TLS", "none"),
        ],
    );
    let rules = "channel trade_support email \"ops@example.com\", \"desk@example.com\"\n";
    let notifiers = Notifiers::new(&config.notify, &config.secrets, &compile(rules)).unwrap();

    notifiers.send(&firing("trade_support")).await.unwrap();
    notifiers.send(&resolved("trade_support")).await.unwrap();

    let messages = smtp.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let mail = &messages[0];
    assert_eq!(mail.mail_from, "mon@example.com");
    assert_eq!(mail.rcpt_tos, ["ops@example.com", "desk@example.com"]);
    let text = mail.headers();
    assert!(text.contains("Subject: [mon] FIRING high trade_lifecycle.sys3_ack missing: 2 active\n"), "{text}");
    assert!(text.contains("Message-ID: <trade_support-group-1.1@mon>\n"), "{text}");
    assert!(text.contains("In-Reply-To: <group.trade_support-group-1@mon>\n"), "{text}");
    assert!(text.contains("To: ops@example.com, desk@example.com\n"), "{text}");
    assert!(text.contains("From: mon <mon@example.com>\n"), "{text}");
    let text = &mail.body();
    assert!(text.contains("trade_lifecycle.sys3_ack missing: 2 trades in book EQ-LDN"), "{text}");
    assert!(text.contains("trade_id=T-1001  (open, deadline "), "{text}");
    assert!(text.contains("Runbook: https://wiki.example.com/runbooks/sys3"), "{text}");
    assert!(text.contains("Notification trade_support-group-1.1 at "), "{text}");
    let resolved_mail = &messages[1].text;
    assert!(resolved_mail.contains("Subject: [mon] RESOLVED high trade_lifecycle.sys3_ack missing: 2 resolved"));
    // Both messages name the same thread.
    assert!(resolved_mail.contains("References: <group.trade_support-group-1@mon>\n"), "{resolved_mail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_refusals_are_permanent_or_passing_as_the_server_says() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path());
    let toml = format!(
        "[notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"mon@example.com\"\n",
        smtp.port
    );
    let rules = "channel bounced email \"bounce@example.com\"\nchannel deferred email \"defer@example.com\"\n";
    let notifiers = notifiers_for(rules, &toml);
    let failure = notifiers.send(&firing("bounced")).await.unwrap_err();
    assert_eq!(failure.retry, Retry::Never, "{failure}");
    let failure = notifiers.send(&firing("deferred")).await.unwrap_err();
    assert_eq!(failure.retry, Retry::Later, "{failure}");
    assert!(smtp.messages().is_empty());

    // Nobody listening: the relay may come back.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let toml =
        format!("[notify.smtp]\nhost = \"127.0.0.1\"\nport = {closed}\ntls = \"none\"\nfrom = \"mon@example.com\"\n");
    let failure = notifiers_for(rules, &toml).send(&firing("bounced")).await.unwrap_err();
    assert_eq!(failure.retry, Retry::Later, "{failure}");
    assert!(failure.message.contains("bounced"), "{failure}");
}

// ---------------------------------------------------------------- HTTP receivers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_slack_and_sms_get_their_payloads() {
    let receiver = HttpReceiver::start().await;
    let base = &receiver.base;
    let rules = format!(
        "channel noc webhook \"{base}/hook\"\n\
         channel chat slack secret(\"MON_TEST_SLACK_HOOK\")\n\
         channel text sms \"+441234567890\", \"+15550100\"\n"
    );
    let toml = format!(
        "[notify]\npublic_url = \"https://mon.example.com\"\n\
         [notify.sms]\nurl = \"{base}/sms\"\ntoken_secret = \"MON_TEST_SMS_TOKEN\"\n\
         [secrets]\nMON_TEST_SLACK_HOOK = \"{base}/slack/T000/B000/s3cr3t\"\nMON_TEST_SMS_TOKEN = \"tok-123\"\n"
    );
    let notifiers = notifiers_for(&rules, &toml);
    for channel in ["noc", "chat", "text"] {
        notifiers.send(&firing(channel)).await.unwrap();
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");

    let hook = &requests[0];
    assert_eq!(hook.path, "/hook");
    assert_eq!(hook.header("idempotency-key"), Some("noc-group-1.1"));
    assert_eq!(hook.header("content-type"), Some("application/json"));
    assert_eq!(hook.body["version"], 1);
    assert_eq!(hook.body["id"], "noc-group-1.1");
    assert_eq!(hook.body["event"], "firing");
    assert_eq!(hook.body["kind"], "missing");
    assert_eq!(hook.body["group"]["book"], "EQ-LDN");
    let at = hook.body["at"].as_str().unwrap();
    assert!(mon_stdlib::time::parse_rfc3339(at).is_some(), "{at}");
    assert!(at.ends_with('Z'), "{at}");
    assert_eq!(hook.body["alerts"][0]["key"]["trade_id"], "T-1001");

    let slack = &requests[1];
    assert_eq!(slack.path, "/slack/T000/B000/s3cr3t");
    assert_eq!(slack.body["text"], firing("chat").summary);
    let blocks = slack.body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().starts_with("FIRING"));
    assert_eq!(blocks[1]["fields"].as_array().unwrap().len(), 7);
    assert!(slack.body.to_string().contains("T-1002"));
    assert!(slack.body.to_string().contains("<https://wiki.example.com/runbooks/sys3|Runbook>"));

    for (request, to) in requests[2..].iter().zip(["+441234567890", "+15550100"]) {
        assert_eq!(request.path, "/sms");
        assert_eq!(request.header("authorization"), Some("Bearer tok-123"));
        assert_eq!(request.body["to"], to);
        assert_eq!(request.body["id"], "text-group-1.1");
        assert_eq!(request.body["message"], firing("text").summary);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_triggers_then_resolves_the_same_dedup_key() {
    let receiver = HttpReceiver::start().await;
    let toml = format!(
        "[notify.pagerduty]\nurl = \"{}/v2/enqueue\"\n[secrets]\nMON_TEST_PD_KEY = \"R0UT1NGKEY\"\n",
        receiver.base
    );
    let notifiers = notifiers_for("channel pager pagerduty secret(\"MON_TEST_PD_KEY\")\n", &toml);
    notifiers.send(&firing("pager")).await.unwrap();
    let mut acknowledged = firing("pager");
    acknowledged.event = NotificationEvent::Acknowledged;
    notifiers.send(&acknowledged).await.unwrap();
    notifiers.send(&resolved("pager")).await.unwrap();

    let requests = receiver.requests();
    let actions: Vec<&str> = requests.iter().map(|r| r.body["event_action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    for request in &requests {
        assert_eq!(request.path, "/v2/enqueue");
        assert_eq!(request.body["routing_key"], "R0UT1NGKEY");
        assert_eq!(request.body["dedup_key"], "pager-group-1");
    }
    let trigger = &requests[0].body["payload"];
    assert_eq!(trigger["severity"], "error");
    assert_eq!(trigger["source"], "mon");
    assert_eq!(trigger["component"], "trade_lifecycle");
    assert_eq!(trigger["group"], "sys3_ack");
    assert_eq!(trigger["class"], "missing");
    assert_eq!(requests[0].body["links"][0]["href"], "https://wiki.example.com/runbooks/sys3");
    assert_eq!(requests[2].body.as_object().unwrap().len(), 3, "{:?}", requests[2].body);
}

// ---------------------------------------------------------------- Alertmanager

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_lists_the_alert_then_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let alertmanager = Alertmanager::start(dir.path());
    let rules = format!("channel am alertmanager \"{}\"\n", alertmanager.base);
    let notifiers = notifiers_for(&rules, "[notify]\npublic_url = \"https://mon.example.com\"\n");

    notifiers.send(&firing("am")).await.unwrap();
    let alerts = alertmanager.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let labels = &alerts[0]["labels"];
    assert_eq!(labels["alertname"], "mon_missing");
    assert_eq!(labels["workflow"], "trade_lifecycle");
    assert_eq!(labels["step"], "sys3_ack");
    assert_eq!(labels["kind"], "missing");
    assert_eq!(labels["severity"], "high");
    assert_eq!(labels["group_book"], "EQ-LDN");
    assert_eq!(alerts[0]["annotations"]["runbook_url"], "https://wiki.example.com/runbooks/sys3");
    assert_eq!(alerts[0]["generatorURL"], "https://mon.example.com");
    assert_eq!(alerts[0]["status"]["state"], "active");

    notifiers.send(&resolved("am")).await.unwrap();
    wait_until(Duration::from_secs(10), "the alert to be resolved", || alertmanager.alerts().is_empty());
}

// ---------------------------------------------------------------- failures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_is_classified_for_the_outbox() {
    let receiver = HttpReceiver::start().await;
    let base = &receiver.base;
    let hanging = hanging_server().await;
    let garbage = garbage_server().await;
    let closed = format!("http://{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let rules = format!(
        "channel hangs webhook \"{hanging}/hook\"\n\
         channel fails webhook \"{base}/status/500/hook\"\n\
         channel throttles webhook \"{base}/status/429/hook\"\n\
         channel refuses webhook \"{base}/status/400/hook\"\n\
         channel gone webhook \"{base}/status/404/hook\"\n\
         channel garbles webhook \"{garbage}/hook\"\n\
         channel closed webhook \"{closed}/hook\"\n\
         channel partly webhook \"{base}/ok\", \"{base}/status/503/hook\"\n"
    );
    let notifiers = notifiers_for(&rules, "[notify.http]\ntimeout_ms = 500\n");
    for (channel, retry) in [
        ("hangs", Retry::Later),
        ("fails", Retry::Later),
        ("throttles", Retry::Later),
        ("refuses", Retry::Never),
        ("gone", Retry::Never),
        ("garbles", Retry::Later),
        ("closed", Retry::Later),
        ("partly", Retry::Later),
    ] {
        let start = Instant::now();
        let failure = notifiers.send(&firing(channel)).await.expect_err(channel);
        assert_eq!(failure.retry, retry, "{channel}: {failure}");
        assert!(failure.message.contains(&format!("channel {channel}")), "{failure}");
        assert!(start.elapsed() < Duration::from_secs(5), "{channel} took {:?}", start.elapsed());
    }
    // A refusal says the status and the receiver's reason.
    let failure = notifiers.send(&firing("refuses")).await.unwrap_err();
    assert!(failure.message.contains("400") && failure.message.contains("receiver says so"), "{failure}");
    // Of two targets, the one that accepted got it; the failure names the other.
    let failure = notifiers.send(&firing("partly")).await.unwrap_err();
    assert!(failure.message.contains("status/503") && !failure.message.contains("/ok\""), "{failure}");
    assert!(receiver.requests().iter().any(|r| r.path == "/ok" && r.body["id"] == "partly-group-1.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_url_never_appears_in_a_failure() {
    let hanging = hanging_server().await;
    let toml = format!("[notify.http]\ntimeout_ms = 300\n[secrets]\nMON_TEST_HOOK = \"{hanging}/T0/B0/topsecret\"\n");
    let notifiers = notifiers_for("channel chat slack secret(\"MON_TEST_HOOK\")\n", &toml);
    let failure = notifiers.send(&firing("chat")).await.unwrap_err();
    assert_eq!(failure.retry, Retry::Later);
    assert!(!failure.message.contains("topsecret"), "{failure}");
    assert!(failure.message.contains("secret(\"MON_TEST_HOOK\")"), "{failure}");
    assert!(!format!("{notifiers:?}").contains("topsecret"));
}

// ---------------------------------------------------------------- configuration

#[test]
fn a_missing_secret_is_a_configuration_error_naming_the_channel() {
    let config = config("", &[]);
    let rules = "channel pager pagerduty secret(\"MON_TEST_NOT_SET_ANYWHERE\")\n";
    let error = Notifiers::new(&config.notify, &config.secrets, &compile(rules)).unwrap_err();
    assert_eq!((error.domain, error.retry), (Domain::Config, Retry::Never));
    let text = error.to_string();
    assert!(text.contains("channel pager") && text.contains("MON_TEST_NOT_SET_ANYWHERE"), "{text}");
}

#[test]
fn an_email_channel_without_smtp_settings_is_a_configuration_error() {
    let config = config("", &[]);
    let error = Notifiers::new(&config.notify, &config.secrets, &compile("channel ops email \"ops@example.com\"\n"))
        .unwrap_err();
    assert_eq!(error.domain, Domain::Config);
    assert!(error.to_string().contains("channel ops: an email channel needs [notify.smtp]"), "{error}");
}

#[test]
fn the_documented_configuration_loads() {
    // docs/service.md, "Notifications": the example must stay a valid file.
    let doc = include_str!("../docs/service.md");
    let section = doc.split("\n## Notifications\n").nth(1).expect("the Notifications section");
    let toml = section.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).expect("its TOML example");
    let config = config(toml, &[]);
    let smtp = config.notify.smtp.as_ref().unwrap();
    assert_eq!((smtp.host.as_str(), smtp.port), ("smtp.example.com", 25));
    assert_eq!(config.notify.http.timeout_ms, 10_000);
    assert!(config.secrets.contains_key("PAGERDUTY_ROUTING_KEY"));
    let rules = "channel ops email \"ops@example.com\"\nchannel pager pagerduty secret(\"PAGERDUTY_ROUTING_KEY\")\n\
                 channel text sms \"+15550100\"\n";
    let notifiers = Notifiers::new(&config.notify, &config.secrets, &compile(rules)).unwrap();
    assert_eq!(notifiers.channel_names().collect::<Vec<_>>(), ["ops", "pager", "text"]);
}
