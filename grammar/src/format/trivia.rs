//! Blocks and the comments around their children.
//!
//! A comment belongs to the innermost block that claims it. These methods
//! print a block's children one per line and place every comment of the
//! block's region: on its own line before what follows it, behind a node on
//! its line, after `{`, or before `}`, keeping the author's blank lines.

use super::{Printer, Render, INDENT};
use crate::ast::Span;

impl<'a> Printer<'a> {
    /// Prints the children of a block (or of the file), one per line, with
    /// the comments of the region `[from, to)` around them.
    pub(super) fn lines(&mut self, from: usize, to: usize, kids: &[Span], depth: usize, render: &mut Render<'_, 'a>) {
        let mut prev = from;
        let mut first = true;
        for (i, &span) in kids.iter().enumerate() {
            let span = self.trimmed(span);
            let gap = self.take(prev, span.start);
            prev = self.comment_lines(&gap, prev, depth, &mut first);

            let rendered = render(self, i);
            let interior = self.take(span.start, span.end);
            let (before, mut behind): (Vec<usize>, Vec<usize>) = match rendered.body {
                Some(body) => interior.into_iter().partition(|&c| self.comments[c].span.start < body.start),
                None if rendered.doc => (Vec::new(), interior),
                None => (interior, Vec::new()),
            };
            if !first && self.blank_between(prev, span.start) {
                self.out.push('\n');
            }
            for group in self.groups(&before) {
                self.comment_line(&group, depth);
            }
            self.indent(depth);
            self.out.push_str(&rendered.text);

            let next = kids.get(i + 1).map_or(to, |s| s.start);
            let trailing = self.trailing(span.end, next, i + 1 == kids.len());
            prev = trailing.last().map_or(span.end, |&c| self.comments[c].span.end);
            behind.extend(trailing);
            if !behind.is_empty() {
                self.out.push_str("  ");
                self.out.push_str(&self.joined(&behind));
            }
            self.out.push('\n');
            first = false;
        }
        let footer = self.take(prev, to);
        self.comment_lines(&footer, prev, depth, &mut first);
    }

    /// Prints an expanded block from just after its `{` to its `}`.
    /// `header_from` is where the node owning the block starts when comments
    /// before the `{` must go after it (see [`Rendered::doc`]).
    fn block(
        &mut self,
        header_from: usize,
        open: usize,
        close: usize,
        kids: &[Span],
        depth: usize,
        render: &mut Render<'_, 'a>,
    ) -> String {
        let saved = std::mem::take(&mut self.out);
        let mut header = self.take(header_from, open);
        // Comments on the `{` line stay there unless the first child shares
        // the line: then they are that child's.
        let first_start = kids.first().map_or(close, |s| s.start);
        let mut pos = open + 1;
        let mut same_line = Vec::new();
        for c in self.unused(open + 1, first_start) {
            let span = self.comments[c].span;
            if self.src[pos..span.start].contains('\n') {
                break;
            }
            same_line.push(c);
            pos = span.end;
        }
        if kids.is_empty() || self.src[pos..first_start].contains('\n') {
            for &c in &same_line {
                self.used[c] = true;
            }
            header.extend(same_line);
        }
        if !header.is_empty() {
            self.out.push_str("  ");
            self.out.push_str(&self.joined(&header));
        }
        self.out.push('\n');
        self.lines(open + 1, close, kids, depth + 1, render);
        self.indent(depth);
        self.out.push('}');
        std::mem::replace(&mut self.out, saved)
    }

    /// The comments right behind a node on its last line, unless the next
    /// node starts on that line too (then they are printed before it).
    fn trailing(&mut self, end: usize, next: usize, last: bool) -> Vec<usize> {
        let mut picked = Vec::new();
        let mut pos = end;
        for c in self.unused(end, next) {
            let span = self.comments[c].span;
            if self.src[pos..span.start].contains('\n') {
                break;
            }
            picked.push(c);
            pos = span.end;
        }
        if !last && !self.src[pos..next].contains('\n') {
            return Vec::new();
        }
        for &c in &picked {
            self.used[c] = true;
        }
        picked
    }

    /// Prints comments on their own lines, keeping the author's blank lines
    /// between them; returns where the last one ends.
    fn comment_lines(&mut self, comments: &[usize], mut prev: usize, depth: usize, first: &mut bool) -> usize {
        for group in self.groups(comments) {
            let start = self.comments[group[0]].span.start;
            if !*first && self.blank_between(prev, start) {
                self.out.push('\n');
            }
            self.comment_line(&group, depth);
            prev = self.comments[group[group.len() - 1]].span.end;
            *first = false;
        }
        prev
    }

