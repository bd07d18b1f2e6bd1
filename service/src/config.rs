//! The service's configuration (docs/service.md): built-in defaults, then
//! `mon.toml`, then `MON_*` environment variables, then command-line flags,
//! each overriding the one before; validated before anything starts.
//!
//! Environment variables name a key by its path, joined with `__`:
//! `MON_KAFKA__BROKERS=host:9092`, `MON_HTTP__LISTEN=0.0.0.0:8080`,
//! `MON_STATE_DIR=/var/lib/mon`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use super::envelope::EnvelopeConfig;
use super::error::Error;
use super::notify::config::{NotifyConfig, Secrets};
use mon_runtime::live::ClockMode;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where sled keeps the state; created if missing.
    pub state_dir: PathBuf,
    pub clock: ClockMode,
    /// Event clock only: monitoring starts at this instant (RFC 3339), as
    /// `mon simulate --from`; default: the first event's time.
    pub from: Option<String>,
    /// Kafka in and out; absent: events come over HTTP only.
    pub kafka: Option<KafkaConfig>,
    pub envelope: EnvelopeConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub engine: EngineConfig,
    /// How notifications reach their receivers (docs/service.md,
    /// "Notifications").
    pub notify: NotifyConfig,
    /// `NAME = "value"` for the rules' `secret("NAME")` and the `*_secret`
    /// keys of `[notify]`; a name not here is read from the environment
    /// variable `NAME`. Printed as `***`.
    pub secrets: Secrets,
    /// The alert book and the delivery of its notifications.
    pub alerts: AlertsConfig,
    /// Who may use the HTTP API (docs/service.md, "Authentication").
    pub auth: AuthConfig,
    /// How long events and trend rollups are kept (docs/service.md, "Event store", "Trends").
    pub retention: RetentionConfig,
    /// Native code for the rules' conditions (`MON_JIT=off` turns it off;
    /// records are the same either way: docs/notes/performance.md).
    pub jit: JitSwitch,
}

/// `jit = "on" | "off"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitSwitch {
    #[default]
    On,
    Off,
}

/// `[retention]`: how long the event store keeps events and how long trend
/// rollups are kept, apart from the records and aggregates (`[engine]
/// keep_records`, each workflow's `retain`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// A duration such as `14d` or `36h`, counted back from the service's
    /// clock (the wall clock, or the event clock) against each event's
    /// time; `"0"` turns the event store off.
    pub events: String,
    /// Minute rows older than this are compacted into hour rows (2 days).
    pub rollups_minutes_ms: u64,
    /// Hour rows older than this are dropped (90 days).
    pub rollups_hours_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY_MS: u64 = 24 * 3600 * 1000;
        RetentionConfig { events: "14d".into(), rollups_minutes_ms: 2 * DAY_MS, rollups_hours_ms: 90 * DAY_MS }
    }
}

impl RetentionConfig {
    /// The event retention in ms; `None` when the store is off.
    pub fn events_ms(&self) -> Result<Option<u64>, String> {
        let text = self.events.trim();
        if text == "0" {
            return Ok(None);
        }
        match mon_grammar::parse_duration(text) {
            Some(0) => Ok(None),
            Some(ms) => Ok(Some(ms)),
            None => Err(format!(
                "retention.events: `{}` is not a duration such as 14d, 36h or 90m (or \"0\" for no event store)",
                self.events
            )),
        }
    }
}

/// `[auth]`: off by default (every endpoint open, as before).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// When true, every endpoint but `/healthz`, `/readyz` and `/metrics`
    /// needs `Authorization: Bearer <token>` of a token with the role it
    /// needs (`mon token create`), or an OIDC JWT (`[auth.oidc]`).
    pub enabled: bool,
    /// Bearer JWTs from an OpenID Connect identity provider, besides the
    /// API tokens.
    pub oidc: Option<OidcConfig>,
    /// Where `tokens.json` is read: the state directory unless set. A
    /// scale-out task reads its process's (`scale_out.rs`), where `mon
    /// token create --state-dir` writes; never read from a file.
    #[serde(skip)]
    pub tokens_dir: Option<PathBuf>,
}

