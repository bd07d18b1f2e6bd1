//! Rules without deployments, on a real `mon run` over HTTP with a real
//! state directory: versions stored, validated, diffed and activated while
//! items are in flight (kept stages carry over and meet the new deadlines,
//! removed stages are superseded), the audit log, rollback, enabling and
//! disabling a workflow, what a restart runs (an API activation survives
//! it; a changed rules directory is a deployment), and `mon rules`.
//!
//! The service runs on the event clock, so every deadline is decided by
//! the events' times, not by how fast the test runs.

#[path = "support/service.rs"]
mod service;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use service::Service;

const V1: &str = r#"
event job_started { job: string }
event job_checked { job: string }
event job_done { job: string }

workflow jobs {
  key job
  start started: job_started
  step checked: job_checked after started within 10m
  step done: job_done after checked within 10m
}
"#;

/// `checked` becomes `verified` with a longer deadline.
const V2: &str = r#"
event job_started { job: string }
event job_checked { job: string }
event job_done { job: string }

workflow jobs {
  key job
  start started: job_started
  step verified: job_checked after started within 30m
  step done: job_done after verified within 10m
}
"#;

const T0: &str = "2026-01-05T09:00:00Z";

fn at(minutes: i64) -> String {
    let t0 = mon_stdlib::time::parse_rfc3339(T0).unwrap();
    mon_stdlib::time::format_rfc3339(t0 + minutes * 60_000)
}

fn event(kind: &str, job: &str, minutes: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{kind}-{job}-{minutes}","source":"test","type":"{kind}","time":"{}","data":{{"job":"{job}"}}}}"#,
        at(minutes)
    )
}

fn write_rules(dir: &Path, name: &str, text: &str) -> PathBuf {
    let rules = dir.join(name);
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("jobs.mon"), text).unwrap();
    rules
}

fn start(dir: &Path, rules: &Path, log: &str) -> Service {
    let state = dir.join("state");
    Service::start(
        &["--clock", "event", "--state-dir", &state.display().to_string(), &rules.display().to_string()],
        &dir.join(log),
    )
}

