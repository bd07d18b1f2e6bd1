//! `test` blocks: clock statements (never backwards), event literals
//! checked against their event's fields, and expectations lowered to
//! `ir::Expectation` with their words (record kind, colour, metric,
//! comparison) as the IR's enums.

use mon_grammar::ast::{self, Span, TestStmtKind};

use super::Checker;
use crate::diagnostics::DiagnosticKind;
use crate::expr::{ExprChecker, Scope};
use crate::ir::{self, EventType, Metric, RecordKind, Status, Value};
use crate::suggest::did_you_mean;
use crate::time;
use crate::types::Type;

impl<'a> Checker<'a> {
    pub(super) fn test(&mut self, file: usize, test: &ast::TestDecl, workflows: &[ir::Workflow]) -> ir::TestCase {
        let mut steps = Vec::new();
        let mut clock: Option<(i64, &str)> = None;
        for stmt in &test.stmts {
            if let TestStmtKind::At(ts) | TestStmtKind::AdvanceTo(ts) = &stmt.kind {
                if let Some(to) = time::parse_timestamp(&ts.text) {
                    match clock {
                        Some((now, from)) if to < now => {
                            let kind = DiagnosticKind::ClockBackwards { to: ts.text.clone(), from: from.to_string() };
                            self.report(file, ts.span, kind);
                        }
                        _ => clock = Some((to, ts.text.as_str())),
                    }
                }
            }
            let kind = match &stmt.kind {
                TestStmtKind::At(ts) => self.timestamp(file, ts).map(ir::TestStepKind::At),
                TestStmtKind::AdvanceTo(ts) => self.timestamp(file, ts).map(ir::TestStepKind::AdvanceTo),
                TestStmtKind::AdvanceBy(d) => Some(ir::TestStepKind::AdvanceBy(d.millis)),
                TestStmtKind::Event { event, fields, at, id } => {
                    let at = at.as_ref().and_then(|ts| self.timestamp(file, ts));
                    self.event_id(file, event).map(|e| {
                        let event_type = self.events[e as usize].clone();
                        let values = self.event_literal(file, &event_type, event.span, fields);
                        ir::TestStepKind::Event {
                            event_type: e,
                            fields: values,
                            at,
                            id: id.as_ref().map(|i| i.value.clone()),
                        }
                    })
                }
                TestStmtKind::Expect(expectation) => {
                    self.expectation(file, expectation, workflows).map(ir::TestStepKind::Expect)
                }
            };
            if let Some(kind) = kind {
                steps.push(ir::TestStep { kind, span: (stmt.span.start, stmt.span.end) });
            }
        }
        ir::TestCase { name: test.name.value.clone(), file, span: (test.span.start, test.span.end), steps }
    }

    /// Checks an event literal against its schema; returns a value per slot.
    pub(super) fn event_literal(
        &mut self,
        file: usize,
        event: &EventType,
        span: Span,
        fields: &[ast::RecordField],
    ) -> Vec<Value> {
        let mut values = vec![Value::Null; event.fields.len()];
        for given in fields {
            let Some(field) = event.field(&given.name.name) else {
                let suggestion = did_you_mean(&given.name.name, event.fields.iter().map(|f| f.name.as_str()));
                self.report(
                    file,
                    given.name.span,
                    DiagnosticKind::UnknownField {
                        field: given.name.name.clone(),
                        event: event.name.clone(),
                        suggestion,
                    },
                );
                continue;
            };
            let context = format!("field `{}`", field.name);
            values[field.slot as usize] =
                self.literal_value(file, &given.value, &Type::from_field(&field.ty, false), &context);
        }
        for field in event.fields.iter().filter(|f| !f.optional) {
            if !fields.iter().any(|g| g.name.name == field.name) {
                self.report(
                    file,
                    span,
                    DiagnosticKind::MissingRequiredField { event: event.name.clone(), field: field.name.clone() },
                );
            }
        }
        values
    }

    pub(super) fn literal_value(&mut self, file: usize, value: &ast::Expr, expected: &Type, context: &str) -> Value {
        let mut checker = ExprChecker::new(self.functions);
        let (lowered, ty) = checker.check(value, &Scope::Literal, Some(expected));
        for (kind, span) in checker.diagnostics {
            self.report(file, span, kind);
        }
        let ok = ty.is_error() || ty == *expected || (*expected == Type::Float && ty == Type::Int);
        if !ok {
            self.report(
                file,
                value.span,
                DiagnosticKind::WrongType {
                    context: context.to_string(),
                    expected: expected.to_string(),
                    found: ty.to_string(),
                },
            );
        }
        let value = const_value(&lowered);
        match (value, expected) {
            (Value::Int(i), Type::Float) => Value::Float(i as f64),
            (v, _) => v,
        }
    }

