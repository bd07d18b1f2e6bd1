//! `mon run` at its edges: what it does with bad input (Kafka and HTTP),
//! with a broken or missing Kafka, with a wrong configuration, and with a
//! state directory made on the other clock. Each test runs the real binary
//! as a child process (tests/support/service.rs); the Kafka ones use the
//! tansu broker (scripts/kafka-broker) or librdkafka's in-process mock
//! cluster for fault injection.

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/service.rs"]
mod service;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use service::Service;

// ------------------------------------------------------------------ helpers

/// One event type with an enum and an int (so that wrong types and unknown
/// values can be sent), one that closes the item, and a deadline between
/// them so that a missing shipment makes a `missing` record.
const ORDERS: &str = r#"
event order_placed { order_id: string, qty: int, region: enum { EMEA, AMER, APAC } }
event order_shipped { order_id: string }

workflow orders {
  key order_id
  expect order_placed
  then order_shipped within 10m
}
"#;

/// The same with a 2-second deadline, for the wall clock.
const QUICK_ORDERS: &str = r#"
event order_placed { order_id: string, qty: int, region: enum { EMEA, AMER, APAC } }
event order_shipped { order_id: string }

workflow quick_orders {
  key order_id
  expect order_placed
  then order_shipped within 2s
}
"#;

fn write_rules(dir: &Path, text: &str) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("create the rules dir");
    std::fs::write(rules.join("orders.mon"), text).expect("write the rules");
    rules
}

fn placed(id: &str, time: &str, order: &str, region: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","type":"order_placed","id":"{id}","source":"test","time":"{time}","data":{{"order_id":"{order}","qty":1,"region":"{region}"}}}}"#
    )
}

fn shipped(id: &str, time: &str, order: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","type":"order_shipped","id":"{id}","source":"test","time":"{time}","data":{{"order_id":"{order}"}}}}"#
    )
}

/// An event of a type no rule uses: it only moves the event clock, which
/// fires every timer due before it (as in service_kafka.rs).
fn clock(id: &str, time: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","type":"mon_test_clock","id":"{id}","source":"test","time":"{time}","data":{{}}}}"#
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Polls `probe` every 50 ms until it gives a value; panics with `what` and
/// the last thing seen after `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if started.elapsed() > limit => panic!("{what}: not within {limit:?}; last seen: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The sum of the series of metric `name` whose labels contain every one of `labels`.
fn metric(service: &Service, name: &str, labels: &[&str]) -> f64 {
    let text = service.get("/metrics").expect("GET /metrics");
    text.lines()
        .filter(|l| l.starts_with(name) && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' ')))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn records_api(service: &Service) -> Vec<Value> {
    let body = service.get("/api/v1/records?limit=1000").expect("GET /api/v1/records");
    json(&body)["records"].as_array().expect("an array of records").clone()
}

/// Sorted canonical texts: compares two record lists as multisets.
fn canonical(records: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = records.iter().map(|r| serde_json::to_string(r).expect("json")).collect();
    texts.sort();
    texts
}

fn header<'m>(headers: &'m [(String, Vec<u8>)], name: &str) -> Option<&'m [u8]> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
}

fn text_header(headers: &[(String, Vec<u8>)], name: &str) -> String {
    String::from_utf8_lossy(header(headers, name).unwrap_or_else(|| panic!("no {name} header in {headers:?}")))
        .into_owned()
}

/// Runs `mon ARGS` to its end (at most `limit`; a process still running
/// then has started when it should not have: it is killed and the test
/// fails). Returns the exit code and stderr.
fn run_to_exit(args: &[&str], limit: Duration) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start mon");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mon") {
            break status;
        }
        // Listening on HTTP: it got past every check it should have failed.
        let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        if started.elapsed() > limit || log.contains("HTTP listening") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`mon {}` started (it should have refused to); stderr:\n{log}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), std::fs::read_to_string(&stderr_path).unwrap_or_default())
}

// --------------------------------------------- 1. malformed input over Kafka

/// A message produced to the input topic: for a bad one, what its
/// `mon_reason` must say (every fragment, case-sensitive); and the NDJSON
/// line `mon simulate` reads for it, if it can be one.
struct Sent {
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    reason: Option<&'static [&'static str]>,
    line: Option<String>,
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

/// A structured CloudEvent.
fn good(line: String) -> Sent {
    Sent { payload: line.clone().into_bytes(), headers: Vec::new(), reason: None, line: Some(line) }
}

/// A line the decoder rejects (mon simulate reads it too).
fn bad_line(line: &str, reason: &'static [&'static str]) -> Sent {
    Sent { payload: line.as_bytes().to_vec(), headers: Vec::new(), reason: Some(reason), line: Some(line.to_string()) }
}

