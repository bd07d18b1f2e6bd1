//! The open documents: the editor's text, which overrides the disk.

use std::collections::HashMap;

use lsp_types::{TextDocumentContentChangeEvent, Uri};

use crate::convert::LineIndex;

pub struct Document {
    pub text: String,
    pub version: i32,
}

/// Open documents by URI (as the client spelled it: replies must use the
/// same spelling).
#[derive(Default)]
pub struct Documents {
    docs: HashMap<Uri, Document>,
}

impl Documents {
    pub fn open(&mut self, uri: Uri, text: String, version: i32) {
        self.docs.insert(uri, Document { text, version });
    }

    pub fn close(&mut self, uri: &Uri) {
        self.docs.remove(uri);
    }

    pub fn get(&self, uri: &Uri) -> Option<&Document> {
        self.docs.get(uri)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Uri, &Document)> {
        self.docs.iter()
    }

    /// Applies incremental (or whole-text) changes in order. A change to a
    /// document that is not open is ignored: there is no base text to edit.
    pub fn change(&mut self, uri: &Uri, version: i32, changes: Vec<TextDocumentContentChangeEvent>) {
        let Some(doc) = self.docs.get_mut(uri) else {
            return;
        };
        for change in changes {
            apply_change(&mut doc.text, change);
        }
        doc.version = version;
    }
}

/// One change: a range replaced by text, or (without a range) the whole text.
/// Out-of-range positions are clamped and reversed ranges put in order.
pub fn apply_change(text: &mut String, change: TextDocumentContentChangeEvent) {
    let Some(range) = change.range else {
        *text = change.text;
        return;
    };
    let (start, end) = {
        let index = LineIndex::new(text);
        let a = index.offset(range.start);
        let b = index.offset(range.end);
        (a.min(b), a.max(b))
    };
    text.replace_range(start..end, &change.text);
}

#[cfg(test)]
mod tests {
    use lsp_types::{Position, Range};

    use super::*;

    fn edit(text: &str, range: ((u32, u32), (u32, u32)), new: &str) -> String {
        let mut text = text.to_string();
        let range = Range::new(Position::new(range.0 .0, range.0 .1), Position::new(range.1 .0, range.1 .1));
        apply_change(
            &mut text,
            TextDocumentContentChangeEvent { range: Some(range), range_length: None, text: new.into() },
        );
        text
    }

    #[test]
    fn replaces_ranges() {
        assert_eq!(edit("event a {}\n", ((0, 6), (0, 7)), "bb"), "event bb {}\n");
        assert_eq!(edit("x\ny\n", ((1, 0), (1, 0)), "é"), "x\néy\n");
        // Reversed and out-of-range positions are clamped, not fatal.
        assert_eq!(edit("abc", ((0, 2), (0, 1)), "Z"), "aZc");
        assert_eq!(edit("abc", ((7, 0), (9, 9)), "!"), "abc!");
    }
}
