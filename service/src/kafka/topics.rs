//! Creating the topics mon uses, for `mon run --create-topics`: the input
//! topics, the records topic, the dead-letter topic, the audit topic and
//! the changelog, each only if it is missing, through the Kafka admin API
//! before the consumer subscribes. The changelog and the group's members
//! topic are mon's own internal topics (as Kafka Streams' changelogs
//! are), so [`create_compacted`] also creates them at every start without
//! the flag.
//!
//! A topic that exists is left as it is: its partitions and settings are
//! the operator's, and changing them (CreatePartitions, AlterConfigs) would
//! move keys between partitions under a running producer. The settings of
//! a new topic, and why, are in docs/service.md ("Topics").

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use super::{client_config, client_error, Context};
use crate::config::KafkaConfig;
use crate::error::{Domain, Error, Retry};

/// The longest creating the topics may take (a broker answers in
/// milliseconds; an unreachable one is reported after this).
const TIMEOUT: Duration = Duration::from_secs(15);

/// What became of each topic.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub created: Vec<String>,
    pub existing: Vec<String>,
}

/// Creates every topic of `kafka` that does not exist yet, with the
/// settings of `kafka.create_topics`.
pub async fn create_missing(kafka: &KafkaConfig, context: Context) -> Result<Outcome, Error> {
    let admin: AdminClient<Context> = client_config(kafka, &[])
        .create_with_context(context)
        .map_err(|e| client_error("cannot create the Kafka admin client", e))?;
    let settings = &kafka.create_topics;
    let replication = || TopicReplication::Fixed(settings.replication);
    let retention = settings.dead_letter_retention_ms.to_string();
    // One request per name, even if the dead-letter topic is also read.
    let mut names = BTreeSet::new();
    let mut topics = Vec::new();
    for name in &kafka.topics {
        if names.insert(name.as_str()) {
            topics.push(NewTopic::new(name, settings.partitions, replication()));
        }
    }
    // Records and dead letters are logs, not latest-value tables: a
    // compacted records topic would keep only an item's last record (its
    // `completed`, say) and drop the `late` before it.
    if names.insert(&kafka.records_topic) {
        topics.push(
            NewTopic::new(&kafka.records_topic, settings.partitions, replication()).set("cleanup.policy", "delete"),
        );
    }
    if names.insert(&kafka.dead_letter_topic) {
        topics.push(
            NewTopic::new(&kafka.dead_letter_topic, settings.partitions, replication())
                .set("cleanup.policy", "delete")
                .set("retention.ms", &retention),
        );
    }
    // The audit log is a log too; kept as long as the broker's default.
    if names.insert(&kafka.audit_topic) {
        topics.push(
            NewTopic::new(&kafka.audit_topic, settings.partitions, replication()).set("cleanup.policy", "delete"),
        );
    }
    let changelog = kafka.changelog_topic();
    if let Some(changelog) = changelog.as_deref().filter(|name| names.insert(name)) {
        topics.push(compacted_topic(changelog, settings.partitions, settings.replication));
    }
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT)).operation_timeout(Some(TIMEOUT));
    let results = admin.create_topics(&topics, &options).await.map_err(|e| {
        Error::new(Domain::Kafka, Retry::Later, format!("cannot create topics at {}", kafka.brokers)).caused_by(e)
    })?;
    let mut outcome = Outcome::default();
    let mut failed = Vec::new();
    for result in results {
        match result {
            Ok(name) => outcome.created.push(name),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => outcome.existing.push(name),
            Err((name, code)) => failed.push((name, code)),
        }
    }
    tracing::info!(
        created = outcome.created.join(", "),
        existing = outcome.existing.join(", "),
        partitions = settings.partitions,
        replication = settings.replication,
        "kafka topics checked"
    );
    if failed.is_empty() {
        return Ok(outcome);
    }
    // A broker that is unreachable or busy may answer later; a refusal
    // (no permission, a setting it rejects) needs a person.
    let retry = if failed.iter().all(|(_, code)| passing(*code)) { Retry::Later } else { Retry::Never };
    let list: Vec<String> = failed.iter().map(|(name, code)| format!("{name}: {code}")).collect();
    Err(Error::new(Domain::Kafka, retry, format!("cannot create topics ({})", list.join("; "))))
}

/// A topic of mon's own that holds the latest value per key: the
/// changelog (partitioned like the input, so that a later process per
/// partition owns the changelog partition of the same number) and the
/// group's members. Compacted, so that a tombstone (a null value) removes
/// a key (`changelog.rs`, `group.rs`).
fn compacted_topic(name: &str, partitions: i32, replication: i32) -> NewTopic<'_> {
    NewTopic::new(name, partitions, TopicReplication::Fixed(replication)).set("cleanup.policy", "compact")
}

/// What the broker keeps of a topic mon creates for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// The latest record per key (the changelog, the members, the leases).
    Compact,
    /// Records until the broker's retention deletes them (the repartition
    /// topic, whose keys never repeat).
    Delete,
    /// Every record, for good (a group's rule changes: a new task reads
    /// them all to run what the group runs).
    Keep,
}

