//! Statement-by-statement re-parsing of a broken block.
//!
//! When a `workflow`, `event` or `test` does not parse as a whole, its header
//! and each statement of its body are parsed on their own, so one bad line
//! costs one error and the rest of the block is still checked. A workflow
//! rebuilt this way is marked `incomplete`, so that the checker does not
//! report the missing statement a second time (a missing `key`, say).

use super::build::{self, BlockKind, Head, Parsed, Statement};
use super::errors::{convert_error, describe_found, token_at};
use super::split::{find_top_level, first_code_offset, split_statements, too_deep, Brackets};
use super::{Context, MAX_BRACKETS};
use crate::ast::*;
use crate::error::{SyntaxError, SyntaxErrorKind};

/// Re-parses the broken item `src[start..end]` statement by statement.
/// Returns the item and the errors found in it; `None` when it is not a
/// `workflow`, `event` or `test` block or even its header does not parse.
pub(super) fn recover_block(cx: Context, start: usize, end: usize) -> Option<(Item, Vec<SyntaxError>)> {
    let src = cx.src;
    let text = &src[start..end];
    let brace = find_top_level(text, b'{')?;
    let head = &text[..brace];
    // The header may be preceded by comments: parse from its keyword.
    let keyword_at = first_code_offset(head);
    let kind = match head[keyword_at..].split_whitespace().next()? {
        "workflow" => BlockKind::Workflow,
        "event" => BlockKind::Event,
        "test" => BlockKind::Test,
        _ => return None,
    };
    let head_end = start + keyword_at + head[keyword_at..].trim_end().len();
    let (head, mut errors) = match build::head(cx, kind, start + keyword_at, head_end) {
        Parsed::Built(head, found) => (head, found),
        Parsed::Refused(_) | Parsed::Unbuilt(_) => return None,
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
        match build::statement(cx, kind, s, e) {
            Parsed::Built(statement, found) => {
                match statement {
                    Statement::Workflow(stmt) => stmts.push(stmt),
                    Statement::Field(field) => fields.push(field),
                    Statement::Test(stmt) => test_stmts.push(stmt),
                }
                errors.extend(found);
            }
            Parsed::Refused(err) => {
                // Parsed alone, a statement's end is its end, not the file's.
                let mut error = convert_error(src, s, &err);
                if let SyntaxErrorKind::Unexpected { expected, .. } = &mut error.kind {
                    for e in expected.iter_mut().filter(|e| e.as_str() == "the end of the file") {
                        *e = "the end of the statement".to_string();
                    }
                }
                errors.push(error);
            }
            // The statement is left out, and its error says why.
            Parsed::Unbuilt(found) => errors.extend(found),
        }
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
