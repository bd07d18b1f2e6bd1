//! Compile-time checks of literal arguments: regex patterns and zone names.

use mon_compiler::ir::Value;
use mon_compiler::{Function, Functions};
use mon_stdlib::registry;

fn function(name: &str) -> &'static dyn Function {
    registry().get(name).unwrap_or_else(|| panic!("`{name}` is not registered"))
}

fn string(s: &str) -> Value {
    Value::String(s.into())
}

#[test]
fn a_bad_regex_is_an_error() {
    let matches = function("matches");
    assert_eq!(matches.check_literal(1, &string("^TRD-[0-9]+$")), Ok(()));
    let error = matches.check_literal(1, &string("^TRD-([0-9]+$")).unwrap_err();
    assert_eq!(error, "invalid regex: unclosed group at character 6");
    let error = matches.check_literal(1, &string("[z-a]")).unwrap_err();
    assert!(error.contains("invalid character class range"), "{error}");
}

#[test]
fn only_the_pattern_is_checked_as_a_regex() {
    // The text being searched may be any string.
    assert_eq!(function("matches").check_literal(0, &string("(")), Ok(()));
}

#[test]
fn a_bad_zone_is_an_error() {
    for name in ["date", "hour", "weekday"] {
        let f = function(name);
        assert_eq!(f.check_literal(1, &string("Europe/London")), Ok(()));
        assert_eq!(f.check_literal(1, &string("UTC")), Ok(()));
        assert_eq!(
            f.check_literal(1, &string("Mars/Olympus_Mons")),
            Err("unknown time zone `Mars/Olympus_Mons`".into())
        );
        assert_eq!(
            f.check_literal(1, &string("Europe/Londn")),
            Err("unknown time zone `Europe/Londn`; did you mean `Europe/London`?".into())
        );
    }
}

#[test]
fn a_bad_zone_at_run_time_gives_null() {
    let noon = Value::Timestamp(1_772_452_800_000);
    for name in ["date", "hour", "weekday"] {
        assert_eq!(function(name).call(&[noon.clone(), string("Europe/Londn")]), Value::Null);
    }
}

#[test]
fn functions_without_literal_rules_accept_anything() {
    for name in ["len", "lower", "upper", "starts_with", "ends_with", "contains", "abs", "min", "max"] {
        assert_eq!(function(name).check_literal(0, &string("(")), Ok(()));
        assert_eq!(function(name).check_literal(1, &string("Nowhere/At_All")), Ok(()));
    }
}
