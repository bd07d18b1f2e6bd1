//! Reading the changelog back: the whole of it at start (`read`), the
//! rest of it from where a standby left off (`read_into`), and a
//! standby's following of it as it is written ([`Follower`]).
//!
//! What it must not do: take a record it cannot read. Each record is
//! checked as it comes (`records::Contents::add`), and a damaged one is an
//! error naming its topic, partition and offset.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use super::fence::Written;
use super::open::ensure_topic;
use super::records::{read_writer, Contents, CLAIM_PREFIX, WRITER_HEADER};
use super::READ_LIMIT;
use crate::config::KafkaConfig;
use crate::error::{Domain, Error, Retry};
use crate::kafka::{client_config, client_error, Context};

/// The changelog reader's client context: the end of the partition is
/// how a read knows it is done, not an error to log (librdkafka's default
/// context logs it as one).
struct Reading;

impl rdkafka::client::ClientContext for Reading {
    fn error(&self, error: KafkaError, reason: &str) {
        let end = matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF));
        if !end {
            tracing::warn!(error = %error, reason, "changelog reader");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Reading {}

type Reader = BaseConsumer<Reading>;

/// A consumer of partition `partition` of `topic` from `from`, in no
/// group.
fn reader(kafka: &KafkaConfig, topic: &str, partition: i32, from: Offset) -> Result<Reader, Error> {
    let reader_group = format!("{}.changelog-reader", kafka.group);
    let consumer: Reader = client_config(
        kafka,
        &[
            // librdkafka refuses `assign` without a group id; this group
            // is never joined (no subscribe) and nothing is committed to it.
            ("group.id", &reader_group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            // Why EOF events and not the high watermark: the end is known
            // from the fetch itself (a ListOffsets answer may lag one batch
            // behind on some brokers, docs/notes/kafka-broker.md).
            ("enable.partition.eof", "true"),
            ("fetch.wait.max.ms", "50"),
        ],
    )
    .create_with_context(Reading)
    .map_err(|e| client_error("cannot create the changelog reader", e))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, from)
        .map_err(|e| client_error("cannot assign the changelog partition", e))?;
    consumer.assign(&assignment).map_err(|e| client_error("cannot assign the changelog partition", e))?;
    Ok(consumer)
}

/// Reads partition `partition` of `topic` from its beginning to its end
/// (a short-lived consumer with a manual assignment, in no group); also
/// returns the offset after the last record read.
pub(super) fn read(kafka: &KafkaConfig, topic: &str, partition: i32) -> Result<(Contents, Offset), Error> {
    let mut contents = Contents::default();
    let next = read_into(kafka, topic, partition, &mut contents, Offset::Beginning, None)?;
    Ok((contents, next))
}

/// Reads from `from` to the end into `contents`, and on until the record
/// at `through` if one is given (a record this process has just written:
/// the end a fetch reports can lag a batch behind on some brokers); returns
/// the next offset.
pub(super) fn read_into(
    kafka: &KafkaConfig,
    topic: &str,
    partition: i32,
    contents: &mut Contents,
    from: Offset,
    through: Option<i64>,
) -> Result<Offset, Error> {
    let consumer = reader(kafka, topic, partition, from)?;
    let mut next = from;
    let started = Instant::now();
    loop {
        if started.elapsed() > READ_LIMIT {
            return Err(Error::new(
                Domain::Kafka,
                Retry::Later,
                format!(
                    "reading the changelog {topic}, partition {partition}, took more than {} s",
                    READ_LIMIT.as_secs()
                ),
            ));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => {
                let short = through.is_some_and(|through| !matches!(next, Offset::Offset(n) if n > through));
                if !short {
                    return Ok(next);
                }
            }
            Some(other) => next = take(topic, partition, contents, other)?,
        }
    }
}

/// Adds one polled message to `contents`; returns the offset after it.
fn take(
    topic: &str,
    partition: i32,
    contents: &mut Contents,
    polled: Result<rdkafka::message::BorrowedMessage<'_>, KafkaError>,
) -> Result<Offset, Error> {
    let message = polled.map_err(|e| {
        Error::new(Domain::Kafka, Retry::Later, format!("cannot read the changelog {topic}")).caused_by(e)
    })?;
    let writer = writer_of(&message).ok_or_else(|| {
        Error::new(
            Domain::Kafka,
            Retry::Never,
            format!(
                "the changelog {topic}, partition {partition}, offset {}: an unreadable `{WRITER_HEADER}` header",
                message.offset()
            ),
        )
    })?;
    contents.add(message.offset(), message.key(), message.payload(), writer).map_err(|d| {
        Error::new(
            Domain::Kafka,
            Retry::Never,
            format!(
                "the changelog {topic}, partition {partition}, offset {}: {}; delete the topic to start \
                 over from the local state",
                d.offset, d.why
            ),
        )
    })?;
    Ok(Offset::Offset(message.offset() + 1))
}

/// The epoch a record's header names (0 without one).
fn writer_of(message: &rdkafka::message::BorrowedMessage<'_>) -> Option<u64> {
    let header = message.headers().and_then(|headers| headers.iter().find(|h| h.key == WRITER_HEADER));
    read_writer(header.map(|h| h.value.unwrap_or_default()))
}

/// The writer epochs of the records from `from` through `through` (the
/// gap [`super::fence::Fence::check`] asks about).
pub(super) fn writers_between(
    kafka: &KafkaConfig,
    topic: &str,
    partition: i32,
    from: i64,
    through: i64,
) -> Result<Vec<Written>, Error> {
    let consumer = reader(kafka, topic, partition, Offset::Offset(from))?;
    let started = Instant::now();
    let mut written = Vec::new();
    while started.elapsed() < GAP_READ_LIMIT {
        match consumer.poll(Duration::from_millis(200)) {
            // Why not done at the end of the partition: `through` is this
            // process's own acknowledged record, so it is there to read
            // (the end a fetch reports can lag a batch behind on some
            // brokers); compaction never takes a partition's newest records.
            None | Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Err(e)) => {
                return Err(
                    Error::new(Domain::Kafka, Retry::Later, format!("cannot read the changelog {topic}")).caused_by(e)
                )
            }
            Some(Ok(message)) => {
                // An unreadable epoch counts as a newer one: the writer
                // stops rather than guess.
                let writer = writer_of(&message).unwrap_or(u64::MAX);
                let claim = message.key().is_some_and(|key| key.starts_with(CLAIM_PREFIX.as_bytes()));
                written.push(Written { offset: message.offset(), writer, claim });
                if message.offset() >= through {
                    return Ok(written);
                }
            }
        }
    }
    Err(Error::new(
        Domain::Kafka,
        Retry::Later,
        format!(
            "reading offsets {from} to {through} of the changelog {topic} took more than {} s",
            GAP_READ_LIMIT.as_secs()
        ),
    ))
}

