//! The JIT against the reference interpreter (issue 13): random condition
//! trees over a typed event layout, run on random events by both, must
//! give the same answer every time.
//!
//! The trees mix every operator the language has, well typed or not (an
//! ill-typed comparison is null in the interpreter and must be null in
//! native code too), over slots of every type, constants and fields kept
//! from earlier steps. Values include nulls and the edges where the two
//! could part: NaN, -0.0, infinities, i64::MIN and MAX (overflow and
//! division are checked), ints that floats cannot hold exactly, empty and
//! non-ASCII strings. A few values are deliberately not of their slot's
//! declared kind: native code must then say "unknown" (and the engine asks
//! the interpreter), never a wrong answer.

use mon_compiler::ir::{BinaryOp, Expr, UnaryOp, Value};
use mon_jit::{Guards, Input, Kind, Verdict};
use mon_runtime::eval::{eval, Env};
use proptest::prelude::*;

/// The event's layout: slot `i` is declared with `LAYOUT[i]`. Kept fields
/// use the same layout (steps 0 and 1 of a workflow on one event type).
const LAYOUT: [Kind; 12] = [
    Kind::Int,
    Kind::Int,
    Kind::Float,
    Kind::Float,
    Kind::Bool,
    Kind::String,
    Kind::String,
    Kind::Date,
    Kind::Timestamp,
    Kind::Timestamp,
    Kind::Duration,
    Kind::Enum,
];

fn kind_of(input: Input) -> Option<Kind> {
    let slot = match input {
        Input::Field(slot) | Input::Kept { slot, .. } => slot,
    };
    LAYOUT.get(slot as usize).copied()
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(i64::MIN + 1),
        Just(-1i64),
        Just(0i64),
        Just(1i64),
        Just(1_000_000i64),
        // Not exactly representable as f64: `==` with a float rounds.
        Just((1i64 << 53) + 1),
        -5i64..5,
        any::<i64>(),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(-0.0f64),
        Just(0.0f64),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(1.0f64),
        Just(-1.0f64),
        Just(1_000_000.0f64),
        Just(9_007_199_254_740_992.0f64),
        Just(-9.223_372_036_854_776e18f64),
        (-5i64..5).prop_map(|i| i as f64),
        any::<f64>(),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "USD", "EUR", "usd", "USDX", "é", "JOB-00001", "JOB-00002"]).prop_map(String::from)
}

/// A value of one kind.
fn value_of(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Null => Just(Value::Null).boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::Int => int().prop_map(Value::Int).boxed(),
        Kind::Float => float().prop_map(Value::Float).boxed(),
        Kind::String => string().prop_map(Value::String).boxed(),
        Kind::Date => prop_oneof![Just(i32::MIN), Just(i32::MAX), -3i32..3].prop_map(Value::Date).boxed(),
        Kind::Timestamp => int().prop_map(Value::Timestamp).boxed(),
        Kind::Duration => int().prop_map(Value::Duration).boxed(),
        Kind::TimeOfDay => prop_oneof![Just(0u32), Just(86_399u32), 0u32..3].prop_map(Value::TimeOfDay).boxed(),
        Kind::Enum => (0u32..3).prop_map(Value::Enum).boxed(),
    }
}

const KINDS: [Kind; 10] = [
    Kind::Null,
    Kind::Bool,
    Kind::Int,
    Kind::Float,
    Kind::String,
    Kind::Date,
    Kind::Timestamp,
    Kind::Duration,
    Kind::TimeOfDay,
    Kind::Enum,
];

fn any_value() -> BoxedStrategy<Value> {
    prop::sample::select(KINDS.to_vec()).prop_flat_map(value_of).boxed()
}

/// A slot's value: mostly of its declared kind, often null, and with
/// `misfits` a value of any kind at all.
fn slot_value(kind: Kind, misfits: bool) -> BoxedStrategy<Value> {
    if misfits {
        prop_oneof![6 => value_of(kind), 2 => Just(Value::Null), 1 => any_value()].boxed()
    } else {
        prop_oneof![6 => value_of(kind), 2 => Just(Value::Null)].boxed()
    }
}

fn event(misfits: bool) -> impl Strategy<Value = (Vec<Value>, Vec<(u32, u32, Value)>)> {
    let fields: Vec<_> = LAYOUT.iter().map(|k| slot_value(*k, misfits)).collect();
    // Kept fields of steps 0 and 1; a slot may be missing (never kept).
    let kept: Vec<_> = (0..2u32)
        .flat_map(|step| {
            LAYOUT.iter().enumerate().map(move |(slot, k)| {
                prop::option::weighted(0.8, slot_value(*k, misfits)).prop_map(move |v| (step, slot as u32, v))
            })
        })
        .collect();
    (fields, kept).prop_map(|(fields, kept)| {
        let kept = kept.into_iter().filter_map(|(step, slot, v)| Some((step, slot, v?))).collect();
        (fields, kept)
    })
}

fn leaf() -> BoxedStrategy<Expr> {
    prop_oneof![
        // One slot past the layout: it reads as null.
        4 => (0u32..=LAYOUT.len() as u32).prop_map(Expr::Field),
        1 => (0u32..3, 0u32..LAYOUT.len() as u32).prop_map(|(step, slot)| Expr::Kept { step, slot }),
        3 => any_value().prop_map(Expr::Const),
    ]
    .boxed()
}

