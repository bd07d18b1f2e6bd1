//! Type checking of expressions (`where`, `status`, test literals) and their
//! lowering to [`ir::Expr`].
//!
//! A failed sub-expression gets the type [`Type::Error`], which every check
//! accepts, so one mistake gives one diagnostic and checking goes on.

use mon_grammar::ast::{self, BinaryOp, ExprKind, Literal, Span, UnaryOp};

use crate::builtins::{Functions, Param, Returns};
use crate::diagnostics::DiagnosticKind;
use crate::ir::{self, EventType, Metric, StatusMetric, Value};
use crate::suggest::did_you_mean;
use crate::time;
use crate::types::Type;

/// What names mean where an expression stands.
pub enum Scope<'a> {
    /// A step's `where`: fields of its event, and `step.field` for the
    /// earlier steps of the workflow.
    Step {
        event: &'a EventType,
        /// Every step of the workflow by id: (name, its event, whether it
        /// may precede the step being checked).
        steps: &'a [(String, &'a EventType, bool)],
        workflow: &'a str,
        /// The step being checked.
        current: &'a str,
    },
    /// A `status` rule: metric names and `aged(D)`.
    Status,
    /// A literal value in a test: no names except enum values.
    Literal,
}

pub struct ExprChecker<'a> {
    pub functions: &'a dyn Functions,
    pub diagnostics: Vec<(DiagnosticKind, Span)>,
    /// Fields read from earlier steps: (step id, slot).
    pub kept: Vec<(u32, u32)>,
}

impl<'a> ExprChecker<'a> {
    pub fn new(functions: &'a dyn Functions) -> Self {
        ExprChecker { functions, diagnostics: Vec::new(), kept: Vec::new() }
    }

    fn error(&mut self, kind: DiagnosticKind, span: Span) -> (ir::Expr, Type) {
        self.diagnostics.push((kind, span));
        (ir::Expr::Const(Value::Null), Type::Error)
    }

    /// Checks `expr`; `expected` lets bare names and strings resolve to
    /// enum values (`region == EMEA`).
    pub fn check(&mut self, expr: &ast::Expr, scope: &Scope, expected: Option<&Type>) -> (ir::Expr, Type) {
        match &expr.kind {
            ExprKind::Literal(lit) => self.literal(lit, expr.span, expected),
            ExprKind::Paren(inner) => self.check(inner, scope, expected),
            ExprKind::Name(ident) => self.name(ident, scope, expected),
            ExprKind::Path(q) => self.path(q, scope),
            ExprKind::List(items) => {
                let element = match expected {
                    Some(Type::List(t)) => Some((**t).clone()),
                    other => other.cloned(),
                };
                let mut lowered = Vec::with_capacity(items.len());
                let mut element_type: Option<Type> = element.clone();
                for item in items {
                    let (e, t) = self.check(item, scope, element_type.as_ref());
                    match &element_type {
                        Some(prev) if !prev.comparable_with(&t) => {
                            self.diagnostics.push((
                                DiagnosticKind::WrongType {
                                    context: "every element of a list".into(),
                                    expected: prev.to_string(),
                                    found: t.to_string(),
                                },
                                item.span,
                            ));
                        }
                        Some(Type::Error) | None => element_type = Some(t),
                        _ => {}
                    }
                    lowered.push(e);
                }
                (ir::Expr::List(lowered), Type::List(Box::new(element_type.unwrap_or(Type::Error))))
            }
            ExprKind::Unary { op, operand } => {
                let (e, t) = self.check(operand, scope, None);
                let ok = match op {
                    UnaryOp::Not => matches!(t, Type::Bool | Type::Error),
                    UnaryOp::Neg => t.is_numeric() || t == Type::Duration,
                };
                if !ok {
                    let (op_name, want) = match op {
                        UnaryOp::Not => ("not", "bool"),
                        UnaryOp::Neg => ("-", "a number or a duration"),
                    };
                    return self.error(
                        DiagnosticKind::WrongType {
                            context: format!("the operand of `{op_name}`"),
                            expected: want.into(),
                            found: t.to_string(),
                        },
                        operand.span,
                    );
                }
                let ir_op = match op {
                    UnaryOp::Not => ir::UnaryOp::Not,
                    UnaryOp::Neg => ir::UnaryOp::Neg,
                };
                (ir::Expr::Unary { op: ir_op, operand: Box::new(e) }, t)
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, expr.span, scope),
            ExprKind::Call { function, args } => self.call(function, args, expr.span, scope),
        }
    }

