//! The interface between the checker and the built-in functions.
//!
//! The functions themselves live in `mon-stdlib`, below this crate in the
//! workspace; the caller hands the compiler a [`Functions`] registry, so the
//! checker knows signatures without depending on implementations.

use crate::ir::Value;
use crate::types::Type;

/// What a parameter accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    Exactly(Type),
    /// `int` or `float`.
    Number,
    /// Any type; all `Same` parameters of one call must agree.
    Same,
}

/// What a call returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Returns {
    Exactly(Type),
    /// The type of the `Same`/`Number` arguments (`abs`, `min`, `max`).
    LikeArguments,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub params: Vec<(&'static str, Param)>,
    /// The last parameter may repeat (`min(a, b, c)`).
    pub variadic: bool,
    pub returns: Returns,
}

pub trait Function: Send + Sync {
    fn name(&self) -> &'static str;
    fn signature(&self) -> Signature;
    /// One sentence for hover and docs.
    fn summary(&self) -> &'static str;
    /// Checks an argument written as a literal (a regex, a zone name) at
    /// compile time; `Err` says what is wrong with it.
    fn check_literal(&self, _index: usize, _value: &Value) -> Result<(), String> {
        Ok(())
    }
    /// Worked examples: documentation that doubles as tests.
    fn examples(&self) -> Vec<Example> {
        Vec::new()
    }
    /// Evaluates the function. Arguments have been checked against the
    /// signature; `Null` arguments are handled by the function.
    fn call(&self, args: &[Value]) -> Value;
}

/// `call` as written in a rule, the argument values, and the result.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub call: &'static str,
    pub args: Vec<Value>,
    pub result: Value,
}

pub trait Functions: Send + Sync {
    fn get(&self, name: &str) -> Option<&dyn Function>;
    fn names(&self) -> Vec<&'static str>;
}

/// No functions at all: for callers that check rules without a stdlib.
pub struct NoFunctions;

impl Functions for NoFunctions {
    fn get(&self, _name: &str) -> Option<&dyn Function> {
        None
    }
    fn names(&self) -> Vec<&'static str> {
        Vec::new()
    }
}