fn get(service: &Service, path: &str) -> Value {
    let (status, body) = service.get_any(path).expect("GET");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn post(service: &Service, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = service.post(path, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: no JSON: {text}")))
}

fn post_events(service: &Service, lines: &[String]) {
    let (status, body) = service.post("/api/v1/events", &lines.join("\n"));
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["accepted"], lines.len(), "{body}");
}

fn bundle(text: &str) -> Value {
    json!({ "jobs.mon": text })
}

/// Records of `kind` for `job`, from the service's record log.
fn records(service: &Service, kind: &str, job: &str) -> Vec<Value> {
    let page = get(service, &format!("/api/v1/records?kind={kind}&limit=1000"));
    page["records"].as_array().unwrap().iter().filter(|r| r["key"]["job"] == job).cloned().collect()
}

fn audit(service: &Service, query: &str) -> Vec<Value> {
    get(service, &format!("/api/v1/audit?{query}"))["entries"].as_array().unwrap().clone()
}

#[test]
fn an_activation_keeps_items_in_kept_stages_retimes_them_and_supersedes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), "rules", V1);
    let service = start(dir.path(), &rules, "mon.log");

    // The directory is version 1, and runs.
    let versions = get(&service, "/api/v1/rules/versions");
    assert_eq!(versions["active"], 1, "{versions}");
    assert_eq!(versions["versions"][0]["origin"], "directory");

    post_events(
        &service,
        &[event("job_started", "k1", 0), event("job_started", "k2", 0), event("job_checked", "k2", 1)],
    );

    // A bundle that does not compile is refused with the compiler's diagnostics.
    let (status, refused) = post(&service, "/api/v1/rules/versions", json!({ "files": bundle("workflow {") }));
    assert_eq!(status, 422, "{refused}");
    let diagnostic = &refused["error"]["details"]["diagnostics"][0];
    assert_eq!(diagnostic["file"], "jobs.mon", "{refused}");
    assert!(diagnostic["line"].as_u64().is_some() && diagnostic["code"].as_str().is_some(), "{refused}");
    let (status, validation) = post(&service, "/api/v1/rules/validate", json!({ "files": bundle("workflow {") }));
    assert_eq!((status, &validation["ok"]), (200, &json!(false)), "{validation}");
    assert_eq!(validation["diagnostics"], refused["error"]["details"]["diagnostics"]);

    let (status, stored) = post(
        &service,
        "/api/v1/rules/versions",
        json!({ "files": bundle(V2), "message": "checked is verified", "author": "ana" }),
    );
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["version"]["version"], 2);
    assert_eq!(stored["version"]["author"], "ana");
    // The same bundle again is the same version: a CI pipeline may push twice.
    let (status, again) = post(&service, "/api/v1/rules/versions", json!({ "files": bundle(V2) }));
    assert_eq!((status, &again["version"]["version"], &again["created"]), (200, &json!(2), &json!(false)), "{again}");

    let diff = get(&service, "/api/v1/rules/versions/2/diff");
    assert_eq!(diff["from"], 1);
    let changed = &diff["program"]["workflows_changed"][0];
    assert_eq!(changed["steps_added"], json!(["verified"]), "{diff}");
    assert_eq!(changed["steps_removed"], json!(["checked"]), "{diff}");
    assert!(diff["source"][0]["diff"].as_str().unwrap().contains("+  step verified"), "{diff}");

    let (status, activated) =
        post(&service, "/api/v1/rules/versions/2/activate", json!({ "message": "go", "by": "ana" }));
    assert_eq!(status, 200, "{activated}");
    assert_eq!((&activated["version"], &activated["previous"]), (&json!(2), &json!(1)));
    assert_eq!(activated["migration"]["carried_count"], 1, "{activated}");
    let superseded = activated["migration"]["superseded"].as_array().unwrap();
    assert_eq!(superseded.len(), 1, "{activated}");
    assert_eq!(superseded[0]["key"], "k2", "{activated}");
    let (status, twice) = post(&service, "/api/v1/rules/versions/2/activate", json!({}));
    assert_eq!((status, &twice["error"]["code"]), (409, &json!("conflict")), "{twice}");

    // k1 waits for `verified` now, 30 minutes from its start: past the old
    // 10-minute deadline nothing is missing, past the new one it is.
    post_events(&service, &[event("job_started", "filler-1", 20)]);
    assert!(records(&service, "missing", "k1").is_empty(), "{:?}", records(&service, "missing", "k1"));
    post_events(&service, &[event("job_started", "filler-2", 31)]);
    let missing = records(&service, "missing", "k1");
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!((&missing[0]["step"], &missing[0]["deadline"]), (&json!("verified"), &json!(at(30))));
    let gone = records(&service, "superseded", "k2");
    assert_eq!(gone.len(), 1, "{gone:?}");

    // The audit log says who did what, with the diff and what was superseded.
    let entries = audit(&service, "action=rules");
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["rules.activated", "rules.version_stored", "rules.version_stored"], "{entries:?}");
    let activation = &entries[0];
    assert_eq!((&activation["who"], &activation["target"]), (&json!("ana"), &json!("2")));
    assert_eq!(activation["details"]["diff"]["program"]["workflows_changed"][0]["steps_added"], json!(["verified"]));
    assert_eq!(activation["details"]["migration"]["superseded"][0]["key"], "k2");
    assert_eq!(entries[2]["who"], "mon run", "the directory's import: {entries:?}");

    // A restart after SIGKILL runs version 2 still (the API's activation
    // survives, since the rules directory did not change), and replays
    // nothing twice.
    service.kill9();
    let service = start(dir.path(), &rules, "mon-2.log");
    assert_eq!(get(&service, "/api/v1/rules/versions")["active"], 2);
    assert_eq!(records(&service, "missing", "k1").len(), 1);
    assert_eq!(records(&service, "superseded", "k2").len(), 1);
    post_events(&service, &[event("job_checked", "k1", 32)]);
    let late = records(&service, "late", "k1");
    assert_eq!(late.len(), 1, "k1 took `verified` under version 2 after the restart: {late:?}");

    // Rollback: version 1 runs again.
    let (status, rolled) = post(&service, "/api/v1/rules/rollback", json!({ "by": "bo" }));
    assert_eq!((status, &rolled["version"], &rolled["previous"]), (200, &json!(1), &json!(2)), "{rolled}");
    assert_eq!(audit(&service, "who=bo")[0]["action"], "rules.rolled_back");
    let history = get(&service, "/api/v1/rules/activations");
    let runs: Vec<&Value> = history["activations"].as_array().unwrap().iter().map(|a| &a["version"]).collect();
    assert_eq!(runs, [&json!(1), &json!(2), &json!(1)], "{history}");
    service.terminate();

    // A changed rules directory is a deployment: imported and activated at start.
    std::fs::write(rules.join("jobs.mon"), V2.replace("within 30m", "within 45m")).unwrap();
    let service = start(dir.path(), &rules, "mon-3.log");
    let versions = get(&service, "/api/v1/rules/versions");
    assert_eq!((&versions["active"], &versions["versions"][0]["version"]), (&json!(3), &json!(3)), "{versions}");
    // Audited once the activation's batch is durable, just after start.
    service::wait_until_true(std::time::Duration::from_secs(10), "the deployment audited", || {
        audit(&service, "action=rules.activated")[0]["who"] == "mon run"
    });
    assert_eq!(audit(&service, "action=rules.activated")[0]["target"], "3");
    service.terminate();
}

