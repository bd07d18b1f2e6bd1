//! Test harness for a real Kafka-protocol broker (tansu, started by
//! `scripts/setup-test-env`; see docs/notes/kafka-broker.md for what it supports).
//!
//! Include it from an integration test with
//! `#[path = "support/kafka.rs"] mod kafka;` — it lives under `tests/support/`
//! so that cargo does not build it as a test crate of its own.
//!
//! Everything here is synchronous and panics on failure: a test that needs
//! the broker fails (never skips) when the broker is missing or misbehaves.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Same variable and default as `scripts/kafka-broker`.
const BROKER_ENV: &str = "MON_TEST_BROKER";
const DEFAULT_BROKER: &str = "127.0.0.1:9092";
/// Bound on any single request to the broker (metadata, topic creation, flush).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A message read back from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub partition: i32,
    pub offset: i64,
}

/// The broker address (`$MON_TEST_BROKER`, default 127.0.0.1:9092), after
/// checking once per process that a broker answers a metadata request there.
///
/// Panics with "no Kafka broker at ADDR: run scripts/setup-test-env" if not.
pub fn brokers() -> String {
    // The outcome, failure included, is kept: without a broker every test
    // fails at once instead of each waiting for its own probe to time out.
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let addr = std::env::var(BROKER_ENV).unwrap_or_else(|_| DEFAULT_BROKER.to_string());
        let probe: BaseConsumer = config_for(&addr).create().expect("create probe client");
        // A few seconds: a local broker answers in milliseconds.
        match probe.fetch_metadata(None, Duration::from_secs(3)) {
            Ok(_) => Ok(addr),
            Err(e) => Err(format!("no Kafka broker at {addr}: run scripts/setup-test-env ({e})")),
        }
    });
    checked.clone().unwrap_or_else(|message| panic!("{message}"))
}

/// Client configuration pointing at the test broker; the base for any client
/// a test builds itself.
pub fn client_config() -> ClientConfig {
    config_for(&brokers())
}

/// Configuration for a consumer in group `group_id`. tansu's first group join
/// takes about half of `session.timeout.ms`, so keep it short (docs/notes/kafka-broker.md);
/// still wait for the assignment before asserting anything.
pub fn group_config(group_id: &str) -> ClientConfig {
    let mut config = client_config();
    config
        .set("group.id", group_id)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest");
    config
}

fn config_for(addr: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", addr);
    config
}

/// A topic name no other test (in this or a concurrent process) uses:
/// `prefix-PID-COUNTER-NANOS`. The prefix should be made of `[a-zA-Z0-9._-]`.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Creates `name` with `partitions` partitions (replication 1) and waits for
/// the result. A topic that already exists is fine.
pub fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config().create().expect("create admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results =
        block_on(admin.create_topics([&topic], &options)).unwrap_or_else(|e| panic!("create topic {name}: {e}"));
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => panic!("create topic {topic}: {code}"),
        }
    }
}

/// A fresh input topic of `partitions` partitions, with its records and
/// dead-letter topics (one partition each): `(input, records, dead)`.
pub fn topic_set(prefix: &str, partitions: i32) -> (String, String, String) {
    let topic = unique_topic(prefix);
    let (records, dead) = (format!("{topic}.records"), format!("{topic}.dead"));
    create_topic(&topic, partitions);
    create_topic(&records, 1);
    create_topic(&dead, 1);
    (topic, records, dead)
}

/// Produces `(key, payload, headers)` messages to `topic`, partitioned by key
/// (keyless messages go to any partition), and returns once every one of them
/// is acknowledged. Panics on any delivery error.
pub fn produce(topic: &str, messages: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>)>) {
    produce_to(topic, None, messages);
}

/// Produces each line as a message without key or headers to partition 0, in
/// order (an explicit partition, so that order holds whatever the topic's
/// partition count).
pub fn produce_lines(topic: &str, lines: &[String]) {
    let messages = lines.iter().map(|line| (None, line.clone().into_bytes(), Vec::new()));
    produce_to(topic, Some(0), messages);
}

