//! The Kafka test harness (tests/support/kafka.rs) against the real broker
//! started by scripts/setup-test-env. These fail, not skip, without a broker.

#[path = "support/kafka.rs"]
mod kafka;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const IDLE: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(30);

#[test]
fn keyed_messages_with_headers_round_trip_across_partitions() {
    let topic = kafka::unique_topic("harness-roundtrip");
    kafka::create_topic(&topic, 4);

    const N: usize = 2_000;
    let sent: Vec<_> = (0..N)
        .map(|i| {
            let key = format!("key-{}", i % 37).into_bytes();
            let payload = format!("{{\"seq\":{i}}}").into_bytes();
            let headers = vec![
                ("seq".to_string(), i.to_string().into_bytes()),
                ("ce_type".to_string(), b"trade_booked".to_vec()),
            ];
            (Some(key), payload, headers)
        })
        .collect();
    kafka::produce(&topic, sent.clone());

    let got = kafka::consume_all(&topic, N, IDLE, MAX_WAIT);
    assert_eq!(got.len(), N, "every message comes back exactly once");

    // Same messages, headers included (compared as sets: order differs
    // across partitions).
    let as_sent: BTreeSet<_> = sent.into_iter().collect();
    let as_read: BTreeSet<_> =
        got.iter().map(|m| (m.key.clone(), m.payload.clone().unwrap(), m.headers.clone())).collect();
    assert_eq!(as_read, as_sent);

    // Keys spread over all four partitions, each key on exactly one.
    let mut partition_of_key = BTreeMap::new();
    for m in &got {
        let p = *partition_of_key.entry(m.key.clone()).or_insert(m.partition);
        assert_eq!(p, m.partition, "key {:?} on two partitions", m.key);
    }
    let used: BTreeSet<_> = got.iter().map(|m| m.partition).collect();
    assert_eq!(used, BTreeSet::from([0, 1, 2, 3]));

    // Offsets are dense from 0 in every partition (no transactions here, so
    // no control records), and per key the sequence numbers rise with them.
    for p in 0..4 {
        let offsets: Vec<i64> = got.iter().filter(|m| m.partition == p).map(|m| m.offset).collect();
        assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>(), "partition {p}");
    }
    let mut last_seq: BTreeMap<_, usize> = BTreeMap::new();
    for m in &got {
        let seq: usize = String::from_utf8(m.headers[0].1.clone()).unwrap().parse().unwrap();
        if let Some(prev) = last_seq.insert(m.key.clone(), seq) {
            assert!(prev < seq, "key {:?}: seq {seq} after {prev}", m.key);
        }
    }
}

#[test]
fn lines_keep_their_order_on_partition_zero() {
    let topic = kafka::unique_topic("harness-order");
    // More than one partition: produce_lines must still put everything on
    // partition 0, in order.
    kafka::create_topic(&topic, 3);

    let lines: Vec<String> = (0..10_000).map(|i| format!("line {i}")).collect();
    kafka::produce_lines(&topic, &lines);

    let got = kafka::consume_all(&topic, lines.len(), IDLE, MAX_WAIT);
    assert!(got.iter().all(|m| m.partition == 0 && m.key.is_none() && m.headers.is_empty()));
    let read: Vec<String> = got.iter().map(|m| String::from_utf8(m.payload.clone().unwrap()).unwrap()).collect();
    assert_eq!(read.len(), lines.len());
    assert!(read == lines, "lines came back out of order");
}

#[test]
fn consume_all_on_an_empty_topic_returns_nothing_after_idle() {
    let topic = kafka::unique_topic("harness-empty");
    kafka::create_topic(&topic, 2);
    kafka::create_topic(&topic, 2); // creating it again is fine

    let start = Instant::now();
    let got = kafka::consume_all(&topic, 0, IDLE, MAX_WAIT);
    let took = start.elapsed();
    assert!(got.is_empty(), "{got:?}");
    assert!(took >= IDLE, "returned after {took:?}, before the idle period");
    assert!(took < Duration::from_secs(10), "took {took:?}: idle detection, not max_wait, should end it");
}
