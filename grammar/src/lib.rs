//! The mon grammar: source text to a syntax tree with spans, and back.
//!
//! This crate owns `mon.pest`, the AST ([`ast`]), the parser ([`parse()`]) and
//! the formatter ([`format()`]). Parsing never fails: it returns a tree of
//! every item it could read plus one error per broken item. It knows nothing
//! about names, types or time zones (that is the compiler's job) and does no
//! I/O: it takes `&str` and gives data.

// `parse` must return for every input, so a surprise inside the parser is an
// error value, never a panic (see `parse/build/`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod ast;
mod error;
mod format;
mod literal;
mod parse;

pub use error::{SyntaxError, SyntaxErrorKind};
pub use format::format;
pub use literal::{format_duration, parse_duration};
pub use parse::{parse, reserved_words};
