//! Notifications from `mon run` to real receivers, end to end (issue 11):
//! an aiosmtpd SMTP server, an HTTP webhook receiver and a Prometheus
//! Alertmanager. The service runs on the event clock, so the notifications
//! it sends are exactly those `mon simulate --notifications` prints for the
//! same events, ids included: the receivers' distinct ids are compared with
//! that list.

#[path = "support/receivers.rs"]
mod receivers;
#[path = "support/service.rs"]
mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use receivers::{wait_until, Alertmanager, HttpReceiver, SmtpServer};
use service::Service;

const MINUTE: i64 = 60_000;

/// Events start 20 minutes ago: on the event clock any time works, but
/// Alertmanager holds an alert only until its `endsAt`, which the notifier
/// sets from the notification's (event clock) time.
fn at(offset_ms: i64) -> String {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| service::now_ms() / 60_000 * 60_000 - 20 * MINUTE);
    mon_stdlib::time::format_rfc3339(start + offset_ms)
}

fn placed(n: usize, offset_ms: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"p-{n}","source":"oms","type":"placed","time":"{}","data":{{"id":"T{n}","book":"FX"}}}}"#,
        at(offset_ms)
    )
}

fn booked(n: usize, offset_ms: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"b-{n}","source":"oms","type":"booked","time":"{}","data":{{"id":"T{n}"}}}}"#,
        at(offset_ms)
    )
}

/// An event no rule uses: it moves the event clock, so the book's timers fire.
fn tick(offset_ms: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"tick-{offset_ms}","source":"clock","type":"tick","time":"{}","data":{{}}}}"#,
        at(offset_ms)
    )
}

fn free_port() -> u16 {
    service::free_address().rsplit_once(':').and_then(|(_, port)| port.parse().ok()).expect("a port")
}

/// Rules with the given channels, all notified by one trade workflow.
fn write_rules(dir: &Path, channels: &[(&str, &str, String)]) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let mut text = String::from("event placed { id: string, book: string }\nevent booked { id: string }\n");
    for (name, kind, target) in channels {
        text.push_str(&format!("channel {name} {kind} \"{target}\"\n"));
    }
    let names: Vec<&str> = channels.iter().map(|c| c.0).collect();
    text.push_str(&format!(
        "workflow trade {{\n  key id\n  group by book\n  notify {}\n  expect placed\n  then booked within 1m\n}}\n",
        names.join(", ")
    ));
    std::fs::write(rules.join("trade.mon"), text).unwrap();
    rules
}

fn start(dir: &Path, rules: &Path, config: &Path, log: &str) -> Service {
    Service::start(
        &[
            "--clock",
            "event",
            "--config",
            &config.display().to_string(),
            "--state-dir",
            &dir.join("state").display().to_string(),
            &rules.display().to_string(),
        ],
        &dir.join(log),
    )
}

fn post_lines(service: &Service, lines: &[String]) {
    for chunk in lines.chunks(5_000) {
        let (status, body) = service.post("/api/v1/events", &chunk.join("\n"));
        assert_eq!(status, 200, "{body}");
    }
}

fn pending(service: &Service) -> Vec<serde_json::Value> {
    let text = service.get("/api/v1/notifications?state=pending&limit=1000").unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    value["notifications"].as_array().cloned().unwrap_or_default()
}

/// The ids `mon simulate --notifications` gives per channel for these events.
fn simulated_ids(rules: &Path, events: &[String], dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let file = dir.join("events.ndjson");
    std::fs::write(&file, events.join("\n")).unwrap();
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for n in service::simulate(rules, &file, &["--notifications".to_string()]) {
        if n["kind"] == "notification" {
            ids.entry(n["channel"].as_str().unwrap().to_string()).or_default().insert(n["id"].as_str().unwrap().into());
        }
    }
    ids
}

