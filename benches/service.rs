//! The service's throughput and alert latency against the real broker.
//!
//! `cargo bench --bench service` (needs `scripts/setup-test-env`):
//!
//! 1. **Throughput.** The trade lifecycle stream of `mon bench` (all trades
//!    ingested first, so they are all in flight at once) is produced to one
//!    topic. Then, in turn, a bare rdkafka consumer reads the whole topic,
//!    and `mon run --clock event` consumes it to durable state (journal
//!    write and fsync per batch, records to the outbox and the records
//!    topic). Both are timed from their first message to their last, so
//!    the consumer group join is not counted. `mon run` runs twice a round:
//!    with the event store off (`[retention] events = "0"`) and on (the
//!    default), so its cost is the ratio of the two (target: within 20%).
//!    Rounds alternate to share the machine's noise; medians are reported.
//!    `-- partitions` instead runs the same stream from a topic of three
//!    partitions (keyed by trade), through `mon run` with one state and
//!    with `[kafka] state_per_partition` (changelog and event store off
//!    in both), and with state per partition and its changelog on (a
//!    frame to each task's partition per batch), alternating.
//!    `-- scale-out` runs it through 1, 2 and 3 `mon run` processes of a
//!    scale-out group (`[kafka] scale_out`), produced once the group has
//!    settled and while its processes are stopped (SIGSTOP), timed from
//!    their resumption to the last event taken, and measures a task's fail-over with and without warm
//!    standbys (`standby_tasks`): the process running task 0 is killed a
//!    third of the way into its partition.
//! 2. **Latency.** `mon run` on the wall clock gets start events whose
//!    next step is due 1 s later and never comes; a consumer of the records
//!    topic measures, for each `missing` record, the time from its deadline
//!    to its arrival.
//!
//! Under `cargo test --all-targets` it runs once on a small stream, as a
//! smoke test: the same assertions (every event consumed, every deadline
//! recorded missing), and no figure printed. A debug build under a test
//! run's load measures nothing, and "4% (target 80%)" reads as a failure.
//! The two are told apart by the `--bench` argument, which cargo passes
//! exactly when `cargo bench` runs the target, whatever the profile;
//! `cfg!(debug_assertions)` would not do, since `cargo test --release` is
//! still a test run.

#[path = "../tests/support/kafka.rs"]
mod kafka;
#[path = "../tests/support/service.rs"]
mod service;

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Offset, TopicPartitionList};
use service::Service;

/// True under `cargo bench`, false in a smoke run (see the module doc).
fn measuring() -> bool {
    static MEASURING: OnceLock<bool> = OnceLock::new();
    *MEASURING.get_or_init(|| std::env::args().any(|a| a == "--bench"))
}

/// Prints a measured figure, under `cargo bench` only.
macro_rules! figure {
    ($($arg:tt)*) => {
        if measuring() {
            println!($($arg)*);
        }
    };
}

/// Seconds for a bare consumer to read `count` messages from the start.
fn bare_consumer(topic: &str, count: usize) -> f64 {
    let consumer: BaseConsumer = kafka::client_config()
        .set("group.id", kafka::unique_topic("bare"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut read = 0;
    let mut first = None;
    let mut bytes = 0usize;
    while read < count {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(message)) => {
                first.get_or_insert_with(Instant::now);
                // Touch the payload, as any real consumer would.
                bytes += message.payload().map_or(0, <[u8]>::len);
                read += 1;
            }
            Some(Err(e)) => panic!("bare consumer: {e}"),
            None => panic!("bare consumer stalled at {read} of {count}"),
        }
    }
    assert!(bytes > 0);
    first.unwrap().elapsed().as_secs_f64()
}

/// Seconds for `mon run` to consume `count` events into durable state,
/// with the event store on or off.
fn mon_run(topic: &str, rules: &str, count: usize, dir: &std::path::Path, event_store: bool) -> f64 {
    mon_run_with(topic, rules, count, dir, event_store, "")
}