/// `[auth.oidc]`: which provider's JWTs count, and where their role is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The `iss` the tokens must have, exactly.
    pub issuer: String,
    /// A value the tokens' `aud` must have (mon's client id at the provider).
    pub audience: String,
    /// The provider's key set (JWKS); https, or http to a loopback address.
    pub jwks_url: String,
    /// The claim with the role: a name, or a dotted path into nested
    /// objects (`realm_access.roles`); a string or an array of strings,
    /// of which the highest known role counts.
    pub role_claim: String,
    /// The provider's role names to mon's (`"sre" = "operator"`). Empty:
    /// the claim holds mon's own names. When given, only the names it
    /// lists count.
    pub roles: BTreeMap<String, crate::auth::Role>,
    /// How far `exp` and `nbf` may be off, for clocks that disagree a little.
    pub leeway_seconds: u64,
    /// How often the key set is fetched again.
    pub jwks_refresh_seconds: u64,
    /// A token with an unknown key id fetches the key set at once (a key
    /// rotation), but not more often than this.
    pub jwks_min_refetch_seconds: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            issuer: String::new(),
            audience: String::new(),
            jwks_url: String::new(),
            role_claim: "mon_role".into(),
            roles: BTreeMap::new(),
            leeway_seconds: 60,
            jwks_refresh_seconds: 3600,
            jwks_min_refetch_seconds: 30,
        }
    }
}

/// `[http.tls]`: serve HTTPS with this certificate and key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the server's certificate first, then its chain.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: the authorities one mon process trusts when it calls another
    /// of its group (a standby passing a request on, a scale-out front
    /// asking another's tasks), besides the public roots and `cert`'s own
    /// certificates: a private CA's root. Read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

impl TlsConfig {
    /// The files of certificates a process trusts when it calls another of
    /// its group: `ca`, and `cert` (one certificate for the whole group,
    /// or a chain with its intermediates).
    pub fn trusted(&self) -> Vec<&std::path::Path> {
        self.ca.iter().map(PathBuf::as_path).chain([self.cert.as_path()]).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Topics the events come from.
    pub topics: Vec<String>,
    pub group: String,
    /// Where records go (keyed by workflow and key).
    pub records_topic: String,
    /// Where rejected messages go, with the reason in headers.
    pub dead_letter_topic: String,
    /// Where the audit log's entries go (keyed by their sequence number).
    pub audit_topic: String,
    /// Passed to librdkafka as they are: TLS and SASL
    /// (`security.protocol`, `ssl.ca.location`, `sasl.mechanisms`,
    /// `sasl.username`, `sasl.password`...) or tuning. A number or a
    /// boolean is taken as its text (`"linger.ms" = 5`, or a `MON_*`
    /// variable, which is read as a number when it looks like one).
    #[serde(deserialize_with = "properties")]
    pub properties: BTreeMap<String, String>,
    /// The topics `mon run --create-topics` creates when they are missing.
    pub create_topics: CreateTopicsConfig,
    /// Mirror the journal and snapshots to a compacted topic, so that a
    /// process started on an empty or stale state directory rebuilds its
    /// state from Kafka (docs/service.md, "The changelog"). On by default.
    pub changelog: bool,
    /// The changelog's topic; `<group>.changelog` when not given.
    pub changelog_topic: Option<String>,
    /// Several processes of this group take over from each other: the one
    /// holding the group's lease (`lease.rs`) runs, the others wait as
    /// standbys following the changelog, and one of them takes over when
    /// it stops or dies (docs/service.md, "Fail-over"). Needs the changelog.
    pub failover: bool,
    /// Keep the state per input partition: one engine, journal and
    /// snapshot per partition of the input topics, which must all have the
    /// same number of partitions (docs/service.md, "State per partition").
    /// The first step to processes that share the work; for now one
    /// process holds every partition, without fail-over. With the
    /// changelog, each partition's task writes its partition of it.
    pub state_per_partition: bool,
    /// Several processes of this group share the input's partitions: each
    /// partition is a task with a state of its own, run by the process
    /// the group protocol gives it to, and rebuilt from its partition of
    /// the changelog by the process that takes it over (`scale_out.rs`,
    /// docs/service.md, "Scale-out"). Needs the changelog.
    pub scale_out: bool,
    /// With `scale_out`: each process follows, as they are written, the
    /// changelog partitions of the tasks it does not run (warm standbys),
    /// so that a task it is given reads only what came since. Costs each
    /// process a reader of the others' changelog and its records in memory.
    pub standby_tasks: bool,
    /// The format of the snapshots written to the changelog: 2 (the
    /// default) carries the trend rollups; 1 does not, and is what a
    /// release before them reads. Set 1 while a rolling upgrade from such
    /// a release runs, so that a task restored by a process not yet
    /// upgraded can read its snapshot (docs/service.md, "The changelog").
    pub snapshot_format: u8,
    /// Set by the scale-out supervisor for the run of one task; never read
    /// from a file.
    #[serde(skip)]
    pub task: Option<TaskOf>,
}

/// Which task of a scale-out group a run is: the input partition whose
/// state it holds, of how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskOf {
    pub partition: u16,
    pub partitions: u16,
}

