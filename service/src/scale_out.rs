//! Several `mon run` processes of one consumer group sharing the input's
//! partitions (`[kafka] scale_out = true`; docs/service.md, "Scale-out").
//!
//! Each input partition is a *task*, with a state of its own (engine,
//! journal, snapshot, sled store, outbox, pending notifications), written
//! to its own partition of `<group>.changelog`. A task runs inside a
//! process as a `mon run` of that one partition ([`crate::run_with`] with
//! [`TaskOf`]): what holds for one process (a batch's outputs leave only
//! once the changelog holds it; a stop finishes the batch, snapshots,
//! drains the outbox) holds for each task.
//!
//! Which process runs which task is the group protocol's decision, as in
//! Kafka Streams, with no cluster layer of mon's own: every process
//! subscribes to `<group>.tasks` (as many partitions as the input, no
//! messages) in the consumer group of that name, with cooperative-sticky
//! assignment, and runs the tasks of the partitions it is assigned there.
//! - **Assigned**: the task's local directory is emptied and the task
//!   rebuilds its state from its changelog partition, claiming it (which
//!   fences a former owner that would still write, `changelog/fence.rs`),
//!   then reads its input partition from the offset that state holds.
//! - **Revoked** (a process joined, or this one leaves): librdkafka's
//!   rebalance callback waits until the task has stopped as `mon run`
//!   stops (batch finished, snapshot to the changelog, outbox and
//!   notifications drained, timers with it); only then can the
//!   coordinator give the partition to another process.
//! - **Lost** (this process missed its heartbeats): the same stop; the new
//!   owner's claim already fences whatever it would still write.
//! - **A process dies**: its session times out and the coordinator gives
//!   its tasks to the others, which rebuild them from the changelog. What
//!   the changelog did not hold never left the dead process.
//!
//! Scheduled workflows belong to one task (`engine::owner`), which also
//! takes their events from the other partitions, handed through
//! `<group>.repartition` (`processor/handing.rs`). Rule changes reach
//! every task through `<group>.rules` (`rules/group.rs`).
//!
//! What it must not do: run a task it is not assigned, or start a task on
//! local state left from an earlier assignment (another process may have
//! moved it on since; the changelog is the task's state, the directory a
//! cache of it).

mod front;
mod group_api;
mod group_lists;
mod group_rules;
mod group_split;
mod group_stream;
mod group_trends;
mod group_views;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::TopicPartitionList;

use crate::changelog::Follower;
use crate::config::{Config, KafkaConfig, TaskOf};
use crate::error::{Domain, Error, Retry};
use crate::kafka::{client_error, Context};
use crate::processor::StatusView;
use crate::rules::StartRules;

/// How long a revocation waits for a task to stop before the rebalance
/// goes on without it (the next owner's claim then fences it).
const STOP_WAIT: Duration = Duration::from_secs(60);

/// A task that failed is started again after this, doubling up to
/// [`RESTART_MAX`], for as long as it stays assigned.
const RESTART_FIRST: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);

/// The topic, and consumer group, whose assignment says which process
/// runs which task: `<group>.tasks`.
pub fn tasks_topic(kafka: &KafkaConfig) -> String {
    format!("{}.tasks", kafka.group)
}

/// Warm standbys (`[kafka] standby_tasks`): the changelog partitions of
/// the tasks this process does not run, followed as they are written, so
/// that a task it is given reads only what came since, not its whole
/// partition. Why every such partition, and not one standby per task
/// placed on another member as Kafka Streams does: librdkafka offers no
/// custom assignor, and the tasks group tells a member only its own
/// partitions. What it costs is written in docs/service.md.
#[derive(Default)]
struct Standbys {
    followers: Mutex<BTreeMap<u16, Follower>>,
}

/// How long each turn reads one followed partition.
const FOLLOW_TURN: Duration = Duration::from_millis(20);

impl Standbys {
    /// The follower of `partition`, for its task to start from.
    fn take(&self, partition: u16) -> Option<Follower> {
        self.followers.lock().ok()?.remove(&partition)
    }

