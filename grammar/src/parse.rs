//! From source text to [`ast::File`]: the only module that touches pest.
//!
//! Parsing never fails. pest stops at the first error, so the file is first
//! cut into top-level items (a line that starts with `event`, `workflow`, ...
//! at brace depth zero begins a new one) and each item is parsed on its own:
//! a broken item gives one error and the items around it still parse, which
//! is what lets the checker and the editor work on a file being typed.

use std::cell::RefCell;
use std::sync::OnceLock;

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;

use crate::ast::*;
use crate::error::{SyntaxError, SyntaxErrorKind};

#[derive(pest_derive::Parser)]
#[grammar = "mon.pest"]
struct MonParser;

const TOP_LEVEL_KEYWORDS: &[&str] = &["event", "workflow", "channel", "calendar", "maintenance", "test"];

/// Parses one file. Always returns a tree (possibly missing the broken
/// items) and every syntax error found, in source order.
pub fn parse(src: &str) -> (File, Vec<SyntaxError>) {
    let mut file = File { items: Vec::new(), comments: scan_comments(src), unparsed: Vec::new() };
    let mut errors = Vec::new();
    for (start, end) in split_items(src) {
        let text = &src[start..end];
        match MonParser::parse(Rule::item_only, text) {
            Ok(mut pairs) => {
                let builder =
                    Builder { offset: start, src, comments: &file.comments, errors: RefCell::new(Vec::new()) };
                let item_only = pairs.next().expect("item_only always yields its own pair");
                if let Some(pair) = item_only.into_inner().find(|p| p.as_rule() != Rule::EOI) {
                    file.items.push(builder.item(pair));
                }
                errors.extend(builder.errors.into_inner());
            }
            Err(err) => {
                if MonParser::parse(Rule::blank, text).is_ok() {
                    continue;
                }
                let builder =
                    Builder { offset: start, src, comments: &file.comments, errors: RefCell::new(Vec::new()) };
                match builder.recover_block(src, start, end) {
                    Some(item) => {
                        file.items.push(item);
                        let found = builder.errors.into_inner();
                        // Every statement parsed alone, yet the whole did
                        // not: say what pest said rather than pass a broken
                        // item. No known input gets here since a `{` may
                        // open on the next line; this keeps it that way.
                        if found.is_empty() {
                            errors.push(convert_error(src, start, &err));
                        }
                        errors.extend(found);
                    }
                    None => {
                        errors.push(convert_error(src, start, &err));
                        file.unparsed.extend(declared_name(src, start, end));
                    }
                }
            }
        }
    }
    (file, errors)
}

/// Byte ranges of the top-level items of `src`. The ranges cover the whole
/// file, so comments and junk between items belong to some item.
fn split_items(src: &str) -> Vec<(usize, usize)> {
    let mut starts = vec![0];
    let mut depth: i64 = 0;
    let mut in_block_comment = false;
    let mut in_test = false;
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let column = line.len() - trimmed.len();
        // A block comment closed on the same line may come before the keyword.
        let code = if in_block_comment { trimmed } else { &trimmed[first_code_offset(trimmed).min(trimmed.len())..] };
        let word: &str = code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("");
        // `event: string` is a field named `event`, not a declaration.
        let after_word = code[word.len()..].trim_start();
        let is_top = !in_block_comment && TOP_LEVEL_KEYWORDS.contains(&word) && !after_word.starts_with(':');
        // A keyword in column 0 while a block is still open means a `}` was
        // forgotten: start afresh rather than swallow the rest of the file.
        // Tests contain `event` statements, which are not items.
        let recovers = is_top && column == 0 && depth > 0 && !(in_test && word == "event");
        if is_top && (depth <= 0 || recovers) {
            if offset > 0 {
                starts.push(doc_start(src, offset));
            }
            depth = 0;
            in_test = word == "test";
        }
        scan_line(line, &mut depth, &mut in_block_comment);
        offset += line.len();
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

/// Tracks bracket depth across one line, skipping strings and comments.
fn scan_line(line: &str, depth: &mut i64, in_block_comment: &mut bool) {
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
            b'{' | b'(' | b'[' => *depth += 1,
            b'}' | b')' | b']' => *depth -= 1,
            _ => {}
        }
        i += 1;
    }
}

/// The offset just past the string literal opening at `start`. An unclosed
/// string ends at the end of its line, and that newline still separates
/// statements.
fn string_end(bytes: &[u8], start: usize) -> usize {
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
fn scan_comments(src: &str) -> Vec<Comment> {
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

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::op_or, Assoc::Left))
            .op(Op::infix(Rule::op_and, Assoc::Left))
            .op(Op::prefix(Rule::op_not))
            .op(Op::infix(Rule::op_eq, Assoc::Left)
                | Op::infix(Rule::op_ne, Assoc::Left)
                | Op::infix(Rule::op_lt, Assoc::Left)
                | Op::infix(Rule::op_le, Assoc::Left)
                | Op::infix(Rule::op_gt, Assoc::Left)
                | Op::infix(Rule::op_ge, Assoc::Left)
                | Op::infix(Rule::op_in, Assoc::Left)
                | Op::infix(Rule::op_not_in, Assoc::Left))
            .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
            .op(Op::infix(Rule::op_mul, Assoc::Left) | Op::infix(Rule::op_div, Assoc::Left))
            .op(Op::infix(Rule::op_coalesce, Assoc::Left))
            .op(Op::prefix(Rule::op_neg))
    })
}

fn is_keyword(rule: Rule) -> bool {
    format!("{rule:?}").starts_with("kw_")
}

/// Turns the pairs of one item into AST nodes, shifting spans by the item's
/// offset in the file.
struct Builder<'a> {
    offset: usize,
    src: &'a str,
    comments: &'a [Comment],
    errors: RefCell<Vec<SyntaxError>>,
}

