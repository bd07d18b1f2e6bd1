//! The delivery task: sends the notifications the processor wrote to the
//! outbox (`store.rs`, prefix `n`) through a [`Deliver`], and moves each
//! one to the sent log when its receiver accepted it, or to the failed log
//! when its receiver refused it for good.
//!
//! - **Nothing is forgotten before it is accepted.** An item leaves the
//!   pending prefix only when [`Deliver::deliver`] returned `Ok`, or failed
//!   with [`Retry::Never`] (then it is kept in the failed log, shown by the
//!   API, and not retried). After a crash, pending items are sent again;
//!   notification ids are deterministic, so a receiver drops the repeat.
//! - **Order within a group.** Message n+1 of a group (`group_key`: one
//!   channel, one workflow step, one kind, one group-by value set) is not
//!   sent before message n was accepted or failed for good: a receiver must
//!   never see `resolved` before the `firing` it resolves. Groups do not
//!   wait for each other.
//! - **Bounded concurrency per channel.** At most `max_in_flight_per_channel`
//!   sends to one channel at once, so a slow receiver holds only its own
//!   channel back.
//! - **Retries** after a failure that may pass ([`Retry::Later`]: a 5xx, a
//!   timeout, a refused connection) wait [`Backoff::delay_ms`]: doubling
//!   from `retry_initial_ms` to `retry_max_ms`, moved by ±`retry_jitter`.
//!   A restart tries every pending item at once.
//!
//! - **Marks in the changelog.** With the Kafka changelog on, a settled
//!   notification (sent, or refused for good) is then marked there
//!   (`n/<id>`), so that a process rebuilt from the changelog on a new disk
//!   writes it as settled instead of sending it again. A crash between the
//!   receiver's answer and the mark's acknowledgement still sends it once
//!   more: at least once, with the same id.
//!
//! The real notifiers (email, webhook, Slack, PagerDuty, Alertmanager,
//! SMS) implement [`Deliver`]; with `[notify] deliver = "log"`,
//! [`LogDeliverer`] writes each notification as one log line instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::clock::wall_now;
use super::config::DeliveryConfig;
use super::error::Retry;
use super::metrics::{ChannelLabels, Metrics};
use super::store::{NotificationEntry, StoreHandle};
use mon_runtime::alerts::Notification;

/// Why a receiver did not take a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// [`Retry::Later`]: try again after a wait (a 5xx, a timeout, no
    /// connection). [`Retry::Never`]: the receiver refused it (a 4xx, a
    /// payload it cannot take); it goes to the failed log.
    pub retry: Retry,
    /// In words, for the log, the API and the failed log.
    pub message: String,
}

impl DeliveryFailure {
    pub fn later(message: impl Into<String>) -> Self {
        DeliveryFailure { retry: Retry::Later, message: message.into() }
    }

    pub fn never(message: impl Into<String>) -> Self {
        DeliveryFailure { retry: Retry::Never, message: message.into() }
    }
}

/// One attempt to hand a notification to its receiver.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryFailure>> + Send + 'a>>;

/// What the delivery task sends through: one attempt per call, for any
/// channel (the implementation picks the receiver by `notification.channel`).
/// It need not retry or keep order: the task does both. `Ok` means the
/// receiver accepted it, and it is never sent again (but after a crash it
/// may be: receivers drop repeats by `notification.id`).
///
/// A boxed future keeps the trait usable as `Arc<dyn Deliver>`; an async
/// implementation is `Box::pin(async move { ... })`.
pub trait Deliver: Send + Sync + 'static {
    fn deliver<'a>(&'a self, notification: &'a Notification) -> Delivery<'a>;
}

/// Writes each notification as one log line (level `info`, message
/// `notification`), and always succeeds: the console is the receiver. The
/// default when no notifier is configured.
pub struct LogDeliverer;

