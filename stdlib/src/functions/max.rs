//! `max(a, b, ...)`: the largest of two or more numbers.

use std::cmp::Ordering;

use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::Function;

use super::extreme;

/// Takes two or more arguments. The result is an int if every argument is an
/// int, compared exactly; once a float is involved, every argument is
/// compared as a float, and a NaN argument is passed over unless all are NaN.
pub struct Max;

impl Function for Max {
    fn name(&self) -> &'static str {
        "max"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("a", Param::Number), ("b", Param::Number)],
            variadic: true,
            returns: Returns::LikeArguments,
        }
    }

    fn summary(&self) -> &'static str {
        "The largest of two or more numbers: an int if all are ints, else a float."
    }

    fn examples(&self) -> Vec<Example> {
        vec![
            Example { call: "max(3, 7)", args: vec![Value::Int(3), Value::Int(7)], result: Value::Int(7) },
            Example {
                // An int literal after a float is checked as a float.
                call: "max(1, 2.5, 2)",
                args: vec![Value::Int(1), Value::Float(2.5), Value::Float(2.0)],
                result: Value::Float(2.5),
            },
            Example { call: "max(2, 2.0)", args: vec![Value::Int(2), Value::Float(2.0)], result: Value::Float(2.0) },
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        extreme(args, Ordering::Greater).unwrap_or(Value::Null)
    }
}
