//! The canonical formatter behind `mon fmt`.
//!
//! [`format`] parses the file and prints its tree again, so the layout depends
//! only on the tree, on where the comments are, on where the author left blank
//! lines and on which items were written on one line. A file with syntax
//! errors is refused (its errors are returned), never half-formatted. The
//! formatter guarantees that formatting is idempotent, that the output parses
//! to the same tree apart from spans and the order of each step's clauses,
//! and that every comment is kept, verbatim and in source order (a `//`
//! comment loses only its trailing blanks).
//!
//! Layout rules:
//!
//! - Two spaces per level; one statement, field, date or enum value per line;
//!   one space between tokens and around binary operators; no column alignment.
//! - An item, record or enum whose source had no line break stays on one line
//!   (`event e { a: int, b: date }`, `workflow w { expect a; then b within 5m }`);
//!   one that spans lines gets one child per line and `}` on its own line.
//! - Blank lines: one is kept wherever the author left one or more between two
//!   items, statements or comments; none at the start or end of a block.
//! - A step's clauses come in a fixed order: where, after, within, by, warn,
//!   not before, every, except, open, settings, `->` outcome (except where
//!   that order would not parse back; see `clause_order`).
//! - Literals are printed canonically: durations largest unit first (`1m30s`,
//!   `0s`), times `HH:MM[:SS]`, dates `YYYY-MM-DD`, integers without `_`,
//!   floats with a `.`, strings re-escaped; timestamps and zones as written.
//! - Comments: one on its own line stays on its own line before what follows
//!   it; one after a node on the same line stays there, two spaces after it;
//!   one after `{` stays after `{`, and so does one between an item's name
//!   and its `{`; one at the end of a block stays before `}`.
//!   A comment inside a node printed on one line moves to its own line before
//!   the node, or behind it when the node has a `///` doc comment (which must
//!   stay directly above the node to remain its doc).

mod expr;
mod items;
mod statements;
mod trivia;

use crate::ast::*;
use crate::SyntaxError;

const INDENT: &str = "  ";

/// Formats a whole file; files with syntax errors are left alone.
pub fn format(src: &str) -> Result<String, Vec<SyntaxError>> {
    let (file, errors) = crate::parse(src);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut printer =
        Printer { src, comments: &file.comments, used: vec![false; file.comments.len()], out: String::new() };
    let spans: Vec<Span> = file.items.iter().map(Item::span).collect();
    printer.lines(0, src.len(), &spans, 0, &mut |p, i| p.item(&file.items[i], 0));
    debug_assert!(printer.used.iter().all(|&u| u), "every comment is printed");
    // A file written with CRLF line endings keeps them.
    let crlf = src.matches("\r\n").count() * 2 > src.matches('\n').count();
    if crlf {
        return Ok(printer.out.replace("\r\n", "\n").replace('\n', "\r\n"));
    }
    Ok(printer.out)
}

/// One child of a block, printed: the first line is not indented (the block
/// indents it), later lines carry their own indentation.
struct Rendered {
    text: String,
    /// The source range `{..}` of a block of the node printed over several
    /// lines. Comments inside the node but behind that block must be printed
    /// behind the node, or they would come out before comments they followed.
    body: Option<Span>,
    /// The node has a `///` doc comment, so nothing may come between the two.
    doc: bool,
}

impl Rendered {
    fn line(text: String) -> Self {
        Rendered { text, body: None, doc: false }
    }
}

type Render<'r, 'a> = dyn FnMut(&mut Printer<'a>, usize) -> Rendered + 'r;

struct Printer<'a> {
    src: &'a str,
    comments: &'a [Comment],
    /// Comments already placed. A comment belongs to the innermost block
    /// that claims it; whatever is left inside a node after printing it is
    /// that node's interior.
    used: Vec<bool>,
    out: String,
}
