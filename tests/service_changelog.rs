//! The state changelog against a real broker and real state directories:
//! a `mon run` killed with SIGKILL whose state directory is then deleted
//! is rebuilt by a new process on an empty directory from the changelog
//! topic alone, and goes on exactly where the lost one stopped: the same
//! records as an uninterrupted `mon simulate`, and each notification sent
//! once (docs/notes/durability.md, "The changelog").

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/receivers.rs"]
mod receivers;
#[path = "support/service.rs"]
mod service;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use receivers::{wait_until, HttpReceiver};
use serde_json::Value;
use service::Service;

fn run_args<'a>(config: &'a str, state: &'a str, rules: &'a str) -> Vec<&'a str> {
    vec!["--config", config, "--clock", "event", "--state-dir", state, rules]
}

/// The changelog's keys as they are in the topic now (latest per key,
/// tombstones removing theirs).
fn changelog_keys(topic: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for message in kafka::consume_all(topic, 0, Duration::from_millis(300), Duration::from_secs(10)) {
        let key = String::from_utf8(message.key.unwrap_or_default()).unwrap();
        match message.payload {
            Some(_) => keys.insert(key),
            None => keys.remove(&key),
        };
    }
    keys
}

#[test]
fn a_process_on_an_empty_state_dir_rebuilds_the_state_from_the_changelog_and_loses_and_adds_nothing() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let stream = service::trade_stream(dir.path(), "10000", "0.03");
    let lines = &stream.lines;
    assert!(lines.len() >= 45_000, "{} events", lines.len());
    let rules = stream.rules.clone();
    let expected = stream.expected();
    assert!(expected.len() > 100, "the stream should make records throughout ({})", expected.len());

    let (topic, records, dead) = kafka::topic_set("changelog", 1);
    kafka::produce_lines(&topic, lines);

    // Small batches and frequent snapshots: the kill lands after several
    // snapshots and between two, with entries after the last one.
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[engine]\nmax_batch = 400\nsnapshot_every = 4000\n");
    std::fs::write(&config, text).unwrap();
    let config = config.display().to_string();
    let rules = rules.display().to_string();
    let first_state = dir.path().join("first");
    let log = dir.path().join("mon.log");

    let first_state_arg = first_state.display().to_string();
    let first = Service::start(&run_args(&config, &first_state_arg, &rules), &log);
    // Killed mid-stream: a third of the way in, or later if it is slow.
    let consumed_by_first = first.wait_for_events(lines.len() / 3, Duration::from_secs(60));
    first.kill9();
    assert!(consumed_by_first < lines.len() as f64, "killed after the end ({consumed_by_first} events)");
    // The disk is lost.
    std::fs::remove_dir_all(&first_state).unwrap();
    let keys = changelog_keys(&format!("{topic}.changelog"));
    assert!(keys.contains("s"), "a snapshot header is in the changelog: {keys:?}");

    let second_state = dir.path().join("second").display().to_string();
    let second = Service::start(&run_args(&config, &second_state, &rules), &log);
    // Entries after the snapshot, or none when the kill came right after
    // one: the restore is seen in the bytes read.
    let restored = second.metric_sum("mon_changelog_restored_entries_total");
    assert!(second.metric_sum("mon_changelog_restored_bytes_total") > 0.0, "the second process restored its state");
    let published = kafka::consume_all(&records, expected.len(), Duration::from_secs(3), Duration::from_secs(120));
    // The event store is not in the changelog: it is refilled from the
    // input, up to where the snapshot ended, beside the processing. The
    // first trade's events were all before the kill's snapshot.
    let parsed: Vec<Value> = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let first_trade = parsed.iter().find_map(|v| v["data"]["trade_id"].as_str()).unwrap().to_string();
    let of_first: BTreeSet<String> = parsed
        .iter()
        .filter(|v| v["data"]["trade_id"] == first_trade.as_str())
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect();
    let path = format!("/api/v1/events?workflow=trade_lifecycle&key={first_trade}&limit=100");
    let found = || -> BTreeSet<String> {
        let page = second.get(&path).and_then(|text| serde_json::from_str::<Value>(&text).ok()).unwrap_or_default();
        let events = page["events"].as_array().cloned().unwrap_or_default();
        events.iter().filter_map(|e| e["id"].as_str().map(str::to_string)).collect()
    };
    wait_until(Duration::from_secs(60), "the first trade's events refilled", || {
        second.metric_sum("mon_refill_running") == 0.0 && found() == of_first
    });
    assert!(second.metric_sum("mon_refilled_total") > 0.0, "the refill read the input");
    assert_eq!(second.terminate(), Some(0), "a clean stop after the restore");
    let published: Vec<Value> = published
        .iter()
        .map(|m| serde_json::from_slice(m.payload.as_deref().unwrap_or_default()).expect("a record is JSON"))
        .collect();
    let (actual, repeats) = service::distinct(&published);
    eprintln!(
        "changelog test: {} events, killed after {consumed_by_first} consumed, {restored} entries restored, {} \
         distinct records, {repeats} repeated deliveries",
        lines.len(),
        actual.len()
    );
    let lost: Vec<&String> = expected.keys().filter(|id| !actual.contains_key(*id)).collect();
    let extra: Vec<&String> = actual.keys().filter(|id| !expected.contains_key(*id)).collect();
    assert!(lost.is_empty(), "{} records lost, e.g. {:?}", lost.len(), lost.iter().take(3).collect::<Vec<_>>());
    assert!(
        extra.is_empty(),
        "{} records not in the uninterrupted run, e.g. {:?}",
        extra.len(),
        &extra[..3.min(extra.len())]
    );
    assert_eq!(actual, expected, "the same records, with the same content");
}

