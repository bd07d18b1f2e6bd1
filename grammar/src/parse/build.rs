//! Pairs to AST: the only module that touches pest's pairs.
//!
//! [`MonParser`] is derived from `mon.pest`; the builder walks the pairs it
//! produces and makes [`crate::ast`] nodes with spans in the file. The rest of
//! the parser asks this module to parse and build one piece of text (an item,
//! a block's header, one statement) and gets back a node or pest's error, so
//! that a change of the grammar's shape is met here and nowhere else.
//!
//! The builder trusts nothing about the shape of the pairs: the grammar and
//! the builder are two descriptions of one language, and an edit to one can
//! miss the other. A pair it does not expect (a missing child, an extra one,
//! another rule) makes the piece an internal error at that pair's span,
//! never a panic, so that `parse` keeps its promise to return for every
//! input and the editor keeps working while the bug is reported.

use std::cell::{Cell, RefCell};
use std::iter::{Filter, Peekable};

use pest::iterators::{Pair, Pairs};
use pest::Parser;

use super::{too_deep, Context, MAX_DEPTH};
use crate::ast::*;
use crate::error::{SyntaxError, SyntaxErrorKind};
use crate::literal;

#[derive(pest_derive::Parser)]
#[grammar = "mon.pest"]
struct MonParser;

/// What pest and the builder made of one piece of text.
pub(super) enum Parsed<T> {
    /// The node, and the problems inside it that did not stop it from being
    /// built (an invalid escape, a date that does not exist).
    Built(T, Vec<SyntaxError>),
    /// pest did not accept the text.
    Refused(pest::error::Error<Rule>),
    /// pest accepted the text but the builder could not make a node of it.
    /// The errors say why (the last one) and what was found before.
    Unbuilt(Vec<SyntaxError>),
}

/// The blocks that recovery re-parses statement by statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BlockKind {
    Workflow,
    Event,
    Test,
}

/// What a block's header names: a workflow or an event, or a test's title.
pub(super) enum Head {
    Name(Ident),
    Title(StringLit),
}

/// One statement of a block, parsed on its own.
pub(super) enum Statement {
    Workflow(Stmt),
    Field(FieldDecl),
    Test(TestStmt),
}

/// Whether `text` holds only blanks, line breaks and comments.
pub(super) fn is_blank(text: &str) -> bool {
    MonParser::parse(Rule::blank, text).is_ok()
}

/// Parses `src[start..end]` as one top-level item.
pub(super) fn item(cx: Context, start: usize, end: usize) -> Parsed<Item> {
    piece(cx, Rule::item_only, start, end, |b, pair| b.item(pair))
}

/// Parses `src[start..end]` as the header of a block of `kind`, from its
/// keyword to just before its `{`.
pub(super) fn head(cx: Context, kind: BlockKind, start: usize, end: usize) -> Parsed<Head> {
    match kind {
        BlockKind::Workflow => piece(cx, Rule::workflow_head, start, end, |b, p| Ok(Head::Name(b.ident(p)?))),
        BlockKind::Event => piece(cx, Rule::event_head, start, end, |b, p| Ok(Head::Name(b.ident(p)?))),
        BlockKind::Test => piece(cx, Rule::test_head, start, end, |b, p| Ok(Head::Title(b.string(p)?))),
    }
}

/// Parses `src[start..end]` as one statement of a block of `kind`.
pub(super) fn statement(cx: Context, kind: BlockKind, start: usize, end: usize) -> Parsed<Statement> {
    match kind {
        BlockKind::Workflow => {
            piece(cx, Rule::workflow_stmt_only, start, end, |b, p| Ok(Statement::Workflow(b.stmt(p)?)))
        }
        BlockKind::Event => piece(cx, Rule::field_only, start, end, |b, p| Ok(Statement::Field(b.field(p)?))),
        BlockKind::Test => piece(cx, Rule::test_stmt_only, start, end, |b, p| Ok(Statement::Test(b.test_stmt(p)?))),
    }
}

/// Parses `src[start..end]` with `rule`, one of the wrappers of mon.pest that
/// hold a single node (after its keyword, for a header) between the start
/// and the end of the input, and builds that node.
fn piece<'a, T>(
    cx: Context<'a>,
    rule: Rule,
    start: usize,
    end: usize,
    build: impl FnOnce(&Builder<'a>, Pair<Rule>) -> Built<T>,
) -> Parsed<T> {
    let pairs = match MonParser::parse(rule, &cx.src[start..end]) {
        Ok(pairs) => pairs,
        Err(err) => return Parsed::Refused(err),
    };
    let builder = Builder { offset: start, cx, errors: RefCell::new(Vec::new()), depth: Cell::new(0) };
    let built = (|| {
        let mut wrapper = Children::of_all(rule, Span::new(start, end), start, pairs);
        let wrapper = wrapper.next("the rule's own pair")?;
        let mut children = builder.children(wrapper);
        let node = children.next("a node")?;
        children.next_if(Rule::EOI);
        children.done()?;
        build(&builder, node)
    })();
    let mut errors = builder.errors.into_inner();
    match built {
        Ok(value) => Parsed::Built(value, errors),
        Err(error) => {
            errors.push(error);
            Parsed::Unbuilt(errors)
        }
    }
}

/// A node, or the internal error that stopped it from being built.
type Built<T> = Result<T, SyntaxError>;

/// The rule and span of a pair whose children are being built, for errors.
type Parent = (Rule, Span);

/// A bracketed expression while its contents are built.
struct Bracket {
    rule: Rule,
    span: Span,
    /// The opening bracket.
    open: Span,
    /// The function's name, for a call.
    function: Option<Ident>,
}

/// The children of `parent` ended before `expected`.
fn ended(parent: Parent, expected: &str) -> SyntaxError {
    internal(expected, format!("the end of `{:?}`", parent.0), parent.1)
}

/// The grammar and the builder disagree: a bug in mon, not in the rule file.
fn internal(expected: &str, found: String, span: Span) -> SyntaxError {
    SyntaxError { kind: SyntaxErrorKind::Internal { expected: expected.to_string(), found }, span }
}

