//! The registry of diagnostic codes. A code, once published, is never
//! reused for a different problem: retire it and take a new one.
//!
//! Ranges: `E1xx` syntax, `E2xx` names, `E3xx` types, `E4xx` workflow
//! structure, `E5xx` built-in functions. Every code has a page in
//! `docs/errors/<code>.md` and at least one case in `tests/ui/`; a test
//! checks both.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code {
    pub id: &'static str,
    pub title: &'static str,
}

macro_rules! codes {
    ($($name:ident = $id:literal, $title:literal;)*) => {
        $(pub const $name: Code = Code { id: $id, title: $title };)*
        /// Every code, in order.
        pub const ALL: &[Code] = &[$($name),*];
    };
}

codes! {
    E101 = "E101", "unexpected token";
    E102 = "E102", "invalid duration";
    E103 = "E103", "unterminated string";
    E104 = "E104", "invalid escape in string";
    E105 = "E105", "reserved word used as a name";
    E106 = "E106", "unclosed block";
    E107 = "E107", "invalid time of day";
    E108 = "E108", "invalid date or timestamp";
    E109 = "E109", "number out of range";
    E110 = "E110", "key source without a key name";
    E111 = "E111", "nested too deeply";

    E201 = "E201", "unknown event";
    E202 = "E202", "unknown field";
    E203 = "E203", "unknown stage";
    E204 = "E204", "unknown calendar";
    E205 = "E205", "unknown channel";
    E206 = "E206", "unknown time zone";
    E207 = "E207", "unknown enum value";
    E208 = "E208", "duplicate declaration";
    E209 = "E209", "duplicate name in a declaration";
    E210 = "E210", "unknown workflow";
    E211 = "E211", "unknown type";
    E212 = "E212", "invalid choice";
    E213 = "E213", "cannot read JSON Schema";
    E214 = "E214", "unsupported JSON Schema";

    E301 = "E301", "type mismatch";
    E302 = "E302", "condition is not boolean";
    E303 = "E303", "value has the wrong type";
    E304 = "E304", "key field types differ";
    E305 = "E305", "optional value used where a value is required";
    E306 = "E306", "required field missing from an event literal";

    E401 = "E401", "key field missing from an event";
    E402 = "E402", "unreachable stage";
    E403 = "E403", "step can never match";
    E404 = "E404", "key on a scheduled workflow";
    E405 = "E405", "workflow has no start step";
    E406 = "E406", "step has no place in the graph";
    E407 = "E407", "workflow has no key";
    E408 = "E408", "conflicting timing";
    E409 = "E409", "schedule clause outside a scheduled start";
    E410 = "E410", "step after a closing stage";
    E411 = "E411", "dependency with a different key";
    E412 = "E412", "group field missing from every event";
    E413 = "E413", "cohort field is not a date";
    E414 = "E414", "setting given twice";
    E415 = "E415", "field of a step that does not come before";
    E416 = "E416", "workflow has too many steps";
    E417 = "E417", "test clock moves backwards";
    E418 = "E418", "escalation to a channel already notified";

    E501 = "E501", "unknown function";
    E502 = "E502", "wrong number of arguments";
    E503 = "E503", "argument has the wrong type";
    E504 = "E504", "invalid literal argument";
}
