//! Parsing and checking never fail: random text and mutations of real rule
//! files always give either a program or diagnostics, never a panic, and
//! every diagnostic points inside its file.

use std::path::Path;

use mon_compiler::{compile, NoSchemas, SourceFile};
use proptest::prelude::*;

/// Real rule text to mutate: the examples and the spec's blocks.
fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    for dir in
        ["examples/file_receipt", "examples/trade_lifecycle", "examples/batch_sequence", "examples/grouped_metrics"]
    {
        let mut files: Vec<_> =
            std::fs::read_dir(root.join(dir)).expect("example dir").map(|e| e.expect("entry").path()).collect();
        files.sort();
        let joined: String = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "mon"))
            .map(|f| std::fs::read_to_string(f).expect("readable"))
            .collect::<Vec<_>>()
            .join("\n");
        texts.push(joined);
    }
    let spec = std::fs::read_to_string(root.join("docs/LANGUAGE.md")).expect("spec");
    texts.push(spec.split("```mon").skip(1).filter_map(|b| b.split("```").next()).collect::<Vec<_>>().join("\n"));
    texts
}

fn check_never_panics(text: String) -> Result<(), TestCaseError> {
    let sources = vec![SourceFile { path: "fuzz.mon".into(), text }];
    let compilation = compile(&sources, mon_stdlib::registry(), &NoSchemas);
    prop_assert!(compilation.program.is_some() || compilation.has_errors(), "no program and no errors");
    for d in &compilation.diagnostics {
        prop_assert!(d.span.start <= d.span.end && d.span.end <= sources[0].text.len(), "span out of bounds: {d:?}");
        prop_assert!(sources[0].text.is_char_boundary(d.span.start), "span inside a character: {d:?}");
    }
    Ok(())
}

/// Edits that resemble typing: delete, duplicate or insert a token-ish piece.
#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    Duplicate { at: usize, len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    let pieces = prop::sample::select(vec![
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        "\"",
        ";",
        "\n",
        ":",
        ".",
        ",",
        "->",
        "|",
        "==",
        "and",
        "within",
        "by",
        "08:00",
        "5m",
        "5 minutes",
        "workflow",
        "event",
        "step",
        "after",
        "where",
        "maybe",
        "-",
        "??",
        "/*",
        "//",
        "é",
        "\u{0}",
        "2026-13-45",
        "99:99",
        "Europe/Londn",
        "99999999999999999999999",
        "\\u{110000}",
    ]);
    prop_oneof![
        (any::<prop::sample::Index>(), 1usize..20).prop_map(|(i, len)| Edit::Delete { at: i.index(1 << 20), len }),
        (any::<prop::sample::Index>(), pieces)
            .prop_map(|(i, t)| Edit::Insert { at: i.index(1 << 20), text: t.to_string() }),
        (any::<prop::sample::Index>(), 1usize..40).prop_map(|(i, len)| Edit::Duplicate { at: i.index(1 << 20), len }),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let clamp = |at: usize| {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match edit {
        Edit::Delete { at, len } => {
            let start = clamp(*at);
            let end = clamp((start + len).min(text.len()));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Edit::Insert { at, text: piece } => {
            let at = clamp(*at);
            format!("{}{piece}{}", &text[..at], &text[at..])
        }
        Edit::Duplicate { at, len } => {
            let start = clamp(*at);
            let end = clamp((start + len).min(text.len())).max(start);
            format!("{}{}", &text[..end], &text[start..])
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        check_never_panics(text)?;
    }

    #[test]
    fn random_mon_like_text_never_panics(text in "(workflow|event|test|key|step|start|expect|then|within|by|where|[a-z_]{1,8}|[0-9]{1,3}[smhd]?|[{}();:,.|\"\n ]|->|==|08:00){0,60}") {
        check_never_panics(text)?;
    }

    #[test]
    fn mutated_rule_files_never_panic(which in 0usize..5, edits in prop::collection::vec(edit(), 1..6)) {
        let corpus = corpus();
        let mut text = corpus[which % corpus.len()].clone();
        for e in &edits {
            text = apply(&text, e);
        }
        check_never_panics(text)?;
    }
}
