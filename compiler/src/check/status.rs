//! A workflow's `status red|amber when ...` rules, checked in the status
//! scope (metrics, not fields), with the defaults of LANGUAGE.md §3.7 when
//! a colour has no rule.

use super::workflow::Settings;
use super::Checker;
use crate::diagnostics::DiagnosticKind;
use crate::expr::{ExprChecker, Scope};
use crate::ir::{self, Metric, Status, StatusMetric, Value};
use crate::types::Type;

impl<'a> Checker<'a> {
    pub(super) fn status_rules(&mut self, file: usize, settings: &Settings<'a>) -> ir::StatusRules {
        let mut rules = ir::StatusRules { red: Vec::new(), amber: Vec::new() };
        for (color, condition) in &settings.status {
            let mut checker = ExprChecker::new(self.functions);
            let (lowered, ty) = checker.check(condition, &Scope::Status, None);
            for (kind, span) in checker.diagnostics {
                self.report(file, span, kind);
            }
            if !matches!(ty, Type::Bool | Type::Error) {
                self.report(
                    file,
                    condition.span,
                    DiagnosticKind::NotBoolean { context: "status", found: ty.to_string() },
                );
            }
            let colors = [Status::Red, Status::Amber].map(|c| (c.name(), c));
            match self.choice(file, color, "status color", &colors) {
                Some(Status::Red) => rules.red.push(lowered),
                Some(Status::Amber) => rules.amber.push(lowered),
                Some(Status::Green) | None => {}
            }
        }
        let gt_zero = |m: Metric| ir::Expr::Binary {
            op: ir::BinaryOp::Gt,
            lhs: Box::new(ir::Expr::Metric(StatusMetric::Count(m))),
            rhs: Box::new(ir::Expr::Const(Value::Int(0))),
        };
        if rules.red.is_empty() {
            rules.red.push(gt_zero(Metric::Missing));
        }
        if rules.amber.is_empty() {
            rules.amber.push(ir::Expr::Binary {
                op: ir::BinaryOp::Or,
                lhs: Box::new(gt_zero(Metric::AtRisk)),
                rhs: Box::new(gt_zero(Metric::Late)),
            });
        }
        rules
    }
}