/// A message that is not even a line: refused by the envelope reader.
fn unreadable(payload: impl Into<Vec<u8>>, pairs: &[(&str, &str)], reason: &'static [&'static str]) -> Sent {
    Sent { payload: payload.into(), headers: headers(pairs), reason: Some(reason), line: None }
}

/// Every kind of unreadable or invalid message on the input topic goes to
/// the dead-letter topic with its original bytes and headers, a specific
/// `mon_reason` and a `mon_origin` naming the input offset; it also makes
/// exactly one `rejected` record on the records topic and is counted in
/// `mon_events_total{outcome="rejected"}`. The good events around them
/// (structured, and one in binary mode) still make exactly the records
/// `mon simulate` makes for them, and the service stays healthy and ready.
#[test]
fn malformed_kafka_messages_go_to_the_dead_letter_topic_and_the_rest_flows() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), ORDERS);
    let topic = kafka::unique_topic("input-malformed");
    let (records_topic, dead_topic) = (format!("{topic}.records"), format!("{topic}.dead"));
    for t in [&topic, &records_topic, &dead_topic] {
        kafka::create_topic(t, 1);
    }

    let oversize = format!(
        r#"{{"specversion":"1.0","type":"order_placed","id":"bad-big","time":"2026-03-02T08:07:30Z","data":{{"order_id":"O8","qty":1,"region":"EMEA","note":"{}"}}}}"#,
        "x".repeat(1200)
    );
    let messages = vec![
        good(placed("p1", "2026-03-02T08:00:00Z", "O1", "EMEA")),
        bad_line(r#"{"specversion":"1.0","type":"order_placed","id":"bad-json","time":"#, &["order_placed: invalid JSON"]),
        good(placed("p2", "2026-03-02T08:01:00Z", "O2", "AMER")),
        bad_line(
            r#"{"specversion":"1.0","type":"order_placed","id":"bad-type","time":"2026-03-02T08:02:00Z","data":{"order_id":"O7","qty":"ten","region":"EMEA"}}"#,
            &["order_placed.qty: expected int, found string \"ten\""],
        ),
        good(shipped("s1", "2026-03-02T08:05:00Z", "O1")),
        bad_line(&placed("bad-enum", "2026-03-02T08:06:00Z", "O6", "LATAM"), &["order_placed.region: expected one of EMEA, AMER, APAC, found string \"LATAM\""]),
        good(placed("p3", "2026-03-02T08:07:00Z", "O3", "APAC")),
        // The rejected records of these four are made at the event clock:
        // the last good event's time, 08:07.
        unreadable(oversize, &[], &["larger than the limit of 1000"]),
        unreadable(&b"\xff\xfe\x00garbage\xc3\x28"[..], &[], &["not UTF-8"]),
        unreadable(Vec::new(), &[], &["empty message"]),
        unreadable(
            r#"{"order_id":"O9"}"#,
            &[
                ("ce_specversion", "1.0"),
                ("ce_id", "bad-binary"),
                ("ce_source", "test"),
                ("ce_time", "2026-03-02T08:08:00Z"),
                ("content-type", "application/json"),
            ],
            &["ce_type"],
        ),
        // A valid binary-mode event, and the structured line it stands for.
        Sent {
            payload: br#"{"order_id":"O3"}"#.to_vec(),
            headers: headers(&[
                ("ce_specversion", "1.0"),
                ("ce_id", "bin-ok"),
                ("ce_source", "test"),
                ("ce_type", "order_shipped"),
                ("ce_time", "2026-03-02T08:30:00Z"),
                ("content-type", "application/json"),
            ]),
            reason: None,
            line: Some(r#"{"specversion":"1.0","id":"bin-ok","source":"test","type":"order_shipped","time":"2026-03-02T08:30:00Z","datacontenttype":"application/json","data":{"order_id":"O3"}}"#.into()),
        },
        good(clock("c1", "2026-03-02T09:00:00Z")),
    ];
    let bad_count = messages.iter().filter(|m| m.reason.is_some()).count();
    assert_eq!(bad_count, 7);

    // What `mon simulate` makes of the messages that can be NDJSON lines.
    let lines: Vec<String> = messages.iter().filter_map(|m| m.line.clone()).collect();
    let unreadable_count = messages.len() - lines.len();
    assert_eq!(unreadable_count, 4);
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let simulated = service::simulate(&rules, &events, &[]);
    let kinds: Vec<&str> = simulated.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["rejected", "rejected", "rejected", "missing", "missing", "late"], "{simulated:#?}");

    kafka::produce(&topic, messages.iter().map(|m| (None, m.payload.clone(), m.headers.clone())));
    let input = kafka::consume_all(&topic, messages.len(), Duration::from_millis(300), Duration::from_secs(20));
    assert_eq!(input.len(), messages.len(), "the input topic holds what was produced");

    let config = dir.path().join("mon.toml");
    std::fs::write(
        &config,
        format!(
            "[envelope]\nmax_bytes = 1000\n\
             [kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{topic}\"\n\
             records_topic = \"{records_topic}\"\ndead_letter_topic = \"{dead_topic}\"\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"2000\"\n\"heartbeat.interval.ms\" = \"200\"\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let service = Service::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--clock",
            "event",
            "--state-dir",
            state.to_str().unwrap(),
            rules.to_str().unwrap(),
        ],
        &dir.path().join("mon.log"),
    );

    let expected_records = simulated.len() + unreadable_count;
    let published =
        kafka::consume_all(&records_topic, expected_records, Duration::from_millis(1500), Duration::from_secs(30));
    let dead = kafka::consume_all(&dead_topic, bad_count, Duration::from_millis(1500), Duration::from_secs(30));

    // The dead-letter topic: one message per bad one, original bytes and
    // headers, a reason and the origin.
    assert_eq!(dead.len(), bad_count, "dead letters: {dead:#?}");
    let mut reasons = Vec::new();
    let mut unreadable_reasons = Vec::new();
    for (m, read) in messages.iter().zip(&input) {
        let Some(fragments) = m.reason else { continue };
        let origin = format!("kafka:{topic}/{}@{}", read.partition, read.offset);
        let letter = dead
            .iter()
            .find(|d| header(&d.headers, "mon_origin") == Some(origin.as_bytes()))
            .unwrap_or_else(|| panic!("no dead letter with mon_origin {origin}; dead letters: {dead:#?}"));
        assert_eq!(
            letter.payload.clone().unwrap_or_default(),
            m.payload,
            "the dead letter from {origin} carries the original bytes"
        );
        let reason = text_header(&letter.headers, "mon_reason");
        for fragment in fragments {
            assert!(reason.contains(fragment), "mon_reason of {origin} should mention {fragment}: {reason:?}");
        }
        for (name, value) in &m.headers {
            assert_eq!(header(&letter.headers, name), Some(value.as_slice()), "header {name} kept on {origin}");
        }
        if m.line.is_none() {
            unreadable_reasons.push(reason.clone());
        }
        reasons.push(reason);
    }

    // The records topic: what simulate makes, plus one `rejected` record
    // for each message simulate could not read, at the event clock (the
    // last good event, 08:07), with the reason of its dead letter.
    let mut actual: Vec<Value> =
        published.iter().map(|m| json(&String::from_utf8_lossy(m.payload.as_deref().unwrap_or_default()))).collect();
    assert_eq!(actual.len(), expected_records, "records published: {actual:#?}");
    for record in &simulated {
        let at = actual
            .iter()
            .position(|a| a == record)
            .unwrap_or_else(|| panic!("simulate's record {record} was not published; published: {actual:#?}"));
        actual.remove(at);
    }
    let mut extra_reasons: Vec<String> = actual
        .iter()
        .map(|r| {
            assert_eq!(r["kind"], "rejected", "{r}");
            assert_eq!(r["at"], "2026-03-02T08:07:00Z", "{r}");
            r["reason"].as_str().expect("a reason").to_string()
        })
        .collect();
    extra_reasons.sort();
    unreadable_reasons.sort();
    assert_eq!(extra_reasons, unreadable_reasons, "the rejected records of the unreadable messages");
    let mut rejected_reasons: Vec<String> = published
        .iter()
        .map(|m| json(&String::from_utf8_lossy(m.payload.as_deref().unwrap_or_default())))
        .filter(|r| r["kind"] == "rejected")
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect();
    rejected_reasons.sort();
    reasons.sort();
    assert_eq!(rejected_reasons, reasons, "one rejected record per dead letter, with the same reason");

    let rejected = metric(&service, "mon_events_total", &["outcome=\"rejected\""]);
    assert_eq!(rejected, bad_count as f64, "mon_events_total{{outcome=\"rejected\"}}");
    let accepted = metric(&service, "mon_events_total", &["outcome=\"accepted\""]);
    assert_eq!(accepted, 5.0, "three orders placed, two shipped (one in binary mode)");
    assert_eq!(service.get("/healthz").as_deref(), Some("ok\n"), "still healthy after the bad input");
    let (code, body) = service.get_any("/readyz").expect("GET /readyz");
    assert_eq!(code, 200, "still ready after the bad input: {body}");
    assert_eq!(service.terminate(), Some(0));
}

