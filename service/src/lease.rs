//! Which process of a consumer group is the active one, when several run
//! for fail-over (`[kafka] failover = true`): the one that Kafka's group
//! protocol gives the single partition of the topic `<group>.lease`, in
//! the consumer group `<group>.lease`. The others wait as standbys,
//! following the changelog (`standby.rs`), and the group coordinator
//! moves the partition to one of them when the active one stops (at once
//! on a clean stop, after the session timeout when it is killed).
//!
//! Why a partition and not a home-made election: Kafka already detects a
//! dead member and gives each partition to exactly one live one; with
//! cooperative-sticky assignment, a standby joining the group does not
//! take the partition from the process that holds it (measured with the
//! test broker: the eager range assignor moves it to the newcomer).
//!
//! What it must not do: let a process that lost the lease go on writing.
//! A revocation (the coordinator gave the lease away, because this process
//! missed its heartbeats) is final for this process: it stops, and its
//! supervisor starts it again as a standby.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

use crate::config::KafkaConfig;
use crate::error::Error;
use crate::kafka::{client_config, client_error, Context};

/// The lease's one partition.
const PARTITION: i32 = 0;

/// The lease topic and its consumer group: `<group>.lease`.
pub fn name(kafka: &KafkaConfig) -> String {
    format!("{}.lease", kafka.group)
}

/// Says, from the lease consumer's rebalances, whether this process holds
/// the lease, and whether it held it and lost it.
#[derive(Clone)]
pub struct LeaseContext {
    inner: Context,
    held: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    /// This process is leaving the group on purpose (a clean stop).
    leaving: Arc<AtomicBool>,
    /// The coordinator has counted this process in the group once (an
    /// assignment, even an empty one, came): from then on it is one the
    /// lease can go to.
    joined: Arc<AtomicBool>,
    topic: String,
}

impl ClientContext for LeaseContext {
    fn stats(&self, statistics: Statistics) {
        self.inner.stats(statistics)
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.inner.error(error, reason)
    }
}

impl ConsumerContext for LeaseContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.joined.store(true, Ordering::SeqCst);
        }
        let holds = consumer.assignment().is_ok_and(|tpl| tpl.find_partition(&self.topic, PARTITION).is_some());
        let held = self.held.swap(holds, Ordering::SeqCst);
        match (held, holds) {
            (false, true) => tracing::info!(lease = %self.topic, "this process holds the lease: it is the active one"),
            (true, false) if self.leaving.load(Ordering::SeqCst) => {
                tracing::info!(lease = %self.topic, "lease given back")
            }
            (true, false) => {
                self.lost.store(true, Ordering::SeqCst);
                tracing::error!(
                    lease = %self.topic,
                    "the lease was given to another process (this one missed its heartbeats): stopping, so that \
                     two processes never run the same state"
                );
            }
            _ => {}
        }
        if let Rebalance::Error(e) = rebalance {
            tracing::warn!(error = %e, lease = %self.topic, "lease rebalance failed");
        }
    }
}

/// This process's membership of the lease group.
pub struct Lease {
    consumer: BaseConsumer<LeaseContext>,
    held: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    leaving: Arc<AtomicBool>,
    joined: Arc<AtomicBool>,
}

impl Lease {
    /// Creates the lease topic when missing and joins its group. Returns
    /// at once: whether this process holds the lease is known after a few
    /// [`poll`](Self::poll)s (a group join takes a few seconds).
    pub async fn join(kafka: &KafkaConfig, context: Context) -> Result<Lease, Error> {
        let topic = name(kafka);
        let remedy = "or run without `failover` in [kafka]";
        if crate::kafka::topics::create_compacted(kafka, context.clone(), &topic, 1, "lease", remedy).await? {
            tracing::info!(topic, "lease topic created");
        }
        let held = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let leaving = Arc::new(AtomicBool::new(false));
        let joined = Arc::new(AtomicBool::new(false));
        let lease_context = LeaseContext {
            inner: context,
            held: held.clone(),
            lost: lost.clone(),
            leaving: leaving.clone(),
            joined: joined.clone(),
            topic: topic.clone(),
        };
        let consumer: BaseConsumer<LeaseContext> = client_config(
            kafka,
            &[
                ("group.id", &topic),
                // Why: the eager assignors move the partition to whichever
                // member sorts first at every join, so a standby that
                // starts would take the lease from a healthy active.
                ("partition.assignment.strategy", "cooperative-sticky"),
                ("enable.auto.commit", "false"),
                ("auto.offset.reset", "latest"),
                ("session.timeout.ms", "6000"),
                ("heartbeat.interval.ms", "500"),
            ],
        )
        .create_with_context(lease_context)
        .map_err(|e| client_error("cannot create the lease consumer", e))?;
        consumer.subscribe(&[&topic]).map_err(|e| client_error(&format!("cannot subscribe to {topic}"), e))?;
        Ok(Lease { consumer, held, lost, leaving, joined })
    }

    /// Serves the group protocol's callbacks; call it at least every few
    /// seconds for as long as the process runs. The topic carries no
    /// messages, so nothing else comes out of it.
    pub fn poll(&self, timeout: Duration) {
        let _ = self.consumer.poll(timeout);
    }

    /// This process is the active one.
    pub fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// This process is a member of the lease group: if the active process
    /// stopped, the lease could go to it.
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::SeqCst)
    }

    /// This process held the lease and the coordinator gave it away.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// A flag that turns true when the lease is lost, for the writers that
    /// must stop at once (the changelog).
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }
}

impl Drop for Lease {
    /// The consumer's own drop then leaves the group, and a standby takes
    /// the lease at once, without waiting for the session timeout.
    fn drop(&mut self) {
        self.leaving.store(true, Ordering::SeqCst);
    }
}
