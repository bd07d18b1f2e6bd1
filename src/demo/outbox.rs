//! The outbox: the events the scenarios have planned, in time order, each
//! rendered as a CloudEvents line when the generator returns it. Events
//! belong to streams (one per scenario, two for the file feeds); a stream
//! gives an event its id prefix and breaks ties between equal times.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use mon_stdlib::time::format_rfc3339;
use serde_json::Value;

// Streams: each has its own random numbers, id prefix and tie-break rank.
pub(super) const STREAM_TRADES: u64 = 0;
pub(super) const STREAM_ORDERS: u64 = 1;
pub(super) const STREAM_BATCHES: u64 = 2;
pub(super) const STREAM_POSITIONS: u64 = 3;
pub(super) const STREAM_PRICES: u64 = 4;
const STREAMS: usize = 5;

/// The envelope id prefix of each stream, as in the examples' recordings.
fn id_prefix(stream: u64) -> &'static str {
    match stream {
        STREAM_TRADES => "tl",
        STREAM_ORDERS => "oms",
        STREAM_BATCHES => "sch",
        _ => "fr",
    }
}

/// A planned event; `data` is already rendered.
pub(super) struct Planned {
    pub(super) time: i64,
    stream: u64,
    /// Order of planning within the stream: breaks ties between equal times.
    seq: u64,
    source: &'static str,
    pub(super) kind: &'static str,
    pub(super) data: String,
}

impl Planned {
    fn rank(&self) -> (i64, u64, u64) {
        (self.time, self.stream, self.seq)
    }

    pub(super) fn envelope(&self, run: u64, counter: u64) -> String {
        format!(
            r#"{{"specversion":"1.0","type":"{}","id":"{}-{:08x}-{counter:07}","source":"{}","time":"{}","data":{}}}"#,
            self.kind,
            id_prefix(self.stream),
            run & 0xffff_ffff,
            self.source,
            timestamp(self.time),
            self.data
        )
    }
}

impl PartialEq for Planned {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}
impl Eq for Planned {}
impl PartialOrd for Planned {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Planned {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

#[derive(Default)]
pub(super) struct Outbox {
    pub(super) heap: BinaryHeap<Reverse<Planned>>,
    seqs: [u64; STREAMS],
}

impl Outbox {
    /// Plans an event; `Value::Null` fields are left out (absent optional fields).
    pub(super) fn add(
        &mut self,
        stream: u64,
        time: i64,
        source: &'static str,
        kind: &'static str,
        fields: &[(&str, Value)],
    ) {
        let slot = &mut self.seqs[stream as usize % STREAMS];
        *slot += 1;
        let planned = Planned { time, stream, seq: *slot, source, kind, data: object(fields) };
        self.heap.push(Reverse(planned));
    }
}

/// A JSON object with its fields in the given order (as the producers write
/// them), leaving out nulls.
fn object(fields: &[(&str, Value)]) -> String {
    let members: Vec<String> =
        fields.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| format!("{}:{v}", Value::from(*k))).collect();
    format!("{{{}}}", members.join(","))
}

/// RFC 3339 UTC, always with milliseconds, as the producers stamp their events.
pub(super) fn timestamp(ms: i64) -> String {
    let text = format_rfc3339(ms);
    if text.contains('.') {
        text
    } else {
        text.replacen('Z', ".000Z", 1)
    }
}