    /// Follows every partition no task of this process runs until `stop`.
    fn follow(&self, at: Following<'_>, shared: &Shared, stop: &AtomicBool) {
        let Following { kafka, topic, context, runtime, partitions } = at;
        let mut failed_at: BTreeMap<u16, Instant> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            // Running: a task has a slot. An assigned task not started yet
            // keeps its follower for the supervisor to take.
            let running: BTreeSet<u16> = shared.slots.lock().map(|s| s.keys().copied().collect()).unwrap_or_default();
            for partition in 0..partitions {
                let have = self.followers.lock().map(|f| f.contains_key(&partition)).unwrap_or(true);
                let retry = failed_at.get(&partition).is_none_or(|at| at.elapsed() >= RESTART_MAX);
                if running.contains(&partition) || have || !retry {
                    continue;
                }
                match Follower::start(kafka, topic, i32::from(partition), context, runtime) {
                    Ok(follower) => {
                        tracing::info!(task = partition, "standby: following the task's changelog partition");
                        failed_at.remove(&partition);
                        if let Ok(mut followers) = self.followers.lock() {
                            followers.insert(partition, follower);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(task = partition, error = %e, "standby: cannot follow the task's changelog");
                        failed_at.insert(partition, Instant::now());
                    }
                }
            }
            let followed: Vec<u16> = self.followers.lock().map(|f| f.keys().copied().collect()).unwrap_or_default();
            if followed.is_empty() {
                std::thread::sleep(FOLLOW_TURN);
            }
            for partition in followed {
                // One partition at a time, so that a task about to start
                // waits one turn at most for its follower.
                let Ok(mut followers) = self.followers.lock() else { return };
                if running.contains(&partition) {
                    followers.remove(&partition);
                    continue;
                }
                let Some(follower) = followers.get_mut(&partition) else { continue };
                if let Err(e) = follower.follow(FOLLOW_TURN) {
                    tracing::warn!(task = partition, error = %e, "standby: the task's changelog cannot be read");
                    followers.remove(&partition);
                    failed_at.insert(partition, Instant::now());
                }
            }
        }
    }
}

/// What [`Standbys::follow`] reads.
struct Following<'a> {
    kafka: &'a KafkaConfig,
    topic: &'a str,
    context: &'a Context,
    runtime: &'a tokio::runtime::Runtime,
    partitions: u16,
}

/// A running task, as the rebalance callback and the front see it.
#[derive(Clone)]
struct Slot {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    address: Arc<Mutex<Option<SocketAddr>>>,
    started: Instant,
}

/// What the supervisor, the rebalance callback and the front share.
#[derive(Default)]
struct Shared {
    /// The partitions of `<group>.tasks` this process is assigned now.
    assigned: Mutex<BTreeSet<u16>>,
    /// The tasks running (or stopping) in this process.
    slots: Mutex<BTreeMap<u16, Slot>>,
    /// An assignment (even an empty one) has come: this process is a member.
    joined: AtomicBool,
    rebalances: AtomicU64,
    /// Told when a task starts to listen or stops: the process announces
    /// its tasks to the group at once, since the other fronts route by it.
    changed: Arc<tokio::sync::Notify>,
}

fn partitions_of(list: &TopicPartitionList, topic: &str) -> Vec<u16> {
    list.elements_for_topic(topic).iter().filter_map(|e| u16::try_from(e.partition()).ok()).collect()
}

impl Shared {
    /// The tasks that answer here now, as the group's members topic
    /// names them (`<group>.tasks/<partition>`).
    fn answering(&self, tasks_topic: &str) -> Vec<String> {
        let Ok(slots) = self.slots.lock() else { return Vec::new() };
        let answers = |slot: &Slot| {
            !slot.done.load(Ordering::SeqCst) && slot.address.lock().ok().is_some_and(|address| address.is_some())
        };
        slots.iter().filter(|(_, slot)| answers(slot)).map(|(p, _)| format!("{tasks_topic}/{p}")).collect()
    }

