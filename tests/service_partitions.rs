//! Keys and partitions, against the real broker: a producer that does not
//! key its messages by item puts one item's events on several partitions.
//! The service must say so (a metric, the status, a warning in the log),
//! not raise silent wrong alerts (docs/service.md, "Keys and partitions").

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/service.rs"]
mod service;

use std::time::Duration;

use serde_json::Value;
use service::{now_ms, wait_until_true, Service};

/// A job event as a Kafka message's payload.
fn job(kind: &str, job: &str, time: i64) -> Vec<u8> {
    service::job_event(kind, job, time).into_bytes()
}

fn to_partition(topic: &str, partition: i32, messages: &[Vec<u8>]) {
    kafka::produce_to(topic, Some(partition), messages.iter().map(|m| (None, m.clone(), Vec::new())));
}

#[test]
fn an_item_whose_events_come_from_two_partitions_is_reported() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let (topic, records, dead) = kafka::topic_set("split", 2);
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic);
    let rules = service::write_job_rules(dir.path(), "1h");
    let state = dir.path().join("state");
    let log = dir.path().join("mon.log");
    let args = ["--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), rules.to_str().unwrap()];
    let service = Service::start(&args, &log);

    // J1 and J2 start on their own partitions. Only once both are in does
    // anything else go out: across partitions, Kafka keeps no order.
    let t = now_ms();
    to_partition(&topic, 0, &[job("job_started", "J1", t)]);
    to_partition(&topic, 1, &[job("job_started", "J2", t + 1)]);
    let accepted = |s: &Service| s.metric_sum("mon_events_total");
    wait_until_true(Duration::from_secs(30), "both starts accepted", || accepted(&service) >= 2.0);
    assert_eq!(service.metric("mon_split_key_events_total"), Some(0.0), "nothing split yet");

    // J1 ends on the other partition: split. J2 ends where it started: not.
    to_partition(&topic, 1, &[job("job_done", "J1", t + 2), job("job_done", "J2", t + 3)]);
    wait_until_true(Duration::from_secs(30), "both ends accepted", || accepted(&service) >= 4.0);
    wait_until_true(Duration::from_secs(10), "the split counted", || {
        service.metric("mon_split_key_events_total") == Some(1.0)
    });
    // The status is copied about once a second.
    wait_until_true(Duration::from_secs(10), "the split in the status", || {
        service.get("/api/v1/status").is_some_and(|body| body.contains("\"split_keys\":{"))
    });
    let status: Value = serde_json::from_str(&service.get("/api/v1/status").unwrap()).unwrap();
    let split = &status["split_keys"];
    assert_eq!(split["events"], 1, "{status}");
    assert_eq!(split["last"]["workflow"], "jobs");
    assert_eq!(split["last"]["key"], "J1");
    assert_eq!(split["last"]["owner_partition"], 0);
    assert_eq!(split["last"]["seen_on_partition"], 1);
    assert_eq!(split["last"]["at"], mon_stdlib::time::format_rfc3339(t + 2));

    // The item is still followed as one: J1 completed, no stray.
    wait_until_true(Duration::from_secs(10), "both completed", || {
        let body = service.get("/api/v1/status").unwrap_or_default();
        let status: Value = serde_json::from_str(&body).unwrap_or_default();
        status["workflows"][0]["metrics"]["completed"] == 2
    });
    service.terminate();
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("come from two partitions")).collect();
    assert_eq!(warnings.len(), 1, "one warning, naming the item: {text}");
    assert!(
        warnings[0].contains("\"key\":\"J1\"") && warnings[0].contains("\"seen_on_partition\":1"),
        "{}",
        warnings[0]
    );
}

