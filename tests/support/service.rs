//! Runs `mon run` as a child process, as an operator would, for the
//! service tests: start, wait until ready, read its API, stop it with
//! SIGTERM or kill it with SIGKILL.
//!
//! Include with `#[path = "support/service.rs"] mod service;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Service {
    child: Option<Child>,
    pub address: String,
    pub log: PathBuf,
}

/// A free TCP port on loopback, for a process the test starts later.
///
/// Why not port 0 (bind, read the port, release): the kernel takes port 0
/// from the ephemeral range, the same range every outgoing connection's
/// local port comes from, and the Kafka clients of the processes under
/// test open many; one of them took such a port before the process meant
/// to listen on it did (a test failed so). Ports below that range are
/// never handed out on their own: this takes one there, spread by process
/// id and a counter, and checks that it is free now (another test may
/// still take it before the process binds it, as with any such choice).
pub fn free_address() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // The first ephemeral port (32,768 unless the machine says otherwise).
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    assert!(ephemeral > FIRST + 1_000, "the ephemeral ports start at {ephemeral}: no room below them");
    let count = ephemeral - FIRST;
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..count {
        let port = FIRST + start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % count;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            return listener.local_addr().expect("address").to_string();
        }
    }
    panic!("no free port between {FIRST} and {ephemeral}");
}

/// A config file for a Kafka-fed service with quick group joins.
pub fn kafka_config(dir: &Path, brokers: &str, topic: &str, records: &str, dead: &str, group: &str) -> PathBuf {
    let path = dir.join("mon.toml");
    let text = format!(
        "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{group}\"\n\
         records_topic = \"{records}\"\ndead_letter_topic = \"{dead}\"\n\
         [kafka.properties]\n\"session.timeout.ms\" = \"2000\"\n\"heartbeat.interval.ms\" = \"200\"\n"
    );
    std::fs::write(&path, text).expect("write mon.toml");
    path
}

impl Service {
    /// Starts `mon run` with `args` (the listen address is added) and
    /// waits until `/readyz` answers 200.
    pub fn start(args: &[&str], log: &Path) -> Service {
        let service = Service::spawn(args, log);
        service.wait_ready(Duration::from_secs(30));
        service
    }