impl KafkaConfig {
    /// The changelog topic, or `None` when the changelog is off.
    pub fn changelog_topic(&self) -> Option<String> {
        self.changelog.then(|| self.changelog_topic.clone().unwrap_or_else(|| format!("{}.changelog", self.group)))
    }
}

/// How missing topics are created (docs/service.md, "Topics").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CreateTopicsConfig {
    /// Create the input, records and dead-letter topics that do not exist,
    /// before subscribing (the `--create-topics` flag sets it).
    pub enabled: bool,
    /// Partitions of each topic created. One keeps the order the event
    /// clock needs, and one process consumes every partition anyway
    /// (docs/service.md, "Limits").
    pub partitions: i32,
    /// Replicas of each partition; -1 takes the broker's
    /// `default.replication.factor`.
    pub replication: i32,
    /// The dead-letter topic's `retention.ms`: long enough for a person to
    /// look at what was refused and send it again; -1 keeps it forever.
    pub dead_letter_retention_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// Largest `POST /api/v1/events` body, bytes.
    pub max_body_bytes: usize,
    /// HTTPS instead of HTTP, when given.
    pub tls: Option<TlsConfig>,
    /// The API's base URL as the other processes of the consumer group
    /// (and their users) reach it, e.g. `https://mon-2.example:8080`;
    /// by default the bound address, with 0.0.0.0 replaced by the host's
    /// name (`group.rs`).
    pub advertise: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `mon_runtime=debug`.
    pub level: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Most events per batch (one journal write and fsync each).
    pub max_batch: usize,
    /// Longest wait to fill a batch, ms: the floor of event-to-record latency.
    pub max_batch_wait_ms: u64,
    /// A snapshot is taken after this many journaled inputs (bounds replay at start).
    pub snapshot_every: u64,
    /// Records and dead letters kept in the local logs (newest).
    pub keep_records: u64,
}

/// `[alerts]`: how the alert book groups notifications, and how the
/// delivery task sends them (docs/service.md, "Alerting"). Durations are
/// in ms, as everywhere else in this file (`max_batch_wait_ms`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Off: records still carry their severity, but no alert book is kept
    /// and nothing is notified.
    pub enabled: bool,
    /// How long a new group gathers alerts before its first message.
    pub group_wait_ms: u64,
    /// The shortest time between two messages of a group about changes.
    pub group_interval_ms: u64,
    pub delivery: DeliveryConfig,
}