    fn comment_line(&mut self, group: &[usize], depth: usize) {
        self.indent(depth);
        self.out.push_str(&self.joined(group));
        self.out.push('\n');
    }

    /// Splits comments into the source lines they share: comments that were
    /// on one line stay on one line, which is what keeps a `///` that follows
    /// a block comment from turning into a doc comment.
    fn groups(&self, comments: &[usize]) -> Vec<Vec<usize>> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &c in comments {
            match groups.last_mut() {
                Some(group)
                    if !self.src[self.comments[group[group.len() - 1]].span.end..self.comments[c].span.start]
                        .contains('\n') =>
                {
                    group.push(c)
                }
                _ => groups.push(vec![c]),
            }
        }
        groups
    }

    fn joined(&self, comments: &[usize]) -> String {
        let texts: Vec<&str> = comments
            .iter()
            .map(|&c| {
                let text = self.comments[c].text.as_str();
                if text.starts_with("//") {
                    text.trim_end()
                } else {
                    text
                }
            })
            .collect();
        texts.join(" ")
    }

    /// The comments starting in `[from, to)` not yet placed, in source order.
    fn unused(&self, from: usize, to: usize) -> Vec<usize> {
        let first = self.comments.partition_point(|c| c.span.start < from);
        (first..self.comments.len())
            .take_while(|&c| self.comments[c].span.start < to)
            .filter(|&c| !self.used[c])
            .collect()
    }

    /// Claims the comments starting in `[from, to)` not yet placed.
    fn take(&mut self, from: usize, to: usize) -> Vec<usize> {
        let found = self.unused(from, to);
        for &c in &found {
            self.used[c] = true;
        }
        found
    }

    fn blank_between(&self, from: usize, to: usize) -> bool {
        from <= to && self.src[from..to].matches('\n').count() >= 2
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str(INDENT);
        }
    }

    /// The first `byte` at or after `from` outside comments. Used for the
    /// braces, which the tree has no spans for; between the known position
    /// and the brace there are only blanks, commas, keywords and comments.
    pub(super) fn find(&self, from: usize, byte: u8) -> usize {
        let bytes = self.src.as_bytes();
        let mut i = from;
        while i < bytes.len() {
            if let Ok(c) = self.comments.binary_search_by_key(&i, |c| c.span.start) {
                i = self.comments[c].span.end;
                continue;
            }
            if bytes[i] == byte {
                return i;
            }
            i += 1;
        }
        bytes.len()
    }

    /// `span` without the blanks and comments at its end. pest's implicit
    /// skipping puts them inside a rule that ends with an optional part
    /// (`field`, `channel_decl`, `step_stmt`, ...), but they are not part of
    /// the node: a comment there trails the node.
    fn trimmed(&self, span: Span) -> Span {
        let mut end = span.end;
        loop {
            end = span.start + self.src[span.start..end].trim_end_matches([' ', '\t', '\u{FEFF}']).len();
            match self.comments.binary_search_by_key(&end, |c| c.span.end) {
                Ok(c) if self.comments[c].span.start >= span.start && end > span.start => {
                    end = self.comments[c].span.start
                }
                _ => return Span::new(span.start, end),
            }
        }
    }

    pub(super) fn spans_lines(&self, from: usize, to: usize) -> bool {
        self.src[from..to].contains('\n')
    }

    /// An item or record body: expanded if the source spanned lines, else
    /// `{ a, b }` with `sep` between the children.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn braced(
        &mut self,
        header_from: usize,
        open: usize,
        close: usize,
        expanded: bool,
        kids: &[Span],
        depth: usize,
        sep: &str,
        render: &mut Render<'_, 'a>,
    ) -> (String, Option<Span>) {
        // An empty block with no comments has nothing to put on its lines.
        if expanded && (!kids.is_empty() || !self.unused(header_from, close).is_empty()) {
            let body = self.block(header_from, open, close, kids, depth, render);
            return (format!("{{{body}"), Some(Span::new(open, close + 1)));
        }
        if kids.is_empty() {
            return ("{}".to_string(), None);
        }
        let parts: Vec<String> = (0..kids.len()).map(|i| render(self, i).text).collect();
        (format!("{{ {} }}", parts.join(sep)), None)
    }
}