#[test]
fn a_disabled_workflow_takes_no_events_until_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), "rules", V1);
    let service = start(dir.path(), &rules, "mon.log");
    let (status, off) = post(&service, "/api/v1/workflows/jobs/disable", json!({ "reason": "noisy", "by": "cy" }));
    assert_eq!((status, &off["enabled"]), (200, &json!(false)), "{off}");
    post_events(&service, &[event("job_started", "quiet", 0)]);
    let (status, on) = post(&service, "/api/v1/workflows/jobs/enable", json!({}));
    assert_eq!((status, &on["enabled"]), (200, &json!(true)), "{on}");
    post_events(&service, &[event("job_started", "loud", 1), event("job_started", "filler", 30)]);
    assert!(records(&service, "missing", "quiet").is_empty(), "an event while disabled started nothing");
    assert_eq!(records(&service, "missing", "loud").len(), 1, "enabled again, it monitors");
    let (status, unknown) = post(&service, "/api/v1/workflows/nope/disable", json!({}));
    assert_eq!((status, &unknown["error"]["code"]), (404, &json!("not_found")), "{unknown}");
    let entries = audit(&service, "target=jobs");
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["workflow.enabled", "workflow.disabled"]);
    assert_eq!((&entries[1]["who"], &entries[1]["details"]["reason"]), (&json!("cy"), &json!("noisy")));
    service.terminate();
}

/// Every conformance case, stored as a version and dry-run over its
/// events, answers exactly what `mon simulate --notifications` prints.
#[test]
fn a_dry_run_answers_what_mon_simulate_prints_for_the_conformance_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), "rules", V1);
    let service = start(dir.path(), &rules, "mon.log");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 10);
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy();
        let files = mon_service::rules::Bundle::from_dir(&case.join("rules"), mon_stdlib::registry()).unwrap();
        let (status, stored) = post(&service, "/api/v1/rules/versions", json!({ "files": files, "message": name }));
        assert!(status == 201 || status == 200, "{name}: {stored}");
        let version = stored["version"]["version"].as_u64().unwrap();
        let args: Vec<String> = std::fs::read_to_string(case.join("args"))
            .map(|a| a.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        let events = std::fs::read_to_string(case.join("events.ndjson")).unwrap();
        let body = json!({ "events": events, "from": flag("--from"), "until": flag("--until"), "notifications": true });
        let (status, answer) = post(&service, &format!("/api/v1/rules/versions/{version}/dry-run"), body);
        assert_eq!(status, 200, "{name}: {answer}");

        let mut simulate = Command::new(env!("CARGO_BIN_EXE_mon"));
        simulate.arg("simulate").arg(case.join("rules")).arg("--events").arg(case.join("events.ndjson"));
        simulate.args(["--format", "ndjson", "--notifications"]).args(&args);
        let output = simulate.output().unwrap();
        let printed: Vec<Value> =
            String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let part = |kind: &dyn Fn(&Value) -> bool| printed.iter().filter(|v| kind(v)).cloned().collect::<Vec<_>>();
        let expected_records = part(&|v| v["kind"] != "summary" && v["kind"] != "notification");
        assert!(!expected_records.is_empty(), "{name}: the case makes records");
        assert_eq!(answer["records"].as_array().unwrap(), &expected_records, "{name}: records");
        assert_eq!(answer["notifications"].as_array().unwrap(), &part(&|v| v["kind"] == "notification"), "{name}");
        assert_eq!(answer["summary"].as_array().unwrap(), &part(&|v| v["kind"] == "summary"), "{name}: summary");
    }
    service.terminate();
}