fn is_not_keyword(pair: &Pair<Rule>) -> bool {
    !format!("{:?}", pair.as_rule()).starts_with("kw_")
}

/// The children of one pair without its keyword tokens, taken one by one as
/// the grammar promises them.
struct Children<'i> {
    /// The parent's rule and span (in the file), for errors.
    rule: Rule,
    span: Span,
    /// Where the parsed text starts in the file.
    offset: usize,
    pairs: Peekable<NoKeywords<'i>>,
}

type NoKeywords<'i> = Filter<Pairs<'i, Rule>, fn(&Pair<'i, Rule>) -> bool>;

impl<'i> Children<'i> {
    fn of_all(rule: Rule, span: Span, offset: usize, pairs: Pairs<'i, Rule>) -> Self {
        let not_keyword: fn(&Pair<'i, Rule>) -> bool = is_not_keyword;
        Children { rule, span, offset, pairs: pairs.filter(not_keyword).peekable() }
    }

    /// The next child, which the grammar promises: `expected` says what it
    /// should be.
    fn next(&mut self, expected: &str) -> Built<Pair<'i, Rule>> {
        match self.pairs.next() {
            Some(pair) => Ok(pair),
            None => Err(ended((self.rule, self.span), expected)),
        }
    }

    /// The next child if it is a `rule`.
    fn next_if(&mut self, rule: Rule) -> Option<Pair<'i, Rule>> {
        self.pairs.next_if(|p| p.as_rule() == rule)
    }

    /// Every child taken: one more is something the grammar gives and the
    /// builder would silently drop.
    fn done(mut self) -> Built<()> {
        match self.pairs.next() {
            None => Ok(()),
            Some(pair) => Err(unexpected(self.offset, &pair, &format!("the end of `{:?}`", self.rule))),
        }
    }
}

impl<'i> Iterator for Children<'i> {
    type Item = Pair<'i, Rule>;

    fn next(&mut self) -> Option<Self::Item> {
        self.pairs.next()
    }
}

/// `pair` is not what the builder expected there.
fn unexpected(offset: usize, pair: &Pair<Rule>, expected: &str) -> SyntaxError {
    let s = pair.as_span();
    internal(expected, format!("`{:?}`", pair.as_rule()), Span::new(offset + s.start(), offset + s.end()))
}

/// Where an operator of mon.pest's `expr` goes: before its operand, or
/// between two.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fixity {
    Prefix,
    Infix,
}

/// The operators and how tightly they bind, loosest first: `not a == b`
/// is `not (a == b)`, `-a ?? b` is `(-a) ?? b`. Every binary operator is
/// left-associative. Anything else in an `expr` is an operand.
fn operator(rule: Rule) -> Option<(Fixity, u8)> {
    Some(match rule {
        Rule::op_or => (Fixity::Infix, 10),
        Rule::op_and => (Fixity::Infix, 20),
        Rule::op_not => (Fixity::Prefix, 30),
        Rule::op_eq
        | Rule::op_ne
        | Rule::op_lt
        | Rule::op_le
        | Rule::op_gt
        | Rule::op_ge
        | Rule::op_in
        | Rule::op_not_in => (Fixity::Infix, 40),
        Rule::op_add | Rule::op_sub => (Fixity::Infix, 50),
        Rule::op_mul | Rule::op_div => (Fixity::Infix, 60),
        Rule::op_coalesce => (Fixity::Infix, 70),
        Rule::op_neg => (Fixity::Prefix, 80),
        _ => return None,
    })
}

fn binary_op(rule: Rule) -> Option<BinaryOp> {
    Some(match rule {
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
        Rule::op_coalesce => BinaryOp::Coalesce,
        _ => return None,
    })
}

/// Turns the pairs of one piece of text into AST nodes, shifting spans by
/// the piece's offset in the file.
struct Builder<'a> {
    offset: usize,
    cx: Context<'a>,
    /// Problems that do not stop a node from being built.
    errors: RefCell<Vec<SyntaxError>>,
    /// How many brackets and prefix operators enclose the expression being
    /// built: the depth of the builder's recursion, kept under `MAX_DEPTH`.
    depth: Cell<usize>,
}

