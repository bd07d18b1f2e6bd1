//! Statement-by-statement re-parsing of a broken block.
//!
//! When a `workflow`, `event` or `test` does not parse as a whole, its header
//! and each statement of its body are parsed on their own, so one bad line
//! costs one error and the rest of the block is still checked. A workflow
//! rebuilt this way is marked `incomplete`, so that the checker does not
//! report the missing statement a second time (a missing `key`, say).
//!
//! A statement that one punctuation token would mend (a `:` missing, a
//! stray `(`) is kept, read as mended, and the error names the token: the
//! step or field it declares is then known to the rest of the file, which
//! would otherwise report every reference to it.

use pest::error::ErrorVariant;

use super::build::{self, BlockKind, Edit, Head, Parsed, Rule, Statement};
use super::errors::{convert_error, describe_found, token_at};
use super::split::{find_block, first_code_offset, split_statements, string_end, too_deep, walk_raw, Brackets};
use super::{Context, MAX_BRACKETS};
use crate::ast::*;
use crate::error::{SyntaxError, SyntaxErrorKind};

/// Re-parses the broken item `src[start..end]` statement by statement.
/// Returns the item and the errors found in it; `None` when it is not a
/// `workflow`, `event` or `test` block or even its header does not parse.
pub(super) fn recover_block(cx: Context, start: usize, end: usize) -> Option<(Item, Vec<SyntaxError>)> {
    let src = cx.src;
    let text = &src[start..end];
    let brace = find_block(text)?;
    let head = &text[..brace];
    // The header may be preceded by comments: parse from its keyword.
    let keyword_at = first_code_offset(head);
    let kind = match head[keyword_at..].split_whitespace().next()? {
        "workflow" => BlockKind::Workflow,
        "event" => BlockKind::Event,
        "test" => BlockKind::Test,
        _ => return None,
    };
    let (head_start, head_end) = (start + keyword_at, start + keyword_at + head[keyword_at..].trim_end().len());
    let (head, mut errors) = match build::head(cx, kind, head_start, head_end, None) {
        Parsed::Built(head, found) => (head, found),
        Parsed::Refused(err) => {
            // Parsed alone, a header ends where its block opens.
            let mut error = convert_error(src, head_start, &err);
            rename_end(&mut error, "`{`");
            let edited = |edit| build::head(cx, kind, head_start, head_end, Some(edit));
            match repair(cx, (head_start, head_end), &err, error, edited) {
                Ok((head, error)) => (head, vec![error]),
                Err(_) => return None,
            }
        }
        Parsed::Unbuilt(_) => return None,
    };

    let body_start = brace + 1;
    let body_end = match Brackets::of(text).closer(brace) {
        Some(close) => {
            let after = close + 1;
            if !build::is_blank(&text[after..]) {
                let pos = start + after + first_code_offset(&text[after..]);
                let token = token_at(src, pos);
                errors.push(SyntaxError {
                    kind: SyntaxErrorKind::Unexpected {
                        found: describe_found(&token),
                        expected: vec!["a new declaration".into()],
                    },
                    span: Span::new(pos, (pos + token.len()).min(src.len())),
                });
            }
            close
        }
        None => {
            errors.push(SyntaxError {
                kind: SyntaxErrorKind::UnclosedBlock,
                span: Span::new(start + brace, start + brace + 1),
            });
            text.len()
        }
    };

    let mut stmts = Vec::new();
    let mut fields = Vec::new();
    let mut test_stmts = Vec::new();
    let split_on_comma = kind == BlockKind::Event;
    for (s, e) in split_statements(&text[body_start..body_end], split_on_comma) {
        let (s, e) = (start + body_start + s, start + body_start + e);
        if build::is_blank(&src[s..e]) {
            continue;
        }
        // The block's `{` is one level already.
        if let Some(at) = too_deep(&src[s..e], MAX_BRACKETS - 1) {
            errors.push(super::too_deep(Span::new(s + at, s + at + 1)));
            continue;
        }
        let (statement, found) = match build::statement(cx, kind, s, e, None) {
            Parsed::Built(statement, found) => (Some(statement), found),
            Parsed::Refused(err) => {
                // Parsed alone, a statement's end is its end, not the file's.
                let mut error = convert_error(src, s, &err);
                rename_end(&mut error, "the end of the statement");
                match repair(cx, (s, e), &err, error, |edit| build::statement(cx, kind, s, e, Some(edit))) {
                    Ok((statement, error)) => (Some(statement), vec![error]),
                    // The statement is left out, and its error says why.
                    Err(error) => (None, vec![error]),
                }
            }
            Parsed::Unbuilt(found) => (None, found),
        };
        match statement {
            Some(Statement::Workflow(stmt)) => stmts.push(stmt),
            Some(Statement::Field(field)) => fields.push(field),
            Some(Statement::Test(stmt)) => test_stmts.push(stmt),
            None => {}
        }
        errors.extend(found);
    }

    let span = Span::new(start + keyword_at, start + body_end.min(text.len()) + usize::from(body_end < text.len()));
    let doc = cx.doc(span.start);
    let item = match (kind, head) {
        (BlockKind::Workflow, Head::Name(name)) => {
            Item::Workflow(WorkflowDecl { doc, name, stmts, span, incomplete: true })
        }
        (BlockKind::Event, Head::Name(name)) => {
            Item::Event(EventDecl { doc, name, body: EventBody::Fields(fields), span })
        }
        (BlockKind::Test, Head::Title(name)) => Item::Test(TestDecl { name, stmts: test_stmts, span }),
        // `build::head` names workflows and events and titles tests.
        _ => return None,
    };
    Some((item, errors))
}