    fn literal(&mut self, lit: &Literal, span: Span, expected: Option<&Type>) -> (ir::Expr, Type) {
        let (value, ty) = match lit {
            Literal::Int(i) => (Value::Int(*i), Type::Int),
            Literal::Float(f) => (Value::Float(*f), Type::Float),
            Literal::String(s) => {
                if let Some(Type::Enum(variants)) = expected.map(Type::non_optional) {
                    return self.enum_value(s, variants, span);
                }
                (Value::String(s.clone()), Type::String)
            }
            Literal::Bool(b) => (Value::Bool(*b), Type::Bool),
            Literal::Duration(ms) => (Value::Duration(*ms as i64), Type::Duration),
            Literal::Date { year, month, day } => match time::days_from_civil(*year, *month, *day) {
                Some(days) => (Value::Date(days), Type::Date),
                None => return self.error(DiagnosticKind::Syntax(mon_grammar::SyntaxErrorKind::InvalidDate), span),
            },
            Literal::TimeOfDay { hour, minute, second } => {
                (Value::TimeOfDay(hour * 3600 + minute * 60 + second), Type::TimeOfDay)
            }
            Literal::Timestamp(text) => match time::parse_timestamp(text) {
                Some(ms) => (Value::Timestamp(ms), Type::Timestamp),
                None => return self.error(DiagnosticKind::InvalidTimestamp { text: text.clone() }, span),
            },
        };
        // An int literal where a float is expected is a float.
        if let (Value::Int(i), Some(Type::Float)) = (&value, expected.map(Type::non_optional)) {
            return (ir::Expr::Const(Value::Float(*i as f64)), Type::Float);
        }
        (ir::Expr::Const(value), ty)
    }

    fn enum_value(&mut self, value: &str, variants: &[String], span: Span) -> (ir::Expr, Type) {
        match variants.iter().position(|v| v == value) {
            Some(i) => (ir::Expr::Const(Value::Enum(i as u32)), Type::Enum(variants.to_vec())),
            None => self.error(
                DiagnosticKind::UnknownEnumValue {
                    value: value.to_string(),
                    variants: variants.to_vec(),
                    suggestion: did_you_mean(value, variants.iter().map(String::as_str)),
                },
                span,
            ),
        }
    }

    fn name(&mut self, ident: &ast::Ident, scope: &Scope, expected: Option<&Type>) -> (ir::Expr, Type) {
        if let Scope::Step { event, .. } = scope {
            if let Some(field) = event.field(&ident.name) {
                return (ir::Expr::Field(field.slot), Type::from_field(&field.ty, field.optional));
            }
        }
        if let Some(Type::Enum(variants)) = expected.map(Type::non_optional) {
            return self.enum_value(&ident.name, variants, ident.span);
        }
        match scope {
            Scope::Step { event, .. } => self.error(
                DiagnosticKind::UnknownField {
                    field: ident.name.clone(),
                    event: event.name.clone(),
                    suggestion: did_you_mean(&ident.name, event.fields.iter().map(|f| f.name.as_str())),
                },
                ident.span,
            ),
            Scope::Status => match Metric::STATUS.into_iter().find(|m| m.name() == ident.name) {
                Some(metric) => (ir::Expr::Metric(StatusMetric::Count(metric)), Type::Int),
                None => {
                    let names: Vec<&str> = Metric::STATUS.iter().map(|m| m.name()).collect();
                    self.error(
                        DiagnosticKind::InvalidChoice {
                            what: "status metric",
                            found: ident.name.clone(),
                            suggestion: did_you_mean(&ident.name, names.iter().copied()),
                            expected: names.iter().map(|s| s.to_string()).chain(["aged(D)".to_string()]).collect(),
                        },
                        ident.span,
                    )
                }
            },
            Scope::Literal => self.error(
                DiagnosticKind::WrongType {
                    context: "a field of an event literal".into(),
                    expected: "a literal value".into(),
                    found: format!("the name `{}`", ident.name),
                },
                ident.span,
            ),
        }
    }