/// [`mon_run`] with more settings for `[kafka]` (TOML lines).
fn mon_run_with(
    topic: &str,
    rules: &str,
    count: usize,
    dir: &std::path::Path,
    event_store: bool,
    kafka_settings: &str,
) -> f64 {
    let brokers = kafka::brokers();
    let records = format!("{topic}.records-{}", service::now_ms());
    let dead = format!("{records}.dead");
    kafka::create_topic(&records, 1);
    kafka::create_topic(&dead, 1);
    let group = kafka::unique_topic("mon-bench");
    let config_path = service::kafka_config(dir, &brokers, topic, &records, &dead, &group);
    if !kafka_settings.is_empty() {
        let text = std::fs::read_to_string(&config_path).unwrap();
        std::fs::write(
            &config_path,
            text.replace("[kafka.properties]", &format!("{kafka_settings}\n[kafka.properties]")),
        )
        .unwrap();
    }
    if !event_store {
        let mut text = std::fs::read_to_string(&config_path).unwrap();
        text.push_str("[retention]\nevents = \"0\"\n");
        std::fs::write(&config_path, text).unwrap();
    }
    let config = config_path.display().to_string();
    let state = dir.join(format!("state-{group}"));
    let state_arg = state.display().to_string();
    let service = Service::start(
        &["--config", &config, "--clock", "event", "--state-dir", &state_arg, rules],
        &dir.join("mon.log"),
    );
    // Time from the first event consumed to the last one durable.
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = service.metric_sum("mon_events_total") as usize;
        if done > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if done >= count {
            break;
        }
        assert!(Instant::now() < deadline, "mon run consumed only {done} of {count} in 10 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    if !kafka_settings.is_empty() {
        // What it made of the stream: on the event clock, one state over
        // several partitions moves one clock with every partition's events.
        // Events are counted before their batch's records (the changelog's
        // round trip comes between): the last batch's records come after.
        std::thread::sleep(Duration::from_millis(500));
        let missing = service.metric("mon_records_total{kind=\"missing\"}").unwrap_or(0.0);
        let late = service.metric("mon_records_total{kind=\"late\"}").unwrap_or(0.0);
        figure!("  ({}: {missing:.0} missing and {late:.0} late records)", kafka_settings.replace('\n', ", "));
    }
    service.terminate();
    let _ = std::fs::remove_dir_all(&state);
    seconds
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The trade lifecycle stream of `mon bench --emit`: its directory (kept
/// while the value lives), the stream's directory in it, and its lines.
fn emit(trades: u64) -> (tempfile::TempDir, std::path::PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let stream = dir.path().join("stream");
    let output = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["bench", "--trades", &trades.to_string(), "--emit"])
        .arg(&stream)
        .output()
        .expect("mon bench --emit");
    assert!(output.status.success());
    let lines: Vec<String> =
        std::fs::read_to_string(stream.join("events.ndjson")).unwrap().lines().map(str::to_string).collect();
    (dir, stream, lines)
}

fn throughput(trades: u64, rounds: usize) {
    let (dir, stream, lines) = emit(trades);
    let topic = kafka::unique_topic("bench-trades");
    kafka::create_topic(&topic, 1);
    let produced = Instant::now();
    kafka::produce_lines(&topic, &lines);
    figure!(
        "produced {} events ({} trades in flight at the peak) in {:.1} s",
        lines.len(),
        trades,
        produced.elapsed().as_secs_f64()
    );
    let rules = stream.join("rules").display().to_string();
    let (mut bare, mut mon, mut stored) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let b = lines.len() as f64 / bare_consumer(&topic, lines.len());
        let m = lines.len() as f64 / mon_run(&topic, &rules, lines.len(), dir.path(), false);
        let s = lines.len() as f64 / mon_run(&topic, &rules, lines.len(), dir.path(), true);
        figure!(
            "round {}: bare consumer {b:.0} events/s, mon run {m:.0} events/s ({:.0}%), with the event store {s:.0} events/s ({:.0}% of without)",
            round + 1,
            100.0 * m / b,
            100.0 * s / m
        );
        bare.push(b);
        mon.push(m);
        stored.push(s);
    }
    let (b, m, s) = (median(&mut bare), median(&mut mon), median(&mut stored));
    figure!(
        "throughput: bare consumer median {b:.0} events/s, mon run (Kafka to durable state, event store off) median {m:.0} events/s = {:.0}% (target 80%)",
        100.0 * m / b
    );
    figure!(
        "event store: mon run with it on median {s:.0} events/s = {:.0}% of without (target: at least 80%)",
        100.0 * s / m
    );
}