/// How long reading a gap may take: the batch's outputs wait for it.
const GAP_READ_LIMIT: Duration = Duration::from_secs(10);

/// A standby's reading of the changelog as the active process writes it
/// (`standby.rs`): when it takes over, only what came since its last read
/// is left to read, not the whole topic.
pub struct Follower {
    kafka: KafkaConfig,
    topic: String,
    partition: i32,
    consumer: Reader,
    contents: Contents,
    next: Offset,
}

impl Follower {
    /// Creates the topic when missing and starts reading `partition` of it
    /// (the one state's, [`super::PROCESS_PARTITION`], or a scale-out task's)
    /// from its beginning.
    pub fn start(
        kafka: &KafkaConfig,
        topic: &str,
        partition: i32,
        context: &Context,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Follower, Error> {
        ensure_topic(kafka, topic, context, runtime)?;
        Ok(Follower {
            kafka: kafka.clone(),
            topic: topic.to_string(),
            partition,
            consumer: reader(kafka, topic, partition, Offset::Beginning)?,
            contents: Contents::default(),
            next: Offset::Beginning,
        })
    }

    /// Reads what comes within `wait`. A record it cannot read is an
    /// error, as it is at start; a failed fetch (the broker away for a
    /// while) is not: librdkafka fetches again, and the standby waits.
    pub fn follow(&mut self, wait: Duration) -> Result<(), Error> {
        let until = Instant::now() + wait;
        let mut timeout = wait;
        while let Some(polled) = self.consumer.poll(timeout) {
            match polled {
                Err(KafkaError::PartitionEOF(_)) => {}
                other => match take(&self.topic, self.partition, &mut self.contents, other) {
                    Ok(next) => self.next = next,
                    Err(e) if e.is_retryable() => tracing::warn!(error = %e, "standby: reading the changelog"),
                    Err(e) => return Err(e),
                },
            }
            timeout = until.saturating_duration_since(Instant::now());
            if timeout.is_zero() {
                break;
            }
        }
        Ok(())
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.contents.bytes
    }

    /// Reads the rest, to the end as it is now, and gives everything read
    /// and the offset after it. Why a new consumer: the end of the
    /// partition is known from the EOF event of a fetch, and the following
    /// one may have had its EOF already.
    pub(super) fn finish(self) -> Result<(Contents, Offset), Error> {
        let Follower { kafka, topic, partition, consumer, mut contents, next } = self;
        drop(consumer);
        let next = read_into(&kafka, &topic, partition, &mut contents, next, None)?;
        Ok((contents, next))
    }
}
