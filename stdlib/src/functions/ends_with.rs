//! `ends_with(text, suffix)`: whether a string ends with another.

use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::Function;

use super::string_arg;

/// Compares characters exactly: case-sensitive, with no Unicode
/// normalization. Combine with `lower` to ignore case.
pub struct EndsWith;

impl Function for EndsWith {
    fn name(&self) -> &'static str {
        "ends_with"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("text", Param::Exactly(Type::String)), ("suffix", Param::Exactly(Type::String))],
            variadic: false,
            returns: Returns::Exactly(Type::Bool),
        }
    }

    fn summary(&self) -> &'static str {
        "Whether the string ends with `suffix`; case-sensitive."
    }

    fn examples(&self) -> Vec<Example> {
        vec![
            Example {
                call: "ends_with(\"daily_feed.csv\", \".csv\")",
                args: vec![Value::String("daily_feed.csv".into()), Value::String(".csv".into())],
                result: Value::Bool(true),
            },
            Example {
                call: "ends_with(\"daily_feed.csv.tmp\", \".csv\")",
                args: vec![Value::String("daily_feed.csv.tmp".into()), Value::String(".csv".into())],
                result: Value::Bool(false),
            },
            // `source` is an optional field that is absent: `??` gives it a
            // default, since an optional field cannot be passed directly.
            Example {
                call: "ends_with(source ?? \"\", \".csv\")",
                args: vec![Value::String(String::new()), Value::String(".csv".into())],
                result: Value::Bool(false),
            },
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        match (string_arg(args, 0), string_arg(args, 1)) {
            (Some(text), Some(suffix)) => Value::Bool(text.ends_with(suffix)),
            _ => Value::Null,
        }
    }
}