impl<'a> Builder<'a> {
    /// Parses a broken `workflow`, `event` or `test` statement by statement,
    /// so that one bad line costs one error and the rest is still checked.
    /// `None` when even the header does not parse.
    fn recover_block(&self, src: &str, start: usize, end: usize) -> Option<Item> {
        let text = &src[start..end];
        let brace = find_top_level(text, b'{')?;
        let head = &text[..brace];
        let (head_rule, stmt_rule) = match head[first_code_offset(head)..].split_whitespace().next()? {
            "workflow" => (Rule::workflow_head, Rule::workflow_stmt_only),
            "event" => (Rule::event_head, Rule::field_only),
            "test" => (Rule::test_head, Rule::test_stmt_only),
            _ => return None,
        };
        // The header may be preceded by comments: parse from its keyword.
        let keyword_at = first_code_offset(head);
        let head_pairs = MonParser::parse(head_rule, head[keyword_at..].trim_end()).ok()?;
        let head_builder =
            Builder { offset: start + keyword_at, src, comments: self.comments, errors: RefCell::new(Vec::new()) };
        let head_pair = head_pairs.into_iter().next()?;
        let mut head_inner = head_builder.inner(head_pair).filter(|p| p.as_rule() != Rule::EOI);
        let name_pair = head_inner.next()?;

        let body_start = brace + 1;
        let body_end = match find_matching_close(&text[body_start..]) {
            Some(close) => {
                let after = body_start + close + 1;
                if MonParser::parse(Rule::blank, &text[after..]).is_err() {
                    let pos = start + after + first_code_offset(&text[after..]);
                    let token = token_at(src, pos);
                    self.error(
                        SyntaxErrorKind::Unexpected {
                            found: describe_found(&token),
                            expected: vec!["a new declaration".into()],
                        },
                        Span::new(pos, (pos + token.len()).min(src.len())),
                    );
                }
                body_start + close
            }
            None => {
                self.error(SyntaxErrorKind::UnclosedBlock, Span::new(start + brace, start + brace + 1));
                text.len()
            }
        };
        let split_on_comma = stmt_rule == Rule::field_only;
        let mut parsed = Vec::new();
        for (s, e) in split_statements(&text[body_start..body_end], split_on_comma) {
            let (s, e) = (body_start + s, body_start + e);
            let stmt_text = &text[s..e];
            if MonParser::parse(Rule::blank, stmt_text).is_ok() {
                continue;
            }
            match MonParser::parse(stmt_rule, stmt_text) {
                Ok(pairs) => {
                    let builder =
                        Builder { offset: start + s, src, comments: self.comments, errors: RefCell::new(Vec::new()) };
                    if let Some(pair) =
                        pairs.into_iter().next().and_then(|p| p.into_inner().find(|q| q.as_rule() != Rule::EOI))
                    {
                        parsed.push((builder.span(&pair), pair, builder.offset));
                    }
                    self.errors.borrow_mut().extend(builder.errors.into_inner());
                }
                Err(err) => {
                    // Parsed alone, a statement's end is its end, not the file's.
                    let mut error = convert_error(src, start + s, &err);
                    if let SyntaxErrorKind::Unexpected { expected, .. } = &mut error.kind {
                        for e in expected.iter_mut().filter(|e| e.as_str() == "the end of the file") {
                            *e = "the end of the statement".to_string();
                        }
                    }
                    self.errors.borrow_mut().push(error);
                }
            }
        }
        let span = Span::new(start + keyword_at, start + body_end.min(text.len()) + usize::from(body_end < text.len()));
        let at = |offset: usize| Builder { offset, src, comments: self.comments, errors: RefCell::new(Vec::new()) };
        let item = match head_rule {
            Rule::workflow_head => Item::Workflow(WorkflowDecl {
                doc: self.doc(span.start),
                name: head_builder.ident(name_pair),
                stmts: parsed.into_iter().map(|(_, p, off)| self.absorb(at(off), |b| b.stmt(p))).collect(),
                span,
                incomplete: true,
            }),
            Rule::event_head => Item::Event(EventDecl {
                doc: self.doc(span.start),
                name: head_builder.ident(name_pair),
                body: EventBody::Fields(
                    parsed.into_iter().map(|(_, p, off)| self.absorb(at(off), |b| b.field(p))).collect(),
                ),
                span,
            }),
            _ => Item::Test(TestDecl {
                name: head_builder.string(name_pair),
                stmts: parsed.into_iter().map(|(_, p, off)| self.absorb(at(off), |b| b.test_stmt(p))).collect(),
                span,
            }),
        };
        self.errors.borrow_mut().extend(head_builder.errors.into_inner());
        Some(item)
    }