    fn path(&mut self, q: &ast::QualifiedName, scope: &Scope) -> (ir::Expr, Type) {
        let Scope::Step { event, steps, workflow, current } = scope else {
            return self.error(
                DiagnosticKind::WrongType {
                    context: "a name here".into(),
                    expected: "a plain name".into(),
                    found: format!("`{}.{}`", q.qualifier.name, q.name.name),
                },
                q.span,
            );
        };
        // `event.field` naming the step's own event is the same as `field`.
        let (source_event, kept_step) =
            if q.qualifier.name == event.name && !steps.iter().any(|(name, _, _)| *name == q.qualifier.name) {
                (*event, None)
            } else {
                match steps.iter().position(|(name, _, _)| *name == q.qualifier.name) {
                    Some(index) => {
                        let (name, step_event, precedes) = &steps[index];
                        if !precedes {
                            return self.error(
                                DiagnosticKind::NotAnAncestor { step: current.to_string(), referenced: name.clone() },
                                q.qualifier.span,
                            );
                        }
                        (*step_event, Some(index as u32))
                    }
                    None => {
                        return self.error(
                            DiagnosticKind::UnknownStage {
                                name: q.qualifier.name.clone(),
                                workflow: workflow.to_string(),
                                suggestion: did_you_mean(&q.qualifier.name, steps.iter().map(|(n, _, _)| n.as_str())),
                            },
                            q.qualifier.span,
                        );
                    }
                }
            };
        let Some(field) = source_event.field(&q.name.name) else {
            return self.error(
                DiagnosticKind::UnknownField {
                    field: q.name.name.clone(),
                    event: source_event.name.clone(),
                    suggestion: did_you_mean(&q.name.name, source_event.fields.iter().map(|f| f.name.as_str())),
                },
                q.name.span,
            );
        };
        let ty = Type::from_field(&field.ty, field.optional);
        match kept_step {
            Some(step) => {
                self.kept.push((step, field.slot));
                (ir::Expr::Kept { step, slot: field.slot }, ty)
            }
            None => (ir::Expr::Field(field.slot), ty),
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        lhs: &ast::Expr,
        rhs: &ast::Expr,
        span: Span,
        scope: &Scope,
    ) -> (ir::Expr, Type) {
        // Check the side that can stand alone first, so that a bare enum
        // value on either side resolves against the other side's type.
        let lhs_is_bare = is_unresolved_name(lhs, scope);
        if lhs_is_bare && is_unresolved_name(rhs, scope) {
            // Neither side is a field: report the left one only, since the
            // right one may well be an enum value of the field meant.
            self.check(lhs, scope, None);
            return (ir::Expr::Const(Value::Null), Type::Error);
        }
        let ((l, lt), (r, rt)) = if lhs_is_bare && matches!(op, BinaryOp::Eq | BinaryOp::Ne) {
            let right = self.check(rhs, scope, None);
            let left = self.check(lhs, scope, Some(&right.1));
            (left, right)
        } else {
            let left = self.check(lhs, scope, None);
            let hint = match op {
                BinaryOp::In | BinaryOp::NotIn => Some(Type::List(Box::new(left.1.non_optional().clone()))),
                BinaryOp::Coalesce => Some(left.1.non_optional().clone()),
                _ => Some(left.1.non_optional().clone()),
            };
            let right = self.check(rhs, scope, hint.as_ref());
            (left, right)
        };
        let mismatch = |this: &mut Self| {
            let hint = mismatch_hint(lhs, &lt, rhs, &rt);
            this.error(
                DiagnosticKind::TypeMismatch {
                    op: op.symbol().to_string(),
                    left: lt.to_string(),
                    right: rt.to_string(),
                    hint,
                },
                span,
            )
        };
        if lt.is_error() || rt.is_error() {
            return (ir::Expr::Const(Value::Null), Type::Error);
        }
        let result = match op {
            BinaryOp::And | BinaryOp::Or => {
                for (t, side) in [(&lt, lhs), (&rt, rhs)] {
                    if *t != Type::Bool {
                        return self.error(
                            DiagnosticKind::WrongType {
                                context: format!("an operand of `{}`", op.symbol()),
                                expected: "bool".into(),
                                found: t.to_string(),
                            },
                            side.span,
                        );
                    }
                }
                Type::Bool
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                if !lt.comparable_with(&rt) {
                    return mismatch(self);
                }
                Type::Bool
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                if let Some(optional) = self.optional_operand(&[(&lt, lhs), (&rt, rhs)], "compared") {
                    return optional;
                }
                if !lt.comparable_with(&rt) || !lt.is_ordered() {
                    return mismatch(self);
                }
                Type::Bool
            }
            BinaryOp::In | BinaryOp::NotIn => match &rt {
                Type::List(element) if lt.comparable_with(element) => Type::Bool,
                _ => return mismatch(self),
            },
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
                if let Some(optional) = self.optional_operand(&[(&lt, lhs), (&rt, rhs)], "used in arithmetic") {
                    return optional;
                }
                match arithmetic(op, &lt, &rt) {
                    Some(t) => t,
                    None => return mismatch(self),
                }
            }
            BinaryOp::Coalesce => {
                let Type::Optional(inner) = &lt else {
                    return self.error(
                        DiagnosticKind::WrongType {
                            context: "the left side of `??`".into(),
                            expected: "an optional field".into(),
                            found: lt.to_string(),
                        },
                        lhs.span,
                    );
                };
                if !inner.comparable_with(&rt) {
                    return mismatch(self);
                }
                rt.clone()
            }
        };
        (ir::Expr::Binary { op: lower_op(op), lhs: Box::new(l), rhs: Box::new(r) }, result)
    }