// ------------------------------------------------------ 2. HTTP ingest alone

/// Without Kafka, `POST /api/v1/events` takes NDJSON and JSON arrays and
/// answers with what became of each line (the index and reason of each
/// rejected one); the records are those `mon simulate` makes of the same
/// lines; the rejected lines are in `/api/v1/dead-letters` as sent; an
/// empty or malformed body is refused with 400 and a reason, and changes
/// nothing.
#[test]
fn http_ingest_without_kafka_reports_each_line_and_keeps_records_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), ORDERS);
    let state = dir.path().join("state");
    let service = Service::start(
        &[rules.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--clock", "event"],
        &dir.path().join("mon.log"),
    );
    let (code, body) = service.get_any("/readyz").expect("GET /readyz");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["ready"], true, "{body}");

    let ndjson = [
        placed("h1", "2026-03-02T08:00:00Z", "H1", "EMEA"),
        "this is not json".to_string(),
        clock("hb1", "2026-03-02T08:00:30Z"),
        r#"{"specversion":"1.0","type":"order_placed","id":"h-bad-type","time":"2026-03-02T08:01:00Z","data":{"order_id":"H2","qty":"ten","region":"EMEA"}}"#.to_string(),
        shipped("h1s", "2026-03-02T08:02:00Z", "H1"),
    ];
    let (code, body) = service.post("/api/v1/events", &(ndjson.join("\n") + "\n"));
    assert_eq!(code, 200, "{body}");
    let reply = json(&body);
    assert_eq!(reply["accepted"], 2, "{body}");
    assert_eq!(reply["ignored"], 1, "{body}");
    let rejected = reply["rejected"].as_array().expect("rejected list");
    assert_eq!(rejected.len(), 2, "{body}");
    assert_eq!(rejected[0]["index"], 1, "{body}");
    assert!(rejected[0]["reason"].as_str().unwrap().contains("type unknown: invalid JSON"), "{body}");
    assert_eq!(rejected[1]["index"], 3, "{body}");
    assert!(rejected[1]["reason"].as_str().unwrap().contains("order_placed.qty: expected int"), "{body}");

    let array_items = [
        placed("h3", "2026-03-02T08:03:00Z", "H3", "APAC"),
        placed("h-enum", "2026-03-02T08:04:00Z", "H4", "LATAM"),
        "42".to_string(),
        clock("hc", "2026-03-02T09:00:00Z"),
    ];
    let (code, body) = service.post("/api/v1/events", &format!("[{}]", array_items.join(",\n ")));
    assert_eq!(code, 200, "{body}");
    let reply = json(&body);
    assert_eq!((reply["accepted"].as_u64(), reply["ignored"].as_u64()), (Some(1), Some(1)), "{body}");
    let rejected = reply["rejected"].as_array().expect("rejected list");
    assert_eq!(rejected.len(), 2, "{body}");
    assert_eq!(rejected[0]["index"], 1, "{body}");
    assert!(rejected[0]["reason"].as_str().unwrap().contains("\"LATAM\""), "{body}");
    assert_eq!(rejected[1]["index"], 2, "{body}");
    assert!(rejected[1]["reason"].as_str().unwrap().contains("not a JSON object"), "{body}");

    // The records are exactly those of `mon simulate` on the same lines.
    let all_lines: Vec<String> = ndjson.iter().chain(&array_items).cloned().collect();
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, all_lines.join("\n") + "\n").unwrap();
    let simulated = service::simulate(&rules, &events, &[]);
    let records = records_api(&service);
    assert_eq!(canonical(&records), canonical(&simulated), "service records vs mon simulate");
    assert!(records.iter().any(|r| r["kind"] == "missing" && r["key"]["order_id"] == "H3"), "{records:#?}");
    assert_eq!(records.iter().filter(|r| r["kind"] == "rejected").count(), 4, "{records:#?}");

    let dead_letters = || -> Vec<Value> {
        let page = json(&service.get("/api/v1/dead-letters").expect("GET /api/v1/dead-letters"));
        assert!(page["next_cursor"].is_null(), "{page}");
        page["dead_letters"].as_array().unwrap().clone()
    };
    let letters = dead_letters();
    // Newest first.
    let texts: Vec<&str> = letters.iter().rev().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(texts, [ndjson[1].as_str(), &ndjson[3], &array_items[1], "42"], "{letters:#?}");
    for letter in &letters {
        assert_eq!(letter["origin"], "http", "{letter}");
        assert!(!letter["reason"].as_str().unwrap().is_empty(), "{letter}");
    }

    for (body, says) in [
        ("", "no events"),
        ("\n  \n", "no events"),
        ("[]", "no events"),
        (r#"[{"specversion":"1.0","type":"order_placed""#, "not a JSON array"),
    ] {
        let (code, reply) = service.post("/api/v1/events", body);
        assert_eq!(code, 400, "body {body:?} gave {reply}");
        let reply = json(&reply);
        assert_eq!(reply["error"]["code"], "invalid_request", "{reply}");
        assert_eq!(reply["error"]["details"]["field"], "body", "{reply}");
        let error = reply["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(says), "body {body:?}: the reason {error:?} should say {says:?}");
    }
    assert_eq!(dead_letters().len(), 4, "refused bodies leave no dead letters");
    assert_eq!(records_api(&service).len(), records.len(), "refused bodies make no records");
    assert_eq!(service.terminate(), Some(0));
}

/// Two different malformed lines read at the same event-clock instant make
/// two `rejected` records that must be told apart: the record id exists so
/// that a consumer can drop *repeats* (ARCHITECTURE.md rule 3), so two
/// distinct rejections must not share one.
#[test]
fn distinct_rejections_at_the_same_instant_have_distinct_record_ids() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), ORDERS);
    let state = dir.path().join("state");
    let service = Service::start(
        &[rules.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--clock", "event"],
        &dir.path().join("mon.log"),
    );
    let body = [placed("i1", "2026-03-02T08:00:00Z", "I1", "EMEA"), "not json".into(), "[1, 2, 3]".into()].join("\n");
    let (code, reply) = service.post("/api/v1/events", &body);
    assert_eq!(code, 200, "{reply}");
    assert_eq!(json(&reply)["rejected"].as_array().map(Vec::len), Some(2), "{reply}");
    let rejected: Vec<Value> = records_api(&service).into_iter().filter(|r| r["kind"] == "rejected").collect();
    assert_eq!(rejected.len(), 2, "{rejected:#?}");
    assert_ne!(rejected[0]["reason"], rejected[1]["reason"], "{rejected:#?}");
    assert_ne!(
        rejected[0]["id"], rejected[1]["id"],
        "two different rejected messages got the same record id: {rejected:#?}"
    );
    assert_eq!(service.terminate(), Some(0));
}