impl<'a> Builder<'a> {
    /// The pair's span in the file, without the blanks and comments that
    /// pest lets a rule end with when its optional tail is absent.
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        let start = s.start() + self.offset;
        let mut end = s.end() + self.offset;
        loop {
            end = start + self.cx.src[start..end].trim_end().len();
            match self.cx.comments.binary_search_by(|c| c.span.end.cmp(&end)) {
                Ok(i) if self.cx.comments[i].span.start >= start => end = self.cx.comments[i].span.start,
                _ => break,
            }
        }
        Span::new(start, end)
    }

    fn error(&self, kind: SyntaxErrorKind, span: Span) {
        self.errors.borrow_mut().push(SyntaxError { kind, span });
    }

    fn children<'i>(&self, pair: Pair<'i, Rule>) -> Children<'i> {
        Children::of_all(pair.as_rule(), self.span(&pair), self.offset, pair.into_inner())
    }

    /// `pair` is not what the builder expected there.
    fn unexpected(&self, pair: &Pair<Rule>, expected: &str) -> SyntaxError {
        unexpected(self.offset, pair, expected)
    }

    /// The span of `pair`, which must be a `rule`.
    fn token(&self, pair: &Pair<Rule>, rule: Rule) -> Built<Span> {
        if pair.as_rule() == rule {
            Ok(self.span(pair))
        } else {
            Err(self.unexpected(pair, &format!("`{rule:?}`")))
        }
    }

    fn ident(&self, pair: Pair<Rule>) -> Built<Ident> {
        let span = self.token(&pair, Rule::ident)?;
        Ok(Ident { name: pair.as_str().to_string(), span })
    }

    fn idents(&self, pairs: impl Iterator<Item = Pair<'a, Rule>>) -> Built<Vec<Ident>> {
        pairs.map(|p| self.ident(p)).collect()
    }

    fn item(&self, pair: Pair<Rule>) -> Built<Item> {
        Ok(match pair.as_rule() {
            Rule::event_decl => Item::Event(self.event_decl(pair)?),
            Rule::workflow_decl => Item::Workflow(self.workflow_decl(pair)?),
            Rule::channel_decl => Item::Channel(self.channel_decl(pair)?),
            Rule::calendar_decl => Item::Calendar(self.calendar_decl(pair)?),
            Rule::maintenance_decl => Item::Maintenance(self.maintenance_decl(pair)?),
            Rule::test_decl => Item::Test(self.test_decl(pair)?),
            _ => return Err(self.unexpected(&pair, "a declaration")),
        })
    }

    // ------------------------------------------------------------ events

    fn event_decl(&self, pair: Pair<Rule>) -> Built<EventDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the event's name")?)?;
        let body_pair = inner.next("the event's body")?;
        inner.done()?;
        let body = match body_pair.as_rule() {
            Rule::event_schema => {
                let mut schema = self.children(body_pair);
                let path = self.string(schema.next("the schema's path")?)?;
                schema.done()?;
                EventBody::Schema(path)
            }
            Rule::event_fields => {
                EventBody::Fields(self.children(body_pair).map(|f| self.field(f)).collect::<Built<_>>()?)
            }
            _ => return Err(self.unexpected(&body_pair, "`from` or the event's fields")),
        };
        Ok(EventDecl { doc: self.cx.doc(span.start), name, body, span })
    }

    fn field(&self, pair: Pair<Rule>) -> Built<FieldDecl> {
        let span = self.token(&pair, Rule::field)?;
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the field's name")?)?;
        let ty = self.type_expr(inner.next("the field's type")?)?;
        let pii = inner.next_if(Rule::pii).is_some();
        inner.done()?;
        Ok(FieldDecl { doc: self.cx.doc(span.start), name, ty, pii, span })
    }

    fn type_expr(&self, pair: Pair<Rule>) -> Built<TypeExpr> {
        let span = self.token(&pair, Rule::type_expr)?;
        let mut inner = self.children(pair);
        let kind_pair = inner.next("a type")?;
        let kind = match kind_pair.as_rule() {
            Rule::named_type => {
                let mut named = self.children(kind_pair);
                let name = self.ident(named.next("the type's name")?)?;
                named.done()?;
                TypeKind::Named(name)
            }
            Rule::enum_type => TypeKind::Enum(self.idents(self.children(kind_pair))?),
            _ => return Err(self.unexpected(&kind_pair, "a named type or an enum")),
        };
        let optional = inner.next_if(Rule::optional).is_some();
        inner.done()?;
        Ok(TypeExpr { kind, optional, span })
    }

    // ------------------------------------------------------------ workflows

    fn workflow_decl(&self, pair: Pair<Rule>) -> Built<WorkflowDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the workflow's name")?)?;
        let stmts = inner.map(|p| self.stmt(p)).collect::<Built<_>>()?;
        Ok(WorkflowDecl { doc: self.cx.doc(span.start), name, stmts, span, incomplete: false })
    }

    /// One child of `pair` and no more, built by `build`.
    fn only<'i, T>(
        &self,
        pair: Pair<'i, Rule>,
        what: &str,
        build: impl FnOnce(Pair<'i, Rule>) -> Built<T>,
    ) -> Built<T> {
        let mut inner = self.children(pair);
        let value = build(inner.next(what)?)?;
        inner.done()?;
        Ok(value)
    }

    fn stmt(&self, pair: Pair<Rule>) -> Built<Stmt> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::key_stmt => StmtKind::Key(self.key_fields(pair)?),
            Rule::group_stmt => StmtKind::GroupBy(self.idents(self.children(pair))?),
            Rule::cohort_stmt => StmtKind::Cohort(self.only(pair, "the cohort field", |p| self.ident(p))?),
            Rule::timezone_stmt => StmtKind::Timezone(self.only(pair, "a time zone", |p| self.zone(p))?),
            Rule::status_stmt => {
                let mut inner = self.children(pair);
                let color = self.ident(inner.next("the status color")?)?;
                let condition = self.expr(inner.next("the status condition")?)?;
                inner.done()?;
                StmtKind::Status { color, condition }
            }
            Rule::on_stmt => {
                let mut inner = self.children(pair);
                let case = self.ident(inner.next("the case")?)?;
                let action = self.ident(inner.next("the action")?)?;
                inner.done()?;
                StmtKind::On { case, action }
            }
            Rule::depends_stmt => StmtKind::DependsOn(self.idents(self.children(pair))?),
            Rule::retain_stmt => StmtKind::Retain(self.only(pair, "a duration", |p| self.duration(p))?),
            Rule::aging_stmt => StmtKind::Aging(self.children(pair).map(|p| self.duration(p)).collect::<Built<_>>()?),
            Rule::open_stmt => StmtKind::Open(self.only(pair, "a time of day", |p| self.time_of_day(p))?),
            Rule::expect_stmt | Rule::then_stmt | Rule::start_stmt | Rule::step_stmt => {
                StmtKind::Step(self.step_decl(pair)?)
            }
            _ => StmtKind::Setting(Setting { kind: self.setting(pair)?, span }),
        };
        Ok(Stmt { kind, span })
    }

    fn key_fields(&self, pair: Pair<Rule>) -> Built<Vec<KeyField>> {
        let mut fields: Vec<KeyField> = Vec::new();
        for p in self.children(pair) {
            let span = self.span(&p);
            match p.as_rule() {
                Rule::ident => fields.push(KeyField { name: self.ident(p)?, sources: Vec::new(), span }),
                Rule::key_mapping => {
                    let mut inner = self.children(p);
                    let name = self.ident(inner.next("the key's name")?)?;
                    let source = self.qualified(inner.next("the key's source")?)?;
                    inner.done()?;
                    fields.push(KeyField { name, sources: vec![source], span });
                }
                Rule::qualified => {
                    let source = self.qualified(p)?;
                    match fields.last_mut().filter(|f| !f.sources.is_empty()) {
                        Some(field) => {
                            field.span = field.span.to(span);
                            field.sources.push(source);
                        }
                        None => self.error(SyntaxErrorKind::UnnamedKeySource, span),
                    }
                }
                _ => return Err(self.unexpected(&p, "a key field")),
            }
        }
        Ok(fields)
    }

    fn qualified(&self, pair: Pair<Rule>) -> Built<QualifiedName> {
        let span = self.token(&pair, Rule::qualified)?;
        self.qualified_name(pair, span)
    }

    /// `qualifier.name`, from a `qualified` or a `path`.
    fn qualified_name(&self, pair: Pair<Rule>, span: Span) -> Built<QualifiedName> {
        let mut inner = self.children(pair);
        let qualifier = self.ident(inner.next("the qualifier")?)?;
        let name = self.ident(inner.next("the qualified name")?)?;
        inner.done()?;
        Ok(QualifiedName { qualifier, name, span })
    }

    fn setting(&self, pair: Pair<Rule>) -> Built<SettingKind> {
        Ok(match pair.as_rule() {
            Rule::severity_set => SettingKind::Severity(self.only(pair, "a severity", |p| self.ident(p))?),
            Rule::runbook_set => SettingKind::Runbook(self.only(pair, "a runbook", |p| self.string(p))?),
            Rule::notify_set => {
                let mut channels = Vec::new();
                let mut min_severity = None;
                for p in self.children(pair) {
                    match p.as_rule() {
                        Rule::ident if min_severity.is_none() => channels.push(self.ident(p)?),
                        Rule::notify_filter => {
                            min_severity = Some(self.only(p, "a severity", |q| self.ident(q))?);
                        }
                        _ => return Err(self.unexpected(&p, "a channel or `when severity >=`")),
                    }
                }
                SettingKind::Notify { channels, min_severity }
            }
            Rule::renotify_set => SettingKind::Renotify(self.only(pair, "a duration", |p| self.duration(p))?),
            Rule::grace_set => SettingKind::Grace(self.only(pair, "a duration", |p| self.duration(p))?),
            _ => return Err(self.unexpected(&pair, "a statement")),
        })
    }

    fn step_decl(&self, pair: Pair<Rule>) -> Built<StepDecl> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = self.children(pair);
        let mut form = match rule {
            Rule::expect_stmt => StepForm::Expect,
            Rule::then_stmt => StepForm::Then { maybe: false },
            Rule::start_stmt => StepForm::Start,
            _ => StepForm::Step,
        };
        if rule == Rule::then_stmt && inner.next_if(Rule::maybe).is_some() {
            form = StepForm::Then { maybe: true };
        }
        let mut name = None;
        if matches!(rule, Rule::start_stmt | Rule::step_stmt) {
            name = Some(self.ident(inner.next("the step's name")?)?);
        }
        let event = self.ident(inner.next("the step's event")?)?;
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
                    step.name = Some(self.only(p, "the step's name", |q| self.ident(q))?);
                    continue;
                }
                Rule::where_clause => {
                    step.predicate = Some(self.only(p, "a condition", |q| self.expr(q))?);
                    continue;
                }
                Rule::outcome => {
                    step.outcome = Some(self.only(p, "an outcome", |q| self.ident(q))?);
                    continue;
                }
                Rule::after_clause => {
                    step.after.extend(self.idents(self.children(p))?);
                    continue;
                }
                Rule::within_clause => ClauseKind::Within(self.only(p, "a duration", |q| self.duration(q))?),
                Rule::by_clause => {
                    let mut inner = self.children(p);
                    let time = self.time_of_day(inner.next("a time of day")?)?;
                    let zone = inner.next_if(Rule::zone).map(|z| self.zone(z)).transpose()?;
                    let day_offset = inner.next_if(Rule::day_offset).map(|q| self.day_offset(q)).transpose()?;
                    inner.done()?;
                    ClauseKind::By { time, zone, day_offset }
                }
                Rule::warn_clause => {
                    let q = self.only(p, "a duration or `at`", Ok)?;
                    match q.as_rule() {
                        Rule::duration => ClauseKind::Warn(self.duration(q)?),
                        Rule::warn_at => {
                            let (time, zone) = self.clock_time(q)?;
                            ClauseKind::WarnAt { time, zone }
                        }
                        _ => return Err(self.unexpected(&q, "a duration or `at`")),
                    }
                }
                Rule::not_before_clause => {
                    let q = self.only(p, "a duration or a time of day", Ok)?;
                    match q.as_rule() {
                        Rule::duration => ClauseKind::NotBefore(self.duration(q)?),
                        Rule::clock_time => {
                            let (time, zone) = self.clock_time(q)?;
                            ClauseKind::NotBeforeTime { time, zone }
                        }
                        _ => return Err(self.unexpected(&q, "a duration or a time of day")),
                    }
                }
                Rule::every_clause => ClauseKind::Every(self.idents(self.children(p))?),
                Rule::except_clause => ClauseKind::Except(self.idents(self.children(p))?),
                Rule::open_stmt => ClauseKind::Open(self.only(p, "a time of day", |q| self.time_of_day(q))?),
                _ => ClauseKind::Setting(self.setting(p)?),
            };
            step.clauses.push(Clause { kind, span: clause_span });
        }
        Ok(step)
    }

    fn day_offset(&self, pair: Pair<Rule>) -> Built<(u32, Span)> {
        let span = self.token(&pair, Rule::day_offset)?;
        // `+Nd`: the grammar guarantees the sign and the unit around the digits.
        let text = pair.as_str();
        let digits = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
        let days = self.number::<u32>(digits, span);
        if days > 36_600 {
            self.error(SyntaxErrorKind::NumberOutOfRange, span);
        }
        Ok((days, span))
    }

    /// A time of day and an optional zone, from `warn_at` or `clock_time`.
    fn clock_time(&self, pair: Pair<Rule>) -> Built<(TimeOfDay, Option<Zone>)> {
        let mut inner = self.children(pair);
        let time = self.time_of_day(inner.next("a time of day")?)?;
        let zone = inner.next_if(Rule::zone).map(|z| self.zone(z)).transpose()?;
        inner.done()?;
        Ok((time, zone))
    }

    // ------------------------------------------------------------ other items

    fn channel_decl(&self, pair: Pair<Rule>) -> Built<ChannelDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the channel's name")?)?;
        let kind = self.ident(inner.next("the channel's kind")?)?;
        let targets = inner
            .map(|p| match p.as_rule() {
                Rule::secret_ref => Ok(ChannelTarget::Secret(self.only(p, "the secret's name", |q| self.string(q))?)),
                _ => Ok(ChannelTarget::Literal(self.string(p)?)),
            })
            .collect::<Built<_>>()?;
        Ok(ChannelDecl { doc: self.cx.doc(span.start), name, kind, targets, span })
    }

    fn calendar_decl(&self, pair: Pair<Rule>) -> Built<CalendarDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the calendar's name")?)?;
        let dates = inner.map(|p| self.date(p)).collect::<Built<_>>()?;
        Ok(CalendarDecl { doc: self.cx.doc(span.start), name, dates, span })
    }

    fn maintenance_decl(&self, pair: Pair<Rule>) -> Built<MaintenanceDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the window's name")?)?;
        let window_pair = inner.next("the window")?;
        let window = match window_pair.as_rule() {
            Rule::weekly_window => {
                let mut window = self.children(window_pair);
                let from_day = window.next_if(Rule::ident).map(|p| self.ident(p)).transpose()?;
                let from = self.time_of_day(window.next("the window's start")?)?;
                let to_day = window.next_if(Rule::ident).map(|p| self.ident(p)).transpose()?;
                let to = self.time_of_day(window.next("the window's end")?)?;
                let zone = window.next_if(Rule::zone).map(|p| self.zone(p)).transpose()?;
                window.done()?;
                MaintenanceWindow::Weekly { from_day, from, to_day, to, zone }
            }
            Rule::fixed_window => {
                let mut window = self.children(window_pair);
                let from = self.timestamp(window.next("the window's start")?)?;
                let to = self.timestamp(window.next("the window's end")?)?;
                window.done()?;
                MaintenanceWindow::Fixed { from, to }
            }
            _ => return Err(self.unexpected(&window_pair, "a window")),
        };
        let workflows = match inner.next_if(Rule::maintenance_for) {
            Some(p) => self.idents(self.children(p))?,
            None => Vec::new(),
        };
        inner.done()?;
        Ok(MaintenanceDecl { doc: self.cx.doc(span.start), name, window, workflows, span })
    }

    // ------------------------------------------------------------ tests

    fn test_decl(&self, pair: Pair<Rule>) -> Built<TestDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.string(inner.next("the test's name")?)?;
        let stmts = inner.map(|p| self.test_stmt(p)).collect::<Built<_>>()?;
        Ok(TestDecl { name, stmts, span })
    }

    fn test_stmt(&self, pair: Pair<Rule>) -> Built<TestStmt> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::at_stmt => TestStmtKind::At(self.only(pair, "a timestamp", |p| self.timestamp(p))?),
            Rule::advance_stmt => {
                let p = self.only(pair, "`to` or `by`", Ok)?;
                match p.as_rule() {
                    Rule::advance_to => TestStmtKind::AdvanceTo(self.only(p, "a timestamp", |q| self.timestamp(q))?),
                    Rule::advance_by => TestStmtKind::AdvanceBy(self.only(p, "a duration", |q| self.duration(q))?),
                    _ => return Err(self.unexpected(&p, "`to` or `by`")),
                }
            }
            Rule::event_stmt => {
                let mut inner = self.children(pair);
                let event = self.ident(inner.next("the event's type")?)?;
                let fields = self.record(inner.next("the event's fields")?)?;
                let at = match inner.next_if(Rule::event_at) {
                    Some(p) => Some(self.only(p, "a timestamp", |q| self.timestamp(q))?),
                    None => None,
                };
                let id = match inner.next_if(Rule::event_id) {
                    Some(p) => Some(self.only(p, "an id", |q| self.string(q))?),
                    None => None,
                };
                inner.done()?;
                TestStmtKind::Event { event, fields, at, id }
            }
            Rule::assertion => TestStmtKind::Expect(self.only(pair, "an expectation", |p| self.expectation(p))?),
            _ => return Err(self.unexpected(&pair, "a test statement")),
        };
        Ok(TestStmt { kind, span })
    }

    fn record(&self, pair: Pair<Rule>) -> Built<Vec<RecordField>> {
        self.token(&pair, Rule::record)?;
        self.children(pair)
            .map(|p| {
                let span = self.token(&p, Rule::record_field)?;
                let mut inner = self.children(p);
                let name = self.ident(inner.next("the field's name")?)?;
                let value = self.expr(inner.next("the field's value")?)?;
                inner.done()?;
                Ok(RecordField { name, value, span })
            })
            .collect()
    }

    fn target(&self, pair: Pair<Rule>) -> Built<Target> {
        let span = self.token(&pair, Rule::target)?;
        let mut inner = self.children(pair);
        let workflow = self.ident(inner.next("a workflow")?)?;
        let step = inner.next_if(Rule::ident).map(|p| self.ident(p)).transpose()?;
        inner.done()?;
        Ok(Target { workflow, step, span })
    }

    fn key_filter(&self, pair: Pair<Rule>) -> Built<Vec<RecordField>> {
        self.token(&pair, Rule::key_filter)?;
        self.only(pair, "a record", |p| self.record(p))
    }

    fn expectation(&self, pair: Pair<Rule>) -> Built<Expectation> {
        let rule = pair.as_rule();
        let mut inner = self.children(pair);
        let expectation = match rule {
            Rule::expect_alert => {
                let kind = self.ident(inner.next("the alert's kind")?)?;
                let target = self.target(inner.next("a target")?)?;
                let key = inner.next_if(Rule::key_filter).map(|p| self.key_filter(p)).transpose()?;
                Expectation::Alert { kind, target, key }
            }
            Rule::expect_status => {
                let target = self.target(inner.next("a target")?)?;
                let color = self.ident(inner.next("a color")?)?;
                Expectation::Status { target, color }
            }
            Rule::expect_stage => {
                let workflow = self.ident(inner.next("a workflow")?)?;
                let key = self.key_filter(inner.next("a key")?)?;
                let stage = self.ident(inner.next("a stage")?)?;
                Expectation::Stage { workflow, key, stage }
            }
            Rule::expect_count => {
                let metric = self.ident(inner.next("a metric")?)?;
                let target = self.target(inner.next("a target")?)?;
                let op_pair = inner.next("a comparison")?;
                self.token(&op_pair, Rule::compare_op)?;
                let op = match op_pair.as_str() {
                    "==" => CompareOp::Eq,
                    "!=" => CompareOp::Ne,
                    "<" => CompareOp::Lt,
                    "<=" => CompareOp::Le,
                    ">" => CompareOp::Gt,
                    ">=" => CompareOp::Ge,
                    _ => return Err(self.unexpected(&op_pair, "a comparison")),
                };
                let value_pair = inner.next("a count")?;
                let value_span = self.token(&value_pair, Rule::int)?;
                let value = self.number::<i64>(value_pair.as_str(), value_span);
                Expectation::Count { metric, target, op, value, value_span }
            }
            Rule::expect_no => {
                let alert = inner.next_if(Rule::no_alert).is_some();
                let kind = inner.next_if(Rule::ident).map(|p| self.ident(p)).transpose()?;
                let target = inner.next_if(Rule::target).map(|p| self.target(p)).transpose()?;
                Expectation::No { alert, kind, target }
            }
            Rule::expect_record => {
                let kind = self.ident(inner.next("a record kind")?)?;
                let target = self.target(inner.next("a target")?)?;
                let delay = match inner.next_if(Rule::record_delay) {
                    Some(p) => Some(self.only(p, "a duration", |q| self.duration(q))?),
                    None => None,
                };
                let key = inner.next_if(Rule::key_filter).map(|p| self.key_filter(p)).transpose()?;
                Expectation::Record { kind, target, delay, key }
            }
            _ => return Err(internal("an expectation", format!("`{rule:?}`"), inner.span)),
        };
        inner.done()?;
        Ok(expectation)
    }

    // ------------------------------------------------------------ expressions

    fn expr(&self, pair: Pair<Rule>) -> Built<Expr> {
        Ok(self.tall_expr(pair)?.0)
    }

    // The functions from here to `tall_exprs` call each other once per level of
    // nesting. They are kept small, with the bulk of the work in helpers
    // that return before the next level starts: in a debug build every
    // temporary of a function takes stack for as long as it runs, and
    // `MAX_DEPTH` levels must fit in a 2 MiB thread.

    /// An expression and its height (a literal is 1 high, `a + b` 2). The
    /// height is kept at most `MAX_DEPTH` so that whatever walks the tree
    /// recursively later (the checker, the formatter, `Drop`) fits in an
    /// ordinary thread's stack; a long chain such as `a or b or ...` is as
    /// high as it is long.
    fn tall_expr(&self, pair: Pair<Rule>) -> Built<(Expr, usize)> {
        let parent = self.expr_parent(&pair)?;
        let mut pairs = pair.into_inner().peekable();
        let built = self.climb(&mut pairs, 0, parent)?;
        self.no_more(pairs.next())?;
        Ok(built)
    }

    /// Precedence climbing over the flat children of an `expr` (`prefix*
    /// primary (infix prefix* primary)*`): an operand and then every
    /// operator that binds more tightly than `min`, each with its right
    /// operand. A chain of one precedence is a loop, not a recursion.
    fn climb<'i>(&self, pairs: &mut Peekable<Pairs<'i, Rule>>, min: u8, parent: Parent) -> Built<(Expr, usize)> {
        let mut lhs = self.operand(pairs, parent)?;
        while let Some(power) = self.binds_tighter(pairs.peek(), min)? {
            lhs = self.infix(lhs, power, pairs, parent)?;
        }
        Ok(lhs)
    }

    /// A primary, or a prefix operator and the operand it binds.
    fn operand<'i>(&self, pairs: &mut Peekable<Pairs<'i, Rule>>, parent: Parent) -> Built<(Expr, usize)> {
        let Some(pair) = pairs.next() else {
            return Err(ended(parent, "an operand"));
        };
        match operator(pair.as_rule()) {
            None => self.primary(pair),
            Some((Fixity::Prefix, power)) => self.prefixed(pair, power, pairs, parent),
            Some((Fixity::Infix, _)) => Err(self.unexpected(&pair, "an operand")),
        }
    }

    fn primary(&self, pair: Pair<Rule>) -> Built<(Expr, usize)> {
        match pair.as_rule() {
            Rule::paren | Rule::list | Rule::call => self.bracketed(pair),
            _ => self.atom(pair),
        }
    }

    /// `( e )`, `[ e, ... ]` or `f( e, ... )`.
    fn bracketed(&self, pair: Pair<Rule>) -> Built<(Expr, usize)> {
        let (bracket, inner) = self.open_bracket(pair)?;
        self.enter(bracket.open)?;
        let items = self.tall_exprs(inner);
        self.leave();
        self.close_bracket(bracket, items)
    }

    /// Expressions and the height of the tallest.
    fn tall_exprs<'i>(&self, pairs: impl Iterator<Item = Pair<'i, Rule>>) -> Built<(Vec<Expr>, usize)> {
        let mut exprs = Vec::new();
        let mut height = 0;
        for pair in pairs {
            let (expr, h) = self.tall_expr(pair)?;
            exprs.push(expr);
            height = height.max(h);
        }
        Ok((exprs, height))
    }

    // ------------------------------------------------------------ expression helpers

    /// The rule and span of an `expr` pair, for errors about its children.
    fn expr_parent(&self, pair: &Pair<Rule>) -> Built<Parent> {
        match pair.as_rule() {
            rule @ (Rule::expr | Rule::expr_in) => Ok((rule, self.span(pair))),
            _ => Err(self.unexpected(pair, "an expression")),
        }
    }

    /// Nothing may follow a finished expression but the end of its pair.
    fn no_more(&self, extra: Option<Pair<Rule>>) -> Built<()> {
        match extra {
            None => Ok(()),
            Some(pair) => Err(self.unexpected(&pair, "an operator")),
        }
    }

    /// The binding power of `next` when it is an operator that binds more
    /// tightly than `min`; `None` to end the operand.
    fn binds_tighter(&self, next: Option<&Pair<Rule>>, min: u8) -> Built<Option<u8>> {
        let Some(pair) = next else { return Ok(None) };
        match operator(pair.as_rule()) {
            Some((Fixity::Infix, power)) => Ok((power > min).then_some(power)),
            _ => Err(self.unexpected(pair, "an operator")),
        }
    }

    /// `lhs`, the binary operator next in `pairs`, and its right operand.
    fn infix<'i>(
        &self,
        (lhs, lhs_height): (Expr, usize),
        power: u8,
        pairs: &mut Peekable<Pairs<'i, Rule>>,
        parent: Parent,
    ) -> Built<(Expr, usize)> {
        let Some(op_pair) = pairs.next() else {
            return Err(ended(parent, "an operator"));
        };
        let op_span = self.span(&op_pair);
        let op = binary_op(op_pair.as_rule()).ok_or_else(|| self.unexpected(&op_pair, "a binary operator"))?;
        let (rhs, rhs_height) = self.climb(pairs, power, parent)?;
        let height = self.taller(lhs_height.max(rhs_height), op_span)?;
        let span = lhs.span.to(rhs.span);
        Ok((Expr { kind: ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span }, height))
    }

    /// The prefix operator `op_pair` and the operand it binds.
    fn prefixed<'i>(
        &self,
        op_pair: Pair<Rule>,
        power: u8,
        pairs: &mut Peekable<Pairs<'i, Rule>>,
        parent: Parent,
    ) -> Built<(Expr, usize)> {
        let op_span = self.span(&op_pair);
        let op = if op_pair.as_rule() == Rule::op_not { UnaryOp::Not } else { UnaryOp::Neg };
        self.enter(op_span)?;
        let operand = self.climb(pairs, power - 1, parent);
        self.leave();
        let (operand, height) = operand?;
        let height = self.taller(height, op_span)?;
        let span = op_span.to(operand.span);
        Ok((Expr { kind: ExprKind::Unary { op, operand: Box::new(operand) }, span }, height))
    }

    /// What a bracketed expression is before its contents are built.
    fn open_bracket<'i>(&self, pair: Pair<'i, Rule>) -> Built<(Bracket, Children<'i>)> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = self.children(pair);
        let function = match rule {
            Rule::call => Some(self.ident(inner.next("the function's name")?)?),
            _ => None,
        };
        let at = function.as_ref().map_or(span.start, |f| f.span.end);
        Ok((Bracket { rule, span, open: Span::new(at, at + 1), function }, inner))
    }

    /// The node a bracket makes of what it holds.
    fn close_bracket(&self, bracket: Bracket, items: Built<(Vec<Expr>, usize)>) -> Built<(Expr, usize)> {
        let (mut items, height) = items?;
        let height = self.taller(height, bracket.open)?;
        let Bracket { rule, span, function, .. } = bracket;
        let kind = match (rule, function) {
            (Rule::call, Some(function)) => ExprKind::Call { function, args: items },
            (Rule::list, None) => ExprKind::List(items),
            (Rule::paren, None) if items.len() == 1 => match items.pop() {
                Some(inner) => ExprKind::Paren(Box::new(inner)),
                None => return Err(internal("an expression", format!("the end of `{rule:?}`"), span)),
            },
            _ => return Err(internal("one expression", format!("{} in `{rule:?}`", items.len()), span)),
        };
        Ok((Expr { kind, span }, height))
    }

    /// One level further in (inside a bracket, or after a prefix operator at
    /// `span`), refused past `MAX_DEPTH`: this bounds the builder's own
    /// recursion before it happens, where the height check can only look
    /// back. Every `enter` that succeeds is followed by a `leave`.
    fn enter(&self, span: Span) -> Built<()> {
        let depth = self.depth.get() + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(span));
        }
        self.depth.set(depth);
        Ok(())
    }

    fn leave(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }

    /// The height of a node over children at most `below` high; an error
    /// at `span` (the node's operator or bracket) past `MAX_DEPTH`.
    fn taller(&self, below: usize, span: Span) -> Built<usize> {
        if below + 1 > MAX_DEPTH {
            return Err(too_deep(span));
        }
        Ok(below + 1)
    }

    /// An operand without operands inside: a name, a path or a literal.
    fn atom(&self, pair: Pair<Rule>) -> Built<(Expr, usize)> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::path => ExprKind::Path(self.qualified_name(pair, span)?),
            Rule::ident => ExprKind::Name(self.ident(pair)?),
            Rule::int => ExprKind::Literal(Literal::Int(self.number(pair.as_str(), span))),
            Rule::float => ExprKind::Literal(Literal::Float(self.number(pair.as_str(), span))),
            Rule::string => ExprKind::Literal(Literal::String(self.string(pair)?.value)),
            Rule::boolean => ExprKind::Literal(Literal::Bool(pair.as_str() == "true")),
            Rule::duration => ExprKind::Literal(Literal::Duration(self.duration(pair)?.millis)),
            Rule::date => {
                let d = self.date(pair)?;
                ExprKind::Literal(Literal::Date { year: d.year, month: d.month, day: d.day })
            }
            Rule::time_of_day => {
                let t = self.time_of_day(pair)?;
                ExprKind::Literal(Literal::TimeOfDay { hour: t.hour, minute: t.minute, second: t.second })
            }
            Rule::timestamp => ExprKind::Literal(Literal::Timestamp(pair.as_str().to_string())),
            _ => return Err(self.unexpected(&pair, "an operand")),
        };
        Ok((Expr { kind, span }, 1))
    }

    // ------------------------------------------------------------ literals

    fn number<T: std::str::FromStr + Default>(&self, text: &str, span: Span) -> T {
        let digits: String = text.chars().filter(|&c| c != '_').collect();
        digits.parse().unwrap_or_else(|_| {
            self.error(SyntaxErrorKind::NumberOutOfRange, span);
            T::default()
        })
    }

    fn string(&self, pair: Pair<Rule>) -> Built<StringLit> {
        let span = self.token(&pair, Rule::string)?;
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
                            SyntaxErrorKind::InvalidEscape { escape: self.cx.src[span.start..span.end].to_string() },
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
        Ok(StringLit { value, span })
    }

    fn duration(&self, pair: Pair<Rule>) -> Built<Duration> {
        let span = self.token(&pair, Rule::duration)?;
        let text = pair.as_str();
        let value = literal::read_duration(text);
        if value.units_out_of_order && !value.overflow {
            let suggestion = Some(literal::format_duration(value.millis));
            self.error(SyntaxErrorKind::InvalidDuration { written: text.to_string(), suggestion }, span);
        }
        if value.out_of_range() {
            self.error(SyntaxErrorKind::NumberOutOfRange, span);
        }
        Ok(Duration { millis: value.millis, span })
    }

    fn time_of_day(&self, pair: Pair<Rule>) -> Built<TimeOfDay> {
        let span = self.token(&pair, Rule::time_of_day)?;
        let (hour, minute, second, valid) = literal::read_time_of_day(pair.as_str());
        if !valid {
            self.error(SyntaxErrorKind::InvalidTimeOfDay, span);
        }
        Ok(TimeOfDay { hour, minute, second, span })
    }

    fn date(&self, pair: Pair<Rule>) -> Built<Date> {
        let span = self.token(&pair, Rule::date)?;
        let (year, month, day, valid) = literal::read_date(pair.as_str());
        if !valid {
            self.error(SyntaxErrorKind::InvalidDate, span);
        }
        Ok(Date { year, month, day, span })
    }

    fn timestamp(&self, pair: Pair<Rule>) -> Built<Timestamp> {
        let span = self.token(&pair, Rule::timestamp)?;
        Ok(Timestamp { text: pair.as_str().to_string(), span })
    }

    fn zone(&self, pair: Pair<Rule>) -> Built<Zone> {
        let span = self.token(&pair, Rule::zone)?;
        Ok(Zone { name: pair.as_str().to_string(), span })
    }
}