    fn optional_operand(
        &mut self,
        operands: &[(&Type, &ast::Expr)],
        context: &'static str,
    ) -> Option<(ir::Expr, Type)> {
        for (t, side) in operands {
            if matches!(t, Type::Optional(_)) {
                let name = match &side.kind {
                    ExprKind::Name(i) => i.name.clone(),
                    ExprKind::Path(q) => format!("{}.{}", q.qualifier.name, q.name.name),
                    _ => "this value".into(),
                };
                return Some(self.error(DiagnosticKind::OptionalValue { name, context }, side.span));
            }
        }
        None
    }

    fn call(&mut self, function: &ast::Ident, args: &[ast::Expr], span: Span, scope: &Scope) -> (ir::Expr, Type) {
        if matches!(scope, Scope::Status) && function.name == "aged" {
            return self.aged(args, span);
        }
        let Some(f) = self.functions.get(&function.name) else {
            let names = self.functions.names();
            return self.error(
                DiagnosticKind::UnknownFunction {
                    name: function.name.clone(),
                    suggestion: did_you_mean(&function.name, names.iter().copied()),
                },
                function.span,
            );
        };
        let signature = f.signature();
        let count_ok = if signature.variadic {
            args.len() >= signature.params.len()
        } else {
            args.len() == signature.params.len()
        };
        if !count_ok {
            let n = signature.params.len();
            let expected = match (signature.variadic, n) {
                (true, _) => format!("at least {n} argument{}", if n == 1 { "" } else { "s" }),
                (false, 1) => "1 argument".to_string(),
                (false, _) => format!("{n} arguments"),
            };
            return self.error(
                DiagnosticKind::WrongArgumentCount {
                    function: function.name.clone(),
                    expected,
                    found: args.len(),
                    signature: describe_signature(function.name.as_str(), &signature),
                },
                span,
            );
        }
        let mut lowered = Vec::with_capacity(args.len());
        let mut same: Option<Type> = None;
        for (i, arg) in args.iter().enumerate() {
            let param = &signature.params[i.min(signature.params.len() - 1)].1;
            let expected = match param {
                Param::Exactly(t) => Some(t.clone()),
                _ => same.clone(),
            };
            let (e, t) = self.check(arg, scope, expected.as_ref());
            if t.is_error() {
                lowered.push(e);
                continue;
            }
            if matches!(t, Type::Optional(_)) {
                if let Some(optional) = self.optional_operand(&[(&t, arg)], "passed to a function") {
                    lowered.push(optional.0);
                    continue;
                }
            }
            let ok = match param {
                Param::Exactly(want) => t.non_optional() == want || (*want == Type::Float && t == Type::Int),
                Param::Number => t.is_numeric(),
                Param::Same => same.as_ref().is_none_or(|s| s.comparable_with(&t)),
            };
            if !ok {
                let expected = match param {
                    Param::Exactly(want) => want.to_string(),
                    Param::Number => "a number".into(),
                    Param::Same => same.as_ref().map_or("the same type".into(), |s| s.to_string()),
                };
                self.diagnostics.push((
                    DiagnosticKind::WrongArgumentType {
                        function: function.name.clone(),
                        position: i + 1,
                        expected,
                        found: t.to_string(),
                    },
                    arg.span,
                ));
                lowered.push(e);
                continue;
            }
            if matches!(param, Param::Number | Param::Same) {
                same = match (&same, &t) {
                    (Some(Type::Float), _) | (_, Type::Float) => Some(Type::Float),
                    _ => Some(t.non_optional().clone()),
                };
            }
            if let ir::Expr::Const(value) = &e {
                if let Err(reason) = f.check_literal(i, value) {
                    self.diagnostics.push((
                        DiagnosticKind::InvalidLiteralArgument { function: function.name.clone(), reason },
                        arg.span,
                    ));
                }
            }
            lowered.push(e);
        }
        let returns = match signature.returns {
            Returns::Exactly(t) => t,
            Returns::LikeArguments => same.unwrap_or(Type::Error),
        };
        (ir::Expr::Call { function: function.name.clone(), args: lowered }, returns)
    }