// ------------------------------------------------------ 3. Kafka unreachable

/// With Kafka configured but unreachable, the service still starts and is
/// alive (`/healthz` 200) but not ready (`/readyz` 503, saying why: Kafka);
/// HTTP ingest still works, and a deadline armed by an HTTP event fires on
/// the wall clock from the state alone. SIGTERM then stops it promptly
/// with exit code 0, although its records could not be published.
#[test]
fn with_kafka_unreachable_it_is_alive_not_ready_and_still_fires_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), QUICK_ORDERS);
    let nowhere = service::free_address();
    let config = service::kafka_config(dir.path(), &nowhere, "in", "out.records", "out.dead", "g");
    let state = dir.path().join("state");
    let service = Service::spawn(
        &[
            "--config",
            config.to_str().unwrap(),
            "--clock",
            "wall",
            "--state-dir",
            state.to_str().unwrap(),
            rules.to_str().unwrap(),
        ],
        &dir.path().join("mon.log"),
    );
    assert_eq!(service.get("/healthz").as_deref(), Some("ok\n"));
    let (code, body) = service.get_any("/readyz").expect("GET /readyz");
    assert_eq!(code, 503, "not ready without Kafka: {body}");
    let readyz = json(&body);
    assert_eq!(readyz["ready"], false, "{body}");
    let reasons = readyz["reasons"].as_array().expect("reasons");
    assert!(
        reasons.iter().any(|r| r.as_str().unwrap_or_default().contains("Kafka")),
        "reasons should name Kafka: {body}"
    );

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let time = mon_stdlib::time::format_rfc3339(now);
    let (code, reply) = service.post("/api/v1/events", &placed("d1", &time, "D1", "EMEA"));
    assert_eq!(code, 200, "{reply}");
    assert_eq!(json(&reply)["accepted"], 1, "{reply}");

    let missing = wait_for(Duration::from_secs(10), "the missing record of D1 in /api/v1/records", || {
        let records = records_api(&service);
        records
            .iter()
            .find(|r| r["kind"] == "missing" && r["key"]["order_id"] == "D1")
            .cloned()
            .ok_or_else(|| format!("{records:?}"))
    });
    assert_eq!(missing["deadline"], mon_stdlib::time::format_rfc3339(now + 2000), "{missing}");
    assert_eq!(service.get_any("/readyz").map(|(c, _)| c), Some(503), "still not ready: Kafka is still down");

    // The publisher gives up draining after 5 s and the producer flush after
    // 5 s more (service/src/{lib,kafka}.rs); beyond that it hangs.
    let limit = Duration::from_secs(12);
    match service.terminate_within(limit) {
        Ok(code) => assert_eq!(code, Some(0), "exit code after SIGTERM"),
        Err(e) => {
            // Without librdkafka's connection chatter.
            let chatter = ["librdkafka", "kafka poll", "kafka client error"];
            let log: Vec<&str> = e.lines().filter(|l| !chatter.iter().any(|c| l.contains(c))).collect();
            panic!("SIGTERM did not stop the service within {limit:?} with Kafka unreachable:\n{}", log.join("\n"));
        }
    }
}