    /// Stops the tasks of `revoked` and waits until each has stopped.
    fn stop_and_wait(&self, revoked: &[u16]) {
        let slots: Vec<(u16, Slot)> = match self.slots.lock() {
            Ok(slots) => revoked.iter().filter_map(|p| slots.get(p).map(|s| (*p, s.clone()))).collect(),
            Err(_) => return,
        };
        for (_, slot) in &slots {
            slot.stop.store(true, Ordering::SeqCst);
        }
        let until = Instant::now() + STOP_WAIT;
        for (partition, slot) in slots {
            let waited = Instant::now();
            while !slot.done.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            match slot.done.load(Ordering::SeqCst) {
                true => tracing::info!(
                    task = partition,
                    ms = waited.elapsed().as_millis() as u64,
                    "task handed over: stopped, its state in the changelog"
                ),
                false => tracing::error!(
                    task = partition,
                    "task did not stop in time; its next owner's claim on the changelog fences it"
                ),
            }
        }
    }
}

/// The context of the `<group>.tasks` consumer: follows the assignment.
struct OwnershipContext {
    inner: Context,
    topic: String,
    shared: Arc<Shared>,
}

crate::kafka::client_context_through_inner!(OwnershipContext);

impl ConsumerContext for OwnershipContext {
    /// Why here and not after: the coordinator gives a revoked partition
    /// to another process only once this callback has returned, so the
    /// task's last snapshot is in the changelog before its next owner
    /// reads it.
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let revoked = partitions_of(list, &self.topic);
            if let Ok(mut assigned) = self.shared.assigned.lock() {
                assigned.retain(|p| !revoked.contains(p));
            }
            tracing::info!(tasks = ?revoked, "tasks revoked: handing them over");
            self.shared.rebalances.fetch_add(1, Ordering::Relaxed);
            self.shared.stop_and_wait(&revoked);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let added = partitions_of(list, &self.topic);
                self.shared.joined.store(true, Ordering::SeqCst);
                self.shared.rebalances.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut assigned) = self.shared.assigned.lock() {
                    assigned.extend(added.iter().copied());
                    // Every member hears of every rebalance, mostly with
                    // nothing for it.
                    if !added.is_empty() {
                        tracing::info!(added = ?added, tasks = ?assigned, "tasks assigned");
                    }
                }
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, topic = %self.topic, "tasks rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Runs this process's share of the group until `stop` is set (SIGTERM,
/// SIGINT): the tasks the group gives it, each a `mon run` of one
/// partition, and the front HTTP server on `[http] listen`. A clean stop
/// hands every task over before leaving the group.
pub fn run(
    config: Config,
    rules: &StartRules,
    functions: &'static dyn mon_compiler::Functions,
    stop: Arc<AtomicBool>,
    listening: impl FnOnce(SocketAddr),
    deliver: Arc<dyn crate::delivery::Deliver>,
) -> Result<StatusView, Error> {
    let Some(kafka) = config.kafka.clone() else {
        return Err(Error::config("kafka.scale_out: needs [kafka]"));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::new(Domain::Process, Retry::Later, "cannot start the async runtime").caused_by(e))?;
    crate::stop_on_signal(&runtime, stop.clone());
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let problems = Arc::new(crate::kafka::Problems::new(metrics.clone()));
    let context = Context { metrics, problems, one_task: false };
    if kafka.create_topics.enabled {
        runtime.block_on(crate::kafka::topics::create_missing(&kafka, context.clone()))?;
    }
    let partitions = crate::kafka::topics::input_partitions(&kafka, context.clone(), Duration::from_secs(30))?;
    let topic = tasks_topic(&kafka);
    let remedy = "or run without `scale_out` in [kafka]";
    let count = i32::from(partitions);
    runtime.block_on(crate::kafka::topics::create_compacted(
        &kafka,
        context.clone(),
        &topic,
        count,
        "tasks",
        remedy,
    ))?;
    let repartition = crate::processor::handing::topic(&kafka);
    runtime.block_on(crate::kafka::topics::create_topic(
        &kafka,
        context.clone(),
        &repartition,
        count,
        crate::kafka::topics::Cleanup::Delete,
        "repartition",
        remedy,
    ))?;
    runtime.block_on(crate::kafka::topics::create_topic(
        &kafka,
        context.clone(),
        &crate::rules::group::topic(&kafka),
        1,
        crate::kafka::topics::Cleanup::Keep,
        "group rules",
        remedy,
    ))?;
    // Made by an earlier run, perhaps for another partition count: a task
    // partition missing would never run, a repartition partition missing
    // would stop every task handing to it.
    for (name, what) in [(&topic, "tasks"), (&repartition, "repartition")] {
        let has = crate::kafka::topics::partitions_of(&kafka, context.clone(), name)?;
        if has != usize::from(partitions) {
            return Err(Error::config(format!(
                "kafka.scale_out: the {what} topic {name} has {has} partitions and the input {partitions}: \
                 the group was made for another partition count, and its tasks' states hold offsets of these \
                 topics; run the grown input under a new `group` (its topics are made afresh)"
            )));
        }
    }

    let shared = Arc::new(Shared::default());
    let consumer: BaseConsumer<OwnershipContext> = crate::kafka::membership_config(&kafka, &topic)
        .create_with_context(OwnershipContext { inner: context.clone(), topic: topic.clone(), shared: shared.clone() })
        .map_err(|e| client_error("cannot create the tasks consumer", e))?;
    consumer.subscribe(&[&topic]).map_err(|e| client_error(&format!("cannot subscribe to {topic}"), e))?;

    let listen: SocketAddr = config
        .http
        .listen
        .parse()
        .map_err(|_| Error::config(format!("http.listen: `{}` is not an address", config.http.listen)))?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(listen)).map_err(|e| {
        let retry = if e.kind() == std::io::ErrorKind::AddrInUse { Retry::Later } else { Retry::Never };
        Error::new(Domain::Http, retry, format!("cannot listen on {listen}")).caused_by(e)
    })?;
    let address = listener.local_addr().unwrap_or(listen);
    let tls = config.http.tls.as_ref().map(crate::tls::server_config).transpose()?;
    // The group's members: this process says which tasks it runs, and
    // reads where the others' run (the front routes by it).
    let http = crate::group::advertised(config.http.advertise.as_deref(), address, tls.is_some());
    let (registry, member) = crate::group::Registry::new(&kafka.group, http, crate::group::MemberRole::ScaleOut);
    let members_topic = crate::group::topic(&kafka);
    let answering = {
        let (shared, topic) = (shared.clone(), topic.clone());
        Arc::new(move || shared.answering(&topic))
    };
    let announcer = crate::group::Announcer {
        registry: registry.clone(),
        member,
        topic: members_topic.clone(),
        kafka: kafka.clone(),
        context: context.clone(),
        producer: crate::kafka::producer(&kafka, context.clone())?,
        consumer: None,
        tasks: Some(answering),
        wake: Some(shared.changed.clone()),
    };
    let (http_stop, http_stopped) = tokio::sync::watch::channel(false);
    let announcing = runtime.spawn(crate::group::announce(announcer, http_stopped.clone()));
    let front = front::Front {
        shared: shared.clone(),
        partitions,
        group: kafka.group.clone(),
        // Under a private authority, the group's processes trust it
        // (`[http.tls] ca`, and `cert`'s own chain).
        client: crate::forward::client_trusting(
            reqwest::Client::builder(),
            &config.http.tls.as_ref().map(|t| t.trusted()).unwrap_or_default(),
        )?,
        registry: registry.clone(),
        tasks_topic: topic.clone(),
        max_body: config.http.max_body_bytes,
        programs: Arc::new(Mutex::new([(rules.program.hash(), Arc::new(rules.program.clone()))].into())),
        functions,
        split: Default::default(),
        auth: config.auth.enabled,
        stopping: http_stopped.clone(),
    };
    // With `[auth]` on, the tasks want the caller's token: the check runs
    // when someone asks the group's status.
    if !config.auth.enabled {
        runtime.spawn(group_split::keep_checking(front.clone()));
    }
    let app = front::router(front);
    let server = runtime.spawn(crate::tls::serve(listener, app, tls, http_stopped));
    tracing::info!(%address, tasks_topic = %topic, partitions, "scale-out: waiting for the group to assign tasks");
    listening(address);

    let base = config.state_dir.clone();
    let standbys = kafka.standby_tasks.then(Standbys::default);
    let changelog_topic = kafka.changelog_topic().unwrap_or_default();
    let outcome = std::thread::scope(|scope| {
        {
            let (registry, kafka, context, topic, stop) = (&registry, &kafka, &context, &members_topic, &stop);
            std::thread::Builder::new()
                .name("mon-group".into())
                .spawn_scoped(scope, move || {
                    if let Err(e) = crate::group::follow(registry.clone(), kafka, context.clone(), topic, stop) {
                        tracing::warn!(error = %e, "cannot follow the consumer group's members");
                    }
                })
                .map_err(|e| Error::new(Domain::Process, Retry::Later, "cannot start the group thread").caused_by(e))?;
        }
        if let Some(standbys) = &standbys {
            let at =
                Following { kafka: &kafka, topic: &changelog_topic, context: &context, runtime: &runtime, partitions };
            let (shared, stop) = (&shared, &stop);
            std::thread::Builder::new()
                .name("mon-standbys".into())
                .spawn_scoped(scope, move || standbys.follow(at, shared, stop))
                .map_err(|e| {
                    Error::new(Domain::Process, Retry::Later, "cannot start the standby thread").caused_by(e)
                })?;
        }
        let mut running: BTreeMap<u16, std::thread::ScopedJoinHandle<'_, Result<StatusView, Error>>> = BTreeMap::new();
        let mut restarts: BTreeMap<u16, (Instant, Duration)> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            // The rebalance callbacks run in here.
            let _ = consumer.poll(Duration::from_millis(100));
            let assigned = shared.assigned.lock().map(|a| a.clone()).unwrap_or_default();
            let finished: Vec<u16> = running.iter().filter(|(_, h)| h.is_finished()).map(|(p, _)| *p).collect();
            for partition in finished {
                let Some(handle) = running.remove(&partition) else { continue };
                let ran_for =
                    shared.slots.lock().ok().and_then(|mut s| s.remove(&partition)).map(|s| s.started.elapsed());
                shared.changed.notify_one();
                let outcome = handle
                    .join()
                    .unwrap_or_else(|_| Err(Error::new(Domain::Process, Retry::Never, "a task's thread panicked")));
                // A task stopped because it was revoked is done with; one
                // that stopped while still assigned (on an error, even a
                // configuration error, which another process would meet
                // too) starts again later, and the process goes on with
                // its other tasks: /readyz says it is not ready meanwhile.
                if !assigned.contains(&partition) {
                    if let Err(e) = outcome {
                        tracing::error!(task = partition, error = %e, "task stopped on an error as it was revoked");
                    }
                    continue;
                }
                // A task that ran a while starts again quickly.
                let ran_long = ran_for.is_some_and(|ran| ran >= RESTART_MAX * 2);
                let wait = match restarts.get(&partition) {
                    Some((_, wait)) if !ran_long => (*wait * 2).min(RESTART_MAX),
                    _ => RESTART_FIRST,
                };
                // Overtaken: the group gave the task to another process,
                // which claimed it, and this one has not heard yet. Started
                // again soon, it would take the task back and forth.
                let wait = match &outcome {
                    Err(e) if crate::changelog::is_overtaken(e) => RESTART_MAX,
                    _ => wait,
                };
                let retry_in_ms = wait.as_millis() as u64;
                match outcome {
                    Ok(_) => tracing::error!(task = partition, retry_in_ms, "task stopped while assigned"),
                    Err(e) => tracing::error!(task = partition, error = %e, retry_in_ms, "task stopped on an error"),
                }
                restarts.insert(partition, (Instant::now() + wait, wait));
            }
            restarts.retain(|p, _| assigned.contains(p));
            for &partition in &assigned {
                let due = restarts.get(&partition).is_none_or(|(at, _)| Instant::now() >= *at);
                if running.contains_key(&partition) || !due {
                    continue;
                }
                let task = TaskOf { partition, partitions };
                let followed = standbys.as_ref().and_then(|standbys| standbys.take(partition));
                let start = Start { task, followed, rules, functions, deliver: deliver.clone() };
                match start_task(scope, &config, &base, start, &shared) {
                    Ok(handle) => {
                        running.insert(partition, handle);
                    }
                    Err(e) => {
                        tracing::error!(task = partition, error = %e, "cannot start the task");
                        restarts.insert(partition, (Instant::now() + RESTART_MAX, RESTART_MAX));
                    }
                }
            }
        }
        // A clean stop: every task hands over, then the group is left
        // (the consumer's drop), so that the others take them at once.
        let all: Vec<u16> = running.keys().copied().collect();
        shared.stop_and_wait(&all);
        for (partition, handle) in running {
            if let Ok(Err(e)) = handle.join() {
                tracing::error!(task = partition, error = %e, "task stopped on an error");
            }
        }
        Ok(())
    });
    drop(consumer);
    let _ = http_stop.send(true);
    let _ = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await });
    // Its goodbye (a tombstone) tells the other fronts at once.
    let _ = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(3), announcing).await });
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome.map(|()| StatusView::default())
}

