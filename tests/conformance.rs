//! The conformance corpus: `tests/conformance/<case>/` holds `rules/`,
//! `events.ndjson` and `expected.ndjson`, and optionally `args` (extra
//! `mon simulate` flags such as `--from`/`--until`, one line). A directory
//! that lacks one of these fails the test; it is never skipped. Each case runs
//! through the `mon simulate` binary and its records are compared with the
//! expected ones as multisets, ignoring the `id` field (a hash) and the
//! `summary` lines. Every case then runs again in-process, cut at several
//! points: the engine's state is serialised, restored and resumed, and the
//! records must be the same as in one straight run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mon_runtime::simulate::Simulation;
use mon_runtime::{Record, State};
use serde_json::Value;

/// Every directory under `tests/conformance`. A case that lacks one of its
/// files fails here, by name, rather than being skipped: a case that is never
/// run would pass forever.
fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("tests/conformance exists").map(|e| e.expect("entry").path()).collect();
    cases.sort();
    let problems: Vec<String> =
        cases.iter().filter_map(|case| incomplete(case).map(|why| format!("  {}: {why}", case.display()))).collect();
    assert!(
        problems.is_empty(),
        "incomplete conformance cases (each needs rules/*.mon, events.ndjson and expected.ndjson):\n{}",
        problems.join("\n")
    );
    assert!(cases.len() >= 10, "only {} conformance cases", cases.len());
    cases
}

/// What is wrong with a case directory, if anything.
fn incomplete(case: &Path) -> Option<String> {
    if !case.is_dir() {
        return Some("not a directory; tests/conformance holds only case directories".into());
    }
    let rules = std::fs::read_dir(case.join("rules"))
        .map(|entries| entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "mon")))
        .unwrap_or(false);
    if !rules {
        return Some("no rules/*.mon".into());
    }
    if !case.join("events.ndjson").is_file() {
        return Some("no events.ndjson".into());
    }
    if !case.join("expected.ndjson").is_file() {
        return Some("no expected.ndjson".into());
    }
    match std::fs::read_to_string(case.join("expected.ndjson")) {
        Err(e) => Some(format!("cannot read expected.ndjson: {e}")),
        // Why: an empty file is more likely a lost file than a claim; a case
        // that expects no records says so in a `//` comment line.
        Ok(text) if text.trim().is_empty() => {
            Some("expected.ndjson is blank; a case expecting no records says so in a `//` line".into())
        }
        Ok(_) => None,
    }
}

fn args_of(case: &Path) -> Vec<String> {
    std::fs::read_to_string(case.join("args"))
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// A record as compared: its JSON without `id`, as canonical text.
fn normalise(mut value: Value) -> Option<String> {
    let object = value.as_object_mut()?;
    if object.get("kind").and_then(Value::as_str) == Some("summary") {
        return None;
    }
    object.remove("id");
    Some(serde_json::to_string(&value).expect("json"))
}

fn multiset(lines: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//")) {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"));
        if let Some(text) = normalise(value) {
            *counts.entry(text).or_insert(0) += 1;
        }
    }
    counts
}

fn diff(expected: &BTreeMap<String, usize>, actual: &BTreeMap<String, usize>) -> String {
    let mut out = String::new();
    for (line, n) in expected {
        let m = actual.get(line).copied().unwrap_or(0);
        if m < *n {
            out.push_str(&format!("  missing ({}x): {line}\n", n - m));
        }
    }
    for (line, n) in actual {
        let m = expected.get(line).copied().unwrap_or(0);
        if m < *n {
            out.push_str(&format!("  extra   ({}x): {line}\n", n - m));
        }
    }
    out
}

#[test]
fn every_case_gives_its_expected_records() {
    let cases = cases();
    let mut failures = String::new();
    for case in &cases {
        let output = Command::new(env!("CARGO_BIN_EXE_mon"))
            .arg("simulate")
            .arg(case.join("rules"))
            .arg("--events")
            .arg(case.join("events.ndjson"))
            .args(args_of(case))
            .output()
            .expect("mon runs");
        let name = case.file_name().expect("name").to_string_lossy();
        if !output.status.success() {
            failures.push_str(&format!("{name}: mon simulate failed:\n{}\n", String::from_utf8_lossy(&output.stderr)));
            continue;
        }
        let actual = multiset(&String::from_utf8_lossy(&output.stdout));
        let expected = multiset(&std::fs::read_to_string(case.join("expected.ndjson")).expect("expected.ndjson"));
        let difference = diff(&expected, &actual);
        if !difference.is_empty() {
            failures.push_str(&format!("{name}:\n{difference}"));
        }
    }
    assert!(failures.is_empty(), "conformance failures:\n{failures}");
}

fn load(case: &Path) -> (mon_compiler::ir::Program, Vec<String>) {
    // The rules are read as `mon simulate RULES` reads them.
    let rules = mon_loader::load_one(&[case.join("rules")]).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
    let compilation = mon_compiler::compile(&rules.files, mon_stdlib::registry(), &mon_loader::FsSchemas);
    let program = compilation.program.unwrap_or_else(|| panic!("{} does not compile", case.display()));
    let events = std::fs::read_to_string(case.join("events.ndjson")).expect("events");
    (program, events.lines().map(str::to_string).collect())
}

fn flag(args: &[String], name: &str) -> Option<i64> {
    let i = args.iter().position(|a| a == name)?;
    mon_stdlib::time::parse_rfc3339(args.get(i + 1)?)
}

fn run(program: &mon_compiler::ir::Program, lines: &[String], args: &[String], cut: Option<usize>) -> Vec<String> {
    let (from, until) = (flag(args, "--from"), flag(args, "--until"));
    let functions = mon_stdlib::registry();
    let mut records: Vec<Record> = Vec::new();
    let mut simulation = Simulation::new(program, functions, from, until);
    let mut rest = lines;
    if let Some(cut) = cut {
        for line in &lines[..cut] {
            simulation.feed(line, &mut records);
        }
        if let Some(state) = simulation.state() {
            let saved = serde_json::to_string(state).expect("state serialises");
            let state: State = serde_json::from_str(&saved).expect("state deserialises");
            simulation = Simulation::resume(program, functions, state, until);
        }
        rest = &lines[cut..];
    }
    for line in rest {
        simulation.feed(line, &mut records);
    }
    simulation.finish(&mut records);
    let mut out: Vec<String> = records.iter().map(|r| serde_json::to_string(r).expect("json")).collect();
    out.sort();
    out
}

#[test]
fn snapshot_and_restore_at_any_cut_gives_the_same_records() {
    for case in cases() {
        let (program, lines) = load(&case);
        let args = args_of(&case);
        let straight = run(&program, &lines, &args, None);
        let cuts = [1, lines.len() / 3, lines.len() / 2, lines.len().saturating_sub(1)];
        for cut in cuts.into_iter().filter(|c| *c > 0 && *c < lines.len()) {
            let resumed = run(&program, &lines, &args, Some(cut));
            assert_eq!(straight, resumed, "{}: cut after line {cut}", case.display());
        }
    }
}
