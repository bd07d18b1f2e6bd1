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
//! supervisor starts it again as a standby. A process learns of the
//! revocation only from a heartbeat after it resumes, so one that was
//! paused (a frozen VM, SIGSTOP) must not write before it knows: the
//! [`Guard`] holds every changelog write after a pause for as long again
//! as the coordinator needs to say. That is a delay, not evidence (the
//! test broker once took seconds more); the evidence is the changelog's
//! claims (`changelog/fence.rs`), which make the write after a take-over
//! fail and count the lease as lost ([`Guard::lose`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance};

use crate::config::KafkaConfig;
use crate::error::{Domain, Error, Retry};
use crate::kafka::{client_error, Context};

/// The lease's one partition.
const PARTITION: i32 = 0;

/// The lease topic and its consumer group: `<group>.lease`.
pub fn name(kafka: &KafkaConfig) -> String {
    format!("{}.lease", kafka.group)
}

/// Why a process that held the lease stops: the same words wherever it
/// is found out (a write refused, or the lease thread's rebalance).
pub fn lost_error() -> Error {
    Error::new(
        Domain::Kafka,
        Retry::Later,
        "the lease went to another process, which now runs the state: start this one again to wait as a standby",
    )
}

/// Says, from the lease consumer's rebalances, whether this process holds
/// the lease, and whether it held it and lost it. [`Lease`] reads it
/// through its consumer.
pub struct LeaseContext {
    inner: Context,
    held: AtomicBool,
    /// Shared with the [`Guard`], which outlives no write it stops.
    lost: Arc<AtomicBool>,
    /// This process is leaving the group on purpose (a clean stop).
    leaving: AtomicBool,
    /// The coordinator has counted this process in the group once (an
    /// assignment, even an empty one, came): from then on it is one the
    /// lease can go to.
    joined: AtomicBool,
    topic: String,
}

// Its `log` matters most: librdkafka says there when it finds its own
// session timed out (a paused process), the first sign the lease is gone.
crate::kafka::client_context_through_inner!(LeaseContext);

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
    guard: Guard,
}

/// Whether this process may write now, as far as the lease says: shared
/// by the thread that polls the lease and the writers (the changelog).
#[derive(Clone)]
pub struct Guard {
    state: Arc<GuardState>,
}

struct GuardState {
    lost: Arc<AtomicBool>,
    since: Instant,
    /// When the lease thread last polled: ms after `since`, and on the
    /// wall clock.
    last_poll_ms: AtomicU64,
    last_poll_wall_ms: AtomicU64,
    /// Writes wait until then (ms after `since`): a pause was seen.
    unsure_until_ms: AtomicU64,
    /// A gap this long between polls is a pause that may have cost the
    /// lease, and the time a heartbeat then gets to tell whether the
    /// coordinator still counts this process in: half the session timeout.
    pause_ms: u64,
    /// Pauses count from the take-over on ([`Guard::arm`]): a standby
    /// writes nothing, and its start would read as one.
    armed: AtomicBool,
}

/// Writes wait at most this long for the lease to be confirmed; then the
/// process counts it as lost, which stops it.
const LONGEST_WAIT: Duration = Duration::from_secs(15);

fn wall_ms() -> u64 {
    u64::try_from(crate::clock::wall_now()).unwrap_or(0)
}

impl Guard {
    fn new(lost: Arc<AtomicBool>, session_ms: u64) -> Guard {
        Guard {
            state: Arc::new(GuardState {
                lost,
                since: Instant::now(),
                last_poll_ms: AtomicU64::new(0),
                last_poll_wall_ms: AtomicU64::new(wall_ms()),
                unsure_until_ms: AtomicU64::new(0),
                pause_ms: session_ms / 2,
                armed: AtomicBool::new(false),
            }),
        }
    }

    fn now_ms(&self) -> u64 {
        self.state.since.elapsed().as_millis() as u64
    }

    /// The time since the last poll. Why both clocks: the monotonic one
    /// does not count a suspended machine's sleep, and the wall clock can
    /// be stepped; the larger gap is the safe one.
    fn since_last_poll(&self, now: u64) -> u64 {
        let monotonic = now.saturating_sub(self.state.last_poll_ms.load(Ordering::SeqCst));
        let wall = wall_ms().saturating_sub(self.state.last_poll_wall_ms.load(Ordering::SeqCst));
        monotonic.max(wall)
    }

    /// From the take-over on, a gap between polls is a pause.
    fn arm(&self) {
        self.mark_polled(self.now_ms());
        self.state.armed.store(true, Ordering::SeqCst);
    }

    fn mark_polled(&self, now: u64) {
        self.state.last_poll_wall_ms.store(wall_ms(), Ordering::SeqCst);
        self.state.last_poll_ms.store(now, Ordering::SeqCst);
    }

    /// Called by the lease thread before each poll. Why it is the one to
    /// notice a pause: it polls every 200 ms while the process runs.
    fn polling(&self) {
        let now = self.now_ms();
        let gap = self.since_last_poll(now);
        if gap > self.state.pause_ms && self.state.armed.load(Ordering::SeqCst) {
            // Before the poll time moves on: a writer that sees the new
            // poll time sees this too.
            self.state.unsure_until_ms.store(now + self.state.pause_ms, Ordering::SeqCst);
            tracing::warn!(
                paused_ms = gap,
                "the lease was not polled for a while (a paused process?); writes wait until the coordinator \
                 confirms it"
            );
        }
        self.mark_polled(now);
    }