    /// Starts `mon run` without waiting for readiness (only for `/healthz`).
    pub fn spawn(args: &[&str], log: &Path) -> Service {
        let address = free_address();
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open the log");
        let child = Command::new(env!("CARGO_BIN_EXE_mon"))
            .arg("run")
            .args(args)
            .args(["--listen", &address, "--log-format", "json"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start mon run");
        let service = Service { child: Some(child), address, log: log.to_path_buf() };
        service.wait_http(Duration::from_secs(20));
        service
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its log, for a failure's message.
    #[allow(dead_code)]
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn wait_http(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.get("/healthz").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mon run did not answer on {} within {limit:?}; log:\n{}", self.address, self.log_text());
    }

    pub fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(response) = ureq::get(&self.url("/readyz")).call() {
                if response.status() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let readyz = self.get_any("/readyz");
        panic!("mon run not ready within {limit:?}: {readyz:?}; log:\n{}", self.log_text());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The body of a 2xx answer.
    pub fn get(&self, path: &str) -> Option<String> {
        let mut response = ureq::get(&self.url(path)).call().ok()?;
        response.body_mut().read_to_string().ok()
    }

    /// Status and body, whatever the status.
    pub fn get_any(&self, path: &str) -> Option<(u16, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent.get(&self.url(path)).call().ok()?;
        let status = response.status().as_u16();
        Some((status, response.body_mut().read_to_string().ok()?))
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent.post(&self.url(path)).send(body).expect("POST");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap_or_default())
    }

    /// The value of one metric line (exact name with labels), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics")?;
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// The sum of every series of a metric family (any labels).
    pub fn metric_sum(&self, name: &str) -> f64 {
        let text = self.get("/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' ')))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGTERM, then waits for a clean exit (and returns its status code).
    pub fn terminate(mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("mon run did not stop within 30 s of SIGTERM; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`STOP`, `CONT`...) to the process.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a running process");
        let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal}");
    }

    /// Waits for the process to exit on its own; its status code.
    pub fn wait_exit(mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        match exit_within(&mut child, limit) {
            Some(code) => code,
            None => panic!("mon run did not exit within {limit:?}; log:\n{}", self.log_text()),
        }
    }

    /// Waits until the process has consumed at least `events` events (all
    /// types, accepted); how many it had then. Panics after `limit`.
    pub fn wait_for_events(&self, events: usize, limit: Duration) -> f64 {
        let started = Instant::now();
        loop {
            let consumed = self.metric_sum("mon_events_total");
            if consumed >= events as f64 {
                return consumed;
            }
            assert!(started.elapsed() < limit, "mon run consumed {consumed} of {events} events within {limit:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// With `[kafka] scale_out`: the tasks this process runs, each with
    /// the address of its own API once it listens (`GET /api/v1/tasks`).
    pub fn tasks(&self) -> Vec<(u16, Option<String>)> {
        let view: serde_json::Value =
            serde_json::from_str(&self.get("/api/v1/tasks").unwrap_or_default()).unwrap_or_default();
        let Some(tasks) = view["tasks"].as_array() else { return Vec::new() };
        tasks
            .iter()
            .filter_map(|t| Some((t["partition"].as_u64()? as u16, t["address"].as_str().map(str::to_string))))
            .collect()
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The body of a 2xx answer of a scale-out task's own API at `address`.
pub fn task_get(address: &str, path: &str) -> Option<String> {
    let mut response = ureq::get(&format!("http://{address}{path}")).call().ok()?;
    response.body_mut().read_to_string().ok()
}

/// The sum of every series of metric family `name` of the task at `address`.
pub fn task_metric_sum(address: &str, name: &str) -> f64 {
    let text = task_get(address, "/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Whether the tasks of `processes` are `partitions` in all, and each has
/// read its partition of `topic` to the end.
pub fn tasks_caught_up(processes: &[&Service], topic: &str, partitions: usize) -> bool {
    let all: Vec<Option<String>> = processes.iter().flat_map(|p| p.tasks()).map(|(_, a)| a).collect();
    let input = format!("topic=\"{topic}\"");
    all.len() == partitions
        && all.iter().all(|address| {
            let Some(address) = address else { return false };
            let text = task_get(address, "/metrics").unwrap_or_default();
            let lags: Vec<&str> =
                text.lines().filter(|l| l.starts_with("mon_consumer_lag{") && l.contains(&input)).collect();
            lags.len() == 1 && lags[0].ends_with(" 0")
        })
}

/// Waits for `child` to exit: its status code, or `None` (and the child
/// killed) if it is still running after `limit`.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<Option<i32>> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.code());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `mon simulate` and returns its records as the service makes them:
/// no summary lines, no `line` fields.
pub fn simulate(rules: &Path, events: &Path, extra: &[String]) -> Vec<serde_json::Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_mon"))
        .arg("simulate")
        .arg(rules)
        .arg("--events")
        .arg(events)
        .args(extra)
        .output()
        .expect("run mon simulate");
    assert!(
        output.status.success() || output.status.code() == Some(1),
        "mon simulate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] != "summary")
        .map(|mut v| {
            // Where a line sits in a file: the service reads no file
            // (LANGUAGE.md changelog v1.4).
            if let Some(record) = v.as_object_mut() {
                record.remove("line");
            }
            v
        })
        .collect()
}

impl Service {
    /// SIGTERM, then waits at most `limit` for the exit. `Ok` with its status
    /// code, or `Err` saying it was still running (it is then killed with
    /// SIGKILL, and the error carries its log).
    pub fn terminate_within(mut self, limit: Duration) -> Result<Option<i32>, String> {
        let Some(mut child) = self.child.take() else { return Ok(None) };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        exit_within(&mut child, limit)
            .ok_or_else(|| format!("still running {limit:?} after SIGTERM; log:\n{}", self.log_text()))
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Rules with one deadline: `job_done` within `within` (e.g. `1s`) of `job_started`.
pub fn write_job_rules(dir: &Path, within: &str) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    let text = format!(
        "event job_started {{ job: string }}\nevent job_done {{ job: string }}\n\n\
         workflow jobs {{\n  key job\n  start started: job_started\n  step done: job_done after started within {within}\n}}\n"
    );
    std::fs::write(rules.join("jobs.mon"), text).expect("write rules");
    rules
}

/// A `job_started` envelope for job `J{n}` at `time` (ms).
pub fn job_started(n: usize, time: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"j{n}","source":"test","type":"job_started","time":"{}","data":{{"job":"J{n}"}}}}"#,
        mon_stdlib::time::format_rfc3339(time)
    )
}

/// A `kind` envelope (`job_started`, `job_done`) for job `job` at `time`
/// (ms), with the id `{kind}-{job}`.
pub fn job_event(kind: &str, job: &str, time: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{kind}-{job}","source":"test","type":"{kind}","time":"{}","data":{{"job":"{job}"}}}}"#,
        mon_stdlib::time::format_rfc3339(time)
    )
}

/// The notification ids `mon simulate --notifications` gives for the
/// events in `file`.
pub fn simulated_notification_ids(rules: &Path, file: &Path) -> std::collections::BTreeSet<String> {
    simulate(rules, file, &["--notifications".to_string()])
        .into_iter()
        .filter(|n| n["kind"] == "notification")
        .map(|n| n["id"].as_str().expect("a notification id").to_string())
        .collect()
}

/// Records by id, and how many ids came more than once; panics if one id
/// was published with two contents.
pub fn distinct(records: &[serde_json::Value]) -> (std::collections::BTreeMap<String, String>, usize) {
    let mut map = std::collections::BTreeMap::new();
    let mut repeats = 0;
    for record in records {
        let id = record["id"].as_str().expect("id").to_string();
        let text = record.to_string();
        if let Some(previous) = map.insert(id.clone(), text.clone()) {
            assert_eq!(previous, text, "record {id} was published with two different contents");
            repeats += 1;
        }
    }
    (map, repeats)
}

/// A trade lifecycle stream written by `mon bench --emit` into `dir/stream`.
pub struct TradeStream {
    /// The events, then one of a type no rule uses just past the last, so
    /// that a service on the event clock fires what `mon simulate --until
    /// end` fires.
    pub lines: Vec<String>,
    /// The same lines as a file, for `mon simulate`.
    pub events: PathBuf,
    pub rules: PathBuf,
    /// The last event's time (ms).
    pub end: i64,
}

/// `trades` trades, `stall_rate` of them stalled (`mon bench` flags).
pub fn trade_stream(dir: &Path, trades: &str, stall_rate: &str) -> TradeStream {
    let stream = dir.join("stream");
    let status = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["bench", "--trades", trades, "--stall-rate", stall_rate, "--emit"])
        .arg(&stream)
        .output()
        .expect("mon bench --emit");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let mut lines: Vec<String> =
        std::fs::read_to_string(stream.join("events.ndjson")).unwrap().lines().map(str::to_string).collect();
    let end = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| mon_stdlib::time::parse_rfc3339(v["time"].as_str()?))
        .max()
        .unwrap();
    lines.push(format!(
        r#"{{"specversion":"1.0","id":"clock","source":"test","type":"mon_test_clock","time":"{}","data":{{}}}}"#,
        mon_stdlib::time::format_rfc3339(end + 1)
    ));
    let events = dir.join("all.ndjson");
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    TradeStream { lines, events, rules: stream.join("rules"), end }
}

/// Makes `mon bench`'s trade lifecycle (in `rules/bench.mon`) notify
/// `channel`, which the caller declares.
pub fn notify_trades(rules: &Path, channel: &str) {
    let bench = rules.join("bench.mon");
    let text = std::fs::read_to_string(&bench).unwrap();
    let text =
        text.replace("workflow trade_lifecycle {\n", &format!("workflow trade_lifecycle {{\n  notify {channel}\n"));
    assert!(text.contains(&format!("notify {channel}")), "the bench rules changed shape:\n{text}");
    std::fs::write(&bench, text).unwrap();
}

/// The trade lifecycle notifying a webhook at `hook` (channel `desk`), and
/// `workflows` (scheduled feeds, which may `notify desk`) beside it, in
/// `feed.mon`, with the feed events they take: `feed_file` and
/// `feed_loaded`, each with a `job_id`.
pub fn add_feeds(rules: &Path, hook: &str, workflows: &str) {
    notify_trades(rules, "desk");
    let declarations = format!(
        "channel desk webhook \"http://{hook}/hook\"\n\
         event feed_file {{ job_id: string }}\nevent feed_loaded {{ job_id: string }}\n"
    );
    std::fs::write(rules.join("feed.mon"), declarations + workflows).unwrap();
}

impl TradeStream {
    /// What `mon simulate --until end` makes of the stream, by id.
    pub fn expected(&self) -> std::collections::BTreeMap<String, String> {
        let until = mon_stdlib::time::format_rfc3339(self.end);
        distinct(&simulate(&self.rules, &self.events, &["--until".into(), until])).0
    }
}

/// Waits until `done` holds, polling; panics naming `what` after `limit`.
pub fn wait_until_true(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {limit:?}");
}
