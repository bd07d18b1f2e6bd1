//! Scale-out against a real broker: three `mon run` processes of one group
//! share a three-partition input (`[kafka] scale_out`), one task each.
//! One is killed with SIGKILL in the middle of a 500,000-event stream; the
//! others take its task over from the changelog, and a replacement started
//! later takes a task from them by a hand-over. What the group published
//! equals an uninterrupted `mon simulate` by id and content, the killed
//! process's scheduled deadline fires on the process that took it over, a
//! scheduled workflow's file read on another partition reaches its owner,
//! and each notification is sent once (docs/service.md, "Scale-out").

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/receivers.rs"]
mod receivers;
#[path = "support/service.rs"]
mod service;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use receivers::{wait_until, HttpReceiver};
use serde_json::Value;
use service::Service;

const PARTITIONS: u16 = 3;

/// How many of the last notifications before a SIGKILL may be in flight:
/// sent, their delivery marks not yet in the changelog. Each webhook call
/// takes a few milliseconds and its mark one broker round trip, so a few;
/// a mark lost for good would repeat far earlier ones.
const IN_FLIGHT: usize = 20;

/// The trade lifecycle of `mon bench`, notifying a webhook; a scheduled
/// file SLA whose file never comes (`morning_feed`, its deadline 08:02,
/// after about 80% of the stream); and one whose file comes early, on a
/// partition that is not its owner's (`late_feed`, due 08:05, after the
/// stream: only the clock events sent at the end pass it).
fn add_rules(rules: &Path, hook: &str) {
    service::add_feeds(
        rules,
        hook,
        "workflow morning_feed {\n  notify desk\n  expect feed_file where job_id == \"M\" by 08:02 Etc/UTC\n  \
         then feed_loaded within 30m\n}\n\
         workflow late_feed {\n  notify desk\n  expect feed_file where job_id == \"L\" by 08:05 Etc/UTC\n}\n",
    );
}

fn event(kind: &str, id: &str, time: i64, data: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","type":"{kind}","id":"{id}","source":"test","time":"{}","data":{data}}}"#,
        mon_stdlib::time::format_rfc3339(time)
    )
}

/// The partition a producer keying by trade would choose.
fn partition_of(line: &str) -> Option<u16> {
    let value: Value = serde_json::from_str(line).ok()?;
    Some(mon_runtime::engine::partition_for(value["data"]["trade_id"].as_str()?, PARTITIONS))
}

#[test]
fn three_processes_share_the_partitions_one_is_killed_and_the_group_publishes_what_one_process_would() {
    three_processes(Standbys::None);
}

/// The same with warm standbys (`standby_tasks`): the process that takes
/// the killed task over has followed its changelog partition, and reads
/// only what came since.
#[test]
fn with_warm_standbys_the_killed_task_is_taken_over_from_a_followed_changelog() {
    three_processes(Standbys::Warm);
}

#[derive(PartialEq, Debug)]
enum Standbys {
    None,
    Warm,
}