/// Records delivery reports; librdkafka calls it from `poll`/`flush`.
#[derive(Default)]
struct DeliveryLog {
    delivered: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                let failure = format!("partition {}: {e}", m.partition());
                self.failures.lock().unwrap().push(failure);
            }
        }
    }
}

/// [`produce`] to one partition (`Some`), or by key (`None`).
pub fn produce_to(
    topic: &str,
    partition: Option<i32>,
    messages: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>)>,
) {
    let producer: BaseProducer<DeliveryLog> = client_config()
        // Idempotence: no duplicates or reordering on internal retries
        // (supported by tansu, per docs/notes/kafka-broker.md).
        .set("enable.idempotence", "true")
        // Bulk speed: wait a few ms to fill large batches.
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        // Fail a test in seconds rather than librdkafka's default 5 minutes.
        .set("message.timeout.ms", "30000")
        .create_with_context(DeliveryLog::default())
        .expect("create producer");

    let mut sent = 0;
    for (key, payload, headers) in messages {
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (name, value)| {
            h.insert(Header { key: name, value: Some(value.as_slice()) })
        });
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(&payload).headers(headers);
        if let Some(key) = &key {
            record = record.key(key.as_slice());
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        // A full local queue is back-pressure, not failure: serve delivery
        // reports to make room, then retry the same record.
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("produce to {topic}: {e}"),
            }
        }
        sent += 1;
    }
    producer.flush(Duration::from_secs(60)).unwrap_or_else(|e| panic!("flush {sent} messages to {topic}: {e}"));

    let log = producer.context();
    let failures = log.failures.lock().unwrap();
    assert!(failures.is_empty(), "{} of {sent} messages to {topic} failed: {failures:?}", failures.len());
    assert_eq!(log.delivered.load(Ordering::Relaxed), sent, "delivery reports for {topic}");
}

/// Reads `topic` from the beginning of every partition, without a consumer
/// group (`assign`, so there is no group-join delay and nothing is committed).
///
/// Returns once at least `expect_at_least` messages were read and nothing new
/// arrived for `idle`, or once `max_wait` has passed (with whatever was read;
/// the caller asserts). Sorted by (partition, offset).
pub fn consume_all(topic: &str, expect_at_least: usize, idle: Duration, max_wait: Duration) -> Vec<Message> {
    let consumer: BaseConsumer = client_config()
        // librdkafka refuses `assign` without a group.id, but never joins the
        // group unless we subscribe; with auto-commit off it stores nothing.
        .set("group.id", unique_topic("mon-test-consume-all"))
        .set("enable.auto.commit", "false")
        // Answer empty fetches quickly so `idle` is measured, not the broker's
        // long-poll (default 500 ms).
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create consumer");

    let metadata =
        consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT).unwrap_or_else(|e| panic!("metadata for {topic}: {e}"));
    let partitions = match metadata.topics() {
        [t] if t.error().is_none() && !t.partitions().is_empty() => t.partitions(),
        other => panic!("topic {topic} not found in metadata: {other:?}"),
    };
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        assignment.add_partition_offset(topic, p.id(), Offset::Beginning).expect("add partition to assignment");
    }
    consumer.assign(&assignment).expect("assign partitions");

    let start = Instant::now();
    let mut last_new = Instant::now();
    let mut messages = Vec::new();
    while start.elapsed() < max_wait && !(messages.len() >= expect_at_least && last_new.elapsed() >= idle) {
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            Some(Ok(m)) => {
                let headers = m.headers().map_or_else(Vec::new, |hs| {
                    hs.iter().map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec())).collect()
                });
                messages.push(Message {
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                    headers,
                    partition: m.partition(),
                    offset: m.offset(),
                });
                last_new = Instant::now();
            }
        }
    }
    messages.sort_by_key(|m| (m.partition, m.offset));
    messages
}

/// Runs a future to completion on this thread. rdkafka's admin API is async
/// but completes on its own background thread, so parking until woken is all
/// the executor it needs (and spares a runtime dependency).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}
