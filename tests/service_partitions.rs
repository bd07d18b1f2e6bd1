//! Keys and partitions, against the real broker: a producer that does not
//! key its messages by item puts one item's events on several partitions.
//! The service must say so (a metric, the status, a warning in the log),
//! not raise silent wrong alerts (docs/service.md, "Keys and partitions").

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/service.rs"]
mod service;

use std::time::Duration;

use serde_json::{json, Value};
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

/// A three-partition input, and `mon run --clock event` with
/// `state_per_partition` on it (the changelog off unless asked for): the
/// topics, the configuration, the state directory and the log.
struct PerPartition {
    topic: String,
    records: String,
    config: std::path::PathBuf,
    state: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl PerPartition {
    /// `settings`: more configuration, TOML after the `[kafka]` tables.
    fn new(dir: &std::path::Path, prefix: &str, settings: &str) -> PerPartition {
        PerPartition::with_changelog(dir, prefix, false, settings)
    }

    fn with_changelog(dir: &std::path::Path, prefix: &str, changelog: bool, settings: &str) -> PerPartition {
        let (topic, records, dead) = kafka::topic_set(prefix, 3);
        let config = service::kafka_config(dir, &kafka::brokers(), &topic, &records, &dead, &topic);
        let kafka = format!("state_per_partition = true\nchangelog = {changelog}\n[kafka.properties]");
        let text = std::fs::read_to_string(&config).unwrap().replace("[kafka.properties]", &kafka);
        std::fs::write(&config, text + settings).unwrap();
        PerPartition { topic, records, config, state: dir.join("state"), log: dir.join("mon.log") }
    }

    fn start(&self, rules: &std::path::Path) -> Service {
        let args = [
            "--config",
            self.config.to_str().unwrap(),
            "--clock",
            "event",
            "--state-dir",
            self.state.to_str().unwrap(),
            rules.to_str().unwrap(),
        ];
        Service::start(&args, &self.log)
    }
}

/// Scheduled workflows beside the trades: `feed_a`'s file comes, `feed_b`'s
/// does not. Their files arrive on every partition, and only their owner
/// (a partition fixed by the workflow's name) holds their occurrences.
const FEEDS: &str = r#"
event file_received { name: string }
workflow feed_a {
  timezone UTC
  expect file_received where name == "A" by 08:05 every day
}
workflow feed_b {
  timezone UTC
  expect file_received where name == "B" by 08:05 every day
}
"#;

fn file_event(name: &str, n: usize, time: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","type":"file_received","id":"file-{n}","source":"test","time":"2026-03-02T{time}Z","data":{{"name":"{name}"}}}}"#
    )
}

/// The partition a producer keying by trade would choose (any fixed hash
/// does; the service does not care which, only that an item keeps one).
fn partition_of(line: &str, n: usize) -> i32 {
    let value: Value = serde_json::from_str(line).unwrap();
    match value["data"]["trade_id"].as_str() {
        Some(trade) => i32::from(mon_runtime::engine::partition_for(trade, 3)),
        None => (n % 3) as i32,
    }
}

fn produce_by_partition(topic: &str, lines: &[(usize, String)]) {
    for partition in 0..3 {
        let mine: Vec<Vec<u8>> = lines
            .iter()
            .filter(|(n, l)| partition_of(l, *n) == partition)
            .map(|(_, l)| l.clone().into_bytes())
            .collect();
        to_partition(topic, partition, &mine);
    }
}

/// Whether the process has read every partition of `topic` to its end
/// (librdkafka's statistics, once a second).
fn caught_up(service: &Service, topic: &str) -> bool {
    let text = service.get("/metrics").unwrap_or_default();
    let lags: Vec<&str> = text.lines().filter(|l| l.starts_with("mon_consumer_lag{") && l.contains(topic)).collect();
    lags.len() == 3 && lags.iter().all(|l| l.ends_with(" 0"))
}

