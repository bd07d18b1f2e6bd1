//! From source text to [`ast::File`](crate::ast::File).
//!
//! Parsing never fails. pest stops at the first error, so the file is first
//! cut into top-level items ([`split`]) and each item is parsed on its own
//! ([`build`], the only module that touches pest's pairs): a broken item gives
//! one error and the items around it still parse, which is what lets the
//! checker and the editor work on a file being typed. A broken `workflow`,
//! `event` or `test` is re-parsed statement by statement ([`recover`]), so
//! one bad line costs one error. [`errors`] puts pest's errors into words.

mod build;
mod errors;
mod recover;
mod split;

use crate::ast::{Comment, File, Span};
use crate::error::{SyntaxError, SyntaxErrorKind};
use build::Parsed;

/// How deeply brackets and expressions may nest. pest's parser recurses
/// once per bracket and the tree builder once per bracket or prefix
/// operator; the checker, the formatter and even `Drop` recurse once per
/// level of the finished tree, where a chain such as `a or b or c` is as
/// deep as it is long. Without a bound, a generated or mistyped file could
/// overflow the stack of whoever parses it (the CLI runs on a 1 GiB thread
/// for this reason; a library caller, the language server or a test thread
/// may have 2 MiB). 128 levels is far beyond what a person writes (a long
/// disjunction reads better as `field in [a, b, c]`). In a debug build,
/// parsing and checking the deepest expressions allowed take about 1 MiB of
/// stack at 128 levels, and between 1.5 and 2 MiB at 256, which would leave
/// a 2 MiB thread no room for its caller (measured for brackets, calls and
/// chains). The bound is checked on the text before pest sees it, so the
/// error does not depend on how much stack the caller happens to have.
const MAX_DEPTH: usize = 128;

/// How deeply brackets may nest in an item before pest sees it. An
/// expression holds at most `MAX_DEPTH - 1` brackets (its innermost level is
/// a value), and around it there are at most two more: the item's block and
/// a test event's record. Text that nests deeper holds an expression that
/// is too deep, or junk.
const MAX_BRACKETS: usize = MAX_DEPTH + 1;

/// The error for nesting deeper than [`MAX_DEPTH`]; `span` is where.
fn too_deep(span: Span) -> SyntaxError {
    SyntaxError { kind: SyntaxErrorKind::TooDeep { limit: MAX_DEPTH }, span }
}

/// Parses one file. Always returns a tree (possibly missing the broken
/// items) and every syntax error found.
pub fn parse(src: &str) -> (File, Vec<SyntaxError>) {
    let mut file = File { items: Vec::new(), comments: split::scan_comments(src), unparsed: Vec::new() };
    let mut errors = Vec::new();
    let cx = Context { src, comments: &file.comments };
    for (start, end) in split::split_items(src) {
        let parsed = match split::too_deep(&src[start..end], MAX_BRACKETS) {
            // Left to pest, this would recurse once per bracket.
            Some(at) => Parsed::Unbuilt(vec![too_deep(Span::new(start + at, start + at + 1))]),
            None => build::item(cx, start, end),
        };
        match parsed {
            Parsed::Built(item, found) => {
                file.items.push(item);
                errors.extend(found);
            }
            Parsed::Refused(_) if build::is_blank(&src[start..end]) => {}
            Parsed::Refused(err) => match recover::recover_block(cx, start, end) {
                Some((item, found)) => {
                    file.items.push(item);
                    // Every statement parsed alone, yet the whole did
                    // not: say what pest said rather than pass a broken
                    // item. No known input gets here since a `{` may
                    // open on the next line; this keeps it that way.
                    if found.is_empty() {
                        errors.push(errors::convert_error(src, start, &err));
                    }
                    errors.extend(found);
                }
                None => {
                    errors.push(errors::convert_error(src, start, &err));
                    file.unparsed.extend(split::declared_name(src, start, end));
                }
            },
            // The item is too deep for pest, or pest accepted it but it
            // could not be built. A block is rebuilt statement by statement,
            // which leaves out only the statement at fault; the item's own
            // error stands when that finds nothing (the fault is outside
            // the statements).
            Parsed::Unbuilt(found) => match recover::recover_block(cx, start, end) {
                Some((item, more)) => {
                    file.items.push(item);
                    errors.extend(if more.is_empty() { found } else { more });
                }
                None => {
                    errors.extend(found);
                    file.unparsed.extend(split::declared_name(src, start, end));
                }
            },
        }
    }
    (file, errors)
}

/// The reserved words, for documentation and for the language server.
pub fn reserved_words() -> &'static [&'static str] {
    errors::RESERVED
}

/// The file being parsed, as every piece of the parser sees it.
#[derive(Clone, Copy)]
struct Context<'a> {
    src: &'a str,
    /// Every comment of the file, in order: for doc comments and for
    /// trimming spans.
    comments: &'a [Comment],
}

impl Context<'_> {
    /// The `///` lines directly above `start`, joined.
    fn doc(&self, start: usize) -> Option<String> {
        let mut lines = Vec::new();
        let mut cursor = start;
        for comment in self.comments.iter().rev().filter(|c| c.span.end <= start) {
            let between = &self.src[comment.span.end..cursor];
            let newlines = between.matches('\n').count();
            if !between.trim().is_empty() || newlines > 1 || !comment.text.starts_with("///") {
                break;
            }
            // A `///` that ends a code line documents that line, not ours.
            let line_start = self.src[..comment.span.start].rfind('\n').map_or(0, |i| i + 1);
            if !self.src[line_start..comment.span.start].trim().is_empty() {
                break;
            }
            lines.push(comment.text.trim_start_matches('/').trim().to_string());
            cursor = comment.span.start;
        }
        if lines.is_empty() {
            return None;
        }
        lines.reverse();
        Some(lines.join("\n"))
    }
}
