//! `hour(timestamp, zone)`: the hour of an instant on a time zone's clock.

use chrono::Timelike;
use mon_compiler::builtins::{Example, Param, Returns, Signature};
use mon_compiler::ir::Value;
use mon_compiler::types::Type;
use mon_compiler::Function;

use super::{check_zone_literal, local_time};

/// The hour a wall clock in `zone` shows at the instant `timestamp`, 0 to 23.
/// On the day clocks go forward an hour is skipped (no instant has hour 1 in
/// London on 2026-03-29); on the day they go back an hour occurs twice.
pub struct Hour;

impl Function for Hour {
    fn name(&self) -> &'static str {
        "hour"
    }

    fn signature(&self) -> Signature {
        Signature {
            params: vec![("timestamp", Param::Exactly(Type::Timestamp)), ("zone", Param::Exactly(Type::String))],
            variadic: false,
            returns: Returns::Exactly(Type::Int),
        }
    }

    fn summary(&self) -> &'static str {
        "The hour, 0 to 23, of a timestamp on the local clock of an IANA time zone such as \"Europe/London\"."
    }

    fn check_literal(&self, index: usize, value: &Value) -> Result<(), String> {
        check_zone_literal(index, value)
    }

    fn examples(&self) -> Vec<Example> {
        let example = |call, ms, zone: &str, hour| Example {
            call,
            args: vec![Value::Timestamp(ms), Value::String(zone.into())],
            result: Value::Int(hour),
        };
        vec![
            // 00:30 GMT, half an hour before the clocks go forward.
            example("hour(2026-03-29T00:30:00Z, \"Europe/London\")", 1_774_744_200_000, "Europe/London", 0),
            // One hour later it is 02:30 BST.
            example("hour(2026-03-29T01:30:00Z, \"Europe/London\")", 1_774_747_800_000, "Europe/London", 2),
            // 01:30 GMT, after the clocks went back from 01:59 BST.
            example("hour(2026-10-25T01:30:00Z, \"Europe/London\")", 1_792_891_800_000, "Europe/London", 1),
            example("hour(2026-03-02T08:00:00Z, \"Asia/Tokyo\")", 1_772_438_400_000, "Asia/Tokyo", 17),
        ]
    }

    fn call(&self, args: &[Value]) -> Value {
        local_time(args).map_or(Value::Null, |t| Value::Int(i64::from(t.hour())))
    }
}
