//! `upper(text)`: a string in upper case.

use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::Function;

use super::string_arg;

/// Uses Unicode's full case mapping ([`str::to_uppercase`]), independent of
/// any locale, so a result may be longer than its input (`ß` becomes `SS`).
pub struct Upper;

impl Function for Upper {
    fn name(&self) -> &'static str {
        "upper"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("text", Param::Exactly(Type::String))],
            variadic: false,
            returns: Returns::Exactly(Type::String),
        }
    }

    fn summary(&self) -> &'static str {
        "The string in upper case, by Unicode's case rules."
    }

    fn examples(&self) -> Vec<Example> {
        vec![
            Example {
                call: "upper(\"gbp\")",
                args: vec![Value::String("gbp".into())],
                result: Value::String("GBP".into()),
            },
            Example {
                call: "upper(\"straße\")",
                args: vec![Value::String("straße".into())],
                result: Value::String("STRASSE".into()),
            },
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        string_arg(args, 0).map_or(Value::Null, |text| Value::String(text.to_uppercase()))
    }
}