const MINUTE: i64 = 60_000;

fn at(start: i64, offset_ms: i64) -> String {
    mon_stdlib::time::format_rfc3339(start + offset_ms)
}

fn placed(start: i64, n: usize, book: &str, offset_ms: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"p-{n}","source":"oms","type":"placed","time":"{}","data":{{"id":"T{n}","book":"{book}"}}}}"#,
        at(start, offset_ms)
    )
}

fn booked(start: i64, n: usize, offset_ms: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"b-{n}","source":"oms","type":"booked","time":"{}","data":{{"id":"T{n}"}}}}"#,
        at(start, offset_ms)
    )
}

fn tick(start: i64, offset_ms: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"tick-{offset_ms}","source":"clock","type":"tick","time":"{}","data":{{}}}}"#,
        at(start, offset_ms)
    )
}

/// An event no rule uses at `offset_ms`: an input that moves nothing.
fn filler(start: i64, n: usize, offset_ms: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"filler-{n}","source":"clock","type":"tick","time":"{}","data":{{}}}}"#,
        at(start, offset_ms)
    )
}

/// The notification ids `mon simulate --notifications` gives for `events`.
fn simulated_ids(rules: &Path, events: &[String], file: &Path) -> BTreeSet<String> {
    std::fs::write(file, events.join("\n")).unwrap();
    service::simulated_notification_ids(rules, file)
}

fn post_lines(service: &Service, lines: &[String]) {
    // One line per request: one batch each, so snapshots fall between them.
    for line in lines {
        let (status, body) = service.post("/api/v1/events", line);
        assert_eq!(status, 200, "{body}");
    }
}

/// How the first process's notifications stand when its disk is lost.
#[derive(PartialEq)]
enum BeforeTheKill {
    /// Sent and marked, with no snapshot since: the restored process makes
    /// them again in its replay, and only the marks hold them back.
    SentAndMarked,
    /// Still pending (the receiver is down) and held by a snapshot: the
    /// restored process gets them from the snapshot and sends them.
    PendingInASnapshot,
}

#[test]
fn a_notification_sent_before_the_disk_was_lost_is_not_sent_again_by_the_restored_process() {
    notifications_across_a_lost_disk(BeforeTheKill::SentAndMarked);
}

#[test]
fn a_notification_pending_in_a_snapshot_is_sent_once_by_the_restored_process() {
    notifications_across_a_lost_disk(BeforeTheKill::PendingInASnapshot);
}

