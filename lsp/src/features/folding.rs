//! Folding ranges: one per multi-line declaration block (from the syntax
//! tree's spans), per multi-line block comment, and per run of two or more
//! line comments.

use lsp_types::{FoldingRange, FoldingRangeKind};
use mon_grammar::ast::File;

use crate::convert::LineIndex;

pub fn ranges(file: &File, text: &str) -> Vec<FoldingRange> {
    let lines = LineIndex::new(text);
    let mut out = Vec::new();
    let mut push = |start: usize, end: usize, kind: Option<FoldingRangeKind>| {
        let start_line = lines.position(start).line;
        let end_line = lines.position(end).line;
        if end_line > start_line {
            out.push(FoldingRange { start_line, end_line, kind, ..FoldingRange::default() });
        }
    };
    for item in &file.items {
        let span = item.span();
        // End on the closing brace's line (the span ends just after it).
        push(span.start, span.end.saturating_sub(1).max(span.start), None);
    }
    // Line comments: runs on consecutive lines fold together.
    let mut run: Option<(usize, usize, u32)> = None;
    for comment in &file.comments {
        let block = comment.text.starts_with("/*");
        if block {
            push(
                comment.span.start,
                comment.span.end.saturating_sub(1).max(comment.span.start),
                Some(FoldingRangeKind::Comment),
            );
            continue;
        }
        let line = lines.position(comment.span.start).line;
        run = match run {
            Some((start, _, last)) if line == last + 1 => Some((start, comment.span.start, line)),
            Some((start, end, _)) => {
                push(start, end, Some(FoldingRangeKind::Comment));
                Some((comment.span.start, comment.span.start, line))
            }
            None => Some((comment.span.start, comment.span.start, line)),
        };
    }
    if let Some((start, end, _)) = run {
        push(start, end, Some(FoldingRangeKind::Comment));
    }
    out.sort_by_key(|r| (r.start_line, r.end_line));
    out
}