const BINARY: [BinaryOp; 15] = [
    BinaryOp::Or,
    BinaryOp::And,
    BinaryOp::Eq,
    BinaryOp::Ne,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::In,
    BinaryOp::NotIn,
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Coalesce,
];

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            (prop::sample::select(vec![UnaryOp::Not, UnaryOp::Neg]), inner.clone())
                .prop_map(|(op, operand)| Expr::Unary { op, operand: Box::new(operand) }),
            (prop::sample::select(BINARY.to_vec()), inner.clone(), inner.clone()).prop_map(|(op, lhs, rhs)| {
                let rhs = match op {
                    BinaryOp::In | BinaryOp::NotIn => Expr::List(vec![rhs]),
                    _ => rhs,
                };
                Expr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }
            }),
            (inner.clone(), prop::collection::vec(leaf(), 0..4)).prop_map(|(lhs, items)| Expr::Binary {
                op: BinaryOp::In,
                lhs: Box::new(lhs),
                rhs: Box::new(Expr::List(items)),
            }),
        ]
    })
}

/// A condition: the top of a guard is a comparison or a logical operator.
fn condition() -> impl Strategy<Value = Expr> {
    (prop::sample::select(BINARY[..10].to_vec()), expr(), expr()).prop_map(|(op, lhs, rhs)| {
        let rhs = match op {
            BinaryOp::In | BinaryOp::NotIn => Expr::List(vec![rhs]),
            _ => rhs,
        };
        Expr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }
    })
}

/// The interpreter's value as a verdict; anything but a boolean or null
/// has no verdict and fails the comparison.
fn interpreted(expr: &Expr, fields: &[Value], kept: &[(u32, u32, Value)]) -> Result<Verdict, Value> {
    let env = Env { fields, kept, functions: mon_stdlib::registry() };
    match eval(expr, &env) {
        Value::Bool(true) => Ok(Verdict::True),
        Value::Bool(false) => Ok(Verdict::False),
        Value::Null => Ok(Verdict::Null),
        other => Err(other),
    }
}

fn compiled(expr: &Expr) -> Guards {
    let kind_of: &dyn Fn(Input) -> Option<Kind> = &kind_of;
    Guards::compile([(expr, kind_of)]).expect("this CPU has a cranelift backend")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Where native code answers, it answers as the interpreter does.
    #[test]
    fn native_code_agrees_with_the_interpreter(
        expr in condition(),
        events in prop::collection::vec(event(true), 1..8),
    ) {
        let guards = compiled(&expr);
        if let Some(guard) = guards.get(0) {
            for (fields, kept) in &events {
                let native = guard.run(fields, kept);
                if native != Verdict::Unknown {
                    prop_assert_eq!(Ok(native), interpreted(&expr, fields, kept), "{:?} on {:?} {:?}", expr, fields, kept);
                }
            }
        }
    }

    /// On events whose values all have their declared kinds (or are
    /// null), native code always answers: "unknown" is only for misfits.
    #[test]
    fn native_code_answers_every_well_typed_event(
        expr in condition(),
        events in prop::collection::vec(event(false), 1..8),
    ) {
        let guards = compiled(&expr);
        if let Some(guard) = guards.get(0) {
            for (fields, kept) in &events {
                let native = guard.run(fields, kept);
                prop_assert_eq!(Ok(native), interpreted(&expr, fields, kept), "{:?} on {:?} {:?}", expr, fields, kept);
            }
        }
    }
}

fn field(slot: u32) -> Box<Expr> {
    Box::new(Expr::Field(slot))
}

fn constant(value: Value) -> Box<Expr> {
    Box::new(Expr::Const(value))
}

/// The generators above reach the compiled path: most conditions compile.
#[test]
fn most_generated_conditions_compile() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = condition();
    let (mut compiled_count, total) = (0, 200);
    for _ in 0..total {
        let expr = strategy.new_tree(&mut runner).expect("a tree").current();
        compiled_count += compiled(&expr).compiled();
    }
    assert!(compiled_count * 2 > total, "only {compiled_count} of {total} compiled");
}

/// Calls stay with the interpreter: no native code, no wrong answer.
#[test]
fn function_calls_are_not_compiled() {
    let call = Expr::Binary {
        op: BinaryOp::Gt,
        lhs: Box::new(Expr::Call { function: "len".into(), args: vec![Expr::Field(5)] }),
        rhs: constant(Value::Int(3)),
    };
    assert!(compiled(&call).get(0).is_none());
}

/// The benchmark's first guard, by hand: strings and numbers together.
#[test]
fn amount_and_currency() {
    let guard = Expr::Binary {
        op: BinaryOp::And,
        lhs: Box::new(Expr::Binary { op: BinaryOp::Gt, lhs: field(0), rhs: constant(Value::Int(1_000_000)) }),
        rhs: Box::new(Expr::Binary { op: BinaryOp::Eq, lhs: field(5), rhs: constant(Value::String("USD".into())) }),
    };
    let guards = compiled(&guard);
    let native = guards.get(0).expect("compiled");
    let mut fields: Vec<Value> = LAYOUT.iter().map(|_| Value::Null).collect();
    for (amount, currency, expected) in [
        (Value::Int(2_000_000), "USD", Verdict::True),
        (Value::Int(2_000_000), "EUR", Verdict::False),
        (Value::Int(5), "USD", Verdict::False),
        (Value::Null, "USD", Verdict::False),
        // Not an int slot's kind: the interpreter decides.
        (Value::Float(2e6), "USD", Verdict::Unknown),
    ] {
        fields[0] = amount;
        fields[5] = Value::String(currency.into());
        assert_eq!(native.run(&fields, &[]), expected, "{fields:?}");
    }
}
