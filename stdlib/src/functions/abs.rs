//! `abs(number)`: the absolute value of an int or a float.

use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::Function;

/// Keeps the argument's type. The one int with no absolute value,
/// -9223372036854775808, gives `Null` rather than overflowing.
pub struct Abs;

impl Function for Abs {
    fn name(&self) -> &'static str {
        "abs"
    }

    fn signature(&self) -> Signature {
        Signature { params: vec![("number", Param::Number)], variadic: false, returns: Returns::LikeArguments }
    }

    fn summary(&self) -> &'static str {
        "The absolute value of a number: an int for an int, a float for a float."
    }

    fn examples(&self) -> Vec<Example> {
        vec![
            Example { call: "abs(-7)", args: vec![Value::Int(-7)], result: Value::Int(7) },
            Example { call: "abs(42)", args: vec![Value::Int(42)], result: Value::Int(42) },
            Example { call: "abs(-3.25)", args: vec![Value::Float(-3.25)], result: Value::Float(3.25) },
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        match args.first() {
            Some(Value::Int(i)) => i.checked_abs().map_or(Value::Null, Value::Int),
            Some(Value::Float(f)) => Value::Float(f.abs()),
            _ => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_int_has_no_absolute_value() {
        assert_eq!(Abs.call(&[Value::Int(i64::MIN)]), Value::Null);
        assert_eq!(Abs.call(&[Value::Int(i64::MIN + 1)]), Value::Int(i64::MAX));
    }

    #[test]
    fn null_gives_null() {
        assert_eq!(Abs.call(&[Value::Null]), Value::Null);
    }
}
