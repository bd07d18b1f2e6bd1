//! Nesting is bounded, so parsing needs no more than an ordinary thread's
//! stack: text nested deeper than the limit (brackets, prefix operators, a
//! chain of binary operators) is a `TooDeep` error at the place that went
//! too far, never a stack overflow, and text at the limit parses, formats
//! and is dropped on a 2 MiB thread, even in a debug build.

use mon_grammar::{format, parse, SyntaxError, SyntaxErrorKind};

/// The stack of a thread that nobody enlarged (Rust's default for spawned
/// threads), stated so that `RUST_MIN_STACK` cannot hide an overflow.
const ORDINARY_STACK: usize = 2 << 20;

/// Runs `f` on a thread with an ordinary stack; an overflow aborts the test
/// binary, which fails the test as surely as a panic.
fn on_ordinary_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(ORDINARY_STACK).spawn(f).expect("a thread starts").join().expect("no panic")
}

fn too_deep(errors: &[SyntaxError]) -> Vec<&SyntaxError> {
    errors.iter().filter(|e| matches!(e.kind, SyntaxErrorKind::TooDeep { .. })).collect()
}

/// The limit, as the parser reports it.
fn limit() -> usize {
    let (_, errors) = parse(&"(".repeat(100_000));
    match too_deep(&errors).first().map(|e| &e.kind) {
        Some(SyntaxErrorKind::TooDeep { limit }) => *limit,
        _ => panic!("no TooDeep error: {errors:?}"),
    }
}

fn workflow_where(condition: &str) -> String {
    format!("event a {{ x: int }}\nworkflow w {{\n  key x\n  expect a where {condition}\n}}\n")
}

#[test]
fn a_hundred_thousand_open_brackets_are_an_error_not_a_crash() {
    for src in ["(".repeat(100_000), workflow_where(&"(".repeat(100_000)), workflow_where(&"[".repeat(100_000))] {
        let (file, errors) = on_ordinary_stack(move || {
            let (file, errors) = parse(&src);
            (file.items.len(), errors)
        });
        let deep = too_deep(&errors);
        assert_eq!(deep.len(), 1, "{errors:?}");
        assert_eq!(deep[0].span.len(), 1, "the span is the bracket that went too deep: {deep:?}");
        assert!(file <= 2, "the items around it still parse");
    }
}

#[test]
fn long_chains_and_runs_of_prefix_operators_are_an_error_not_a_crash() {
    // Chains are long texts that pest reads slowly in a debug build; 20 000
    // operators are still far past the limit.
    let (n, chain) = (100_000, 20_000);
    for condition in [
        format!("x == 1{}", " or x == 1".repeat(chain)),
        format!("x{}", " + 1".repeat(chain)),
        format!("{}x == 1", "not ".repeat(n)),
        format!("x == {}1", "-".repeat(n)),
        format!("{}x{}", "len(".repeat(n), ")".repeat(n)),
    ] {
        let errors = on_ordinary_stack(move || parse(&workflow_where(&condition)).1);
        assert_eq!(too_deep(&errors).len(), 1, "{errors:?}");
    }
}

#[test]
fn the_workflow_around_a_too_deep_condition_still_parses() {
    let src = format!(
        "event a {{ x: int }}\nworkflow w {{\n  key x\n  expect a where {}x{}\n  then a within 5m\n}}\nevent b {{ y: int }}\n",
        "(".repeat(1000),
        ")".repeat(1000)
    );
    let (file, errors) = parse(&src);
    assert_eq!(too_deep(&errors).len(), 1, "one mistake, one error: {errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(file.items.len(), 3, "the workflow (without the step) and both events");
}

#[test]
fn expressions_at_the_limit_parse_format_and_drop_on_an_ordinary_stack() {
    let limit = limit();
    // Each is exactly `limit` levels high: a name is one level.
    let at_limit = [
        format!("{}x{}", "(".repeat(limit - 1), ")".repeat(limit - 1)),
        format!("x{}", " or x".repeat(limit - 1)),
        format!("{}x", "not ".repeat(limit - 1)),
        format!("x in {}1{}", "[".repeat(limit - 2), "]".repeat(limit - 2)),
        format!("{}x{}", "len(".repeat(limit - 1), ")".repeat(limit - 1)),
        format!("{}x{}", "(not ".repeat((limit - 1) / 2), ")".repeat((limit - 1) / 2)),
    ];
    for condition in at_limit {
        let src = workflow_where(&condition);
        let errors = on_ordinary_stack(move || {
            let (file, errors) = parse(&src);
            if errors.is_empty() {
                format(&src).expect("formats");
            }
            drop(file);
            errors
        });
        assert_eq!(errors, Vec::new(), "{condition}");
    }
    // One level more is too deep.
    for condition in [
        format!("{}x{}", "(".repeat(limit), ")".repeat(limit)),
        format!("x{}", " or x".repeat(limit)),
        format!("{}x", "not ".repeat(limit)),
    ] {
        let errors = parse(&workflow_where(&condition)).1;
        assert_eq!(too_deep(&errors).len(), 1, "{condition}: {errors:?}");
    }
}

#[test]
fn a_test_event_record_holds_an_expression_as_deep_as_a_workflow_does() {
    let limit = limit();
    let value = format!("{}1{}", "(".repeat(limit - 1), ")".repeat(limit - 1));
    let src = format!("test \"t\" {{\n  event a {{ x: {value} }}\n}}\n");
    assert_eq!(parse(&src).1, Vec::new());
}
