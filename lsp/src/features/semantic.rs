//! Semantic tokens for a whole file: a small lexer pass finds comments,
//! strings, numbers (durations, times, dates), operators and words; each
//! word is then classified from the program's name index (events, fields,
//! workflows, stages, calendars, channels) and the syntax tree (functions,
//! enum values, type names), else as a keyword when it is one.

use std::collections::HashMap;

use lsp_types::{SemanticToken, SemanticTokenType, SemanticTokens, SemanticTokensLegend};
use mon_grammar::ast::{EventBody, Expr, ExprKind, File, Item, StmtKind, TypeKind};

use crate::convert::LineIndex;
use crate::index::{Index, Symbol};
use crate::workspace::Analysis;

/// The legend's token types, in the order of their indexes.
pub const TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::KEYWORD,     // 0
    SemanticTokenType::TYPE,        // 1: event types and type names
    SemanticTokenType::PROPERTY,    // 2: fields
    SemanticTokenType::FUNCTION,    // 3
    SemanticTokenType::ENUM_MEMBER, // 4: enum values, time zones
    SemanticTokenType::STRING,      // 5
    SemanticTokenType::NUMBER,      // 6: numbers, durations, times, dates
    SemanticTokenType::COMMENT,     // 7
    SemanticTokenType::NAMESPACE,   // 8: workflows
    SemanticTokenType::VARIABLE,    // 9: stages
    SemanticTokenType::OPERATOR,    // 10
    SemanticTokenType::ENUM,        // 11: calendars
    SemanticTokenType::INTERFACE,   // 12: channels
];

const KEYWORD: u32 = 0;
const TYPE: u32 = 1;
const PROPERTY: u32 = 2;
const FUNCTION: u32 = 3;
const ENUM_MEMBER: u32 = 4;
const STRING: u32 = 5;
const NUMBER: u32 = 6;
const COMMENT: u32 = 7;
const NAMESPACE: u32 = 8;
const VARIABLE: u32 = 9;
const OPERATOR: u32 = 10;
const ENUM: u32 = 11;
const INTERFACE: u32 = 12;

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend { token_types: TYPES.to_vec(), token_modifiers: Vec::new() }
}

/// Every keyword of the grammar (reserved or contextual).
const KEYWORDS: &[&str] = &[
    "event",
    "workflow",
    "channel",
    "calendar",
    "maintenance",
    "test",
    "and",
    "or",
    "not",
    "in",
    "true",
    "false",
    "where",
    "after",
    "by",
    "within",
    "warn",
    "grace",
    "as",
    "then",
    "expect",
    "start",
    "step",
    "maybe",
    "every",
    "except",
    "open",
    "severity",
    "runbook",
    "notify",
    "renotify",
    "escalate",
    "when",
    "before",
    "for",
    "to",
    "pii",
    "from",
    "at",
    "id",
    "key",
    "group",
    "cohort",
    "timezone",
    "status",
    "on",
    "depends",
    "retain",
    "aging",
    "enum",
    "advance",
    "alert",
    "count",
    "no",
    "secret",
    "stage",
];

pub fn tokens(analysis: &Analysis, file: usize) -> SemanticTokens {
    let (Some(source), Some(tree)) = (analysis.sources.get(file), analysis.compilation.files.get(file)) else {
        return SemanticTokens::default();
    };
    let text = source.text.as_str();
    let mut names: HashMap<usize, (usize, u32)> = HashMap::new();
    from_tree(tree, &mut names);
    // The index wins over the tree: it knows which names are fields.
    for o in Index::build(&analysis.compilation.files).occurrences.iter().filter(|o| o.file == file) {
        let kind = match o.symbol {
            Symbol::Event(_) => TYPE,
            Symbol::Field { .. } => PROPERTY,
            Symbol::Workflow(_) => NAMESPACE,
            Symbol::Stage { .. } => VARIABLE,
            Symbol::Calendar(_) => ENUM,
            Symbol::Channel(_) => INTERFACE,
            Symbol::Zone(_) => ENUM_MEMBER,
        };
        // The first occurrence wins (an unnamed step's name is its event).
        let previous = names.get(&o.span.start).map(|p| p.1);
        if !matches!(previous, Some(TYPE | PROPERTY | NAMESPACE | VARIABLE | ENUM | INTERFACE)) {
            names.insert(o.span.start, (o.span.len(), kind));
        }
    }
    let raw = lex(text, &names);
    encode(text, &raw)
}

