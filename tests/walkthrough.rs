//! The walkthrough of docs/service.md, run as written: `scripts/walkthrough`
//! takes the trade lifecycle example through the test broker and `mon run
//! --clock event`, and compares what it published with `mon simulate`. The
//! test runs the script with this build's `mon` and checks that the
//! comparison it reports is a real one: the same number of records as `mon
//! simulate` prints here, and more than none.

use std::path::Path;
use std::process::Command;

/// The records `mon simulate` prints for the example (its summary lines
/// are not records).
fn simulated_records(root: &Path) -> usize {
    let output = Command::new(env!("CARGO_BIN_EXE_mon"))
        .current_dir(root)
        .args(["simulate", "examples/trade_lifecycle", "--events", "examples/trade_lifecycle/events.ndjson"])
        .output()
        .expect("run mon simulate");
    assert!(output.status.success(), "mon simulate: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] != "summary")
        .count()
}

#[test]
fn the_walkthrough_ends_with_the_records_mon_simulate_gives() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join("scripts/walkthrough"))
        .current_dir(root)
        // This build's binary, instead of the release build the script makes
        // when run by hand.
        .env("MON", env!("CARGO_BIN_EXE_mon"))
        .output()
        .expect("run scripts/walkthrough");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "scripts/walkthrough failed:\n{stdout}\n{stderr}");

    // "walkthrough: the N records mon run published equal the M of mon simulate"
    let last = stdout.lines().last().unwrap_or_default();
    let numbers: Vec<usize> = last.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(last.ends_with("of mon simulate") && numbers.len() == 2, "unexpected last line: {last}\n{stdout}");
    let expected = simulated_records(root);
    assert!(expected > 0, "mon simulate gives no record for the example: nothing would be compared");
    assert_eq!(numbers, [expected, expected], "{last}");
}
