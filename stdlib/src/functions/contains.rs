//! `contains(text, part)`: whether a string contains another.

use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::Function;

use super::string_arg;

/// Compares characters exactly: case-sensitive, with no Unicode
/// normalization. Combine with `lower` to ignore case.
pub struct Contains;

impl Function for Contains {
    fn name(&self) -> &'static str {
        "contains"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("text", Param::Exactly(Type::String)), ("part", Param::Exactly(Type::String))],
            variadic: false,
            returns: Returns::Exactly(Type::Bool),
        }
    }

    fn summary(&self) -> &'static str {
        "Whether `part` occurs anywhere in the string; case-sensitive."
    }

    fn examples(&self) -> Vec<Example> {
        vec![
            Example {
                call: "contains(\"FX Swap Desk\", \"Swap\")",
                args: vec![Value::String("FX Swap Desk".into()), Value::String("Swap".into())],
                result: Value::Bool(true),
            },
            Example {
                call: "contains(\"FX Swap Desk\", \"swap\")",
                args: vec![Value::String("FX Swap Desk".into()), Value::String("swap".into())],
                result: Value::Bool(false),
            },
            Example {
                call: "contains(\"book 12\", \"\")",
                args: vec![Value::String("book 12".into()), Value::String("".into())],
                result: Value::Bool(true),
            },
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        match (string_arg(args, 0), string_arg(args, 1)) {
            (Some(text), Some(part)) => Value::Bool(text.contains(part)),
            _ => Value::Null,
        }
    }
}