/// `[alerts.delivery]`: the notification outbox's sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Notifications being sent at once to one channel.
    pub max_in_flight_per_channel: usize,
    /// The wait before the first retry; it doubles with each failure.
    pub retry_initial_ms: u64,
    /// The longest wait between two attempts.
    pub retry_max_ms: u64,
    /// Each wait is moved by up to this fraction either way (0.2: ±20%),
    /// so receivers that come back are not hit by every sender at once.
    pub retry_jitter: f64,
    /// An attempt that has not answered by then counts as a failure that
    /// may pass.
    pub send_timeout_ms: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        let book = mon_runtime::alerts::BookConfig::default();
        AlertsConfig {
            enabled: true,
            group_wait_ms: book.group_wait_ms,
            group_interval_ms: book.group_interval_ms,
            delivery: DeliveryConfig::default(),
        }
    }
}

impl AlertsConfig {
    /// The alert book's settings, or `None` when alerting is off.
    pub fn book(&self) -> Option<mon_runtime::alerts::BookConfig> {
        self.enabled.then_some(mon_runtime::alerts::BookConfig {
            group_wait_ms: self.group_wait_ms,
            group_interval_ms: self.group_interval_ms,
        })
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_in_flight_per_channel: 4,
            retry_initial_ms: 1_000,
            retry_max_ms: 300_000,
            retry_jitter: 0.2,
            send_timeout_ms: 30_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("mon-state"),
            clock: ClockMode::Wall,
            from: None,
            kafka: None,
            envelope: EnvelopeConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            engine: EngineConfig::default(),
            notify: NotifyConfig::default(),
            secrets: Secrets::new(),
            alerts: AlertsConfig::default(),
            auth: AuthConfig::default(),
            retention: RetentionConfig::default(),
            jit: JitSwitch::On,
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topics: Vec::new(),
            group: "mon".into(),
            records_topic: "mon.records".into(),
            dead_letter_topic: "mon.dead-letter".into(),
            audit_topic: "mon.audit".into(),
            properties: BTreeMap::new(),
            create_topics: CreateTopicsConfig::default(),
            changelog: true,
            changelog_topic: None,
            failover: false,
            state_per_partition: false,
            scale_out: false,
            standby_tasks: false,
            snapshot_format: crate::changelog::SNAPSHOT_FORMAT,
            task: None,
        }
    }
}

impl Default for CreateTopicsConfig {
    fn default() -> Self {
        const DAY_MS: i64 = 24 * 3600 * 1000;
        CreateTopicsConfig { enabled: false, partitions: 1, replication: -1, dead_letter_retention_ms: 30 * DAY_MS }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: "127.0.0.1:8080".into(), max_body_bytes: 16 << 20, tls: None, advertise: None }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Pretty, level: "info".into() }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_batch: 5000, max_batch_wait_ms: 20, snapshot_every: 2_000_000, keep_records: 1_000_000 }
    }
}

/// Command-line flags that override the configuration (absent: no override).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogOverrides>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct KafkaOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_topics: Option<CreateTopicsOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CreateTopicsOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct HttpOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LogOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

