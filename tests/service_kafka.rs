//! The service end to end against a real Kafka-protocol broker (tansu,
//! started by scripts/setup-test-env): events produced to a topic, consumed
//! by `mon run`, records and dead letters read back from their topics.

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/service.rs"]
mod service;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use service::Service;

fn conformance_cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/conformance")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("expected.ndjson").exists())
        .collect();
    cases.sort();
    cases
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn time_of(line: &str) -> Option<i64> {
    let value: Value = serde_json::from_str(line).ok()?;
    mon_stdlib::time::parse_rfc3339(value.get("time")?.as_str()?)
}

/// Records by id, as canonical JSON text; repeats counted.
fn by_id(records: impl IntoIterator<Item = Value>) -> (BTreeMap<String, String>, usize) {
    let mut map = BTreeMap::new();
    let mut repeats = 0;
    for record in records {
        let id = record["id"].as_str().expect("every record has an id").to_string();
        let text = serde_json::to_string(&record).expect("json");
        if let Some(previous) = map.insert(id.clone(), text.clone()) {
            assert_eq!(previous, text, "record {id} was made twice with different content");
            repeats += 1;
        }
    }
    (map, repeats)
}

/// One case through Kafka. The stream is the case's events (without those
/// after `--until`, which `mon simulate` would not read either) and a final
/// event of a type no rule uses, 1 ms after the end: it moves the service's
/// event clock past every timer that `mon simulate` fires at its end.
/// Returns a description of the difference, if any.
fn run_case(case: &Path, brokers: &str) -> Option<String> {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let args: Vec<String> = std::fs::read_to_string(case.join("args"))
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let until = flag(&args, "--until").and_then(|u| mon_stdlib::time::parse_rfc3339(&u));
    let text = std::fs::read_to_string(case.join("events.ndjson")).expect("events");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| match (until, time_of(l)) {
            (Some(u), Some(t)) => t <= u,
            _ => true,
        })
        .map(str::to_string)
        .collect();
    let end = until.or_else(|| lines.iter().filter_map(|l| time_of(l)).max());
    let dir = tempfile::tempdir().unwrap();
    let mut simulate_args = Vec::new();
    if let Some(from) = flag(&args, "--from") {
        simulate_args.extend(["--from".to_string(), from]);
    }
    if let Some(end) = end {
        simulate_args.extend(["--until".to_string(), mon_stdlib::time::format_rfc3339(end)]);
        lines.push(format!(
            r#"{{"specversion":"1.0","id":"clock-{name}","source":"test","type":"mon_test_clock","time":"{}","data":{{}}}}"#,
            mon_stdlib::time::format_rfc3339(end + 1)
        ));
    }
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let expected = service::simulate(&case.join("rules"), &events, &simulate_args);

    let topic = kafka::unique_topic(&format!("conf-{name}"));
    let (records, dead) = (format!("{topic}.records"), format!("{topic}.dead"));
    kafka::create_topic(&topic, 1);
    kafka::create_topic(&records, 1);
    kafka::create_topic(&dead, 1);
    kafka::produce_lines(&topic, &lines);
    let config = service::kafka_config(dir.path(), brokers, &topic, &records, &dead, &topic);
    let state = dir.path().join("state");
    let rules = case.join("rules");
    let mut run_args = vec![
        "--config".to_string(),
        config.display().to_string(),
        "--clock".into(),
        "event".into(),
        "--state-dir".into(),
        state.display().to_string(),
    ];
    if let Some(from) = flag(&args, "--from") {
        run_args.extend(["--from".to_string(), from]);
    }
    run_args.push(rules.display().to_string());
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let service = Service::start(&run_args, &dir.path().join("mon.log"));
    let published = kafka::consume_all(&records, expected.len(), Duration::from_millis(1500), Duration::from_secs(30));
    service.terminate();
    let actual: Vec<Value> =
        published.iter().map(|m| serde_json::from_slice(m.payload.as_deref().unwrap_or_default()).unwrap()).collect();
    let (expected, _) = by_id(expected);
    let (actual, repeats) = by_id(actual);
    if expected == actual && repeats == 0 {
        return None;
    }
    let mut report = format!("{name}: {repeats} repeats\n");
    for (id, record) in &expected {
        if actual.get(id) != Some(record) {
            report.push_str(&format!("  expected, not published: {record}\n"));
        }
    }
    for (id, record) in &actual {
        if expected.get(id) != Some(record) {
            report.push_str(&format!("  published, not expected: {record}\n"));
        }
    }
    Some(report)
}

#[test]
fn the_conformance_corpus_through_kafka_gives_what_mon_simulate_gives() {
    let brokers = kafka::brokers();
    let cases = conformance_cases();
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    // Four at a time: most of a case is waiting for the consumer group.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let chunks: Vec<&[PathBuf]> = cases.chunks(cases.len().div_ceil(4)).collect();
        let workers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let brokers = brokers.clone();
                scope.spawn(move || chunk.iter().filter_map(|case| run_case(case, &brokers)).collect::<Vec<_>>())
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
