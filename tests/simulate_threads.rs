//! `mon simulate --threads 2` (decoding on a second thread, ahead of the
//! engine) must print byte for byte what `--threads 1` prints: the same
//! records with the same line numbers and instants, the same
//! notifications, summaries and end-of-run report on stderr, and the same
//! exit status. Checked on the whole conformance corpus and on generated
//! trade streams with planted stalls and malformed lines, large enough
//! that lines are cut by the reader's 1 MiB buffer.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "support/rng.rs"]
mod rng;

use rng::SplitMix64;

fn simulate(args: &[&str], threads: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mon"))
        .arg("simulate")
        .args(args)
        .args(["--threads", threads])
        .output()
        .expect("mon runs")
}

/// Runs `args` with one thread and with two, and names every difference.
fn differences(label: &str, args: &[&str]) -> Option<String> {
    let one = simulate(args, "1");
    let two = simulate(args, "2");
    let mut found = Vec::new();
    if one.status.code() != two.status.code() {
        found.push(format!("exit {:?} with one thread, {:?} with two", one.status.code(), two.status.code()));
    }
    if one.stdout != two.stdout {
        found.push(format!("stdout differs at byte {}", first_difference(&one.stdout, &two.stdout)));
    }
    if one.stderr != two.stderr {
        found.push(format!(
            "stderr differs:\n--- one thread\n{}\n--- two threads\n{}",
            String::from_utf8_lossy(&one.stderr),
            String::from_utf8_lossy(&two.stderr)
        ));
    }
    (!found.is_empty()).then(|| format!("{label}: {}", found.join("; ")))
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()))
}

#[test]
fn the_conformance_corpus_prints_the_same_with_one_thread_and_two() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&corpus).expect("tests/conformance exists").map(|e| e.expect("entry").path()).collect();
    cases.sort();
    assert!(cases.len() >= 10, "only {} conformance cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().expect("a case name").to_string_lossy().to_string();
        let extra = std::fs::read_to_string(case.join("args")).unwrap_or_default();
        let rules = case.join("rules");
        let events = case.join("events.ndjson");
        let mut args: Vec<&str> =
            vec![rules.to_str().expect("a UTF-8 path"), "--events", events.to_str().expect("a UTF-8 path")];
        args.extend(extra.split_whitespace());
        for format in [&["--format", "ndjson", "--notifications"][..], &["--format", "human"], &["--format", "summary"]]
        {
            let with_format: Vec<&str> = args.iter().copied().chain(format.iter().copied()).collect();
            failures.extend(differences(&format!("{name} {}", format.join(" ")), &with_format));
        }
    }
    assert!(failures.is_empty(), "one thread and two differ:\n{}", failures.join("\n"));
}

const TRADE_RULES: &str = r#"
event trade_ingested { trade_id: string, region: string, book: string }
event trade_verified { trade_id: string, region: string, book: string }
event sent_to_sys3 { trade_id: string, region: string, book: string }
event sys3_ack { trade_id: string, region: string, book: string }
event sent_to_sys4 { trade_id: string, region: string, book: string }

workflow trade_lifecycle {
  key trade_id
  group by region
  expect trade_ingested
  then trade_verified within 2m
  then sent_to_sys3 within 1m
  then sys3_ack within 5m
  then sent_to_sys4 within 1m
}
"#;

const STEPS: [&str; 5] = ["trade_ingested", "trade_verified", "sent_to_sys3", "sys3_ack", "sent_to_sys4"];
/// Each step's deadline after the one before it, in ms (as in the rules).
const DEADLINES_MS: [u64; 4] = [120_000, 60_000, 300_000, 60_000];
/// 2026-03-02T08:00:00Z.
const START_MS: u64 = 1_772_438_400_000;

/// A generated stream: its bytes, and what a correct run must report.
struct Stream {
    bytes: Vec<u8>,
    /// (trade id, the step that never comes).
    stalls: BTreeSet<(String, String)>,
    /// Lines planted to be rejected.
    rejected: usize,
}