impl Config {
    /// Defaults, then the file (if any), then `env` (the `MON_*` variables,
    /// passed in so tests need not touch the process environment), then
    /// the flags; validated.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, Error> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(Error::config(format!("no configuration file at {}", path.display())));
            }
            figment = figment.merge(Toml::file(path));
        }
        let vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("MON_")).collect();
        figment = figment.merge(EnvVars(vars.clone()));
        figment = figment.merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|e| {
            let mut message = String::from("invalid configuration:");
            for error in e {
                message.push_str("\n  ");
                message.push_str(&describe(&error, &vars));
            }
            Error::config(message)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The `from` instant, ms (validated by [`load`](Self::load)).
    pub fn from_ms(&self) -> Option<i64> {
        self.from.as_deref().and_then(mon_stdlib::time::parse_rfc3339)
    }

    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        if let Err(problem) = self.retention.events_ms() {
            problems.push(problem);
        }
        if self.http.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!("http.listen: `{}` is not an address such as 127.0.0.1:8080", self.http.listen));
        }
        if let Some(kafka) = &self.kafka {
            if kafka.brokers.trim().is_empty() {
                problems
                    .push("kafka.brokers: empty; give host:port (or remove [kafka] to ingest over HTTP only)".into());
            }
            if kafka.topics.is_empty() || kafka.topics.iter().any(|t| t.trim().is_empty()) {
                problems.push("kafka.topics: name at least one topic to consume, none empty".into());
            }
            for (name, value) in [
                ("kafka.group", &kafka.group),
                ("kafka.records_topic", &kafka.records_topic),
                ("kafka.dead_letter_topic", &kafka.dead_letter_topic),
                ("kafka.audit_topic", &kafka.audit_topic),
            ] {
                if value.trim().is_empty() {
                    problems.push(format!("{name}: empty"));
                }
            }
            let create = &kafka.create_topics;
            if create.partitions < 1 {
                problems.push(format!("kafka.create_topics.partitions: {} (at least 1)", create.partitions));
            }
            if create.replication == 0 || create.replication < -1 {
                problems.push(format!(
                    "kafka.create_topics.replication: {} (at least 1, or -1 for the broker's default)",
                    create.replication
                ));
            }
            if create.dead_letter_retention_ms < 1 && create.dead_letter_retention_ms != -1 {
                problems.push(format!(
                    "kafka.create_topics.dead_letter_retention_ms: {} (a number of ms, or -1 to keep forever)",
                    create.dead_letter_retention_ms
                ));
            }
            if let Some(changelog) = kafka.changelog_topic() {
                let members = format!("{}.members", kafka.group);
                let lease = crate::lease::name(kafka);
                let others = [&kafka.records_topic, &kafka.dead_letter_topic, &kafka.audit_topic, &members, &lease];
                if changelog.trim().is_empty() {
                    problems.push("kafka.changelog_topic: empty; name a topic, or set `changelog = false`".into());
                } else if kafka.topics.contains(&changelog) || others.contains(&&changelog) {
                    problems.push(format!(
                        "kafka.changelog_topic: `{changelog}` is also another of mon's topics; the changelog needs one of its own"
                    ));
                }
            }
            if kafka.state_per_partition && kafka.failover {
                problems.push(
                    "kafka.state_per_partition: not with fail-over, whose standby takes over one state (processes \
                     that share the partitions are the next steps, docs/notes/scaling.md); set `failover = false`"
                        .into(),
                );
            }
            if kafka.scale_out && (kafka.failover || kafka.state_per_partition) {
                problems.push(
                    "kafka.scale_out: the processes share the partitions, each partition's state its own, and a \
                     process that dies has its partitions taken over; remove `failover` and `state_per_partition`"
                        .into(),
                );
            }
            if !(1..=crate::changelog::SNAPSHOT_FORMAT).contains(&kafka.snapshot_format) {
                problems.push(format!(
                    "kafka.snapshot_format: {} is not a snapshot format; 1 (for a rolling upgrade from a release \
                     before the trend rollups were in snapshots) or {}",
                    kafka.snapshot_format,
                    crate::changelog::SNAPSHOT_FORMAT
                ));
            }
            if kafka.standby_tasks && !kafka.scale_out {
                problems.push(
                    "kafka.standby_tasks: standbys of scale-out tasks; set `scale_out = true` too (for a standby \
                     of a whole process, `failover`)"
                        .into(),
                );
            }
            if kafka.scale_out && !kafka.changelog {
                problems.push(
                    "kafka.scale_out: needs the changelog, from which a process rebuilds a partition it takes over; \
                     remove `changelog = false`"
                        .into(),
                );
            }
            if kafka.failover && !kafka.changelog {
                problems.push(
                    "kafka.failover: needs the changelog, from which a standby takes over the state; \
                     remove `changelog = false`"
                        .into(),
                );
            }
            if kafka.topics.contains(&kafka.records_topic) {
                problems.push(format!(
                    "kafka.records_topic: `{}` is also an input topic; mon would read its own records",
                    kafka.records_topic
                ));
            }
        }
        if let Some(mapping) = &self.envelope.mapping {
            if let Err(e) = mapping.validate() {
                problems.push(format!("envelope.mapping: {e}"));
            }
        }
        if let Some(from) = &self.from {
            if mon_stdlib::time::parse_rfc3339(from).is_none() {
                problems.push(format!("from: `{from}` is not an RFC 3339 instant"));
            }
            if self.clock != ClockMode::Event {
                problems.push("from: only the event clock can start in the past; add clock = \"event\"".into());
            }
        }
        if self.engine.max_batch == 0 {
            problems.push("engine.max_batch: must be at least 1".into());
        }
        let delivery = &self.alerts.delivery;
        if delivery.max_in_flight_per_channel == 0 {
            problems.push("alerts.delivery.max_in_flight_per_channel: must be at least 1".into());
        }
        if delivery.retry_initial_ms == 0 || delivery.retry_max_ms < delivery.retry_initial_ms {
            problems.push(format!(
                "alerts.delivery.retry_initial_ms: {} and retry_max_ms: {} (at least 1 ms, and the first no more than the second)",
                delivery.retry_initial_ms, delivery.retry_max_ms
            ));
        }
        if !(0.0..1.0).contains(&delivery.retry_jitter) {
            problems.push(format!(
                "alerts.delivery.retry_jitter: {} (a fraction from 0 to below 1)",
                delivery.retry_jitter
            ));
        }
        if delivery.send_timeout_ms == 0 {
            problems.push("alerts.delivery.send_timeout_ms: must be at least 1".into());
        }
        if let Some(oidc) = &self.auth.oidc {
            problems.extend(oidc_problems(oidc, self.auth.enabled));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            problems.push(format!("log.level: `{}` is not a filter: {e}", self.log.level));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::config(format!("invalid configuration:\n  {}", problems.join("\n  "))))
        }
    }
}