/// The trade stream from three partitions, through one state, through
/// state per partition, and through state per partition with its
/// changelog, alternating; medians reported.
fn partitions(trades: u64, rounds: usize) {
    let (dir, stream, lines) = emit(trades);
    let topic = kafka::unique_topic("bench-partitions");
    kafka::create_topic(&topic, 3);
    let keyed = lines.iter().map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = value["data"]["trade_id"].as_str().unwrap_or_default().as_bytes().to_vec();
        (Some(key), line.clone().into_bytes(), Vec::new())
    });
    kafka::produce_to(&topic, None, keyed);
    let rules = stream.join("rules").display().to_string();
    let (mut one, mut split, mut logged) = (Vec::new(), Vec::new(), Vec::new());
    let rate =
        |settings: &str| lines.len() as f64 / mon_run_with(&topic, &rules, lines.len(), dir.path(), false, settings);
    for round in 0..rounds {
        let o = rate("changelog = false");
        let p = rate("changelog = false\nstate_per_partition = true");
        let c = rate("state_per_partition = true");
        figure!(
            "round {}: 3 partitions, one state {o:.0} events/s, state per partition {p:.0} events/s ({:.0}%), \
             with its changelog {c:.0} events/s ({:.0}% of without)",
            round + 1,
            100.0 * p / o,
            100.0 * c / p
        );
        one.push(o);
        split.push(p);
        logged.push(c);
    }
    let (o, p, c) = (median(&mut one), median(&mut split), median(&mut logged));
    figure!(
        "3 partitions: one state median {o:.0} events/s, state per partition median {p:.0} events/s = {:.0}%; \
         with its changelog median {c:.0} events/s = {:.0}% of without",
        100.0 * p / o,
        100.0 * c / p
    );
}

