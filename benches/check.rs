//! Benchmark: checking a directory of 1,000 generated workflows.
//!
//! `cargo bench --bench check` writes the program to a temporary directory
//! (100 files of 10 workflows, each with its own events, a mapped key, a
//! `where`, timing and a status rule), then reads and compiles it the way
//! `mon check` does, and prints the median and the spread over repeated
//! runs. The directory is left in place so the CLI can be timed on it too:
//! `time target/release/mon check <dir>`.
//!
//! `cargo test --all-targets` runs this file too, as a smoke test: one
//! compilation in a temporary directory that is removed after, checked for
//! diagnostics, and no figure printed (a debug build's timings read as a
//! regression). The two are told apart by the `--bench` argument, which
//! cargo passes exactly when `cargo bench` runs the target, whatever the
//! profile; `cfg!(debug_assertions)` would not do, since `cargo test
//! --release` is still a test run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mon_compiler::{compile, SourceFile};

const FILES: usize = 100;
const WORKFLOWS_PER_FILE: usize = 10;
const RUNS: usize = 15;

fn generate(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create bench dir");
    std::fs::write(
        dir.join("shared.mon"),
        "channel desk email \"desk@example.com\"\ncalendar holidays { 2026-12-25, 2027-01-01 }\n",
    )
    .expect("write shared");
    for f in 0..FILES {
        let mut text = String::new();
        for w in 0..WORKFLOWS_PER_FILE {
            let n = f * WORKFLOWS_PER_FILE + w;
            text.push_str(&format!(
                "/// Generated flow {n}.\n\
                 event ingested_{n} {{ trade_id: string, region: enum {{ EMEA, AMER, APAC }}, book: string, notional: float }}\n\
                 event verified_{n} {{ trade_id: string, system: string }}\n\
                 event sent_{n} {{ trade_id: string }}\n\
                 event reply_{n} {{ ref: string, status: enum {{ ACK, NACK }} }}\n\
                 workflow flow_{n} {{\n\
                 \x20 key trade_id = reply_{n}.ref\n\
                 \x20 group by region, book\n\
                 \x20 notify desk when severity >= high\n\
                 \x20 status red when missing > 0 or aged(15m) > 10\n\
                 \x20 start ingested: ingested_{n} where notional > 0.0 and region in [EMEA, AMER]\n\
                 \x20 step verified: verified_{n} where system == \"S2\" after ingested within 2m warn 1m\n\
                 \x20 step sent: sent_{n} after verified within 1m\n\
                 \x20 step acked: reply_{n} where status == ACK after sent within 5m warn 3m\n\
                 \x20 step nacked: reply_{n} where status == NACK after sent -> failure\n\
                 }}\n\n"
            ));
        }
        std::fs::write(dir.join(format!("flows_{f:03}.mon")), text).expect("write flows");
    }
}

fn read_dir(dir: &Path) -> Vec<SourceFile> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).expect("read").map(|e| e.expect("entry").path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| SourceFile { text: std::fs::read_to_string(&p).expect("read"), path: p.display().to_string() })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not
    // (see the module doc).
    if !std::env::args().any(|a| a == "--bench") {
        smoke();
        return;
    }
    let dir = std::env::temp_dir().join("mon-bench-check");
    generate(&dir);
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut workflows = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let sources = read_dir(&dir);
        let compilation = compile(&sources, mon_stdlib::registry(), &mon_compiler::NoSchemas);
        times.push(start.elapsed());
        assert!(compilation.diagnostics.is_empty(), "generated program has diagnostics");
        workflows = compilation.program.as_ref().map_or(0, |p| p.workflows.len());
    }
    times.sort();
    let lines: usize = read_dir(&dir).iter().map(|s| s.text.lines().count()).sum();
    println!(
        "check {workflows} workflows ({lines} lines, {} files): median {:.1} ms, min {:.1} ms, max {:.1} ms over {RUNS} runs",
        FILES + 1,
        times[RUNS / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3,
    );
    println!("program left in {} for `time target/release/mon check`", dir.display());
}

/// One compilation of the generated program, timed by nobody.
fn smoke() {
    let dir = tempfile::tempdir().expect("temporary directory");
    generate(dir.path());
    let compilation = compile(&read_dir(dir.path()), mon_stdlib::registry(), &mon_compiler::NoSchemas);
    assert!(compilation.diagnostics.is_empty(), "generated program has diagnostics");
    let workflows = compilation.program.as_ref().map_or(0, |p| p.workflows.len());
    assert_eq!(workflows, FILES * WORKFLOWS_PER_FILE);
    println!("bench check: runs ({workflows} workflows compiled); `cargo bench --bench check` measures it");
}