/// Names the index does not hold: functions, enum values, type names,
/// `key` fields and the zones that the lexer would split at `/`.
fn from_tree(tree: &File, names: &mut HashMap<usize, (usize, u32)>) {
    let mut exprs: Vec<&Expr> = Vec::new();
    for item in &tree.items {
        match item {
            Item::Event(e) => {
                if let EventBody::Fields(fields) = &e.body {
                    for f in fields {
                        match &f.ty.kind {
                            TypeKind::Named(t) => {
                                names.insert(t.span.start, (t.span.len(), TYPE));
                            }
                            TypeKind::Enum(values) => {
                                for v in values {
                                    names.insert(v.span.start, (v.span.len(), ENUM_MEMBER));
                                }
                            }
                        }
                    }
                }
            }
            Item::Workflow(w) => {
                for stmt in &w.stmts {
                    match &stmt.kind {
                        StmtKind::Key(keys) => {
                            for k in keys {
                                names.insert(k.name.span.start, (k.name.span.len(), PROPERTY));
                            }
                        }
                        StmtKind::Status { condition, .. } => exprs.push(condition),
                        StmtKind::Step(step) => exprs.extend(step.predicate.as_ref()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    while let Some(expr) = exprs.pop() {
        match &expr.kind {
            ExprKind::Name(ident) => {
                names.insert(ident.span.start, (ident.span.len(), ENUM_MEMBER));
            }
            ExprKind::Call { function, args } => {
                names.insert(function.span.start, (function.span.len(), FUNCTION));
                exprs.extend(args.iter());
            }
            ExprKind::List(args) => exprs.extend(args.iter()),
            ExprKind::Unary { operand, .. } | ExprKind::Paren(operand) => exprs.push(operand),
            ExprKind::Binary { lhs, rhs, .. } => {
                exprs.push(lhs);
                exprs.push(rhs);
            }
            _ => {}
        }
    }
}

/// `(start, end, type)` byte ranges in source order.
fn lex(text: &str, names: &HashMap<usize, (usize, u32)>) -> Vec<(usize, usize, u32)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if let Some(&(len, kind)) = names.get(&i) {
            // A known name (zones may hold `/`, so they come before operators).
            if len > 0 && text.is_char_boundary(i + len) {
                out.push((i, i + len, kind));
                i += len;
                continue;
            }
        }
        match c {
            b'/' if next == Some(b'/') => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                out.push((i, end, COMMENT));
                i = end;
            }
            b'/' if next == Some(b'*') => {
                let end = text.get(i + 2..).and_then(|t| t.find("*/")).map_or(text.len(), |n| i + 2 + n + 2);
                out.push((i, end, COMMENT));
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' && bytes[j] != b'\n' {
                    j += if bytes[j] == b'\\' && bytes.get(j + 1).is_some_and(|&b| b != b'\n') { 2 } else { 1 };
                }
                let end = if bytes.get(j) == Some(&b'"') { j + 1 } else { j.min(bytes.len()) };
                out.push((i, end, STRING));
                i = end;
            }
            b'0'..=b'9' => {
                let mut j = i;
                while j < bytes.len() {
                    let b = bytes[j];
                    let digit_next = bytes.get(j + 1).is_some_and(u8::is_ascii_digit);
                    if b.is_ascii_alphanumeric() || b == b'_' || (matches!(b, b'.' | b':' | b'-') && digit_next) {
                        j += 1;
                    } else {
                        break;
                    }
                }
                out.push((i, j, NUMBER));
                i = j;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let mut j = i;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                if KEYWORDS.contains(&&text[i..j]) {
                    out.push((i, j, KEYWORD));
                }
                i = j;
            }
            b'-' if next == Some(b'>') => {
                out.push((i, i + 2, OPERATOR));
                i += 2;
            }
            b'=' | b'!' | b'<' | b'>' => {
                let end = if next == Some(b'=') { i + 2 } else { i + 1 };
                out.push((i, end, OPERATOR));
                i = end;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'|' | b'?' => {
                out.push((i, i + 1, OPERATOR));
                i += 1;
            }
            _ => {
                // Skip the whole character (it may be several bytes).
                i += text[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    out
}

/// The LSP encoding: tokens relative to the previous one, one line each
/// (a block comment over several lines gives one token per line).
fn encode(text: &str, raw: &[(usize, usize, u32)]) -> SemanticTokens {
    let lines = LineIndex::new(text);
    let mut data = Vec::new();
    let (mut last_line, mut last_start) = (0u32, 0u32);
    for &(start, end, kind) in raw {
        let mut piece_start = start;
        for piece in text.get(start..end).unwrap_or("").split('\n') {
            let from = lines.position(piece_start);
            piece_start += piece.len() + 1;
            let length: u32 =
                piece.trim_end_matches('\r').chars().map(|c| if c.len_utf16() == 2 { 2 } else { 1 }).sum();
            if length == 0 {
                continue;
            }
            let delta_line = from.line.saturating_sub(last_line);
            let delta_start = if delta_line == 0 { from.character.saturating_sub(last_start) } else { from.character };
            data.push(SemanticToken { delta_line, delta_start, length, token_type: kind, token_modifiers_bitset: 0 });
            last_line = from.line;
            last_start = from.character;
        }
    }
    SemanticTokens { result_id: None, data }
}
