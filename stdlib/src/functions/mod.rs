//! The built-in functions, one per file, and the helpers they share.
//!
//! Every function follows the same rules, stated here once:
//!
//! - **Null in, null out.** If any argument is `Null` (an optional field that
//!   is absent), the result is `Null`; `??` in the rule supplies a default.
//! - **Bad values at run time give `Null`, never a panic.** A time zone name
//!   or a regex that is a literal is checked at compile time by
//!   [`Function::check_literal`]; one that comes from an event and turns out
//!   to be invalid makes the result `Null`. So does an argument of a type the
//!   signature does not allow, which the checker already rules out.
//! - **Time zones are IANA names** (`"Europe/London"`, `"UTC"`) from
//!   chrono-tz's database, spelled exactly. Timestamps are instants in UTC;
//!   `date`, `hour` and `weekday` read them on the local clock of the zone,
//!   so daylight saving time follows the zone's rules.
//!
//! To add a function, write `NAME.rs` with a struct implementing
//! [`Function`], including a summary and worked examples, and add it to
//! [`all`]; `tests/examples.rs` then runs its examples.

use std::cmp::Ordering;

use chrono::DateTime;
use chrono_tz::Tz;
use mon_compiler::ir::Value;
use mon_compiler::Function;

mod abs;
mod contains;
mod date;
mod ends_with;
mod hour;
mod len;
mod lower;
mod matches;
mod max;
mod min;
mod starts_with;
mod upper;
mod weekday;

pub use abs::Abs;
pub use contains::Contains;
pub use date::Date;
pub use ends_with::EndsWith;
pub use hour::Hour;
pub use len::Len;
pub use lower::Lower;
pub use matches::Matches;
pub use max::Max;
pub use min::Min;
pub use starts_with::StartsWith;
pub use upper::Upper;
pub use weekday::Weekday;

/// Every built-in function, listed by hand so that adding one is a visible
/// change here.
pub fn all() -> Vec<Box<dyn Function>> {
    vec![
        Box::new(Len),
        Box::new(Lower),
        Box::new(Upper),
        Box::new(StartsWith),
        Box::new(EndsWith),
        Box::new(Contains),
        Box::new(Matches::default()),
        Box::new(Date),
        Box::new(Hour),
        Box::new(Weekday),
        Box::new(Abs),
        Box::new(Min),
        Box::new(Max),
    ]
}

/// The argument at `index` as a string; `None` if it is `Null`, missing or
/// of another type.
fn string_arg(args: &[Value], index: usize) -> Option<&str> {
    match args.get(index) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// The argument at `index` as milliseconds since the Unix epoch.
fn timestamp_arg(args: &[Value], index: usize) -> Option<i64> {
    match args.get(index) {
        Some(Value::Timestamp(ms)) => Some(*ms),
        _ => None,
    }
}

/// The first two arguments, a timestamp and a zone name, as a local time;
/// `None` for `Null`, an unknown zone or a timestamp out of chrono's range.
fn local_time(args: &[Value]) -> Option<DateTime<Tz>> {
    let ms = timestamp_arg(args, 0)?;
    let zone: Tz = string_arg(args, 1)?.parse().ok()?;
    Some(DateTime::from_timestamp_millis(ms)?.with_timezone(&zone))
}

/// `check_literal` for functions whose second argument is a zone name.
fn check_zone_literal(index: usize, value: &Value) -> Result<(), String> {
    match value {
        Value::String(name) if index == 1 && name.parse::<Tz>().is_err() => {
            Err(match mon_compiler::suggest::nearest_zone(name) {
                Some(near) => format!("unknown time zone `{name}`; did you mean `{near}`?"),
                None => format!("unknown time zone `{name}`"),
            })
        }
        _ => Ok(()),
    }
}

/// The smallest (`want` is `Less`) or largest (`Greater`) of the arguments:
/// an int if every argument is an int, else a float. `None` if there are no
/// arguments or one is not a number (`Null` included).
///
/// Ints are compared as ints, so large values keep their precision; once a
/// float is involved, every argument is compared as a float. A NaN argument
/// is passed over, as [`f64::min`] and [`f64::max`] do, unless all are NaN.
fn extreme(args: &[Value], want: Ordering) -> Option<Value> {
    if args.iter().all(|a| matches!(a, Value::Int(_))) {
        let ints = args.iter().filter_map(|a| match a {
            Value::Int(i) => Some(*i),
            _ => None,
        });
        return ints.reduce(|best, i| if i.cmp(&best) == want { i } else { best }).map(Value::Int);
    }
    let mut best: Option<f64> = None;
    for arg in args {
        let x = match arg {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            _ => return None,
        };
        best = Some(match (best, want) {
            (None, _) => x,
            (Some(b), Ordering::Less) => b.min(x),
            (Some(b), _) => b.max(x),
        });
    }
    best.map(Value::Float)
}
