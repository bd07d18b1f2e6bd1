//! What the Kafka clients say is wrong, told to the log at a bounded rate
//! and kept whole for readiness and the metrics.
//!
//! librdkafka reports a failure on every retry: with a wrong broker address
//! that was two warnings about 20 times a second (about 1,400 lines in
//! 30 s), which buries every other line. Here each kind of problem (an
//! error code, or the facility of a librdkafka log line) is logged the
//! first time, then at most once per [`REMIND_EVERY`] with the number of
//! repeats left out since its last line. `/readyz` carries the latest error
//! with how many there were and since when; `mon_kafka_errors_total` counts
//! them by code. When the consumer is given its partitions the episode is
//! over: that is logged once, and a new failure is logged at once again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

use crate::metrics::{ErrorLabels, Metrics};

/// The longest a problem that goes on is not mentioned in the log.
pub const REMIND_EVERY: Duration = Duration::from_secs(30);

/// What to log for one occurrence of a kind of problem.
#[derive(Debug, PartialEq, Eq)]
pub enum Say {
    /// Its first occurrence (in this episode).
    First,
    /// It goes on: `suppressed` repeats were not logged since its last line.
    Again { suppressed: u64 },
    /// A repeat within [`REMIND_EVERY`] of its last line.
    Nothing,
}

/// The rate limit alone, on an explicit clock so it can be tested.
#[derive(Debug, Default)]
pub struct Limiter {
    kinds: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    logged_at: Instant,
    suppressed: u64,
}

impl Limiter {
    pub fn note(&mut self, kind: &str, now: Instant) -> Say {
        let Some(seen) = self.kinds.get_mut(kind) else {
            self.kinds.insert(kind.to_string(), Seen { logged_at: now, suppressed: 0 });
            return Say::First;
        };
        if now.duration_since(seen.logged_at) < REMIND_EVERY {
            seen.suppressed += 1;
            return Say::Nothing;
        }
        let suppressed = std::mem::take(&mut seen.suppressed);
        seen.logged_at = now;
        Say::Again { suppressed }
    }

    /// Forgets every kind: the next occurrence of any is a first again.
    pub fn clear(&mut self) {
        self.kinds.clear();
    }
}

/// Shared by every Kafka client of the process (consumer, producer, admin).
pub struct Problems {
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    limiter: Limiter,
    /// Client errors since the episode began, and when it began (wall ms).
    errors: u64,
    since: Option<i64>,
}

impl Problems {
    pub fn new(metrics: Arc<Metrics>) -> Problems {
        Problems { metrics, state: Mutex::new(State::default()) }
    }

    /// From `ClientContext::error`: an error of the client or a broker.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        let code = error.rdkafka_error_code().map_or_else(|| "other".to_string(), |c| format!("{c:?}"));
        self.metrics.kafka_errors.get_or_create(&ErrorLabels { error: code.clone() }).inc();
        let Ok(mut state) = self.state.lock() else { return };
        state.errors += 1;
        let since = *state.since.get_or_insert_with(crate::clock::wall_now);
        let errors = state.errors;
        self.metrics.set_kafka_problem(Some(format!(
            "{error}: {reason} ({errors} Kafka client errors since {})",
            mon_stdlib::time::format_rfc3339(since)
        )));
        match state.limiter.note(&code, Instant::now()) {
            Say::First => tracing::warn!(%error, reason, "kafka client error"),
            Say::Again { suppressed } => tracing::warn!(%error, reason, suppressed, "kafka client error goes on"),
            Say::Nothing => tracing::debug!(%error, reason, "kafka client error (again)"),
        }
    }

    /// From `ClientContext::log`: librdkafka's own log lines. Warnings and
    /// worse go through the limit (they repeat the errors above); notices
    /// are kept at info, the rest at debug.
    pub fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        use RDKafkaLogLevel::*;
        let error = match level {
            Emerg | Alert | Critical | Error => true,
            Warning => false,
            Notice => {
                tracing::info!(target: "librdkafka", facility, "{message}");
                return;
            }
            Info | Debug => {
                tracing::debug!(target: "librdkafka", facility, "{message}");
                return;
            }
        };
        let say = match self.state.lock() {
            Ok(mut state) => state.limiter.note(&format!("log:{facility}"), Instant::now()),
            Err(_) => return,
        };
        match (say, error) {
            (Say::First, true) => tracing::error!(target: "librdkafka", facility, "{message}"),
            (Say::First, false) => tracing::warn!(target: "librdkafka", facility, "{message}"),
            (Say::Again { suppressed }, true) => {
                tracing::error!(target: "librdkafka", facility, suppressed, "{message}")
            }
            (Say::Again { suppressed }, false) => {
                tracing::warn!(target: "librdkafka", facility, suppressed, "{message}")
            }
            (Say::Nothing, _) => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    /// The consumer has its partitions: whatever went wrong has passed.
    pub fn resolved(&self) {
        self.metrics.set_kafka_problem(None);
        let Ok(mut state) = self.state.lock() else { return };
        if let Some(since) = state.since.take() {
            let seconds = (crate::clock::wall_now() - since).max(0) / 1000;
            tracing::info!(errors = state.errors, seconds, "kafka works again");
        }
        state.errors = 0;
        state.limiter.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_logged_once_then_reminded_with_the_count_left_out() {
        let mut limiter = Limiter::default();
        let start = Instant::now();
        let mut said = Vec::new();
        // 20 a second for 65 s, alternating two kinds, as librdkafka does
        // with an unreachable broker.
        for i in 0..1300u64 {
            let now = start + Duration::from_millis(i * 50);
            let kind = if i % 2 == 0 { "BrokerTransportFailure" } else { "AllBrokersDown" };
            match limiter.note(kind, now) {
                Say::Nothing => {}
                say => said.push((kind, i * 50 / 1000, say)),
            }
        }
        assert_eq!(
            said,
            vec![
                ("BrokerTransportFailure", 0, Say::First),
                ("AllBrokersDown", 0, Say::First),
                ("BrokerTransportFailure", 30, Say::Again { suppressed: 299 }),
                ("AllBrokersDown", 30, Say::Again { suppressed: 299 }),
                ("BrokerTransportFailure", 60, Say::Again { suppressed: 299 }),
                ("AllBrokersDown", 60, Say::Again { suppressed: 299 }),
            ]
        );
    }

    #[test]
    fn after_clearing_a_new_failure_is_logged_at_once() {
        let mut limiter = Limiter::default();
        let start = Instant::now();
        assert_eq!(limiter.note("AllBrokersDown", start), Say::First);
        assert_eq!(limiter.note("AllBrokersDown", start + Duration::from_secs(1)), Say::Nothing);
        limiter.clear();
        assert_eq!(limiter.note("AllBrokersDown", start + Duration::from_secs(2)), Say::First);
    }
}