    /// Another process claimed the changelog after this one
    /// (`changelog/fence.rs`): the lease is gone, whatever the coordinator
    /// has said so far.
    pub fn lose(&self) {
        if !self.state.lost.swap(true, Ordering::SeqCst) {
            tracing::error!("the lease is lost: a newer process claimed the changelog");
        }
    }

    /// True when this process may write; waits while it cannot tell (after
    /// a pause), false once the lease is lost or after [`LONGEST_WAIT`]
    /// without an answer (then it counts as lost).
    pub fn may_write(&self) -> bool {
        let started = Instant::now();
        loop {
            if self.state.lost.load(Ordering::SeqCst) {
                return false;
            }
            let now = self.now_ms();
            let stale = self.since_last_poll(now) > self.state.pause_ms;
            let unsure = now < self.state.unsure_until_ms.load(Ordering::SeqCst);
            if !stale && !unsure {
                return true;
            }
            if started.elapsed() > LONGEST_WAIT {
                tracing::error!("the lease could not be confirmed: counted as lost");
                self.state.lost.store(true, Ordering::SeqCst);
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
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
        let lost = Arc::new(AtomicBool::new(false));
        let lease_context = LeaseContext {
            inner: context,
            held: AtomicBool::new(false),
            lost: lost.clone(),
            leaving: AtomicBool::new(false),
            joined: AtomicBool::new(false),
            topic: topic.clone(),
        };
        let consumer: BaseConsumer<LeaseContext> = crate::kafka::membership_config(kafka, &topic)
            .create_with_context(lease_context)
            .map_err(|e| client_error("cannot create the lease consumer", e))?;
        consumer.subscribe(&[&topic]).map_err(|e| client_error(&format!("cannot subscribe to {topic}"), e))?;
        let session_ms = kafka.properties.get("session.timeout.ms").and_then(|ms| ms.parse().ok()).unwrap_or(6000);
        let guard = Guard::new(lost, session_ms);
        Ok(Lease { consumer, guard })
    }

    /// Serves the group protocol's callbacks; call it at least every few
    /// seconds for as long as the process runs. The topic carries no
    /// messages, so nothing else comes out of it.
    pub fn poll(&self, timeout: Duration) {
        self.guard.polling();
        let _ = self.consumer.poll(timeout);
    }

    /// This process is the active one.
    pub fn held(&self) -> bool {
        self.consumer.context().held.load(Ordering::SeqCst)
    }

    /// This process is a member of the lease group: if the active process
    /// stopped, the lease could go to it.
    pub fn joined(&self) -> bool {
        self.consumer.context().joined.load(Ordering::SeqCst)
    }

    /// This process held the lease and the coordinator gave it away.
    pub fn lost(&self) -> bool {
        self.consumer.context().lost.load(Ordering::SeqCst)
    }

    /// What the writers that must stop at once (the changelog) ask
    /// before each write.
    pub fn guard(&self) -> Guard {
        self.guard.clone()
    }
}

/// The lease of the active process, polled by a thread of its own from
/// the moment it is taken until this is dropped (after the last snapshot):
/// the start's own writes to the changelog ask the [`Guard`] too. Losing
/// the lease sets `stop`.
pub struct Keeper {
    lease: Arc<Lease>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Keeper {
    pub fn start(lease: Lease, stop: Arc<AtomicBool>) -> Result<Keeper, Error> {
        lease.guard.arm();
        let lease = Arc::new(lease);
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (lease, done) = (lease.clone(), done.clone());
            std::thread::Builder::new()
                .name("mon-lease".into())
                .spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        lease.poll(Duration::from_millis(200));
                        if lease.lost() {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                })
                .map_err(|e| Error::new(Domain::Process, Retry::Later, "cannot start the lease thread").caused_by(e))?
        };
        Ok(Keeper { lease, done, thread: Some(thread) })
    }

    pub fn lost(&self) -> bool {
        self.lease.lost()
    }

    pub fn guard(&self) -> Guard {
        self.lease.guard()
    }
}

impl Drop for Keeper {
    /// Stops polling, then gives the lease back (the last reference to the
    /// [`Lease`] goes with the thread).
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Lease {
    /// The consumer's own drop then leaves the group, and a standby takes
    /// the lease at once, without waiting for the session timeout.
    fn drop(&mut self) {
        self.consumer.context().leaving.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_go_on_while_polled_wait_after_a_pause_and_stop_once_lost() {
        let lost = Arc::new(AtomicBool::new(false));
        let guard = Guard::new(lost.clone(), 400);
        guard.arm();
        guard.polling();
        assert!(guard.may_write(), "polled just now");
        // A pause longer than half the session: writes wait until the
        // confirmation window has passed with the lease still held.
        std::thread::sleep(Duration::from_millis(250));
        guard.polling();
        let waited = Instant::now();
        let poller = {
            let guard = guard.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    guard.polling();
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        assert!(guard.may_write(), "confirmed");
        assert!(waited.elapsed() >= Duration::from_millis(150), "waited {:?}", waited.elapsed());
        poller.join().unwrap();
        // Not polled for longer than half the session (the lease thread
        // paused too, and the writer runs first): it waits, and a loss
        // found meanwhile ends the wait.
        std::thread::sleep(Duration::from_millis(250));
        let losing = {
            let lost = lost.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                lost.store(true, Ordering::SeqCst);
            })
        };
        assert!(!guard.may_write(), "lost while it waited");
        losing.join().unwrap();
    }
}