/// Phase one to a first process, which is killed and its state directory
/// deleted; phase two to a second process on a new directory. The webhook
/// receiver must get every notification `mon simulate` makes, each once.
fn notifications_across_a_lost_disk(case: BeforeTheKill) {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hook_address = service::free_address();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("trade.mon"),
        format!(
            "event placed {{ id: string, book: string }}\nevent booked {{ id: string }}\n\
             channel desk webhook \"http://{hook_address}/hook\"\n\
             workflow trade {{\n  key id\n  group by book\n  notify desk\n  expect placed\n  then booked within 1m\n}}\n"
        ),
    )
    .unwrap();
    let start = service::now_ms() / MINUTE * MINUTE - 60 * MINUTE;
    let books = ["FX", "EQ", "RATES", "CREDIT"];
    // Phase one: trades of four books stall (one firing message per book),
    // then events no rule uses at the same instant, so that a snapshot
    // taken every 7 inputs comes after the last notification.
    let mut before: Vec<String> = (0..40).map(|n| placed(start, n, books[n % 4], n as i64 * 100)).collect();
    before.extend((1..=3).map(|n| tick(start, n * 2 * MINUTE)));
    before.extend((0..8).map(|n| filler(start, n, 6 * MINUTE)));
    // Phase two, after the restore: they are booked late and resolve.
    let mut after: Vec<String> = (0..40).map(|n| booked(start, n, 10 * MINUTE + n as i64 * 100)).collect();
    after.extend((1..=6).map(|n| tick(start, 10 * MINUTE + n * 5 * MINUTE)));
    let all: Vec<String> = before.iter().chain(&after).cloned().collect();
    let expected_before = simulated_ids(&rules, &before, &dir.path().join("before.ndjson"));
    let expected = simulated_ids(&rules, &all, &dir.path().join("all.ndjson"));
    assert!(expected_before.len() >= 4, "a firing message per book: {expected_before:?}");
    assert!(expected.len() > expected_before.len(), "more messages after the restore: {expected:?}");

    let (topic, records, dead) = kafka::topic_set("changelog-notify", 1);
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic);
    if case == BeforeTheKill::PendingInASnapshot {
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str("[engine]\nsnapshot_every = 7\n[alerts.delivery]\nretry_initial_ms = 100\nretry_max_ms = 300\n");
        std::fs::write(&config, text).unwrap();
    }
    let config = config.display().to_string();
    let rules_arg = rules.display().to_string();
    let log = dir.path().join("mon.log");
    let first_state = dir.path().join("first");
    let first_state_arg = first_state.display().to_string();
    let changelog = format!("{topic}.changelog");
    let ids = |hook: &HttpReceiver| -> Vec<String> {
        hook.requests().iter().map(|r| r.header("idempotency-key").unwrap_or_default().to_string()).collect()
    };

    let hook = match case {
        BeforeTheKill::SentAndMarked => Some(runtime.block_on(HttpReceiver::start_on(&hook_address))),
        BeforeTheKill::PendingInASnapshot => None,
    };
    let first = Service::start(&run_args(&config, &first_state_arg, &rules_arg), &log);
    post_lines(&first, &before);
    match &hook {
        Some(hook) => {
            wait_until(Duration::from_secs(30), "the first process to send the firing messages", || {
                ids(hook).len() >= expected_before.len()
            });
            // Each send is marked in the changelog after the receiver answered.
            wait_until(Duration::from_secs(30), "the delivery marks in the changelog", || {
                let marked = changelog_keys(&changelog).into_iter().filter(|k| k.starts_with("n/")).count();
                marked + tombstoned_marks(&changelog) >= expected_before.len()
            });
            assert!(changelog_keys(&changelog).iter().any(|k| k.starts_with("j/")), "no snapshot: entries remain");
        }
        None => {
            wait_until(Duration::from_secs(30), "the firing messages pending, tried and failed", || {
                pending_attempted(&first) >= expected_before.len()
            });
            // A snapshot covers the entries that made the notifications (one
            // per request, the ticks last), so the restored process gets
            // them from the snapshot, not from its replay.
            let last_tick = (before.len() - 8) as u64;
            wait_until(Duration::from_secs(30), "a snapshot after the last tick", || {
                snapshot_covered(&changelog).is_some_and(|covered| covered >= last_tick)
            });
        }
    }
    first.kill9();
    std::fs::remove_dir_all(&first_state).unwrap();

    let hook = hook.unwrap_or_else(|| runtime.block_on(HttpReceiver::start_on(&hook_address)));
    let second_state = dir.path().join("second").display().to_string();
    let second = Service::start(&run_args(&config, &second_state, &rules_arg), &log);
    assert!(
        second.metric_sum("mon_changelog_restored_entries_total") > 0.0
            || second.metric_sum("mon_changelog_restored_bytes_total") > 0.0,
        "restored from the changelog"
    );
    post_lines(&second, &after);
    wait_until(Duration::from_secs(60), "every notification to arrive", || {
        ids(&hook).into_iter().collect::<BTreeSet<_>>() == expected
    });
    // Time for a repeat to show, if one were coming.
    std::thread::sleep(Duration::from_secs(2));
    let received = ids(&hook);
    let distinct: BTreeSet<String> = received.iter().cloned().collect();
    assert_eq!(distinct, expected, "the webhook got each notification");
    assert_eq!(received.len(), distinct.len(), "a notification was sent twice across the restore: {received:?}");
    let sent_by_second = second.metric_sum("mon_notifications_sent_total") as usize;
    let sent_by_first = match case {
        BeforeTheKill::SentAndMarked => expected_before.len(),
        BeforeTheKill::PendingInASnapshot => 0,
    };
    assert_eq!(sent_by_second, expected.len() - sent_by_first, "what the second process sent");
    assert_eq!(second.terminate(), Some(0));
}

