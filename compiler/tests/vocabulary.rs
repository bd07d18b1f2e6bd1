//! The words of the language as the IR spells them: each enum is written
//! as the word the rules use, so `mon compile --emit json`, the program
//! hash and the records of LANGUAGE.md §7 read the same as when these were
//! strings, and a test block lowers its words to those enums.

use mon_compiler::ir::{
    ChannelKind, CompareOp, Expectation, Handling, Metric, Outcome, RecordKind, Severity, Status, StatusMetric,
    TestStepKind,
};
use mon_compiler::{compile, NoFunctions, NoSchemas, SourceFile};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Every word serialises as itself and reads back as its variant.
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + Copy>(words: &[(&str, T)]) {
    for (word, value) in words {
        assert_eq!(serde_json::to_string(value).unwrap(), format!("\"{word}\""));
        assert_eq!(serde_json::from_str::<T>(&format!("\"{word}\"")).unwrap(), *value);
    }
}

#[test]
fn every_word_is_written_as_the_rules_write_it() {
    round_trips(RecordKind::ALL);
    round_trips(Status::ALL);
    round_trips(Metric::ALL);
    round_trips(CompareOp::ALL);
    round_trips(Severity::ALL);
    round_trips(ChannelKind::ALL);
    round_trips(Outcome::ALL);
    round_trips(Handling::ALL);
    let words: Vec<&str> = RecordKind::ALL.iter().map(|(w, _)| *w).collect();
    assert_eq!(
        words,
        ["missing", "late", "early", "at_risk", "out_of_order", "duplicate", "unexpected", "rejected", "superseded"]
    );
    let in_tests: Vec<&str> = RecordKind::IN_TESTS.iter().map(|(w, _)| *w).collect();
    assert_eq!(in_tests, words[..words.len() - 1], "every kind but superseded");
    let written: Vec<&str> = Outcome::WRITTEN.iter().map(|(w, _)| *w).collect();
    assert_eq!(written, ["success", "failure"]);
    assert_eq!(Status::Amber.to_string(), "amber");
    assert!(Status::Green < Status::Amber && Status::Amber < Status::Red);
    assert!(Severity::High < Severity::Critical);
}

#[test]
fn a_status_metric_is_a_bare_word_and_aged_an_object() {
    let count = StatusMetric::Count(Metric::AtRisk);
    let aged = StatusMetric::Aged(900_000);
    assert_eq!(serde_json::to_string(&count).unwrap(), r#""at_risk""#);
    assert_eq!(serde_json::to_string(&aged).unwrap(), r#"{"aged":900000}"#);
    assert_eq!(serde_json::from_str::<StatusMetric>(r#""at_risk""#).unwrap(), count);
    assert_eq!(serde_json::from_str::<StatusMetric>(r#"{"aged":900000}"#).unwrap(), aged);
}

#[test]
fn compare_ops_hold_as_written() {
    let holds: Vec<&str> = CompareOp::ALL.iter().filter(|(_, op)| op.holds(2, 3)).map(|(w, _)| *w).collect();
    assert_eq!(holds, ["!=", "<", "<="]);
    assert!(CompareOp::Ge.holds(3, 3) && !CompareOp::Gt.holds(3, 3));
}

#[test]
fn expectations_lower_to_words_and_serialise_as_before() {
    let text = r#"
event a { id: string }
event b { id: string }
workflow w { key id; expect a; then b within 1m }
test "t" {
  at 2026-03-02T09:00:00Z
  expect alert missing w.b
  expect no early
  expect status w amber
  expect count in_flight w >= 2
}
"#;
    let sources = vec![SourceFile { path: "t.mon".into(), text: text.into() }];
    let compilation = compile(&sources, &NoFunctions, &NoSchemas);
    assert!(!compilation.has_errors(), "{:?}", compilation.diagnostics);
    let expectations: Vec<&Expectation> = compilation.tests[0]
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            TestStepKind::Expect(e) => Some(e),
            _ => None,
        })
        .collect();
    assert!(matches!(expectations[0], Expectation::Record { kind: RecordKind::Missing, alert: true, .. }));
    assert!(matches!(expectations[1], Expectation::NoRecord { kind: Some(RecordKind::Early), .. }));
    assert!(matches!(expectations[2], Expectation::Status { color: Status::Amber, .. }));
    let json: Vec<String> = expectations.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    assert_eq!(
        json[0],
        r#"{"record":{"alert":true,"kind":"missing","workflow":0,"step":1,"delay_ms":null,"key":null}}"#
    );
    assert_eq!(json[1], r#"{"no_record":{"alert":false,"kind":"early","workflow":null,"step":null}}"#);
    assert_eq!(json[2], r#"{"status":{"workflow":0,"stage":null,"color":"amber"}}"#);
    assert_eq!(json[3], r#"{"count":{"metric":"in_flight","workflow":0,"stage":null,"op":">=","value":2}}"#);
}

#[test]
fn default_status_rules_serialise_as_before() {
    let text = "event a { id: string }\nevent b { id: string }\nworkflow w { key id; expect a; then b within 1m }";
    let sources = vec![SourceFile { path: "t.mon".into(), text: text.into() }];
    let program = compile(&sources, &NoFunctions, &NoSchemas).program.expect("a program");
    assert_eq!(
        serde_json::to_string(&program.workflows[0].status).unwrap(),
        concat!(
            r#"{"red":[{"binary":{"op":"gt","lhs":{"metric":"missing"},"rhs":{"const":{"int":0}}}}],"#,
            r#""amber":[{"binary":{"op":"or","#,
            r#""lhs":{"binary":{"op":"gt","lhs":{"metric":"at_risk"},"rhs":{"const":{"int":0}}}},"#,
            r#""rhs":{"binary":{"op":"gt","lhs":{"metric":"late"},"rhs":{"const":{"int":0}}}}}}]}"#
        )
    );
}

#[test]
fn rules_cannot_close_an_item_as_superseded() {
    // `superseded` is an outcome only the runtime gives (a rules version
    // activated without the item's stage); a step's `->` names the others.
    let text = "event a { id: string }\nevent b { id: string }\nworkflow w { key id; expect a; then b -> superseded }";
    let sources = vec![SourceFile { path: "t.mon".into(), text: text.into() }];
    let compilation = compile(&sources, &NoFunctions, &NoSchemas);
    assert!(compilation.has_errors());
    let text = "event a { id: string }\nevent b { id: string }\nworkflow w { key id; expect a; then b -> failure }";
    let sources = vec![SourceFile { path: "t.mon".into(), text: text.into() }];
    assert!(!compile(&sources, &NoFunctions, &NoSchemas).has_errors());
}
