//! The reference interpreter for compiled expressions.
//!
//! It evaluates an `ir::Expr` against the slots of the event being matched
//! and the fields an instance kept from earlier steps. Types were checked
//! at compile time, so a mismatch here can only come from a missing optional
//! value: it evaluates to `Null`, and a `Null` condition is false.

use std::borrow::Cow;

use mon_compiler::ir::{BinaryOp, Expr, UnaryOp, Value};
use mon_compiler::Functions;

/// What an expression can read.
pub struct Env<'a> {
    pub fields: &'a [Value],
    /// Fields kept from earlier steps: (step, slot, value).
    pub kept: &'a [(u32, u32, Value)],
    pub functions: &'a dyn Functions,
}

/// Evaluates a condition; anything but `true` is false.
pub fn holds(expr: &Expr, env: &Env) -> bool {
    matches!(eval_ref(expr, env).as_ref(), Value::Bool(true))
}

pub fn eval(expr: &Expr, env: &Env) -> Value {
    eval_ref(expr, env).into_owned()
}

/// Evaluates without copying constants and fields: guards run on every
/// event, and a string comparison should not allocate.
fn eval_ref<'a>(expr: &'a Expr, env: &'a Env) -> Cow<'a, Value> {
    const NULL: Value = Value::Null;
    match expr {
        Expr::Const(v) => Cow::Borrowed(v),
        Expr::Field(slot) => Cow::Borrowed(env.fields.get(*slot as usize).unwrap_or(&NULL)),
        Expr::Kept { step, slot } => {
            Cow::Borrowed(env.kept.iter().find(|(s, k, _)| s == step && k == slot).map_or(&NULL, |(_, _, v)| v))
        }
        // Status metrics are evaluated by the aggregates, not per event.
        Expr::Metric(_) => Cow::Owned(Value::Null),
        Expr::Call { function, args } => {
            let values: Vec<Value> = args.iter().map(|a| eval(a, env)).collect();
            Cow::Owned(env.functions.get(function).map_or(Value::Null, |f| f.call(&values)))
        }
        // Lists only appear on the right of `in`, handled there.
        Expr::List(_) => Cow::Owned(Value::Null),
        Expr::Unary { op, operand } => Cow::Owned(match (op, eval_ref(operand, env).as_ref()) {
            (UnaryOp::Not, Value::Bool(b)) => Value::Bool(!b),
            (UnaryOp::Neg, Value::Int(i)) => i.checked_neg().map_or(Value::Null, Value::Int),
            (UnaryOp::Neg, Value::Float(f)) => Value::Float(-f),
            (UnaryOp::Neg, Value::Duration(d)) => d.checked_neg().map_or(Value::Null, Value::Duration),
            _ => Value::Null,
        }),
        Expr::Binary { op, lhs, rhs } => Cow::Owned(binary(*op, lhs, rhs, env)),
    }
}

fn binary(op: BinaryOp, lhs: &Expr, rhs: &Expr, env: &Env) -> Value {
    match op {
        BinaryOp::And => Value::Bool(holds(lhs, env) && holds(rhs, env)),
        BinaryOp::Or => Value::Bool(holds(lhs, env) || holds(rhs, env)),
        BinaryOp::In | BinaryOp::NotIn => {
            let needle = eval_ref(lhs, env);
            let Expr::List(items) = rhs else { return Value::Null };
            if *needle == Value::Null {
                return Value::Null;
            }
            let found = items.iter().any(|item| equal(&needle, &eval_ref(item, env)) == Some(true));
            Value::Bool(found == (op == BinaryOp::In))
        }
        BinaryOp::Coalesce => match eval_ref(lhs, env).into_owned() {
            Value::Null => eval(rhs, env),
            v => v,
        },
        _ => {
            let (a, b) = (eval_ref(lhs, env), eval_ref(rhs, env));
            apply(op, &a, &b)
        }
    }
}

fn equal(a: &Value, b: &Value) -> Option<bool> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => Some((*x as f64) == *y),
        _ => Some(a == b),
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) | (Value::Duration(x), Value::Duration(y)) => Some(x.cmp(y)),
        (Value::TimeOfDay(x), Value::TimeOfDay(y)) => Some(x.cmp(y)),
        (Value::Enum(x), Value::Enum(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn apply(op: BinaryOp, a: &Value, b: &Value) -> Value {
    use std::cmp::Ordering::*;
    let compare = |want: &dyn Fn(std::cmp::Ordering) -> bool| order(a, b).map_or(Value::Null, |o| Value::Bool(want(o)));
    match op {
        BinaryOp::Eq => equal(a, b).map_or(Value::Null, Value::Bool),
        BinaryOp::Ne => equal(a, b).map_or(Value::Null, |e| Value::Bool(!e)),
        BinaryOp::Lt => compare(&|o| o == Less),
        BinaryOp::Le => compare(&|o| o != Greater),
        BinaryOp::Gt => compare(&|o| o == Greater),
        BinaryOp::Ge => compare(&|o| o != Less),
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => arithmetic(op, a, b),
        _ => Value::Null,
    }
}

fn arithmetic(op: BinaryOp, a: &Value, b: &Value) -> Value {
    use Value::*;
    let float = |x: f64, y: f64| match op {
        BinaryOp::Add => Float(x + y),
        BinaryOp::Sub => Float(x - y),
        BinaryOp::Mul => Float(x * y),
        _ if y == 0.0 => Null,
        _ => Float(x / y),
    };
    match (a, b) {
        (Int(x), Int(y)) => match op {
            BinaryOp::Add => x.checked_add(*y).map_or(Null, Int),
            BinaryOp::Sub => x.checked_sub(*y).map_or(Null, Int),
            BinaryOp::Mul => x.checked_mul(*y).map_or(Null, Int),
            _ => x.checked_div(*y).map_or(Null, Int),
        },
        (Int(x), Float(y)) => float(*x as f64, *y),
        (Float(x), Int(y)) => float(*x, *y as f64),
        (Float(x), Float(y)) => float(*x, *y),
        (Duration(x), Duration(y)) | (Timestamp(x), Duration(y)) | (Duration(x), Timestamp(y)) => {
            let sum = match op {
                BinaryOp::Add => x.checked_add(*y),
                BinaryOp::Sub => x.checked_sub(*y),
                _ => None,
            };
            match (a, b, sum) {
                (_, _, None) => Null,
                (Duration(_), Duration(_), Some(v)) => Duration(v),
                (_, _, Some(v)) => Timestamp(v),
            }
        }
        (Timestamp(x), Timestamp(y)) if op == BinaryOp::Sub => x.checked_sub(*y).map_or(Null, Duration),
        (Duration(x), Int(y)) | (Int(y), Duration(x)) if op == BinaryOp::Mul => {
            x.checked_mul(*y).map_or(Null, Duration)
        }
        (Duration(x), Float(y)) | (Float(y), Duration(x)) if op == BinaryOp::Mul => Duration((*x as f64 * y) as i64),
        (Duration(x), Int(y)) if op == BinaryOp::Div => x.checked_div(*y).map_or(Null, Duration),
        (Duration(x), Float(y)) if op == BinaryOp::Div && *y != 0.0 => Duration((*x as f64 / y) as i64),
        (String(x), String(y)) if op == BinaryOp::Add => String(format!("{x}{y}")),
        _ => Null,
    }
}
