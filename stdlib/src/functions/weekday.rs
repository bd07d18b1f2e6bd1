//! `weekday(timestamp, zone)`: the day of the week of an instant in a time
//! zone.

use chrono::Datelike;
use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::Function;

use super::{check_zone_literal, local_time};

/// Days are the lower-case three-letter English abbreviations `"mon"`,
/// `"tue"`, `"wed"`, `"thu"`, `"fri"`, `"sat"` and `"sun"`: short to write in
/// rules (`weekday(at, "Europe/London") in ["sat", "sun"]`), the same in every
/// locale, and independent of which day a week starts on, which a number
/// would not be.
pub struct Weekday;

impl Function for Weekday {
    fn name(&self) -> &'static str {
        "weekday"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("timestamp", Param::Exactly(Type::Timestamp)), ("zone", Param::Exactly(Type::String))],
            variadic: false,
            returns: Returns::Exactly(Type::String),
        }
    }

    fn summary(&self) -> &'static str {
        "The day of the week of a timestamp in an IANA time zone, as \"mon\", \"tue\", ... \"sun\"."
    }

    fn check_literal(&self, index: usize, value: &Value) -> Result<(), String> {
        check_zone_literal(index, value)
    }

    fn examples(&self) -> Vec<Example> {
        let example = |call, ms, zone: &str, day: &str| Example {
            call,
            args: vec![Value::Timestamp(ms), Value::String(zone.into())],
            result: Value::String(day.into()),
        };
        vec![
            example("weekday(2026-03-02T08:00:00Z, \"UTC\")", 1_772_438_400_000, "UTC", "mon"),
            // Saturday evening in London is already Sunday morning in Tokyo.
            example("weekday(2026-03-07T23:30:00Z, \"Europe/London\")", 1_772_926_200_000, "Europe/London", "sat"),
            example("weekday(2026-03-07T23:30:00Z, \"Asia/Tokyo\")", 1_772_926_200_000, "Asia/Tokyo", "sun"),
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        local_time(args).map_or(Value::Null, |t| Value::String(day_name(t.weekday()).into()))
    }
}

fn day_name(day: chrono::Weekday) -> &'static str {
    match day {
        chrono::Weekday::Mon => "mon",
        chrono::Weekday::Tue => "tue",
        chrono::Weekday::Wed => "wed",
        chrono::Weekday::Thu => "thu",
        chrono::Weekday::Fri => "fri",
        chrono::Weekday::Sat => "sat",
        chrono::Weekday::Sun => "sun",
    }
}