#[test]
fn notifications_pending_across_a_crash_arrive_once_each_and_ten_thousand_stalls_are_one_group() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (smtp_port, hook_port) = (free_port(), free_port());
    let rules = write_rules(
        dir.path(),
        &[
            ("desk_mail", "email", "desk@example.com".to_string()),
            ("desk_hook", "webhook", format!("http://127.0.0.1:{hook_port}/hook")),
        ],
    );
    let config = dir.path().join("mon.toml");
    std::fs::write(
        &config,
        format!(
            "[notify.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\nfrom = \"mon@example.com\"\n\
             [alerts.delivery]\nretry_initial_ms = 100\nretry_max_ms = 500\n"
        ),
    )
    .unwrap();

    // 10,000 trades placed within a minute, none booked in time; most are
    // booked ten minutes late, and the clock runs on to 08:40.
    let mut events: Vec<String> = (0..10_000).map(|n| placed(n, n as i64 * 6)).collect();
    events.extend((0..9_990).map(|n| booked(n, 10 * MINUTE + n as i64 * 6)));
    events.extend((1..=8).map(|n| tick(10 * MINUTE + n * 5 * MINUTE)));
    let expected = simulated_ids(&rules, &events, dir.path());
    let expected_hook = expected.get("desk_hook").cloned().unwrap_or_default();
    assert_eq!(expected.get("desk_mail").map(BTreeSet::len), Some(expected_hook.len()));
    // One firing, the rest as updates, then renotified never (no renotify):
    // a handful of messages, not 10,000.
    assert!((2..=6).contains(&expected_hook.len()), "{expected_hook:?}");

    // Both receivers are down while the alerts are made.
    let first = start(dir.path(), &rules, &config, "first.log");
    post_lines(&first, &events);
    let mut seen: Vec<serde_json::Value> = Vec::new();
    let waited = std::time::Instant::now();
    // A group's later messages wait for its first (attempts 0 until then).
    let retried = |seen: &[serde_json::Value]| {
        let firsts = seen.iter().filter(|n| n["event"] == "firing");
        seen.len() == 2 * expected_hook.len()
            && firsts.clone().count() == 2
            && firsts.into_iter().all(|n| n["attempts"].as_u64() > Some(1))
    };
    while !retried(&seen) {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "expected {} pending, the firing ones retried; have: {:#?}\nexpected ids: {expected:?}",
            2 * expected_hook.len(),
            seen.iter()
                .map(|n| (n["id"].clone(), n["channel"].clone(), n["event"].clone(), n["attempts"].clone()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
        seen = pending(&first);
    }
    first.kill9();

    // Everything comes back.
    let mail_dir = dir.path().join("mail");
    std::fs::create_dir_all(&mail_dir).unwrap();
    let smtp = SmtpServer::start_on(&mail_dir, smtp_port);
    let hook = runtime.block_on(HttpReceiver::start_on(&format!("127.0.0.1:{hook_port}")));
    let second = start(dir.path(), &rules, &config, "second.log");
    wait_until(Duration::from_secs(60), "the outbox to drain", || pending(&second).is_empty());

    // The receivers drop repeats by id; every id the book made arrives.
    let hook_ids: Vec<String> =
        hook.requests().iter().map(|r| r.header("idempotency-key").unwrap_or_default().to_string()).collect();
    let distinct: BTreeSet<String> = hook_ids.iter().cloned().collect();
    assert_eq!(distinct, expected_hook, "the webhook got each notification");
    assert_eq!(hook_ids.len(), distinct.len(), "nothing was sent twice after the restart: {hook_ids:?}");
    let mail_ids: Vec<String> = smtp
        .messages()
        .iter()
        .filter_map(|m| {
            let line = m.headers().lines().find(|l| l.to_ascii_lowercase().starts_with("message-id:"))?;
            Some(line.split_once('<')?.1.split_once('@')?.0.to_string())
        })
        .collect();
    let distinct_mail: BTreeSet<String> = mail_ids.iter().cloned().collect();
    assert_eq!(&distinct_mail, expected.get("desk_mail").unwrap(), "the mail server got each notification");
    // A mail server does not drop repeats: none may come.
    assert_eq!(mail_ids.len(), distinct_mail.len(), "a message was mailed twice: {mail_ids:?}");

    // The first message names the group and its count; the last resolves
    // 9,990 and leaves the ten never booked.
    let bodies: Vec<serde_json::Value> = hook.requests().iter().map(|r| r.body.clone()).collect();
    let firing = bodies.iter().find(|b| b["event"] == "firing").expect("a firing message");
    assert!(firing["active"].as_u64().unwrap() > 1_000, "{firing}");
    assert_eq!(firing["group"]["book"], "FX");
    assert!(bodies.iter().any(|b| b["active"] == 10), "the ten stalls stay active: {bodies:?}");
    assert_eq!(second.metric_sum("mon_notifications_sent_total") as usize, 2 * expected_hook.len());
    second.terminate();
}

#[test]
fn alertmanager_lists_a_missing_step_and_shows_it_resolved_after_the_late_event() {
    let dir = tempfile::tempdir().unwrap();
    let alertmanager = Alertmanager::start(dir.path());
    let rules = write_rules(dir.path(), &[("am", "alertmanager", alertmanager.base.clone())]);
    let config = dir.path().join("mon.toml");
    std::fs::write(&config, "[alerts]\ngroup_wait_ms = 1000\ngroup_interval_ms = 60000\n").unwrap();
    let service = start(dir.path(), &rules, &config, "mon.log");

    post_lines(&service, &[placed(1, 0), tick(3 * MINUTE)]);
    let labels = |alert: &serde_json::Value| alert["labels"].clone();
    wait_until(Duration::from_secs(30), "Alertmanager to list the alert", || !alertmanager.alerts().is_empty());
    let listed = alertmanager.alerts();
    let alert = labels(&listed[0]);
    assert_eq!(
        (alert["workflow"].as_str(), alert["step"].as_str(), alert["kind"].as_str()),
        (Some("trade"), Some("booked"), Some("missing"))
    );

    // The step happens late; the group interval later, the group resolves.
    post_lines(&service, &[booked(1, 5 * MINUTE), tick(10 * MINUTE)]);
    wait_until(Duration::from_secs(30), "Alertmanager to show it resolved", || alertmanager.alerts().is_empty());
    // Alertmanager applies a post before it answers, and mon counts a
    // delivery only once the answer is in: the list can empty a moment
    // before the counter moves.
    let sent = || service.metric("mon_notifications_sent_total{channel=\"am\"}");
    wait_until(Duration::from_secs(10), "the resolved message to be counted", || sent() >= Some(2.0));
    assert_eq!(sent(), Some(2.0), "firing, then resolved");
    service.terminate();
}

/// A channel whose secret nobody gave stops `mon run` before it starts
/// anything, naming the channel, not at the first alert; with
/// `deliver = "log"` nothing is sent, so no secret is needed.
#[test]
fn an_unresolved_secret_is_a_configuration_error_at_start_naming_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("trade.mon"),
        "event placed { id: string }\nevent booked { id: string }\n\
         channel pager pagerduty secret(\"MON_TEST_UNSET_ROUTING_KEY\")\n\
         workflow trade { key id\n notify pager\n expect placed\n then booked within 1m }\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["run", rules.to_str().unwrap(), "--state-dir", state.to_str().unwrap()])
        .args(["--listen", &service::free_address()])
        .env_remove("MON_TEST_UNSET_ROUTING_KEY")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("mon run started without the secret");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pager") && stderr.contains("MON_TEST_UNSET_ROUTING_KEY"), "{stderr}");
    assert!(!state.exists(), "it started: the state directory was made");

    let config = dir.path().join("mon.toml");
    std::fs::write(&config, "[notify]\ndeliver = \"log\"\n").unwrap();
    let service = Service::start(
        &["--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), rules.to_str().unwrap()],
        &dir.path().join("mon.log"),
    );
    service.terminate();
}
