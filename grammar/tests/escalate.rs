//! `escalate after D to CHANNEL` (LANGUAGE.md changelog v1.5): where it may
//! be written, that `escalate` stays usable as a name, and what a mistake in
//! it says.

use mon_grammar::ast::{ClauseKind, Item, SettingKind, StmtKind, WorkflowDecl};
use mon_grammar::{parse, SyntaxErrorKind};

fn workflow(src: &str) -> WorkflowDecl {
    let (file, errors) = parse(src);
    assert!(errors.is_empty(), "{errors:?}");
    file.items
        .into_iter()
        .find_map(|i| match i {
            Item::Workflow(w) => Some(w),
            _ => None,
        })
        .expect("a workflow")
}

/// `(after_ms, channel)` of every `escalate` setting of `settings`.
fn escalations<'a>(settings: impl Iterator<Item = &'a SettingKind>) -> Vec<(u64, String)> {
    settings
        .filter_map(|s| match s {
            SettingKind::Escalate { after, channel } => Some((after.millis, channel.name.clone())),
            _ => None,
        })
        .collect()
}

fn workflow_escalations(w: &WorkflowDecl) -> Vec<(u64, String)> {
    escalations(w.stmts.iter().filter_map(|s| match &s.kind {
        StmtKind::Setting(setting) => Some(&setting.kind),
        _ => None,
    }))
}

/// The escalations written on the step of event `event`.
fn step_escalations(w: &WorkflowDecl, event: &str) -> Vec<(u64, String)> {
    let step = w.steps().find(|s| s.event.name == event).expect("the step");
    escalations(step.clauses.iter().filter_map(|c| match &c.kind {
        ClauseKind::Setting(setting) => Some(setting),
        _ => None,
    }))
}

#[test]
fn escalate_is_a_workflow_statement_and_may_be_given_twice() {
    let w = workflow(
        "workflow w {\n  key k\n  escalate after 15m to team_lead\n  escalate after 1h to pager\n  expect a\n}\n",
    );
    assert_eq!(workflow_escalations(&w), [(900_000, "team_lead".to_string()), (3_600_000, "pager".to_string())]);
}

#[test]
fn escalate_is_a_step_clause_among_the_others() {
    let w = workflow(
        "workflow w {\n  key k\n  expect a\n  then b within 5m escalate after 15m to team_lead notify noc \
         escalate after 1h30m to pager -> success\n}\n",
    );
    assert_eq!(step_escalations(&w, "b"), [(900_000, "team_lead".to_string()), (5_400_000, "pager".to_string())]);
    let step = w.steps().find(|s| s.event.name == "b").expect("the step");
    assert_eq!(step.outcome.as_ref().map(|o| o.name.as_str()), Some("success"));
}

/// A clock time without a zone is followed by an optional zone: the word
/// `escalate` must not be read as one.
#[test]
fn escalate_after_a_clock_time_without_a_zone_is_not_a_zone() {
    for clause in ["by 08:00", "warn at 07:45", "not before 06:00"] {
        let src = format!("workflow w {{\n  key k\n  expect a\n  then b {clause} escalate after 15m to pager\n}}\n");
        let w = workflow(&src);
        assert_eq!(step_escalations(&w, "b"), [(900_000, "pager".to_string())], "{clause}");
    }
}

#[test]
fn escalate_is_not_reserved() {
    let src = "event escalate { escalate: bool, to: string }\n\
               channel escalate email \"a@example.com\"\n\
               workflow w {\n\
               \x20 key k\n\
               \x20 expect escalate as escalate where escalate and escalate.to == \"x\" escalate after 5m to escalate\n\
               }\n";
    let w = workflow(src);
    assert_eq!(step_escalations(&w, "escalate"), [(300_000, "escalate".to_string())]);
}

fn errors(src: &str) -> Vec<SyntaxErrorKind> {
    parse(src).1.into_iter().map(|e| e.kind).collect()
}

fn unexpected(src: &str) -> (String, Vec<String>) {
    match errors(src).as_slice() {
        [SyntaxErrorKind::Unexpected { found, expected }] => (found.clone(), expected.clone()),
        other => panic!("one unexpected token, not {other:?}"),
    }
}

#[test]
fn a_broken_escalate_names_what_is_missing() {
    let wf = |stmt: &str| format!("workflow w {{\n  key k\n  {stmt}\n  expect a\n}}\n");
    let (found, expected) = unexpected(&wf("escalate 15m to pager"));
    assert_eq!((found.as_str(), expected), ("`15m`", vec!["`after`".to_string()]));
    let (found, expected) = unexpected(&wf("escalate after 15m pager"));
    assert_eq!((found.as_str(), expected), ("`pager`", vec!["`to`".to_string()]));
    let (found, expected) = unexpected(&wf("escalate after 15m to"));
    assert_eq!((found.as_str(), expected), ("the end of the line", vec!["a name".to_string()]));
    assert!(
        matches!(errors(&wf("escalate after 15 minutes to pager")).as_slice(),
            [SyntaxErrorKind::InvalidDuration { suggestion: Some(s), .. }] if s == "15m"),
        "{:?}",
        errors(&wf("escalate after 15 minutes to pager"))
    );
}

#[test]
fn a_broken_escalate_costs_its_statement_only() {
    let src = "workflow w {\n  key k\n  escalate after soon to pager\n  escalate after 1h to noc\n  expect a\n  \
               then b within 5m\n}\n";
    let (file, errors) = parse(src);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let Some(Item::Workflow(w)) = file.items.first() else { panic!("a workflow") };
    assert!(w.incomplete);
    assert_eq!(workflow_escalations(w), [(3_600_000, "noc".to_string())]);
    assert_eq!(w.steps().count(), 2);
}