fn latency(jobs: usize) {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let rules = service::write_job_rules(dir.path(), "1s");
    let topic = kafka::unique_topic("bench-latency");
    let (records, dead) = (format!("{topic}.records"), format!("{topic}.dead"));
    for t in [&topic, &records, &dead] {
        kafka::create_topic(t, 1);
    }
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic).display().to_string();
    let state = dir.path().join("state").display().to_string();
    let rules = rules.display().to_string();
    let service = Service::start(&["--config", &config, "--state-dir", &state, &rules], &dir.path().join("mon.log"));

    let consumer: BaseConsumer = kafka::client_config()
        .set("group.id", kafka::unique_topic("latency"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&records, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();

    // One producer for the whole run, sending each start event at its time
    // (a producer per batch would load the machine the service shares).
    let producer: BaseProducer = kafka::client_config().set("linger.ms", "0").create().expect("producer");
    // Start events spread over a few seconds, so deadlines fall all the time.
    let spread_ms = 4000i64;
    let start = service::now_ms();
    let lines: Vec<String> =
        (0..jobs).map(|i| service::job_started(i, start + (i as i64 * spread_ms) / jobs as i64)).collect();
    let mut sent = 0;
    let mut latencies = Vec::with_capacity(jobs);
    // When mon handed each record to its Kafka producer (the message's
    // create time): the part of the latency that is mon's own.
    let mut handed = Vec::with_capacity(jobs);
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.len() < jobs && Instant::now() < deadline {
        // Produce each start event when its time comes.
        let mut batch = Vec::new();
        while sent < jobs && start + (sent as i64 * spread_ms) / jobs as i64 <= service::now_ms() {
            batch.push(lines[sent].clone());
            sent += 1;
        }
        for line in &batch {
            producer
                .send(BaseRecord::<(), str>::to(&topic).payload(line.as_str()).partition(0))
                .expect("queue a start event");
        }
        producer.poll(Duration::ZERO);
        while let Some(Ok(message)) = consumer.poll(Duration::from_millis(1)) {
            let arrived = service::now_ms();
            let record: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
            if record["kind"] == "missing" {
                let due = mon_stdlib::time::parse_rfc3339(record["deadline"].as_str().unwrap()).unwrap();
                latencies.push((arrived - due) as f64);
                if let Some(created) = message.timestamp().to_millis() {
                    handed.push((created - due) as f64);
                }
            }
        }
    }
    // mon's own measure: from each deadline to Kafka's acknowledgement of
    // its record, as a histogram with 5 ms buckets.
    let metrics = service.get("/metrics").unwrap_or_default();
    service.terminate();
    let histogram = |name: &str| -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{le=\"");
        metrics
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .filter_map(|l| {
                let (le, count) = l.split_once("\"} ")?;
                Some((le.parse().unwrap_or(f64::INFINITY), count.trim().parse().ok()?))
            })
            .collect()
    };
    let upper_bound = |buckets: &[(f64, f64)], q: f64| {
        let total = buckets.last().map_or(0.0, |b| b.1);
        buckets.iter().find(|b| b.1 >= q * total).map_or(f64::INFINITY, |b| b.0 * 1000.0)
    };
    let buckets = histogram("mon_alert_publish_delay_seconds");
    let total = buckets.last().map_or(0.0, |b| b.1);
    let bound = |q: f64| upper_bound(&buckets, q);
    let commits = histogram("mon_batch_commit_seconds");
    figure!(
        "  batch commits (journal fsync + sled flush), {}: p50 <= {:.1} ms, p99 <= {:.1} ms",
        commits.last().map_or(0.0, |b| b.1),
        upper_bound(&commits, 0.5),
        upper_bound(&commits, 0.99)
    );
    assert_eq!(latencies.len(), jobs, "every deadline gave a missing record");
    let quantiles = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let p = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        format!("p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms", p(0.5), p(0.99), p(1.0))
    };
    figure!("latency over {jobs} deadlines (target p99 < 100 ms):");
    figure!(
        "  deadline to the record acknowledged by Kafka (mon_alert_publish_delay_seconds, {total} records): p50 <= {:.0} ms, p99 <= {:.0} ms",
        bound(0.5),
        bound(0.99)
    );
    figure!("  deadline to the record handed to the producer: {}", quantiles(&mut handed));
    figure!("  deadline to its arrival at a consumer of the records topic: {}", quantiles(&mut latencies));
}

/// A scale-out group's processes (`[kafka] scale_out`) on a fresh
/// three-partition topic: the topic, the config, where they run.
struct ScaleOut {
    topic: String,
    config: String,
    rules: String,
    dir: std::path::PathBuf,
}

impl ScaleOut {
    /// `session_ms`: the groups' session timeout.
    fn new(dir: &std::path::Path, rules: &str, standby_tasks: bool, session_ms: u32) -> ScaleOut {
        let topic = kafka::unique_topic("bench-scale-out");
        kafka::create_topic(&topic, 3);
        let records = format!("{topic}.records");
        let dead = format!("{topic}.dead");
        kafka::create_topic(&records, 1);
        kafka::create_topic(&dead, 1);
        let dir = dir.join(&topic);
        std::fs::create_dir_all(&dir).unwrap();
        let path = service::kafka_config(&dir, &kafka::brokers(), &topic, &records, &dead, &topic);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(
                "[kafka.properties]",
                &format!("scale_out = true\nstandby_tasks = {standby_tasks}\n[kafka.properties]"),
            )
            .replace("\"session.timeout.ms\" = \"2000\"", &format!("\"session.timeout.ms\" = \"{session_ms}\""));
        // As the partitions bench: the event store off.
        std::fs::write(&path, text + "[retention]\nevents = \"0\"\n[notify]\ndeliver = \"log\"\n").unwrap();
        ScaleOut { topic, config: path.display().to_string(), rules: rules.to_string(), dir }
    }