// ---------------------------------------------------------- 4. config errors

/// A configuration mistake stops `mon run` before it starts anything (no
/// state directory made): exit code 2 and a message naming the key.
#[test]
fn configuration_errors_exit_2_naming_the_key_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), ORDERS);
    // (what, mon.toml text, extra flags, words the error must say)
    type Case<'a> = (&'a str, Option<&'a str>, &'a [&'a str], &'a [&'a str]);
    let cases: [Case; 4] = [
        ("unknown key", Some("clok = \"wall\"\n"), &[], &["clok"]),
        ("--clock sundial", None, &["--clock", "sundial"], &["sundial", "--clock"]),
        ("clock = sundial", Some("clock = \"sundial\"\n"), &[], &["sundial", "clock"]),
        ("empty brokers", Some("[kafka]\nbrokers = \"\"\ntopics = [\"in\"]\n"), &[], &["kafka.brokers"]),
    ];
    for (name, file, flags, says) in cases {
        let case_dir = dir.path().join(name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        std::fs::create_dir_all(&case_dir).unwrap();
        let state = case_dir.join("state");
        let listen = service::free_address();
        let mut args =
            vec!["run", rules.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--listen", &listen];
        let config = case_dir.join("mon.toml");
        if let Some(text) = file {
            std::fs::write(&config, text).unwrap();
            args.extend(["--config", config.to_str().unwrap()]);
        }
        args.extend(flags);
        let (code, stderr) = run_to_exit(&args, Duration::from_secs(20));
        assert_eq!(code, Some(2), "{name}: exit code; stderr:\n{stderr}");
        for word in says {
            assert!(stderr.contains(word), "{name}: the message should name {word:?}; stderr:\n{stderr}");
        }
        assert!(!state.exists(), "{name}: the state directory was created, so it started");
        assert!(!stderr.contains("HTTP listening"), "{name}: it started listening; stderr:\n{stderr}");
    }
}

// -------------------------------------------------- 5. restart, other clock

fn wrong_clock_refused(rules: &Path, state: &Path) {
    let listen = service::free_address();
    let args = [
        "run",
        rules.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--clock",
        "wall",
        "--listen",
        &listen,
    ];
    let (code, stderr) = run_to_exit(&args, Duration::from_secs(20));
    assert!(code.is_some_and(|c| c != 0), "exit code {code:?}; stderr:\n{stderr}");
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("event clock") && lower.contains("wall clock"),
        "the message should say which clock made the state and which one this run uses; stderr:\n{stderr}"
    );
}

/// A state directory made with `--clock event` (and shut down cleanly) is
/// refused by a run with `--clock wall`: a non-zero exit and a message
/// naming both clocks, rather than timers measured against the wrong clock.
#[test]
fn a_state_made_on_the_event_clock_is_refused_on_the_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), ORDERS);
    let state = dir.path().join("state");
    let service = Service::start(
        &[rules.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--clock", "event"],
        &dir.path().join("mon.log"),
    );
    let (code, reply) = service.post("/api/v1/events", &placed("w1", "2026-03-02T08:00:00Z", "W1", "EMEA"));
    assert_eq!((code, json(&reply)["accepted"].as_u64()), (200, Some(1)), "{reply}");
    assert_eq!(service.terminate(), Some(0));
    wrong_clock_refused(&rules, &state);
}

