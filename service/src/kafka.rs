//! Kafka through rdkafka: the consumer the processing thread polls, and
//! the publisher that drains the outbox to the records and dead-letter
//! topics.
//!
//! Kafka's own offset commit is for lag visibility only: where to resume is
//! the offset stored in sled with the batch (ARCHITECTURE.md rule 3), and the
//! processing thread skips anything below it.
//!
//! `topics` creates missing topics (`mon run --create-topics`);
//! `problems` logs what the clients report at a bounded rate.

pub mod problems;
pub mod topics;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use super::config::KafkaConfig;
use super::error::{Domain, Error, Retry};
use super::metrics::{Metrics, PartitionLabels};
use super::store::{StoreHandle, Target};
pub use problems::Problems;

/// Settings every client gets, then the user's `[kafka.properties]`.
pub(crate) fn client_config(kafka: &KafkaConfig, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in defaults {
        config.set(*k, *v);
    }
    for (k, v) in &kafka.properties {
        config.set(k, v);
    }
    config
}

/// A consumer that is there for its group membership (the lease, the
/// scale-out tasks): the partitions it is assigned are the point, and its
/// topic carries no messages. Why cooperative-sticky: the eager assignors
/// move partitions to whichever member sorts first at every join, so a
/// process that starts would take the lease, or every task, from healthy
/// members; this one moves only what must move.
pub fn membership_config(kafka: &KafkaConfig, group: &str) -> rdkafka::ClientConfig {
    client_config(
        kafka,
        &[
            ("group.id", group),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "latest"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ],
    )
}

/// Implements librdkafka's `ClientContext` for a consumer context that
/// wraps the service's [`Context`] in its field `inner`: its statistics,
/// errors and log lines go where every client's go (a lease's or the
/// tasks' consumer, whose own part is the rebalance).
macro_rules! client_context_through_inner {
    ($context:ty) => {
        impl rdkafka::client::ClientContext for $context {
            fn stats(&self, statistics: rdkafka::statistics::Statistics) {
                self.inner.stats(statistics)
            }

            fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
                self.inner.error(error, reason)
            }

            fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
                self.inner.log(level, facility, message)
            }
        }
    };
}
pub(crate) use client_context_through_inner;

/// Reports the client's state into the metrics, readiness and the log.
/// Every client of the process shares one [`Problems`].
#[derive(Clone)]
pub struct Context {
    pub metrics: Arc<Metrics>,
    pub problems: Arc<Problems>,
    /// A scale-out task's clients: they read one partition of each topic
    /// by design, and the group's other members hold the rest.
    pub one_task: bool,
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let (mut known, mut assigned) = (0i64, 0i64);
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1 is "unknown" (not consuming it), and the internal
                // unassigned partition is -1 too.
                // Why the fetch position too: librdkafka knows the lag
                // from the last message taken or the last commit, and a
                // partition assigned at its end (a task taken over after
                // its input was read) has neither until a message comes.
                let lag = match p.consumer_lag {
                    lag if lag >= 0 => Some(lag),
                    _ if p.next_offset >= 0 && p.hi_offset >= 0 && p.fetchq_cnt == 0 => {
                        Some((p.hi_offset - p.next_offset).max(0))
                    }
                    _ => None,
                };
                if let (true, Some(lag)) = (*partition >= 0, lag) {
                    let labels = PartitionLabels { topic: topic.clone(), partition: *partition };
                    self.metrics.consumer_lag.get_or_create(&labels).set(lag);
                }
                if *partition >= 0 && !p.unknown {
                    known += 1;
                    assigned += i64::from(p.desired);
                }
            }
        }
        if statistics.client_type == "consumer" && !self.one_task {
            self.shared_group(known, assigned);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.problems.error(&error, reason);
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.problems.log(level, facility, message);
    }
}

