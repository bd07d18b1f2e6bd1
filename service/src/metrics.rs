//! The service's own metrics, served at `/metrics` in the Prometheus text
//! format (the observability of mon itself).

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event_type: String,
    /// `accepted` (a type rules use), `ignored` (no rule uses it) or `rejected`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// A Kafka client error by its librdkafka code (`BrokerTransportFailure`,
/// `AllBrokersDown`...): a closed set, whatever the brokers say.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkflowLabels {
    pub workflow: String,
}

/// A notification channel, as declared in the rules: a closed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: String,
}

/// Every metric, shared between the processing thread and the HTTP server.
pub struct Metrics {
    registry: Registry,
    pub events: Family<EventLabels, Counter>,
    /// Events of an item from another partition than its first (see
    /// `mon_runtime::engine::SplitKey`).
    pub split_key_events: Counter,
    /// 1 while a restored state's local logs (events, records, dead
    /// letters) are refilled from Kafka (`refill.rs`).
    pub refill_running: Gauge,
    /// Entries a refill wrote into the local logs.
    pub refilled: Counter,
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    pub batch_commit_seconds: Histogram,
    /// From a timer's due instant to its record acknowledged by Kafka
    /// (live clock only: on the event clock "due" is not wall time).
    pub alert_publish_delay_seconds: Histogram,
    pub timers_pending: Gauge,
    pub records: Family<KindLabels, Counter>,
    pub instances: Family<WorkflowLabels, Gauge>,
    pub outbox_pending: Gauge,
    pub published: Counter,
    pub publish_errors: Counter,
    pub kafka_errors: Family<ErrorLabels, Counter>,
    pub assigned_partitions: Gauge,
    /// Partitions of the input topics assigned to another member of the
    /// consumer group (see `kafka::Context::stats`).
    pub partitions_elsewhere: Gauge,
    /// With fail-over on: 1 while this process holds its group's lease and
    /// runs, 0 while it waits as a standby (`lease.rs`).
    pub lease_held: Gauge,
    /// With fail-over on, on the active process: the standbys it hears
    /// from (`group.rs`); 0 otherwise.
    pub standbys_alive: Gauge,
    /// On a standby: requests passed on to the active process, by outcome.
    pub forwarded_requests: Family<OutcomeLabels, Counter>,
    /// Notifications accepted by their receiver.
    pub notifications_sent: Family<ChannelLabels, Counter>,
    /// Notifications refused for good (in the failed log).
    pub notifications_failed: Family<ChannelLabels, Counter>,
    /// Pending notifications that have failed at least once and wait for a retry.
    pub notifications_retrying: Family<ChannelLabels, Gauge>,
    /// Age of the oldest pending notification (since it was written), s.
    pub notifications_oldest_pending_seconds: Family<ChannelLabels, Gauge<f64, AtomicU64>>,
    /// Readiness: the state is open and the rules loaded (set once at start).
    pub state_open: AtomicBool,
    /// Readiness: Kafka has given this process its partitions (always true without Kafka).
    pub kafka_assigned: AtomicBool,
    /// Why Kafka is not usable, if it is not (the last client error).
    pub kafka_problem: Mutex<Option<String>>,
    /// The state changelog's produce latency and restores (`changelog.rs`).
    pub changelog: crate::changelog::ChangelogMetrics,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mon");
        let events = Family::<EventLabels, Counter>::default();
        registry.register("events", "Events read, by type and outcome", events.clone());
        let split_key_events = Counter::default();
        registry.register(
            "split_key_events",
            "Events of an item that came from another input partition than the one that started it: \
             its producer does not key messages by item",
            split_key_events.clone(),
        );
        let refill_running = Gauge::default();
        registry.register(
            "refill_running",
            "1 while the local logs (event store, records, dead letters) of a state restored from the changelog \
             are refilled from Kafka; until it ends they show only what came since the restore",
            refill_running.clone(),
        );
        let refilled = Counter::default();
        registry.register(
            "refilled",
            "Entries (events, records, dead letters) a refill wrote into the local logs of a restored state",
            refilled.clone(),
        );
        let consumer_lag = Family::<PartitionLabels, Gauge>::default();
        registry.register("consumer_lag", "Messages behind the partition's high watermark", consumer_lag.clone());
        let batch_commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "batch_commit_seconds",
            "Time to write and flush one batch to the state store",
            batch_commit_seconds.clone(),
        );
        // 5 ms steps up to 250 ms, where the latency target (100 ms) lies,
        // then coarse ones.
        let fine = (1..=50).map(|i| f64::from(i) * 0.005);
        let alert_publish_delay_seconds = Histogram::new(fine.chain([0.5, 1.0, 2.0, 5.0, 10.0, 30.0]));
        registry.register(
            "alert_publish_delay_seconds",
            "From a deadline to its record acknowledged by Kafka",
            alert_publish_delay_seconds.clone(),
        );
        let timers_pending = Gauge::default();
        registry.register("timers_pending", "Timer entries queued in the engine", timers_pending.clone());
        let records = Family::<KindLabels, Counter>::default();
        registry.register("records", "Records made, by kind", records.clone());
        let instances = Family::<WorkflowLabels, Gauge>::default();
        registry.register("instances", "Items held (in flight, or closed within retention)", instances.clone());
        let outbox_pending = Gauge::default();
        registry.register("outbox_pending", "Records and dead letters not yet published", outbox_pending.clone());
        let published = Counter::default();
        registry.register("published", "Messages published to Kafka from the outbox", published.clone());
        let publish_errors = Counter::default();
        registry.register("publish_errors", "Failed attempts to publish (retried)", publish_errors.clone());
        let kafka_errors = Family::<ErrorLabels, Counter>::default();
        registry.register("kafka_errors", "Errors reported by the Kafka clients, by code", kafka_errors.clone());
        let assigned_partitions = Gauge::default();
        registry.register(
            "assigned_partitions",
            "Kafka partitions assigned to this process",
            assigned_partitions.clone(),
        );
        let partitions_elsewhere = Gauge::default();
        registry.register(
            "partitions_elsewhere",
            "Partitions of the input topics that the consumer group gave to another process: \
             while mon runs one process per group, more than 0 means its alerts are wrong",
            partitions_elsewhere.clone(),
        );
        let lease_held = Gauge::default();
        registry.register(
            "lease_held",
            "With fail-over on: 1 while this process holds its group's lease and runs, 0 while it is a standby",
            lease_held.clone(),
        );
        let standbys_alive = Gauge::default();
        registry.register(
            "standbys_alive",
            "With fail-over on, on the active process: standbys of its group heard from within 15 s, that would \
             take over if it stopped; 0 without fail-over",
            standbys_alive.clone(),
        );
        let forwarded_requests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "forwarded_requests",
            "On a standby of a fail-over group: requests for the active process, by outcome (`answered`: whatever \
             its status; `unavailable`: not sent, no active process could be reached; `refused`: a body over the \
             limit or unreadable; `failed`: sent, and no answer came back)",
            forwarded_requests.clone(),
        );
        let notifications_sent = Family::<ChannelLabels, Counter>::default();
        registry.register(
            "notifications_sent",
            "Notifications accepted by their receiver, by channel",
            notifications_sent.clone(),
        );
        let notifications_failed = Family::<ChannelLabels, Counter>::default();
        registry.register(
            "notifications_failed",
            "Notifications refused for good by their receiver, by channel",
            notifications_failed.clone(),
        );
        let notifications_retrying = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "notifications_retrying",
            "Pending notifications waiting for a retry after a failure, by channel",
            notifications_retrying.clone(),
        );
        let notifications_oldest_pending_seconds = Family::<ChannelLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "notifications_oldest_pending_seconds",
            "Age of the oldest notification not yet delivered, by channel",
            notifications_oldest_pending_seconds.clone(),
        );
        let changelog = crate::changelog::ChangelogMetrics::new();
        changelog.register(&mut registry);
        Metrics {
            changelog,
            registry,
            notifications_sent,
            notifications_failed,
            notifications_retrying,
            notifications_oldest_pending_seconds,
            events,
            split_key_events,
            refill_running,
            refilled,
            consumer_lag,
            batch_commit_seconds,
            alert_publish_delay_seconds,
            timers_pending,
            records,
            instances,
            outbox_pending,
            published,
            publish_errors,
            kafka_errors,
            assigned_partitions,
            partitions_elsewhere,
            lease_held,
            standbys_alive,
            forwarded_requests,
            state_open: AtomicBool::new(false),
            kafka_assigned: AtomicBool::new(false),
            kafka_problem: Mutex::new(None),
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    pub fn set_kafka_problem(&self, problem: Option<String>) {
        if let Ok(mut slot) = self.kafka_problem.lock() {
            *slot = problem;
        }
    }

    pub fn kafka_problem(&self) -> Option<String> {
        self.kafka_problem.lock().ok().and_then(|p| p.clone())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
