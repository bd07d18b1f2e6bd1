//! `parse` returns for every input, and its builder agrees with its grammar:
//! no text, valid or broken, gives an internal error (one would mean that
//! `mon.pest` and `parse/build/` describe different languages). Checked
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

proptest! {
    // Failures print their input; a regressions file would land in the repo.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_builder_agrees_with_the_grammar_on_random_edits(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0usize..12, any::<bool>()),
            1..6,
        ),
    ) {
        // Each edit deletes a few characters, or inserts a few copied from
        // elsewhere in real rule text: almost right, as while typing.
        let corpus = corpus();
        let mut text = which.get(&corpus).1.clone();
        for (at, from, len, insert) in edits {
            let boundaries: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            let at = *at.get(&boundaries);
            let end = boundaries.iter().copied().find(|&i| i >= at + len).unwrap_or(text.len());
            if insert {
                let piece = text[*from.get(&boundaries)..].chars().take(len + 1).collect::<String>();
                text.insert_str(at, &piece);
            } else {
                text.replace_range(at..end, "");
            }
        }
        assert_no_internal_error("edited", &text);
    }
}
