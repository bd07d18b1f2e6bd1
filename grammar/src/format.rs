//! The canonical formatter behind `mon fmt` (being written).

use crate::SyntaxError;

/// Formats a whole file; files with syntax errors are left alone.
pub fn format(src: &str) -> Result<String, Vec<SyntaxError>> {
    let (_file, errors) = crate::parse(src);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(src.to_string())
}