/// What is wrong with `[auth.oidc]`, if anything.
fn oidc_problems(oidc: &OidcConfig, auth_enabled: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if !auth_enabled {
        problems.push("auth.oidc: set, but auth.enabled is false; add `enabled = true` to [auth]".into());
    }
    for (name, value) in [("issuer", &oidc.issuer), ("audience", &oidc.audience), ("role_claim", &oidc.role_claim)] {
        if value.trim().is_empty() {
            problems.push(format!("auth.oidc.{name}: empty"));
        }
    }
    match reqwest::Url::parse(&oidc.jwks_url) {
        Err(e) => problems.push(format!("auth.oidc.jwks_url: `{}` is not a URL: {e}", oidc.jwks_url)),
        Ok(url) => {
            // Why: whoever can change the key set in transit can sign any
            // role; plain HTTP only where nothing is in between.
            let loopback = match url.host_str() {
                Some("localhost") => true,
                Some(host) => host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback()),
                None => false,
            };
            if !(url.scheme() == "https" || url.scheme() == "http" && loopback) {
                problems.push(format!(
                    "auth.oidc.jwks_url: `{}`: use https (plain http only to a loopback address)",
                    oidc.jwks_url
                ));
            }
        }
    }
    problems
}

/// One configuration error in words. An unknown key or word gets the
/// nearest known one ("did you mean"), named as it was written: a key of
/// the file, or a `MON_*` variable.
fn describe(error: &figment::Error, vars: &[(String, String)]) -> String {
    use figment::error::Kind;
    let from_env = error.metadata.as_ref().is_some_and(|m| m.name == ENV_NAME);
    let source = match error.metadata.as_ref() {
        Some(m) if m.name == ENV_NAME => " (a MON_* variable)".to_string(),
        Some(m) => m.source.as_ref().map(|s| format!(" (in {s})")).unwrap_or_default(),
        None => String::new(),
    };
    // `path` is the key that failed: for an unknown field, the field last.
    let mut path: Vec<&str> = error.path.iter().map(String::as_str).collect();
    if let Kind::UnknownField(field, _) = &error.kind {
        if path.last() == Some(&field.as_str()) {
            path.pop();
        }
    }
    let key_of = |name: &str| path.iter().copied().chain([name]).collect::<Vec<_>>().join(".");
    match &error.kind {
        Kind::UnknownField(field, expected) => {
            let guess = mon_compiler::suggest::did_you_mean(field, expected.iter().copied());
            if from_env {
                let variable = variable_for(vars, &path, field);
                match guess {
                    Some(guess) => format!("unknown variable {variable}; did you mean {}?", env_name(&path, &guess)),
                    None => format!("unknown variable {variable}: no key `{}`", key_of(field)),
                }
            } else {
                let known = expected.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                match guess {
                    Some(guess) => {
                        format!("unknown key `{}`{source}; did you mean `{}`?", key_of(field), key_of(&guess))
                    }
                    None => format!("unknown key `{}`{source}; the keys here are {known}", key_of(field)),
                }
            }
        }
        Kind::UnknownVariant(word, expected) => {
            let key = path.join(".");
            let known = expected.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" or ");
            match mon_compiler::suggest::did_you_mean(word, expected.iter().copied()) {
                Some(guess) => format!("{key}: unknown value `{word}`{source}; did you mean `{guess}`?"),
                None => format!("{key}: unknown value `{word}`{source}; expected {known}"),
            }
        }
        _ => {
            let mut text = error.to_string();
            if let Some(source) = error.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                text.push_str(&format!(" (from {source})"));
            }
            text
        }
    }
}