#[cfg(test)]
mod tests {
    //! Grammar drift cannot be produced from the grammar itself, so these
    //! tests hand the builder pairs of the wrong shape on purpose.

    use super::*;

    fn builder(src: &str) -> Builder<'_> {
        Builder { offset: 0, cx: Context { src, comments: &[] }, errors: RefCell::new(Vec::new()), depth: Cell::new(0) }
    }

    fn pair(rule: Rule, src: &str) -> Pair<'_, Rule> {
        MonParser::parse(rule, src).expect("the test's text parses").next().expect("a pair")
    }

    fn internal_error<T: std::fmt::Debug>(built: Built<T>) -> (String, String, Span) {
        match built {
            Err(SyntaxError { kind: SyntaxErrorKind::Internal { expected, found }, span }) => (expected, found, span),
            other => panic!("expected an internal error, got {other:?}"),
        }
    }

    #[test]
    fn a_child_of_another_rule_is_an_internal_error() {
        let src = "x: int";
        let (expected, found, span) = internal_error(builder(src).event_decl(pair(Rule::field, src)));
        assert_eq!((expected.as_str(), found.as_str()), ("`from` or the event's fields", "`type_expr`"));
        assert_eq!(span, Span::new(3, 6));
    }

    #[test]
    fn a_missing_child_is_an_internal_error_at_its_parent() {
        let src = "42";
        let (expected, found, span) = internal_error(builder(src).workflow_decl(pair(Rule::int, src)));
        assert_eq!((expected.as_str(), found.as_str()), ("the workflow's name", "the end of `int`"));
        assert_eq!(span, Span::new(0, 2));
    }

    #[test]
    fn a_child_the_builder_would_drop_is_an_internal_error() {
        let src = "by 08:00 Europe/London +1d";
        let (_, found, span) = internal_error(builder(src).clock_time(pair(Rule::by_clause, src)));
        assert_eq!(found, "`day_offset`");
        assert_eq!(span, Span::new(23, 26));
    }

    #[test]
    fn operands_out_of_turn_are_an_internal_error() {
        let src = "a.b";
        let mut pairs = pair(Rule::path, src).into_inner().peekable();
        let parent: Parent = (Rule::expr, Span::new(0, 3));
        let (expected, found, span) = internal_error(builder(src).climb(&mut pairs, 0, parent));
        assert_eq!((expected.as_str(), found.as_str(), span), ("an operator", "`ident`", Span::new(2, 3)));
    }

    /// The tree of an expression in prefix notation: `(or a (and b c))`.
    fn shape(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Name(name) => name.name.clone(),
            ExprKind::Paren(inner) => shape(inner),
            ExprKind::Unary { op, operand } => {
                format!("({} {})", if *op == UnaryOp::Not { "not" } else { "neg" }, shape(operand))
            }
            ExprKind::Binary { op, lhs, rhs } => format!("({} {} {})", op.symbol(), shape(lhs), shape(rhs)),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn operators_bind_as_the_spec_reads() {
        for (src, expected) in [
            ("a or b and c", "(or a (and b c))"),
            ("a - b - c", "(- (- a b) c)"),
            ("not a == b", "(not (== a b))"),
            ("a and not b or c", "(or (and a (not b)) c)"),
            ("-a ?? b * c", "(* (?? (neg a) b) c)"),
            ("a + b * c == d not in e", "(not in (== (+ a (* b c)) d) e)"),
            ("not not a", "(not (not a))"),
            ("a == -b", "(== a (neg b))"),
        ] {
            let built = builder(src).expr(pair(Rule::expr, src)).expect("builds");
            assert_eq!(shape(&built), expected, "{src}");
        }
    }

    #[test]
    fn a_leaf_of_another_rule_is_an_internal_error() {
        let src = "\"x\"";
        let (expected, found, _) = internal_error(builder(src).ident(pair(Rule::string, src)));
        assert_eq!((expected.as_str(), found.as_str()), ("`ident`", "`string`"));
    }
}
