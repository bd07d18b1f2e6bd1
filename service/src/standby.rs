//! A `mon run` with fail-over on waits here, as a standby, until it holds
//! its group's lease (`lease.rs`). Meanwhile it reads the changelog as the
//! active process writes it, so that taking over costs the rest of the
//! read and the replay of the journal since the last snapshot, not a read
//! of the whole topic; and it answers `/healthz`, `/readyz` (503, "a
//! standby") and `/metrics` itself, so that a supervisor does not restart
//! it, and passes every other request on to the active process
//! (`forward.rs`), so that any process answers for the group. Once it is
//! a member of the lease group, it announces
//! itself in the group's members topic (`group.rs`) with the role
//! "standby", so that the active process can tell whether anyone would
//! take over from it; on taking over, the same member record says
//! "active" at once.
//!
//! What it must not do: touch the state directory's journal or outputs
//! while it waits. Only the process that holds the lease writes; the
//! standby's state is rebuilt from what it followed once it takes over
//! (`changelog::open`), by the same code as any start.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::changelog::Follower;
use crate::config::KafkaConfig;
use crate::error::{Domain, Error, Retry};
use crate::forward::{forward, pass_on, Forwarder, READINESS_OF};
use crate::group::{Announcer, Member, MemberRole, Registry};
use crate::kafka::Context;
use crate::lease::Lease;
use crate::metrics::Metrics;

/// What a standby hands on when it takes over.
pub struct Promoted {
    pub lease: Lease,
    /// The changelog as read so far.
    pub followed: Follower,
    /// The address its HTTP server was bound to, for the service's.
    pub address: SocketAddr,
    /// This process in its group, already announced as the active one:
    /// the service goes on announcing the same member.
    pub group: (Registry, Member),
}

/// Where a standby serves its small API.
pub struct Listen<'a> {
    pub address: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `[http] advertise`: how the group's other processes reach it.
    pub advertise: Option<&'a str>,
    /// `[http] max_body_bytes`: the largest request body it forwards.
    pub max_body_bytes: usize,
    /// `[http.tls]`'s `ca` and `cert`: trusted when forwarding, besides
    /// the public roots, so that a group serving HTTPS under a private
    /// authority reaches its own members.
    pub trust: Vec<&'a std::path::Path>,
}

/// How long one turn of the wait reads the changelog before it looks at
/// the lease and the stop flag again.
const TURN: Duration = Duration::from_millis(200);

/// How long each turn serves the lease consumer's queued events.
const LEASE_POLL: Duration = Duration::from_millis(20);

/// Joins the lease group and waits until this process holds the lease
/// (`Some`) or is asked to stop (`None`). `listen` serves the standby's
/// own small API meanwhile; it is released before this returns.
pub fn wait(
    kafka: &KafkaConfig,
    changelog_topic: &str,
    context: &Context,
    runtime: &tokio::runtime::Runtime,
    listen: Listen<'_>,
    stop: &AtomicBool,
) -> Result<Option<Promoted>, Error> {
    let Listen { address: listen, tls, advertise, max_body_bytes, trust } = listen;
    let started = Instant::now();
    let metrics = context.metrics.clone();
    metrics.lease_held.set(0);
    let lease = runtime.block_on(Lease::join(kafka, context.clone()))?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(listen)).map_err(|e| {
        let retry = if e.kind() == std::io::ErrorKind::AddrInUse { Retry::Later } else { Retry::Never };
        Error::new(Domain::Http, retry, format!("cannot listen on {listen}")).caused_by(e)
    })?;
    let address = listener.local_addr().unwrap_or(listen);
    let http = crate::group::advertised(advertise, address, tls.is_some());
    let (registry, member) = Registry::new(&kafka.group, http, MemberRole::Standby);
    let announcer = Announcer {
        registry: registry.clone(),
        member: member.clone(),
        topic: crate::group::topic(kafka),
        kafka: kafka.clone(),
        context: context.clone(),
        producer: crate::kafka::producer(kafka, context.clone())?,
        consumer: None,
        tasks: None,
        wake: None,
    };
    let (announce_stop, announce_stopped) = tokio::sync::watch::channel(false);
    let mut announcing = None;
    let (http_stop, http_stopped) = tokio::sync::watch::channel(false);
    // Everything else goes on to the active process, found by reading the
    // members topic as the active process itself does.
    let forwarder =
        Forwarder::new(registry.clone(), max_body_bytes, &trust, http_stopped.clone())?.counting(metrics.clone());
    let standby = Standby { metrics: metrics.clone(), lease: crate::lease::name(kafka), forwarder: forwarder.clone() };
    let _members_reader = read_members(registry.clone(), kafka, context)?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(standby)
        .fallback_service(Router::new().fallback(forward).with_state(forwarder));
    let server = runtime.spawn(crate::tls::serve(listener, app, tls, http_stopped));
    let mut followed = Follower::start(kafka, changelog_topic, crate::changelog::PROCESS_PARTITION, context, runtime)?;
    tracing::info!(
        lease = %crate::lease::name(kafka),
        changelog = changelog_topic,
        %address,
        "standby: following the changelog until this process holds the lease"
    );
    let outcome = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(None);
        }
        // Why not zero: a zero-timeout poll serves one queued event (a
        // log line, statistics) per turn, and the rebalance that gives this
        // process the lease waited behind them for seconds.
        lease.poll(LEASE_POLL);
        if lease.held() {
            break Ok(Some(()));
        }
        // Why not from the start: a process still joining the lease group
        // could not take over yet, and the active process would count it
        // as cover too early.
        if announcing.is_none() && lease.joined() {
            announcing = Some(runtime.spawn(crate::group::announce(announcer.clone(), announce_stopped.clone())));
        }
        if let Err(e) = followed.follow(TURN) {
            break Err(e);
        }
    };
    // The port is free again before the service binds it.
    let _ = http_stop.send(true);
    // Bounded as the service's own stop is: this process holds the lease
    // now, and nothing runs the state until it goes on.
    let mut server = server;
    if runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), &mut server).await }).is_err() {
        server.abort();
        let _ = runtime.block_on(server);
    }
    let taken_over = matches!(outcome, Ok(Some(())));
    if taken_over {
        // Why abort and not stop: a stopped announcer says goodbye (a
        // tombstone), and this member is not leaving, it becomes the
        // active one. Its record says so now, through the same producer
        // (so after any "standby" record still on its way), without
        // waiting for the service's own announcer, which starts once the
        // state is open.
        if let Some(announcing) = announcing {
            announcing.abort();
            // Returns as soon as the task is cancelled; awaited so that a
            // turn it is in the middle of cannot write "standby" after
            // "active".
            let _ = runtime.block_on(announcing);
        }
        let mut announcer = announcer;
        registry.took_over(&mut announcer.member);
        let group = (registry, announcer.member.clone());
        runtime.spawn(crate::group::announce_once(announcer));
        tracing::info!(
            waited_ms = started.elapsed().as_millis() as u64,
            followed_bytes = followed.bytes(),
            "standby: taking over"
        );
        metrics.lease_held.set(1);
        return Ok(Some(Promoted { lease, followed, address, group }));
    }
    // Leaving (stopped, or failed): the group sees this standby gone at
    // once. Bounded by the announcer's own timeouts.
    let _ = announce_stop.send(true);
    if let Some(announcing) = announcing {
        let _ = runtime.block_on(announcing);
    }
    outcome.map(|_| None)
}