impl Context {
    /// The consumer's statistics list every partition of the topics it
    /// subscribed to, and mark those assigned to it as desired. Fewer
    /// assigned than there are (but some) means another member of the
    /// consumer group holds the rest: with one process per group, that
    /// process sees only part of each flow whose events span partitions,
    /// and part of the group's items, so its alerts are wrong. Said in the
    /// metric, readiness and the log rather than left silent.
    fn shared_group(&self, known: i64, assigned: i64) {
        let elsewhere = if assigned > 0 { known - assigned } else { 0 };
        let before = self.metrics.partitions_elsewhere.set(elsewhere);
        if before == elsewhere {
            return;
        }
        if elsewhere > 0 {
            tracing::error!(
                assigned,
                partitions = known,
                "another process is in this process's consumer group and was given {elsewhere} of the \
                 {known} input partitions: mon runs one process per group until scale-out, so this process \
                 misses those events and reports their items wrongly; give each `mon run` its own group \
                 (`--group`, docs/service.md)"
            );
        } else if before > 0 {
            tracing::info!(partitions = known, "this process reads every input partition again");
        }
    }
}

impl ConsumerContext for Context {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        use rdkafka::consumer::Consumer as _;
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        match rebalance {
            Rebalance::Assign(tpl) => tracing::info!(partitions = tpl.count(), "kafka partitions assigned"),
            Rebalance::Revoke(tpl) => tracing::info!(partitions = tpl.count(), "kafka partitions revoked"),
            Rebalance::Error(e) => tracing::warn!(error = %e, "kafka rebalance failed"),
        }
        self.metrics.assigned_partitions.set(assigned as i64);
        self.metrics.kafka_assigned.store(assigned > 0, Ordering::Relaxed);
        if assigned > 0 {
            self.problems.resolved();
        }
    }
}

pub type Consumer = BaseConsumer<Context>;

pub type Producer = FutureProducer<Context>;

/// How the input consumer gets its partitions.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// Kafka's group protocol divides them among the group's members.
    Subscribe,
    /// Every partition of every input topic, assigned by this process:
    /// with fail-over, the lease (`lease.rs`) already makes this process
    /// the group's only reader, and a join of the input group would add
    /// its initial rebalance delay (about 3 s) to every fail-over.
    AssignAll,
}

pub fn consumer(kafka: &KafkaConfig, context: Context, intake: Intake) -> Result<Consumer, Error> {
    use rdkafka::consumer::Consumer as _;
    let group_instance = kafka.group.clone();
    let consumer: Consumer = client_config(
        kafka,
        &[
            ("group.id", &group_instance),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            // Where to resume is sled's business; when Kafka has no commit
            // yet, reading from the start and skipping is always safe.
            ("auto.offset.reset", "earliest"),
            ("statistics.interval.ms", "1000"),
            // A group join takes about half the session timeout with some
            // brokers (docs/notes/kafka-broker.md); a short one makes starts quick.
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
            ("fetch.wait.max.ms", "50"),
            // Why: librdkafka's default (1 s) is how long the next fetch
            // waits once one left more than `queued.min.messages` queued;
            // a behind consumer then idles about half of every second
            // (docs/notes/performance.md, "Half of every second idle").
            ("fetch.queue.backoff.ms", "10"),
            // Why: a subscribed topic that does not exist yet is looked for
            // again only at this interval (librdkafka's default is 5 min),
            // so a service started before its topic would stay unready
            // that long. Every 5 s it is assigned 3-8 s after the topic is
            // created (docs/service.md, "Topics"); the price is one small
            // metadata request per 5 s, for the subscribed topics only.
            ("topic.metadata.refresh.interval.ms", "5000"),
        ],
    )
    .create_with_context(context)
    .map_err(|e| client_error("cannot create the Kafka consumer", e))?;
    if intake == Intake::Subscribe {
        let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| client_error(&format!("cannot subscribe to {}", kafka.topics.join(", ")), e))?;
    }
    Ok(consumer)
}

