//! `starts_with(text, prefix)`: whether a string begins with another.

use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::Function;

use super::string_arg;

/// Compares characters exactly: case-sensitive, with no Unicode
/// normalization. Combine with `lower` to ignore case.
pub struct StartsWith;

impl Function for StartsWith {
    fn name(&self) -> &'static str {
        "starts_with"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("text", Param::Exactly(Type::String)), ("prefix", Param::Exactly(Type::String))],
            variadic: false,
            returns: Returns::Exactly(Type::Bool),
        }
    }

    fn summary(&self) -> &'static str {
        "Whether the string begins with `prefix`; case-sensitive."
    }

    fn examples(&self) -> Vec<Example> {
        vec![
            Example {
                call: "starts_with(\"TRD-0042\", \"TRD-\")",
                args: vec![Value::String("TRD-0042".into()), Value::String("TRD-".into())],
                result: Value::Bool(true),
            },
            Example {
                call: "starts_with(\"TRD-0042\", \"trd-\")",
                args: vec![Value::String("TRD-0042".into()), Value::String("trd-".into())],
                result: Value::Bool(false),
            },
            Example {
                call: "starts_with(\"TRD-0042\", \"\")",
                args: vec![Value::String("TRD-0042".into()), Value::String("".into())],
                result: Value::Bool(true),
            },
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        match (string_arg(args, 0), string_arg(args, 1)) {
            (Some(text), Some(prefix)) => Value::Bool(text.starts_with(prefix)),
            _ => Value::Null,
        }
    }
}