/// Stops the standby's reader of the members topic when dropped, however
/// the wait ends. Not joined: it ends within one poll of the topic
/// (250 ms), which a take-over need not wait for; the service reads the
/// topic into the same registry from then on.
struct MembersReader(Arc<AtomicBool>);

impl Drop for MembersReader {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Reads the members topic into `registry` on a thread of its own, as the
/// active process does: the forwarder finds the active process there.
fn read_members(registry: Registry, kafka: &KafkaConfig, context: &Context) -> Result<MembersReader, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let (kafka, context, stopped) = (kafka.clone(), context.clone(), stop.clone());
    std::thread::Builder::new()
        .name("mon-standby-members".into())
        .spawn(move || {
            let topic = crate::group::topic(&kafka);
            // Again after a failure (a broker away at start), for as long
            // as the standby waits: without it, it forwards nothing.
            while !stopped.load(Ordering::Relaxed) {
                match crate::group::follow(registry.clone(), &kafka, context.clone(), &topic, &stopped) {
                    Ok(()) => break,
                    Err(e) => {
                        let message = "a standby cannot read its group's members: it forwards no requests until it can";
                        tracing::warn!(error = %e, "{message}");
                        std::thread::sleep(Duration::from_secs(2));
                    }
                }
            }
        })
        .map_err(|e| Error::new(Domain::Http, Retry::Never, "cannot start the members' reader").caused_by(e))?;
    Ok(MembersReader(stop))
}

#[derive(Clone)]
struct Standby {
    metrics: Arc<Metrics>,
    lease: String,
    forwarder: Forwarder,
}

/// The main API's readiness shape, so the page's health strip and probes
/// read it alike.
#[derive(serde::Serialize)]
struct Readiness {
    ready: bool,
    reasons: Vec<String>,
}

/// Not ready: a standby; or, asked for the group's readiness
/// (`mon-readiness: group`, the command center), the active process's.
async fn readyz(State(standby): State<Standby>, request: Request) -> Response {
    let reason = if request.headers().get(READINESS_OF).is_some_and(|of| of == "group") {
        match pass_on(&standby.forwarder, request).await {
            Ok(answer) => return answer,
            Err(refusal) => refusal.message,
        }
    } else {
        format!(
            "a standby: another process of the group holds the lease {}; this one follows the changelog and takes \
             over when that one stops",
            standby.lease
        )
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(Readiness { ready: false, reasons: vec![reason] })).into_response()
}

async fn metrics_text(State(standby): State<Standby>) -> Response {
    const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, OPENMETRICS)], standby.metrics.encode()).into_response()
}