/// A task to start, and what it runs with.
struct Start<'env> {
    task: TaskOf,
    /// Its changelog partition as this process followed it as a standby.
    followed: Option<Follower>,
    rules: &'env StartRules,
    functions: &'static dyn mon_compiler::Functions,
    deliver: Arc<dyn crate::delivery::Deliver>,
}

/// Starts a task in a thread of `scope`, on an emptied directory of its
/// own under `base`.
fn start_task<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    config: &Config,
    base: &Path,
    start: Start<'env>,
    shared: &Shared,
) -> Result<std::thread::ScopedJoinHandle<'scope, Result<StatusView, Error>>, Error> {
    let Start { task, followed, rules, functions, deliver } = start;
    let dir = task_dir(base, task.partition);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| {
            Error::new(Domain::Process, Retry::Later, format!("cannot empty {}", dir.display())).caused_by(e)
        })?;
    }
    let mut config = config.clone();
    config.state_dir = dir;
    // The process's API tokens: `mon token create` writes them beside its
    // state directory, not each task's (emptied at every assignment).
    config.auth.tokens_dir = Some(base.to_path_buf());
    if let Some(kafka) = config.kafka.as_mut() {
        kafka.task = Some(task);
        kafka.create_topics.enabled = false;
    }
    // A task's own API, on loopback: the front lists it (`/api/v1/tasks`).
    config.http.listen = "127.0.0.1:0".into();
    config.http.advertise = None;
    config.http.tls = None;
    let slot = Slot {
        stop: Arc::new(AtomicBool::new(false)),
        done: Arc::new(AtomicBool::new(false)),
        address: Arc::new(Mutex::new(None)),
        started: Instant::now(),
    };
    if let Ok(mut slots) = shared.slots.lock() {
        slots.insert(task.partition, slot.clone());
    }
    let changed = shared.changed.clone();
    let forget = |e| {
        if let Ok(mut slots) = shared.slots.lock() {
            slots.remove(&task.partition);
        }
        Error::new(Domain::Process, Retry::Later, "cannot start a task's thread").caused_by(e)
    };
    tracing::info!(
        task = task.partition,
        warm = followed.is_some(),
        "task starting: restoring it from its changelog partition"
    );
    std::thread::Builder::new()
        .name(format!("mon-task-{}", task.partition))
        .spawn_scoped(scope, move || {
            let Slot { stop, done, address, .. } = slot;
            let listening = move |bound| {
                if let Ok(mut address) = address.lock() {
                    *address = Some(bound);
                }
                changed.notify_one();
            };
            let outcome = crate::run_followed(config, rules, functions, stop, listening, deliver, followed);
            done.store(true, Ordering::SeqCst);
            outcome
        })
        .map_err(forget)
}

/// A task's local state directory: `<state_dir>/tasks/<partition>`.
pub fn task_dir(base: &Path, partition: u16) -> PathBuf {
    base.join("tasks").join(partition.to_string())
}