/// Creates the compacted topic `name` (`what` it is, for messages) with
/// `partitions` unless it exists; true if it was created now. A refusal
/// says what to do instead: `remedy`.
pub async fn create_compacted(
    kafka: &KafkaConfig,
    context: Context,
    name: &str,
    partitions: i32,
    what: &str,
    remedy: &str,
) -> Result<bool, Error> {
    create_topic(kafka, context, name, partitions, Cleanup::Compact, what, remedy).await
}

/// [`create_compacted`], with the topic's `cleanup` policy chosen.
pub async fn create_topic(
    kafka: &KafkaConfig,
    context: Context,
    name: &str,
    partitions: i32,
    cleanup: Cleanup,
    what: &str,
    remedy: &str,
) -> Result<bool, Error> {
    let admin: AdminClient<Context> = client_config(kafka, &[])
        .create_with_context(context)
        .map_err(|e| client_error("cannot create the Kafka admin client", e))?;
    let policy = match cleanup {
        Cleanup::Compact => "compact",
        Cleanup::Delete => "delete",
        Cleanup::Keep => "delete, retention.ms=-1, retention.bytes=-1",
    };
    let replication = TopicReplication::Fixed(kafka.create_topics.replication);
    let topic = match cleanup {
        Cleanup::Compact => compacted_topic(name, partitions, kafka.create_topics.replication),
        Cleanup::Delete => NewTopic::new(name, partitions, replication),
        Cleanup::Keep => NewTopic::new(name, partitions, replication)
            .set("cleanup.policy", "delete")
            .set("retention.ms", "-1")
            .set("retention.bytes", "-1"),
    };
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT)).operation_timeout(Some(TIMEOUT));
    let results = admin.create_topics([&topic], &options).await.map_err(|e| {
        Error::new(Domain::Kafka, Retry::Later, format!("cannot create topic {name} at {}", kafka.brokers)).caused_by(e)
    })?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((_, code))) => {
            let retry = if passing(code) { Retry::Later } else { Retry::Never };
            Err(Error::new(
                Domain::Kafka,
                retry,
                format!("cannot create the {what} topic {name}: {code}; create it (cleanup.policy={policy}), {remedy}"),
            ))
        }
        None => Ok(false),
    }
}

fn passing(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        OperationTimedOut
            | RequestTimedOut
            | BrokerTransportFailure
            | AllBrokersDown
            | NotController
            | NetworkException
    )
}

/// The number of partitions every input topic has, for state per
/// partition (`processor::tasks`): one task per partition number, taking
/// that partition of every input topic, so the topics must agree (as
/// Kafka Streams requires of the topics one task joins). Tried for up to
/// `wait` while a topic is not there yet (just created, or not yet).
/// How many partitions `topic` has (0: none, or no such topic).
fn count_partitions(consumer: &rdkafka::consumer::BaseConsumer<Context>, topic: &str) -> Result<usize, Error> {
    use rdkafka::consumer::Consumer as _;
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).map_err(|e| {
        Error::new(Domain::Kafka, Retry::Later, format!("cannot read the metadata of {topic}")).caused_by(e)
    })?;
    Ok(metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()).map_or(0, |t| t.partitions().len()))
}

/// How many partitions `topic` has (0: none, or no such topic).
pub fn partitions_of(kafka: &KafkaConfig, context: Context, topic: &str) -> Result<usize, Error> {
    let consumer = client_config(kafka, &[])
        .create_with_context(context)
        .map_err(|e| client_error("cannot create a Kafka client to read a topic's metadata", e))?;
    count_partitions(&consumer, topic)
}

pub fn input_partitions(kafka: &KafkaConfig, context: Context, wait: Duration) -> Result<u16, Error> {
    use rdkafka::consumer::BaseConsumer;
    let consumer: BaseConsumer<Context> = client_config(kafka, &[])
        .create_with_context(context)
        .map_err(|e| client_error("cannot create a Kafka client to read the topics' metadata", e))?;
    let started = std::time::Instant::now();
    loop {
        let mut counts = Vec::new();
        let mut missing = None;
        for topic in &kafka.topics {
            let count = count_partitions(&consumer, topic)?;
            if count == 0 {
                missing = Some(topic.clone());
            }
            counts.push((topic.clone(), count));
        }
        match missing {
            Some(topic) if started.elapsed() >= wait => {
                return Err(Error::new(
                    Domain::Kafka,
                    Retry::Later,
                    format!("the input topic {topic} does not exist: state per partition needs its partition count"),
                ))
            }
            Some(_) => std::thread::sleep(Duration::from_millis(500)),
            None => {
                let first = counts[0].1;
                if let Some((topic, count)) = counts.iter().find(|(_, count)| *count != first) {
                    return Err(Error::config(format!(
                        "kafka.state_per_partition: the input topics must have as many partitions each: {} has {first}, \
                         {topic} has {count}",
                        counts[0].0
                    )));
                }
                return u16::try_from(first).map_err(|_| Error::config(format!("{first} partitions: too many")));
            }
        }
    }
}
