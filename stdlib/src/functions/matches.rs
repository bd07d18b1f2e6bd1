//! `matches(text, pattern)`: whether a regular expression matches a string.
//!
//! Patterns use the `regex` crate's syntax, which guarantees matching in time
//! linear in the text (no backreferences or look-around). The match is a
//! search: the pattern may match anywhere, so `^` and `$` anchor it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::Function;
use regex::Regex;

use super::string_arg;

/// How many distinct patterns the cache holds before it starts over.
const CACHE_LIMIT: usize = 256;

/// Holds the compiled patterns seen so far, so each is compiled once.
#[derive(Default)]
pub struct Matches {
    /// `None` remembers a pattern that does not compile. Entries are `Arc`s
    /// because cloning a `Regex` would give the clone a fresh, empty pool of
    /// match caches; sharing one `Regex` keeps its warmed-up caches.
    cache: Mutex<HashMap<String, Option<Arc<Regex>>>>,
}

impl Matches {
    /// The compiled form of `pattern`, or `None` if it is not a valid regex.
    fn compiled(&self, pattern: &str) -> Option<Arc<Regex>> {
        // Why: a panic while the lock was held cannot leave the map
        // half-updated in a way that matters; at worst an entry is missing.
        let lock = || self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = lock().get(pattern) {
            return found.clone();
        }
        // Compile outside the lock, so other threads keep matching; two
        // threads may both compile a new pattern, and one result wins.
        let compiled = Regex::new(pattern).ok().map(Arc::new);
        let mut cache = lock();
        // Why: patterns are nearly always literals, so a full cache means
        // patterns built from event data; forgetting them all keeps memory
        // bounded, and the few literal patterns are soon compiled again.
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), compiled.clone());
        compiled
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// What is wrong with a pattern, on one line: the regex crate's own message
/// spans several lines, with the pattern and a caret under the fault.
fn describe_error(pattern: &str, error: &regex::Error) -> String {
    use regex_syntax::Error as Syntax;
    match regex_syntax::Parser::new().parse(pattern) {
        Err(Syntax::Parse(e)) => format!("invalid regex: {} at character {}", e.kind(), e.span().start.column),
        Err(Syntax::Translate(e)) => format!("invalid regex: {} at character {}", e.kind(), e.span().start.column),
        // The pattern parses but does not compile, for example because it
        // is too big; the regex crate's message says so on one line.
        _ => format!("invalid regex: {}", error.to_string().trim()),
    }
}

impl Function for Matches {
    fn name(&self) -> &'static str {
        "matches"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("text", Param::Exactly(Type::String)), ("pattern", Param::Exactly(Type::String))],
            variadic: false,
            returns: Returns::Exactly(Type::Bool),
        }
    }

    fn summary(&self) -> &'static str {
        "Whether the regular expression `pattern` matches anywhere in the string; anchor it with `^` and `$` to match the whole string."
    }

    fn check_literal(&self, index: usize, value: &Value) -> Result<(), String> {
        match value {
            Value::String(pattern) if index == 1 => {
                Regex::new(pattern).map(drop).map_err(|error| describe_error(pattern, &error))
            }
            _ => Ok(()),
        }
    }

    fn examples(&self) -> Vec<Example> {
        let example = |call, text: &str, pattern: &str, result| Example {
            call,
            args: vec![Value::String(text.into()), Value::String(pattern.into())],
            result: Value::Bool(result),
        };
        vec![
            example("matches(\"TRD-0042\", \"^TRD-[0-9]+$\")", "TRD-0042", "^TRD-[0-9]+$", true),
            example("matches(\"TRD-0042-X\", \"^TRD-[0-9]+$\")", "TRD-0042-X", "^TRD-[0-9]+$", false),
            // Unanchored: a match anywhere will do.
            example("matches(\"book 12\", \"[0-9]\")", "book 12", "[0-9]", true),
            example("matches(\"Swap\", \"(?i)^swap$\")", "Swap", "(?i)^swap$", true),
        ]
    }

    /// A pattern that is not a literal and is not a valid regex gives `Null`.
    fn call(&self, args: &[Value]) -> Value {
        match (string_arg(args, 0), string_arg(args, 1)) {
            (Some(text), Some(pattern)) => {
                self.compiled(pattern).map_or(Value::Null, |re| Value::Bool(re.is_match(text)))
            }
            _ => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: &Matches, text: &str, pattern: &str) -> Value {
        f.call(&[Value::String(text.into()), Value::String(pattern.into())])
    }

    #[test]
    fn compiles_each_pattern_once() {
        let f = Matches::default();
        assert_eq!(call(&f, "abc", "b"), Value::Bool(true));
        assert_eq!(call(&f, "xyz", "b"), Value::Bool(false));
        assert_eq!(f.cached(), 1);
        assert_eq!(call(&f, "abc", "c$"), Value::Bool(true));
        assert_eq!(f.cached(), 2);
    }

    #[test]
    fn an_invalid_pattern_at_run_time_gives_null_and_is_remembered() {
        let f = Matches::default();
        assert_eq!(call(&f, "abc", "(b"), Value::Null);
        assert_eq!(call(&f, "abc", "(b"), Value::Null);
        assert_eq!(f.cached(), 1);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let f = Matches::default();
        for i in 0..CACHE_LIMIT * 2 + 1 {
            assert_eq!(call(&f, "id-7", &format!("^id-{i}$")), Value::Bool(i == 7));
        }
        assert!(f.cached() <= CACHE_LIMIT);
    }

    #[test]
    fn errors_are_one_line() {
        for pattern in ["(abc", "a{2,1}", "[z-a]", "\\p{Nope}", "*"] {
            let error = f_check(pattern).unwrap_err();
            assert!(!error.contains('\n'), "{pattern}: {error}");
            assert!(error.starts_with("invalid regex: "), "{pattern}: {error}");
        }
        assert_eq!(f_check("(abc").unwrap_err(), "invalid regex: unclosed group at character 1");
    }

    fn f_check(pattern: &str) -> Result<(), String> {
        Matches::default().check_literal(1, &Value::String(pattern.into()))
    }
}