/// The variable as the user wrote it (`MON_KAFKA__BROKRES`), found by its path.
fn variable_for(vars: &[(String, String)], path: &[&str], field: &str) -> String {
    let wanted: Vec<String> = path.iter().copied().chain([field]).map(str::to_ascii_lowercase).collect();
    vars.iter()
        .map(|(name, _)| name)
        .find(|name| env_path(name) == wanted)
        .cloned()
        .unwrap_or_else(|| env_name(path, field))
}

/// `MON_KAFKA__BROKERS` for the key `kafka.brokers`.
fn env_name(path: &[&str], field: &str) -> String {
    let parts: Vec<String> = path.iter().copied().chain([field]).map(str::to_ascii_uppercase).collect();
    format!("MON_{}", parts.join("__"))
}

/// The key path a `MON_*` variable names: `MON_KAFKA__BROKERS` is `kafka.brokers`.
fn env_path(name: &str) -> Vec<String> {
    name.trim_start_matches("MON_").split("__").map(|p| p.to_ascii_lowercase()).collect()
}

const ENV_NAME: &str = "MON_* environment variables";

/// librdkafka takes every property as text; TOML and the `MON_*`
/// variables give numbers and booleans as such, so they are written back.
fn properties<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }
    let map = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(map
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Scalar::Text(t) => t,
                Scalar::Integer(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (key, text)
        })
        .collect())
}

/// The `MON_*` variables as a figment provider. `Env::prefixed` reads the
/// process environment; this takes the variables as data so that tests
/// can give their own.
struct EnvVars(Vec<(String, String)>);

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(ENV_NAME)
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (name, value) in &self.0 {
            let path = env_path(name);
            let parsed: figment::value::Value = value.parse().unwrap_or_else(|_| value.clone().into());
            // `topics` is a list: a comma-separated value is split.
            let parsed = match path.last().map(String::as_str) {
                Some("topics") => value.split(',').map(|t| t.trim().to_string()).collect::<Vec<_>>().into(),
                _ => parsed,
            };
            insert(&mut dict, &path, parsed);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

fn insert(dict: &mut figment::value::Dict, path: &[String], value: figment::value::Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry =
                dict.entry(first.clone()).or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
            if let figment::value::Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            } else {
                let mut inner = figment::value::Dict::new();
                insert(&mut inner, rest, value);
                *entry = inner.into();
            }
        }
    }
}

#[cfg(test)]
mod tests;