fn three_processes(standbys: Standbys) {
    let brokers = kafka::brokers();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hook_address = service::free_address();
    let trades = std::env::var("SCALE_OUT_TEST_TRADES").unwrap_or_else(|_| "101000".into());
    let mut stream = service::trade_stream(dir, &trades, "0.01");
    add_rules(&stream.rules, &hook_address);
    stream.lines.pop(); // the clock event: one per partition, at the end
    let start = mon_stdlib::time::parse_rfc3339("2026-03-02T08:00:00Z").unwrap();
    // The late feed's file, early, on a partition its owner does not read.
    let late_owner = mon_runtime::engine::owner("late_feed", PARTITIONS);
    let file_partition = (late_owner + 1) % PARTITIONS;
    let file = event("feed_file", "file-L", start + 500, r#"{"job_id":"L"}"#);
    let end = mon_stdlib::time::parse_rfc3339("2026-03-02T08:10:00Z").unwrap();
    let clock = |p: u16| event("mon_test_clock", &format!("clock-{p}"), end + 1, "{}");
    let mut all = stream.lines.clone();
    all.insert(1, file.clone());
    all.push(clock(0));
    std::fs::write(&stream.events, all.join("\n") + "\n").unwrap();
    let until = ["--until".to_string(), mon_stdlib::time::format_rfc3339(end)];
    let (expected, _) = service::distinct(&service::simulate(&stream.rules, &stream.events, &until));
    let of = |workflow: &str| expected.values().filter(|r| r.contains(&format!("\"workflow\":\"{workflow}\""))).count();
    assert_eq!(of("morning_feed"), 1, "the scheduled deadline fires once");
    assert_eq!(of("late_feed"), 0, "the late feed's file came");
    let stalls = expected.values().filter(|r| r.contains("\"kind\":\"missing\"")).count();
    assert!(stalls > 500 || trades != "101000", "planted stalls are reported throughout ({stalls})");
    // Notifications are grouped per alert book, and each task keeps its
    // own: what `mon simulate --partitions` sends, one engine per
    // partition, each item where its trade id hashes, the clock event to
    // every partition (an id that hashes there).
    let clock_ids: Vec<String> = (0..PARTITIONS)
        .map(|p| {
            (0..)
                .map(|n| format!("clock-{n}"))
                .find(|id| mon_runtime::engine::partition_for(id, PARTITIONS) == p)
                .unwrap()
        })
        .collect();
    let mut per_partition = stream.lines.clone();
    per_partition.insert(1, file.clone());
    per_partition.extend(clock_ids.iter().map(|id| event("mon_test_clock", id, end + 1, "{}")));
    let per_partition_events = dir.join("per-partition.ndjson");
    std::fs::write(&per_partition_events, per_partition.join("\n") + "\n").unwrap();
    let partitioned = |extra: &[&str]| {
        let mut args: Vec<String> =
            ["--partitions", "3", "--partition-key", "trade_id", "--until"].map(str::to_string).to_vec();
        args.push(mon_stdlib::time::format_rfc3339(end));
        args.extend(extra.iter().map(|a| a.to_string()));
        service::simulate(&stream.rules, &per_partition_events, &args)
    };
    let (by_partition, _) = service::distinct(&partitioned(&[]));
    assert_eq!(by_partition, expected, "in time order, one engine per partition makes one engine's records");
    let expected_notifications: BTreeSet<String> = partitioned(&["--notifications"])
        .into_iter()
        .filter(|n| n["kind"] == "notification")
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert!(expected_notifications.len() > 5, "notifications throughout: {expected_notifications:?}");

    let (topic, records, dead) = kafka::topic_set("scale-out", i32::from(PARTITIONS));
    let config = service::kafka_config(dir, &brokers, &topic, &records, &dead, &topic);
    let text = std::fs::read_to_string(&config).unwrap();
    let warm = standbys == Standbys::Warm;
    let settings = format!("scale_out = true\nstandby_tasks = {warm}\n[kafka.properties]");
    let text = text.replace("[kafka.properties]", &settings) + "[engine]\nsnapshot_every = 40000\n";
    std::fs::write(&config, text).unwrap();
    let (config, rules) = (config.display().to_string(), stream.rules.display().to_string());
    let log = dir.join("mon.log");
    let state = |name: &str| dir.join(name).display().to_string();
    let args = |state: &str| {
        ["--config", &config, "--clock", "event", "--state-dir", state, &rules].map(str::to_string).to_vec()
    };
    let spawn = |name: &str| {
        let args = args(&state(name));
        Service::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), &log)
    };
    let hook = runtime.block_on(HttpReceiver::start_on(&hook_address));

    let mut processes = vec![spawn("a"), spawn("b"), spawn("c")];
    wait_until(Duration::from_secs(60), "one task each", || {
        processes.iter().all(|p| p.tasks().len() == 1 && p.get_any("/readyz").is_some_and(|(code, _)| code == 200))
    });
    // One scrape target per process: its tasks' series, labelled by task.
    for process in &processes {
        let (task, _) = process.tasks()[0];
        let metrics = process.get("/metrics").unwrap_or_default();
        assert!(metrics.contains(&format!("mon_assigned_partitions{{task=\"{task}\"}} 2")), "{metrics}");
        assert_eq!(metrics.matches("# TYPE mon_assigned_partitions ").count(), 1, "{metrics}");
    }
    let owner_of = |partition: u16, processes: &[Service]| {
        processes.iter().position(|p| p.tasks().iter().any(|(t, _)| *t == partition))
    };
    let morning_owner = mon_runtime::engine::owner("morning_feed", PARTITIONS);

    for partition in 0..PARTITIONS {
        let mut lines: Vec<Vec<u8>> = stream
            .lines
            .iter()
            .filter(|l| partition_of(l).unwrap_or(0) == partition)
            .map(|l| l.clone().into_bytes())
            .collect();
        if partition == file_partition {
            lines.insert(0, file.clone().into_bytes());
        }
        kafka::produce_to(&topic, Some(i32::from(partition)), lines.into_iter().map(|l| (None, l, Vec::new())));
    }

    // The process running the morning feed's owner is killed a third of
    // the way into its partition, before its clock reaches 08:02.
    // Asked again each turn: a task that stopped on an error (the broker
    // slow to acknowledge its changelog, on a loaded machine) is started
    // again, on another port, and is not listed meanwhile.
    let mut victim_index = None;
    wait_until(Duration::from_secs(60), "a process to run the morning feed's task", || {
        victim_index = owner_of(morning_owner, &processes);
        victim_index.is_some()
    });
    let victim_index = victim_index.unwrap();
    let victim = processes.remove(victim_index);
    let victim_events = || {
        let address = victim.tasks().into_iter().find_map(|(_, address)| address);
        address.map_or(0.0, |address| service::task_metric_sum(&address, "mon_events_total"))
    };
    let per_partition = stream.lines.len() / PARTITIONS as usize;
    let started = Instant::now();
    let mut consumed_by_victim = victim_events();
    while consumed_by_victim < (per_partition / 3) as f64 {
        assert!(started.elapsed() < Duration::from_secs(120), "the victim did not get a third of the way");
        std::thread::sleep(Duration::from_millis(5));
        consumed_by_victim = victim_events();
    }
    // How many notifications had come when the victim died: one it sent
    // just before, whose delivery mark the changelog did not hold yet, is
    // sent again by the process that takes its task over (at least once;
    // the same idempotency key, for the receiver to drop).
    let at_kill = hook.requests().len();
    victim.kill9();
    let killed = Instant::now();
    assert!(consumed_by_victim < per_partition as f64 * 0.7, "killed too late ({consumed_by_victim} events)");

    // Fail-over: from the kill to the first event the killed task's new
    // owner processed.
    let mut taker = None;
    while taker.is_none() {
        assert!(killed.elapsed() < Duration::from_secs(90), "no process took the task over within 90 s");
        taker = processes.iter().position(|p| {
            p.tasks().iter().any(|(t, address)| {
                *t == morning_owner
                    && address.as_deref().is_some_and(|a| service::task_metric_sum(a, "mon_events_total") > 0.0)
            })
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    let failover = killed.elapsed();
    let taker = taker.unwrap();
    // Started from its follower of the partition, or from nothing.
    let starts: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with("task starting")))
        .filter(|l| l["task"] == morning_owner)
        .collect();
    let take_over = starts.last().expect("the take-over's start in the log");
    assert_eq!(take_over["warm"], warm, "{take_over}");

    // A replacement joins, and takes one task over from the others: a
    // hand-over (the task stops and snapshots before it moves).
    processes.push(spawn("d"));
    wait_until(Duration::from_secs(90), "the replacement to run a task", || {
        processes[2].tasks().len() == 1 && processes.iter().map(|p| p.tasks().len()).sum::<usize>() == 3
    });

    // Once every partition is read, the clock events: the event clock of
    // each task passes the last deadlines, the late feed's among them.
    let live: Vec<&Service> = processes.iter().collect();
    std::thread::sleep(Duration::from_millis(2500));
    wait_until(Duration::from_secs(180), "every partition read to its end", || {
        service::tasks_caught_up(&live, &topic, PARTITIONS as usize)
    });
    for partition in 0..PARTITIONS {
        kafka::produce_to(&topic, Some(i32::from(partition)), [(None, clock(partition).into_bytes(), Vec::new())]);
    }

    let published = kafka::consume_all(&records, expected.len(), Duration::from_secs(3), Duration::from_secs(180));
    let values: Vec<Value> = published
        .iter()
        .map(|m| serde_json::from_slice(m.payload.as_deref().unwrap_or_default()).expect("a record is JSON"))
        .collect();
    let (actual, repeats) = service::distinct(&values);
    let lost: Vec<&String> = expected.keys().filter(|id| !actual.contains_key(*id)).collect();
    let extra: Vec<&String> = actual.keys().filter(|id| !expected.contains_key(*id)).collect();
    assert!(lost.is_empty(), "{} records lost, e.g. {:?}", lost.len(), &lost[..3.min(lost.len())]);
    assert!(extra.is_empty(), "{} records not in one run, e.g. {:?}", extra.len(), &extra[..3.min(extra.len())]);
    assert_eq!(actual, expected, "the same records, with the same content");

    // The deadline the killed process never reached fired where its task
    // went (or where it went next, after the replacement's hand-over).
    let morning_alerts = || -> Vec<String> {
        let tasks = processes.iter().flat_map(Service::tasks).filter(|(t, _)| *t == morning_owner);
        tasks.filter_map(|(_, a)| service::task_get(&a?, "/api/v1/alerts?workflow=morning_feed")).collect()
    };
    wait_until(Duration::from_secs(30), "the scheduled deadline's alert where its task runs", || {
        morning_alerts().iter().any(|a| a.contains("\"workflow\":\"morning_feed\""))
    });

    let ids = || -> Vec<String> {
        hook.requests().iter().map(|r| r.header("idempotency-key").unwrap_or_default().to_string()).collect()
    };
    let arrived = Instant::now();
    while ids().into_iter().collect::<BTreeSet<_>>() != expected_notifications
        && arrived.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let received = ids();
    let distinct: BTreeSet<String> = received.iter().cloned().collect();
    let not_sent: Vec<&String> = expected_notifications.difference(&distinct).collect();
    let not_expected: Vec<&String> = distinct.difference(&expected_notifications).collect();
    assert!(
        not_sent.is_empty() && not_expected.is_empty(),
        "notifications not sent: {not_sent:?}\nsent, not expected: {not_expected:?}"
    );
    // Sent twice only if in flight at the SIGKILL: its first copy among
    // the last the receiver got before it.
    let mut seen = BTreeSet::new();
    let mut repeated = Vec::new();
    for id in &received {
        if !seen.insert(id) {
            repeated.push(received.iter().position(|first| first == id).unwrap());
        }
    }
    let in_flight = at_kill.saturating_sub(IN_FLIGHT)..at_kill;
    assert!(
        repeated.iter().all(|first| in_flight.contains(first)),
        "notifications sent twice that were not in flight at the SIGKILL (received {at_kill} before it): first \
         copies at {repeated:?}"
    );
    let restarts = std::fs::read_to_string(&log).unwrap().matches("task stopped on an error").count();
    eprintln!(
        "scale-out test: {} events over {PARTITIONS} partitions, {} records ({stalls} missing), {} notifications; \
         the killed process had taken {consumed_by_victim} events; its task's first event processed elsewhere {} ms \
         after the SIGKILL (process {taker} took it; standbys: {standbys:?}); {repeats} records published twice; {} notifications sent again (in flight at the SIGKILL); {restarts} tasks stopped on an \
         error and started again",
        all.len(),
        expected.len(),
        expected_notifications.len(),
        failover.as_millis(),
        repeated.len()
    );
    for process in processes {
        assert_eq!(process.terminate(), Some(0), "a clean stop");
    }
}