fn timestamp(ms: u64) -> String {
    let seconds = (ms / 1000) as i64;
    let text = mon_stdlib::time::format_rfc3339(seconds * 1000);
    // `2026-03-02T08:00:00Z` → with the milliseconds.
    format!("{}.{:03}Z", text.trim_end_matches('Z'), ms % 1000)
}

/// Trades every few ms, each step before its deadline, 2% stalling after
/// a random step; between them, now and then, a malformed line of one of
/// several kinds, a blank line, an event of a type no rule declares, a
/// byte-order mark or a CRLF ending.
fn trade_stream(seed: u64, trades: u64, long_line: bool, final_newline: bool) -> Stream {
    let mut random = SplitMix64::new(seed);
    let mut below = |n: u64| random.next_u64() % n;
    let mut events: Vec<(u64, u64, String)> = Vec::new();
    let mut stalls = BTreeSet::new();
    for trade in 0..trades {
        let id = format!("T{trade:07}");
        let region = ["EMEA", "AMER", "APAC"][(trade % 3) as usize];
        let last = if below(50) == 0 { below(4) as usize } else { 4 };
        if last < 4 {
            stalls.insert((id.clone(), STEPS[last + 1].to_string()));
        }
        let mut at = START_MS + trade * 7 + below(5);
        for (step, name) in STEPS.iter().enumerate().take(last + 1) {
            if step > 0 {
                at += 1 + below(DEADLINES_MS[step - 1] * 9 / 10);
            }
            let line = format!(
                r#"{{"type":"{name}","time":"{}","id":"e{trade}-{step}","data":{{"trade_id":"{id}","region":"{region}","book":"B{}"}}}}"#,
                timestamp(at),
                below(50)
            );
            events.push((at, trade * 8 + step as u64, line));
        }
    }
    events.sort();
    let mut bytes = Vec::new();
    let mut rejected = 0;
    for (index, (at, _, line)) in events.iter().enumerate() {
        if index % 97 == 13 {
            let time = timestamp(*at);
            match below(8) {
                0 => {
                    bytes.extend_from_slice(b"{\"type\":\"trade_ingested\",\"id\":\"\xff\xfe\"}\n");
                    rejected += 1;
                }
                1 => {
                    bytes.extend_from_slice(b"this is not json\n");
                    rejected += 1;
                }
                2 => {
                    bytes.extend_from_slice(br#"{"type":"trade_verified","id":"no-time","data":{"trade_id":"T0000001","region":"EMEA","book":"B1"}}"#);
                    bytes.push(b'\n');
                    rejected += 1;
                }
                3 => {
                    let wrong = format!(
                        r#"{{"type":"sys3_ack","time":"{time}","id":"wrong","data":{{"trade_id":5,"region":"EMEA","book":"B1"}}}}"#
                    );
                    bytes.extend_from_slice(wrong.as_bytes());
                    bytes.push(b'\n');
                    rejected += 1;
                }
                4 => bytes.extend_from_slice(b"\n  \n"),
                5 => {
                    let other = format!(r#"{{"type":"heartbeat","time":"{time}","id":"h{index}","data":{{}}}}"#);
                    bytes.extend_from_slice(other.as_bytes());
                    bytes.push(b'\n');
                }
                6 => bytes.extend_from_slice("\u{feff}".as_bytes()),
                _ => {
                    // A CRLF ending on the line before.
                    if bytes.last() == Some(&b'\n') {
                        bytes.pop();
                        bytes.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if long_line && index == events.len() / 2 {
            // Longer than the reader's buffer, so it is gathered across
            // reads; rejected for its field's type.
            let book: String = "x".repeat(3 << 20);
            let long = format!(
                r#"{{"type":"trade_verified","time":"{}","id":"long","data":{{"trade_id":["{book}"],"region":"EMEA","book":"B1"}}}}"#,
                timestamp(*at)
            );
            bytes.extend_from_slice(long.as_bytes());
            bytes.push(b'\n');
            rejected += 1;
        }
    }
    if !final_newline {
        bytes.pop();
    }
    Stream { bytes, stalls, rejected }
}

/// The `missing` records' (trade id, step) and the number of `rejected`
/// records in NDJSON output.
fn reported(stdout: &[u8]) -> (BTreeSet<(String, String)>, usize) {
    let mut missing = BTreeSet::new();
    let mut rejected = 0;
    for line in String::from_utf8_lossy(stdout).lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("mon prints JSON lines");
        match record["kind"].as_str() {
            Some("missing") => {
                let trade = record["key"]["trade_id"].as_str().expect("a trade id").to_string();
                missing.insert((trade, record["step"].as_str().expect("a step").to_string()));
            }
            Some("rejected") => rejected += 1,
            _ => {}
        }
    }
    (missing, rejected)
}

#[test]
fn generated_trade_streams_print_the_same_with_one_thread_and_two() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rules = dir.path().join("trades.mon");
    std::fs::write(&rules, TRADE_RULES).expect("the rules are written");
    let mut failures = Vec::new();
    // (seed, trades, a line longer than the read buffer, a final newline)
    for (seed, trades, long_line, final_newline) in
        [(1, 8_000, false, true), (2, 6_000, true, false), (3, 300, false, false)]
    {
        let stream = trade_stream(seed, trades, long_line, final_newline);
        assert!(!stream.stalls.is_empty() && stream.rejected > 0, "seed {seed}: the stream plants nothing to find");
        let events = dir.path().join(format!("trades-{seed}.ndjson"));
        std::fs::write(&events, &stream.bytes).expect("the events are written");
        let base = [rules.to_str().expect("UTF-8"), "--events", events.to_str().expect("UTF-8")];
        let until = ["--until", "2026-03-03T00:00:00Z"];
        let runs: [Vec<&str>; 3] = [
            [&base[..], &until].concat(),
            [&base[..], &until, &["--format", "human"]].concat(),
            [&base[..], &["--notifications", "--trace", "T0000042"]].concat(),
        ];
        for args in &runs {
            failures.extend(differences(&format!("seed {seed}: {}", args[3..].join(" ")), args));
        }
        // And the results are right, not merely the same.
        let output = simulate(&runs[0], "2");
        let (missing, rejected) = reported(&output.stdout);
        if missing != stream.stalls {
            failures.push(format!(
                "seed {seed}: {} stalls planted, {} reported, {} of them planted",
                stream.stalls.len(),
                missing.len(),
                missing.intersection(&stream.stalls).count()
            ));
        }
        if rejected != stream.rejected {
            failures
                .push(format!("seed {seed}: {} lines planted to be rejected, {rejected} rejected", stream.rejected));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn standard_input_read_on_two_threads_prints_what_the_file_does_on_one() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rules = dir.path().join("trades.mon");
    std::fs::write(&rules, TRADE_RULES).expect("the rules are written");
    let stream = trade_stream(4, 9_000, true, true);
    let events = dir.path().join("trades.ndjson");
    std::fs::write(&events, &stream.bytes).expect("the events are written");
    let rules = rules.to_str().expect("UTF-8");
    let from_file = simulate(&[rules, "--events", events.to_str().expect("UTF-8")], "1");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["simulate", rules, "--events", "-", "--threads", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mon runs");
    let mut stdin = child.stdin.take().expect("a pipe to mon");
    // Written in uneven pieces, as a pipe delivers them.
    let writer = std::thread::spawn(move || {
        for piece in stream.bytes.chunks(77_777) {
            stdin.write_all(piece).expect("mon reads its input");
        }
    });
    let from_stdin = child.wait_with_output().expect("mon finishes");
    writer.join().expect("the input is written");
    assert!(from_file.status.success() && from_stdin.status.success());
    assert!(!from_file.stdout.is_empty());
    assert!(
        from_file.stdout == from_stdin.stdout,
        "stdout differs at byte {}",
        first_difference(&from_file.stdout, &from_stdin.stdout)
    );
}
