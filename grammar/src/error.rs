//! Syntax errors as data: what was wrong and where, never preformatted
//! prose. The compiler's `diagnostics` module gives them codes and words.

use serde::Serialize;

use crate::ast::Span;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyntaxError {
    pub kind: SyntaxErrorKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SyntaxErrorKind {
    /// The parser found `found` where only `expected` would do.
    Unexpected {
        found: String,
        expected: Vec<String>,
    },
    /// A punctuation token is missing after `after`, the token before the
    /// place it belongs (the span); `fix` is the text around that place
    /// written with the token, as in `ingested: trade_ingested`. Reported
    /// only when adding the token makes the statement valid, which is how
    /// the parser kept the statement.
    Missing {
        token: String,
        after: String,
        fix: String,
    },
    /// `5 minutes`, `5min` or a bare `5` where a duration belongs.
    InvalidDuration {
        written: String,
        suggestion: Option<String>,
    },
    UnterminatedString,
    /// An escape that means nothing, such as `\d`.
    InvalidEscape {
        escape: String,
    },
    /// A reserved word used as a name.
    ReservedWord {
        word: String,
    },
    /// A `{` that is never closed (the span is the brace, or the end of the
    /// file when the brace is unknown).
    UnclosedBlock,
    InvalidTimeOfDay,
    InvalidDate,
    NumberOutOfRange,
    /// `key a.b` without `name =` before it.
    UnnamedKeySource,
    /// Brackets, prefix operators or a chain of operators nested deeper
    /// than `limit` levels; the span is where the limit was passed.
    TooDeep {
        limit: usize,
    },
    /// The grammar accepted the text but the parser's tree builder did not
    /// expect what it produced: `expected` is what the builder wanted,
    /// `found` the rule it got (or the end of one). A bug in mon, never in
    /// the rule file; the span is the pair the two disagree about.
    Internal {
        expected: String,
        found: String,
    },
}