/// Says `end` for "the end of the file" in what `error` expected: a piece
/// parsed alone ends where the piece does.
fn rename_end(error: &mut SyntaxError, end: &str) {
    if let SyntaxErrorKind::Unexpected { expected, .. } = &mut error.kind {
        for e in expected.iter_mut().filter(|e| e.as_str() == "the end of the file") {
            *e = end.to_string();
        }
    }
}

/// Repairs the statement (or header) `src[s..e]`, which pest refused with `err`
/// (`error` in words), when one token makes it valid: a punctuation token
/// pest expected, inserted where it stopped, or the punctuation token it
/// found there, removed. Returns the statement and the error to report (a
/// missing token gets its own, at its place), or `error` when no single
/// token, or more than one, does.
///
/// Why: a statement left out costs more than its own error. Other
/// statements, tests and other files refer to its step, its fields, its
/// stages, and each of those references would be reported too. A repair is
/// trusted only when it is the one way to make the statement valid with one
/// token, and it is always reported, so nothing wrong is ever accepted.
/// `edited` parses the piece with an edit made.
fn repair<T>(
    cx: Context,
    (s, e): (usize, usize),
    err: &pest::error::Error<Rule>,
    error: SyntaxError,
    edited: impl Fn(Edit) -> Parsed<T>,
) -> Result<(T, SyntaxError), SyntaxError> {
    // A spelled-out duration, an unclosed string or a reserved word has its
    // own error and its own fix.
    if !matches!(error.kind, SyntaxErrorKind::Unexpected { .. }) {
        return Err(error);
    }
    let src = cx.src;
    let at = error.span.start.min(e);
    let positives = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.as_slice(),
        ErrorVariant::CustomError { .. } => &[],
    };
    let mut edits: Vec<Edit> = Vec::new();
    let mut add = |edit: Edit| {
        if !edits.contains(&edit) {
            edits.push(edit);
        }
    };
    let expected: Vec<&'static str> = positives.iter().filter_map(|&r| build::punctuation(r)).collect();
    for &token in &expected {
        add(Edit { at, removed: 0, inserted: token });
    }
    let found = token_at(&src[..e], at);
    if PUNCTUATION.contains(&found.as_str()) {
        add(Edit { at, removed: found.len(), inserted: "" });
    }
    // A bracket left open reads two more ways, each one token away: its
    // opener is one too many, or its closer belongs further back. These
    // count as repairs too, so that the statement is mended only when one
    // reading is valid, and a guess never regroups an expression: in
    // `missing > (0 or failed > 0` the `)` could follow either `0`.
    for &opener in Brackets::of(&src[s..e]).unpaired() {
        if s + opener < at && matches!(src.as_bytes()[s + opener], b'(' | b'[' | b'{') {
            add(Edit { at: s + opener, removed: 1, inserted: "" });
        }
    }
    let before = tokens(&src[s..at]);
    for &closer in expected.iter().filter(|t| matches!(**t, ")" | "]" | "}")) {
        for &(_, end) in before.iter().rev().skip(1) {
            add(Edit { at: s + end, removed: 0, inserted: closer });
        }
    }
    let mut valid = edits.into_iter().filter_map(|edit| match edited(edit) {
        Parsed::Built(piece, found) if found.is_empty() => Some((edit, piece)),
        _ => None,
    });
    let (Some((edit, piece)), None) = (valid.next(), valid.next()) else {
        return Err(error);
    };
    if edit.removed > 0 {
        // Pest stopped at the token, or the token is a bracket left open
        // before it: either way, the token is what is unexpected.
        if edit.at == at {
            return Ok((piece, error));
        }
        let found = format!("`{}`", &src[edit.at..edit.at + edit.removed]);
        let kind = SyntaxErrorKind::Unexpected { found, expected: Vec::new() };
        return Ok((piece, SyntaxError { kind, span: Span::new(edit.at, edit.at + edit.removed) }));
    }
    let (after, place) = token_before(cx, s, edit.at);
    // A token missing at the start of the statement has nothing to come
    // after: pest's own words say it best.
    if after.0 == after.1 {
        return Ok((piece, error));
    }
    let next = token_from(&src[..e], edit.at).map(|(a, b)| &src[a..b]);
    // A closing bracket is shown with what it closes, when that is short.
    let opened = opened_at(&src[s..after.1], edit.inserted).map(|o| s + o).filter(|&o| after.1 - o <= 60);
    let fix = match opened {
        Some(opened) => written_with(&src[opened..after.1], edit.inserted, None),
        None => written_with(&src[after.0..after.1], edit.inserted, next),
    };
    let kind = SyntaxErrorKind::Missing { token: edit.inserted.into(), after: src[after.0..after.1].into(), fix };
    Ok((piece, SyntaxError { kind, span: place }))
}

