//! What an operator meets when running `mon run` for real, against the
//! tansu broker (scripts/kafka-broker): topics that appear after the start
//! or that `--create-topics` makes, an unreachable broker, and the log
//! lines themselves.

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/service.rs"]
mod service;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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

/// Which output of a child the test reads.
enum Stream {
    Stdout,
    Stderr,
}

/// `mon ARGS`, run from the repository with `NO_COLOR` unset: the child,
/// and the lines of `stream` as they come (the other output is dropped).
/// The reader stops, closing its end of the pipe, when `rx` is dropped.
fn spawn_lines(args: &[&str], stream: Stream) -> (Child, mpsc::Receiver<String>) {
    let (stdout, stderr) = match stream {
        Stream::Stdout => (Stdio::piped(), Stdio::null()),
        Stream::Stderr => (Stdio::null(), Stdio::piped()),
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start mon");
    let pipe: Box<dyn std::io::Read + Send> = match stream {
        Stream::Stdout => Box::new(child.stdout.take().expect("stdout")),
        Stream::Stderr => Box::new(child.stderr.take().expect("stderr")),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// `mon run` without Kafka, its log (text) on a pipe, once it listens:
/// the child, the log so far, and the rest of it as it comes.
fn run_http_only(dir: &std::path::Path) -> (Child, Vec<String>, mpsc::Receiver<String>) {
    let rules = service::write_job_rules(dir, "1m").display().to_string();
    let state = dir.join("state").display().to_string();
    let listen = service::free_address();
    let (child, rx) = spawn_lines(&["run", "--state-dir", &state, "--listen", &listen, &rules], Stream::Stderr);
    let lines = lines_until(&rx, "HTTP listening", Duration::from_secs(20));
    (child, lines, rx)
}

/// Lines from `rx` until one contains `needle` (all of them, that one last).
fn lines_until(rx: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> Vec<String> {
    let started = Instant::now();
    let mut lines = Vec::new();
    while started.elapsed() < limit {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let found = line.contains(needle);
                lines.push(line);
                if found {
                    return lines;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    panic!("no line with {needle:?} within {limit:?}:\n{}", lines.join("\n"));
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([name, &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

/// Waits for the exit; kills the child and panics after `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> Option<i32> {
    service::exit_within(child, limit).unwrap_or_else(|| panic!("still running {limit:?} after the signal"))
}

#[test]
fn logs_on_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines, rx) = run_http_only(dir.path());
    signal(&child, "-TERM");
    assert_eq!(exit_within(&mut child, Duration::from_secs(20)), Some(0));
    lines.extend(rx.try_iter());
    let text = lines.join("\n");
    assert!(text.contains("stopped"), "{text}");
    assert!(!text.contains("\x1b["), "escape codes in a log that is not a terminal:\n{text:?}");
}

#[test]
fn the_start_up_line_names_the_rules_workflows_topics_group_and_clock() {
    let dir = tempfile::tempdir().unwrap();
    let rules = service::write_job_rules(dir.path(), "1m");
    let state = dir.path().join("state");
    let log = dir.path().join("mon.log");
    let nowhere = service::free_address();
    let service = Service::spawn(
        &[
            "--brokers",
            &nowhere,
            "--topics",
            "orders,files",
            "--group",
            "mon-ops",
            "--clock",
            "event",
            "--state-dir",
            &state.display().to_string(),
            &rules.display().to_string(),
        ],
        &log,
    );
    assert_eq!(service.terminate(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().expect("a log line")).unwrap();
    assert_eq!(first["message"], "starting mon run", "{text}");
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["rules"], rules.display().to_string());
    assert_eq!(first["workflows"], "jobs");
    assert_eq!(first["topics"], "orders, files");
    assert_eq!(first["group"], "mon-ops");
    assert_eq!(first["clock"], "event");
    assert_eq!(first["brokers"], nowhere.as_str());
}

#[test]
fn a_closed_stderr_does_not_stop_the_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _, rx) = run_http_only(dir.path());
    // Whoever read the log has gone (`mon run 2>&1 | head`): every later
    // line fails to be written, which must not stop the process stopping.
    drop(rx);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-TERM");
    assert_eq!(exit_within(&mut child, Duration::from_secs(20)), Some(0));
}

#[test]
fn demo_ends_with_a_one_line_summary_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let args = ["demo", "--listen", "127.0.0.1:0", "--every", "1", "--state-dir", &state];
    let (mut child, rx) = spawn_lines(&args, Stream::Stdout);
    // The first periodic report: events went in.
    let mut lines = lines_until(&rx, "events posted", Duration::from_secs(60));
    signal(&child, "-INT");
    assert_eq!(exit_within(&mut child, Duration::from_secs(30)), Some(0));
    std::thread::sleep(Duration::from_millis(100));
    lines.extend(rx.try_iter());
    let last = lines.last().expect("output");
    assert!(last.starts_with("mon demo stopped after "), "the last line is not the summary:\n{}", lines.join("\n"));
    for part in ["  events posted ", "  records: ", "  workflows: ", " red, ", " amber, ", " green"] {
        assert!(last.contains(part), "{part:?} missing from {last:?}");
    }
}
