//! A broken item costs one error, and the items around it still parse: the
//! splitter ends a block that is never closed where the next declaration
//! starts, as a person reading the file would.

use mon_grammar::ast::{Item, TestStmtKind};
use mon_grammar::{parse, SyntaxErrorKind};

/// The kinds of the syntax errors of `src`.
fn error_kinds(src: &str) -> Vec<SyntaxErrorKind> {
    parse(src).1.into_iter().map(|e| e.kind).collect()
}

/// Each item as `keyword name`.
fn items(src: &str) -> Vec<String> {
    parse(src)
        .0
        .items
        .iter()
        .map(|item| match item {
            Item::Event(d) => format!("event {}", d.name.name),
            Item::Workflow(d) => format!("workflow {}", d.name.name),
            Item::Channel(d) => format!("channel {}", d.name.name),
            Item::Calendar(d) => format!("calendar {}", d.name.name),
            Item::Maintenance(d) => format!("maintenance {}", d.name.name),
            Item::Test(d) => format!("test {}", d.name.value),
        })
        .collect()
}

#[test]
fn an_unclosed_test_does_not_swallow_the_events_after_it() {
    let src = "event a { x: string }\n\
               \n\
               test \"t\" {\n\
               \x20 at 2026-03-02T08:00:00Z\n\
               \x20 event a { x: \"1\" }\n\
               \n\
               event b { y: int }\n\
               event c { z: int }\n\
               workflow w { key x; expect a }\n";
    let (file, errors) = parse(src);
    let brace = src.find("\"t\" {").expect("the test") + 4;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((&errors[0].kind, errors[0].span.start), (&SyntaxErrorKind::UnclosedBlock, brace));
    assert_eq!(items(src), ["event a", "test t", "event b", "event c", "workflow w"]);
    let Some(Item::Test(test)) = file.items.get(1) else { panic!("the test is the second item") };
    let kinds: Vec<bool> = test.stmts.iter().map(|s| matches!(s.kind, TestStmtKind::Event { .. })).collect();
    assert_eq!(kinds, [false, true], "the test keeps its `at` and its `event`");
}

#[test]
fn an_unclosed_test_at_the_end_keeps_its_unindented_statements() {
    let src = "event a { x: string }\ntest \"t\" {\nat 2026-03-02T08:00:00Z\nevent a { x: \"1\" }\n";
    assert_eq!(error_kinds(src), [SyntaxErrorKind::UnclosedBlock]);
}

#[test]
fn a_closed_test_may_hold_event_statements_in_column_zero() {
    let src =
        "event a { x: string }\ntest \"t\" {\nat 2026-03-02T08:00:00Z\nevent a { x: \"1\" }\n}\nevent b { y: int }\n";
    let (file, errors) = parse(src);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(items(src), ["event a", "test t", "event b"]);
    let Some(Item::Test(test)) = file.items.get(1) else { panic!("the test is the second item") };
    assert_eq!(test.stmts.len(), 2);
}

#[test]
fn an_unclosed_workflow_ends_at_the_next_declaration() {
    let src = "workflow w {\n  key x\n  expect a\n\nevent a { x: string }\n";
    assert_eq!(error_kinds(src), [SyntaxErrorKind::UnclosedBlock]);
    assert_eq!(items(src), ["workflow w", "event a"]);
}

#[test]
fn an_unclosed_test_at_the_end_of_the_file_ends_at_the_next_event() {
    let src = "test \"t\" {\n  at 2026-03-02T08:00:00Z\n\n/// The second event.\nevent b { y: int }\n";
    let file = parse(src).0;
    assert_eq!(error_kinds(src), [SyntaxErrorKind::UnclosedBlock]);
    assert_eq!(items(src), ["test t", "event b"]);
    let Some(Item::Event(event)) = file.items.get(1) else { panic!("the event is the second item") };
    assert_eq!(event.doc.as_deref(), Some("The second event."), "its doc comment travels with it");
}
