//! The delivery task against a scripted receiver, on a real sled store in
//! a temporary directory: retries, the failed log, order within a group,
//! the bound on sends in flight, and the backoff's arithmetic.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use mon_compiler::ir::{RecordKind, Severity};
use mon_runtime::alerts::NotificationEvent;

use super::*;
use crate::store::{BatchWrite, DeliveryState, Offsets, Store};

fn notification(id: &str, group: &str, channel: &str) -> Notification {
    Notification {
        id: id.into(),
        channel: channel.into(),
        at: 1_000,
        event: NotificationEvent::Firing,
        group_key: format!("{channel}/{group}"),
        workflow: "jobs".into(),
        step: "done".into(),
        kind: RecordKind::Missing,
        severity: Severity::High,
        group: Default::default(),
        runbook: None,
        program_hash: "h".into(),
        active: 1,
        acknowledged: 0,
        new: 1,
        resolved: 0,
        escalated: false,
        acknowledged_by: None,
        alerts: Vec::new(),
        summary: format!("{id} in {group}"),
    }
}

/// A receiver that answers from a script (per id; `Ok` once the script is
/// used up) and remembers every call.
#[derive(Default)]
struct Script {
    plan: Mutex<HashMap<String, VecDeque<Result<(), DeliveryFailure>>>>,
    calls: Mutex<Vec<String>>,
    /// Ids in the order they were accepted.
    accepted: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    delay_ms: u64,
}

impl Script {
    fn fail(&self, id: &str, failures: Vec<DeliveryFailure>) {
        self.plan.lock().unwrap().insert(id.into(), failures.into_iter().map(Err).collect());
    }

    fn calls(&self, id: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|c| *c == id).count()
    }
}

impl Deliver for Script {
    fn deliver<'a>(&'a self, n: &'a Notification) -> Delivery<'a> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(n.id.clone());
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let outcome = self.plan.lock().unwrap().get_mut(&n.id).and_then(VecDeque::pop_front).unwrap_or(Ok(()));
            if outcome.is_ok() {
                self.accepted.lock().unwrap().push(n.id.clone());
            }
            outcome
        })
    }
}

struct Running {
    store: Store,
    _dir: tempfile::TempDir,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Writes `notifications` as one processed batch and starts the task.
fn start(notifications: Vec<Notification>, script: Arc<Script>, max_in_flight: usize) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let batch = BatchWrite {
        applied: Some(0),
        notifications: notifications.into_iter().map(|n| NotificationEntry::new(n, wall_now())).collect(),
        ..Default::default()
    };
    store.commit(batch, &mut Offsets::new()).unwrap();
    let metrics = Arc::new(Metrics::new());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let config = DeliveryConfig {
        max_in_flight_per_channel: max_in_flight,
        retry_initial_ms: 10,
        retry_max_ms: 40,
        retry_jitter: 0.2,
        send_timeout_ms: 2_000,
    };
    let task = tokio::spawn(
        DeliveryTask {
            store: store.handle(),
            deliver: script,
            config,
            metrics: metrics.clone(),
            flushed: Arc::new(AtomicU64::new(store.next_notification_seq())),
            wake: Arc::new(tokio::sync::Notify::new()),
            stop: stop_rx,
            marks: None,
        }
        .run(),
    );
    Running { store, _dir: dir, metrics, stop, task }
}

