//! What an operator meets when running `mon run` for real, against the
//! tansu broker (scripts/kafka-broker): topics that appear after the start
//! or that `--create-topics` makes, an unreachable broker, and the log
//! lines themselves.

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/service.rs"]
mod service;

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use serde_json::Value;
use service::Service;

/// The partition count of `topic`, or `None` if the broker does not know it.
fn partitions_of(topic: &str) -> Option<usize> {
    let client: BaseConsumer = kafka::client_config().create().expect("metadata client");
    let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()).map(|t| t.partitions().len())
}

/// `/readyz`'s status and reasons.
fn readiness(service: &Service) -> (u16, Vec<String>) {
    let (status, body) = service.get_any("/readyz").expect("GET /readyz");
    let body: Value = serde_json::from_str(&body).expect("readyz is JSON");
    let reasons = body["reasons"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(String::from));
    (status, reasons.collect())
}

/// Polls until `check` holds, or panics after `limit` with `what`.
fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {limit:?}");
}

#[test]
fn readiness_follows_a_topic_created_after_the_start() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let topic = kafka::unique_topic("ops-late");
    let rules = service::write_job_rules(dir.path(), "1m");
    let config = service::kafka_config(
        dir.path(),
        &brokers,
        &topic,
        &format!("{topic}.records"),
        &format!("{topic}.dead"),
        &topic,
    );
    let state = dir.path().join("state");
    let service = Service::spawn(
        &[
            "--config",
            &config.display().to_string(),
            "--state-dir",
            &state.display().to_string(),
            &rules.display().to_string(),
        ],
        &dir.path().join("mon.log"),
    );
    // Not ready, and saying why: the topic is missing.
    wait_for(Duration::from_secs(15), "readiness names the missing topic", || {
        let (status, reasons) = readiness(&service);
        status == 503 && reasons.iter().any(|r| r.contains("Subscribed topic not available") && r.contains(&topic))
    });

    kafka::create_topic(&topic, 1);
    // librdkafka's own refresh (5 min) would leave it unready for minutes;
    // mon looks every 5 s and the group join takes about 1 s here.
    let took = wait_for(Duration::from_secs(12), "ready after the topic was created", || readiness(&service).0 == 200);
    eprintln!("ready {took:?} after the topic was created");

    kafka::produce_lines(&topic, &[service::job_started(1, service::now_ms())]);
    wait_for(Duration::from_secs(10), "the event is consumed", || service.metric_sum("mon_events_total") >= 1.0);
    assert_eq!(service.terminate(), Some(0));
}

#[test]
fn create_topics_makes_the_missing_topics_and_leaves_existing_ones() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let topic = kafka::unique_topic("ops-create");
    let (records, dead) = (format!("{topic}.records"), format!("{topic}.dead"));
    let rules = service::write_job_rules(dir.path(), "1s");
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[kafka.create_topics]\npartitions = 2\n");
    std::fs::write(&config, text).unwrap();
    for name in [&topic, &records, &dead] {
        assert_eq!(partitions_of(name), None, "{name} exists before the test");
    }

    let state = dir.path().join("state");
    let log = dir.path().join("mon.log");
    let args = [
        "--config",
        &config.display().to_string(),
        "--create-topics",
        "--state-dir",
        &state.display().to_string(),
        &rules.display().to_string(),
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let service = Service::start(&args, &log);
    for name in [&topic, &records, &dead] {
        assert_eq!(partitions_of(name), Some(2), "{name} was created with kafka.create_topics.partitions");
    }
    kafka::produce_lines(&topic, &[service::job_started(1, service::now_ms())]);
    let published = kafka::consume_all(&records, 1, Duration::from_millis(300), Duration::from_secs(20));
    assert!(
        published.iter().any(|m| String::from_utf8_lossy(m.payload.as_deref().unwrap_or_default()).contains("J1")),
        "the `missing` record of J1 on {records}: {published:?}"
    );
    assert_eq!(service.terminate(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(checked(&text).is_some_and(|c| c["created"].as_str().unwrap_or("").contains(&dead)), "{text}");

    // Again: everything exists now, and that is fine.
    let service = Service::start(&args, &log);
    assert_eq!(service.terminate(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().rfind(|l| l.contains("kafka topics checked")).expect("a second check");
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["created"], "", "{last}");
    assert!(last["existing"].as_str().unwrap_or("").contains(&records), "{last}");
}

/// The first "kafka topics checked" line of a JSON log.
fn checked(log: &str) -> Option<Value> {
    let line = log.lines().find(|l| l.contains("kafka topics checked"))?;
    serde_json::from_str(line).ok()
}

#[test]
fn an_unreachable_broker_is_logged_a_few_times_and_named_by_readiness() {
    let dir = tempfile::tempdir().unwrap();
    // Bound and released: nothing listens there, so every connection is refused.
    let nowhere = service::free_address();
    let rules = service::write_job_rules(dir.path(), "1m");
    let state = dir.path().join("state");
    let log = dir.path().join("mon.log");
    let service = Service::spawn(
        &[
            "--brokers",
            &nowhere,
            "--topics",
            "events",
            "--state-dir",
            &state.display().to_string(),
            &rules.display().to_string(),
        ],
        &log,
    );
    // librdkafka reports the failure about 20 times a second.
    std::thread::sleep(Duration::from_secs(6));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text.lines().count();
    assert!(lines <= 12, "{lines} log lines in 6 s:\n{text}");
    let (status, reasons) = readiness(&service);
    assert_eq!(status, 503);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("Kafka client errors since") && r.contains("brokers are down") || r.contains(&nowhere)),
        "{reasons:?}"
    );
    assert!(service.metric_sum("mon_kafka_errors_total") >= 10.0, "{:?}", service.get("/metrics"));
    assert_eq!(service.terminate(), Some(0));
}
