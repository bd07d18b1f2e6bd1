//! Cutting source text into the pieces pest parses one at a time.
//!
//! pest stops at the first error, so the parser never hands it a whole file:
//! this module cuts the file into top-level items (a line that starts with
//! `event`, `workflow`, ... at brace depth zero begins a new one) and a broken
//! block into its statements. It is a small lexer that knows only brackets,
//! strings and comments, which is all that cutting needs; it never decides
//! whether a piece is valid.

use crate::ast::{Comment, Ident, Span};

const TOP_LEVEL_KEYWORDS: &[&str] = &["event", "workflow", "channel", "calendar", "maintenance", "test"];

/// Byte ranges of the top-level items of `src`. The ranges cover the whole
/// file, so comments and junk between items belong to some item.
pub(super) fn split_items(src: &str) -> Vec<(usize, usize)> {
    let lines: Vec<(usize, &str)> = src
        .split_inclusive('\n')
        .scan(0, |offset, line| {
            let at = *offset;
            *offset += line.len();
            Some((at, line))
        })
        .collect();
    let mut starts = vec![0];
    let mut depth: i64 = 0;
    let mut in_block_comment = false;
    let mut in_test = false;
    // Whether the open test's statements are indented, from its first one.
    let mut test_indented: Option<bool> = None;
    // The first line of an open, indented test that starts with `event` in
    // column 0: where the test ends if it turns out never to be closed.
    let mut test_end: Option<usize> = None;
    let mut i = 0;
    while i <= lines.len() {
        let Some(&(offset, line)) = lines.get(i) else {
            // The end of the file: an open test ends where it was guessed,
            // and the lines after that are read again as items.
            match test_end.take().filter(|_| in_test && depth > 0) {
                Some(end) => {
                    (i, depth, in_block_comment) = (end, 0, false);
                    continue;
                }
                None => break,
            }
        };
        let trimmed = line.trim_start();
        let column = line.len() - trimmed.len();
        // A block comment closed on the same line may come before the keyword.
        let code = if in_block_comment { trimmed } else { &trimmed[first_code_offset(trimmed).min(trimmed.len())..] };
        let word = if in_block_comment { None } else { item_keyword(code) };
        // A keyword in column 0 while a block is still open means a `}` was
        // forgotten: start afresh rather than swallow the rest of the file.
        // Tests contain `event` statements, which are not items, so in an
        // open test whose statements are indented a column-0 `event` is
        // remembered: if the test is never closed (the file ends, or another
        // declaration starts in column 0 first), it ended there and the
        // splitting resumes from that line. In a test written without
        // indentation, layout tells statements from declarations no longer.
        let in_open_test = in_test && depth > 0;
        if in_open_test && test_indented.is_none() && !code.trim().is_empty() {
            test_indented = Some(column > 0);
        }
        if in_open_test && test_indented == Some(true) && column == 0 && word == Some("event") && test_end.is_none() {
            test_end = Some(i);
        }
        let recovers = word.is_some() && column == 0 && depth > 0 && !(in_open_test && word == Some("event"));
        if recovers && in_open_test {
            if let Some(end) = test_end.take() {
                // Resume at depth zero from the line after the test: always
                // a later line than the test's first, so this ends.
                (i, depth, in_block_comment) = (end, 0, false);
                continue;
            }
        }
        if let Some(word) = word.filter(|_| depth <= 0 || recovers) {
            if offset > 0 {
                starts.push(doc_start(src, offset));
            }
            depth = 0;
            in_test = word == "test";
            (test_indented, test_end) = (None, None);
        }
        // Items may also share a line, separated by `;` at the top level
        // (`event a { x: int }; event b { y: int }`), as in the grammar's
        // `file` rule: the next item starts after the `;` when a keyword
        // follows it on the line.
        scan_line(line, &mut depth, &mut in_block_comment, |after| {
            let rest = &line[after..];
            match item_keyword(&rest[first_code_offset(rest).min(rest.len())..]) {
                Some(word) => {
                    starts.push(offset + after);
                    in_test = word == "test";
                    (test_indented, test_end) = (None, None);
                    true
                }
                None => false,
            }
        });
        if depth <= 0 {
            // Whatever block was open is closed.
            test_end = None;
        }
        i += 1;
    }
    starts.dedup();
    let mut ranges = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(src.len());
        if start < end {
            ranges.push((start, end));
        }
    }
    ranges
}

/// The declaration keyword `code` starts with, if it starts an item:
/// `event: string` is a field named `event`, not a declaration.
fn item_keyword(code: &str) -> Option<&'static str> {
    let word = code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("");
    let after_word = code[word.len()..].trim_start();
    if after_word.starts_with(':') {
        return None;
    }
    TOP_LEVEL_KEYWORDS.iter().find(|&&k| k == word).copied()
}

/// Moves an item's start back over the `///` doc lines right above it, so
/// that a doc comment travels with its item.
fn doc_start(src: &str, line_start: usize) -> usize {
    let mut start = line_start;
    while start > 0 {
        let prev_end = start - 1; // the '\n' ending the previous line
        let prev_start = src[..prev_end].rfind('\n').map_or(0, |i| i + 1);
        if src[prev_start..prev_end].trim_start().starts_with("///") {
            start = prev_start;
        } else {
            break;
        }
    }
    start
}

