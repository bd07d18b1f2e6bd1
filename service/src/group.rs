//! Who is in the consumer group, and where to reach them: each `mon run`
//! writes a record about itself to a small compacted topic
//! (`<group>.members`, keyed by member id) every few seconds, and reads
//! everyone's back, so that `GET /api/v1/group` answers for the whole
//! group and a process can name the others. A clean stop writes a
//! tombstone; a process that stops writing is gone after [`GONE_AFTER`].
//!
//! With fail-over on, standbys announce themselves too (from `standby.rs`,
//! with the role "standby"), so that the active process knows whether
//! anyone would take over from it, and says so when no one would
//! ([`FailoverCover`], `mon_standbys_alive`).
//!
//! Why a topic: Kafka's own group description (DescribeGroups) would
//! carry the same, but the test broker answers it with no groups, and a
//! topic works the same on every broker.
//!
//! What it must not do: decide anything about partitions or about who is
//! active. Kafka's group protocol assigns the partitions and the lease
//! (`lease.rs`); this module only reports what each process was assigned,
//! and its role, as that process last said it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::clock::wall_now;
use crate::config::KafkaConfig;
use crate::error::Error;
use crate::kafka::{Consumer, Context, Producer};

/// How often a process says it is there.
pub const EVERY: Duration = Duration::from_secs(5);

/// A member not heard from for this long is shown as gone: three missed
/// announcements, so one slow produce does not make it flicker.
pub const GONE_AFTER: Duration = Duration::from_secs(15);

/// A member gone this long is no longer listed: a process killed without
/// its goodbye leaves a record in the compacted topic for good.
pub const FORGOTTEN_AFTER: Duration = Duration::from_secs(600);

/// With fail-over on, how long the active process waits for a standby to
/// be heard from before it says that none would take over: three of a
/// standby's announcements, so that standbys started with it (and its own
/// reading of the members topic) have time to show up.
pub const NO_STANDBY_GRACE: Duration = Duration::from_secs(15);

/// What a process of the group is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// With fail-over on: holds the group's lease and runs the state.
    Active,
    /// With fail-over on: waits for the lease, following the changelog.
    Standby,
    /// Without fail-over: runs the state, and no one takes over from it.
    /// Also what a record written before roles existed means.
    #[default]
    Single,
    /// With `[kafka] scale_out`: runs the tasks it lists, as one of the
    /// group's processes; its address answers for the whole group.
    #[serde(rename = "scale-out")]
    ScaleOut,
}

/// What one process says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    /// Unique per start of a process: host, process id and start time.
    pub member: String,
    /// The base URL of its API, as others reach it (`[http] advertise`).
    pub http: String,
    pub host: String,
    pub pid: u32,
    /// mon's version.
    pub version: String,
    /// RFC 3339.
    pub started_at: String,
    /// When it last said this (RFC 3339, its own wall clock).
    pub seen_at: String,
    /// The input partitions Kafka assigned to it, as `topic/partition`
    /// (none on a standby: it reads no input).
    pub partitions: Vec<String>,
    /// Missing from the records of versions before fail-over: those ran
    /// without it.
    #[serde(default)]
    pub role: MemberRole,
}

/// The group as this process knows it.
#[derive(Clone, Debug)]
pub struct Registry {
    pub group: String,
    pub this: String,
    members: Arc<RwLock<BTreeMap<String, Member>>>,
    /// When this process became the active one of a fail-over group (ms);
    /// `None` while it is a standby or runs without fail-over.
    active_since: Arc<RwLock<Option<i64>>>,
}

/// `GET /api/v1/group`'s answer.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConsumerGroupView {
    pub group: String,
    /// The member id of the process that answered.
    pub this: String,
    /// Every member heard from, in member id order.
    pub members: Vec<ConsumerGroupMember>,
    /// Who would take over from this process; null unless it is the
    /// active process of a fail-over group.
    pub failover: Option<FailoverCover>,
}

/// With fail-over on, as the active process sees its group: whether a
/// standby would take over if it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FailoverCover {
    /// Standbys heard from within the last 15 s.
    pub standbys_alive: usize,
    /// No standby is alive, and this process has been active for longer
    /// than the grace period (15 s): if it stops, monitoring stops until
    /// another process of the group is started.
    pub no_standby: bool,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConsumerGroupMember {
    #[serde(flatten)]
    pub member: Member,
    /// Heard from within the last 15 s.
    pub alive: bool,
}

