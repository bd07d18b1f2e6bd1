//! The service shell around the pure engine (`mon-runtime`): Kafka in and
//! out, the journal, snapshot and sled state, the wall clock, HTTP and
//! metrics. `mon run` and `mon demo` call [`run`].
//!
//! What it must not do: change engine state except through the runtime's
//! journaled inputs (an event, a tick), or let anything leave the process
//! (an HTTP reply, a published record, an offset commit) before the batch
//! that made it is journaled and written to sled. Every error says its
//! [`error::Domain`] and whether retrying can help.
//!
//! Threads: one processing thread owns the engine and writes the state
//! ([`processor`]); a tokio runtime serves HTTP ([`http`], over HTTPS with
//! `[http.tls]`: [`tls`]), drains the
//! outbox to Kafka ([`kafka::publish`]), sends the alert book's
//! notifications ([`delivery`]) and waits for SIGTERM/SIGINT.
//! Durability and recovery are described in docs/notes/durability.md.
//!
//! [`notify`] delivers the alert book's notifications to their channels'
//! receivers (email, webhook, Slack, PagerDuty, Alertmanager, SMS), one
//! attempt at a time, saying whether another attempt can help.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod audit;
pub mod auth;
pub mod changelog;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod envelope;
pub mod error;
pub mod events;
pub mod forward;
pub mod group;
pub mod http;
pub mod journal;
pub mod kafka;
pub mod lease;
pub mod metrics;
pub mod notify;
pub mod processor;
pub mod refill;
pub mod rollups;
pub mod rules;
pub mod scale_out;
pub mod stage_items;
pub mod standby;
pub mod store;
pub mod tls;
pub mod views;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mon_compiler::ir::Program;
use mon_compiler::Functions;

use audit::Audit;
use config::{Config, LogFormat};
use error::{Domain, Error, Retry};
use journal::Journal;
use mon_runtime::engine::Share;
use mon_runtime::live::{ClockMode, Live};
use mon_stdlib::time::format_rfc3339;
use processor::{Processor, StatusView};
use rules::versions::{ActivationEntry, Draft, Origin, Versions};
use rules::StartRules;
use store::Store;

/// Installs the process's log subscriber (JSON or human), once. Colours
/// only on a terminal, and never with `NO_COLOR` set (no-color.org): a log
/// file or a log shipper would get escape codes in every line.
pub fn init_logging(config: &config::LogConfig) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        // Why: by default a line that cannot be written is reported with
        // `eprintln!`, which panics when stderr is gone (`mon run | head`
        // closed it) and so kills whichever thread was logging: the signal
        // handler's, and the service never stopped. A lost log line is
        // not worth a thread.
        .log_internal_errors(false);
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// The start-up line: what this process is about to run, and where from,
/// so that the first line of a log answers "which rules, which topics,
/// which group, which clock" without looking at the deployment.
pub fn log_start(rules: &std::path::Path, program: &Program, config: &Config) {
    let workflows: Vec<&str> = program.workflows.iter().map(|w| w.name.as_str()).collect();
    let kafka = config.kafka.as_ref();
    tracing::info!(
        rules = %rules.display(),
        workflows = workflows.join(", "),
        clock = clock_name(config.clock),
        state_dir = %config.state_dir.display(),
        brokers = kafka.map(|k| k.brokers.as_str()).unwrap_or("none: events over HTTP only"),
        topics = kafka.map(|k| k.topics.join(", ")),
        group = kafka.map(|k| k.group.as_str()),
        records_topic = kafka.map(|k| k.records_topic.as_str()),
        dead_letter_topic = kafka.map(|k| k.dead_letter_topic.as_str()),
        "starting mon run"
    );
}

/// Runs the service until `stop` is set (by the caller, or by SIGTERM /
/// SIGINT), then shuts down in order: stop consuming, commit the batch in
/// hand, snapshot and flush the state, drain the outbox, stop HTTP.
/// `listening` is called with the HTTP address once it is bound. Returns
/// the last status (as `/api/v1/status` gave it), taken after the last batch.
/// Notifications go to the channels' receivers (the [`notify::Notifiers`],
/// built first, so that a missing secret stops the start), or to the log
/// with `[notify] deliver = "log"`; [`run_with`] takes another deliverer.
pub fn run(
    config: Config,
    rules: &StartRules,
    functions: &'static dyn Functions,
    stop: Arc<AtomicBool>,
    listening: impl FnOnce(SocketAddr),
) -> Result<StatusView, Error> {
    // Built before anything starts: a channel whose secret or settings
    // are missing is a configuration error now, not at the first alert.
    let deliver: Arc<dyn delivery::Deliver> = match config.notify.deliver {
        notify::config::DeliverTo::Log => Arc::new(delivery::LogDeliverer),
        notify::config::DeliverTo::Receivers => {
            Arc::new(notify::Notifiers::new(&config.notify, &config.secrets, &rules.program)?)
        }
    };
    // Several processes sharing the partitions: this one runs the tasks
    // the group gives it, each through `run_with` (scale_out.rs).
    if config.kafka.as_ref().is_some_and(|kafka| kafka.scale_out && kafka.task.is_none()) {
        return scale_out::run(config, rules, functions, stop, listening, deliver);
    }
    run_with(config, rules, functions, stop, listening, deliver)
}

