//! `textDocument/formatting`: the formatter of `mon fmt`, as one edit.

use lsp_types::TextEdit;

use crate::convert::LineIndex;

/// `None` when the text has syntax errors (the diagnostics already say
/// so) or is already formatted.
pub fn format(text: &str) -> Option<Vec<TextEdit>> {
    let formatted = mon_grammar::format(text).ok()?;
    if formatted == text {
        return Some(Vec::new());
    }
    Some(vec![TextEdit::new(LineIndex::new(text).full_range(), formatted)])
}