/// `[kafka] state_per_partition`: one engine and snapshot per partition
/// of a three-partition input, all in one process. Killed with SIGKILL
/// mid-stream and started again, it publishes exactly what one engine
/// (`mon simulate`) makes of the stream, each record once; the scheduled
/// workflows took their files from every partition, on their owner only;
/// each partition's snapshot is in `tasks/<partition>`; and the status
/// counts every partition's items.
///
/// On the event clock, a partition's time moves with its own events, and
/// Kafka keeps no order across partitions: a scheduled workflow's owner
/// could pass a deadline before another partition's file for it is read.
/// So the events that move the clocks past the feeds' deadlines (one per
/// partition) go only once every partition has been read to its end.
#[test]
fn state_per_partition_gives_one_engines_records_across_a_crash() {
    crash_and_restart("tasks", Restart::OnItsDisk);
}

/// The same with the changelog on, and the restart on an empty state
/// directory (a new machine): each task's state comes back from its own
/// partition of the changelog, the snapshot and the entries after it.
#[test]
fn state_per_partition_rebuilds_every_task_from_its_changelog_partition() {
    crash_and_restart("tasks-changelog", Restart::OnANewDisk);
}

#[derive(PartialEq)]
enum Restart {
    /// The changelog off; the restart finds the state directory as the
    /// crash left it.
    OnItsDisk,
    /// The changelog on; the state directory is deleted after the crash.
    OnANewDisk,
}

