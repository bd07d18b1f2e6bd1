//! Durability of `mon run` against a real broker and real sled files:
//! SIGKILL at random points while events flow loses nothing and makes no
//! record twice with different content; a deadline that passes while the
//! service is down is reported once, at the next start.

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/rng.rs"]
mod rng;
#[path = "support/service.rs"]
mod service;

use std::time::{Duration, Instant};

use rng::SplitMix64;
use serde_json::Value;
use service::Service;

fn records_of(messages: &[kafka::Message]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| serde_json::from_slice(m.payload.as_deref().unwrap_or_default()).expect("a record is JSON"))
        .collect()
}

fn run_args<'a>(config: &'a str, state: &'a str, rules: &'a str, clock: &'a str) -> Vec<&'a str> {
    vec!["--config", config, "--clock", clock, "--state-dir", state, rules]
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_repeats_nothing_with_other_content() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let stream = service::trade_stream(dir.path(), "40000", "0.03");
    let lines = &stream.lines;
    assert!(lines.len() >= 190_000, "{} events", lines.len());
    let rules = stream.rules.clone();
    let expected = stream.expected();
    assert!(expected.len() > 500, "the stream should make records throughout ({})", expected.len());

    let (topic, records, dead) = kafka::topic_set("crash", 1);
    kafka::produce_lines(&topic, lines);

    // Small batches: more commits, so more places for a kill to land.
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[engine]\nmax_batch = 400\nsnapshot_every = 40000\n");
    std::fs::write(&config, text).unwrap();
    let (config, state, rules) =
        (config.display().to_string(), dir.path().join("state").display().to_string(), rules.display().to_string());
    let args = run_args(&config, &state, &rules, "event");
    let log = dir.path().join("mon.log");

    // A fixed seed, so a failing run can be repeated.
    let mut rng = SplitMix64::new(7);
    let mut kills = 0;
    let mut mid_stream = 0;
    let started = Instant::now();
    // Kill until at least 22 kills landed while events were still being
    // consumed. The stream takes a second or two of processing in all, so
    // a kill at a random time after the start would mostly land after the
    // end: each life is killed at a random point (mid-batch, during a
    // commit or a snapshot) of its first 60 ms of consuming, or, once
    // nothing comes, after 1.5 s.
    while mid_stream < 22 && kills < 80 {
        let service = Service::start(&args, &log);
        let life = Instant::now();
        let mut consumed = service.metric_sum("mon_events_total");
        while consumed == 0.0 && life.elapsed() < Duration::from_millis(1500) {
            std::thread::sleep(Duration::from_millis(2));
            consumed = service.metric_sum("mon_events_total");
        }
        std::thread::sleep(Duration::from_millis(rng.next_u64() % 60));
        service.kill9();
        kills += 1;
        if consumed > 0.0 {
            mid_stream += 1;
        }
    }
    let service = Service::start(&args, &log);
    let published = kafka::consume_all(&records, expected.len(), Duration::from_secs(3), Duration::from_secs(120));
    assert_eq!(service.terminate(), Some(0), "a clean stop after the kills");
    let published = records_of(&published);
    let (actual, repeats) = service::distinct(&published);
    eprintln!(
        "crash test: {} events, {kills} SIGKILLs ({mid_stream} while events were being consumed), {} distinct records, \
         {repeats} repeated deliveries of the same record, {:.1} s",
        lines.len(),
        actual.len(),
        started.elapsed().as_secs_f64()
    );
    let lost: Vec<&String> = expected.keys().filter(|id| !actual.contains_key(*id)).collect();
    let extra: Vec<&String> = actual.keys().filter(|id| !expected.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} records lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(3).map(|id| &expected[*id]).collect::<Vec<_>>()
    );
    assert!(
        extra.is_empty(),
        "{} records not in the uninterrupted run, e.g. {:?}",
        extra.len(),
        extra.iter().take(3).map(|id| &actual[*id]).collect::<Vec<_>>()
    );
    assert_eq!(actual, expected, "the same records, with the same content");
    assert!(mid_stream >= 20, "only {mid_stream} of {kills} kills landed while events were consumed");
}

#[test]
fn a_deadline_that_passes_while_the_service_is_down_is_reported_once_at_the_next_start() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let rules = service::write_job_rules(dir.path(), "3s");
    let (topic, records, dead) = kafka::topic_set("timers", 1);
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic).display().to_string();
    let state = dir.path().join("state").display().to_string();
    let rules = rules.display().to_string();
    let args = run_args(&config, &state, &rules, "wall");
    let log = dir.path().join("mon.log");

    let service = Service::start(&args, &log);
    let now = service::now_ms();
    kafka::produce_lines(&topic, &[service::job_started(1, now)]);
    // Stop once the event is durable, well before its deadline.
    let waited = Instant::now();
    while service.metric_sum("mon_events_total") < 1.0 {
        assert!(waited.elapsed() < Duration::from_secs(20), "the event was not consumed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(service.terminate(), Some(0));
    let stopped = service::now_ms();
    assert!(stopped < now + 3000, "stopped {} ms after the event; the deadline is at 3000", stopped - now);
    assert!(kafka::consume_all(&records, 0, Duration::from_millis(500), Duration::from_secs(2)).is_empty());

    // Down while the deadline passes.
    std::thread::sleep(Duration::from_millis((now + 4000 - stopped).max(0) as u64));
    let service = Service::start(&args, &log);
    let published = records_of(&kafka::consume_all(&records, 1, Duration::from_secs(2), Duration::from_secs(20)));
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["kind"], "missing");
    assert_eq!(published[0]["deadline"], mon_stdlib::time::format_rfc3339(now + 3000));
    // And a further restart does not report it again.
    assert_eq!(service.terminate(), Some(0));
    let service = Service::start(&args, &log);
    let again = kafka::consume_all(&records, 1, Duration::from_secs(2), Duration::from_secs(10));
    assert_eq!(again.len(), 1, "the missing record was published again after a restart");
    service.terminate();
}
