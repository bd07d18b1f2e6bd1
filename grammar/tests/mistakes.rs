//! One mistake, one error, at the place of the mistake: each test makes one
//! small mistake in otherwise valid rules (a character missing, one too
//! many, a misspelled word) and checks that the parser reports exactly one
//! error, where the mistake is, and keeps the statements around it.

use mon_grammar::ast::{EventBody, Item};
use mon_grammar::{parse, SyntaxError, SyntaxErrorKind};

/// Valid rules for the mistakes to be made in: a workflow in graph form,
/// an event with an enum and a test with records.
const RULES: &str = r#"event trade_ingested {
  trade_id: string
  region: enum { EMEA, AMER, APAC }
  system: string
}

workflow trade_lifecycle {
  key trade_id = trade_ingested.trade_id, sys3_reply.ref
  group by region, book
  status red when missing > 0 or failed > 0
  start ingested: trade_ingested
  step verified: trade_verified where system in ["S2", "S3"] after ingested within 2m warn 1m
  step sent3: sent_to_sys3 after verified within 1m
  step acked: sys3_reply where starts_with(status, "ACK") after sent3 within 5m
  step nacked: sys3_reply where status == "NACK" after sent3 -> failure
}

test "a trade flows" {
  at 2026-03-02T09:00:00Z
  event trade_verified { trade_id: "T-1", system: "S2" } at 2026-03-02T09:00:40Z
  expect stage trade_lifecycle for { trade_id: "T-1" } verified
  advance by 10m
}
"#;

/// `RULES` with its only `old` replaced by `new`.
fn with_mistake(old: &str, new: &str) -> String {
    assert_eq!(RULES.matches(old).count(), 1, "`{old}` is in RULES once");
    RULES.replace(old, new)
}

/// The one error of `src`; fails if there are none or several.
fn the_error(src: &str) -> SyntaxError {
    let errors = parse(src).1;
    assert_eq!(errors.len(), 1, "one error expected, got {errors:#?}\n{src}");
    errors.into_iter().next().expect("one error")
}

/// Where `marker`, which must be in `src` once, starts.
fn at(src: &str, marker: &str) -> usize {
    assert_eq!(src.matches(marker).count(), 1, "`{marker}` is in the text once");
    src.find(marker).expect("the marker")
}

#[test]
fn the_rules_have_no_mistake() {
    assert_eq!(parse(RULES).1, Vec::new());
}

#[test]
fn a_missing_colon_is_reported_where_it_belongs_not_at_the_statement_keyword() {
    let src = with_mistake("start ingested: trade_ingested", "start ingested trade_ingested");
    let error = the_error(&src);
    assert_eq!(
        error.kind,
        SyntaxErrorKind::Unexpected { found: "`trade_ingested`".into(), expected: vec!["`:`".into()] }
    );
    assert_eq!(error.span.start, at(&src, "trade_ingested\n"));
}

/// How many statements (fields, for an event) each item of `src` kept.
fn statements(src: &str) -> Vec<usize> {
    parse(src)
        .0
        .items
        .iter()
        .map(|item| match item {
            Item::Event(e) => match &e.body {
                EventBody::Fields(fields) => fields.len(),
                EventBody::Schema(_) => 0,
            },
            Item::Workflow(w) => w.stmts.len(),
            Item::Test(t) => t.stmts.len(),
            _ => 0,
        })
        .collect()
}

/// `statements(RULES)` with one statement fewer in item `item`: only the
/// broken statement is lost.
fn all_but_one_in(item: usize) -> Vec<usize> {
    let mut counts = statements(RULES);
    counts[item] -= 1;
    counts
}

const EVENT: usize = 0;
const WORKFLOW: usize = 1;
const TEST: usize = 2;

#[test]
fn a_stray_opening_bracket_costs_its_statement_and_does_not_leave_the_block_open() {
    for (old, new, marker) in [
        ("after verified within 1m", "after (verified within 1m", "(verified"),
        ("after sent3 within 5m", "after [sent3 within 5m", "[sent3"),
    ] {
        let src = with_mistake(old, new);
        let error = the_error(&src);
        assert_eq!(error.span.start, at(&src, marker), "{new}: {error:?}");
        assert_eq!(statements(&src), all_but_one_in(WORKFLOW), "{new}");
    }
}

#[test]
fn a_stray_closing_bracket_costs_its_statement_and_not_the_ones_after_it() {
    for (old, new, marker) in [
        ("after verified within 1m", "after verified) within 1m", ") within"),
        (r#"where status == "NACK""#, r#"where status == "NACK"]"#, "] after sent3 ->"),
    ] {
        let src = with_mistake(old, new);
        let error = the_error(&src);
        assert_eq!(error.span.start, at(&src, marker), "{new}: {error:?}");
        assert_eq!(statements(&src), all_but_one_in(WORKFLOW), "{new}");
    }
}

#[test]
fn a_closing_bracket_missing_at_the_end_of_a_line_ends_its_statement_there() {
    let src = with_mistake("when missing > 0 or failed > 0", "when (missing > 0 or failed > 0");
    let error = the_error(&src);
    assert_eq!(error.span.start, at(&src, "\n  start ingested"));
    assert_eq!(statements(&src), all_but_one_in(WORKFLOW));
}

#[test]
fn a_record_or_enum_missing_its_closing_brace_does_not_take_its_blocks() {
    for (old, new, item) in [
        ("APAC }", "APAC", EVENT),
        (r#"system: "S2" } at"#, r#"system: "S2" at"#, TEST),
        (r#"{ trade_id: "T-1" } verified"#, r#"{ trade_id: "T-1" verified"#, TEST),
    ] {
        let src = with_mistake(old, new);
        let error = the_error(&src);
        assert_ne!(error.kind, SyntaxErrorKind::UnclosedBlock, "{new}");
        assert_eq!(statements(&src), all_but_one_in(item), "{new}");
    }
}
