//! The intake thread: polls Kafka, turns each message into its envelope
//! line ([`Envelopes::normalize`]) and decodes it, so that the processing
//! thread only runs the engine and writes state. On two cores the two
//! halves run side by side (issue 13).
//!
//! It must not touch the engine, the journal, the store or the offsets:
//! the processing thread still decides what is a redelivery, journals
//! every line it applies (a replay decodes the line again), and commits.
//! What it hands over is only a head start, checked on arrival: a line
//! decoded for a program that is no longer running is decoded again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mon_compiler::ir::Program;
use mon_runtime::event::{Decoded, Decoder};
use rdkafka::message::{Headers as _, Message as _};

use crate::envelope::Envelopes;
use crate::kafka::Consumer;

/// Messages handed over at once: enough to make the channel's cost per
/// message negligible, few enough that a batch is not held up.
pub const CHUNK: usize = 512;

/// Chunks in flight between the threads: the intake runs at most this far
/// ahead, so memory stays bounded when the engine is the slower half.
pub const CHUNKS_AHEAD: usize = 8;

/// One Kafka message, read.
pub struct Polled<'p> {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The program `read` was decoded for.
    pub program: &'p Program,
    pub read: Read,
    /// Read from the repartition topic: where another task read it
    /// (`handing.rs`).
    pub handed_from: Option<super::handing::Origin>,
}

pub enum Read {
    /// An envelope line and what the decoder made of it.
    Line { line: String, decoded: Decoded, dead: Option<Original> },
    /// Not an envelope at all, and why.
    Unreadable { reason: String, original: Original },
}

/// A message's bytes and headers, kept only when it is rejected: its
/// dead letter carries them.
pub struct Original {
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The program the processing thread runs: it sets it after an activation,
/// and the intake decodes the next chunk for it.
pub type Running<'p> = Arc<Mutex<&'p Program>>;

/// Runs until `stop` is set or the processing thread has gone.
/// With fail-over, the input topics and the offsets the restored state
/// holds: every partition is assigned before the first poll
/// ([`crate::kafka::Intake::AssignAll`]).
pub struct Assign<'a> {
    pub topics: &'a [String],
    pub next: &'a crate::store::Offsets,
    /// A scale-out task: only this partition of each topic.
    pub only: Option<i32>,
    /// A scale-out task's repartition topic (one of `topics`), whose
    /// messages are lines another task handed over (`handing.rs`).
    pub repartition: Option<&'a str>,
}

/// Assigns every input partition, trying again each second while a topic
/// is missing or the broker is away; false if asked to stop first.
fn assign_all(consumer: &Consumer, assign: Assign<'_>, stop: &AtomicBool) -> bool {
    let mut said = false;
    while !stop.load(Ordering::Relaxed) {
        match crate::kafka::assign_all(consumer, assign.topics, assign.next, assign.only) {
            Ok(_) => return true,
            Err(e) => {
                if !said {
                    tracing::warn!(error = %e, "cannot assign the input partitions yet; trying again every second");
                    said = true;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    false
}

pub fn run<'p>(
    consumer: &Consumer,
    envelopes: &Envelopes,
    running: &Running<'p>,
    to_processor: &SyncSender<Vec<Polled<'p>>>,
    stop: &AtomicBool,
    assign: Option<Assign<'_>>,
) {
    let repartition = assign.as_ref().and_then(|assign| assign.repartition.map(str::to_string));
    if let Some(assign) = assign {
        if !assign_all(consumer, assign, stop) {
            return;
        }
    }
    let Some(mut program) = current(running) else { return };
    let mut decoder = Decoder::new(program);
    let mut topic: Arc<str> = Arc::from("");
    while !stop.load(Ordering::Relaxed) {
        if let Some(now_running) = current(running) {
            if !std::ptr::eq(now_running, program) {
                program = now_running;
                decoder = Decoder::new(program);
            }
        }
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut timeout = Duration::from_millis(50);
        while chunk.len() < CHUNK {
            let message = match consumer.poll(timeout) {
                None => break,
                Some(Err(e)) => {
                    // rdkafka has already handed this error, with its
                    // reason (which topic is missing, which broker is
                    // down), to the consumer's context (`kafka::Context`),
                    // which logs it and keeps it for readiness.
                    tracing::debug!(error = %e, "kafka poll");
                    break;
                }
                Some(Ok(message)) => message,
            };
            // Once one message has come, take what is already there and
            // hand it over: waiting for a full chunk would delay a quiet
            // stream's events by the poll timeout.
            timeout = Duration::ZERO;
            if *topic != *message.topic() {
                topic = Arc::from(message.topic());
            }
            let headers: Vec<(&str, &[u8])> = message
                .headers()
                .map(|h| h.iter().map(|h| (h.key, h.value.unwrap_or_default())).collect())
                .unwrap_or_default();
            let original = || Original {
                payload: message.payload().unwrap_or_default().to_vec(),
                headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
            };
            let handed = repartition.as_deref() == Some(&*topic);
            let handed_from = handed
                .then(|| headers.iter().find(|(k, _)| *k == super::handing::FROM_HEADER))
                .flatten()
                .and_then(|(_, value)| super::handing::Origin::parse(value));
            // A handed line is already an envelope line, as the task that
            // read it first made it.
            let normalized = match (handed, &handed_from) {
                (false, _) => envelopes.normalize(message.payload(), &headers),
                (true, Some(_)) => std::str::from_utf8(message.payload().unwrap_or_default())
                    .map(std::borrow::Cow::Borrowed)
                    .map_err(|_| "a handed event that is not UTF-8".to_string()),
                (true, None) => Err(format!(
                    "a message of the repartition topic without a `{}` header that mon wrote",
                    super::handing::FROM_HEADER
                )),
            };
            let read = match normalized {
                Ok(line) => {
                    let line = line.into_owned();
                    let decoded = decoder.decode(&line);
                    let dead = matches!(decoded, Decoded::Rejected(_)).then(original);
                    Read::Line { line, decoded, dead }
                }
                Err(reason) => Read::Unreadable { reason, original: original() },
            };
            chunk.push(Polled {
                topic: topic.clone(),
                partition: message.partition(),
                offset: message.offset(),
                program,
                read,
                handed_from,
            });
        }
        if chunk.is_empty() {
            continue;
        }
        // Blocks while the processing thread is behind; fails once it
        // has gone (the receiver goes with it, so a stop cannot hang here).
        if to_processor.send(chunk).is_err() {
            return;
        }
    }
}

fn current<'p>(running: &Running<'p>) -> Option<&'p Program> {
    running.lock().ok().map(|program| *program)
}

/// Readies the engine's cache for the messages queued after the one just
/// taken (see `Engine::prefetch_ahead`); a message decoded for a program an
/// activation has replaced is skipped, as it will be decoded again.
/// `engine_of`: the engine of a partition's state (one for all, or one
/// per partition).
pub fn prefetch_ahead<'e>(
    engine_of: impl Fn(i32) -> Option<&'e mon_runtime::Engine<'e>>,
    queue: &[Polled],
    program: &Program,
) {
    let Some(polled) = queue.get(mon_runtime::engine::PREFETCH_AHEAD - 1) else { return };
    let Some(engine) = engine_of(polled.partition) else { return };
    if let Read::Line { decoded: Decoded::Event(event), .. } = &polled.read {
        if std::ptr::eq(polled.program, program) {
            engine.prefetch(event);
        }
    }
}
