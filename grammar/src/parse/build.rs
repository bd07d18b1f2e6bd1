//! Pairs to AST: the only module that touches pest's pairs.
//!
//! [`MonParser`] is derived from `mon.pest`; the builder walks the pairs it
//! produces and makes [`crate::ast`] nodes with spans in the file. The rest of
//! the parser asks this module to parse and build one piece of text (an item,
//! a block's header, one statement) and gets back a node or pest's error, so
//! that a change of the grammar's shape is met here and nowhere else.

use std::cell::RefCell;
use std::sync::OnceLock;

use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;

use super::Context;
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
        BlockKind::Workflow => piece(cx, Rule::workflow_head, start, end, |b, p| Head::Name(b.ident(p))),
        BlockKind::Event => piece(cx, Rule::event_head, start, end, |b, p| Head::Name(b.ident(p))),
        BlockKind::Test => piece(cx, Rule::test_head, start, end, |b, p| Head::Title(b.string(p))),
    }
}

/// Parses `src[start..end]` as one statement of a block of `kind`.
pub(super) fn statement(cx: Context, kind: BlockKind, start: usize, end: usize) -> Parsed<Statement> {
    match kind {
        BlockKind::Workflow => piece(cx, Rule::workflow_stmt_only, start, end, |b, p| Statement::Workflow(b.stmt(p))),
        BlockKind::Event => piece(cx, Rule::field_only, start, end, |b, p| Statement::Field(b.field(p))),
        BlockKind::Test => piece(cx, Rule::test_stmt_only, start, end, |b, p| Statement::Test(b.test_stmt(p))),
    }
}

/// Parses `src[start..end]` with `rule`, one of the wrappers of mon.pest that
/// hold a single node between the start and the end of the input, and
/// builds that node.
fn piece<'a, T>(
    cx: Context<'a>,
    rule: Rule,
    start: usize,
    end: usize,
    build: impl FnOnce(&Builder<'a>, Pair<Rule>) -> T,
) -> Parsed<T> {
    let pairs = match MonParser::parse(rule, &cx.src[start..end]) {
        Ok(pairs) => pairs,
        Err(err) => return Parsed::Refused(err),
    };
    let builder = Builder { offset: start, cx, errors: RefCell::new(Vec::new()) };
    let wrapper = pairs.into_iter().next().expect("a rule yields its own pair");
    let node = builder.inner(wrapper).find(|p| p.as_rule() != Rule::EOI).expect("a wrapper holds its node");
    let value = build(&builder, node);
    Parsed::Built(value, builder.errors.into_inner())
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
    cx: Context<'a>,
    errors: RefCell<Vec<SyntaxError>>,
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

    /// The inner pairs of `pair` without its keyword tokens.
    fn inner<'i>(&self, pair: Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
        pair.into_inner().filter(|p| !is_keyword(p.as_rule()))
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
        EventDecl { doc: self.cx.doc(span.start), name, body, span }
    }

    fn field(&self, pair: Pair<Rule>) -> FieldDecl {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let name = self.ident(inner.next().expect("field name"));
        let ty = self.type_expr(inner.next().expect("field type"));
        let pii = inner.next().is_some();
        FieldDecl { doc: self.cx.doc(span.start), name, ty, pii, span }
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
        WorkflowDecl { doc: self.cx.doc(span.start), name, stmts, span, incomplete: false }
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
        ChannelDecl { doc: self.cx.doc(span.start), name, kind, targets, span }
    }

    fn calendar_decl(&self, pair: Pair<Rule>) -> CalendarDecl {
        let span = self.span(&pair);
        let mut inner = self.inner(pair);
        let name = self.ident(inner.next().expect("calendar name"));
        let dates = inner.map(|p| self.date(p)).collect();
        CalendarDecl { doc: self.cx.doc(span.start), name, dates, span }
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
        MaintenanceDecl { doc: self.cx.doc(span.start), name, window, workflows, span }
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
        StringLit { value, span }
    }

    fn duration(&self, pair: Pair<Rule>) -> Duration {
        let span = self.span(&pair);
        let text = pair.as_str();
        let value = literal::read_duration(text);
        if value.units_out_of_order && !value.overflow {
            let suggestion = Some(literal::format_duration(value.millis));
            self.error(SyntaxErrorKind::InvalidDuration { written: text.to_string(), suggestion }, span);
        }
        if value.out_of_range() {
            self.error(SyntaxErrorKind::NumberOutOfRange, span);
        }
        Duration { millis: value.millis, span }
    }

    fn time_of_day(&self, pair: Pair<Rule>) -> TimeOfDay {
        let span = self.span(&pair);
        let (hour, minute, second, valid) = literal::read_time_of_day(pair.as_str());
        if !valid {
            self.error(SyntaxErrorKind::InvalidTimeOfDay, span);
        }
        TimeOfDay { hour, minute, second, span }
    }

    fn date(&self, pair: Pair<Rule>) -> Date {
        let span = self.span(&pair);
        let (year, month, day, valid) = literal::read_date(pair.as_str());
        if !valid {
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
