//! Expressions and the literals only they contain, printed on one line.
//!
//! The author's parentheses are nodes of the tree, so printing the operands
//! in order gives back the same tree; floats and strings are printed in the
//! shortest form that reads back as the same value.

use super::statements::qualified;
use crate::ast::*;
use crate::literal::{format_date, format_duration, format_time_of_day};

/// An expression on one line. The author's parentheses are nodes of the
/// tree, so printing the operands in order gives back the same tree.
pub(super) fn expr(e: &Expr) -> String {
    let mut out = String::new();
    push_expr(&mut out, e);
    out
}

fn push_expr(out: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Literal(literal) => out.push_str(&literal_text(literal)),
        ExprKind::Name(name) => out.push_str(&name.name),
        ExprKind::Path(path) => out.push_str(&qualified(path)),
        ExprKind::Call { function, args } => {
            out.push_str(&function.name);
            out.push('(');
            push_list(out, args);
            out.push(')');
        }
        ExprKind::List(items) => {
            out.push('[');
            push_list(out, items);
            out.push(']');
        }
        ExprKind::Unary { op, operand } => {
            out.push_str(match op {
                UnaryOp::Not => "not ",
                UnaryOp::Neg => "-",
            });
            push_expr(out, operand);
        }
        ExprKind::Binary { op, lhs, rhs } => {
            push_expr(out, lhs);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            push_expr(out, rhs);
        }
        ExprKind::Paren(inner) => {
            out.push('(');
            push_expr(out, inner);
            out.push(')');
        }
    }
}

fn push_list(out: &mut String, items: &[Expr]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_expr(out, item);
    }
}

fn literal_text(literal: &Literal) -> String {
    match literal {
        Literal::Int(n) => n.to_string(),
        Literal::Float(x) => float(*x),
        Literal::String(s) => string(s),
        Literal::Bool(b) => b.to_string(),
        Literal::Duration(ms) => format_duration(*ms),
        Literal::Date { year, month, day } => format_date(*year, *month, *day),
        Literal::TimeOfDay { hour, minute, second } => format_time_of_day(*hour, *minute, *second),
        Literal::Timestamp(text) => text.clone(),
    }
}

/// The shortest text that reads back as the same `f64`, always with a `.`
/// so that it stays a float (`250000.0`, `1.0e21`).
fn float(x: f64) -> String {
    if x.is_infinite() {
        // Only a literal too large for f64 parses to infinity; this one does too.
        return "1.0e999".to_string();
    }
    let text = format!("{x:?}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if !mantissa.contains('.') => format!("{mantissa}.0e{exponent}"),
        Some(_) => text,
        None if text.contains('.') => text,
        None => format!("{text}.0"),
    }
}

pub(super) fn string(value: &str) -> String {
    let mut text = String::with_capacity(value.len() + 2);
    text.push('"');
    for c in value.chars() {
        match c {
            '"' => text.push_str("\\\""),
            '\\' => text.push_str("\\\\"),
            '\n' => text.push_str("\\n"),
            '\t' => text.push_str("\\t"),
            '\r' => text.push_str("\\r"),
            c if c.is_control() => text.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => text.push(c),
        }
    }
    text.push('"');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_keep_a_point_and_their_value() {
        for x in [0.0, 0.1, 3.25, 250000.0, 1e21, 1.5e-7, 123456789012345680.0] {
            let text = float(x);
            assert!(text.contains('.'), "{text}");
            assert_eq!(text.parse::<f64>().unwrap(), x, "{text}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a \"q\" \\ \n\t\r\u{1}é"), r#""a \"q\" \\ \n\t\r\u{1}é""#);
    }
}
