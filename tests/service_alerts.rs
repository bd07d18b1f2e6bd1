//! The alert API of `mon run`, over real HTTP, on a real state directory:
//! filters, pages, the one error shape, commands that are journaled and
//! survive SIGKILL. Notifications go to the log (the built-in
//! `LogDeliverer`): the tests read them from the service's JSON log. No
//! Kafka: events are posted over HTTP.

#[path = "support/service.rs"]
mod service;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use service::Service;

const RULES: &str = r#"
event job_started { job: string, team: string }
event job_done { job: string }
channel ops webhook "http://127.0.0.1:9/hook"

workflow jobs {
  key job
  group by team
  notify ops
  renotify 2s
  start started: job_started
  step done: job_done after started within 1s
}
"#;

/// Rules and a config with short group waits; returns (rules, config).
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("jobs.mon"), RULES).unwrap();
    let config = dir.join("mon.toml");
    // The log deliverer: these tests read each notification back from the log.
    std::fs::write(&config, "[alerts]\ngroup_wait_ms = 200\ngroup_interval_ms = 500\n[notify]\ndeliver = \"log\"\n")
        .unwrap();
    (rules, config)
}

fn start(dir: &Path, log: &str) -> Service {
    let (rules, config) = setup(dir);
    let state = dir.join("state");
    Service::start(
        &[
            "--config",
            &config.display().to_string(),
            "--state-dir",
            &state.display().to_string(),
            &rules.display().to_string(),
        ],
        &dir.join(log),
    )
}

fn started(job: &str, team: &str) -> String {
    let time = mon_stdlib::time::format_rfc3339(service::now_ms());
    format!(
        r#"{{"specversion":"1.0","id":"s-{job}","source":"test","type":"job_started","time":"{time}","data":{{"job":"{job}","team":"{team}"}}}}"#
    )
}

fn get_json(service: &Service, path: &str) -> (u16, Value) {
    let (status, body) = service.get_any(path).expect("GET");
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path} gave no JSON: {body}")))
}

fn post_json(service: &Service, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = service.post(path, body);
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} gave no JSON: {text}")))
}

fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(value) = check() {
            return value;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {limit:?}");
}

/// The alerts of a filter, all pages.
fn alerts(service: &Service, query: &str) -> Vec<Value> {
    let (status, body) = get_json(service, &format!("/api/v1/alerts?{query}"));
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().unwrap().clone()
}

/// The id of the open alert for `job`, once there is one.
fn alert_of(service: &Service, job: &str) -> String {
    wait_for(Duration::from_secs(10), &format!("an alert for {job}"), || {
        alerts(service, &format!("key=job={job}")).first().map(|a| a["id"].as_str().unwrap().to_string())
    })
}

/// Asserts the one error shape and returns (code, details).
fn error_of(status: u16, body: &Value, want: u16) -> (String, Value) {
    assert_eq!(status, want, "{body}");
    let error = &body["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    (error["code"].as_str().unwrap_or_default().to_string(), error["details"].clone())
}

fn field_of(status: u16, body: &Value) -> String {
    let (code, details) = error_of(status, body, 400);
    assert_eq!(code, "invalid_request", "{body}");
    details["field"].as_str().unwrap_or_default().to_string()
}

/// The notification lines of a log: (id, event, group_key).
fn notifications_logged(log: &Path) -> Vec<(String, String, String)> {
    notifications_logged_at(log).into_iter().map(|(id, event, group, _)| (id, event, group)).collect()
}

/// (id, event, group key, the instant the book made it).
fn notifications_logged_at(log: &Path) -> Vec<(String, String, String, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "notification")
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("event"), s("group_key"), s("at"))
        })
        .collect()
}

