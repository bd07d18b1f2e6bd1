//! `date(timestamp, zone)`: the calendar date of an instant in a time zone.

use chrono::Datelike;
use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::Function;

use super::{check_zone_literal, local_time};

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01, the
/// epoch of [`Value::Date`].
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The date on a wall calendar in `zone` at the instant `timestamp`: near
/// midnight, the same instant falls on different dates in different zones.
pub struct Date;

impl Function for Date {
    fn name(&self) -> &'static str {
        "date"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("timestamp", Param::Exactly(Type::Timestamp)), ("zone", Param::Exactly(Type::String))],
            variadic: false,
            returns: Returns::Exactly(Type::Date),
        }
    }

    fn summary(&self) -> &'static str {
        "The calendar date of a timestamp in an IANA time zone such as \"Europe/London\"."
    }

    fn check_literal(&self, index: usize, value: &Value) -> Result<(), String> {
        check_zone_literal(index, value)
    }

    fn examples(&self) -> Vec<Example> {
        let example = |call, ms, zone: &str, result| Example {
            call,
            args: vec![Value::Timestamp(ms), Value::String(zone.into())],
            result,
        };
        vec![
            // 2026-03-02
            example(
                "date(2026-03-02T08:00:00Z, \"Europe/London\")",
                1_772_438_400_000,
                "Europe/London",
                Value::Date(20_514),
            ),
            // Berlin is on summer time (UTC+2): already 2026-07-02 there.
            example(
                "date(2026-07-01T23:30:00Z, \"Europe/Berlin\")",
                1_782_948_600_000,
                "Europe/Berlin",
                Value::Date(20_636),
            ),
            // New York (UTC-4 since 2026-03-08) is still on 2026-03-28.
            example(
                "date(2026-03-29T01:30:00Z, \"America/New_York\")",
                1_774_747_800_000,
                "America/New_York",
                Value::Date(20_540),
            ),
            // A zone name taken from an event that is not a zone at all.
            example("date(booked_at, desk_zone)", 1_774_747_800_000, "Mars/Olympus_Mons", Value::Null),
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        local_time(args)
            .map_or(Value::Null, |t| Value::Date(t.date_naive().num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE))
    }
}