    /// Starts `count` processes and waits until the group has given every
    /// task to one of them, each its share, every task ready.
    fn start(&self, count: usize) -> Vec<Service> {
        let processes: Vec<Service> = (0..count)
            .map(|n| {
                let state = self.dir.join(format!("state-{n}")).display().to_string();
                let args = ["--config", &self.config, "--clock", "event", "--state-dir", &state, &self.rules];
                Service::spawn(&args, &self.dir.join(format!("mon-{n}.log")))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let shares: Vec<usize> = processes.iter().map(|p| p.tasks().len()).collect();
            let settled = shares.iter().sum::<usize>() == 3 && shares.iter().all(|s| *s >= 1);
            if settled && processes.iter().all(|p| p.get_any("/readyz").is_some_and(|(code, _)| code == 200)) {
                return processes;
            }
            assert!(Instant::now() < deadline, "the group did not settle: {shares:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the latest start of task `task`, in any process's log, was
    /// from a standby's follower.
    fn last_start_warm(&self, task: u16) -> Option<bool> {
        let logs = std::fs::read_dir(&self.dir).unwrap().filter_map(Result::ok).map(|e| e.path());
        let logs = logs.filter(|p| p.extension().is_some_and(|e| e == "log"));
        let starts = logs.flat_map(|log| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
            lines
        });
        let starts = starts.filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with("task starting")));
        let last = starts
            .filter(|l| l["task"] == task)
            .max_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()))?;
        last["warm"].as_bool()
    }

    /// Produces `lines` keyed by trade.
    fn produce(&self, lines: &[String]) {
        let keyed = lines.iter().map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let key = value["data"]["trade_id"].as_str().unwrap_or_default().as_bytes().to_vec();
            (Some(key), line.clone().into_bytes(), Vec::new())
        });
        kafka::produce_to(&self.topic, None, keyed);
    }
}

/// Events every task of `processes` has taken (no task moves meanwhile).
fn events_taken(processes: &[Service]) -> f64 {
    let addresses = processes.iter().flat_map(Service::tasks).filter_map(|(_, address)| address);
    addresses.map(|address| service::task_metric_sum(&address, "mon_events_total")).sum()
}

/// Scale-out (`[kafka] scale_out`): the throughput of 1, 2 and 3 processes
/// sharing a three-partition topic, and the fail-over of a task with and
/// without warm standbys.
fn scale_out(trades: u64, rounds: usize) {
    let (dir, stream, lines) = emit(trades);
    let rules = stream.join("rules").display().to_string();
    let count = lines.len() as f64;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for round in 0..rounds {
        for processes in 1..=3 {
            let group = ScaleOut::new(dir.path(), &rules, false, 30_000);
            let running = group.start(processes);
            // The stream is produced while every process is stopped
            // (SIGSTOP, within the session timeout), once each runs its
            // share: they then start on all of it at once, and neither the
            // producer nor a process that would take the whole stream
            // before the others join is measured.
            running.iter().for_each(|p| p.signal("STOP"));
            let produced = Instant::now();
            group.produce(&lines);
            let production = produced.elapsed().as_secs_f64();
            let resumed = Instant::now();
            running.iter().for_each(|p| p.signal("CONT"));
            let deadline = resumed + Duration::from_secs(600);
            loop {
                let taken = events_taken(&running);
                if taken >= count {
                    break;
                }
                assert!(Instant::now() < deadline, "{taken} of {count} events in 10 minutes");
                std::thread::sleep(Duration::from_millis(5));
            }
            let seconds = resumed.elapsed().as_secs_f64();
            let rate = count / seconds;
            figure!(
                "round {}: {processes} process(es): {rate:.0} events/s ({count} events in {seconds:.2} s from the \
                 processes' resumption to the last taken; produced meanwhile in {production:.2} s)",
                round + 1
            );
            rates[processes - 1].push(rate);
            running.into_iter().for_each(|p| {
                p.terminate();
            });
        }
    }
    for (n, rates) in rates.iter_mut().enumerate() {
        figure!("scale-out: {} process(es) median {:.0} events/s", n + 1, median(rates));
    }

    scale_out_failover(&dir, &stream, &lines, rounds);
}