#[test]
fn the_alert_api_filters_pages_acts_and_answers_errors_in_one_shape() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), "mon.log");
    let jobs = [("J1", "a"), ("J2", "a"), ("J3", "a"), ("J4", "b"), ("J5", "b")];
    for (job, team) in jobs {
        let (status, body) = service.post("/api/v1/events", &started(job, team));
        assert_eq!(status, 200, "{body}");
        // Distinct opening instants, so "newest first" is a real order.
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for(Duration::from_secs(10), "five missing alerts", || (alerts(&service, "").len() == 5).then_some(()));

    // Filters.
    assert_eq!(alerts(&service, "group=team=a").len(), 3);
    assert_eq!(alerts(&service, "group=team=b&key=J4").len(), 1);
    assert_eq!(alerts(&service, "key=job=J5").len(), 1);
    assert_eq!(alerts(&service, "key=J9").len(), 0);
    assert_eq!(alerts(&service, "state=open&workflow=jobs").len(), 5);
    assert_eq!(alerts(&service, "state=resolved").len(), 0);
    assert_eq!(alerts(&service, "workflow=other").len(), 0);
    let severity = alerts(&service, "")[0]["severity"].as_str().unwrap().to_string();
    assert_eq!(alerts(&service, &format!("severity={severity}")).len(), 5);
    let other = if severity == "info" { "critical" } else { "info" };
    assert_eq!(alerts(&service, &format!("severity={other}")).len(), 0);
    let one = &alerts(&service, "key=J1")[0];
    assert_eq!(one["kind"], "missing");
    assert_eq!(one["group"], json!({"team": "a"}));
    assert!(one["since_breach_ms"].as_i64().unwrap() >= 0, "{one}");
    assert!(mon_stdlib::time::parse_rfc3339(one["opened_at"].as_str().unwrap()).is_some(), "{one}");

    // Pages: newest first, each alert once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("/api/v1/alerts?limit=2&cursor={c}"),
            None => "/api/v1/alerts?limit=2".to_string(),
        };
        let (status, body) = get_json(&service, &query);
        assert_eq!(status, 200, "{body}");
        pages += 1;
        seen.extend(body["alerts"].as_array().unwrap().iter().map(|a| a["key"]["job"].as_str().unwrap().to_string()));
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec!["J5", "J4", "J3", "J2", "J1"]);

    // Bad parameters: 400, naming the parameter.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("state=opened", "state"),
        ("severity=urgent", "severity"),
        ("group=team", "group"),
        ("cursor=zz", "cursor"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = get_json(&service, &format!("/api/v1/alerts?{query}"));
        assert_eq!(field_of(status, &body), field, "{query}: {body}");
    }

    // Commands.
    let id = alert_of(&service, "J1");
    let ack = format!("/api/v1/alerts/{id}/ack");
    for (body, field) in [
        ("{}", "by"),
        (r#"{"by": "  "}"#, "by"),
        (r#"{"by": 7}"#, "by"),
        (r#"{"by": "ann", "until": "2030-01-01T00:00:00Z"}"#, "until"),
        (r#"{"by": "ann", "reson": "typo"}"#, "reson"),
        ("not json", "body"),
        ("[1]", "body"),
    ] {
        let (status, answer) = post_json(&service, &ack, body);
        assert_eq!(field_of(status, &answer), field, "{body}: {answer}");
    }
    let (status, answer) =
        post_json(&service, &format!("/api/v1/alerts/{id}/suppress"), r#"{"by": "ann", "until": "tomorrow"}"#);
    assert_eq!(field_of(status, &answer), "until");
    let (status, answer) = post_json(&service, "/api/v1/alerts/nope/ack", r#"{"by": "ann"}"#);
    assert_eq!(error_of(status, &answer, 404).0, "not_found");
    let (status, answer) = get_json(&service, "/api/v1/alerts/nope");
    assert_eq!(error_of(status, &answer, 404).0, "not_found");
    let (status, answer) = post_json(&service, &format!("/api/v1/alerts/{id}/snooze"), r#"{"by": "ann"}"#);
    assert_eq!(error_of(status, &answer, 404).0, "not_found");

    let (status, answer) = post_json(&service, &ack, r#"{"by": "ann", "reason": "on it"}"#);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "acknowledged");
    // Read straight after: the view already has it.
    assert_eq!(get_json(&service, &format!("/api/v1/alerts/{id}")).1["state"], "acknowledged");
    assert_eq!(alerts(&service, "state=acknowledged").len(), 1);
    let (status, answer) = post_json(&service, &ack, r#"{"by": "ann"}"#);
    assert_eq!(error_of(status, &answer, 409).0, "conflict");
    let (status, answer) = post_json(&service, &format!("/api/v1/alerts/{id}/resolve"), r#"{"by": "bob"}"#);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "resolved");
    let (status, answer) = post_json(&service, &ack, r#"{"by": "ann"}"#);
    assert_eq!(error_of(status, &answer, 409).0, "conflict");
    let (status, answer) = post_json(
        &service,
        &format!("/api/v1/alerts/{}/suppress", alert_of(&service, "J4")),
        r#"{"by": "ann", "until": "2000-01-01T00:00:00Z"}"#,
    );
    assert_eq!(error_of(status, &answer, 409).0, "conflict", "a suppression that ended before it starts");

    // The detail: history with the notification, and its delivery.
    let (status, detail) = get_json(&service, &format!("/api/v1/alerts/{id}"));
    assert_eq!(status, 200);
    let history = detail["history"].as_array().unwrap();
    let whats: Vec<&str> = history.iter().map(|e| e["what"].as_str().unwrap()).collect();
    assert_eq!(whats.first(), Some(&"opened"), "{whats:?}");
    assert!(whats.contains(&"notified") && whats.contains(&"acknowledged"), "{whats:?}");
    assert_eq!(whats.last(), Some(&"resolved"), "{whats:?}");
    let acknowledged = history.iter().find(|e| e["what"] == "acknowledged").unwrap();
    assert_eq!((acknowledged["by"].as_str(), acknowledged["reason"].as_str()), (Some("ann"), Some("on it")));
    let notified: Vec<&str> =
        history.iter().filter(|e| e["what"] == "notified").map(|e| e["notification"].as_str().unwrap()).collect();
    let deliveries = detail["notifications"].as_array().unwrap();
    assert!(!deliveries.is_empty());
    for delivery in deliveries {
        assert!(notified.contains(&delivery["id"].as_str().unwrap()), "{delivery}");
    }
    let first = wait_for(Duration::from_secs(5), "the firing notification sent", || {
        let (_, detail) = get_json(&service, &format!("/api/v1/alerts/{id}"));
        detail["notifications"].as_array()?.first().filter(|n| n["state"] == "sent").cloned()
    });
    assert_eq!(first["channel"], "ops");
    assert!(first["attempts"].as_u64().unwrap() >= 1);
    let logged = notifications_logged(&dir.path().join("mon.log"));
    assert!(logged.iter().any(|(n, event, _)| n == first["id"].as_str().unwrap() && event == "firing"), "{logged:?}");

    // The outbox for operators.
    let (status, body) = get_json(&service, "/api/v1/notifications?state=failed");
    assert_eq!(status, 200);
    assert_eq!(body["notifications"], json!([]));
    let (status, body) = get_json(&service, "/api/v1/notifications?state=lost");
    assert_eq!(field_of(status, &body), "state");
    assert!(service.metric("mon_notifications_sent_total{channel=\"ops\"}").unwrap_or(0.0) >= 1.0);
    assert_eq!(service.metric("mon_notifications_retrying{channel=\"ops\"}"), Some(0.0));
    assert!(service.metric("mon_notifications_oldest_pending_seconds{channel=\"ops\"}").is_some());
    assert_eq!(service.terminate(), Some(0));
}

#[test]
fn an_acknowledgement_survives_sigkill_and_no_renotify_follows() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), "first.log");
    // Two groups: team a will be acknowledged, team b is the control.
    for (job, team) in [("J1", "a"), ("J2", "b")] {
        let (status, body) = service.post("/api/v1/events", &started(job, team));
        assert_eq!(status, 200, "{body}");
    }
    let acked = alert_of(&service, "J1");
    let control = alert_of(&service, "J2");
    // The firing notification of team a's group went out before the ack.
    let (firing_a, group_a) = wait_for(Duration::from_secs(10), "team a notified", || {
        notifications_logged(&dir.path().join("first.log"))
            .into_iter()
            .find(|(_, event, group)| event == "firing" && group.ends_with("/a"))
            .map(|(id, _, group)| (id, group))
    });
    // Let the delivery task move it to the sent log; the ack's batch then
    // flushes that move with itself.
    std::thread::sleep(Duration::from_millis(300));
    let (status, answer) = post_json(&service, &format!("/api/v1/alerts/{acked}/ack"), r#"{"by": "ann"}"#);
    assert_eq!(status, 200, "{answer}");
    // The reply came after the command was journaled: kill at once.
    service.kill9();

    let service = start(dir.path(), "second.log");
    let (status, alert) = get_json(&service, &format!("/api/v1/alerts/{acked}"));
    assert_eq!(status, 200, "{alert}");
    assert_eq!(alert["state"], "acknowledged", "{alert}");
    let entry = alert["history"].as_array().unwrap().iter().find(|e| e["what"] == "acknowledged").cloned();
    let entry_at = entry.as_ref().and_then(|e| e["at"].as_str().map(String::from));
    assert_eq!(entry.and_then(|e| e["by"].as_str().map(String::from)).as_deref(), Some("ann"));
    assert_eq!(get_json(&service, &format!("/api/v1/alerts/{control}")).1["state"], "open");

    // The control group, open and unacknowledged, is renotified (every
    // 2 s): the wait below is long enough to see one.
    let second = dir.path().join("second.log");
    wait_for(Duration::from_secs(10), "the control group renotified", || {
        notifications_logged(&second)
            .iter()
            .any(|(_, event, group)| event == "renotify" && group.ends_with("/b"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(2500));
    let logged = notifications_logged(&second);
    // The replay at start makes the firing notification again; it was
    // written (and sent) with its batch, so it is not written twice.
    assert!(!logged.iter().any(|(id, _, _)| *id == firing_a), "sent again after the restart: {logged:?}");
    // A renotify the book made before the ack may still be pending at the
    // kill and go out now; none may be made after it.
    let acked_at = entry_at.expect("the acknowledgement's instant");
    let acked_at = mon_stdlib::time::parse_rfc3339(&acked_at).expect("an RFC 3339 instant");
    let renotified: Vec<_> = notifications_logged_at(&second)
        .into_iter()
        .filter(|(_, event, group, at)| {
            *group == group_a
                && event == "renotify"
                && mon_stdlib::time::parse_rfc3339(at).is_some_and(|t| t > acked_at)
        })
        .collect();
    assert!(renotified.is_empty(), "an acknowledged group was renotified after the restart: {renotified:?}");
    assert_eq!(service.terminate(), Some(0));
}