/// The same after a crash: the state is then a journal without a snapshot
/// (snapshots are taken at shutdown or every `engine.snapshot_every`
/// inputs), and it was still made on the event clock.
#[test]
fn a_crashed_state_made_on_the_event_clock_is_refused_on_the_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), ORDERS);
    let state = dir.path().join("state");
    let service = Service::start(
        &[rules.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--clock", "event"],
        &dir.path().join("mon.log"),
    );
    let (code, reply) = service.post("/api/v1/events", &placed("w1", "2026-03-02T08:00:00Z", "W1", "EMEA"));
    assert_eq!((code, json(&reply)["accepted"].as_u64()), (200, Some(1)), "{reply}");
    service.kill9();
    wrong_clock_refused(&rules, &state);
}

// ---------------------------------------- 6. fault injection: mock cluster

/// Produces `lines` to partition 0 of `topic` at `brokers` and waits for
/// every acknowledgement.
fn produce_at(brokers: &str, topic: &str, lines: &[String]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("create a producer");
    let deliveries: Vec<_> = lines
        .iter()
        .map(|line| {
            let record = FutureRecord::<(), _>::to(topic).payload(line.as_str()).partition(0);
            producer.send_result(record).unwrap_or_else(|(e, _)| panic!("enqueue to {topic}: {e}"))
        })
        .collect();
    for delivery in deliveries {
        let outcome = kafka_block_on(delivery).expect("delivery future");
        outcome.unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// A minimal executor for rdkafka's delivery futures (they complete on
/// librdkafka's thread).
fn kafka_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Every payload on partition 0 of `topic` at `brokers`, as JSON, read until
/// `expect` were read and none came for `idle` (or `limit` passed).
fn read_records_at(brokers: &str, topic: &str, expect: usize, idle: Duration, limit: Duration) -> Vec<Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", kafka::unique_topic("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create a consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning).expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let (started, mut last_new, mut out) = (Instant::now(), Instant::now(), Vec::new());
    while started.elapsed() < limit && !(out.len() >= expect && last_new.elapsed() >= idle) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                out.push(json(&String::from_utf8_lossy(m.payload().unwrap_or_default())));
                assert!(m.headers().is_some_and(|h| h.iter().any(|h| h.key == "mon_id")), "a record without mon_id");
                last_new = Instant::now();
            }
            Some(Err(e)) => panic!("read {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// librdkafka's mock cluster, in this process, as the service's Kafka: two
/// brokers, the records topic led by broker 2, everything else by broker 1.
/// With broker 2 down the service keeps consuming and processing (records
/// visible in the API, counted as pending in the outbox, publish errors
/// counted), stays healthy, and once broker 2 is back publishes every
/// record exactly once.
#[test]
fn records_wait_in_the_outbox_while_the_records_broker_is_down_then_all_are_published() {
    let mock = MockCluster::new(2).expect("start the mock cluster");
    let brokers = mock.bootstrap_servers();
    let topic = "in".to_string();
    let (records_topic, dead_topic, group) = ("out.records", "out.dead", "mon-mock");
    mock.create_topic(&topic, 1, 1).expect("create the input topic");
    mock.create_topic(records_topic, 1, 1).expect("create the records topic");
    mock.create_topic(dead_topic, 1, 1).expect("create the dead-letter topic");
    mock.partition_leader(&topic, 0, Some(1)).expect("input leader");
    mock.partition_leader(dead_topic, 0, Some(1)).expect("dead-letter leader");
    mock.partition_leader(records_topic, 0, Some(2)).expect("records leader");
    mock.coordinator(MockCoordinator::Group(group.into()), 1).expect("group coordinator");

    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), ORDERS);
    let config = dir.path().join("mon.toml");
    // A short delivery timeout, so that the outage outlasts librdkafka's own
    // retries and the service's outbox has to keep the records.
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{group}\"\n\
             records_topic = \"{records_topic}\"\ndead_letter_topic = \"{dead_topic}\"\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n\
             \"message.timeout.ms\" = \"2000\"\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let service = Service::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--clock",
            "event",
            "--state-dir",
            state.to_str().unwrap(),
            rules.to_str().unwrap(),
        ],
        &dir.path().join("mon.log"),
    );

    // Healthy: two orders never shipped make two missing records.
    let first = [
        placed("m1", "2026-03-02T08:00:00Z", "M1", "EMEA"),
        placed("m2", "2026-03-02T08:01:00Z", "M2", "EMEA"),
        clock("mc1", "2026-03-02T08:30:00Z"),
    ];
    produce_at(&brokers, &topic, &first);
    let published = read_records_at(&brokers, records_topic, 2, Duration::from_millis(500), Duration::from_secs(30));
    assert_eq!(published.len(), 2, "records through the mock cluster: {published:#?}");

    // The records topic's broker goes down; the input's stays up.
    mock.broker_down(2).expect("broker 2 down");
    let second = [
        placed("m3", "2026-03-02T09:00:00Z", "M3", "EMEA"),
        shipped("m1s", "2026-03-02T09:05:00Z", "M1"),
        clock("mc2", "2026-03-02T10:00:00Z"),
    ];
    produce_at(&brokers, &topic, &second);
    wait_for(Duration::from_secs(20), "the second batch's records in /api/v1/records", || {
        let records = records_api(&service);
        (records.len() == 4).then_some(()).ok_or_else(|| format!("{records:?}"))
    });
    wait_for(Duration::from_secs(20), "failed publish attempts while the broker is down", || {
        let (errors, pending) =
            (metric(&service, "mon_publish_errors_total", &[]), metric(&service, "mon_outbox_pending", &[]));
        (errors >= 1.0 && pending >= 1.0).then_some(()).ok_or_else(|| format!("errors {errors}, pending {pending}"))
    });
    assert_eq!(service.get("/healthz").as_deref(), Some("ok\n"), "alive while the records broker is down");

    mock.broker_up(2).expect("broker 2 up");
    wait_for(Duration::from_secs(30), "the outbox drained after the broker came back", || {
        let pending = metric(&service, "mon_outbox_pending", &[]);
        (pending == 0.0).then_some(()).ok_or_else(|| format!("pending {pending}"))
    });
    let published = read_records_at(&brokers, records_topic, 4, Duration::from_millis(1000), Duration::from_secs(30));

    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, first.iter().chain(&second).cloned().collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let simulated = service::simulate(&rules, &events, &[]);
    assert_eq!(simulated.len(), 4, "{simulated:#?}");
    assert_eq!(canonical(&published), canonical(&simulated), "every record published once, as simulate makes them");
    assert_eq!(service.terminate(), Some(0));
}