    fn aged(&mut self, args: &[ast::Expr], span: Span) -> (ir::Expr, Type) {
        match args {
            [ast::Expr { kind: ExprKind::Literal(Literal::Duration(ms)), .. }] => {
                (ir::Expr::Metric(StatusMetric::Aged(*ms)), Type::Int)
            }
            [other] => {
                let found = match &other.kind {
                    ExprKind::Literal(Literal::Int(_)) => "int".to_string(),
                    ExprKind::Literal(Literal::Float(_)) => "float".to_string(),
                    ExprKind::Literal(Literal::String(_)) => "string".to_string(),
                    _ => "not a literal".to_string(),
                };
                self.error(
                    DiagnosticKind::WrongArgumentType {
                        function: "aged".into(),
                        position: 1,
                        expected: "a duration literal such as `15m`".into(),
                        found,
                    },
                    other.span,
                )
            }
            _ => self.error(
                DiagnosticKind::WrongArgumentCount {
                    function: "aged".into(),
                    expected: "1 argument".into(),
                    found: args.len(),
                    signature: "aged(duration) -> int".into(),
                },
                span,
            ),
        }
    }
}

/// A suggestion for the commonest mismatches: a number or enum value
/// written as a string.
fn mismatch_hint(lhs: &ast::Expr, lt: &Type, rhs: &ast::Expr, rt: &Type) -> Option<String> {
    for (side, other) in [(lhs, rt), (rhs, lt)] {
        if let ExprKind::Literal(Literal::String(text)) = &side.kind {
            if other.non_optional().is_numeric() && text.trim().parse::<f64>().is_ok() {
                return Some(format!("write the number without quotes: `{}`", text.trim()));
            }
        }
    }
    if lt.non_optional() == &Type::String && rt.non_optional().is_numeric()
        || rt.non_optional() == &Type::String && lt.non_optional().is_numeric()
    {
        return Some("a string never equals a number: compare fields of the same type".into());
    }
    None
}

