//! Trouble `mon demo` plants so that the wallboard shows a broken file
//! SLA within a minute of start on any day of the week, weekends and
//! holidays included, when the example feeds are rightly idle.
//!
//! The examples' file workflows keep their real schedules (08:00 London
//! on weekdays, 18:30 New York on weekdays): a demo started on a Saturday
//! sees them IDLE, which is what they should say then. So the demo adds
//! one workflow of its own, written at start: a reference-data file due
//! every day at the first whole minute after the start (UTC), which the
//! generator never delivers. Its occurrence (keyed by the date) turns red
//! at that deadline, and its tile says why: "red: `missing > 0` holds: 1
//! missing (oldest 2026-12-05, ...)".
//!
//! It must not depend on the rules it is added to: it declares its own
//! event types, so it compiles beside any rule set, and the generator
//! knows nothing of it (nothing to deliver is the point).

use super::MINUTE;

/// The planted workflow's name, as the wallboard shows it.
pub const WORKFLOW: &str = "demo_reference_file";

/// The file name the rules are written to, beside the demo's rules.
pub const FILE: &str = "demo_planted.mon";

/// The planted deadline: the first whole minute after `start_ms`, so at
/// most a minute after the start, and never before it (an occurrence
/// whose deadline is before monitoring starts is not watched).
pub fn deadline(start_ms: i64) -> i64 {
    start_ms.div_euclid(MINUTE) * MINUTE + MINUTE
}

/// The planted workflow for a demo started at `start_ms`.
pub fn rules(start_ms: i64) -> String {
    let due = deadline(start_ms);
    let minute_of_day = due.rem_euclid(24 * 60 * MINUTE) / MINUTE;
    let (hour, minute) = (minute_of_day / 60, minute_of_day % 60);
    format!(
        "// Planted by `mon demo` at its start: a file that never comes, so that the\n\
         // wallboard shows a missed file SLA on any day (src/demo/planted.rs).\n\
         \n\
         event reference_file_received {{ path: string }}\n\
         event reference_file_loaded {{ rows: int }}\n\
         \n\
         /// The reference-data file, due every day at {hour:02}:{minute:02} UTC (the\n\
         /// first minute after the demo started); the generator never sends it.\n\
         workflow {WORKFLOW} {{\n\
         \x20 timezone UTC\n\
         \x20 severity high\n\
         \x20 runbook \"https://runbooks.example.com/data/reference-file\"\n\
         \x20 expect reference_file_received by {hour:02}:{minute:02} every day\n\
         \x20 then reference_file_loaded within 15m\n\
         }}\n"
    )
}

/// Writes the demo's rules into `into`: a copy of the rules in `from`
/// (files and folders, as the loader groups them) and the planted file.
pub fn write(from: &std::path::Path, into: &std::path::Path, start_ms: i64) -> std::io::Result<()> {
    copy_tree(from, into)?;
    std::fs::write(into.join(FILE), rules(start_ms))
}

fn copy_tree(from: &std::path::Path, into: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(into)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = into.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