/// The fail-over part of [`scale_out`] (`-- scale-out-failover` alone).
fn scale_out_failover(dir: &tempfile::TempDir, stream: &std::path::Path, lines: &[String], rounds: usize) {
    let rules = stream.join("rules").display().to_string();
    let count = lines.len() as f64;
    // Fail-over: three processes, the one running task 0 killed a third
    // of the way into its partition (mon's 6 s session timeout, within
    // which the pause for the production falls); the time to task 0's first event on
    // another process, and that process's restore. Not in the smoke run:
    // a small stream is read whole before the kill can land
    // (tests/service_scale_out.rs tests the take-over itself).
    if !measuring() {
        return;
    }
    for round in 0..rounds {
        for standby_tasks in [false, true] {
            // mon's own session timeout, as in scripts/bench-failover.
            let group = ScaleOut::new(dir.path(), &rules, standby_tasks, 6_000);
            let mut running = group.start(3);
            // The standbys are following the others' partitions before the
            // stream comes; produced while every process is stopped, as
            // above, so that the victim is killed mid-partition.
            std::thread::sleep(Duration::from_secs(1));
            running.iter().for_each(|p| p.signal("STOP"));
            let produced = Instant::now();
            group.produce(lines);
            let paused = produced.elapsed().as_secs_f64();
            running.iter().for_each(|p| p.signal("CONT"));
            let victim = running.iter().position(|p| p.tasks().iter().any(|(t, _)| *t == 0)).unwrap();
            let victim = running.remove(victim);
            let address = victim.tasks()[0].1.clone().unwrap();
            while service::task_metric_sum(&address, "mon_events_total") < count / 9.0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            victim.kill9();
            let killed = Instant::now();
            let deadline = killed + Duration::from_secs(120);
            let taker = loop {
                let taker = running.iter().flat_map(Service::tasks).find_map(|(t, address)| {
                    let address = address.filter(|_| t == 0)?;
                    (service::task_metric_sum(&address, "mon_events_total") > 0.0).then_some(address)
                });
                if let Some(taker) = taker {
                    break taker;
                }
                assert!(Instant::now() < deadline, "task 0 not taken over in 2 minutes");
                std::thread::sleep(Duration::from_millis(5));
            };
            let failover = killed.elapsed().as_secs_f64();
            let restore = service::task_metric_sum(&taker, "mon_changelog_restore_seconds");
            let warm = group.last_start_warm(0);
            assert_eq!(warm, Some(standby_tasks), "the take-over started from a follower exactly with standbys");
            figure!(
                "round {}: fail-over {} standbys: {failover:.2} s from the SIGKILL to task 0's first event on \
                 another process (its restore {restore:.2} s; the processes were paused {paused:.1} s for the \
                 production, within the 6 s session timeout)",
                round + 1,
                if standby_tasks { "with warm" } else { "without" },
            );
            assert!(paused < 5.0, "the pause for the production ({paused:.1} s) came near the session timeout");
            running.into_iter().for_each(|p| {
                p.terminate();
            });
        }
    }
}

fn main() {
    // `cargo bench --bench service -- latency` measures only the latency.
    if measuring() && std::env::args().any(|a| a == "latency") {
        latency(2000);
    } else if measuring() && std::env::args().any(|a| a == "partitions") {
        partitions(120_000, 3);
    } else if measuring() && std::env::args().any(|a| a == "scale-out-failover") {
        let (dir, stream, lines) = emit(120_000);
        scale_out_failover(&dir, &stream, &lines, 2);
    } else if measuring() && std::env::args().any(|a| a == "scale-out") {
        scale_out(120_000, 2);
    } else if measuring() {
        throughput(120_000, 3);
        latency(2000);
    } else {
        throughput(2_000, 1);
        partitions(1_000, 1);
        scale_out(1_000, 1);
        latency(50);
        println!("bench service: runs (a stream of 2,000 trades through mon run, 50 deadlines recorded missing); `cargo bench --bench service` measures it");
    }
}