/// Until scale-out is built, a second `mon run` in a consumer group takes
/// part of the partitions and both processes report wrongly. The first
/// must say so at once (metric, readiness, log), and be well again when
/// the second leaves.
#[test]
fn a_second_process_in_the_consumer_group_is_reported_not_silent() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let (topic, records, dead) = kafka::topic_set("shared-group", 2);
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic);
    let rules = service::write_job_rules(dir.path(), "1h");
    let (state_a, state_b) = (dir.path().join("a"), dir.path().join("b"));
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let args = |state: &std::path::Path| {
        ["--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), rules.to_str().unwrap()]
            .map(str::to_string)
    };
    let args_a = args(&state_a);
    let first = Service::start(&args_a.each_ref().map(String::as_str), &log_a);
    // Statistics come once a second: the figure is there after one.
    wait_until_true(Duration::from_secs(10), "the first process's count of partitions elsewhere", || {
        first.metric("mon_partitions_elsewhere").is_some()
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(first.metric("mon_partitions_elsewhere"), Some(0.0), "alone in its group");

    let args_b = args(&state_b);
    let second = Service::spawn(&args_b.each_ref().map(String::as_str), &log_b);
    wait_until_true(Duration::from_secs(30), "the first process not ready while it shares its group", || {
        first.get_any("/readyz").is_some_and(|(code, body)| code == 503 && body.contains("another process"))
    });
    assert_eq!(first.metric("mon_partitions_elsewhere"), Some(1.0));
    // The second process's statistics may come up to a second later.
    wait_until_true(Duration::from_secs(10), "the second process says it too", || {
        second.metric("mon_partitions_elsewhere") == Some(1.0)
    });
    // Each knows the other: where its API is, and what it holds.
    let members = |service: &Service| -> Vec<Value> {
        let body = service.get("/api/v1/group").unwrap_or_default();
        let group: Value = serde_json::from_str(&body).unwrap_or_default();
        group["members"].as_array().cloned().unwrap_or_default()
    };
    let both_announced = |service: &Service| {
        let members = members(service);
        members.len() == 2
            && members.iter().all(|m| m["alive"] == true && m["partitions"].as_array().is_some_and(|p| p.len() == 1))
    };
    wait_until_true(Duration::from_secs(20), "both processes in the group's list", || {
        both_announced(&first) && both_announced(&second)
    });
    let listed = members(&first);
    let urls: Vec<&str> = listed.iter().filter_map(|m| m["http"].as_str()).collect();
    assert!(
        urls.contains(&first.url("").trim_end_matches('/')) && urls.contains(&second.url("").trim_end_matches('/')),
        "{listed:?}"
    );
    let mut partitions: Vec<&str> =
        listed.iter().flat_map(|m| m["partitions"].as_array().unwrap()).filter_map(Value::as_str).collect();
    partitions.sort();
    assert_eq!(partitions, [format!("{topic}/0"), format!("{topic}/1")], "one each, none twice");
    // Readiness names where the other process is.
    let (_, ready) = first.get_any("/readyz").unwrap();
    assert!(ready.contains(second.url("").trim_end_matches('/')), "{ready}");
    // Neither writes the group's changelog while they share it: their
    // entries would mix under the same keys. An event makes a batch.
    kafka::produce_to(&topic, Some(0), [(None, job("job_started", "S1", now_ms()), Vec::new())]);
    kafka::produce_to(&topic, Some(1), [(None, job("job_started", "S2", now_ms()), Vec::new())]);
    wait_until_true(Duration::from_secs(20), "both fenced off the changelog", || {
        first.metric("mon_changelog_behind") == Some(1.0) && second.metric("mon_changelog_behind") == Some(1.0)
    });

    second.terminate();
    wait_until_true(Duration::from_secs(30), "the first process ready again once alone", || {
        first.get_any("/readyz").is_some_and(|(code, _)| code == 200)
    });
    assert_eq!(first.metric("mon_partitions_elsewhere"), Some(0.0));
    // Alone again, the first makes the changelog whole with a snapshot at
    // its next batch.
    kafka::produce_to(&topic, Some(1), [(None, job("job_started", "S3", now_ms()), Vec::new())]);
    wait_until_true(Duration::from_secs(20), "the changelog whole again", || {
        first.metric("mon_changelog_behind") == Some(0.0)
    });
    // The second said goodbye when it stopped: gone from the list at once.
    wait_until_true(Duration::from_secs(10), "the second process gone from the group's list", || {
        members(&first).len() == 1
    });
    first.terminate();
    let text = std::fs::read_to_string(&log_a).unwrap();
    let errors = text.lines().filter(|l| l.contains("another process is in this process's consumer group")).count();
    assert_eq!(errors, 1, "said once when it began: {text}");
    assert!(text.contains("reads every input partition again"), "{text}");
    let fenced = text.lines().filter(|l| l.contains("changelog: another process shares this consumer group")).count();
    assert_eq!(fenced, 1, "{text}");
    assert!(text.contains("changelog: whole again"), "{text}");
}
