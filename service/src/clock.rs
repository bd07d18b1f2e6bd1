//! The wall clock, read in one place. The engine never reads it: the
//! processor reads it here and hands it to the engine as a journaled
//! `Tick`, so a replay sees the same instants (ARCHITECTURE.md rule 1).

/// Milliseconds since the Unix epoch, UTC; 0 if the system clock is set
/// before 1970.
pub fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