/// The `covered` of the changelog's snapshot header, if it has one.
fn snapshot_covered(topic: &str) -> Option<u64> {
    let messages = kafka::consume_all(topic, 0, Duration::from_millis(300), Duration::from_secs(10));
    let header = messages.iter().rev().find(|m| m.key.as_deref() == Some(b"s".as_slice()))?;
    let header: Value = serde_json::from_slice(header.payload.as_deref()?).ok()?;
    header["covered"].as_u64()
}

/// Pending notifications that have been tried at least once.
fn pending_attempted(service: &Service) -> usize {
    let text = service.get("/api/v1/notifications?state=pending&limit=1000").unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or_default();
    let list = value["notifications"].as_array().cloned().unwrap_or_default();
    list.iter().filter(|n| n["attempts"].as_u64().unwrap_or(0) >= 1).count()
}

/// Marks deleted by a snapshot (its pending list no longer needs them)
/// count as written: a tombstone follows its mark.
fn tombstoned_marks(topic: &str) -> usize {
    let messages = kafka::consume_all(topic, 0, Duration::from_millis(300), Duration::from_secs(10));
    messages.iter().filter(|m| m.payload.is_none() && m.key.as_deref().is_some_and(|k| k.starts_with(b"n/"))).count()
}

#[test]
fn a_changelog_record_it_cannot_read_stops_the_start_naming_topic_partition_and_offset() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let rules = service::write_job_rules(dir.path(), "1m");
    let topic = kafka::unique_topic("changelog-bad");
    let (records, dead, changelog) =
        (format!("{topic}.records"), format!("{topic}.dead"), format!("{topic}.changelog"));
    for t in [&topic, &records, &dead, &changelog] {
        kafka::create_topic(t, 1);
    }
    // A journal entry whose frame is cut short (a format byte, part 0 of 1,
    // and no frame).
    kafka::produce(
        &changelog,
        [(Some(b"j/00000000000000000000".to_vec()), b"\x01\x00\x00\x00\x01".to_vec(), Vec::new())],
    );
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic);
    let state = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["run", "--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap()])
        .args(["--listen", &service::free_address(), "--log-format", "json", rules.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start mon run");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("mon run started on a changelog it cannot read");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    // Its offset is named, with what is wrong and what to do.
    assert!(log.contains(&format!("the changelog {changelog}, partition 0, offset 0")), "{log}");
    assert!(log.contains("journal entry 0") && log.contains("delete the topic"), "{log}");
}

/// With the changelog's broker down (librdkafka's mock cluster, whose
/// brokers can be stopped without losing the test broker's data), the
/// service stays up: the first batch waits out `message.timeout.ms`, the
/// changelog is behind (`mon_changelog_behind` 1) and later batches do not
/// wait; once the broker is back, a snapshot makes it whole again.
#[test]
fn while_its_broker_is_down_the_changelog_is_behind_and_a_snapshot_makes_it_whole_again() {
    use rdkafka::mocking::{MockCluster, MockCoordinator};
    let mock = MockCluster::new(2).expect("start the mock cluster");
    let brokers = mock.bootstrap_servers();
    let (topic, records, dead, group) = ("in", "out.records", "out.dead", "mon-mock-changelog");
    let changelog = format!("{group}.changelog");
    for t in [topic, records, dead] {
        mock.create_topic(t, 1, 1).expect("create a topic");
        mock.partition_leader(t, 0, Some(1)).expect("its leader");
    }
    // Only the changelog's partition is on broker 2.
    mock.create_topic(&changelog, 1, 1).expect("create the changelog");
    mock.partition_leader(&changelog, 0, Some(2)).expect("the changelog's leader");
    mock.coordinator(MockCoordinator::Group(group.into()), 1).expect("group coordinator");

    let dir = tempfile::tempdir().unwrap();
    let rules = service::write_job_rules(dir.path(), "1h");
    let config = dir.path().join("mon.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{group}\"\n\
             records_topic = \"{records}\"\ndead_letter_topic = \"{dead}\"\n\
             [kafka.properties]\n\"message.timeout.ms\" = \"2000\"\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state").display().to_string();
    let (config, rules) = (config.display().to_string(), rules.display().to_string());
    let service = Service::start(&run_args(&config, &state, &rules), &dir.path().join("mon.log"));
    let now = service::now_ms();
    let post = |n: usize| {
        let started = Instant::now();
        let (status, body) = service.post("/api/v1/events", &service::job_started(n, now + n as i64));
        assert_eq!(status, 200, "{body}");
        started.elapsed()
    };
    post(0);
    assert_eq!(service.metric("mon_changelog_behind"), Some(0.0));
    assert!(service.metric("mon_changelog_produce_seconds_count").unwrap_or(0.0) >= 1.0, "the entry was acknowledged");

    mock.broker_down(2).expect("broker 2 down");
    let waited = post(1);
    assert!(waited >= Duration::from_millis(1500), "the batch waited for the acknowledgement ({waited:?})");
    assert_eq!(service.metric("mon_changelog_behind"), Some(1.0), "behind after an unacknowledged entry");
    let waited = post(2);
    assert!(waited < Duration::from_millis(1500), "a batch does not wait while the changelog is behind ({waited:?})");
    assert_eq!(service.get("/healthz").as_deref(), Some("ok\n"), "alive while the changelog's broker is down");

    mock.broker_up(2).expect("broker 2 up");
    // The next batch after the retry interval (30 s) tries a snapshot.
    let back = Instant::now();
    let mut n = 3;
    while service.metric("mon_changelog_behind") != Some(0.0) {
        assert!(back.elapsed() < Duration::from_secs(60), "the changelog stayed behind after the broker came back");
        post(n);
        n += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(dir.path().join("mon.log")).unwrap();
    assert!(log.contains("changelog: whole again"), "{log}");
    assert_eq!(service.terminate(), Some(0));
}

/// A version stored and activated through the API lives in the state
/// directory's rules store. Lost with the disk, a restored process would
/// replay a journal that activates a version it does not have, and run
/// the rules directory's instead. The changelog keeps the rules store too.
#[test]
fn a_version_activated_through_the_api_survives_a_lost_disk() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let (topic, records, dead) = kafka::topic_set("changelog-rules", 1);
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic).display().to_string();
    let rules = service::write_job_rules(dir.path(), "1h").display().to_string();
    let log = dir.path().join("mon.log");
    let first_state = dir.path().join("first").display().to_string();
    let first = Service::start(&run_args(&config, &first_state, &rules), &log);

    let v2 = "event job_started { job: string }\nevent job_done { job: string }\n\n\
              workflow jobs {\n  key job\n  start started: job_started\n  step done: job_done after started within 2h\n}\n\n\
              workflow jobs_seen {\n  key job\n  expect job_started\n}\n";
    let body = serde_json::json!({ "files": { "jobs.mon": v2 }, "message": "a second workflow" }).to_string();
    let (status, stored) = first.post("/api/v1/rules/versions", &body);
    assert_eq!(status, 201, "{stored}");
    let (status, activated) = first.post("/api/v1/rules/versions/2/activate", r#"{"message":"go"}"#);
    assert_eq!(status, 200, "{activated}");
    let start = mon_stdlib::time::parse_rfc3339("2026-03-02T08:00:00Z").unwrap();
    post_lines(&first, &[service::job_started(1, start)]);
    first.kill9();
    std::fs::remove_dir_all(&first_state).unwrap();

    // The same rules directory (version 1), a new disk.
    let second_state = dir.path().join("second").display().to_string();
    let second = Service::start(&run_args(&config, &second_state, &rules), &log);
    let versions: Value = serde_json::from_str(&second.get("/api/v1/rules/versions").unwrap()).unwrap();
    assert_eq!(versions["active"], 2, "{versions}");
    assert_eq!(versions["versions"][0]["message"], "a second workflow", "{versions}");
    let workflows: Value = serde_json::from_str(&second.get("/api/v1/workflows").unwrap()).unwrap();
    let names: Vec<&str> =
        workflows["workflows"].as_array().unwrap().iter().filter_map(|w| w["name"].as_str()).collect();
    assert_eq!(names, ["jobs", "jobs_seen"], "{workflows}");
    // And the item started under version 2 is there, in both workflows.
    for workflow in ["jobs", "jobs_seen"] {
        let item = second.get(&format!("/api/v1/workflows/{workflow}/items/J1"));
        assert!(item.is_some(), "{workflow}: J1 restored");
    }
    second.terminate();
}