/// Tracks bracket depth across one line, skipping strings and comments.
/// At each `;` outside brackets it asks `item_after(offset just past it)`
/// whether an item starts there, which begins a new item at depth zero.
fn scan_line(line: &str, depth: &mut i64, in_block_comment: &mut bool, mut item_after: impl FnMut(usize) -> bool) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if *in_block_comment {
            if bytes[i..].starts_with(b"*/") {
                *in_block_comment = false;
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => return,
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                *in_block_comment = true;
                i += 2;
                continue;
            }
            b'"' => {
                i = string_end(bytes, i);
                continue;
            }
            b'{' | b'(' | b'[' => *depth += 1,
            b'}' | b')' | b']' => *depth -= 1,
            b';' if *depth <= 0 && item_after(i + 1) => *depth = 0,
            _ => {}
        }
        i += 1;
    }
}

/// The offset just past the string literal opening at `start`. An unclosed
/// string ends at the end of its line, and that newline still separates
/// statements.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    if bytes.get(i) == Some(&b'"') {
        i + 1
    } else {
        i.min(bytes.len())
    }
}

/// Every comment in the file, found by a small lexer that knows strings.
pub(super) fn scan_comments(src: &str) -> Vec<Comment> {
    let bytes = src.as_bytes();
    let mut comments = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
                let end = if src[i..end].ends_with('\r') { end - 1 } else { end };
                comments.push(Comment { text: src[i..end].to_string(), span: Span::new(i, end) });
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = src[i + 2..].find("*/").map_or(src.len(), |n| i + 2 + n + 2);
                comments.push(Comment { text: src[i..end].to_string(), span: Span::new(i, end) });
                i = end;
            }
            _ => i += 1,
        }
    }
    comments
}
/// The keyword and name a broken item starts with, if it has them.
pub(super) fn declared_name(src: &str, start: usize, end: usize) -> Option<(String, Ident)> {
    let text = &src[start..end];
    let at = first_code_offset(text);
    let mut words = text[at..].split(|c: char| c.is_whitespace() || c == '{');
    let keyword = words.next().filter(|w| TOP_LEVEL_KEYWORDS.contains(w))?;
    let rest_at = at + keyword.len();
    let name_at = rest_at + (text[rest_at..].len() - text[rest_at..].trim_start().len());
    let name: String = text[name_at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    if name.is_empty() {
        return None;
    }
    let span = Span::new(start + name_at, start + name_at + name.len());
    Some((keyword.to_string(), Ident { name, span }))
}

/// The offset of the first character that is not blank or comment.
pub(super) fn first_code_offset(text: &str) -> usize {
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
        } else if bytes[i..].starts_with(b"//") {
            i += text[i..].find('\n').unwrap_or(text.len() - i);
        } else if bytes[i..].starts_with(b"/*") {
            // An unclosed block comment is code to complain about.
            match text[i..].find("*/") {
                Some(n) => i += n + 2,
                None => break,
            }
        } else {
            break;
        }
    }
    i
}

/// Calls `visit(offset, byte, depth)` for every byte outside strings and
/// comments; stops early when `visit` returns true.
pub(super) fn walk_code(text: &str, mut visit: impl FnMut(usize, u8, i64) -> bool) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0i64;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(bytes, i);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i += text[i..].find('\n').unwrap_or(text.len() - i);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += text[i..].find("*/").map_or(text.len() - i, |n| n + 2);
                continue;
            }
            b @ (b'{' | b'(' | b'[') => {
                if visit(i, b, depth) {
                    return Some(i);
                }
                depth += 1;
            }
            b @ (b'}' | b')' | b']') => {
                depth -= 1;
                if visit(i, b, depth) {
                    return Some(i);
                }
            }
            b => {
                if visit(i, b, depth) {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// The offset of the first bracket of `text` that opens more than `limit`
/// levels deep, outside strings and comments. A stray closing bracket does
/// not make room for more.
pub(super) fn too_deep(text: &str, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    walk_code(text, |_, b, _| match b {
        b'{' | b'(' | b'[' => {
            depth += 1;
            depth > limit
        }
        b'}' | b')' | b']' => {
            depth = depth.saturating_sub(1);
            false
        }
        _ => false,
    })
}

pub(super) fn find_top_level(text: &str, wanted: u8) -> Option<usize> {
    walk_code(text, |_, b, depth| depth == 0 && b == wanted)
}

/// The `}` closing a block whose `{` came just before `text`.
pub(super) fn find_matching_close(text: &str) -> Option<usize> {
    walk_code(text, |_, b, depth| b == b'}' && depth < 0)
}

/// Statement ranges of a block body: split at `;` and at newlines that do
/// not follow a binary operator or a comma, outside brackets.
pub(super) fn split_statements(body: &str, split_on_comma: bool) -> Vec<(usize, usize)> {
    let mut cuts = Vec::new();
    walk_code(body, |i, b, depth| {
        let cut = depth == 0 && (b == b';' || (split_on_comma && b == b',') || (b == b'\n' && !continues(&body[..i])));
        if cut {
            cuts.push(i);
        }
        false
    });
    let mut ranges = Vec::new();
    let mut from = 0;
    for cut in cuts {
        ranges.push((from, cut));
        from = cut + 1;
    }
    ranges.push((from, body.len()));
    ranges
}

/// Whether the line ending here continues on the next one.
fn continues(before: &str) -> bool {
    let line = before.rsplit('\n').next().unwrap_or("");
    let code = line.split("//").next().unwrap_or("").trim_end();
    ["and", "or", "==", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "??", ",", "in"].iter().any(|op| {
        code.ends_with(op) && (op.chars().all(|c| !c.is_alphanumeric()) || code[..code.len() - op.len()].ends_with(' '))
    })
}