/// The tokens of `text` (see [`token_from`]), across lines, without its
/// blanks and comments.
fn tokens(text: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < text.len() {
        i += first_code_offset(&text[i..]);
        match token_from(text, i) {
            Some((start, end)) => {
                found.push((start, end));
                i = end;
            }
            None => break,
        }
    }
    found
}

/// Where in `text` the bracket that `closer` would close opens, together
/// with a name written right before it (`starts_with(`): the innermost one
/// of its kind still open at the end of `text`.
fn opened_at(text: &str, closer: &str) -> Option<usize> {
    let opener = match closer {
        ")" => b'(',
        "]" => b'[',
        "}" => b'{',
        _ => return None,
    };
    let mut open = Vec::new();
    walk_raw(text, |i, b| {
        match b {
            b'(' | b'[' | b'{' => open.push((i, b)),
            b')' | b']' | b'}' => {
                let wanted = match b {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if let Some(at) = open.iter().rposition(|&(_, o)| o == wanted) {
                    open.truncate(at);
                }
            }
            _ => {}
        }
        false
    });
    let (at, _) = open.into_iter().rev().find(|&(_, o)| o == opener)?;
    let name = text[..at].trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
    Some(if opener == b'(' { name.len() } else { at })
}

/// The punctuation tokens recovery may remove: what pest can find where it
/// stopped that the grammar writes as punctuation, brackets included.
const PUNCTUATION: &[&str] = &[":", ",", "=", ".", "|", "->", "(", ")", "[", "]", "{", "}"];

/// The last token of statement `src[s..]` before `at`, and the place
/// where a token missing after it belongs: the blank right after it, or its
/// last character when nothing separates it from the next token or from
/// the end of its line.
fn token_before(cx: Context, s: usize, at: usize) -> ((usize, usize), Span) {
    let src = cx.src;
    // Back over blanks, line breaks and comments.
    let mut end = at;
    loop {
        end = s + src[s..end].trim_end().len();
        match cx.comments.binary_search_by(|c| c.span.end.cmp(&end)) {
            Ok(i) if cx.comments[i].span.start >= s => end = cx.comments[i].span.start,
            _ => break,
        }
    }
    let line = s.max(src[..end].rfind('\n').map_or(0, |i| i + 1));
    let mut token = (end, end);
    let mut i = line;
    while let Some((a, b)) = token_from(&src[..end], i) {
        token = (a, b);
        i = b;
    }
    let place = if src[end..].starts_with([' ', '\t']) {
        Span::new(end, end + 1)
    } else {
        let last = src[..end].chars().next_back().map_or(0, char::len_utf8);
        Span::new(end - last, end)
    };
    (token, place)
}

/// The first token of `text` at or after `from`, skipping blanks: a string,
/// a bracket or comma, or a run of anything else up to a blank, a bracket,
/// a comma or a quote (a name, a number, a path, a timestamp, an operator).
/// None at the end of the text or of the line, or at a comment.
fn token_from(text: &str, from: usize) -> Option<(usize, usize)> {
    let start = from + (text[from..].len() - text[from..].trim_start_matches([' ', '\t']).len());
    let rest = &text[start..];
    let first = rest.chars().next()?;
    let len = match first {
        '\n' | '\r' => return None,
        _ if rest.starts_with("//") || rest.starts_with("/*") => return None,
        '"' => string_end(rest.as_bytes(), 0),
        '(' | ')' | '[' | ']' | '{' | '}' | ',' => 1,
        _ => rest.find(|c: char| c.is_whitespace() || "()[]{},\"".contains(c)).unwrap_or(rest.len()),
    };
    Some((start, start + len))
}

/// `before`, then the missing `token` and what follows it (`after`), as
/// `mon fmt` would space them: `ingested: trade_ingested`, `region, book`,
/// `"S3"] after`, `trade_id = trade_ingested.trade_id`.
fn written_with(before: &str, token: &str, after: Option<&str>) -> String {
    let tight_before = matches!(token, ":" | "," | ")" | "]" | ".");
    let tight_after = matches!(token, "." | "(");
    let mut text = before.to_string();
    if !tight_before {
        text.push(' ');
    }
    text.push_str(token);
    if let Some(after) = after {
        if !tight_after {
            text.push(' ');
        }
        text.push_str(after);
    }
    text
}