fn crash_and_restart(prefix: &str, restart: Restart) {
    let dir = tempfile::tempdir().unwrap();
    let mut stream = service::trade_stream(dir.path(), "3000", "0.05");
    std::fs::write(stream.rules.join("feeds.mon"), FEEDS).unwrap();
    stream.lines.pop(); // the clock event: sent below, per partition
    stream.lines.push(file_event("A", 0, "08:00:30"));
    stream.lines.push(file_event("C", 1, "08:00:40"));
    stream.lines.push(file_event("C", 2, "08:00:50"));
    let time = |l: &String| {
        let v: Value = serde_json::from_str(l).unwrap();
        mon_stdlib::time::parse_rfc3339(v["time"].as_str().unwrap()).unwrap()
    };
    stream.lines.sort_by_key(time);
    let end = mon_stdlib::time::parse_rfc3339("2026-03-02T08:10:00Z").unwrap();
    let clock = |partition: i32| {
        format!(
            r#"{{"specversion":"1.0","id":"clock-{partition}","source":"test","type":"mon_test_clock","time":"{}","data":{{}}}}"#,
            mon_stdlib::time::format_rfc3339(end + 1)
        )
    };
    let mut all = stream.lines.clone();
    all.push(clock(0));
    std::fs::write(&stream.events, all.join("\n") + "\n").unwrap();
    let until = ["--until".to_string(), mon_stdlib::time::format_rfc3339(end)];
    let simulated = service::simulate(&stream.rules, &stream.events, &until);
    let (expected, _) = service::distinct(&simulated);
    let feed = |name: &str, kind: &str| {
        expected
            .values()
            .any(|r| r.contains(&format!(r#""workflow":"{name}""#)) && r.contains(&format!(r#""kind":"{kind}""#)))
    };
    assert!(feed("feed_b", "missing") && !feed("feed_a", "missing"), "the feeds' records: {expected:#?}");

    // Snapshots during the run, so the crash comes after some: the
    // restart replays each partition from what its own snapshot covers.
    // Small batches, so that the entries after the last snapshot hold
    // every partition's events (a batch of thousands may hold one's).
    let changelog = restart == Restart::OnANewDisk;
    let settings = "[engine]\nsnapshot_every = 2000\nmax_batch = 100\n";
    let setup = PerPartition::with_changelog(dir.path(), prefix, changelog, settings);
    let (topic, records, state) = (&setup.topic, &setup.records, &setup.state);
    let numbered: Vec<(usize, String)> = stream.lines.iter().cloned().enumerate().collect();
    let half = numbered.len() / 2;

    let first = setup.start(&stream.rules);
    produce_by_partition(topic, &numbered[..half]);
    first.wait_for_events(half / 2, Duration::from_secs(60));
    first.kill9();
    for partition in 0..3 {
        assert!(state.join("tasks").join(partition.to_string()).join("snapshot.bin").exists(), "partition {partition}");
    }
    if restart == Restart::OnANewDisk {
        std::fs::remove_dir_all(state).unwrap();
    }

    let second = setup.start(&stream.rules);
    if restart == Restart::OnANewDisk {
        // Every partition held a snapshot (none is restored from nothing),
        // and entries after it (the merge of the partitions' entries ran).
        let log = std::fs::read_to_string(&setup.log).unwrap();
        let restored: Value = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "state restored from the changelog")
            .unwrap_or_else(|| panic!("no restore in {log}"));
        let covers = restored["snapshots_cover"].as_str().unwrap_or_default();
        assert!(covers.matches("Some(").count() == 3, "{restored}");
        assert!(restored["entries"].as_u64().is_some_and(|n| n > 0), "{restored}");
    }
    produce_by_partition(topic, &numbered[half..]);
    // The lag figures come once a second: the first ones after the
    // production know its end.
    std::thread::sleep(Duration::from_millis(2500));
    wait_until_true(Duration::from_secs(60), "every partition read to its end", || caught_up(&second, topic));
    for partition in 0..3 {
        to_partition(topic, partition, &[clock(partition).into_bytes()]);
    }
    let published = kafka::consume_all(records, expected.len(), Duration::from_millis(1500), Duration::from_secs(90));
    let actual: Vec<Value> =
        published.iter().map(|m| serde_json::from_slice(m.payload.as_deref().unwrap_or_default()).unwrap()).collect();
    // A record published again after the crash (the outbox is drained at
    // least once) must be the same record: `distinct` checks it.
    let (actual, _) = service::distinct(&actual);
    let missing: Vec<&String> = expected.iter().filter(|(id, r)| actual.get(*id) != Some(r)).map(|(_, r)| r).collect();
    let extra: Vec<&String> = actual.iter().filter(|(id, r)| expected.get(*id) != Some(r)).map(|(_, r)| r).collect();
    assert!(missing.is_empty() && extra.is_empty(), "not published: {missing:#?}\npublished, not expected: {extra:#?}");

    // Every partition's items are counted: what one engine counts.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mon"))
        .arg("simulate")
        .arg(&stream.rules)
        .arg("--events")
        .arg(&stream.events)
        .args(&until)
        .output()
        .unwrap();
    let summary: Value = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["kind"] == "summary" && l["workflow"] == "trade_lifecycle")
        .expect("a summary of the trades");
    wait_until_true(Duration::from_secs(10), "the status counts every partition's trades", || {
        let status: Value = serde_json::from_str(&second.get("/api/v1/status").unwrap_or_default()).unwrap_or_default();
        let workflows = status["workflows"].as_array().cloned().unwrap_or_default();
        let trades = workflows.iter().find(|w| w["name"] == "trade_lifecycle");
        trades.is_some_and(|t| {
            ["entered", "completed", "missing", "in_flight"].iter().all(|m| t["metrics"][m] == summary["metrics"][m])
        })
    });
    second.terminate();
    for partition in 0..3 {
        assert!(state.join("tasks").join(partition.to_string()).join("snapshot.bin").exists(), "partition {partition}");
    }
}

fn json_of(service: &Service, path: &str) -> Value {
    serde_json::from_str(&service.get(path).unwrap_or_default()).unwrap_or_default()
}

fn post_json(service: &Service, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = service.post(path, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// With state per partition, the API answers for every partition: the
/// alerts of jobs on three partitions, each acknowledged where it is
/// held; a stage's items; a job whose end comes on another partition is a
/// split key, counted and shown; and a rule activation reaches every
/// partition's engine, once in the history, with the items of all of them
/// carried over. After a restart, the partitions' snapshots give back the
/// same alerts.
#[test]
fn state_per_partition_answers_for_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let setup = PerPartition::new(dir.path(), "tasks-api", "");
    let topic = &setup.topic;
    let rules = service::write_job_rules(dir.path(), "1m");
    let service = setup.start(&rules);
    let t = mon_stdlib::time::parse_rfc3339("2026-03-02T08:00:00Z").unwrap();
    for (partition, name) in [(0, "J1"), (1, "J2"), (2, "J3"), (0, "J7")] {
        to_partition(topic, partition, &[job("job_started", name, t)]);
    }
    // J7 ends on another partition than it started on.
    to_partition(topic, 1, &[job("job_done", "J7", t + 1_000)]);
    wait_until_true(Duration::from_secs(30), "the split counted", || {
        service.metric("mon_split_key_events_total") == Some(1.0)
    });
    wait_until_true(Duration::from_secs(10), "the split in the status", || {
        json_of(&service, "/api/v1/status")["split_keys"]["last"]["key"] == "J7"
    });
    let split = json_of(&service, "/api/v1/status")["split_keys"].clone();
    assert_eq!((&split["last"]["owner_partition"], &split["last"]["seen_on_partition"]), (&json!(0), &json!(1)));

    // Every partition's items in one stage list.
    let items = json_of(&service, "/api/v1/workflows/jobs/stages/started/items");
    assert_eq!(items["in_stage"], 4, "{items}");

    // Each partition's time passes the deadlines: every job is missing
    // (J7 too: its end went to the other partition's engine).
    for partition in 0..3 {
        let clock = format!(
            r#"{{"specversion":"1.0","id":"clock-{partition}","source":"test","type":"mon_test_clock","time":"{}","data":{{}}}}"#,
            mon_stdlib::time::format_rfc3339(t + 300_000)
        );
        to_partition(topic, partition, &[clock.into_bytes()]);
    }
    let alerts =
        |service: &Service| json_of(service, "/api/v1/alerts")["alerts"].as_array().cloned().unwrap_or_default();
    wait_until_true(Duration::from_secs(30), "four alerts", || alerts(&service).len() == 4);
    let jobs: std::collections::BTreeSet<String> =
        alerts(&service).iter().map(|a| a["key"]["job"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(jobs, ["J1", "J2", "J3", "J7"].map(String::from).into());
    // Each partition's engine in the status: its items and its clock.
    let clock = mon_stdlib::time::format_rfc3339(t + 300_000);
    wait_until_true(Duration::from_secs(10), "each partition's items and clock in the status", || {
        let status = json_of(&service, "/api/v1/status");
        let parts = status["partitions"].as_array().cloned().unwrap_or_default();
        let items: Vec<&Value> = parts.iter().map(|p| &p["items"]).collect();
        items == [&json!(2), &json!(1), &json!(1)] && parts.iter().all(|p| p["clock"] == clock.as_str())
    });

    // J2's alert is partition 1's engine's: the acknowledgement finds it.
    let j2 = alerts(&service).into_iter().find(|a| a["key"]["job"] == "J2").unwrap();
    let (status, acked) =
        post_json(&service, &format!("/api/v1/alerts/{}/ack", j2["id"].as_str().unwrap()), json!({"by": "ann"}));
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["state"], "acknowledged", "{acked}");

    // A new version reaches every engine in one activation.
    let v2 = std::fs::read_to_string(rules.join("jobs.mon")).unwrap().replace("within 1m", "within 2m");
    let (status, stored) =
        post_json(&service, "/api/v1/rules/versions", json!({ "files": { "jobs.mon": v2 }, "author": "ana" }));
    assert_eq!(status, 201, "{stored}");
    let (status, activated) = post_json(&service, "/api/v1/rules/versions/2/activate", json!({ "by": "ana" }));
    assert_eq!(status, 200, "{activated}");
    assert_eq!(activated["migration"]["carried_count"], 4, "every partition's open jobs: {activated}");
    let history = json_of(&service, "/api/v1/rules/activations");
    let entries = history["activations"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        entries.iter().filter(|e| e["version"] == 2).count(),
        1,
        "one activation, not one per partition: {history}"
    );
    service.terminate();

    // The partitions' snapshots give back the alerts, J2's acknowledged.
    let again = setup.start(&rules);
    assert_eq!(json_of(&again, "/api/v1/rules/versions")["active"], 2);
    let alerts_now = alerts(&again);
    assert_eq!(alerts_now.len(), 4, "{alerts_now:#?}");
    let j2 = alerts_now.iter().find(|a| a["key"]["job"] == "J2").unwrap();
    assert_eq!(j2["state"], "acknowledged", "{j2}");
    again.terminate();
}

/// A state snapshotted before any event (on the event clock no engine
/// has started: only a rejected line came) still knows which partition
/// each snapshot is after a restart, and goes on.
#[test]
fn state_per_partition_restarts_from_snapshots_made_before_any_event() {
    let dir = tempfile::tempdir().unwrap();
    let setup = PerPartition::new(dir.path(), "tasks-idle", "");
    let (topic, state) = (&setup.topic, &setup.state);
    let rules = service::write_job_rules(dir.path(), "1h");
    let service = setup.start(&rules);
    to_partition(topic, 0, &[b"not an event".to_vec()]);
    service.wait_for_events(1, Duration::from_secs(30));
    assert_eq!(service.terminate(), Some(0));
    assert!(state.join("tasks/2/snapshot.bin").exists());
    let again = setup.start(&rules);
    to_partition(topic, 1, &[job("job_started", "J1", now_ms())]);
    wait_until_true(Duration::from_secs(10), "J1 in flight after the restart", || {
        json_of(&again, "/api/v1/status")["workflows"][0]["metrics"]["in_flight"] == 1
    });
    again.terminate();
}

/// On the event clock the engines of all partitions start at the first
/// event any of them sees: a scheduled workflow's owner whose own first
/// event comes after a deadline still expects that day's occurrence, as
/// one engine would. And after an activation that adds a scheduled
/// workflow, its events are handed to its owner from any partition.
#[test]
fn state_per_partition_starts_together_and_hands_over_after_an_activation() {
    let owner_a = i32::from(mon_runtime::engine::owner("feed_a", 3));
    // The second feed's owner is another partition than the first's, so
    // its events must be handed to another engine than before.
    let feed_b = ["feed_b", "feed_c", "feed_d", "feed_e", "feed_f"]
        .into_iter()
        .find(|name| i32::from(mon_runtime::engine::owner(name, 3)) != owner_a)
        .unwrap();
    let owner_b = i32::from(mon_runtime::engine::owner(feed_b, 3));
    let other = |owner: i32| (owner + 1) % 3;
    let dir = tempfile::tempdir().unwrap();
    let setup = PerPartition::new(dir.path(), "tasks-start", "");
    let (topic, records) = (&setup.topic, &setup.records);
    let rules = service::write_job_rules(dir.path(), "1h");
    let jobs = std::fs::read_to_string(rules.join("jobs.mon")).unwrap();
    let feeds = |names: &[&str]| {
        let mut text = jobs.clone();
        text.push_str("event file_received { name: string }\n");
        for name in names {
            let letter = name.trim_start_matches("feed_").to_uppercase();
            text.push_str(&format!(
                "workflow {name} {{\n  timezone UTC\n  expect file_received where name == \"{letter}\" by 08:{} every day\n}}\n",
                if letter == "A" { "01" } else { "10" }
            ));
        }
        text
    };
    std::fs::write(rules.join("jobs.mon"), feeds(&["feed_a"])).unwrap();
    let service = setup.start(&rules);
    let at = |hhmm: &str| mon_stdlib::time::parse_rfc3339(&format!("2026-03-02T{hhmm}:00Z")).unwrap();
    // The first event is not the owner's; the owner's first comes at 08:03.
    to_partition(topic, other(owner_a), &[job("job_started", "J1", at("08:00"))]);
    service.wait_for_events(1, Duration::from_secs(30));
    to_partition(topic, owner_a, &[job("job_started", "J2", at("08:03"))]);
    service.wait_for_events(2, Duration::from_secs(30));

    // The second feed comes with version 2; its file on another partition
    // than its owner's.
    let (status, stored) =
        post_json(&service, "/api/v1/rules/versions", json!({ "files": { "jobs.mon": feeds(&["feed_a", feed_b]) } }));
    assert_eq!(status, 201, "{stored}");
    let (status, activated) = post_json(&service, "/api/v1/rules/versions/2/activate", json!({ "by": "ana" }));
    assert_eq!(status, 200, "{activated}");
    let letter = feed_b.trim_start_matches("feed_").to_uppercase();
    let file_b = format!(
        r#"{{"specversion":"1.0","id":"file-b","source":"test","type":"file_received","time":"2026-03-02T08:05:00Z","data":{{"name":"{letter}"}}}}"#
    );
    to_partition(topic, other(owner_b), &[file_b.into_bytes()]);
    service.wait_for_events(3, Duration::from_secs(30));
    for partition in 0..3 {
        let clock = format!(
            r#"{{"specversion":"1.0","id":"clock-{partition}","source":"test","type":"mon_test_clock","time":"{}","data":{{}}}}"#,
            mon_stdlib::time::format_rfc3339(at("08:20"))
        );
        to_partition(topic, partition, &[clock.into_bytes()]);
    }
    let published = kafka::consume_all(records, 1, Duration::from_millis(2000), Duration::from_secs(30));
    let kinds: Vec<(String, String)> = published
        .iter()
        .filter_map(|m| serde_json::from_slice::<Value>(m.payload.as_deref()?).ok())
        .filter(|r| r["workflow"].as_str().is_some_and(|w| w.starts_with("feed_")))
        .map(|r| (r["workflow"].as_str().unwrap().to_string(), r["kind"].as_str().unwrap().to_string()))
        .collect();
    assert!(kinds.contains(&("feed_a".into(), "missing".into())), "the owner expected 08:01's file: {kinds:?}");
    assert!(!kinds.iter().any(|(w, k)| w == feed_b && k == "missing"), "{feed_b}'s file reached its owner: {kinds:?}");
    // Handed to its owner, the file is still stored once, by its own
    // partition's engine.
    let stored = |service: &Service| {
        let events =
            json_of(service, "/api/v1/events?type=file_received")["events"].as_array().cloned().unwrap_or_default();
        events.iter().filter(|e| e["id"] == "file-b").count()
    };
    wait_until_true(Duration::from_secs(10), "the file in the event store", || stored(&service) > 0);
    assert_eq!(stored(&service), 1);
    service.terminate();
}

/// A changelog written by one state (everything on partition 0, entries
/// without task markers) is not taken for the tasks' when the same group
/// starts with state per partition on a new state directory: the start is
/// refused, naming the topic and the way out, rather than restoring one
/// state's snapshot as partition 0's task and nothing for the others.
#[test]
fn a_changelog_written_by_one_state_is_refused_by_state_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let setup = PerPartition::with_changelog(dir.path(), "tasks-layout", true, "");
    let rules = service::write_job_rules(dir.path(), "1h");
    let per_partition = std::fs::read_to_string(&setup.config).unwrap();
    let one_state = per_partition.replace("state_per_partition = true", "state_per_partition = false");
    std::fs::write(&setup.config, &one_state).unwrap();
    let service = setup.start(&rules);
    to_partition(&setup.topic, 1, &[job("job_started", "J1", now_ms())]);
    service.wait_for_events(1, Duration::from_secs(30));
    // A clean stop leaves a snapshot in the changelog.
    assert_eq!(service.terminate(), Some(0));

    std::fs::write(&setup.config, per_partition).unwrap();
    let log = dir.path().join("refused.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["run", "--config", setup.config.to_str().unwrap(), "--clock", "event", "--state-dir"])
        .arg(dir.path().join("new-state"))
        .arg(&rules)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let waited = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if waited.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.is_some_and(|s| !s.success()), "the start went on: {stderr}");
    let topic = format!("{}.changelog", setup.topic);
    assert!(stderr.contains(&format!("the changelog {topic}, partition 0")), "{stderr}");
    assert!(stderr.contains("delete the topic"), "{stderr}");
}