impl Running {
    async fn until_nothing_pending(&self) {
        for _ in 0..500 {
            if self.store.handle().pending_notifications(u64::MAX).unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("notifications still pending after 5 s");
    }

    async fn stop(self) -> Store {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
        self.store
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_may_pass_is_retried_and_delivered_once() {
    let script = Arc::new(Script::default());
    script.fail("n1", vec![DeliveryFailure::later("503"), DeliveryFailure::later("connection refused")]);
    let running = start(vec![notification("n1", "g", "ops")], script.clone(), 4);
    running.until_nothing_pending().await;
    // Time for a wrong extra attempt to happen.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = running.metrics.encode();
    let store = running.stop().await;
    assert_eq!(script.calls("n1"), 3);
    assert_eq!(*script.accepted.lock().unwrap(), vec!["n1"]);
    let (state, entry) = store.handle().notification("n1").unwrap().unwrap();
    assert_eq!(state, DeliveryState::Sent);
    assert_eq!(entry.attempts, 3);
    assert_eq!(entry.last_error.as_deref(), Some("connection refused"));
    assert!(text.contains("mon_notifications_sent_total{channel=\"ops\"} 1"), "{text}");
    assert!(text.contains("mon_notifications_retrying{channel=\"ops\"} 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_goes_to_the_failed_log_and_the_group_moves_on() {
    let script = Arc::new(Script::default());
    script.fail("n1", vec![DeliveryFailure::never("400: bad payload")]);
    let running = start(vec![notification("n1", "g", "ops"), notification("n2", "g", "ops")], script.clone(), 4);
    running.until_nothing_pending().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = running.metrics.encode();
    let store = running.stop().await;
    assert_eq!(script.calls("n1"), 1, "a refusal is not retried");
    assert_eq!(*script.accepted.lock().unwrap(), vec!["n2"]);
    let failed =
        store.handle().notifications(true, None, 10).unwrap().items.into_iter().map(|(_, e)| e).collect::<Vec<_>>();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].notification.id, "n1");
    assert_eq!(failed[0].last_error.as_deref(), Some("400: bad payload"));
    assert_eq!(store.handle().notification("n1").unwrap().unwrap().0, DeliveryState::Failed);
    assert!(text.contains("mon_notifications_failed_total{channel=\"ops\"} 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_keeps_its_order_while_its_head_is_retried_and_other_groups_go_on() {
    let script = Arc::new(Script::default());
    script.fail("a1", vec![DeliveryFailure::later("503"); 3]);
    let running = start(
        vec![notification("a1", "a", "ops"), notification("a2", "a", "ops"), notification("b1", "b", "ops")],
        script.clone(),
        4,
    );
    running.until_nothing_pending().await;
    running.stop().await;
    let calls = script.calls.lock().unwrap().clone();
    let last_a1 = calls.iter().rposition(|c| c == "a1").unwrap();
    let first_a2 = calls.iter().position(|c| c == "a2").unwrap();
    assert!(last_a1 < first_a2, "a2 went before a1 was accepted: {calls:?}");
    assert_eq!(*script.accepted.lock().unwrap(), vec!["b1", "a1", "a2"], "b waits for nobody: {calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_in_flight_to_one_channel_are_bounded() {
    let script = Arc::new(Script { delay_ms: 30, ..Default::default() });
    let mut notifications: Vec<Notification> =
        (0..8).map(|i| notification(&format!("o{i}"), &format!("g{i}"), "ops")).collect();
    notifications.push(notification("p0", "g", "pager"));
    let running = start(notifications, script.clone(), 2);
    running.until_nothing_pending().await;
    running.stop().await;
    assert_eq!(script.accepted.lock().unwrap().len(), 9);
    // Two to `ops` and one to `pager` at most at once.
    assert!(script.most_in_flight.load(Ordering::SeqCst) <= 3, "{}", script.most_in_flight.load(Ordering::SeqCst));
    assert!(script.most_in_flight.load(Ordering::SeqCst) >= 2);
}

#[test]
fn backoff_doubles_to_its_cap_with_bounded_jitter() {
    let backoff = Backoff { initial_ms: 1_000, max_ms: 300_000, jitter: 0.2 };
    assert_eq!(backoff.delay_ms(1, 0.5), 1_000);
    assert_eq!(backoff.delay_ms(2, 0.5), 2_000);
    assert_eq!(backoff.delay_ms(5, 0.5), 16_000);
    assert_eq!(backoff.delay_ms(9, 0.5), 256_000);
    assert_eq!(backoff.delay_ms(10, 0.5), 300_000, "capped");
    assert_eq!(backoff.delay_ms(u32::MAX, 0.5), 300_000, "no overflow");
    assert_eq!(backoff.delay_ms(1, 0.0), 800, "-20%");
    assert_eq!(backoff.delay_ms(3, 0.0), 3_200);
    assert_eq!(backoff.delay_ms(1, 0.999_999), 1_200, "+20%");
    assert_eq!(backoff.delay_ms(20, 0.999_999), 300_000, "never above the cap");
    assert_eq!(backoff.delay_ms(20, 0.0), 240_000);
    assert_eq!(backoff.delay_ms(0, 0.5), 1_000, "0 failures waits as 1");
    let none = Backoff { jitter: 0.0, ..backoff };
    assert_eq!(none.delay_ms(1, 0.0), 1_000);
}

#[test]
fn jitter_units_are_in_range_and_spread() {
    let units: Vec<f64> = (0..1000).map(unit_from).collect();
    assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
    let low = units.iter().filter(|u| **u < 0.5).count();
    assert!((400..600).contains(&low), "{low}");
}
