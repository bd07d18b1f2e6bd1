//! One mistake, one error, at the place of the mistake: each test makes one
//! small mistake in otherwise valid rules (a character missing, one too
//! many, a misspelled word) and checks that the parser reports exactly one
//! error, where the mistake is, and keeps the statements around it.

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