/// librdkafka's mock cluster refusing every Produce request (a pushed stack
/// of `TOPIC_AUTHORIZATION_FAILED` errors, as when the service's ACL is
/// missing), from before the service starts: it consumes and processes
/// anyway, keeps the records in its outbox (none reach the records topic),
/// counts the failures and stays healthy; once the errors are cleared
/// (`clear_request_errors`), every record is published exactly once.
#[test]
fn records_wait_in_the_outbox_while_produce_requests_fail_then_all_are_published() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mock = MockCluster::new(1).expect("start the mock cluster");
    let brokers = mock.bootstrap_servers();
    let (topic, records_topic, dead_topic, group) = ("in", "out.records", "out.dead", "mon-mock");
    for t in [topic, records_topic, dead_topic] {
        mock.create_topic(t, 1, 1).expect("create a topic");
    }
    let events = [
        placed("r1", "2026-03-02T08:00:00Z", "R1", "EMEA"),
        placed("r2", "2026-03-02T08:01:00Z", "R2", "AMER"),
        shipped("r1s", "2026-03-02T08:20:00Z", "R1"),
        clock("rc", "2026-03-02T09:00:00Z"),
    ];
    // Produced before the fault: the test's own producer must get through.
    produce_at(&brokers, topic, &events);
    let refusals = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 10_000];
    mock.request_errors(RDKafkaApiKey::Produce, &refusals);

    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), ORDERS);
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, events.join("\n") + "\n").unwrap();
    let simulated = service::simulate(&rules, &file, &[]);
    assert_eq!(simulated.len(), 3, "missing R1, missing R2, late R1: {simulated:#?}");
    let config = dir.path().join("mon.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{group}\"\n\
             records_topic = \"{records_topic}\"\ndead_letter_topic = \"{dead_topic}\"\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let service = Service::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--clock",
            "event",
            "--state-dir",
            state.to_str().unwrap(),
            rules.to_str().unwrap(),
        ],
        &dir.path().join("mon.log"),
    );
    wait_for(Duration::from_secs(20), "the records in /api/v1/records", || {
        let records = records_api(&service);
        (records.len() == simulated.len()).then_some(()).ok_or_else(|| format!("{records:?}"))
    });
    wait_for(Duration::from_secs(20), "refused publish attempts, records pending", || {
        let (errors, pending) =
            (metric(&service, "mon_publish_errors_total", &[]), metric(&service, "mon_outbox_pending", &[]));
        (errors >= 2.0 && pending >= 3.0).then_some(()).ok_or_else(|| format!("errors {errors}, pending {pending}"))
    });
    let leaked = read_records_at(&brokers, records_topic, 0, Duration::from_millis(500), Duration::from_secs(5));
    assert!(leaked.is_empty(), "records reached the topic while Produce was refused: {leaked:#?}");
    assert_eq!(service.get("/healthz").as_deref(), Some("ok\n"), "alive while Produce is refused");

    mock.clear_request_errors(RDKafkaApiKey::Produce);
    wait_for(Duration::from_secs(30), "the outbox drained after the errors were cleared", || {
        let pending = metric(&service, "mon_outbox_pending", &[]);
        (pending == 0.0).then_some(()).ok_or_else(|| format!("pending {pending}"))
    });
    let published = read_records_at(&brokers, records_topic, 3, Duration::from_millis(1000), Duration::from_secs(30));
    assert_eq!(canonical(&published), canonical(&simulated), "every record published once, as simulate makes them");
    assert_eq!(service.terminate(), Some(0));
}