#[test]
fn mon_rules_pushes_diffs_activates_and_lists_versions() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), "rules", V1);
    let service = start(dir.path(), &rules, "mon.log");
    let server = format!("http://{}", service.address);
    let mon = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_mon"))
            .arg("rules")
            .args(args)
            .args(["--server", &server])
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let next = write_rules(dir.path(), "next", V2);
    let (code, out, err) = mon(&["push", &next.display().to_string(), "-m", "rename checked"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("stored version 2 (1 files"), "{out}");
    let (code, out, _) = mon(&["diff", "2"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("+ step verified") && out.contains("- step checked") && out.contains("+++ b/jobs.mon"),
        "{out}"
    );
    let (code, out, err) = mon(&["activate", "2", "-m", "ship it"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("version 2 runs (was 1)"), "{out}");
    let (code, out, _) = mon(&["log"]);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("*    2") && lines[0].ends_with("rename checked"), "{out}");
    assert!(lines[1].starts_with("     1"), "{out}");
    // Rules that do not compile: the service refuses them, mon says why, exit 1.
    let broken = write_rules(dir.path(), "broken", &V2.replace("after verified", "after nowhere"));
    let (code, _, err) = mon(&["push", &broken.display().to_string()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("do not compile") && err.contains("jobs.mon:"), "{err}");
    // No service there: exit 2, saying so.
    let output = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["rules", "log", "--server", &format!("http://{}", service::free_address())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach the service"));
    service.terminate();
}

#[path = "support/kafka.rs"]
mod kafka;

/// Activation while Kafka flows: every event is applied once (the count
/// of accepted events is exact, and no item misses a step or sees one
/// twice), and items in flight carry over.
#[test]
fn an_activation_while_kafka_flows_loses_and_repeats_no_event() {
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let topic = kafka::unique_topic("rules-flow");
    let (records, dead) = (format!("{topic}.records"), format!("{topic}.dead"));
    for name in [&topic, &records, &dead] {
        kafka::create_topic(name, 1);
    }
    let audit_topic = format!("{topic}.audit");
    kafka::create_topic(&audit_topic, 1);
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic);
    // The audit topic is a `[kafka]` key: it goes before `[kafka.properties]`.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("[kafka.properties]", &format!("audit_topic = \"{audit_topic}\"\n[kafka.properties]"), 1);
    std::fs::write(&config, text).unwrap();
    let rules = write_rules(dir.path(), "rules", V1);
    let state = dir.path().join("state");
    let service = Service::start(
        &[
            "--config",
            &config.display().to_string(),
            "--clock",
            "event",
            "--state-dir",
            &state.display().to_string(),
            &rules.display().to_string(),
        ],
        &dir.path().join("mon.log"),
    );
    // Item i starts at i seconds and takes each step a second later: at any
    // moment some items are in each stage.
    const ITEMS: i64 = 3000;
    let lines_of = |i: i64| -> Vec<String> {
        let job = format!("j{i}");
        let second = |s: i64| {
            let t0 = mon_stdlib::time::parse_rfc3339(T0).unwrap();
            mon_stdlib::time::format_rfc3339(t0 + s * 1000)
        };
        ["job_started", "job_checked", "job_done"]
            .iter()
            .enumerate()
            .map(|(n, kind)| {
                format!(
                    r#"{{"specversion":"1.0","id":"{kind}-{job}","source":"test","type":"{kind}","time":"{}","data":{{"job":"{job}"}}}}"#,
                    second(i + n as i64)
                )
            })
            .collect()
    };
    // Events in time order: an item's steps interleave with the next ones' starts.
    let mut all: Vec<(i64, String)> = Vec::new();
    for i in 0..ITEMS {
        for (n, line) in lines_of(i).into_iter().enumerate() {
            all.push((i + n as i64, line));
        }
    }
    all.sort_by_key(|(t, _)| *t);
    let lines: Vec<String> = all.into_iter().map(|(_, l)| l).collect();
    let total = lines.len();
    let producer_topic = topic.clone();
    let producer = std::thread::spawn(move || {
        for chunk in lines.chunks(500) {
            kafka::produce_lines(&producer_topic, chunk);
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
    });
    let accepted = |service: &Service| get(service, "/api/v1/status")["events_accepted"].as_u64().unwrap_or(0);
    service::wait_until_true(std::time::Duration::from_secs(60), "some events consumed", || accepted(&service) > 1500);
    let (status, stored) = post(
        &service,
        "/api/v1/rules/versions",
        json!({ "files": bundle(&V1.replace("after checked within 10m", "after checked within 20m")) }),
    );
    assert_eq!(status, 201, "{stored}");
    let (status, activated) =
        post(&service, "/api/v1/rules/versions/2/activate", json!({ "message": "while flowing" }));
    assert_eq!(status, 200, "{activated}");
    assert!(activated["migration"]["carried_count"].as_u64().unwrap() > 0, "items were in flight: {activated}");
    assert_eq!(activated["migration"]["superseded"], json!([]), "every stage is kept: {activated}");
    let at_activation = accepted(&service) as usize;
    assert!(at_activation < total, "the activation came while events flowed ({at_activation} of {total} in)");
    producer.join().unwrap();
    // Past every deadline: an item that lost an event would now be missing it.
    kafka::produce_lines(&topic, &[event("job_started", "clock", 24 * 60)]);
    service::wait_until_true(std::time::Duration::from_secs(60), "every event consumed", || {
        accepted(&service) as usize == total + 1
    });
    let page = get(&service, "/api/v1/records?limit=1000");
    let problems: Vec<&Value> =
        page["records"].as_array().unwrap().iter().filter(|r| r["key"]["job"] != "clock").collect();
    assert!(problems.is_empty(), "{} records about the flowing items: {problems:?}", problems.len());
    assert_eq!(get(&service, "/api/v1/status")["events_accepted"], total + 1, "no event applied twice");
    service.terminate();

    // The audit log went to its topic too, in order, keyed by sequence.
    let published =
        kafka::consume_all(&audit_topic, 3, std::time::Duration::from_millis(1500), std::time::Duration::from_secs(20));
    let entries: Vec<Value> =
        published.iter().map(|m| serde_json::from_slice(m.payload.as_deref().unwrap_or_default()).unwrap()).collect();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(actions, ["rules.version_stored", "rules.version_stored", "rules.activated"], "{entries:?}");
    let keys: Vec<String> =
        published.iter().map(|m| String::from_utf8_lossy(m.key.as_deref().unwrap_or_default()).into_owned()).collect();
    assert_eq!(keys, ["0", "1", "2"]);
    assert_eq!(entries[2]["details"]["message"], "while flowing");
}

/// A dry-run without events replays the stored history: for the running
/// version it makes exactly the records the service made, and against
/// another version it shows what that one would have changed.
#[test]
fn a_dry_run_over_the_stored_history_matches_the_service_and_compares_versions() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), "rules", V1);
    let service = start(dir.path(), &rules, "mon.log");
    post_events(
        &service,
        &[
            event("job_started", "k1", 0),
            event("job_started", "k2", 0),
            event("job_checked", "k2", 1),
            event("job_started", "filler", 20),
        ],
    );
    let made: Vec<Value> = get(&service, "/api/v1/records?limit=1000")["records"].as_array().unwrap().clone();
    assert!(made.iter().any(|r| r["kind"] == "missing" && r["key"]["job"] == "k1"), "{made:?}");
    let (status, answer) = post(&service, "/api/v1/rules/versions/1/dry-run", json!({}));
    assert_eq!((status, &answer["source"], &answer["truncated"]), (200, &json!("history"), &json!(false)), "{answer}");
    let ids = |records: &[Value]| {
        let mut ids: Vec<String> = records.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(answer["records"].as_array().unwrap()), ids(&made), "the history replayed is what the service saw");

    let (status, _) = post(&service, "/api/v1/rules/versions", json!({ "files": bundle(V2) }));
    assert_eq!(status, 201);
    let (status, answer) = post(&service, "/api/v1/rules/versions/2/dry-run", json!({ "against": 1 }));
    assert_eq!(status, 200, "{answer}");
    let only_before = answer["compared"]["only_in_against"].as_array().unwrap();
    assert!(
        only_before.iter().any(|r| r["kind"] == "missing" && r["key"]["job"] == "k1" && r["deadline"] == at(10)),
        "version 2 waits 30m for k1, so the 10m miss goes: {answer}"
    );
    service.terminate();
}
