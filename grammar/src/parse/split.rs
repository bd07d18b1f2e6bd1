//! Cutting source text into the pieces pest parses one at a time.
//!
//! pest stops at the first error, so the parser never hands it a whole file:
//! this module cuts the file into top-level items (a line that starts with
//! `event`, `workflow`, ... at brace depth zero begins a new one) and a broken
//! block into its statements. It is a small lexer that knows only brackets,
//! strings and comments, which is all that cutting needs; it never decides
//! whether a piece is valid. In a broken block it pairs brackets as a reader
//! would ([`Brackets`]), so that a bracket left open or one too many costs
//! the statement it is in, not the rest of the block.

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

/// Tracks brace depth across one line, skipping strings and comments.
/// At each `;` outside braces it asks `item_after(offset just past it)`
/// whether an item starts there, which begins a new item at depth zero.
/// Only braces count: items hold their statements in braces, and a `(` or
/// `[` left open in a statement must not keep its block open past its `}`.
/// A `}` that closes nothing is one too many and counts for nothing.
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
            b'{' => *depth += 1,
            b'}' => *depth = (*depth - 1).max(0),
            b';' if *depth == 0 && item_after(i + 1) => {}
            _ => {}
        }
        i += 1;
    }
}

/// The offset just past the string literal opening at `start`. An unclosed
/// string ends at the end of its line, and that newline still separates
/// statements.
pub(super) fn string_end(bytes: &[u8], start: usize) -> usize {
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

/// Calls `visit(offset, byte)` for every byte outside strings and comments;
/// stops early when `visit` returns true.
pub(super) fn walk_raw(text: &str, mut visit: impl FnMut(usize, u8) -> bool) -> Option<usize> {
    let bytes = text.as_bytes();
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
            b => {
                if visit(i, b) {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// How the brackets of a broken text pair up, as a person reading it pairs
/// them. A bracket left open or one too many must cost its own statement and
/// no more, so pairing goes by kind and by layout rather than by count:
///
/// - brackets never hold a block, so a `}` closes whatever `(` or `[` is
///   still open inside its block, and they pair with nothing;
/// - a `)` or `]` with no opener of its kind open in its block is one too
///   many, and pairs with nothing;
/// - a `}` that starts a line closes the innermost open `{` whose line is
///   not indented deeper than the `}` (the innermost one when none is): a
///   record or an enum missing its `}` does not take its block's `}`.
#[derive(Default)]
pub(super) struct Brackets {
    /// Each paired opener's offset with its closer's, by opener.
    closers: Vec<(usize, usize)>,
    /// The offsets of the brackets that pair with nothing, in order.
    unpaired: Vec<usize>,
}

impl Brackets {
    pub(super) fn of(text: &str) -> Brackets {
        let mut pairing = Pairing::default();
        // The start of the line of the last brace seen, found by looking
        // back only as far as the brace before it, so that a long line of
        // brackets costs linear time.
        let (mut line_start, mut looked_to) = (0, 0);
        walk_raw(text, |i, b| {
            if matches!(b, b'{' | b'}') {
                if let Some(newline) = text[looked_to..i].rfind('\n') {
                    line_start = looked_to + newline + 1;
                }
                looked_to = i;
            }
            // Brackets are ASCII, so `i` is a character boundary here.
            let line = || &text[line_start..i];
            match b {
                b'{' | b'(' | b'[' => {
                    let indentation = line().len() - line().trim_start_matches([' ', '\t']).len();
                    pairing.open(i, b, indentation);
                }
                b'}' if line().trim_start_matches([' ', '\t']).is_empty() => pairing.close_brace(i, Some(line().len())),
                b'}' => pairing.close_brace(i, None),
                b')' | b']' => pairing.close(i, b),
                _ => {}
            }
            false
        });
        pairing.finish()
    }

    /// The offsets of the brackets that pair with nothing, in order.
    pub(super) fn unpaired(&self) -> &[usize] {
        &self.unpaired
    }

    /// The offset of the bracket that closes the one opening at `open`.
    pub(super) fn closer(&self, open: usize) -> Option<usize> {
        let at = self.closers.binary_search_by_key(&open, |&(opener, _)| opener).ok()?;
        Some(self.closers[at].1)
    }
}

/// The open brackets while [`Brackets::of`] reads a text. Each kind has a
/// stack of its own, so that finding the opener a closer pairs with costs
/// constant time however many brackets of other kinds are open.
#[derive(Default)]
struct Pairing {
    /// The brackets still open: offset and byte.
    open: Vec<(usize, u8)>,
    /// Indices into `open` of its `(`, its `[` and its `{`.
    parens: Vec<usize>,
    squares: Vec<usize>,
    braces: Vec<usize>,
    /// For each entry of `braces`, its line's indentation and the least
    /// indentation of the braces up to it, which says at once whether any
    /// open `{` is indented no deeper than a given column.
    indentation: Vec<(usize, usize)>,
    done: Brackets,
}

impl Pairing {
    fn open(&mut self, at: usize, b: u8, indentation: usize) {
        let index = self.open.len();
        self.open.push((at, b));
        match b {
            b'(' => self.parens.push(index),
            b'[' => self.squares.push(index),
            _ => {
                let least = self.indentation.last().map_or(indentation, |&(_, least)| least.min(indentation));
                self.braces.push(index);
                self.indentation.push((indentation, least));
            }
        }
    }

    /// A `)` or `]`: it closes the innermost opener of its kind inside the
    /// innermost block, or nothing.
    fn close(&mut self, at: usize, b: u8) {
        let block = self.braces.last().copied();
        let opener = if b == b')' { self.parens.last() } else { self.squares.last() };
        match opener.copied().filter(|&o| block.is_none_or(|block| o > block)) {
            Some(index) => self.pair(index, at),
            None => {
                self.done.unpaired.push(at);
            }
        }
    }

    /// A `}`, which starts a line at `column` or does not start one.
    fn close_brace(&mut self, at: usize, column: Option<usize>) {
        let fits = |&(indentation, _): &(usize, usize)| column.is_none_or(|column| indentation <= column);
        let any_fits = self.indentation.last().is_some_and(|&(_, least)| column.is_none_or(|column| least <= column));
        // Every brace looked at before the one that fits is left open, so
        // the search costs no more than the pairing it leads to.
        let nth = if any_fits { self.indentation.iter().rposition(fits) } else { self.braces.len().checked_sub(1) };
        match nth {
            Some(nth) => self.pair(self.braces[nth], at),
            None => {
                self.done.unpaired.push(at);
            }
        }
    }

    /// The opener at `open[index]` pairs with the closer at `at`; the
    /// brackets opened after it are left open.
    fn pair(&mut self, index: usize, at: usize) {
        for (left_open, _) in self.open.drain(index + 1..) {
            self.done.unpaired.push(left_open);
        }
        if let Some((opener, _)) = self.open.pop() {
            self.done.closers.push((opener, at));
        }
        for stack in [&mut self.parens, &mut self.squares] {
            while stack.last().is_some_and(|&i| i >= index) {
                stack.pop();
            }
        }
        while self.braces.last().is_some_and(|&i| i >= index) {
            self.braces.pop();
            self.indentation.pop();
        }
    }

    fn finish(mut self) -> Brackets {
        self.done.unpaired.extend(self.open.into_iter().map(|(at, _)| at));
        self.done.unpaired.sort_unstable();
        self.done.closers.sort_unstable();
        self.done
    }
}

/// Calls `visit(offset, byte, depth)` for every byte outside strings and
/// comments, with the depth of the brackets open around it; stops early
/// when `visit` returns true. Brackets count as [`Brackets`] pairs them: an
/// opener that pairs with nothing holds only until the end of its line (or
/// of the bracket around it), so that a statement with a `(` left open ends
/// where its line does; a closer that pairs with nothing counts for nothing.
fn walk_code(text: &str, mut visit: impl FnMut(usize, u8, i64) -> bool) -> Option<usize> {
    let unpaired = Brackets::of(text).unpaired;
    // The next unpaired bracket: brackets are visited in order.
    let mut next_unpaired = unpaired.iter().peekable();
    let mut depth = 0i64;
    // The paired depth at which each unpaired opener of this line opened.
    let mut left_open: Vec<i64> = Vec::new();
    walk_raw(text, |i, b| {
        let paired = !matches!(b, b'{' | b'(' | b'[' | b'}' | b')' | b']') || next_unpaired.next_if_eq(&&i).is_none();
        match b {
            b'\n' => {
                left_open.clear();
                visit(i, b, depth)
            }
            b'{' | b'(' | b'[' => {
                let stop = visit(i, b, depth + left_open.len() as i64);
                if paired {
                    depth += 1;
                } else {
                    left_open.push(depth);
                }
                stop
            }
            b'}' | b')' | b']' => {
                if paired {
                    depth -= 1;
                    // Those opened inside the bracket just closed are the
                    // last ones: depths only grow along the line until a
                    // paired closer comes.
                    while left_open.last().is_some_and(|&opened_at| opened_at > depth) {
                        left_open.pop();
                    }
                }
                visit(i, b, depth + left_open.len() as i64)
            }
            b => visit(i, b, depth + left_open.len() as i64),
        }
    })
}

/// The offset of the first bracket of `text` that opens more than `limit`
/// levels deep, outside strings and comments. A stray closing bracket does
/// not make room for more.
pub(super) fn too_deep(text: &str, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    walk_raw(text, |_, b| match b {
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

/// The first `{` of `text` outside brackets: where a block opens, closed or
/// not. A bracket that pairs with nothing (`workflow (w {`) does not hide it.
pub(super) fn find_block(text: &str) -> Option<usize> {
    let unpaired = Brackets::of(text).unpaired;
    let mut next_unpaired = unpaired.iter().peekable();
    let mut depth = 0usize;
    walk_raw(text, |i, b| {
        if !matches!(b, b'{' | b'(' | b'[' | b'}' | b')' | b']') {
            return false;
        }
        let paired = next_unpaired.next_if_eq(&&i).is_none();
        match b {
            b'{' if depth == 0 => return true,
            _ if !paired => {}
            b'{' | b'(' | b'[' => depth += 1,
            _ => depth = depth.saturating_sub(1),
        }
        false
    })
}

/// Statement ranges of a block body: split at `;` and at newlines that do
/// not follow a binary operator or a comma, outside brackets (as
/// [`walk_code`] counts them).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The brackets of `text` that pair with nothing, as text.
    fn unpaired(text: &str) -> Vec<String> {
        Brackets::of(text).unpaired.into_iter().map(|i| format!("{}@{i}", &text[i..i + 1])).collect()
    }

    #[test]
    fn a_brace_closes_what_is_left_open_inside_its_block() {
        assert_eq!(unpaired("w {\n  a (b [c\n}\n"), ["(@8", "[@11"]);
    }

    #[test]
    fn a_closer_with_nothing_of_its_kind_open_in_its_block_is_one_too_many() {
        assert_eq!(unpaired("w {\n  a b) c]\n}"), [")@9", "]@12"]);
        assert_eq!(unpaired("( w {\n  a) \n}"), ["(@0", ")@9"]);
    }

    #[test]
    fn a_brace_starting_a_line_closes_the_block_opened_on_a_line_no_deeper() {
        let text = "test {\n  event a { x: 1\n  expect b\n}\n";
        assert_eq!(unpaired(text), ["{@17"]);
        assert_eq!(Brackets::of(text).closer(5), Some(text.len() - 2));
        // Written on one line, or with the `}` indented past its `{`, a
        // brace closes the innermost block as it always does.
        assert_eq!(unpaired("test { event a { x: 1 }"), ["{@5"]);
        assert_eq!(unpaired("test {\n  event a {\n    x: 1\n    }\n"), ["{@5"]);
    }

    #[test]
    fn text_around_the_brackets_may_be_any_unicode() {
        assert_eq!(unpaired("é {\n  ö (é\n  }é"), ["(@10"]);
    }

    #[test]
    fn an_unpaired_opener_holds_its_statement_only_to_the_end_of_its_line() {
        let body = "\n  a (b\n  c [d]\n  e, (f\n    , g)\n";
        let statements: Vec<&str> = split_statements(body, false).into_iter().map(|(s, e)| body[s..e].trim()).collect();
        assert_eq!(statements, ["", "a (b", "c [d]", "e, (f\n    , g)", ""]);
    }
}