impl Registry {
    /// The registry of a process that starts as `role`.
    pub fn new(group: &str, http: String, role: MemberRole) -> (Registry, Member) {
        let host = host_name();
        let pid = std::process::id();
        let started = wall_now();
        let member = Member {
            member: format!("{host}-{pid}-{started}"),
            http,
            host,
            pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: mon_stdlib::time::format_rfc3339(started),
            seen_at: mon_stdlib::time::format_rfc3339(started),
            partitions: Vec::new(),
            role,
        };
        let registry = Registry {
            group: group.to_string(),
            this: member.member.clone(),
            members: Arc::new(RwLock::new(BTreeMap::new())),
            active_since: Arc::new(RwLock::new((role == MemberRole::Active).then_some(started))),
        };
        registry.heard(member.clone());
        (registry, member)
    }

    pub(crate) fn heard(&self, member: Member) {
        if let Ok(mut members) = self.members.write() {
            members.insert(member.member.clone(), member);
        }
    }

    /// This process, a standby until now, holds the lease: `member` (its
    /// record) says so from now on, and the grace period for standbys to
    /// show up starts.
    pub fn took_over(&self, member: &mut Member) {
        member.role = MemberRole::Active;
        if let Ok(mut since) = self.active_since.write() {
            *since = Some(wall_now());
        }
        self.heard(member.clone());
    }

    fn left(&self, member: &str) {
        if let Ok(mut members) = self.members.write() {
            members.remove(member);
        }
    }

    /// The members as of `now` (ms).
    pub fn view(&self, now: i64) -> ConsumerGroupView {
        let (gone_after, forgotten_after) = (GONE_AFTER.as_millis() as i64, FORGOTTEN_AFTER.as_millis() as i64);
        let members = self.members.read().map(|m| m.values().cloned().collect::<Vec<_>>()).unwrap_or_default();
        let members = members
            .into_iter()
            .filter_map(|member| {
                let seen = mon_stdlib::time::parse_rfc3339(&member.seen_at).unwrap_or(i64::MIN);
                let silent = now.saturating_sub(seen);
                (silent <= forgotten_after).then_some(ConsumerGroupMember { alive: silent <= gone_after, member })
            })
            .collect::<Vec<ConsumerGroupMember>>();
        let active_since = self.active_since.read().ok().and_then(|since| *since);
        let failover = active_since.map(|since| {
            let standbys_alive = members
                .iter()
                .filter(|m| m.alive && m.member.role == MemberRole::Standby && m.member.member != self.this)
                .count();
            let grace_over = now.saturating_sub(since) > NO_STANDBY_GRACE.as_millis() as i64;
            FailoverCover { standbys_alive, no_standby: standbys_alive == 0 && grace_over }
        });
        ConsumerGroupView { group: self.group.clone(), this: self.this.clone(), members, failover }
    }

    /// The base URLs of the other live members (for messages that should
    /// say where they are).
    pub fn others(&self, now: i64) -> Vec<String> {
        self.view(now)
            .members
            .into_iter()
            .filter(|m| m.alive && m.member.member != self.this)
            .map(|m| m.member.http)
            .collect()
    }
}

/// The members topic of a configuration.
pub fn topic(kafka: &KafkaConfig) -> String {
    format!("{}.members", kafka.group)
}

/// Creates the members topic when it is missing: mon's own, like the
/// changelog, so made at every start (one partition, compacted: the
/// latest record of each member, a tombstone removes it).
async fn create_topic(kafka: &KafkaConfig, context: Context, topic: &str) -> Result<(), Error> {
    let remedy = "with one partition";
    if crate::kafka::topics::create_compacted(kafka, context, topic, 1, "group members", remedy).await? {
        tracing::info!(topic, "group members topic created");
    }
    Ok(())
}

/// What [`announce`] needs.
#[derive(Clone)]
pub struct Announcer {
    pub registry: Registry,
    pub member: Member,
    pub topic: String,
    pub kafka: KafkaConfig,
    pub context: Context,
    pub producer: Producer,
    /// Whose assignment is announced.
    pub consumer: Option<Arc<Consumer>>,
    /// With `[kafka] scale_out`: the tasks this process runs now, as
    /// `<group>.tasks/<partition>` (announced instead of an assignment).
    pub tasks: Option<Arc<dyn Fn() -> Vec<String> + Send + Sync>>,
    /// Wakes the announcer before its next turn: a scale-out process's
    /// tasks changed, and the others route to them by what it says.
    pub wake: Option<Arc<tokio::sync::Notify>>,
}

