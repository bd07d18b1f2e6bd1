//! Byte offsets (what the compiler's spans hold) to LSP positions (lines
//! and UTF-16 code units, what editors count) and back.
//!
//! Every conversion clamps instead of failing: an editor may send a
//! position past the end of a line or of the file (after a racing edit, or
//! a buggy client), and the server must answer rather than panic.

use lsp_types::{Position, Range};
use mon_grammar::ast::Span;

/// The start of every line of one text, for position conversions.
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the first character of each line; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, line_starts }
    }

    /// The LSP position of byte `offset` (clamped to the text and moved back
    /// to a character boundary).
    pub fn position(&self, offset: usize) -> Position {
        let offset = floor_char_boundary(self.text, offset);
        let line = self.line_starts.partition_point(|&start| start <= offset).saturating_sub(1);
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let character: usize = self.text.get(start..offset).map_or(0, |s| s.chars().map(char::len_utf16).sum());
        Position::new(to_u32(line), to_u32(character))
    }

    pub fn range(&self, span: Span) -> Range {
        Range::new(self.position(span.start), self.position(span.end.max(span.start)))
    }

    /// The byte offset of an LSP position. A line past the end means the
    /// end of the text; a column past the end of its line means the line's
    /// end; a column inside a surrogate pair means the start of that char.
    pub fn offset(&self, position: Position) -> usize {
        let line = position.line as usize;
        let Some(&start) = self.line_starts.get(line) else {
            return self.text.len();
        };
        let end = self.line_starts.get(line + 1).map_or(self.text.len(), |next| next - 1);
        let Some(content) = self.text.get(start..end) else {
            return start;
        };
        let mut units = 0usize;
        for (i, c) in content.char_indices() {
            let next = units + c.len_utf16();
            if next > position.character as usize {
                return start + i;
            }
            units = next;
        }
        end
    }

    /// The whole text as a range (for edits that replace everything).
    pub fn full_range(&self) -> Range {
        Range::new(Position::new(0, 0), self.position(self.text.len()))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The largest character boundary at or before `offset` (clamped to `text`).
pub fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_utf16_units() {
        // `é` is 2 bytes and 1 unit; `𝄞` is 4 bytes and 2 units.
        let text = "ab\né𝄞x\n";
        let index = LineIndex::new(text);
        let x = text.find('x').unwrap_or(0);
        assert_eq!(index.position(x), Position::new(1, 3));
        assert_eq!(index.offset(Position::new(1, 3)), x);
        assert_eq!(index.position(text.len()), Position::new(2, 0));
    }

    #[test]
    fn clamps_positions() {
        let text = "ab\ncd";
        let index = LineIndex::new(text);
        assert_eq!(index.offset(Position::new(0, 99)), 2);
        assert_eq!(index.offset(Position::new(9, 0)), text.len());
        assert_eq!(index.position(999), Position::new(1, 2));
        // Inside the surrogate pair of `𝄞`: the start of the character.
        let index = LineIndex::new("𝄞");
        assert_eq!(index.offset(Position::new(0, 1)), 0);
    }
}