/// A handed event comes again when the task that read it was taken over
/// after a crash before its batch was kept: the owner takes each origin
/// offset once. Here the copies are produced straight to the repartition
/// topic, as a handing task writes them: the same event twice, then one
/// from an earlier offset of the same origin, and one from another input
/// topic's same partition and offset (another origin). With `[auth]` on,
/// the task's own API takes the process's tokens.
#[test]
fn a_handed_event_is_taken_once_however_often_it_comes() {
    const TWO: u16 = 2;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let (topic, records, dead) = kafka::topic_set("scale-out-handed", i32::from(TWO));
    let config = service::kafka_config(dir, &kafka::brokers(), &topic, &records, &dead, &topic);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("[kafka.properties]", "scale_out = true\n[kafka.properties]") + "[auth]\nenabled = true\n";
    std::fs::write(&config, text).unwrap();
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("feed.mon"),
        "event feed_file { job_id: string }\n\
         workflow late_feed {\n  expect feed_file where job_id == \"L\" by 08:05 Etc/UTC\n}\n",
    )
    .unwrap();
    let state = dir.join("state").display().to_string();
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["token", "create", "--role", "viewer", "--name", "test", "--state-dir", &state])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let token = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let (config, rules) = (config.display().to_string(), rules.display().to_string());
    let process =
        Service::start(&["--config", &config, "--clock", "event", "--state-dir", &state, &rules], &dir.join("mon.log"));
    let owner = mon_runtime::engine::owner("late_feed", TWO);
    let mut address = None;
    wait_until(Duration::from_secs(60), "both tasks on the one process", || {
        let tasks = process.tasks();
        address = tasks.iter().find(|(t, _)| *t == owner).and_then(|(_, a)| a.clone());
        tasks.len() == 2 && address.is_some()
    });
    let address = address.unwrap();

    let start = mon_stdlib::time::parse_rfc3339("2026-03-02T08:00:00Z").unwrap();
    let file = event("feed_file", "file-L", start, r#"{"job_id":"L"}"#).into_bytes();
    let origin = (owner + 1) % TWO;
    let handed = |topic: &str, offset: i64| {
        let from = format!("{topic}/{origin}@{offset}").into_bytes();
        (None, file.clone(), vec![("mon-handed-from".to_string(), from)])
    };
    let repartition = format!("{topic}.repartition");
    let copies = [handed(&topic, 5), handed(&topic, 5), handed(&topic, 4), handed("payments", 5)];
    kafka::produce_to(&repartition, Some(i32::from(owner)), copies);

    // The status is made once a second: wait for the first, then long
    // enough for any other to show.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let status_of = |bearer: Option<&str>| {
        let mut request = agent.get(&format!("http://{address}/api/v1/status"));
        if let Some(token) = bearer {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().unwrap();
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
    };
    assert_eq!(status_of(None).0, 401, "auth is on in the task's API");
    let accepted = || {
        let (code, body) = status_of(Some(&token));
        assert_eq!(code, 200, "the process's token opens its task's API: {body}");
        let status: Value = serde_json::from_str(&body).unwrap_or_default();
        status["events_accepted"].as_u64().unwrap_or(0)
    };
    wait_until(Duration::from_secs(30), "the handed event taken", || accepted() >= 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(accepted(), 2, "once from the input topic's origin, once from the other topic's");
    process.terminate();
}
