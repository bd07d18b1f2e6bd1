//! A scale-out task's events for scheduled workflows owned by another
//! partition (`scale_out.rs`): the owner's task may run in another
//! process, so they go to it through `<group>.repartition`, as Kafka
//! Streams repartitions before a join. One process with every partition
//! hands them within its batch instead (`tasks.rs`).
//!
//! Exactly once in effect, from at-least-once pieces:
//! - the origin task produces each event to the owner's partition of the
//!   repartition topic, and waits for every acknowledgement before its
//!   batch is journaled ([`Handing::await_all`]): a batch the changelog
//!   holds has handed all it had to, and one it does not hold is read
//!   again from the input, after a crash or a hand-over, and hands again;
//! - so the owner may read one event twice. Each carries where it came
//!   from (`mon-handed-from: <topic>/<partition>@<offset>`), and the owner
//!   keeps, with its input offsets, the next origin offset it takes from
//!   each origin topic and partition: a copy below it is dropped
//!   ([`origin_key`]). Why the next offset and not every one taken: the
//!   producer is idempotent and gapless (`enable.gapless.guarantee`), and
//!   a batch ends at its first event that could not be handed, so an
//!   origin's events reach the owner in their order, none skipped.
//!
//! What it must not do: hand an event its own task owns (the engine takes
//! it already), or let a batch be journaled before its events are handed.

use std::time::Duration;

use mon_compiler::ir::Program;
use mon_runtime::engine::Owners;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};

use mon_runtime::live::{Fed, Input};

use super::{tasks, Pending, Processor};
use crate::config::{KafkaConfig, TaskOf};
use crate::error::{Domain, Error, Retry};
use crate::kafka::{client_config, client_error, Context, Producer};

/// The header saying which input topic, partition and offset a handed
/// event came from.
pub const FROM_HEADER: &str = "mon-handed-from";

/// Where a handed event was read first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: u16,
    pub offset: i64,
}

impl Origin {
    /// The [`FROM_HEADER`] value: `<topic>/<partition>@<offset>` (a Kafka
    /// topic name has neither `/` nor `@`).
    fn header(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }

    /// Parses a [`FROM_HEADER`] value.
    pub fn parse(value: &[u8]) -> Option<Origin> {
        let (place, offset) = std::str::from_utf8(value).ok()?.rsplit_once('@')?;
        let (topic, partition) = place.rsplit_once('/')?;
        Some(Origin { topic: topic.to_string(), partition: partition.parse().ok()?, offset: offset.parse().ok()? })
    }
}

/// The repartition topic of a group: `<group>.repartition`.
pub fn topic(kafka: &KafkaConfig) -> String {
    format!("{}.repartition", kafka.group)
}

/// The key, among a task's offsets, of the next origin offset it takes
/// from `origin`'s topic and partition: a name no Kafka topic can have
/// (`#` is not allowed in one), so it never meets an input's offsets, and
/// the offset commit leaves it out ([`is_origin_key`]).
pub fn origin_key(repartition: &str, origin: &Origin) -> (String, i32) {
    (format!("{repartition}#{}", origin.topic), i32::from(origin.partition))
}

/// Whether an offsets key is an [`origin_key`], not a Kafka partition's.
pub fn is_origin_key(topic: &str) -> bool {
    topic.contains('#')
}

/// The origin side: what this task hands, and to whom.
pub struct Handing {
    pub topic: String,
    task: TaskOf,
    owners: Owners,
    producer: Producer,
    runtime: tokio::runtime::Handle,
    in_flight: Vec<DeliveryFuture>,
}

impl Handing {
    pub fn new(
        kafka: &KafkaConfig,
        context: Context,
        runtime: tokio::runtime::Handle,
        program: &Program,
        task: TaskOf,
    ) -> Result<Handing, Error> {
        let producer = client_config(
            kafka,
            &[
                ("enable.idempotence", "true"),
                // Why: with a gap (one event failed, the next delivered),
                // the owner would take the next and then drop the first
                // when it is handed again (module doc).
                ("enable.gapless.guarantee", "true"),
                ("linger.ms", "0"),
                ("message.timeout.ms", "10000"),
            ],
        )
        .create_with_context(context)
        .map_err(|e| client_error("cannot create the repartition producer", e))?;
        Ok(Handing {
            topic: topic(kafka),
            task,
            owners: Owners::new(program, task.partitions),
            producer,
            runtime,
            in_flight: Vec::new(),
        })
    }

