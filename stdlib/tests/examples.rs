//! Runs every worked example of every registered function, and checks that
//! the registry, the signatures and the examples agree with each other.
//! Here an example's `args` are passed to the function directly; the
//! workspace's `tests/stdlib_examples.rs` runs its `call` text through the
//! parser, the checker and the runtime's interpreter, which this crate
//! cannot reach, and checks that the call passes exactly these `args`.

use std::collections::BTreeSet;

use mon_compiler::builtins::{Param, Returns};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::{Function, Functions};
use mon_stdlib::{functions, registry};

/// The functions LANGUAGE.md §4 promises.
const SPECIFIED: [&str; 13] = [
    "len",
    "lower",
    "upper",
    "starts_with",
    "ends_with",
    "contains",
    "matches",
    "date",
    "hour",
    "weekday",
    "abs",
    "min",
    "max",
];

/// Whether `value` can be a value of `ty`; `Null` can stand for any type.
fn has_type(value: &Value, ty: &Type) -> bool {
    matches!(
        (value, ty),
        (Value::Null, _)
            | (Value::Bool(_), Type::Bool)
            | (Value::Int(_), Type::Int)
            | (Value::Float(_), Type::Float)
            | (Value::String(_), Type::String)
            | (Value::Date(_), Type::Date)
            | (Value::Timestamp(_), Type::Timestamp)
            | (Value::Duration(_), Type::Duration)
            | (Value::TimeOfDay(_), Type::TimeOfDay)
            | (Value::Enum(_), Type::Enum(_))
    )
}

fn is_number(value: &Value) -> bool {
    matches!(value, Value::Null | Value::Int(_) | Value::Float(_))
}

#[test]
fn every_example_gives_its_result() {
    let mut failures = Vec::new();
    for f in registry().iter() {
        for example in f.examples() {
            let got = f.call(&example.args);
            if got != example.result {
                failures.push(format!("{}: expected {:?}, got {:?}", example.call, example.result, got));
            }
        }
    }
    assert!(failures.is_empty(), "examples that fail:\n{}", failures.join("\n"));
}

#[test]
fn every_function_is_documented_by_examples() {
    for f in registry().iter() {
        let name = f.name();
        let examples = f.examples();
        assert!((2..=4).contains(&examples.len()), "`{name}` has {} examples, not 2 to 4", examples.len());
        assert!(f.summary().ends_with('.'), "the summary of `{name}` is not a sentence");
        for example in examples {
            assert!(example.call.starts_with(&format!("{name}(")), "`{name}` has an example `{}`", example.call);
            assert!(example.call.ends_with(')'), "`{name}` has an example `{}`", example.call);
        }
    }
}

#[test]
fn examples_agree_with_signatures() {
    for f in registry().iter() {
        let signature = f.signature();
        assert!(!signature.params.is_empty(), "`{}` takes no parameters", f.name());
        for example in f.examples() {
            let (params, args) = (signature.params.len(), example.args.len());
            let arity_ok = if signature.variadic { args >= params } else { args == params };
            assert!(arity_ok, "{}: {args} arguments for {params} parameters", example.call);
            for (i, arg) in example.args.iter().enumerate() {
                // Extra arguments of a variadic call repeat the last parameter.
                let (name, param) = &signature.params[i.min(params - 1)];
                let ok = match param {
                    Param::Exactly(ty) => has_type(arg, ty),
                    Param::Number => is_number(arg),
                    Param::Same => true,
                };
                assert!(ok, "{}: argument {} (`{name}`) is {arg:?}", example.call, i + 1);
            }
            let ok = match &signature.returns {
                Returns::Exactly(ty) => has_type(&example.result, ty),
                // Ints in, int out; a float anywhere makes the result a float.
                Returns::LikeArguments => match &example.result {
                    Value::Null => true,
                    Value::Int(_) => example.args.iter().all(|a| matches!(a, Value::Int(_))),
                    Value::Float(_) => example.args.iter().any(|a| matches!(a, Value::Float(_))),
                    _ => false,
                },
            };
            assert!(ok, "{}: the result {:?} does not fit the signature", example.call, example.result);
        }
    }
}

#[test]
fn a_null_argument_gives_null() {
    for f in registry().iter() {
        // Any example's arguments are valid; replace each in turn with Null.
        let args = f.examples().remove(0).args;
        for i in 0..args.len() {
            let mut with_null = args.clone();
            with_null[i] = Value::Null;
            assert_eq!(f.call(&with_null), Value::Null, "`{}` with argument {} null", f.name(), i + 1);
        }
    }
}

#[test]
fn names_are_unique_sorted_and_complete() {
    let listed: Vec<&str> = functions::all().iter().map(|f| f.name()).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a name is registered twice: {listed:?}");

    let names = registry().names();
    assert!(names.windows(2).all(|pair| pair[0] < pair[1]), "names are not sorted: {names:?}");
    assert_eq!(names, unique.iter().copied().collect::<Vec<_>>());
    for name in &names {
        assert_eq!(registry().get(name).map(|f| f.name()), Some(*name));
    }
    for name in SPECIFIED {
        assert!(registry().get(name).is_some(), "`{name}` is in LANGUAGE.md §4 but not registered");
    }
    assert!(registry().get("nope").is_none());
}

#[test]
#[should_panic(expected = "registered twice")]
fn registering_a_name_twice_is_refused() {
    let twice: Vec<Box<dyn Function>> = vec![Box::new(functions::Len), Box::new(functions::Len)];
    mon_stdlib::Registry::new(twice);
}