fn describe_signature(name: &str, signature: &crate::builtins::Signature) -> String {
    let params: Vec<String> = signature
        .params
        .iter()
        .map(|(param, kind)| match kind {
            Param::Exactly(t) => format!("{param}: {t}"),
            Param::Number => format!("{param}: number"),
            Param::Same => param.to_string(),
        })
        .collect();
    let variadic = if signature.variadic { ", ..." } else { "" };
    let returns = match &signature.returns {
        Returns::Exactly(t) => t.to_string(),
        Returns::LikeArguments => "the arguments' type".to_string(),
    };
    format!("{name}({}{variadic}) -> {returns}", params.join(", "))
}

fn is_unresolved_name(expr: &ast::Expr, scope: &Scope) -> bool {
    match (&expr.kind, scope) {
        (ExprKind::Name(ident), Scope::Step { event, .. }) => event.field(&ident.name).is_none(),
        (ExprKind::Name(_), Scope::Literal) => true,
        _ => false,
    }
}

fn arithmetic(op: BinaryOp, l: &Type, r: &Type) -> Option<Type> {
    use Type::*;
    Some(match (op, l, r) {
        (_, Int, Int) => Int,
        (_, Int | Float, Int | Float) => Float,
        (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => Duration,
        (BinaryOp::Add | BinaryOp::Sub, Timestamp, Duration) => Timestamp,
        (BinaryOp::Add, Duration, Timestamp) => Timestamp,
        (BinaryOp::Sub, Timestamp, Timestamp) => Duration,
        (BinaryOp::Mul, Duration, Int | Float) | (BinaryOp::Mul, Int | Float, Duration) => Duration,
        (BinaryOp::Div, Duration, Int | Float) => Duration,
        (BinaryOp::Add, String, String) => String,
        _ => return None,
    })
}

fn lower_op(op: BinaryOp) -> ir::BinaryOp {
    match op {
        BinaryOp::Or => ir::BinaryOp::Or,
        BinaryOp::And => ir::BinaryOp::And,
        BinaryOp::Eq => ir::BinaryOp::Eq,
        BinaryOp::Ne => ir::BinaryOp::Ne,
        BinaryOp::Lt => ir::BinaryOp::Lt,
        BinaryOp::Le => ir::BinaryOp::Le,
        BinaryOp::Gt => ir::BinaryOp::Gt,
        BinaryOp::Ge => ir::BinaryOp::Ge,
        BinaryOp::In => ir::BinaryOp::In,
        BinaryOp::NotIn => ir::BinaryOp::NotIn,
        BinaryOp::Add => ir::BinaryOp::Add,
        BinaryOp::Sub => ir::BinaryOp::Sub,
        BinaryOp::Mul => ir::BinaryOp::Mul,
        BinaryOp::Div => ir::BinaryOp::Div,
        BinaryOp::Coalesce => ir::BinaryOp::Coalesce,
    }
}

/// Whether `expr` reads anything kept from earlier steps.
pub fn reads_kept(expr: &ir::Expr) -> bool {
    match expr {
        ir::Expr::Kept { .. } => true,
        ir::Expr::Const(_) | ir::Expr::Field(_) | ir::Expr::Metric(_) => false,
        ir::Expr::Call { args, .. } | ir::Expr::List(args) => args.iter().any(reads_kept),
        ir::Expr::Unary { operand, .. } => reads_kept(operand),
        ir::Expr::Binary { lhs, rhs, .. } => reads_kept(lhs) || reads_kept(rhs),
    }
}

/// Splits a conjunction into its parts.
pub fn conjuncts(expr: ir::Expr, out: &mut Vec<ir::Expr>) {
    match expr {
        ir::Expr::Binary { op: ir::BinaryOp::And, lhs, rhs } => {
            conjuncts(*lhs, out);
            conjuncts(*rhs, out);
        }
        other => out.push(other),
    }
}

/// Joins parts back with `and`.
pub fn conjunction(parts: Vec<ir::Expr>) -> Option<ir::Expr> {
    parts.into_iter().reduce(|a, b| ir::Expr::Binary { op: ir::BinaryOp::And, lhs: Box::new(a), rhs: Box::new(b) })
}