/// [`Intake::AssignAll`]: assigns every partition of `topics`, each from
/// the offset the state holds for it (`next`), or from its beginning when
/// the state has none (the processor skips what it already took, as after
/// any redelivery); a scale-out task, `only` its own partition of each.
/// An error when a topic is not there yet: the caller tries again.
pub fn assign_all(
    consumer: &Consumer,
    topics: &[String],
    next: &crate::store::Offsets,
    only: Option<i32>,
) -> Result<usize, Error> {
    use rdkafka::consumer::Consumer as _;
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).map_err(|e| {
            Error::new(Domain::Kafka, Retry::Later, format!("cannot read the metadata of {topic}")).caused_by(e)
        })?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
            .unwrap_or_default();
        if partitions.is_empty() {
            return Err(Error::new(Domain::Kafka, Retry::Later, format!("the input topic {topic} does not exist")));
        }
        let partitions = match only {
            Some(only) if !partitions.contains(&only) => {
                return Err(Error::new(Domain::Kafka, Retry::Later, format!("{topic} has no partition {only}")))
            }
            Some(only) => vec![only],
            None => partitions,
        };
        for partition in partitions {
            let offset = match next.get(&(topic.clone(), partition)) {
                Some(next) => Offset::Offset(*next),
                None => Offset::Beginning,
            };
            assignment
                .add_partition_offset(topic, partition, offset)
                .map_err(|e| client_error(&format!("cannot assign {topic}/{partition}"), e))?;
        }
    }
    consumer.assign(&assignment).map_err(|e| client_error("cannot assign the input partitions", e))?;
    let count = assignment.count();
    let metrics = &consumer.context().metrics;
    metrics.assigned_partitions.set(count as i64);
    metrics.kafka_assigned.store(true, Ordering::Relaxed);
    consumer.context().problems.resolved();
    match only {
        Some(task) => tracing::info!(partitions = count, task, "kafka partitions assigned (this task's)"),
        None => {
            tracing::info!(
                partitions = count,
                "kafka partitions assigned (every partition: this process holds the lease)"
            )
        }
    }
    Ok(count)
}

pub fn producer(kafka: &KafkaConfig, context: Context) -> Result<Producer, Error> {
    client_config(
        kafka,
        &[
            // Retries after a lost acknowledgement do not duplicate: the
            // crash test counts what repeats are left (outbox replays).
            ("enable.idempotence", "true"),
            ("linger.ms", "1"),
            ("message.timeout.ms", "30000"),
        ],
    )
    .create_with_context(context)
    .map_err(|e| client_error("cannot create the Kafka producer", e))
}

/// Creating a client or subscribing fails on what librdkafka can check
/// without a broker (a property it does not know, a topic name it refuses):
/// only a change of settings helps.
pub(crate) fn client_error(doing: &str, error: KafkaError) -> Error {
    Error::new(Domain::Kafka, Retry::Never, doing).caused_by(error)
}