impl Deliver for LogDeliverer {
    fn deliver<'a>(&'a self, n: &'a Notification) -> Delivery<'a> {
        tracing::info!(
            id = %n.id,
            at = %mon_stdlib::time::format_rfc3339(n.at),
            channel = %n.channel,
            event = n.event.name(),
            group_key = %n.group_key,
            workflow = %n.workflow,
            step = %n.step,
            severity = n.severity.name(),
            active = n.active,
            acknowledged = n.acknowledged,
            new = n.new,
            resolved = n.resolved,
            escalated = n.escalated,
            summary = %n.summary,
            "notification"
        );
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The waits between attempts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
    /// A fraction in [0, 1): each wait is moved by up to this much either way.
    pub jitter: f64,
}

impl Backoff {
    pub fn new(config: &DeliveryConfig) -> Self {
        Backoff { initial_ms: config.retry_initial_ms, max_ms: config.retry_max_ms, jitter: config.retry_jitter }
    }

    /// The wait after the `failures`-th failed attempt (1 for the first):
    /// `initial × 2^(failures−1)`, capped at `max`, then moved by
    /// `jitter × (2·unit − 1)` of itself, where `unit` is uniform in [0, 1)
    /// (so ±jitter), and never above `max`.
    pub fn delay_ms(&self, failures: u32, unit: f64) -> u64 {
        let doublings = failures.saturating_sub(1).min(63);
        let base = self.initial_ms.saturating_mul(1u64 << doublings).min(self.max_ms);
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        ((base as f64 * factor).round() as u64).clamp(1, self.max_ms.max(1))
    }
}

/// A number in [0, 1) from `seed` (SplitMix64): jitter needs no
/// cryptography, only senders that do not agree.
fn unit_from(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// What the delivery task needs, given by `run`.
pub struct DeliveryTask {
    pub store: StoreHandle,
    pub deliver: Arc<dyn Deliver>,
    pub config: DeliveryConfig,
    pub metrics: Arc<Metrics>,
    /// Pending notifications below this sequence are flushed (written by
    /// the processor after a batch's `commit`).
    pub flushed: Arc<AtomicU64>,
    /// Notified by the processor when it wrote notifications.
    pub wake: Arc<tokio::sync::Notify>,
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// Where a settled notification is marked, so that a process restored
    /// from the changelog does not send it again (`changelog.rs`).
    pub marks: Option<Arc<crate::changelog::Marks>>,
}

type Attempt = (u64, NotificationEntry, Result<(), DeliveryFailure>);

impl DeliveryTask {
    /// Runs until `stop` turns true; then waits at most 5 s for the sends
    /// in flight. What is left is sent at the next start.
    pub async fn run(mut self) {
        let backoff = Backoff::new(&self.config);
        let timeout = Duration::from_millis(self.config.send_timeout_ms);
        let mut tasks: JoinSet<Attempt> = JoinSet::new();
        let mut in_flight: HashSet<u64> = HashSet::new();
        // Why in memory: a restart tries every pending item at once (the
        // receiver may be back, and a crash should not add a wait).
        let mut retry_at: HashMap<u64, Instant> = HashMap::new();
        let mut channels_seen: HashSet<String> = HashSet::new();
        let mut seed = wall_now() as u64;
        loop {
            if *self.stop.borrow() {
                break;
            }
            let pending = match self.store.pending_notifications(self.flushed.load(Ordering::Acquire)) {
                Ok(pending) => pending,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the notification outbox; trying again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.gauges(&pending, &mut channels_seen);
            let now = Instant::now();
            let mut busy: HashMap<&str, usize> = HashMap::new();
            for (seq, entry) in &pending {
                if in_flight.contains(seq) {
                    *busy.entry(entry.notification.channel.as_str()).or_default() += 1;
                }
            }
            let mut heads: HashSet<&str> = HashSet::new();
            let mut next_retry: Option<Instant> = None;
            for (seq, entry) in &pending {
                // Only the oldest pending message of each group may go.
                if !heads.insert(entry.notification.group_key.as_str()) || in_flight.contains(seq) {
                    continue;
                }
                if let Some(at) = retry_at.get(seq).filter(|at| **at > now) {
                    next_retry = Some(next_retry.map_or(*at, |n| n.min(*at)));
                    continue;
                }
                let count = busy.entry(entry.notification.channel.as_str()).or_default();
                if *count >= self.config.max_in_flight_per_channel {
                    continue;
                }
                *count += 1;
                in_flight.insert(*seq);
                let (seq, mut entry, deliver) = (*seq, entry.clone(), self.deliver.clone());
                tasks.spawn(async move {
                    let outcome = match tokio::time::timeout(timeout, deliver.deliver(&entry.notification)).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(DeliveryFailure::later(format!("no answer within {} ms", timeout.as_millis()))),
                    };
                    entry.attempts += 1;
                    entry.last_attempt_at = Some(wall_now());
                    (seq, entry, outcome)
                });
            }
            let sleep_until =
                next_retry.unwrap_or_else(|| now + Duration::from_secs(1)).min(now + Duration::from_secs(1));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.stop.changed() => {}
                _ = tokio::time::sleep_until(sleep_until) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(attempt) = done {
                        seed = seed.wrapping_add(1);
                        self.settle(attempt, &backoff, unit_from(seed), &mut in_flight, &mut retry_at);
                    }
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(Some(Ok(attempt))) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
            seed = seed.wrapping_add(1);
            self.settle(attempt, &backoff, unit_from(seed), &mut in_flight, &mut retry_at);
        }
        tasks.abort_all();
    }

    /// Records what one attempt gave.
    fn settle(
        &self,
        (seq, mut entry, outcome): Attempt,
        backoff: &Backoff,
        unit: f64,
        in_flight: &mut HashSet<u64>,
        retry_at: &mut HashMap<u64, Instant>,
    ) {
        in_flight.remove(&seq);
        let labels = ChannelLabels { channel: entry.notification.channel.clone() };
        let id = entry.notification.id.clone();
        let sent_or_failed = outcome.is_ok();
        let written = match outcome {
            Ok(()) => {
                retry_at.remove(&seq);
                entry.done_at = entry.last_attempt_at;
                entry.next_attempt_at = None;
                self.metrics.notifications_sent.get_or_create(&labels).inc();
                self.store.notification_done(seq, &entry, true)
            }
            Err(failure) if failure.retry == Retry::Never => {
                retry_at.remove(&seq);
                tracing::warn!(
                    id,
                    channel = labels.channel,
                    attempts = entry.attempts,
                    error = failure.message,
                    "notification refused by its receiver; kept in the failed log"
                );
                entry.done_at = entry.last_attempt_at;
                entry.next_attempt_at = None;
                entry.last_error = Some(failure.message);
                self.metrics.notifications_failed.get_or_create(&labels).inc();
                self.store.notification_done(seq, &entry, false)
            }
            Err(failure) => {
                let wait = backoff.delay_ms(entry.attempts, unit);
                tracing::info!(
                    id,
                    channel = labels.channel,
                    attempts = entry.attempts,
                    wait_ms = wait,
                    error = failure.message,
                    "notification not delivered; will retry"
                );
                retry_at.insert(seq, Instant::now() + Duration::from_millis(wait));
                entry.next_attempt_at = Some(wall_now().saturating_add(wait as i64));
                entry.last_error = Some(failure.message);
                self.store.notification_attempted(seq, &entry)
            }
        };
        if let Err(e) = written {
            // The item stays pending and is sent again: a repeat, not a loss.
            tracing::error!(error = %e, id, "cannot record a notification's delivery");
            return;
        }
        if let (Some(marks), Some(at)) = (&self.marks, entry.done_at) {
            let settled = crate::store::Settled { sent: sent_or_failed, at };
            let marks = marks.clone();
            tokio::spawn(async move { marks.mark(&id, settled).await });
        }
    }

    /// `retrying` and `oldest_pending_seconds` per channel.
    fn gauges(&self, pending: &[(u64, NotificationEntry)], seen: &mut HashSet<String>) {
        let mut by_channel: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (_, entry) in pending {
            let slot = by_channel.entry(entry.notification.channel.as_str()).or_insert((0, i64::MAX));
            slot.0 += i64::from(entry.attempts > 0);
            slot.1 = slot.1.min(entry.queued_at);
        }
        let now = wall_now();
        for channel in by_channel.keys() {
            if !seen.contains(*channel) {
                seen.insert(channel.to_string());
            }
        }
        for channel in seen.iter() {
            let labels = ChannelLabels { channel: channel.clone() };
            let (retrying, oldest) = by_channel.get(channel.as_str()).copied().unwrap_or((0, now));
            self.metrics.notifications_retrying.get_or_create(&labels).set(retrying);
            let age = (now.saturating_sub(oldest).max(0)) as f64 / 1000.0;
            self.metrics.notifications_oldest_pending_seconds.get_or_create(&labels).set(age);
        }
    }
}

#[cfg(test)]
mod tests;