    /// Runs `build` on another builder and keeps the errors it found.
    fn absorb<T>(&self, builder: Builder<'a>, build: impl FnOnce(&Builder<'a>) -> T) -> T {
        let value = build(&builder);
        self.errors.borrow_mut().extend(builder.errors.into_inner());
        value
    }

    /// The pair's span in the file, without the blanks and comments that
    /// pest lets a rule end with when its optional tail is absent.
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        let start = s.start() + self.offset;
        let mut end = s.end() + self.offset;
        loop {
            end = start + self.src[start..end].trim_end().len();
            match self.comments.binary_search_by(|c| c.span.end.cmp(&end)) {
                Ok(i) if self.comments[i].span.start >= start => end = self.comments[i].span.start,
                _ => break,
            }
        }
        Span::new(start, end)
    }

    fn error(&self, kind: SyntaxErrorKind, span: Span) {
        self.errors.borrow_mut().push(SyntaxError { kind, span });
    }

    /// The inner pairs of `pair` without its keyword tokens.
    fn inner<'i>(&self, pair: Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
        pair.into_inner().filter(|p| !is_keyword(p.as_rule()))
    }

    /// The `///` lines directly above `start`, joined.
    fn doc(&self, start: usize) -> Option<String> {
        let mut lines = Vec::new();
        let mut cursor = start;
        for comment in self.comments.iter().rev().filter(|c| c.span.end <= start) {
            let between = &self.src[comment.span.end..cursor];
            let newlines = between.matches('\n').count();
            if !between.trim().is_empty() || newlines > 1 || !comment.text.starts_with("///") {
                break;
            }
            // A `///` that ends a code line documents that line, not ours.
            let line_start = self.src[..comment.span.start].rfind('\n').map_or(0, |i| i + 1);
            if !self.src[line_start..comment.span.start].trim().is_empty() {
                break;
            }
            lines.push(comment.text.trim_start_matches('/').trim().to_string());
            cursor = comment.span.start;
        }
        if lines.is_empty() {
            return None;
        }
        lines.reverse();
        Some(lines.join("\n"))
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident { name: pair.as_str().to_string(), span: self.span(&pair) }
    }

    fn idents(&self, pairs: impl Iterator<Item = Pair<'a, Rule>>) -> Vec<Ident> {
        pairs.map(|p| self.ident(p)).collect()
    }

    fn item(&self, pair: Pair<Rule>) -> Item {
        match pair.as_rule() {
            Rule::event_decl => Item::Event(self.event_decl(pair)),
            Rule::workflow_decl => Item::Workflow(self.workflow_decl(pair)),
            Rule::channel_decl => Item::Channel(self.channel_decl(pair)),
            Rule::calendar_decl => Item::Calendar(self.calendar_decl(pair)),
            Rule::maintenance_decl => Item::Maintenance(self.maintenance_decl(pair)),
            Rule::test_decl => Item::Test(self.test_decl(pair)),
            other => unreachable!("item rule {other:?}"),
        }
    }

    // ------------------------------------------------------------ events

    fn event_decl(&self, pair: Pair<Rule>) -> EventDecl {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let name = self.ident(inner.next().expect("event name"));
        let body_pair = inner.next().expect("event body");
        let body = match body_pair.as_rule() {
            Rule::event_schema => EventBody::Schema(self.string(self.inner(body_pair).next().expect("schema path"))),
            _ => EventBody::Fields(self.inner(body_pair).map(|f| self.field(f)).collect()),
        };
        EventDecl { doc: self.doc(span.start), name, body, span }
    }

    fn field(&self, pair: Pair<Rule>) -> FieldDecl {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let name = self.ident(inner.next().expect("field name"));
        let ty = self.type_expr(inner.next().expect("field type"));
        let pii = inner.next().is_some();
        FieldDecl { doc: self.doc(span.start), name, ty, pii, span }
    }

    fn type_expr(&self, pair: Pair<Rule>) -> TypeExpr {
        let span = self.span(&pair);
        let mut kind = None;
        let mut optional = false;
        for p in self.inner(pair) {
            match p.as_rule() {
                Rule::named_type => kind = Some(TypeKind::Named(self.ident(self.inner(p).next().expect("type name")))),
                Rule::enum_type => kind = Some(TypeKind::Enum(self.idents(self.inner(p)))),
                Rule::optional => optional = true,
                other => unreachable!("type rule {other:?}"),
            }
        }
        TypeExpr { kind: kind.expect("a type has a kind"), optional, span }
    }

    // ------------------------------------------------------------ workflows

    fn workflow_decl(&self, pair: Pair<Rule>) -> WorkflowDecl {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let name = self.ident(inner.next().expect("workflow name"));
        let stmts = inner.map(|p| self.stmt(p)).collect();
        WorkflowDecl { doc: self.doc(span.start), name, stmts, span, incomplete: false }
    }

    fn stmt(&self, pair: Pair<Rule>) -> Stmt {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let kind = match rule {
            Rule::key_stmt => StmtKind::Key(self.key_fields(pair)),
            Rule::group_stmt => StmtKind::GroupBy(self.idents(self.inner(pair))),
            Rule::cohort_stmt => StmtKind::Cohort(self.ident(self.inner(pair).next().expect("cohort field"))),
            Rule::timezone_stmt => StmtKind::Timezone(self.zone(self.inner(pair).next().expect("zone"))),
            Rule::status_stmt => {
                let mut inner = self.inner(pair);
                let color = self.ident(inner.next().expect("status color"));
                let condition = self.expr(inner.next().expect("status condition"));
                StmtKind::Status { color, condition }
            }
            Rule::on_stmt => {
                let mut inner = self.inner(pair);
                let case = self.ident(inner.next().expect("on case"));
                let action = self.ident(inner.next().expect("on action"));
                StmtKind::On { case, action }
            }
            Rule::depends_stmt => StmtKind::DependsOn(self.idents(self.inner(pair))),
            Rule::retain_stmt => StmtKind::Retain(self.duration(self.inner(pair).next().expect("retain duration"))),
            Rule::aging_stmt => StmtKind::Aging(self.inner(pair).map(|p| self.duration(p)).collect()),
            Rule::open_stmt => StmtKind::Open(self.time_of_day(self.inner(pair).next().expect("open time"))),
            Rule::expect_stmt | Rule::then_stmt | Rule::start_stmt | Rule::step_stmt => {
                StmtKind::Step(self.step_decl(pair))
            }
            _ => StmtKind::Setting(Setting { kind: self.setting(pair), span }),
        };
        Stmt { kind, span }
    }

    fn key_fields(&self, pair: Pair<Rule>) -> Vec<KeyField> {
        let mut fields: Vec<KeyField> = Vec::new();
        for p in self.inner(pair) {
            let span = self.span(&p);
            match p.as_rule() {
                Rule::ident => fields.push(KeyField { name: self.ident(p), sources: Vec::new(), span }),
                Rule::key_mapping => {
                    let mut inner = self.inner(p);
                    let name = self.ident(inner.next().expect("key name"));
                    let source = self.qualified(inner.next().expect("key source"));
                    fields.push(KeyField { name, sources: vec![source], span });
                }
                Rule::qualified => {
                    let source = self.qualified(p);
                    match fields.last_mut().filter(|f| !f.sources.is_empty()) {
                        Some(field) => {
                            field.span = field.span.to(span);
                            field.sources.push(source);
                        }
                        None => self.error(SyntaxErrorKind::UnnamedKeySource, span),
                    }
                }
                other => unreachable!("key rule {other:?}"),
            }
        }
        fields
    }

    fn qualified(&self, pair: Pair<Rule>) -> QualifiedName {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let qualifier = self.ident(inner.next().expect("qualifier"));
        let name = self.ident(inner.next().expect("qualified name"));
        QualifiedName { qualifier, name, span }
    }

    fn setting(&self, pair: Pair<Rule>) -> SettingKind {
        let rule = pair.as_rule();
        let mut inner = self.inner(pair);
        match rule {
            Rule::severity_set => SettingKind::Severity(self.ident(inner.next().expect("severity"))),
            Rule::runbook_set => SettingKind::Runbook(self.string(inner.next().expect("runbook"))),
            Rule::notify_set => {
                let mut channels = Vec::new();
                let mut min_severity = None;
                for p in inner {
                    match p.as_rule() {
                        Rule::ident => channels.push(self.ident(p)),
                        Rule::notify_filter => min_severity = Some(self.ident(self.inner(p).next().expect("severity"))),
                        other => unreachable!("notify rule {other:?}"),
                    }
                }
                SettingKind::Notify { channels, min_severity }
            }
            Rule::renotify_set => SettingKind::Renotify(self.duration(inner.next().expect("renotify"))),
            Rule::grace_set => SettingKind::Grace(self.duration(inner.next().expect("grace"))),
            other => unreachable!("setting rule {other:?}"),
        }
    }

    fn step_decl(&self, pair: Pair<Rule>) -> StepDecl {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = self.inner(pair).peekable();
        let mut form = match rule {
            Rule::expect_stmt => StepForm::Expect,
            Rule::then_stmt => StepForm::Then { maybe: false },
            Rule::start_stmt => StepForm::Start,
            _ => StepForm::Step,
        };
        if inner.peek().is_some_and(|p| p.as_rule() == Rule::maybe) {
            inner.next();
            form = StepForm::Then { maybe: true };
        }
        let mut name = None;
        if matches!(rule, Rule::start_stmt | Rule::step_stmt) {
            name = Some(self.ident(inner.next().expect("step name")));
        }
        let event = self.ident(inner.next().expect("step event"));
        let mut step = StepDecl {
            form,
            name,
            event,
            predicate: None,
            after: Vec::new(),
            clauses: Vec::new(),
            outcome: None,
            span,
        };
        for p in inner {
            let clause_span = self.span(&p);
            let kind = match p.as_rule() {
                Rule::step_alias => {
                    step.name = Some(self.ident(self.inner(p).next().expect("alias")));
                    continue;
                }
                Rule::where_clause => {
                    step.predicate = Some(self.expr(self.inner(p).next().expect("predicate")));
                    continue;
                }
                Rule::outcome => {
                    step.outcome = Some(self.ident(self.inner(p).next().expect("outcome")));
                    continue;
                }
                Rule::after_clause => {
                    step.after.extend(self.idents(self.inner(p)));
                    continue;
                }
                Rule::within_clause => ClauseKind::Within(self.duration(self.inner(p).next().expect("within"))),
                Rule::by_clause => {
                    let mut time = None;
                    let mut zone = None;
                    let mut day_offset = None;
                    for q in self.inner(p) {
                        match q.as_rule() {
                            Rule::time_of_day => time = Some(self.time_of_day(q)),
                            Rule::zone => zone = Some(self.zone(q)),
                            Rule::day_offset => {
                                let days = self.number::<u32>(&q.as_str()[1..q.as_str().len() - 1], self.span(&q));
                                if days > 36_600 {
                                    self.error(SyntaxErrorKind::NumberOutOfRange, self.span(&q));
                                }
                                day_offset = Some((days, self.span(&q)));
                            }
                            other => unreachable!("by rule {other:?}"),
                        }
                    }
                    ClauseKind::By { time: time.expect("by time"), zone, day_offset }
                }
                Rule::warn_clause => {
                    let q = self.inner(p).next().expect("warn");
                    match q.as_rule() {
                        Rule::duration => ClauseKind::Warn(self.duration(q)),
                        _ => {
                            let (time, zone) = self.clock_time(q);
                            ClauseKind::WarnAt { time, zone }
                        }
                    }
                }
                Rule::not_before_clause => {
                    let q = self.inner(p).next().expect("not before");
                    match q.as_rule() {
                        Rule::duration => ClauseKind::NotBefore(self.duration(q)),
                        _ => {
                            let (time, zone) = self.clock_time(q);
                            ClauseKind::NotBeforeTime { time, zone }
                        }
                    }
                }
                Rule::every_clause => ClauseKind::Every(self.idents(self.inner(p))),
                Rule::except_clause => ClauseKind::Except(self.idents(self.inner(p))),
                Rule::open_stmt => ClauseKind::Open(self.time_of_day(self.inner(p).next().expect("open"))),
                _ => ClauseKind::Setting(self.setting(p)),
            };
            step.clauses.push(Clause { kind, span: clause_span });
        }
        step
    }

    fn clock_time(&self, pair: Pair<Rule>) -> (TimeOfDay, Option<Zone>) {
        let mut inner = self.inner(pair);
        let time = self.time_of_day(inner.next().expect("clock time"));
        let zone = inner.next().map(|z| self.zone(z));
        (time, zone)
    }

    // ------------------------------------------------------------ other items

    fn channel_decl(&self, pair: Pair<Rule>) -> ChannelDecl {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let name = self.ident(inner.next().expect("channel name"));
        let kind = self.ident(inner.next().expect("channel kind"));
        let targets = inner
            .map(|p| match p.as_rule() {
                Rule::secret_ref => ChannelTarget::Secret(self.string(self.inner(p).next().expect("secret"))),
                _ => ChannelTarget::Literal(self.string(p)),
            })
            .collect();
        ChannelDecl { doc: self.doc(span.start), name, kind, targets, span }
    }

    fn calendar_decl(&self, pair: Pair<Rule>) -> CalendarDecl {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let name = self.ident(inner.next().expect("calendar name"));
        let dates = inner.map(|p| self.date(p)).collect();
        CalendarDecl { doc: self.doc(span.start), name, dates, span }
    }

    fn maintenance_decl(&self, pair: Pair<Rule>) -> MaintenanceDecl {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let name = self.ident(inner.next().expect("maintenance name"));
        let window_pair = inner.next().expect("maintenance window");
        let window = match window_pair.as_rule() {
            Rule::weekly_window => {
                let mut from_day = None;
                let mut to_day = None;
                let mut from = None;
                let mut to = None;
                let mut zone = None;
                for p in self.inner(window_pair) {
                    match p.as_rule() {
                        Rule::ident if from.is_none() => from_day = Some(self.ident(p)),
                        Rule::ident => to_day = Some(self.ident(p)),
                        Rule::time_of_day if from.is_none() => from = Some(self.time_of_day(p)),
                        Rule::time_of_day => to = Some(self.time_of_day(p)),
                        Rule::zone => zone = Some(self.zone(p)),
                        other => unreachable!("window rule {other:?}"),
                    }
                }
                MaintenanceWindow::Weekly {
                    from_day,
                    from: from.expect("window start"),
                    to_day,
                    to: to.expect("window end"),
                    zone,
                }
            }
            _ => {
                let mut inner = self.inner(window_pair);
                let from = self.timestamp(inner.next().expect("from"));
                let to = self.timestamp(inner.next().expect("to"));
                MaintenanceWindow::Fixed { from, to }
            }
        };
        let workflows = inner.next().map(|p| self.idents(self.inner(p))).unwrap_or_default();
        MaintenanceDecl { doc: self.doc(span.start), name, window, workflows, span }
    }

    // ------------------------------------------------------------ tests

    fn test_decl(&self, pair: Pair<Rule>) -> TestDecl {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let name = self.string(inner.next().expect("test name"));
        let stmts = inner.map(|p| self.test_stmt(p)).collect();
        TestDecl { name, stmts, span }
    }

    fn test_stmt(&self, pair: Pair<Rule>) -> TestStmt {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::at_stmt => TestStmtKind::At(self.timestamp(self.inner(pair).next().expect("at"))),
            Rule::advance_stmt => {
                let p = self.inner(pair).next().expect("advance");
                let q = self.inner(p.clone()).next().expect("advance value");
                match p.as_rule() {
                    Rule::advance_to => TestStmtKind::AdvanceTo(self.timestamp(q)),
                    _ => TestStmtKind::AdvanceBy(self.duration(q)),
                }
            }
            Rule::event_stmt => {
                let mut inner = self.inner(pair);
                let event = self.ident(inner.next().expect("event type"));
                let fields = self.record(inner.next().expect("event record"));
                let mut at = None;
                let mut id = None;
                for p in inner {
                    match p.as_rule() {
                        Rule::event_at => at = Some(self.timestamp(self.inner(p).next().expect("at"))),
                        _ => id = Some(self.string(self.inner(p).next().expect("id"))),
                    }
                }
                TestStmtKind::Event { event, fields, at, id }
            }
            _ => TestStmtKind::Expect(self.expectation(self.inner(pair).next().expect("expectation"))),
        };
        TestStmt { kind, span }
    }

    fn record(&self, pair: Pair<Rule>) -> Vec<RecordField> {
        self.inner(pair)
            .map(|p| {
                let span = self.span(&p);
                let mut inner = self.inner(p);
                let name = self.ident(inner.next().expect("field name"));
                let value = self.expr(inner.next().expect("field value"));
                RecordField { name, value, span }
            })
            .collect()
    }

    fn target(&self, pair: Pair<Rule>) -> Target {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let workflow = self.ident(inner.next().expect("workflow"));
        let step = inner.next().map(|p| self.ident(p));
        Target { workflow, step, span }
    }

    fn key_filter(&self, pair: Pair<Rule>) -> Vec<RecordField> {
        self.record(self.inner(pair).next().expect("key record"))
    }

    fn expectation(&self, pair: Pair<Rule>) -> Expectation {
        let rule = pair.as_rule();
        let mut inner = self.inner(pair);
        match rule {
            Rule::expect_alert => {
                let kind = self.ident(inner.next().expect("kind"));
                let target = self.target(inner.next().expect("target"));
                let key = inner.next().map(|p| self.key_filter(p));
                Expectation::Alert { kind, target, key }
            }
            Rule::expect_status => {
                let target = self.target(inner.next().expect("target"));
                let color = self.ident(inner.next().expect("color"));
                Expectation::Status { target, color }
            }
            Rule::expect_stage => {
                let workflow = self.ident(inner.next().expect("workflow"));
                let key = self.key_filter(inner.next().expect("key"));
                let stage = self.ident(inner.next().expect("stage"));
                Expectation::Stage { workflow, key, stage }
            }
            Rule::expect_count => {
                let metric = self.ident(inner.next().expect("metric"));
                let target = self.target(inner.next().expect("target"));
                let op = match inner.next().expect("op").as_str() {
                    "==" => CompareOp::Eq,
                    "!=" => CompareOp::Ne,
                    "<" => CompareOp::Lt,
                    "<=" => CompareOp::Le,
                    ">" => CompareOp::Gt,
                    _ => CompareOp::Ge,
                };
                let value_pair = inner.next().expect("count");
                let value_span = self.span(&value_pair);
                let value = self.number::<i64>(value_pair.as_str(), value_span);
                Expectation::Count { metric, target, op, value, value_span }
            }
            Rule::expect_no => {
                let mut alert = false;
                let mut kind = None;
                let mut target = None;
                for p in inner {
                    match p.as_rule() {
                        Rule::no_alert => alert = true,
                        Rule::ident => kind = Some(self.ident(p)),
                        _ => target = Some(self.target(p)),
                    }
                }
                Expectation::No { alert, kind, target }
            }
            _ => {
                let kind = self.ident(inner.next().expect("kind"));
                let target = self.target(inner.next().expect("target"));
                let mut delay = None;
                let mut key = None;
                for p in inner {
                    match p.as_rule() {
                        Rule::record_delay => delay = Some(self.duration(self.inner(p).next().expect("delay"))),
                        _ => key = Some(self.key_filter(p)),
                    }
                }
                Expectation::Record { kind, target, delay, key }
            }
        }
    }

    // ------------------------------------------------------------ expressions

    fn expr(&self, pair: Pair<Rule>) -> Expr {
        self.expr_pairs(pair.into_inner())
    }

    fn expr_pairs(&self, pairs: Pairs<Rule>) -> Expr {
        pratt()
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, operand| {
                let span = self.span(&op).to(operand.span);
                let op = if op.as_rule() == Rule::op_not { UnaryOp::Not } else { UnaryOp::Neg };
                Expr { kind: ExprKind::Unary { op, operand: Box::new(operand) }, span }
            })
            .map_infix(|lhs, op, rhs| {
                let op = match op.as_rule() {
                    Rule::op_or => BinaryOp::Or,
                    Rule::op_and => BinaryOp::And,
                    Rule::op_eq => BinaryOp::Eq,
                    Rule::op_ne => BinaryOp::Ne,
                    Rule::op_lt => BinaryOp::Lt,
                    Rule::op_le => BinaryOp::Le,
                    Rule::op_gt => BinaryOp::Gt,
                    Rule::op_ge => BinaryOp::Ge,
                    Rule::op_in => BinaryOp::In,
                    Rule::op_not_in => BinaryOp::NotIn,
                    Rule::op_add => BinaryOp::Add,
                    Rule::op_sub => BinaryOp::Sub,
                    Rule::op_mul => BinaryOp::Mul,
                    Rule::op_div => BinaryOp::Div,
                    _ => BinaryOp::Coalesce,
                };
                let span = lhs.span.to(rhs.span);
                Expr { kind: ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span }
            })
            .parse(pairs)
    }

    fn primary(&self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::paren => ExprKind::Paren(Box::new(self.expr(pair.into_inner().next().expect("paren expr")))),
            Rule::list => ExprKind::List(pair.into_inner().map(|p| self.expr(p)).collect()),
            Rule::call => {
                let mut inner = pair.into_inner();
                let function = self.ident(inner.next().expect("function"));
                ExprKind::Call { function, args: inner.map(|p| self.expr(p)).collect() }
            }
            Rule::path => ExprKind::Path(self.qualified(pair)),
            Rule::ident => ExprKind::Name(self.ident(pair)),
            Rule::int => ExprKind::Literal(Literal::Int(self.number(pair.as_str(), span))),
            Rule::float => ExprKind::Literal(Literal::Float(self.number(pair.as_str(), span))),
            Rule::string => ExprKind::Literal(Literal::String(self.string(pair).value)),
            Rule::boolean => ExprKind::Literal(Literal::Bool(pair.as_str() == "true")),
            Rule::duration => ExprKind::Literal(Literal::Duration(self.duration(pair).millis)),
            Rule::date => {
                let d = self.date(pair);
                ExprKind::Literal(Literal::Date { year: d.year, month: d.month, day: d.day })
            }
            Rule::time_of_day => {
                let t = self.time_of_day(pair);
                ExprKind::Literal(Literal::TimeOfDay { hour: t.hour, minute: t.minute, second: t.second })
            }
            Rule::timestamp => ExprKind::Literal(Literal::Timestamp(pair.as_str().to_string())),
            other => unreachable!("primary rule {other:?}"),
        };
        Expr { kind, span }
    }

    // ------------------------------------------------------------ literals

    fn number<T: std::str::FromStr + Default>(&self, text: &str, span: Span) -> T {
        let digits: String = text.chars().filter(|&c| c != '_').collect();
        digits.parse().unwrap_or_else(|_| {
            self.error(SyntaxErrorKind::NumberOutOfRange, span);
            T::default()
        })
    }

    fn string(&self, pair: Pair<Rule>) -> StringLit {
        let span = self.span(&pair);
        let raw = pair.into_inner().next().map_or("", |p| p.as_str());
        // The raw text starts one byte (the quote) after the literal.
        let raw_start = span.start + 1;
        let mut value = String::with_capacity(raw.len());
        let mut chars = raw.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                value.push(c);
                continue;
            }
            let Some((j, escaped)) = chars.next() else { break };
            let escape_span = Span::new(raw_start + i, raw_start + j + escaped.len_utf8());
            match escaped {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                '"' | '\\' => value.push(escaped),
                'u' if chars.peek().is_some_and(|&(_, c)| c == '{') => {
                    chars.next();
                    let mut hex = String::new();
                    let mut end = j + 2;
                    for (k, c) in chars.by_ref() {
                        end = k + c.len_utf8();
                        if c == '}' {
                            break;
                        }
                        hex.push(c);
                    }
                    let span = Span::new(raw_start + i, raw_start + end);
                    match u32::from_str_radix(&hex, 16).ok().filter(|_| hex.len() <= 6).and_then(char::from_u32) {
                        Some(c) => value.push(c),
                        None => self.error(
                            SyntaxErrorKind::InvalidEscape { escape: self.src[span.start..span.end].to_string() },
                            span,
                        ),
                    }
                }
                other => {
                    self.error(SyntaxErrorKind::InvalidEscape { escape: format!("\\{other}") }, escape_span);
                    value.push(other);
                }
            }
        }
        StringLit { value, span }
    }

    fn duration(&self, pair: Pair<Rule>) -> Duration {
        let span = self.span(&pair);
        let text = pair.as_str();
        let mut millis: u64 = 0;
        let mut number: u64 = 0;
        let mut overflow = false;
        // Units come largest first (`1h30m`, not `30m1h`).
        let mut previous_unit = u64::MAX;
        let mut out_of_order = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if let Some(d) = c.to_digit(10) {
                match number.checked_mul(10).and_then(|n| n.checked_add(d as u64)) {
                    Some(n) => number = n,
                    None => overflow = true,
                }
                continue;
            }
            let unit: u64 = match c {
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    1
                }
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                _ => 86_400_000,
            };
            match number.checked_mul(unit).and_then(|n| millis.checked_add(n)) {
                Some(total) => millis = total,
                None => overflow = true,
            }
            out_of_order |= unit >= previous_unit;
            previous_unit = unit;
            number = 0;
        }
        if out_of_order && !overflow {
            let suggestion = Some(crate::format::format_duration(millis));
            self.error(SyntaxErrorKind::InvalidDuration { written: text.to_string(), suggestion }, span);
        }
        // Instants are i64 milliseconds: a longer duration means nothing.
        if overflow || millis > i64::MAX as u64 {
            self.error(SyntaxErrorKind::NumberOutOfRange, span);
        }
        Duration { millis, span }
    }

    fn time_of_day(&self, pair: Pair<Rule>) -> TimeOfDay {
        let span = self.span(&pair);
        let mut parts = pair.as_str().split(':').map(|p| p.parse::<u32>().unwrap_or(99));
        let hour = parts.next().unwrap_or(0);
        let minute = parts.next().unwrap_or(0);
        let second = parts.next().unwrap_or(0);
        if hour > 23 || minute > 59 || second > 59 {
            self.error(SyntaxErrorKind::InvalidTimeOfDay, span);
        }
        TimeOfDay { hour, minute, second, span }
    }

    fn date(&self, pair: Pair<Rule>) -> Date {
        let span = self.span(&pair);
        let mut parts = pair.as_str().split('-');
        let year = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let month = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let day = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            self.error(SyntaxErrorKind::InvalidDate, span);
        }
        Date { year, month, day, span }
    }

    fn timestamp(&self, pair: Pair<Rule>) -> Timestamp {
        Timestamp { text: pair.as_str().to_string(), span: self.span(&pair) }
    }

    fn zone(&self, pair: Pair<Rule>) -> Zone {
        Zone { name: pair.as_str().to_string(), span: self.span(&pair) }
    }
}

