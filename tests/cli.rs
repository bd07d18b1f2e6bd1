//! End-to-end tests of the `mon` binary: exit codes, output formats, and
//! that formatting a program never changes what it compiles to.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mon")).args(args).current_dir(root()).output().expect("mon runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// A fresh directory under the system's temporary directory, removed when
/// the test is done with it (also when it fails): a test run leaves nothing
/// behind in /tmp. It derefs to a `Path`, so it is used like one.
struct TempDir(tempfile::TempDir);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}

fn tempdir(name: &str) -> TempDir {
    TempDir(tempfile::Builder::new().prefix(&format!("mon-cli-{name}-")).tempdir().expect("create temp dir"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

const EXAMPLES: [&str; 4] = ["file_receipt", "trade_lifecycle", "batch_sequence", "grouped_metrics"];

#[test]
fn check_passes_on_every_example() {
    let out = mon(&["check", "examples/"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("in 4 programs: 0 errors, 0 warnings"), "{stderr}");
}

#[test]
fn check_exits_1_with_errors_and_2_on_usage_errors() {
    let dir = tempdir("exit");
    let bad = dir.join("bad.mon");
    std::fs::write(&bad, "workflow w { key id\n expect nothing_here }\n").expect("write");
    let out = mon(&["check", bad.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown event `nothing_here`"));

    assert_eq!(mon(&["check", "/no/such/path.mon"]).status.code(), Some(2));
    assert_eq!(mon(&["check", "--format", "yaml", "examples/"]).status.code(), Some(2));
    assert_eq!(mon(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn check_json_gives_one_object_per_diagnostic_with_positions() {
    let dir = tempdir("json");
    std::fs::write(dir.join("a.mon"), "event e { id: string }\nworkflow w {\n  key id\n  expect ee\n}\n")
        .expect("write");
    let out = mon(&["check", "--format", "json", dir.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let d = &lines[0];
    assert_eq!(d["code"], "E201");
    assert_eq!(d["severity"], "error");
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(4), Some(10)));
    assert_eq!(d["help"], "did you mean `e`?");
}

#[test]
fn errors_in_several_files_are_all_reported_sorted_by_file_and_line() {
    let dir = tempdir("many");
    std::fs::write(dir.join("b.mon"), "event e { id: strin }\n").expect("write");
    std::fs::write(dir.join("a.mon"), "workflow w {\n  key id\n  expect e within 5 minutes\n  then f\n}\n")
        .expect("write");
    let out = mon(&["check", "--format", "json", dir.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found: Vec<(String, u64, String)> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .map(|d| {
            let file = d["file"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
            (file, d["line"].as_u64().unwrap_or_default(), d["code"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("a.mon".to_string(), 3, "E102".to_string()),
            ("a.mon".to_string(), 4, "E201".to_string()),
            ("b.mon".to_string(), 1, "E211".to_string()),
        ],
        "{stdout}"
    );
}

#[test]
fn compile_emits_json_with_a_hash_ir_and_dot() {
    let json = mon(&["compile", "examples/trade_lifecycle", "--emit", "json"]);
    assert!(json.status.success(), "{}", String::from_utf8_lossy(&json.stderr));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(value["hash"].as_str().map(str::len), Some(64));
    let workflow = &value["program"]["workflows"][0];
    assert_eq!(workflow["name"], "trade_lifecycle");
    let steps: Vec<&str> =
        workflow["steps"].as_array().expect("steps").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(steps, ["ingested", "verified", "sent3", "acked", "nacked", "sent4"]);

    let dot = mon(&["compile", "examples/trade_lifecycle", "--emit", "dot"]);
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(dot.starts_with("digraph mon {"), "{dot}");
    assert!(dot.contains("w0_s2 -> w0_s3"), "sent3 -> acked edge:\n{dot}");
    assert!(dot.contains("peripheries=2, color=red"), "nacked closes with failure:\n{dot}");

    let ir = mon(&["compile", "examples/trade_lifecycle"]);
    let ir = String::from_utf8_lossy(&ir.stdout);
    assert!(ir.contains("stage sent3 -> [acked, nacked] timers [acked]"), "{ir}");

    assert_eq!(mon(&["compile", "examples/"]).status.code(), Some(2), "several programs at once is a usage error");
}

/// The lowered state machines of the examples, reviewed like code.
#[test]
fn compiled_examples_listing() {
    for example in EXAMPLES {
        let out = mon(&["compile", &format!("examples/{example}")]);
        assert!(out.status.success(), "{example}: {}", String::from_utf8_lossy(&out.stderr));
        let listing = String::from_utf8_lossy(&out.stdout);
        // The first line is the hash, which changes with any change to the
        // program; the snapshot is about the structure.
        let listing: String = listing.lines().skip(1).collect::<Vec<_>>().join("\n");
        insta::assert_snapshot!(format!("compile_{example}"), listing);
    }
}

#[test]
fn formatting_keeps_the_program_hash_and_is_idempotent() {
    for example in EXAMPLES {
        let dir = tempdir(&format!("fmt-{example}"));
        copy_dir(&root().join("examples").join(example), &dir);
        let dir_arg = dir.to_str().expect("utf-8");
        let hash = |label: &str| {
            let out = mon(&["compile", dir_arg, "--emit", "json"]);
            assert!(out.status.success(), "{example} {label}: {}", String::from_utf8_lossy(&out.stderr));
            let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            value["hash"].as_str().expect("hash").to_string()
        };
        let before = hash("before fmt");
        let out = mon(&["fmt", dir_arg]);
        assert!(out.status.success(), "{example}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(hash("after fmt"), before, "{example}: formatting changed the program");
        let again = mon(&["fmt", "--check", dir_arg]);
        assert!(again.status.success(), "{example}: not idempotent: {}", String::from_utf8_lossy(&again.stdout));
    }
}

#[test]
fn fmt_check_lists_unformatted_files_and_changes_nothing() {
    let dir = tempdir("fmt-check");
    let file = dir.join("messy.mon");
    let messy = "event   e {id:string}\nworkflow w {key id\n  expect e}\n";
    std::fs::write(&file, messy).expect("write");
    let out = mon(&["fmt", "--check", dir.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("messy.mon"));
    assert_eq!(std::fs::read_to_string(&file).expect("read"), messy);
}

#[test]
fn mon_test_passes_on_the_examples_and_explains_a_failure() {
    let out = mon(&["test", "examples/"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().last().is_some_and(|l| l.starts_with("16 passed, 0 failed")), "{stdout}");

    let dir = tempdir("test-failure");
    copy_dir(&root().join("examples/trade_lifecycle"), &dir);
    let tests = dir.join("tests.mon");
    let text = std::fs::read_to_string(&tests)
        .expect("read")
        .replace("expect count failed trade_lifecycle == 1", "expect count failed trade_lifecycle == 2");
    std::fs::write(&tests, text).expect("write");
    let out = mon(&["test", dir.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL") && stdout.contains("a NACK from System 3 fails the trade"), "{stdout}");
    assert!(stdout.contains("expected count failed == 2") && stdout.contains("found    count failed is 1"), "{stdout}");
    assert!(stdout.contains("tests.mon:"), "the failure names its file and line: {stdout}");
}

#[test]
fn simulate_prints_records_a_summary_and_a_trace() {
    let events = "examples/trade_lifecycle/events.ndjson";
    let out = mon(&["simulate", "examples/trade_lifecycle", "--events", events]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert!(kinds.contains(&"missing") && kinds.contains(&"out_of_order"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"summary"));
    let missing = lines.iter().find(|l| l["kind"] == "missing").expect("a missing record");
    for field in ["workflow", "step", "key", "at", "deadline", "severity", "id"] {
        assert!(!missing[field].is_null(), "missing record lacks {field}: {missing}");
    }

    let summary = mon(&["simulate", "examples/trade_lifecycle", "--events", events, "--format", "summary"]);
    let summary = String::from_utf8_lossy(&summary.stdout);
    assert!(summary.starts_with("trade_lifecycle [red]"), "{summary}");
    assert!(summary.contains("aging:"), "{summary}");

    let trace = mon(&["simulate", "examples/trade_lifecycle", "--events", events, "--trace", "T-1006"]);
    let trace = String::from_utf8_lossy(&trace.stdout);
    assert!(trace.contains("took sent3 out of order, skipping verified"), "{trace}");
    assert!(trace.contains("filled in skipped step verified"), "{trace}");
    assert!(!trace.contains("trader"), "pii fields never reach a trace: {trace}");
}

#[test]
fn simulate_notifications_shows_the_paging_a_replay_would_cause() {
    let events = "examples/trade_lifecycle/events.ndjson";
    let args = ["simulate", "examples/trade_lifecycle", "--events", events, "--notifications"];
    let out = mon(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["kind"].as_str()).collect();
    // After the records and before the summary lines.
    let first = kinds.iter().position(|k| *k == "notification").expect("notifications");
    assert!(kinds[..first].iter().all(|k| *k != "summary" && *k != "notification"), "{kinds:?}");
    assert!(kinds[first..].iter().all(|k| *k == "notification" || *k == "summary"), "{kinds:?}");
    let pages: Vec<&serde_json::Value> = lines.iter().filter(|l| l["channel"] == "trade_pager").collect();
    assert!(!pages.is_empty(), "high alerts page trade_pager: {lines:?}");
    let acked = pages.iter().find(|l| l["step"] == "acked" && l["kind"] == "notification").expect("acked pages");
    // Each `group by` value under its own field's name (they were once
    // paired in the wrong order).
    assert_eq!(acked["group"], serde_json::json!({"region": "APAC", "book": "EQ-HK-1"}));
    assert!(acked["at"].as_str().is_some_and(|at| at.ends_with('Z')), "{acked}");

    let human = mon(&[&args[..], &["--format", "human", "--group-wait", "0s"]].concat());
    let human = String::from_utf8_lossy(&human.stdout);
    let line = human.lines().find(|l| l.contains("notify trade_pager")).expect("a page line");
    assert!(
        line.contains("FIRING high trade_lifecycle.acked at_risk: 1 item (book=EQ-HK-1, region=APAC) — T-1007"),
        "{line}"
    );
    // With no group wait, the first page goes at the instant of the record.
    assert!(line.starts_with("2026-03-03T08:08:35Z"), "{line}");

    let bad = mon(&[&args[..], &["--group-wait", "soon"]].concat());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"soon\" is not a duration"));
}

#[test]
fn simulate_rejects_bad_lines_with_a_reason_and_keeps_going() {
    let dir = tempdir("sim-reject");
    let events = dir.join("events.ndjson");
    std::fs::write(
        &events,
        "{not json\n{\"type\":\"trade_ingested\",\"id\":\"x\",\"time\":\"2026-03-02T08:00:00Z\",\"data\":{\"trade_id\":\"T1\"}}\n",
    )
    .expect("write");
    let out = mon(&["simulate", "examples/trade_lifecycle", "--events", events.to_str().expect("utf-8")]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rejected: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|l| l["kind"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 2, "{stdout}");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .is_some_and(|r| r == "type unknown: invalid JSON: key must be a string at column 2"),
        "{stdout}"
    );
    assert!(
        rejected[1]["reason"].as_str().is_some_and(|r| r.starts_with("trade_ingested: missing required field ")),
        "{stdout}"
    );
}

#[test]
fn simulate_rejects_a_line_that_is_not_text_and_goes_on() {
    let dir = tempdir("sim-binary");
    let events = dir.join("events.ndjson");
    let mut bytes = b"\xff\xfe\x00garbage\n".to_vec();
    bytes.extend_from_slice(
        b"{\"type\":\"trade_ingested\",\"id\":\"i1\",\"time\":\"2026-03-02T08:00:00Z\",\"data\":{\"trade_id\":\"T1\"}}\n",
    );
    std::fs::write(&events, bytes).expect("write");
    let out = mon(&["simulate", "examples/trade_lifecycle", "--events", events.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reasons: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|l| l["kind"] == "rejected")
        .map(|l| l["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(reasons.len(), 2, "{stdout}");
    assert_eq!(reasons[0], "type unknown: the line is not valid UTF-8");
    assert_eq!(mon(&["simulate", "examples/trade_lifecycle", "--events", "examples"]).status.code(), Some(2));
}

#[test]
fn a_file_named_twice_is_checked_once() {
    let file = "examples/trade_lifecycle/events.mon";
    let out = mon(&["check", file, file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checked 1 file"));
}

/// A file of events with one mistake of each kind `mon simulate` must
/// name: two malformed lines (3 and 7, after a blank line), and three
/// events of types no rule declares, two of them a typo.
fn events_with_mistakes(dir: &Path) -> PathBuf {
    let good = std::fs::read_to_string(root().join("examples/trade_lifecycle/events.ndjson"))
        .expect("example events")
        .lines()
        .next()
        .expect("a first event")
        .to_string();
    let other = |ty: &str, id: &str, minute: u32| {
        format!(r#"{{"type":"{ty}","id":"{id}","time":"2026-03-03T08:0{minute}:00Z","data":{{"trade_id":"T-1001"}}}}"#)
    };
    let lines = [
        good,
        String::new(),
        "{not json".to_string(),
        other("trade_ingestd", "u1", 1),
        other("heartbeat", "h1", 2),
        other("trade_ingestd", "u2", 3),
        other("trade_ingested", "m1", 4),
    ];
    let events = dir.join("events.ndjson");
    std::fs::write(&events, lines.join("\n") + "\n").expect("write");
    events
}

fn rejected_records(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|l| l["kind"] == "rejected")
        .collect()
}

/// A malformed line is named by its place in the file: `line` in its
/// record, `FILE:LINE` on stderr and in the human format. It is made at
/// the virtual clock's instant (the last event's time, LANGUAGE.md
/// changelog v1.4), since a line without a readable time cannot move it.
#[test]
fn simulate_names_the_line_of_each_rejected_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = events_with_mistakes(dir.path());
    let path = events.to_str().expect("utf-8");
    let out = mon(&["simulate", "examples/trade_lifecycle", "--events", path]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rejected = rejected_records(&out.stdout);
    let lines: Vec<&serde_json::Value> = rejected.iter().map(|r| &r["line"]).collect();
    assert_eq!(lines, [3, 7], "{rejected:?}");
    assert_eq!(rejected[0]["at"], "2026-03-03T08:00:00Z", "made at the clock of the event before it");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        format!("{path}:3: rejected: type unknown: invalid JSON: key must be a string at column 2\n"),
        format!("{path}:7: rejected: trade_ingested: missing required field book\n"),
    ] {
        assert!(stderr.contains(&expected), "stderr should say {expected:?}:\n{stderr}");
    }

    let human = mon(&["simulate", "examples/trade_lifecycle", "--events", path, "--format", "human"]);
    let stdout = String::from_utf8_lossy(&human.stdout);
    let line = stdout.lines().find(|l| l.contains(" rejected ")).expect("a rejected line");
    assert!(line.contains(&format!("{path}:3 ")), "{line}");
    assert!(!String::from_utf8_lossy(&human.stderr).contains(": rejected: "), "listed once, on stdout");

    // Ten are listed; the records hold them all.
    let many = dir.path().join("many.ndjson");
    std::fs::write(&many, "{oops\n".repeat(12)).expect("write");
    let out = mon(&["simulate", "examples/trade_lifecycle", "--events", many.to_str().expect("utf-8")]);
    assert_eq!(rejected_records(&out.stdout).len(), 12);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("many.ndjson:10: rejected: ") && !stderr.contains("many.ndjson:11:"), "{stderr}");
    assert!(stderr.contains("\n... and 2 more rejected lines\n"), "{stderr}");
}

/// An event type no rule declares is named with its count, and a likely
/// typo gets the compiler's "did you mean".
#[test]
fn simulate_names_the_types_no_rule_uses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = events_with_mistakes(dir.path());
    let out = mon(&["simulate", "examples/trade_lifecycle", "--events", events.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = "3 events of types no rule uses: trade_ingestd ×2 (did you mean trade_ingested?), heartbeat ×1\n";
    assert!(stderr.contains(expected), "stderr should say {expected:?}:\n{stderr}");

    // Ten types are named, the most frequent first; the rest are counted.
    let many = dir.path().join("many.ndjson");
    let lines: Vec<String> = (0..11)
        .flat_map(|i| {
            let line = format!(r#"{{"type":"kind{i:02}","time":"2026-03-03T08:00:00Z","data":{{}}}}"#);
            std::iter::repeat_n(line, if i == 10 { 2 } else { 1 })
        })
        .collect();
    std::fs::write(&many, lines.join("\n")).expect("write");
    let out = mon(&["simulate", "examples/trade_lifecycle", "--events", many.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = "12 events of types no rule uses: kind10 ×2, kind00 ×1, kind01 ×1, kind02 ×1, kind03 ×1, \
                    kind04 ×1, kind05 ×1, kind06 ×1, kind07 ×1, kind08 ×1, and 1 more type\n";
    assert!(stderr.contains(expected), "stderr should say {expected:?}:\n{stderr}");
}

/// `--strict` is for CI: a rejected line or an event of a type no rule
/// uses fails the run (exit 1); a clean file passes.
#[test]
fn simulate_strict_fails_on_bad_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = events_with_mistakes(dir.path());
    let text = std::fs::read_to_string(&all).expect("read");
    let only = |name: &str, keep: &dyn Fn(&str) -> bool| {
        let path = dir.path().join(name);
        let kept: Vec<&str> = text.lines().enumerate().filter(|(i, l)| *i == 0 || keep(l)).map(|(_, l)| l).collect();
        std::fs::write(&path, kept.join("\n") + "\n").expect("write");
        path.to_str().expect("utf-8").to_string()
    };
    let rejected_only = only("rejected.ndjson", &|l| l.starts_with("{not"));
    let undeclared_only = only("undeclared.ndjson", &|l| l.contains("heartbeat"));
    let clean = "examples/trade_lifecycle/events.ndjson";
    let code = |events: &str, strict: bool| {
        let mut args = vec!["simulate", "examples/trade_lifecycle", "--events", events, "--format", "summary"];
        if strict {
            args.push("--strict");
        }
        let out = mon(&args);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    for events in [all.to_str().expect("utf-8"), &rejected_only, &undeclared_only] {
        assert_eq!(code(events, false).0, Some(0), "without --strict bad input is reported, not fatal: {events}");
        let (status, stderr) = code(events, true);
        assert_eq!(status, Some(1), "{events}: {stderr}");
        assert!(stderr.contains("--strict"), "says why it failed: {stderr}");
    }
    assert_eq!(code(clean, true), (Some(0), code(clean, false).1));
    let help = String::from_utf8_lossy(&mon(&["simulate", "--help"]).stdout).to_string();
    assert!(help.contains("--strict"), "{help}");
}

/// The many-rules benchmark reports each way of running, and fails unless
/// every run reported exactly the stalls it planted (so a routing or
/// pipeline bug cannot hide behind a throughput figure).
#[test]
fn bench_workflows_reports_one_thread_two_threads_and_the_engine_alone() {
    let output = mon(&["bench", "--workflows", "20", "--events", "20000"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    for run in ["decode + engine", "decode | engine", "engine alone", "index off"] {
        assert!(stdout.lines().any(|l| l.contains(run) && l.contains("events/s")), "no {run} line in:\n{stdout}");
    }
    let planted = stdout.split("stalls planted").next().and_then(|s| s.rsplit(' ').nth(1)).unwrap_or("");
    assert!(planted.parse::<u64>().is_ok_and(|n| n > 0), "stalls planted in:\n{stdout}");
    assert!(stdout.contains(&format!("{planted} missing reported")), "{stdout}");
}

/// The trades benchmark reports decode + engine on one and on two threads,
/// and fails unless the engine reported exactly the stalls it planted.
#[test]
fn bench_trades_reports_decode_and_engine_on_one_and_two_threads() {
    let output = mon(&["bench", "--trades", "2000"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    for run in ["engine alone:", "decode + engine:", "decode | engine:"] {
        assert!(stdout.lines().any(|l| l.starts_with(run) && l.contains("events/s")), "no {run} line in:\n{stdout}");
    }
}

/// The records of `mon simulate`, less the summary lines, sorted.
fn sorted_records(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut records: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains(r#""kind":"summary""#))
        .map(String::from)
        .collect();
    records.sort();
    records
}

/// `--partitions` runs one engine per partition, as `mon run` with state
/// per partition: with every item's events keyed alike, the examples give
/// the records of one engine (file_receipt's scheduled workflows run on
/// their owner, fed files from every partition). grouped_metrics keys
/// `trade_booked` by its order, so trades confirmed on their own key's
/// partition are split, and said to be.
#[test]
fn simulate_partitions_gives_one_engines_records_and_names_split_items() {
    for (example, keys) in [
        ("trade_lifecycle", "trade_id,ref"),
        ("file_receipt", "job_id"),
        ("batch_sequence", "batch_id"),
        ("grouped_metrics", "order_id,trade_id"),
    ] {
        let rules = format!("examples/{example}");
        let events = format!("examples/{example}/events.ndjson");
        let one = mon(&["simulate", &rules, "--events", &events]);
        // On 2 partitions the examples' few trades happen to share one.
        let counts = if example == "grouped_metrics" { ["3", "5"] } else { ["2", "3"] };
        for partitions in counts {
            let split =
                mon(&["simulate", &rules, "--events", &events, "--partitions", partitions, "--partition-key", keys]);
            let stderr = String::from_utf8_lossy(&split.stderr).to_string();
            if example == "grouped_metrics" {
                assert!(stderr.contains("on another partition than the item's first"), "{stderr}");
                assert!(stderr.contains("trade_confirmation T-9"), "{stderr}");
                assert_ne!(sorted_records(&one), sorted_records(&split), "split items make other records");
            } else {
                assert!(!stderr.contains("warning"), "{example}: {stderr}");
                assert_eq!(sorted_records(&one), sorted_records(&split), "{example} on {partitions} partitions");
            }
        }
    }
    let typo = mon(&[
        "simulate",
        "examples/trade_lifecycle",
        "--events",
        "-",
        "--partitions",
        "2",
        "--partition-key",
        "tradeid",
    ]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("no event type has such a field"));
}
