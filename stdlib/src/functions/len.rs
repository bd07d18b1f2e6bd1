//! `len(text)`: the length of a string in characters.

use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::Function;

use super::string_arg;

/// Counts Unicode scalar values (Rust `char`s), not bytes, so `"café"` has
/// four; a character built from several code points, such as an emoji with a
/// skin tone, counts each of them.
pub struct Len;

impl Function for Len {
    fn name(&self) -> &'static str {
        "len"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("text", Param::Exactly(Type::String))],
            variadic: false,
            returns: Returns::Exactly(Type::Int),
        }
    }

    fn summary(&self) -> &'static str {
        "The number of characters (Unicode scalar values, not bytes) in a string."
    }

    fn examples(&self) -> Vec<Example> {
        vec![
            Example { call: "len(\"TRD-0042\")", args: vec![Value::String("TRD-0042".into())], result: Value::Int(8) },
            Example { call: "len(\"café\")", args: vec![Value::String("café".into())], result: Value::Int(4) },
            Example { call: "len(\"\")", args: vec![Value::String(String::new())], result: Value::Int(0) },
            // `nickname` is an optional field that is absent: `??` gives it a
            // default, since an optional field cannot be passed directly.
            Example {
                call: "len(nickname ?? \"anonymous\")",
                args: vec![Value::String("anonymous".into())],
                result: Value::Int(9),
            },
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        string_arg(args, 0).and_then(|text| i64::try_from(text.chars().count()).ok()).map_or(Value::Null, Value::Int)
    }
}