/// The keyword and name a broken item starts with, if it has them.
fn declared_name(src: &str, start: usize, end: usize) -> Option<(String, Ident)> {
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
fn first_code_offset(text: &str) -> usize {
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

/// Calls `visit(offset, byte, depth)` for every byte outside strings and
/// comments; stops early when `visit` returns true.
fn walk_code(text: &str, mut visit: impl FnMut(usize, u8, i64) -> bool) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0i64;
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
            b @ (b'{' | b'(' | b'[') => {
                if visit(i, b, depth) {
                    return Some(i);
                }
                depth += 1;
            }
            b @ (b'}' | b')' | b']') => {
                depth -= 1;
                if visit(i, b, depth) {
                    return Some(i);
                }
            }
            b => {
                if visit(i, b, depth) {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

fn find_top_level(text: &str, wanted: u8) -> Option<usize> {
    walk_code(text, |_, b, depth| depth == 0 && b == wanted)
}

/// The `}` closing a block whose `{` came just before `text`.
fn find_matching_close(text: &str) -> Option<usize> {
    walk_code(text, |_, b, depth| b == b'}' && depth < 0)
}

/// Statement ranges of a block body: split at `;` and at newlines that do
/// not follow a binary operator or a comma, outside brackets.
fn split_statements(body: &str, split_on_comma: bool) -> Vec<(usize, usize)> {
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

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

// ---------------------------------------------------------------- errors

/// Turns pest's "expected one of these rules" into a [`SyntaxError`] that
/// names what was found and what would have been valid, in words.
fn convert_error(src: &str, offset: usize, err: &pest::error::Error<Rule>) -> SyntaxError {
    let pos = offset
        + match err.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
    let found = token_at(src, pos);
    let span = Span::new(pos, pos + found.len());
    let positives = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { .. } => Vec::new(),
    };

    if let Some((number, word, unit)) = spelled_out_duration(&src[pos..]) {
        if positives.iter().any(|r| matches!(r, Rule::duration)) {
            let len = src[pos..].find(word).map_or(number.len(), |i| i + word.len());
            return SyntaxError {
                kind: SyntaxErrorKind::InvalidDuration {
                    written: src[pos..pos + len].to_string(),
                    suggestion: unit.map(|u| format!("{number}{u}")),
                },
                span: Span::new(pos, pos + len),
            };
        }
    }
    if src[pos..].starts_with('"') && !src[pos + 1..].split('\n').next().unwrap_or("").contains('"') {
        let end = src[pos..].find('\n').map_or(src.len(), |i| pos + i);
        return SyntaxError { kind: SyntaxErrorKind::UnterminatedString, span: Span::new(pos, end) };
    }
    if positives.contains(&Rule::ident) && RESERVED.contains(&found.as_str()) {
        return SyntaxError { kind: SyntaxErrorKind::ReservedWord { word: found }, span };
    }
    let mut expected: Vec<String> = Vec::new();
    for rule in positives {
        let word = describe(rule).to_string();
        if !expected.contains(&word) {
            expected.push(word);
        }
    }
    let braces_open = {
        let mut depth = 0i64;
        walk_code(&src[offset..], |_, b, _| {
            match b {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                _ => {}
            }
            false
        });
        depth > 0
    };
    if (pos >= src.len() && braces_open) || found == "}" {
        // End of input while a block is open: the usual cause is a missing brace.
        if pos >= src.len() {
            // Point at the last character: an empty span draws no caret.
            let last = src.char_indices().last().map_or(0, |(i, _)| i);
            return SyntaxError { kind: SyntaxErrorKind::UnclosedBlock, span: Span::new(last, src.len()) };
        }
    }
    SyntaxError { kind: SyntaxErrorKind::Unexpected { found: describe_found(&found), expected }, span }
}

const RESERVED: &[&str] = &[
    "and", "or", "not", "in", "true", "false", "where", "after", "by", "within", "warn", "grace", "as", "then",
    "expect", "start", "step", "maybe", "every", "except", "open", "severity", "runbook", "notify", "renotify", "when",
    "before",
];

/// The reserved words, for documentation and for the language server.
pub fn reserved_words() -> &'static [&'static str] {
    RESERVED
}

/// `5 minutes`, `5min`, `2 hours` and friends: a number and a spelled-out unit.
fn spelled_out_duration(text: &str) -> Option<(&str, &str, Option<&'static str>)> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if digits == 0 {
        return None;
    }
    let number = &text[..digits];
    let rest = text[digits..].trim_start_matches([' ', '\t']);
    let word_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
    let word = &rest[..word_len];
    if word.is_empty() {
        // A bare number where a duration belongs.
        return Some((number, number, None)).filter(|_| !text[digits..].starts_with([':', '.', '-']));
    }
    let unit = match word.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        _ => return None,
    };
    Some((number, word, Some(unit)))
}

fn token_at(src: &str, pos: usize) -> String {
    let rest = &src[pos.min(src.len())..];
    let Some(first) = rest.chars().next() else {
        return String::new();
    };
    if first.is_ascii_alphanumeric() || first == '_' {
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        return rest[..end].to_string();
    }
    if first == '\n' || first == '\r' {
        return "\n".to_string();
    }
    for op in ["->", "==", "!=", "<=", ">=", "??"] {
        if rest.starts_with(op) {
            return op.to_string();
        }
    }
    first.to_string()
}

fn describe_found(found: &str) -> String {
    match found {
        "" => "the end of the file".to_string(),
        "\n" => "the end of the line".to_string(),
        other => format!("`{other}`"),
    }
}

/// How a grammar rule reads in an error message.
fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::ident | Rule::named_type => "a name",
        Rule::zone => "a time zone",
        Rule::int => "an integer",
        Rule::float => "a number",
        Rule::duration => "a duration such as `5m`",
        Rule::time_of_day => "a time of day such as `08:00`",
        Rule::date => "a date such as `2026-03-02`",
        Rule::timestamp => "a timestamp such as `2026-03-02T08:00:00Z`",
        Rule::day_offset => "a day offset such as `+1d`",
        Rule::string => "a string",
        Rule::boolean => "`true` or `false`",
        Rule::expr
        | Rule::expr_in
        | Rule::paren
        | Rule::list
        | Rule::call
        | Rule::path
        | Rule::op_not
        | Rule::op_neg => "an expression",
        Rule::op_or
        | Rule::op_and
        | Rule::op_not_in
        | Rule::op_in
        | Rule::op_eq
        | Rule::op_ne
        | Rule::op_le
        | Rule::op_ge
        | Rule::op_lt
        | Rule::op_gt
        | Rule::op_add
        | Rule::op_sub
        | Rule::op_mul
        | Rule::op_div
        | Rule::op_coalesce => "an operator",
        Rule::event_decl | Rule::kw_event => "`event`",
        Rule::workflow_decl | Rule::kw_workflow => "`workflow`",
        Rule::channel_decl | Rule::kw_channel => "`channel`",
        Rule::calendar_decl | Rule::kw_calendar => "`calendar`",
        Rule::maintenance_decl | Rule::kw_maintenance => "`maintenance`",
        Rule::test_decl | Rule::kw_test => "`test`",
        Rule::event_schema | Rule::kw_from => "`from`",
        Rule::event_fields | Rule::record => "`{`",
        Rule::field => "a field such as `trade_id: string`",
        Rule::type_expr => "a type",
        Rule::enum_type | Rule::kw_enum => "`enum`",
        Rule::pii | Rule::kw_pii => "`pii`",
        Rule::optional => "`?`",
        Rule::key_stmt | Rule::kw_key => "`key`",
        Rule::key_mapping => "a key mapping such as `trade_id = sys3_ack.ref`",
        Rule::qualified => "a qualified name such as `event.field`",
        Rule::group_stmt | Rule::kw_group => "`group by`",
        Rule::cohort_stmt | Rule::kw_cohort => "`cohort`",
        Rule::timezone_stmt | Rule::kw_timezone => "`timezone`",
        Rule::status_stmt | Rule::kw_status | Rule::expect_status => "`status`",
        Rule::on_stmt | Rule::kw_on => "`on`",
        Rule::depends_stmt | Rule::kw_depends => "`depends on`",
        Rule::retain_stmt | Rule::kw_retain => "`retain`",
        Rule::aging_stmt | Rule::kw_aging => "`aging`",
        Rule::open_stmt | Rule::kw_open => "`open`",
        Rule::severity_set | Rule::kw_severity => "`severity`",
        Rule::runbook_set | Rule::kw_runbook => "`runbook`",
        Rule::notify_set | Rule::kw_notify => "`notify`",
        Rule::notify_filter | Rule::kw_when => "`when`",
        Rule::renotify_set | Rule::kw_renotify => "`renotify`",
        Rule::grace_set | Rule::kw_grace => "`grace`",
        Rule::expect_stmt | Rule::kw_expect | Rule::assertion => "`expect`",
        Rule::then_stmt | Rule::kw_then => "`then`",
        Rule::start_stmt | Rule::kw_start => "`start`",
        Rule::step_stmt | Rule::kw_step => "`step`",
        Rule::maybe | Rule::kw_maybe => "`maybe`",
        Rule::step_alias | Rule::kw_as => "`as`",
        Rule::where_clause | Rule::kw_where => "`where`",
        Rule::outcome => "`->`",
        Rule::after_clause | Rule::kw_after => "`after`",
        Rule::within_clause | Rule::kw_within => "`within`",
        Rule::by_clause | Rule::kw_by | Rule::advance_by | Rule::record_delay => "`by`",
        Rule::warn_clause | Rule::kw_warn => "`warn`",
        Rule::warn_at | Rule::kw_at | Rule::at_stmt | Rule::event_at => "`at`",
        Rule::not_before_clause | Rule::kw_not => "`not before`",
        Rule::kw_before => "`before`",
        Rule::clock_time => "a time of day such as `08:00`",
        Rule::every_clause | Rule::kw_every => "`every`",
        Rule::except_clause | Rule::kw_except => "`except`",
        Rule::secret_ref | Rule::kw_secret => "`secret(\"NAME\")`",
        Rule::weekly_window => "`every`",
        Rule::fixed_window => "`from`",
        Rule::kw_to | Rule::advance_to => "`to`",
        Rule::maintenance_for | Rule::kw_for | Rule::key_filter => "`for`",
        Rule::advance_stmt | Rule::kw_advance => "`advance`",
        Rule::event_stmt => "`event`",
        Rule::event_id | Rule::kw_id => "`id`",
        Rule::expect_alert | Rule::kw_alert | Rule::no_alert => "`alert`",
        Rule::expect_stage | Rule::kw_stage => "`stage`",
        Rule::expect_count | Rule::kw_count => "`count`",
        Rule::expect_no | Rule::kw_no => "`no`",
        Rule::expect_record => "a record kind such as `missing`",
        Rule::target => "a workflow or `workflow.step`",
        Rule::compare_op => "a comparison such as `==`",
        Rule::record_field => "a field such as `trade_id: \"T1\"`",
        Rule::EOI => "the end of the file",
        _ => "something else",
    }
}