    /// The workflow (and step) a test names.
    pub(super) fn target(
        &mut self,
        file: usize,
        target: &ast::Target,
        workflows: &'_ [ir::Workflow],
    ) -> Option<(u32, Option<u32>)> {
        let id = self.workflow_id(file, &target.workflow)?;
        let workflow = &workflows[id as usize];
        let Some(step) = &target.step else { return Some((id, None)) };
        match workflow.steps.iter().position(|s| s.name == step.name) {
            Some(s) => Some((id, Some(s as u32))),
            // A statement of the workflow did not parse: the step may be the
            // one it would have declared, and the syntax error is reported.
            None if self.workflow_decls[id as usize].1.incomplete => None,
            None => {
                let suggestion = did_you_mean(&step.name, workflow.steps.iter().map(|s| s.name.as_str()));
                self.report(
                    file,
                    step.span,
                    DiagnosticKind::UnknownStage {
                        name: step.name.clone(),
                        workflow: workflow.name.clone(),
                        suggestion,
                    },
                );
                None
            }
        }
    }

    pub(super) fn key_filter(
        &mut self,
        file: usize,
        workflow: &ir::Workflow,
        fields: &[ast::RecordField],
    ) -> ir::KeyLiteral {
        let mut key = Vec::new();
        for given in fields {
            let expected = if workflow.schedule.is_some() {
                (given.name.name == "date").then_some(Type::Date)
            } else {
                workflow.key.iter().find(|k| k.name == given.name.name).map(|k| Type::from_field(&k.ty, false))
            };
            match expected {
                Some(ty) => {
                    let value =
                        self.literal_value(file, &given.value, &ty, &format!("key field `{}`", given.name.name));
                    key.push((given.name.name.clone(), value));
                }
                None => {
                    let names: Vec<String> = if workflow.schedule.is_some() {
                        vec!["date".into()]
                    } else {
                        workflow.key.iter().map(|k| k.name.clone()).collect()
                    };
                    let suggestion = did_you_mean(&given.name.name, names.iter().map(String::as_str));
                    self.report(
                        file,
                        given.name.span,
                        DiagnosticKind::InvalidChoice {
                            what: "key field of this workflow",
                            found: given.name.name.clone(),
                            expected: names,
                            suggestion,
                        },
                    );
                }
            }
        }
        key
    }

    pub(super) fn expectation(
        &mut self,
        file: usize,
        expectation: &ast::Expectation,
        workflows: &[ir::Workflow],
    ) -> Option<ir::Expectation> {
        match expectation {
            ast::Expectation::Alert { kind, target, key } | ast::Expectation::Record { kind, target, key, .. } => {
                let kind = self.choice(file, kind, "record kind", RecordKind::IN_TESTS);
                let (workflow, step) = self.target(file, target, workflows)?;
                let key = key.as_ref().map(|k| self.key_filter(file, &workflows[workflow as usize], k));
                let delay_ms = match expectation {
                    ast::Expectation::Record { delay, .. } => delay.map(|d| d.millis),
                    _ => None,
                };
                let alert = matches!(expectation, ast::Expectation::Alert { .. });
                Some(ir::Expectation::Record { alert, kind: kind?, workflow, step, delay_ms, key })
            }
            ast::Expectation::Status { target, color } => {
                let color = self.choice(file, color, "status color", Status::ALL);
                let (workflow, stage) = self.target(file, target, workflows)?;
                Some(ir::Expectation::Status { workflow, stage, color: color? })
            }
            ast::Expectation::Stage { workflow, key, stage } => {
                let target = ast::Target { workflow: workflow.clone(), step: Some(stage.clone()), span: workflow.span };
                let (workflow, stage) = self.target(file, &target, workflows)?;
                let key = self.key_filter(file, &workflows[workflow as usize], key);
                Some(ir::Expectation::Stage { workflow, key, stage: stage? })
            }
            ast::Expectation::Count { metric, target, op, value, .. } => {
                let metric = self.choice(file, metric, "count metric", Metric::ALL);
                let (workflow, stage) = self.target(file, target, workflows)?;
                let op = match op {
                    ast::CompareOp::Eq => ir::CompareOp::Eq,
                    ast::CompareOp::Ne => ir::CompareOp::Ne,
                    ast::CompareOp::Lt => ir::CompareOp::Lt,
                    ast::CompareOp::Le => ir::CompareOp::Le,
                    ast::CompareOp::Gt => ir::CompareOp::Gt,
                    ast::CompareOp::Ge => ir::CompareOp::Ge,
                };
                Some(ir::Expectation::Count { metric: metric?, workflow, stage, op, value: *value })
            }
            ast::Expectation::No { alert, kind, target } => {
                let kind = match kind {
                    Some(k) => Some(self.choice(file, k, "record kind", RecordKind::IN_TESTS)?),
                    None => None,
                };
                let (workflow, step) = match target {
                    Some(t) => {
                        let (w, s) = self.target(file, t, workflows)?;
                        (Some(w), s)
                    }
                    None => (None, None),
                };
                Some(ir::Expectation::NoRecord { alert: *alert, kind, workflow, step })
            }
        }
    }
}

/// The value of a literal (possibly negated) after checking.
pub(super) fn const_value(expr: &ir::Expr) -> Value {
    match expr {
        ir::Expr::Const(v) => v.clone(),
        ir::Expr::Unary { op: ir::UnaryOp::Neg, operand } => match const_value(operand) {
            Value::Int(i) => Value::Int(-i),
            Value::Float(f) => Value::Float(-f),
            Value::Duration(d) => Value::Duration(-d),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}