    /// After an activation: the new program's scheduled workflows.
    pub fn program(&mut self, program: &Program) {
        self.owners = Owners::new(program, self.task.partitions);
    }

    /// Hands `line`, an event of `event_type` read at `offset` of this
    /// task's partition of `topic`, to every other partition whose
    /// scheduled workflows take it.
    pub fn hand(&mut self, event_type: u32, line: &str, topic: &str, offset: i64) -> Result<(), Error> {
        let owners: Vec<u16> = self.owners.also(event_type, self.task.partition).collect();
        if owners.is_empty() {
            return Ok(());
        }
        let from = Origin { topic: topic.to_string(), partition: self.task.partition, offset }.header();
        for owner in &owners {
            loop {
                let headers = OwnedHeaders::new().insert(Header { key: FROM_HEADER, value: Some(from.as_str()) });
                let record: FutureRecord<'_, str, str> = FutureRecord::to(&self.topic)
                    .partition(i32::from(*owner))
                    .key(from.as_str())
                    .payload(line)
                    .headers(headers);
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        self.in_flight.push(delivery);
                        break;
                    }
                    // Why wait: the queue empties as the broker acknowledges.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err((e, _)) => return Err(self.failed(e)),
                }
            }
        }
        Ok(())
    }

    /// Waits until the broker holds every event handed since the last
    /// call: called before the batch that read them is journaled.
    pub fn await_all(&mut self) -> Result<(), Error> {
        for delivery in std::mem::take(&mut self.in_flight) {
            match self.runtime.block_on(delivery) {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(self.failed(e)),
                Err(_) => return Err(Error::new(Domain::Kafka, Retry::Later, "the repartition producer was dropped")),
            }
        }
        Ok(())
    }

    fn failed(&self, e: KafkaError) -> Error {
        Error::new(
            Domain::Kafka,
            Retry::Later,
            format!(
                "cannot hand an event to its scheduled workflow's owner through {}: the batch is not kept, and \
                 the task starts again from its changelog",
                self.topic
            ),
        )
        .caused_by(e)
    }
}

impl Processor<'_> {
    /// A line another task handed over, read from `repartition`: true if
    /// this task takes it, false for a copy of one it took already (handed
    /// again after the origin's task was taken over).
    pub(super) fn take_handed(&self, repartition: &str, origin: &Origin, batch: &mut Pending) -> bool {
        let key = origin_key(repartition, origin);
        match batch.offsets.get(&key).or_else(|| self.stored_offsets.get(&key)) {
            Some(next) if origin.offset < *next => false,
            _ => {
                batch.offsets.insert(key, origin.offset + 1);
                true
            }
        }
    }

    /// Hands the event just taken (`fed`, read at `offset` of `topic`) to
    /// the owners of the scheduled workflows that take it, if this is a
    /// scale-out task; false if it could not, and the batch must end.
    pub(super) fn hand_on(&mut self, fed: &Fed, topic: &str, offset: i64, batch: &mut Pending) -> bool {
        let (Some(handing), Some(event_type)) = (&mut self.handing, tasks::event_type(fed)) else { return true };
        let Some((_, Input::Line(line))) = batch.inputs.last() else { return true };
        match handing.hand(event_type, line, topic, offset) {
            Ok(_) => true,
            Err(e) => {
                batch.unhanded = Some(e);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_of_a_handed_event_reads_back_and_its_offsets_key_is_no_topic() {
        let origin = Origin { topic: "trades.eu-1".into(), partition: 2, offset: 1234 };
        assert_eq!(origin.header(), "trades.eu-1/2@1234");
        assert_eq!(Origin::parse(origin.header().as_bytes()), Some(origin.clone()));
        assert_eq!(Origin::parse(b"trades/2-1234"), None);
        assert_eq!(Origin::parse(b"trades/x@1"), None);
        assert_eq!(Origin::parse(b"2@1"), None, "no topic");
        let (key, partition) = origin_key("g.repartition", &origin);
        assert!(is_origin_key(&key));
        assert_eq!(partition, 2);
        assert!(!is_origin_key("g.repartition"));
        // Two input topics' partition 2 are two origins.
        let other = Origin { topic: "payments".into(), ..origin.clone() };
        assert_ne!(origin_key("g.repartition", &other), origin_key("g.repartition", &origin));
    }
}
