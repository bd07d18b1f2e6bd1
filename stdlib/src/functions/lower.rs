//! `lower(text)`: a string in lower case.

use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::Function;

use super::string_arg;

/// Uses Unicode's full case mapping ([`str::to_lowercase`]), independent of
/// any locale.
pub struct Lower;

impl Function for Lower {
    fn name(&self) -> &'static str {
        "lower"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("text", Param::Exactly(Type::String))],
            variadic: false,
            returns: Returns::Exactly(Type::String),
        }
    }

    fn summary(&self) -> &'static str {
        "The string in lower case, by Unicode's case rules."
    }

    fn examples(&self) -> Vec<Example> {
        vec![
            Example {
                call: "lower(\"ABC\")",
                args: vec![Value::String("ABC".into())],
                result: Value::String("abc".into()),
            },
            Example {
                call: "lower(\"Book-7 ÉTÉ\")",
                args: vec![Value::String("Book-7 ÉTÉ".into())],
                result: Value::String("book-7 été".into()),
            },
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        string_arg(args, 0).map_or(Value::Null, |text| Value::String(text.to_lowercase()))
    }
}
