//! The `mon` binary on rules at and past the parser's nesting limit: it
//! answers with a diagnostic and exit code 1, never a stack overflow, on
//! the ordinary-sized stack it gives its worker thread.

use std::process::Command;

fn check(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("deep.mon");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_mon")).arg("check").arg(&path).output().expect("mon runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn rule(condition: &str) -> String {
    format!("event e {{ x: int }}\nworkflow w {{\n  key x\n  expect e where {condition}\n}}\n")
}

#[test]
fn nesting_past_the_limit_is_one_error_not_a_crash() {
    let brackets = format!("{}x == 1{}", "(".repeat(100_000), ")".repeat(100_000));
    let negations = format!("{}x == 1", "not ".repeat(100_000));
    let chain = vec!["x == 1"; 20_000].join(" or ");
    for (name, condition) in [("brackets", brackets), ("negations", negations), ("or chain", chain)] {
        let (code, stderr) = check(&rule(&condition));
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert_eq!(stderr.matches("E111").count(), 1, "{name}: one error\n{stderr}");
    }
}

#[test]
fn nesting_at_the_limit_checks() {
    let condition = format!("{}x == 1{}", "(".repeat(100), ")".repeat(100));
    let (code, stderr) = check(&rule(&condition));
    assert_eq!(code, Some(0), "{stderr}");
}