/// [`run`], with the alert book's notifications sent through `deliver`
/// (the configured notifiers).
pub fn run_with(
    config: Config,
    rules: &StartRules,
    functions: &'static dyn Functions,
    stop: Arc<AtomicBool>,
    listening: impl FnOnce(SocketAddr),
    deliver: Arc<dyn delivery::Deliver>,
) -> Result<StatusView, Error> {
    run_followed(config, rules, functions, stop, listening, deliver, None)
}

/// [`run_with`], for a scale-out task whose changelog partition this
/// process has `followed` as its standby (`scale_out.rs`): only what came
/// since is read.
pub(crate) fn run_followed(
    config: Config,
    rules: &StartRules,
    functions: &'static dyn Functions,
    stop: Arc<AtomicBool>,
    listening: impl FnOnce(SocketAddr),
    deliver: Arc<dyn delivery::Deliver>,
    task_followed: Option<changelog::Follower>,
) -> Result<StatusView, Error> {
    let metrics = Arc::new(metrics::Metrics::new());
    let started = Instant::now();
    mon_runtime::engine::set_jit_default(config.jit == config::JitSwitch::On);
    // Before the state is opened: a certificate that cannot be used is a
    // configuration error, not a service that starts and cannot answer.
    let tls = config.http.tls.as_ref().map(tls::server_config).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::new(Domain::Process, Retry::Later, "cannot start the async runtime").caused_by(e))?;
    // A scale-out task is stopped by its process's supervisor, which
    // takes the signals (`scale_out.rs`).
    let task_of = config.kafka.as_ref().and_then(|kafka| kafka.task);
    if task_of.is_none() {
        stop_on_signal(&runtime, stop.clone());
    }
    let kafka_context = kafka::Context {
        metrics: metrics.clone(),
        problems: Arc::new(kafka::Problems::new(metrics.clone())),
        one_task: task_of.is_some(),
    };
    if let Some(kafka) = config.kafka.as_ref().filter(|k| k.create_topics.enabled) {
        // Before subscribing (the consumer then finds its topics at once)
        // and before the changelog is read.
        runtime.block_on(kafka::topics::create_missing(kafka, kafka_context.clone()))?;
    }
    let mut store = Store::open(&config.state_dir)?;
    let event_retention = config.retention.events_ms().map_err(Error::config)?;
    store.keep_events(event_retention.is_some())?;
    // With state per partition: how many partitions the input has, which
    // is how many tasks the state is split in (processor/tasks.rs).
    let partitions = match config.kafka.as_ref().filter(|k| k.state_per_partition) {
        Some(kafka) => Some(kafka::topics::input_partitions(kafka, kafka_context.clone(), Duration::from_secs(30))?),
        None => None,
    };
    let made_for = store.tasks(partitions)?;
    if made_for != partitions {
        let split = |n: Option<u16>| match n {
            Some(n) => format!("per partition of {n}"),
            None => "as one for every partition".to_string(),
        };
        return Err(Error::config(format!(
            "the state in {} is kept {}, and this run keeps it {}; the items cannot be split again: \
             use another state directory (and replay the input), or the same setting and partition count",
            config.state_dir.display(),
            split(made_for),
            split(partitions)
        )));
    }
    let made_on = store.clock(config.clock)?;
    if made_on != config.clock {
        return Err(Error::config(format!(
            "the state in {} was made on the {} clock, and this run uses the {} clock; \
             use the same clock or another state directory",
            config.state_dir.display(),
            clock_name(made_on),
            clock_name(config.clock)
        )));
    }
    let mut listen: SocketAddr = config
        .http
        .listen
        .parse()
        .map_err(|_| Error::config(format!("http.listen: `{}` is not an address", config.http.listen)))?;
    // With fail-over on, this process waits as a standby until it holds
    // its group's lease, following the changelog (standby.rs).
    let failover = config.kafka.as_ref().filter(|k| k.failover).and_then(|k| Some((k, k.changelog_topic()?)));
    let (lease, followed, mut promoted_member) = match failover {
        Some((kafka, topic)) => {
            let on = standby::Listen {
                address: listen,
                tls: tls.clone(),
                advertise: config.http.advertise.as_deref(),
                max_body_bytes: config.http.max_body_bytes,
                trust: config.http.tls.as_ref().map(|t| t.trusted()).unwrap_or_default(),
            };
            match standby::wait(kafka, &topic, &kafka_context, &runtime, on, &stop)? {
                Some(promoted) => {
                    // The port the standby was reached on (it may have been 0).
                    listen = promoted.address;
                    let lease = lease::Keeper::start(promoted.lease, stop.clone())?;
                    (Some(lease), Some(promoted.followed), Some(promoted.group))
                }
                None => {
                    tracing::info!("stopped while a standby");
                    return Ok(StatusView::default());
                }
            }
        }
        None => (None, task_followed, None),
    };
    // Before the journal is opened: a state directory that is empty or
    // behind the changelog gets its journal and snapshot from Kafka, and
    // the ordinary recovery below replays them (changelog.rs).
    let changelog = match config.kafka.as_ref().and_then(|k| Some((k, k.changelog_topic()?))) {
        Some((kafka, topic)) => {
            let at = changelog::Opening {
                kafka,
                topic: &topic,
                context: kafka_context.clone(),
                runtime: &runtime,
                state_dir: &config.state_dir,
                tasks: partitions,
                home: kafka.task.map_or(changelog::PROCESS_PARTITION, |task| i32::from(task.partition)),
                required: kafka.task.is_some(),
                // A task revoked while it restores must not claim the
                // partition after its next owner has.
                stop: kafka.task.map(|_| &*stop),
            };
            changelog::open(at, &mut store, followed)?
        }
        None => None,
    };
    let (mut journal, mut recovered) = Journal::open(&config.state_dir)?;
    // One snapshot, the journal's own, or one per partition's task in
    // `tasks/<partition>` (processor/tasks.rs).
    let task_partitions: Vec<Option<u16>> = match partitions {
        Some(n) => (0..n).map(Some).collect(),
        None => vec![None],
    };
    let mut snapshots = Vec::new();
    for partition in &task_partitions {
        match partition {
            Some(p) => {
                let dir = crate::journal::task_dir(&config.state_dir, *p);
                let snapshot = crate::journal::read_snapshot(&dir)?;
                // The journal is emptied after the tasks' snapshots: it
                // goes on above what they cover.
                journal.advance_to(snapshot.as_ref().map_or(0, |(covered, _)| *covered));
                snapshots.push((dir, snapshot));
            }
            None => snapshots.push((config.state_dir.clone(), recovered.snapshot.take())),
        }
    }
    // A changelog behind the local journal (new, deleted, or a crash
    // before its acknowledgement) gets a snapshot once the state is
    // recovered; with state per partition, every task's partition does.
    let mut changelogs = changelog.unwrap_or_default();
    let local_next = journal.next_seq();
    // Every one is asked (and says so in the log), not only up to the first.
    let behind = changelogs.iter_mut().map(|c| c.behind_local(local_next)).filter(|behind| *behind).count();
    let changelog_needs_snapshot = behind > 0;
    if let Some(lease) = &lease {
        // Fail-over keeps one state: one changelog.
        changelogs.iter_mut().for_each(|c| c.fence_on_lost_lease(lease.guard()));
    }
    let versions = Versions::open(&store.handle())?;
    let audit = Audit::open(&store.handle())?;
    let (deploy, deployed_now) = import_rules(&versions, &audit, rules)?;
    // The program each task's recovered state was made under: its
    // snapshot's version, or for a state without a snapshot the first
    // version it ran; the journals' activations then move them on, as
    // they did. The process starts under the oldest of them (tasks
    // snapshot together, so they differ only after a crash mid-snapshot).
    let mut compiled = std::collections::HashMap::new();
    let first_version = versions.history(None, usize::MAX)?.0.last().map(|(_, first)| first.version);
    if first_version.is_none() {
        // A new state starts under the directory's rules: its first activation.
        let at = format_rfc3339(clock::wall_now());
        versions.activated(&ActivationEntry { version: deploy, previous: None, at, by: "mon run".into() })?;
    }
    let mut tasks = Vec::new();
    let mut oldest: Option<(u64, &Program, u64)> = None;
    let mut had_snapshot = false;
    for (partition, (dir, snapshot)) in task_partitions.iter().copied().zip(snapshots) {
        let covered = snapshot.as_ref().map_or(0, |(covered, _)| *covered);
        let started_under = match &snapshot {
            Some((covered, _)) => versions.snapshot_version(*covered)?,
            None => first_version,
        };
        let (program, version): (&Program, u64) = match started_under {
            Some(version) if version != deploy => {
                let program = match compiled.get(&version) {
                    Some(program) => *program,
                    None => processor::compile_version(&versions, version, functions).map_err(Error::config)?,
                };
                compiled.insert(version, program);
                (program, version)
            }
            _ => (&rules.program, deploy),
        };
        if oldest.is_none_or(|(c, ..)| covered < c) {
            oldest = Some((covered, program, version));
        }
        had_snapshot |= snapshot.is_some();
        let share = partition
            .zip(partitions)
            .map(|(partition, partitions)| Share { partition, partitions })
            .or(task_of.map(|task| Share { partition: task.partition, partitions: task.partitions }));
        let mut live = match &snapshot {
            Some((_, bytes)) => {
                let live =
                    Live::resume_bytes(program, functions, bytes).map_err(|e| Error::damaged(Domain::Journal, e))?;
                if live.share_of() != share {
                    return Err(Error::damaged(
                        Domain::Journal,
                        format!("the snapshot of partition {partition:?}'s state belongs to {:?}", live.share_of()),
                    ));
                }
                live
            }
            None => Live::new(program, functions, config.clock, config.from_ms()),
        };
        if let Some(share) = share {
            live = live.share(share);
        }
        // Also after a snapshot: it carries the book's state, not its settings.
        live = match config.alerts.book() {
            Some(book) => live.with_alerts(book),
            None => live.without_alerts(),
        };
        let live = live.with_tally().keep_events(event_retention.is_some());
        tasks.push(processor::Task { partition, live, dir, covered });
    }
    let (program, start_version) = match oldest {
        Some((_, program, version)) => (program, version),
        None => (&rules.program, deploy),
    };
    // A state rebuilt from the changelog refills its event store, record
    // and dead-letter logs from Kafka, beside the processing (refill.rs);
    // planned before the replay appends to them.
    let restored_up_to = match changelogs.iter().any(|changelog| changelog.restored) {
        true => tasks.iter().map(|task| task.covered).min(),
        false => None,
    };
    let refill = refill::prepare(&config.state_dir, &mut store, config.kafka.as_ref(), restored_up_to)?
        .and_then(|plan| Some((plan, config.kafka.clone()?, program.clone())));
    // The versions this state runs and may activate, in the changelog
    // before anything is journaled under them.
    if let Some(changelog) = changelogs.first_mut() {
        changelog.mirror_rules(versions.export()?);
    }
    let active_program: http::ActiveProgram = Arc::new(RwLock::new(Arc::new(program.clone())));
    let applied = store.applied()?;
    let stored_offsets = store.offsets()?;

    let envelopes = envelope::Envelopes::new(&config.envelope).map_err(Error::config)?;

    let (consumer, producer) = match &config.kafka {
        Some(kafka) => {
            // With state per partition the process still subscribes: a
            // second process in the group is then seen (it takes some
            // partitions, `mon_partitions_elsewhere`) rather than both
            // reading everything, until tasks move between processes.
            let intake =
                if lease.is_some() || task_of.is_some() { kafka::Intake::AssignAll } else { kafka::Intake::Subscribe };
            (
                Some(kafka::consumer(kafka, kafka_context.clone(), intake)?),
                Some(kafka::producer(kafka, kafka_context.clone())?),
            )
        }
        None => {
            metrics.kafka_assigned.store(true, Ordering::Relaxed);
            (None, None)
        }
    };
    let (ingest_tx, ingest_rx) = std::sync::mpsc::sync_channel(64);
    let ingest_for_start = ingest_tx.clone();
    let status = Arc::new(RwLock::new(StatusView::default()));
    let alerts_view = Arc::new(RwLock::new(processor::AlertsView::default()));
    let views = Arc::new(RwLock::new(views::Views::default()));
    let (changes, _) = tokio::sync::broadcast::channel(views::STREAM_BUFFER);
    let delivery_wake = Arc::new(tokio::sync::Notify::new());
    // Every pending notification at start was flushed by an earlier run.
    let notifications_flushed = Arc::new(std::sync::atomic::AtomicU64::new(store.next_notification_seq()));
    let publisher_wake = Arc::new(tokio::sync::Notify::new());
    // Everything in the outbox at start was flushed by an earlier run.
    let outbox_flushed = Arc::new(std::sync::atomic::AtomicU64::new(store.next_outbox_seq()));

    let listener = runtime.block_on(tokio::net::TcpListener::bind(listen)).map_err(|e| {
        let retry = if e.kind() == std::io::ErrorKind::AddrInUse { Retry::Later } else { Retry::Never };
        Error::new(Domain::Http, retry, format!("cannot listen on {listen}")).caused_by(e)
    })?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::new(Domain::Http, Retry::Never, "cannot read the bound address").caused_by(e))?;
    tracing::info!(%address, tls = tls.is_some(), "HTTP listening");
    // A scale-out task is not a member of its own: its process is.
    let group = config.kafka.as_ref().filter(|_| task_of.is_none()).map(|kafka| {
        // A process that was a standby goes on as the member it announced.
        promoted_member.take().unwrap_or_else(|| {
            let http = group::advertised(config.http.advertise.as_deref(), address, tls.is_some());
            group::Registry::new(&kafka.group, http, group::MemberRole::Single)
        })
    });

    // A scale-out task's keys another task may hold: its process asks.
    let recent_keys = task_of.map(|_| processor::SharedRecentKeys::default());
    // A scale-out task's rule changes come through its group's topic.
    let group_rules = match (task_of, &config.kafka, &producer) {
        (Some(_), Some(kafka), Some(producer)) => {
            let next = stored_offsets.get(&(rules::group::topic(kafka), rules::group::PARTITION)).copied();
            Some(Arc::new(rules::group::GroupRules::new(kafka, producer.clone(), next)))
        }
        _ => None,
    };
    let (http_stop_tx, http_stop_rx) = tokio::sync::watch::channel(false);
    let engine_now = Arc::new(std::sync::atomic::AtomicI64::new(processor::NO_CLOCK));
    let api = http::Api {
        stopping: http_stop_rx.clone(),
        metrics: metrics.clone(),
        ingest: ingest_tx,
        versions: versions.clone(),
        audit: audit.clone(),
        functions,
        status: status.clone(),
        alerts: alerts_view.clone(),
        views: views.clone(),
        changes: changes.clone(),
        store: store.handle(),
        kafka_configured: config.kafka.is_some(),
        auth: match config.auth.enabled {
            false => None,
            true => Some(Arc::new(authenticator(&config, &runtime)?)),
        },
        program: active_program.clone(),
        clock: config.clock,
        engine_now: engine_now.clone(),
        event_store: event_retention.is_some(),
        group: group.as_ref().map(|(registry, _)| registry.clone()),
        scale_out_task: task_of.is_some(),
        group_rules: group_rules.clone(),
        recent_keys: recent_keys.clone(),
    };
    if let Some(authenticator) = api.auth.clone() {
        runtime.spawn(audit_token_changes(authenticator, audit.clone(), stop.clone()));
    }
    let app = http::router(api, config.http.max_body_bytes);
    let server = runtime.spawn(tls::serve(listener, app, tls, http_stop_rx));
    let (publisher_stop_tx, publisher_stop_rx) = tokio::sync::watch::channel(false);
    let publisher = match (&config.kafka, producer.clone()) {
        (Some(kafka), Some(producer)) => Some(runtime.spawn(kafka::publish(
            producer,
            kafka.clone(),
            store.handle(),
            metrics.clone(),
            publisher_wake.clone(),
            outbox_flushed.clone(),
            publisher_stop_rx,
        ))),
        _ => None,
    };
    // The audit log goes to Kafka too, when Kafka is on; it stops with the publisher.
    let audit_publisher = match (&config.kafka, producer.clone()) {
        (Some(kafka), Some(producer)) => Some(runtime.spawn(audit::publish(
            audit.clone(),
            producer,
            kafka.audit_topic.clone(),
            publisher_stop_tx.subscribe(),
        ))),
        _ => None,
    };
    let (delivery_stop_tx, delivery_stop_rx) = tokio::sync::watch::channel(false);
    // Without the book there is nothing to send, but what an earlier run
    // left pending still goes.
    let delivery = runtime.spawn(
        delivery::DeliveryTask {
            store: store.handle(),
            deliver,
            config: config.alerts.delivery.clone(),
            metrics: metrics.clone(),
            flushed: notifications_flushed.clone(),
            wake: delivery_wake.clone(),
            stop: delivery_stop_rx,
            marks: changelogs.first().map(|changelog| changelog.marks.clone()),
        }
        .run(),
    );
    if let Some(retention_ms) = event_retention {
        let clock = service_clock(config.clock, status.clone());
        runtime.spawn(events::purge_old(store.handle().events(), retention_ms, clock, stop.clone()));
    }
    let refill_cutoff = {
        let clock = service_clock(config.clock, status.clone());
        let retention = event_retention.and_then(|ms| i64::try_from(ms).ok()).unwrap_or(i64::MAX);
        move || clock().map(|now| now.saturating_sub(retention))
    };
    let refill_store = store.handle();
    let refill_state_dir = config.state_dir.clone();
    listening(address);

    // The intake thread reads and decodes Kafka's messages for the
    // processing thread (processor/intake.rs).
    let consumer = consumer.map(Arc::new);
    // The group's members: this process announces itself, and a thread
    // reads everyone's announcements (group.rs).
    let members = match (&group, &config.kafka, &producer) {
        (Some((registry, member)), Some(kafka), Some(producer)) => {
            let topic = group::topic(kafka);
            let announcer = runtime.spawn(group::announce(
                group::Announcer {
                    registry: registry.clone(),
                    member: member.clone(),
                    topic: topic.clone(),
                    kafka: kafka.clone(),
                    context: kafka_context.clone(),
                    producer: producer.clone(),
                    consumer: consumer.clone(),
                    tasks: None,
                    wake: None,
                },
                publisher_stop_tx.subscribe(),
            ));
            Some((announcer, registry.clone(), kafka.clone(), topic))
        }
        _ => None,
    };
    // A scale-out task also reads what other tasks hand it (handing.rs).
    let repartition = task_of.and(config.kafka.as_ref()).map(processor::handing::topic);
    let config_topics = config.kafka.as_ref().map(|kafka| {
        let mut topics = kafka.topics.clone();
        topics.extend(repartition.clone());
        topics
    });
    let handing = match (task_of, &config.kafka) {
        (Some(task), Some(kafka)) => Some(processor::handing::Handing::new(
            kafka,
            kafka_context.clone(),
            runtime.handle().clone(),
            program,
            task,
        )?),
        _ => None,
    };
    let intake_program: processor::intake::Running = Arc::new(std::sync::Mutex::new(program));
    let (intake_tx, intake_rx) = std::sync::mpsc::sync_channel(processor::intake::CHUNKS_AHEAD);
    let intake_envelopes = envelope::Envelopes::new(&config.envelope).map_err(Error::config)?;
    let mut processor = Processor {
        program,
        shared_program: active_program.clone(),
        functions,
        versions: versions.clone(),
        active: Some(start_version),
        compiled,
        migrated: None,
        activating_by: None,
        journal,
        owners: match partitions {
            Some(n) => mon_runtime::engine::Owners::new(program, n),
            None => Default::default(),
        },
        split_across: Default::default(),
        beyond_tasks_warned: Default::default(),
        tasks,
        changelogs,
        handing,
        store,
        stored_offsets,
        envelopes,
        intake: consumer.is_some().then_some(intake_rx),
        intake_queue: Default::default(),
        intake_program: intake_program.clone(),
        consumer: consumer.clone(),
        ingest: ingest_rx,
        metrics: metrics.clone(),
        status: status.clone(),
        publisher_wake: publisher_wake.clone(),
        outbox_flushed: outbox_flushed.clone(),
        stop: stop.clone(),
        journaled_since_snapshot: 0,
        totals: StatusView::default(),
        ignored_types: Default::default(),
        notifications_flushed: notifications_flushed.clone(),
        delivery_wake: delivery_wake.clone(),
        alerts_view: alerts_view.clone(),
        alerts_dirty: true,
        board: {
            let mut board = views::Board::new(views.clone(), changes.clone());
            // Its process's front adds every task's numbers (scale_out/group_api.rs).
            board.keep_parts = task_of.is_some();
            board
        },
        compacted_hour: None,
        split_key_warned: None,
        group_offset_moved: false,
        recent_keys,
        group_rules_key: group_rules.as_ref().map(|group| (group.topic.clone(), rules::group::PARTITION)),
        engine_now,
        rollups_before_activation: Vec::new(),
        config,
    };
    let replayed = processor.replay(recovered.entries, applied)?;
    // With the lease, the intake assigns every input partition from the
    // offsets of the recovered state, its replay included.
    // So does a scale-out task, its own partition of each.
    let assign_from = (lease.is_some() || task_of.is_some()).then(|| processor.stored_offsets.clone());
    let group_rules_follower = match (&group_rules, &processor.config.kafka) {
        (Some(group), Some(kafka)) => {
            // The replay may have moved the offset past what sled held.
            group.resume_from(processor.stored_offsets.get(&(group.topic.clone(), rules::group::PARTITION)).copied());
            let applier = rules::group::Applier {
                ingest: ingest_for_start.clone(),
                versions: versions.clone(),
                audit: audit.clone(),
                functions,
            };
            Some((group.clone(), kafka.clone(), applier))
        }
        _ => None,
    };
    // Tasks whose snapshots cover different batches (a crash came while
    // they were taken) are made alike again at once: the rule versions'
    // snapshot pointers keep only the last two.
    let first_covered = processor.tasks.first().map(|task| task.covered);
    let tasks_differ = processor.tasks.iter().any(|task| Some(task.covered) != first_covered);
    if changelog_needs_snapshot || tasks_differ {
        processor.take_snapshot()?;
    }
    tracing::info!(
        snapshot = had_snapshot,
        replayed_inputs = replayed,
        ms = started.elapsed().as_millis() as u64,
        "state recovered"
    );
    // A scale-out task publishes its directory's rules to its group when
    // it has never run them: not when they are what it ran once (a task
    // moved to a process not yet upgraded must not take the group back),
    // and again after a start that stopped before it could publish them.
    let deploying = match &group_rules {
        Some(_) => {
            let ran = versions.history(None, usize::MAX)?.0.iter().any(|(_, entry)| entry.version == deploy);
            processor.active != Some(deploy) && !ran
        }
        None => deployed_now && processor.active != Some(deploy),
    };
    if deploying {
        // The rules directory changed since the last start: a deployment,
        // activated like any other version, through the processing thread;
        // a scale-out task's, through its group's topic, for every task
        // (each task of the process publishes it; the first to apply runs
        // it, the others find it running).
        // Ready once it runs: a client that sees /readyz answer 200 sees
        // the deployed rules, not the ones before them.
        match &group_rules {
            Some(group) => {
                let change = rules::group::Change::Activate {
                    files: rules.bundle.clone(),
                    hash: rules.program.hash(),
                    message: DEPLOYED.into(),
                    rollback: false,
                };
                runtime.spawn(rules::group::deploy(group.clone(), change, metrics.clone()));
            }
            None => activate_at_start(&runtime, &ingest_for_start, &audit, deploy, metrics.clone()),
        }
    } else {
        metrics.state_open.store(true, Ordering::Relaxed);
    }
    publisher_wake.notify_one();
    let outcome = std::thread::scope(|scope| {
        if let Some(consumer) = &consumer {
            let stop = &stop;
            let (intake_program, intake_envelopes) = (&intake_program, &intake_envelopes);
            std::thread::Builder::new()
                .name("mon-intake".into())
                .spawn_scoped(scope, move || {
                    let assign = match (&assign_from, &config_topics) {
                        (Some(next), Some(topics)) => Some(processor::intake::Assign {
                            topics,
                            next,
                            only: task_of.map(|task| i32::from(task.partition)),
                            repartition: repartition.as_deref(),
                        }),
                        _ => None,
                    };
                    processor::intake::run(consumer, intake_envelopes, intake_program, &intake_tx, stop, assign)
                })
                .map_err(|e| {
                    Error::new(Domain::Process, Retry::Later, "cannot start the intake thread").caused_by(e)
                })?;
        }
        if let Some((plan, kafka, program)) = &refill {
            let refill = refill::Refill {
                plan: plan.clone(),
                state_dir: &refill_state_dir,
                kafka,
                envelopes: &intake_envelopes,
                program,
                store: refill_store.clone(),
                cutoff: &refill_cutoff,
                metrics: &metrics,
                stop: &stop,
            };
            std::thread::Builder::new()
                .name("mon-refill".into())
                .spawn_scoped(scope, move || refill::run(refill))
                .map_err(|e| {
                    Error::new(Domain::Process, Retry::Later, "cannot start the refill thread").caused_by(e)
                })?;
        }
        if let Some((group, kafka, applier)) = &group_rules_follower {
            let stop = &stop;
            std::thread::Builder::new()
                .name("mon-group-rules".into())
                .spawn_scoped(scope, move || {
                    // A reader that cannot be made is tried again: without
                    // it this task would miss every change of its group.
                    while !stop.load(Ordering::Relaxed) {
                        match rules::group::follow(group, kafka, applier, stop) {
                            Ok(()) => return,
                            Err(e) => {
                                tracing::error!(error = %e, "cannot follow the group's rule changes; again in 5 s")
                            }
                        }
                        let again = Instant::now() + Duration::from_secs(5);
                        while Instant::now() < again && !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                })
                .map_err(|e| {
                    Error::new(Domain::Process, Retry::Later, "cannot start the group rules thread").caused_by(e)
                })?;
        }
        if let Some((_, registry, kafka, topic)) = &members {
            let (stop, context) = (&stop, kafka_context.clone());
            std::thread::Builder::new()
                .name("mon-group".into())
                .spawn_scoped(scope, move || {
                    if let Err(e) = group::follow(registry.clone(), kafka, context, topic, stop) {
                        tracing::warn!(error = %e, "cannot follow the consumer group's members");
                    }
                })
                .map_err(|e| Error::new(Domain::Process, Retry::Later, "cannot start the group thread").caused_by(e))?;
        }
        let worker = std::thread::Builder::new()
            .name("mon-processor".into())
            .spawn_scoped(scope, move || processor.run())
            .map_err(|e| {
                Error::new(Domain::Process, Retry::Later, "cannot start the processing thread").caused_by(e)
            })?;
        runtime.block_on(async {
            while !worker.is_finished() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        // The processing thread has stopped (asked to, or failed): make
        // sure everything else stops too.
        stop.store(true, Ordering::Relaxed);
        worker
            .join()
            .unwrap_or_else(|_| Err(Error::new(Domain::Process, Retry::Never, "the processing thread panicked")))
    });
    // The process that took over sends what this one has not: draining
    // now would only send it twice.
    let lease_lost = lease.as_ref().is_some_and(|lease| lease.lost());
    // So does the process that takes a scale-out task over from one that
    // stopped on an error (its changelog overtaken or behind): it
    // restores the outbox and the pending notifications from the
    // changelog, and the marks of what was sent. Decided before the stop
    // is signalled, which would start the drain.
    if lease_lost || (task_of.is_some() && outcome.is_err()) {
        delivery.abort();
        if let Some(publisher) = &publisher {
            publisher.abort();
        }
    }
    let _ = publisher_stop_tx.send(true);
    publisher_wake.notify_one();
    let _ = delivery_stop_tx.send(true);
    runtime.block_on(async {
        let _ = delivery.await;
        if let Some(publisher) = publisher {
            let _ = publisher.await;
        }
        // Its goodbye goes before the producer's last flush.
        if let Some((announcer, ..)) = members {
            let _ = announcer.await;
        }
        // What it has not sent stays in the audit log and goes at the next
        // start: no reason to hold a stop while Kafka is away.
        if let Some(publisher) = audit_publisher {
            publisher.abort();
        }
        if let Some(producer) = &producer {
            kafka::flush(producer);
        }
        let _ = http_stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let outcome = match lease {
        Some(lease) if lease.lost() && outcome.is_ok() => Err(lease::lost_error()),
        // Dropped last: the standby that takes over finds this process's
        // last snapshot in the changelog.
        _ => outcome,
    };
    match &outcome {
        Ok(()) => tracing::info!("stopped"),
        Err(e) => {
            tracing::error!(error = %e, domain = e.domain.name(), retryable = e.is_retryable(), "stopped on an error")
        }
    }
    outcome?;
    let last = status.read().map(|view| view.clone()).unwrap_or_default();
    Ok(last)
}

/// The service's clock for retention: the wall clock, or on the event
/// clock the status view's copy of it (as a replay would measure "old").
fn service_clock(mode: ClockMode, status: Arc<RwLock<StatusView>>) -> impl Fn() -> Option<i64> + Send + Sync {
    move || match mode {
        ClockMode::Wall => Some(clock::wall_now()),
        ClockMode::Event => {
            status.read().ok().and_then(|view| view.clock.as_deref().and_then(mon_stdlib::time::parse_rfc3339))
        }
    }
}

/// The API tokens and, with `[auth.oidc]`, the identity provider's check,
/// whose key set is kept fresh on `runtime` (fetched now; a failure is
/// logged and retried, not fatal).
fn authenticator(config: &Config, runtime: &tokio::runtime::Runtime) -> Result<auth::Authenticator, Error> {
    let tokens = auth::Tokens::new(config.auth.tokens_dir.as_deref().unwrap_or(&config.state_dir));
    let oidc = match &config.auth.oidc {
        None => None,
        Some(oidc) => {
            let verifier = Arc::new(auth::oidc::OidcVerifier::new(oidc.clone()).map_err(Error::config)?);
            runtime.spawn(verifier.clone().keep_fresh());
            tracing::info!(issuer = %oidc.issuer, jwks_url = %oidc.jwks_url, "auth: OIDC bearer tokens accepted");
            Some(verifier)
        }
    };
    if tokens.count() == 0 && oidc.is_none() {
        tracing::warn!(
            "auth is on and no token exists: every endpoint but /healthz, /readyz and /metrics answers 401; \
             create one with `mon token create --role admin --name NAME`"
        );
    } else {
        tracing::info!(tokens = tokens.count(), oidc = oidc.is_some(), "auth is on");
    }
    Ok(auth::Authenticator { tokens, oidc })
}

/// Appends what `mon token create|revoke` changed to the audit log. The
/// command writes `tokens.json` beside the state (the service holds the
/// sled database), so the service finds the change when it reads the file
/// again: at the next request, or here, every two seconds.
async fn audit_token_changes(authenticator: Arc<auth::Authenticator>, audit: Audit, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        for change in authenticator.tokens.take_changes() {
            let details = serde_json::json!({ "role": change.role.map(|r| r.as_str()) });
            if let Err(e) = audit.append("mon token", change.action, &change.name, details) {
                tracing::error!(error = %e, "cannot audit a token change");
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Stores the rules directory as a version unless it is the one imported
/// last; returns that version and whether the directory changed since
/// (a deployment, which the caller activates).
fn import_rules(versions: &Versions, audit: &Audit, rules: &StartRules) -> Result<(u64, bool), Error> {
    let hash = rules.program.hash();
    if let Some(last) = versions.imported()? {
        if versions.get(last)?.is_some_and(|v| v.bundle == rules.bundle && v.info.hash == hash) {
            return Ok((last, false));
        }
    }
    let workflows = rules.program.workflows.iter().map(|w| w.name.clone()).collect();
    let message = format!("imported from {}", rules.dir.display());
    let now = format_rfc3339(clock::wall_now());
    let (info, created) = versions.add(
        rules.bundle.clone(),
        Draft {
            hash,
            workflows,
            author: "mon run".into(),
            message: message.clone(),
            origin: Origin::Directory,
            created_at: now,
        },
    )?;
    versions.set_imported(info.version)?;
    if created {
        let details = serde_json::json!({ "version": info, "message": message });
        audit.append("mon run", "rules.version_stored", &info.version.to_string(), details)?;
    }
    tracing::info!(version = info.version, new = created, "rules directory imported as a version");
    Ok((info.version, true))
}

/// Why a version was activated at start, in its audit entry.
const DEPLOYED: &str = "the rules directory changed: deployed at start";

/// Activates `version` through the processing thread, as the API does,
/// and audits it when it is done.
fn activate_at_start(
    runtime: &tokio::runtime::Runtime,
    ingest: &std::sync::mpsc::SyncSender<processor::Request>,
    audit: &Audit,
    version: u64,
    metrics: Arc<metrics::Metrics>,
) {
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let request = processor::RulesRequest {
        change: processor::RulesChange::Activate { version },
        by: "mon run".into(),
        group_offset: None,
        reply,
    };
    if ingest.send(processor::Request::Rules(request)).is_err() {
        return;
    }
    let audit = audit.clone();
    runtime.spawn(async move {
        let outcome = outcome.await;
        metrics.state_open.store(true, Ordering::Relaxed);
        match outcome {
            Ok(Ok(processor::RulesDone::Activated { migration, previous, at })) => {
                let details = serde_json::json!({
                    "version": version, "previous": previous, "at": format_rfc3339(at),
                    "message": DEPLOYED, "migration": migration,
                });
                if let Err(e) = audit.append("mon run", "rules.activated", &version.to_string(), details) {
                    tracing::error!(error = %e, "cannot audit the activation at start");
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(why)) => tracing::error!(version, "cannot activate the rules directory: {why}"),
            Err(_) => {}
        }
    });
}

fn clock_name(mode: mon_runtime::live::ClockMode) -> &'static str {
    match mode {
        mon_runtime::live::ClockMode::Wall => "wall",
        mon_runtime::live::ClockMode::Event => "event",
    }
}

/// Sets `stop` on SIGTERM or SIGINT. The handlers are in place when this
/// returns, before anything is announced: a signal sent as soon as the
/// service says it listens gets the orderly shutdown, not the default
/// sudden death.
pub(crate) fn stop_on_signal(runtime: &tokio::runtime::Runtime, stop: Arc<AtomicBool>) {
    let _context = runtime.enter();
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::terminate()).and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
    };
    runtime.spawn(async move {
        #[cfg(unix)]
        match signals {
            Ok((mut term, mut interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("signal received; stopping");
        stop.store(true, Ordering::Relaxed);
    });
}