/// Drains the outbox until `stop` says so and the outbox is empty (or the
/// drain deadline passes). Items are handed to the producer as soon as they
/// are in the outbox, without waiting for earlier deliveries (a broker's
/// acknowledgement takes tens of milliseconds, which would otherwise be
/// added to every alert behind it); each is forgotten once Kafka
/// acknowledges it. After a failure, once nothing is in flight, the outbox
/// is read again from its start, so what failed is sent again.
pub async fn publish(
    producer: Producer,
    kafka: KafkaConfig,
    outbox: StoreHandle,
    metrics: Arc<Metrics>,
    wake: Arc<tokio::sync::Notify>,
    flushed: Arc<std::sync::atomic::AtomicU64>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    const IN_FLIGHT: usize = 5000;
    type Delivered = (sled::IVec, Option<i64>, bool);
    let mut in_flight: tokio::task::JoinSet<Delivered> = tokio::task::JoinSet::new();
    // The last outbox key handed to the producer.
    let mut cursor: Option<sled::IVec> = None;
    let mut failed = false;
    let give_up = drain_deadline_after_stop(stop.clone());
    tokio::pin!(give_up);
    loop {
        let room = IN_FLIGHT.saturating_sub(in_flight.len());
        let items = if failed || room == 0 {
            Ok(Vec::new())
        } else {
            outbox.outbox_after(cursor.as_ref(), flushed.load(Ordering::Acquire), room)
        };
        let items = items.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the outbox");
            Vec::new()
        });
        let mut refused = false;
        for (key, item) in &items {
            let topic = match item.target {
                Target::Records => &kafka.records_topic,
                Target::DeadLetters => &kafka.dead_letter_topic,
            };
            let mut headers = OwnedHeaders::new_with_capacity(item.headers.len());
            for (name, value) in &item.headers {
                headers = headers.insert(Header { key: name, value: Some(value) });
            }
            let mut record = FutureRecord::to(topic).payload(&item.payload).headers(headers);
            if let Some(k) = &item.key {
                record = record.key(k);
            }
            match producer.send_result(record) {
                Ok(delivery) => {
                    let due = item.headers.iter().find(|(name, _)| name == "mon_due");
                    let due = due.and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<i64>().ok());
                    cursor = Some(key.clone());
                    let key = key.clone();
                    in_flight.spawn(async move {
                        let ok = match delivery.await {
                            Ok(Ok(_)) => true,
                            Ok(Err((e, _))) => {
                                tracing::warn!(error = %e, "publishing failed; will retry");
                                false
                            }
                            Err(_) => false,
                        };
                        (key, due, ok)
                    });
                }
                // Too large for Kafka: sending it again would fail again and
                // hold up everything behind it. It is kept in the local record
                // or dead-letter log; the outbox lets it go.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                    tracing::error!(
                        bytes = item.payload.len(),
                        "an outbox item is too large for Kafka; dropped from the outbox"
                    );
                    metrics.publish_errors.inc();
                    cursor = Some(key.clone());
                    if let Err(e) = outbox.published(std::slice::from_ref(key)) {
                        tracing::error!(error = %e, "cannot drop a refused outbox item");
                    }
                }
                // The local queue is full, or the producer cannot take
                // messages now: wait for what is in flight, then try again
                // (never spin: see `refused` below).
                Err((e, _)) => {
                    tracing::debug!(error = %e, "the producer did not take an outbox item");
                    refused = true;
                    break;
                }
            }
        }
        if refused && in_flight.is_empty() {
            metrics.outbox_pending.set(items.len() as i64);
            tokio::time::sleep(Duration::from_millis(100)).await;
            if *stop.borrow() {
                return;
            }
            continue;
        }
        if in_flight.is_empty() {
            if failed {
                // Everything sent has settled: start again from the oldest item.
                failed = false;
                cursor = None;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            if items.is_empty() {
                metrics.outbox_pending.set(0);
                if *stop.borrow() {
                    return;
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            continue;
        }
        metrics.outbox_pending.set(in_flight.len() as i64);
        tokio::select! {
            settled = in_flight.join_next() => {
                let mut settled: Vec<Delivered> = settled.into_iter().filter_map(Result::ok).collect();
                while let Some(Ok(more)) = in_flight.try_join_next() {
                    settled.push(more);
                }
                let mut delivered = Vec::with_capacity(settled.len());
                for (key, due, ok) in settled {
                    if !ok {
                        failed = true;
                        metrics.publish_errors.inc();
                        continue;
                    }
                    if let Some(due) = due {
                        let late_ms = (super::clock::wall_now() - due).max(0);
                        metrics.alert_publish_delay_seconds.observe(late_ms as f64 / 1000.0);
                    }
                    delivered.push(key);
                }
                metrics.published.inc_by(delivered.len() as u64);
                if let Err(e) = outbox.published(&delivered) {
                    tracing::error!(error = %e, "cannot forget published outbox items");
                }
            }
            _ = wake.notified(), if !failed => {}
            _ = &mut give_up => {
                tracing::warn!(
                    in_flight = in_flight.len(),
                    "stopping with unpublished records; they are published at the next start"
                );
                return;
            }
        }
    }
}

/// Completes a few seconds after `stop` turns true.
async fn drain_deadline_after_stop(mut stop: tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
}

/// Flushes the producer's queue at shutdown.
pub fn flush(producer: &Producer) {
    use rdkafka::producer::Producer as _;
    let _ = producer.flush(Timeout::After(Duration::from_secs(2)));
}
