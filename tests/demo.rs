//! `mon demo`, the README's first command: it must start with nothing but
//! the repository, feed its generated events through HTTP, show a summary
//! of every example workflow with alerts among them, print the
//! notifications it would send, and stop cleanly.

use std::process::Command;

#[test]
fn the_demo_runs_the_examples_and_prints_a_live_summary() {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mon"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--seconds", "3", "--every", "1", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .output()
        .expect("run mon demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "mon demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("POST http://127.0.0.1:"), "{stdout}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.contains("command center at http://127.0.0.1:"), "the UI's address is not first:\n{stdout}");
    assert!(stdout.contains("auth:       off"), "the demo says auth is off:\n{stdout}");
    // Its own file SLA, due within the minute whatever the day (demo/planted.rs).
    assert!(
        stdout.contains("planted:    demo_reference_file: a file due "),
        "the planted file is announced:\n{stdout}"
    );
    assert!(stdout.contains("from examples and demo_planted.mon"), "{stdout}");
    for workflow in ["trade_lifecycle", "order_flow", "trade_confirmation", "batch_sequence", "daily_positions"] {
        assert!(stdout.contains(workflow), "{workflow} missing from the summary:\n{stdout}");
    }
    // The backlog alone makes alerts; the summary names their kinds.
    let last = stdout.lines().rev().find(|l| l.contains("events posted")).expect("a summary line");
    let posted: usize = last
        .split("events posted ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(posted > 1000, "only {posted} events posted: {last}");
    assert!(last.contains("missing") || last.contains("late"), "no alerts in {last}");
    assert!(stdout.contains("RED") || stdout.contains("AMBER"), "every workflow green:\n{stdout}");
    // The alert book's notifications are printed, grouped by channel and
    // step: `TIME  notify CHANNEL  FIRING SEVERITY WORKFLOW.STEP KIND: N items`.
    let firing = stdout
        .lines()
        .find(|l| l.contains("  notify ") && l.contains(" FIRING "))
        .unwrap_or_else(|| panic!("no notification printed:\n{stdout}"));
    assert!(firing.contains(": 1 item") || firing.contains(" items"), "{firing}");
    // The state it kept is a real journal and sled store.
    assert!(state.path().join("state.sled").is_dir());
    assert!(state.path().join("snapshot.bin").is_file(), "a clean stop leaves a snapshot");
}
