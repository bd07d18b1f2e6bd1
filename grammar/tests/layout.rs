//! Legal layouts the parser must accept, and the errors it must not invent.

use mon_grammar::{parse, SyntaxErrorKind};

fn errors(src: &str) -> Vec<SyntaxErrorKind> {
    parse(src).1.into_iter().map(|e| e.kind).collect()
}

#[test]
fn a_brace_may_open_on_the_next_line() {
    let src = "event a\n{\n  x: string\n}\nworkflow w\n{\n  key x\n  expect a\n}\ntest \"t\"\n{\n  at 2026-03-02T08:00:00Z\n}\n";
    let (file, errs) = parse(src);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(file.items.len(), 3);
}

#[test]
fn inside_brackets_a_line_may_break_before_an_operator_or_a_comma() {
    let src = "workflow w {\n  key x\n  expect a where (y == 1\n    and x == \"q\") or x in [\"a\"\n    , \"b\",\n  ] or len(x\n    ,) > 2\n}\n";
    assert_eq!(errors(src), Vec::new());
}

#[test]
fn a_field_named_like_a_declaration_keyword_does_not_start_an_item() {
    let src = "event a {\nevent: string\ntest: int\n}\n";
    let (file, errs) = parse(src);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(file.items.len(), 1);
}

#[test]
fn a_valid_duration_in_the_wrong_place_is_not_called_invalid() {
    let errs = errors("workflow w { key x; expect a; then b within 10m warn at 5m }\n");
    assert!(matches!(errs.as_slice(), [SyntaxErrorKind::Unexpected { found, .. }] if found == "`5m`"), "{errs:?}");
}

#[test]
fn the_end_of_a_file_without_a_block_is_not_an_unclosed_block() {
    let errs = errors("channel c email");
    assert!(matches!(errs.as_slice(), [SyntaxErrorKind::Unexpected { .. }]), "{errs:?}");
    let errs = errors("workflow w {\n  key x\n");
    assert!(errs.contains(&SyntaxErrorKind::UnclosedBlock), "{errs:?}");
}

#[test]
fn duration_units_come_largest_first() {
    let errs = errors("workflow w { key x; expect a; then b within 30m1h }\n");
    assert!(
        matches!(errs.as_slice(), [SyntaxErrorKind::InvalidDuration { suggestion: Some(s), .. }] if s == "1h30m"),
        "{errs:?}"
    );
    assert_eq!(errors("workflow w { key x; expect a; then b within 1h30m }\n"), Vec::new());
}

#[test]
fn a_declaration_may_follow_a_block_comment_on_its_line() {
    let src = "event a { x: string }\n/* the flow */ workflow w { key x; expect a }\n// workflow not_this {\nevent b { x: string }\n";
    let (file, errs) = parse(src);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(file.items.len(), 3);
}

#[test]
fn items_on_one_line_may_be_separated_by_a_semicolon() {
    let src = "event a { x: string }; event b { y: int }\n\
               workflow w { key x; expect a }; workflow v { key y; expect b }\n\
               channel c email \"c@example.com\"; calendar h { 2026-12-25 }; event s from \"s.json\"\n";
    let (file, errs) = parse(src);
    assert!(errs.is_empty(), "{errs:?}");
    let names: Vec<&str> = file.items.iter().map(|i| &src[i.span().start..i.span().end]).collect();
    assert_eq!(
        names,
        [
            "event a { x: string }",
            "event b { y: int }",
            "workflow w { key x; expect a }",
            "workflow v { key y; expect b }",
            "channel c email \"c@example.com\"",
            "calendar h { 2026-12-25 }",
            "event s from \"s.json\"",
        ]
    );
}
