//! One mistake, one error, at the place of the mistake: each test makes one
//! small mistake in otherwise valid rules (a character missing, one too
//! many, a misspelled word) and checks that the parser reports exactly one
//! error, where the mistake is, and keeps the statements around it; and the
//! broken statement too when one token, added or removed, is the one way to
//! mend it.

use mon_grammar::ast::{EventBody, Item, Span, StepDecl, StmtKind};
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

/// The workflow's place among the items of `RULES`.
const WORKFLOW: usize = 1;

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
        SyntaxErrorKind::Missing {
            token: ":".into(),
            after: "ingested".into(),
            fix: "ingested: trade_ingested".into()
        }
    );
    // The blank where the `:` belongs.
    assert_eq!((error.span.start, error.span.end), (at(&src, " trade_ingested\n"), at(&src, "trade_ingested\n")));
    assert_eq!(statements(&src), statements(RULES), "the step is kept");
}

#[test]
fn a_missing_punctuation_token_is_named_at_its_place_and_its_statement_kept() {
    for (old, new, token, place) in [
        ("group by region, book", "group by region book", ",", " book"),
        ("trade_id = trade_ingested", "trade_id trade_ingested", "=", " trade_ingested."),
        (r#""S3"] after"#, r#""S3" after"#, "]", " after ingested"),
        (r#""ACK") after"#, r#""ACK" after"#, ")", " after sent3 within"),
        ("  system: string", "  system string", ":", " string\n}"),
        ("APAC }", "APAC", "}", "C\n  system"),
        (r#"system: "S2" } at"#, r#"system: "S2" at"#, "}", " at 2026-03-02T09:00:40Z"),
        (r#"system: "S2""#, r#"system "S2""#, ":", r#" "S2" }"#),
        (r#""T-1" } verified"#, r#""T-1" verified"#, "}", " verified\n"),
    ] {
        let src = with_mistake(old, new);
        let error = the_error(&src);
        let SyntaxErrorKind::Missing { token: missing, .. } = &error.kind else { panic!("{new}: {error:?}") };
        assert_eq!(missing, token, "{new}");
        assert_eq!(error.span.start, at(&src, place), "{new}: {error:?}");
        assert_eq!(statements(&src), statements(RULES), "{new}: the statement is kept");
    }
}

#[test]
fn a_bracket_that_could_close_in_several_places_is_not_guessed() {
    // `(missing) > 0 ...`, `(missing > 0) or ...` and the whole condition
    // are all valid, and so is the condition without its `(`: one error,
    // where the statement ends with the bracket open, and no guess.
    for (old, new) in [
        ("when missing > 0 or failed > 0", "when (missing > 0 or failed > 0"),
        ("when missing > 0 or failed > 0", "when missing > (0 or failed > 0"),
        (r#"where status == "NACK""#, r#"where status == ["NACK""#),
    ] {
        let src = with_mistake(old, new);
        let error = the_error(&src);
        let SyntaxErrorKind::Unexpected { expected, .. } = &error.kind else { panic!("{new}: {error:?}") };
        assert!(expected.iter().any(|e| e == "`)`" || e == "`]`"), "{new}: {error:?}");
        assert_eq!(statements(&src), all_but_one_in(WORKFLOW), "{new}");
    }
}

#[test]
fn a_stray_bracket_costs_no_statement() {
    for (old, new, marker) in [
        ("after verified within 1m", "after (verified within 1m", "(verified"),
        ("after sent3 within 5m", "after [sent3 within 5m", "[sent3"),
        ("after verified within 1m", "after verified) within 1m", ") within"),
        (r#"where status == "NACK""#, r#"where status == "NACK"]"#, "] after sent3 ->"),
        ("advance by 10m", "advance by (10m", "(10m"),
    ] {
        let src = with_mistake(old, new);
        let error = the_error(&src);
        let SyntaxErrorKind::Unexpected { found, .. } = &error.kind else { panic!("{new}: {error:?}") };
        assert_eq!(found, &format!("`{}`", &marker[..1]), "{new}");
        assert_eq!(error.span.start, at(&src, marker), "{new}: {error:?}");
        assert_eq!(statements(&src), statements(RULES), "{new}: the statement is kept");
    }
}

#[test]
fn a_repaired_statement_has_its_spans_in_the_file() {
    let src = with_mistake("start ingested: trade_ingested", "start ingested trade_ingested");
    let src = src.replace("after verified within 1m", "after (verified within 1m");
    let file = parse(&src).0;
    let Some(Item::Workflow(workflow)) = file.items.get(WORKFLOW) else { panic!("the workflow") };
    let step = |name: &str| -> &StepDecl {
        let mut steps = workflow.stmts.iter().filter_map(|s| match &s.kind {
            StmtKind::Step(step) if step.step_name().name == name => Some(step),
            _ => None,
        });
        steps.next().expect("the step")
    };
    let text = |span: Span| &src[span.start..span.end];
    assert_eq!(text(step("ingested").span), "start ingested trade_ingested");
    assert_eq!(text(step("ingested").event.span), "trade_ingested");
    assert_eq!(text(step("sent3").span), "step sent3: sent_to_sys3 after (verified within 1m");
    assert_eq!(text(step("sent3").after[0].span), "verified");
    assert_eq!(text(step("sent3").clauses[0].span), "within 1m");
}

#[test]
fn a_misspelled_keyword_costs_its_statement_and_no_more() {
    for (old, new) in
        [("after ingested within", "aftr ingested within"), ("after sent3 within 5m", "after sent3 withn 5m")]
    {
        let src = with_mistake(old, new);
        let error = the_error(&src);
        let misspelled = new.split(' ').find(|w| !old.contains(w)).expect("the misspelled word");
        assert_eq!(error.span.start, at(&src, &format!("{misspelled} ")), "{new}: {error:?}");
        assert_eq!(statements(&src), all_but_one_in(WORKFLOW), "{new}");
    }
}

#[test]
fn a_duration_missing_its_unit_mid_statement_is_called_that() {
    let src = with_mistake("within 2m warn 1m", "within 2 warn 1m");
    let error = the_error(&src);
    assert_eq!(error.kind, SyntaxErrorKind::InvalidDuration { written: "2".into(), suggestion: None });
    assert_eq!(error.span.start, at(&src, "2 warn"));
    // A word written onto the number is not taken for a missing unit.
    let src = with_mistake("within 2m warn 1m", "within 2x warn 1m");
    assert!(matches!(the_error(&src).kind, SyntaxErrorKind::Unexpected { .. }));
}

#[test]
fn a_stray_bracket_in_a_block_header_costs_nothing_of_the_block() {
    for (old, new, marker) in [
        ("workflow trade_lifecycle {", "workflow (trade_lifecycle {", "(trade_lifecycle"),
        ("workflow trade_lifecycle {", "workflow trade_lifecycle) {", ") {"),
        (r#"test "a trade flows" {"#, r#"test "a trade flows" ] {"#, "] {"),
    ] {
        let src = with_mistake(old, new);
        let error = the_error(&src);
        assert_eq!(error.span.start, at(&src, marker), "{new}: {error:?}");
        assert_eq!(statements(&src), statements(RULES), "{new}");
    }
}