/// Makes the members topic if it is missing, then says this process is
/// there every [`EVERY`], with the partitions it holds now, until `stop`;
/// then says it left (a tombstone), so the others see it gone at once.
/// Nothing here waits on Kafka for long: a process whose group cannot be
/// told still monitors, starts and stops on time.
pub async fn announce(mut announcer: Announcer, mut stop: tokio::sync::watch::Receiver<bool>) {
    let topic = announcer.topic.clone();
    tokio::select! {
        made = create_topic(&announcer.kafka, announcer.context.clone(), &topic) => {
            if let Err(e) = made {
                tracing::warn!(error = %e, "the group's members may not be listed");
            }
        }
        _ = stop.changed() => return,
    }
    loop {
        // A send that waits on an absent Kafka must not hold a stop.
        tokio::select! {
            _ = announcer.say() => {}
            _ = stop.changed() => break,
        }
        let wake = announcer.wake.clone();
        let woken = async move {
            match wake {
                Some(wake) => wake.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = woken => {}
            _ = stop.changed() => break,
        }
    }
    let member = &announcer.member.member;
    let tombstone: FutureRecord<'_, String, [u8]> = FutureRecord::to(&topic).key(member);
    let goodbye = Duration::from_secs(2);
    if !matches!(tokio::time::timeout(goodbye, announcer.producer.send(tombstone, goodbye)).await, Ok(Ok(_))) {
        tracing::debug!(topic, "cannot tell the group this process left");
    }
}

/// Says once that this process is there, making the members topic first
/// when it is missing: a first write to a missing topic would have the
/// broker make it with its default partition count, and [`follow`] reads
/// partition 0 only.
pub async fn announce_once(mut announcer: Announcer) {
    if let Err(e) = create_topic(&announcer.kafka, announcer.context.clone(), &announcer.topic).await {
        tracing::warn!(error = %e, "the group's members may not be listed");
        return;
    }
    announcer.say().await;
}

impl Announcer {
    /// Writes this process's record once, as it is now; gives up after
    /// [`EVERY`] (the next announcement will try again).
    pub async fn say(&mut self) {
        let member = &mut self.member;
        member.partitions = match (&self.tasks, self.consumer.as_deref()) {
            (Some(tasks), _) => tasks(),
            (None, Some(consumer)) => assigned(consumer),
            (None, None) => Vec::new(),
        };
        member.seen_at = mon_stdlib::time::format_rfc3339(wall_now());
        self.registry.heard(member.clone());
        match serde_json::to_vec(&*member) {
            Ok(value) => {
                let record = FutureRecord::to(&self.topic).key(&member.member).payload(&value);
                let sent = tokio::time::timeout(EVERY, self.producer.send(record, EVERY)).await;
                if !matches!(sent, Ok(Ok(_))) {
                    tracing::debug!(topic = self.topic, "cannot announce this process to its group");
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot encode this process's member record"),
        }
    }
}

fn assigned(consumer: &Consumer) -> Vec<String> {
    let Ok(assignment) = consumer.assignment() else { return Vec::new() };
    let mut partitions: Vec<String> =
        assignment.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect();
    partitions.sort();
    partitions
}

/// Reads the members topic from its start and keeps `registry` up to
/// date, until `stop`. Runs on a thread of its own (the consumer blocks).
pub fn follow(
    registry: Registry,
    kafka: &KafkaConfig,
    context: Context,
    topic: &str,
    stop: &AtomicBool,
) -> Result<(), Error> {
    // librdkafka refuses `assign` without a group id; this one never
    // joins a group (nothing subscribes), and commits nothing.
    let consumer: BaseConsumer<Context> = crate::kafka::client_config(
        kafka,
        &[("group.id", &format!("{}.members-reader", kafka.group)), ("enable.auto.commit", "false")],
    )
    .create_with_context(context)
    .map_err(|e| crate::kafka::client_error("cannot create the group members' reader", e))?;
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| crate::kafka::client_error("cannot read the group members' topic", e))?;
    consumer.assign(&partitions).map_err(|e| crate::kafka::client_error("cannot read the group members' topic", e))?;
    let metrics = consumer.context().metrics.clone();
    while !stop.load(Ordering::Relaxed) {
        // Kept fresh here, at every turn, because a standby counts as gone
        // by the passing of time as well as by a tombstone.
        if let Some(cover) = registry.view(wall_now()).failover {
            metrics.standbys_alive.set(cover.standbys_alive as i64);
        }
        let Some(message) = consumer.poll(Duration::from_millis(250)) else { continue };
        let Ok(message) = message else { continue };
        let Some(Ok(key)) = message.key().map(std::str::from_utf8) else { continue };
        match message.payload() {
            None => registry.left(key),
            Some(bytes) => match serde_json::from_slice::<Member>(bytes) {
                Ok(member) if member.member == key && key != registry.this => registry.heard(member),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, key, "a group member's record that is not one"),
            },
        }
    }
    Ok(())
}

/// This machine's name, for member ids and the advertised address.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The API's base URL as other processes reach it: `[http] advertise`
/// when set; otherwise the bound address, with an unspecified IP
/// (0.0.0.0, ::) replaced by the host's name.
pub fn advertised(configured: Option<&str>, bound: std::net::SocketAddr, tls: bool) -> String {
    if let Some(url) = configured {
        return url.trim_end_matches('/').to_string();
    }
    let scheme = if tls { "https" } else { "http" };
    if bound.ip().is_unspecified() {
        format!("{scheme}://{}:{}", host_name(), bound.port())
    } else {
        format!("{scheme}://{bound}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_not_heard_from_for_15_s_is_gone_and_a_tombstone_removes_it() {
        let (registry, this) = Registry::new("g", "http://a:1".into(), MemberRole::Single);
        let now = mon_stdlib::time::parse_rfc3339(&this.seen_at).unwrap();
        let other = Member { member: "b-2-3".into(), http: "http://b:2".into(), ..this.clone() };
        registry.heard(other.clone());
        assert_eq!(registry.others(now), vec!["http://b:2".to_string()]);
        let later = now + GONE_AFTER.as_millis() as i64 + 1;
        let view = registry.view(later);
        assert_eq!(view.members.len(), 2);
        assert!(view.members.iter().all(|m| !m.alive), "neither heard from since");
        assert!(registry.others(later).is_empty());
        let much_later = now + FORGOTTEN_AFTER.as_millis() as i64 + 1;
        assert!(registry.view(much_later).members.is_empty(), "no longer listed");
        registry.left(&other.member);
        assert_eq!(registry.view(now).members.len(), 1);
        assert_eq!(registry.view(now).this, this.member);
    }

    #[test]
    fn a_member_record_without_a_role_is_one_written_before_fail_over_so_single() {
        let (_, this) = Registry::new("g", "http://a:1".into(), MemberRole::Standby);
        let mut old = serde_json::to_value(&this).unwrap();
        assert_eq!(old["role"], "standby");
        old.as_object_mut().unwrap().remove("role");
        let read: Member = serde_json::from_value(old).unwrap();
        assert_eq!(read.role, MemberRole::Single);
        assert_eq!(Member { role: MemberRole::Standby, ..read }, this);
    }

    #[test]
    fn the_active_process_says_no_standby_only_after_the_grace_period_and_while_none_is_alive() {
        let (registry, mut this) = Registry::new("g", "http://a:1".into(), MemberRole::Standby);
        assert_eq!(registry.view(wall_now()).failover, None, "a standby covers no one");
        registry.took_over(&mut this);
        assert_eq!(this.role, MemberRole::Active);
        let since = registry.active_since.read().unwrap().unwrap();
        let grace = NO_STANDBY_GRACE.as_millis() as i64;
        let cover = |now| registry.view(now).failover.unwrap();
        assert_eq!(cover(since + grace), FailoverCover { standbys_alive: 0, no_standby: false });
        assert_eq!(cover(since + grace + 1), FailoverCover { standbys_alive: 0, no_standby: true });

        let at = |ms| mon_stdlib::time::format_rfc3339(ms);
        let standby =
            Member { member: "b".into(), role: MemberRole::Standby, seen_at: at(since + grace), ..this.clone() };
        let single =
            Member { member: "c".into(), role: MemberRole::Single, seen_at: at(since + grace), ..this.clone() };
        registry.heard(standby.clone());
        registry.heard(single);
        assert_eq!(cover(since + grace + 1), FailoverCover { standbys_alive: 1, no_standby: false });
        let standby_gone = since + 2 * grace + 1;
        assert_eq!(cover(standby_gone), FailoverCover { standbys_alive: 0, no_standby: true }, "not heard from");
        registry.heard(Member { seen_at: at(standby_gone), ..standby.clone() });
        assert_eq!(cover(standby_gone).standbys_alive, 1);
        registry.left(&standby.member);
        assert_eq!(cover(standby_gone), FailoverCover { standbys_alive: 0, no_standby: true }, "its tombstone");

        let (single_registry, _) = Registry::new("g", "http://a:1".into(), MemberRole::Single);
        assert_eq!(single_registry.view(since + 10 * grace).failover, None, "without fail-over, no cover to miss");
    }

    #[test]
    fn the_advertised_address_names_the_host_when_bound_to_every_interface() {
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(advertised(None, any, false), format!("http://{}:8080", host_name()));
        let loopback: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(advertised(None, loopback, true), "https://127.0.0.1:9");
        assert_eq!(advertised(Some("https://mon-2.example:443/"), any, false), "https://mon-2.example:443");
    }
}
