//! `parse` returns for every input, and its builder agrees with its grammar:
//! no text, valid or broken, gives an internal error (one would mean that
//! `mon.pest` and `parse/build.rs` describe different languages). Checked
//! on every spec block and `.mon` file of the repository, on every prefix of
//! them (a file being typed), on each of them with one line left out, and on
//! random edits.

mod support;

use mon_grammar::{parse, SyntaxErrorKind};
use proptest::prelude::*;
use support::corpus;

/// Parses `src` and fails on an internal error, naming `label`.
fn assert_no_internal_error(label: &str, src: &str) {
    let (_, errors) = parse(src);
    let internal: Vec<_> = errors.iter().filter(|e| matches!(e.kind, SyntaxErrorKind::Internal { .. })).collect();
    assert!(internal.is_empty(), "{label}: {internal:?}\n{src}");
}

#[test]
fn the_builder_agrees_with_the_grammar_on_every_file_and_every_prefix() {
    for (label, text) in corpus() {
        assert_no_internal_error(&label, &text);
        for (at, _) in text.match_indices('\n') {
            assert_no_internal_error(&format!("{label} up to byte {at}"), &text[..at]);
        }
    }
}

#[test]
fn the_builder_agrees_with_the_grammar_with_any_one_line_left_out() {
    for (label, text) in corpus() {
        let lines: Vec<&str> = text.lines().collect();
        for skip in 0..lines.len() {
            let edited: Vec<&str> =
                lines.iter().enumerate().filter(|&(i, _)| i != skip).map(|(_, line)| *line).collect();
            assert_no_internal_error(&format!("{label} without line {}", skip + 1), &edited.join("\n"));
        }
    }
}

/// Pieces of mon that, dropped anywhere, make text that is almost right.
const PIECES: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "\"",
    ",",
    ";",
    "\n",
    ":",
    ".",
    "->",
    "==",
    " or ",
    " not ",
    "-",
    "?",
    "5m",
    "08:00",
    "2026-03-02",
    " where ",
    " within ",
    " by ",
    " after ",
    "expect ",
    "then ",
    "step ",
    "event ",
    "test ",
    "// c\n",
    "/*",
    "*/",
];

proptest! {
    // Failures print their input; a regressions file would land in the repo.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_builder_agrees_with_the_grammar_on_random_edits(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>()), 1..6),
    ) {
        let corpus = corpus();
        let mut text = which.get(&corpus).1.clone();
        for (at, piece, insert) in edits {
            let boundaries: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            let at = *at.get(&boundaries);
            if insert {
                let piece: &&str = piece.get(PIECES);
                text.insert_str(at, piece);
            } else if let Some(c) = text[at..].chars().next() {
                text.replace_range(at..at + c.len_utf8(), "");
            }
        }
        assert_no_internal_error("edited", &text);
    }
}
