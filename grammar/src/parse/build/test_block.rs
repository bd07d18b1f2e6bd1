//! `test` blocks: the clock, events fed in, and expectations.

use pest::iterators::Pair;

use super::{internal, Builder, Built, Rule};
use crate::ast::*;

impl Builder<'_> {
    pub(super) fn test_decl(&self, pair: Pair<Rule>) -> Built<TestDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.string(inner.next("the test's name")?)?;
        let stmts = inner.map(|p| self.test_stmt(p)).collect::<Built<_>>()?;
        Ok(TestDecl { name, stmts, span })
    }

    pub(super) fn test_stmt(&self, pair: Pair<Rule>) -> Built<TestStmt> {
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
}
