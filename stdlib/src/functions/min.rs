//! `min(a, b, ...)`: the smallest of two or more numbers.

use std::cmp::Ordering;

use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::Function;

use super::extreme;

/// Takes two or more arguments. The result is an int if every argument is an
/// int, compared exactly; once a float is involved, every argument is
/// compared as a float, and a NaN argument is passed over unless all are NaN.
pub struct Min;

impl Function for Min {
    fn name(&self) -> &'static str {
        "min"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("a", Param::Number), ("b", Param::Number)],
            variadic: true,
            returns: Returns::LikeArguments,
        }
    }

    fn summary(&self) -> &'static str {
        "The smallest of two or more numbers: an int if all are ints, else a float."
    }

    fn examples(&self) -> Vec<Example> {
        vec![
            Example {
                call: "min(3, 1, 2)",
                args: vec![Value::Int(3), Value::Int(1), Value::Int(2)],
                result: Value::Int(1),
            },
            Example { call: "min(2, 1.5)", args: vec![Value::Int(2), Value::Float(1.5)], result: Value::Float(1.5) },
            Example { call: "min(-1, 4)", args: vec![Value::Int(-1), Value::Int(4)], result: Value::Int(-1) },
            // `retries` is an optional field that is absent: `??` gives it a
            // default, since an optional field cannot be passed directly.
            Example { call: "min(retries ?? 0, 4)", args: vec![Value::Int(0), Value::Int(4)], result: Value::Int(0) },
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        extreme(args, Ordering::Less).unwrap_or(Value::Null)
    }
}
