//! A standby answers for its group: every request it does not serve
//! itself (`GET /healthz`, `/readyz`, `/metrics`) goes on to the active
//! process, found in the group's members topic, and the answer comes back
//! as the active process gave it, streamed (the live event stream too).
//! So a load balancer may send the API's and the command center's traffic
//! to any process of a fail-over group (issue 14, "One view of the
//! group").
//!
//! What it must not do: answer anything itself (the active process holds
//! the state, and checks the caller's token and role as for any request);
//! send a request twice (once it went out, it may have been applied: an
//! acknowledgement, an activation); or forward a request that another
//! process already forwarded: two processes that each believed the other
//! active would pass it back and forth.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::json;

use crate::clock::wall_now;
use crate::error::{Domain, Error, Retry};
use crate::group::{MemberRole, Registry};
use crate::http::error::{ApiError, ErrorCode};
use crate::metrics::{Metrics, OutcomeLabels};

/// Names the process that forwarded a request; a request that carries it
/// is never forwarded again.
pub const FORWARDED_BY: &str = "mon-forwarded-by";

/// On a forwarded answer: the member id of the process that gave it.
pub const ANSWERED_BY: &str = "mon-answered-by";

/// `mon-readiness: group` on `GET /readyz` asks for the readiness of the
/// process that answers the API, not of the one asked: a standby passes
/// it on. The command center sends it, so that a page served through a
/// standby says whether the group monitors; probes do not, so that a
/// supervisor still sees a standby as not ready.
pub const READINESS_OF: &str = "mon-readiness";

/// How long reaching the active process may take. A process that does
/// not accept a connection in this time is taken as gone (the next one
/// that says it is active is tried).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the active process may take to begin its answer (its status
/// and headers; a stream's body may then go on for as long as it likes).
/// Every answer of the API begins well within it; a process that accepted
/// the connection and then froze does not hold the caller forever.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A member's record that says it was seen this far in the future is not
/// believed: clocks of a group differ by less, and such a record would
/// otherwise count as alive for good and sort first.
const CLOCK_SKEW_ALLOWED_MS: i64 = 30_000;

/// Headers about one connection, not the message (RFC 9110, 7.6.1), and
/// `host`, which names this process: none of them is passed on, in either
/// direction, nor any header that `connection` names.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

#[derive(Clone)]
pub struct Forwarder {
    registry: Registry,
    client: reqwest::Client,
    max_body_bytes: usize,
    /// Set when the standby's server stops: answers still streaming (the
    /// live event stream never ends by itself) end then, so that the
    /// server's stop, and a take-over behind it, does not wait for them.
    stop: tokio::sync::watch::Receiver<bool>,
    metrics: Option<Arc<Metrics>>,
}

/// `builder`'s client, trusting the certificates (PEM) in `extra_roots`
/// besides the public roots: how one mon process reaches another of its
/// group over HTTPS under a private authority.
pub fn client_trusting(
    mut builder: reqwest::ClientBuilder,
    extra_roots: &[&std::path::Path],
) -> Result<reqwest::Client, Error> {
    let refuse = |message: String| Error::new(Domain::Config, Retry::Never, message);
    for path in extra_roots {
        let pem = std::fs::read(path).map_err(|e| refuse(format!("cannot read {}", path.display())).caused_by(e))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| refuse(format!("{} holds no PEM certificate", path.display())).caused_by(e))?;
        if certificates.is_empty() {
            return Err(refuse(format!("{} holds no PEM certificate", path.display())));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| refuse("cannot make the HTTP client".into()).caused_by(e))
}

impl Forwarder {
    /// `extra_roots`: files of certificates (PEM) to trust besides the
    /// public roots, for a group whose processes serve HTTPS under a
    /// private authority (`[http.tls]`, [`TlsConfig::trusted`](crate::config::TlsConfig::trusted)).
    pub fn new(
        registry: Registry,
        max_body_bytes: usize,
        extra_roots: &[&std::path::Path],
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Self, Error> {
        let builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_keepalive(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mon/", env!("CARGO_PKG_VERSION")));
        let client = client_trusting(builder, extra_roots)?;
        Ok(Forwarder { registry, client, max_body_bytes, stop, metrics: None })
    }

    /// Counts what it passes on in `mon_forwarded_requests_total`.
    pub fn counting(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, outcome: &'static str) {
        if let Some(metrics) = &self.metrics {
            metrics.forwarded_requests.get_or_create(&OutcomeLabels { outcome }).inc();
        }
    }

    /// (member id, base URL) of the live members that say they are
    /// active, the most recently heard first: just after a fail-over the
    /// killed process still counts as alive for a while, and is heard
    /// from no more.
    fn active_members(&self) -> Vec<(String, String)> {
        let now = wall_now();
        let mut members: Vec<(i64, String, String)> = self
            .registry
            .view(now)
            .members
            .into_iter()
            .filter(|m| m.alive && m.member.role == MemberRole::Active && m.member.member != self.registry.this)
            .filter(|m| m.member.http.starts_with("http://") || m.member.http.starts_with("https://"))
            .filter_map(|m| {
                let seen = mon_stdlib::time::parse_rfc3339(&m.member.seen_at)?;
                (seen <= now + CLOCK_SKEW_ALLOWED_MS).then_some((seen, m.member.member, m.member.http))
            })
            .collect();
        members.sort_by_key(|(seen, ..)| std::cmp::Reverse(*seen));
        members.into_iter().map(|(_, member, http)| (member, http)).collect()
    }
}

/// The standby's fallback route: passes the request on to the active
/// process and its answer back.
pub async fn forward(State(forwarder): State<Forwarder>, request: Request) -> Response {
    match pass_on(&forwarder, request).await {
        Ok(answer) => answer,
        Err(refusal) => refusal.into_response(),
    }
}

/// Why a request got no answer from the active process, for the metric.
enum NotPassed {
    /// Not sent: no active process known or reachable, or a second hop.
    Unavailable(ApiError),
    /// The body is over the limit, or could not be read.
    Refused(ApiError),
    /// Sent, and no answer came back: it may have been applied.
    Failed(ApiError),
}

/// The active process's answer to `request`, or why there is none (the
/// error says it in the API's shape).
pub async fn pass_on(forwarder: &Forwarder, request: Request) -> Result<Response, ApiError> {
    let (outcome, passed) = match try_pass_on(forwarder, request).await {
        Ok(answer) => ("answered", Ok(answer)),
        Err(NotPassed::Unavailable(e)) => ("unavailable", Err(e)),
        Err(NotPassed::Refused(e)) => ("refused", Err(e)),
        Err(NotPassed::Failed(e)) => ("failed", Err(e)),
    };
    forwarder.count(outcome);
    passed
}

async fn try_pass_on(forwarder: &Forwarder, request: Request) -> Result<Response, NotPassed> {
    if let Some(by) = request.headers().get(FORWARDED_BY) {
        let by = by.to_str().unwrap_or("another process");
        return Err(NotPassed::Unavailable(ApiError::unavailable(format!(
            "{by} forwarded this request to this process as the group's active one, but this process is a standby: \
             the group's active process may have just changed; try again"
        ))));
    }
    // Before the body is read: without an active process there is no one
    // to read it for.
    let active = forwarder.active_members();
    if active.is_empty() {
        return Err(NotPassed::Unavailable(ApiError::unavailable(
            "this process is a standby, and no process of its group is active now (a fail-over may be under way); \
             try again in a few seconds",
        )));
    }
    let (parts, body) = request.into_parts();
    let body = read_body(body, forwarder.max_body_bytes).await.map_err(NotPassed::Refused)?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let headers = passed_on(&parts.headers, &forwarder.registry.this);
    for (member, base) in active {
        let url = format!("{base}{path}");
        let request = forwarder.client.request(parts.method.clone(), &url).headers(headers.clone()).body(body.clone());
        match tokio::time::timeout(ANSWER_TIMEOUT, request.send()).await {
            Ok(Ok(answer)) => return Ok(answered(answer, &member, forwarder.stop.clone())),
            // Only a process that could not be reached is passed over:
            // the request never left for it.
            Ok(Err(e)) if e.is_connect() => {
                tracing::info!(error = %e, member, url = base, "the active process does not answer: trying the next");
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, member, path, "a request forwarded to the active process failed");
                return Err(NotPassed::Failed(sent_unanswered()));
            }
            Err(_) => {
                tracing::warn!(member, path, "the active process did not answer a forwarded request in time");
                return Err(NotPassed::Failed(sent_unanswered()));
            }
        }
    }
    Err(NotPassed::Unavailable(ApiError::unavailable(
        "this process is a standby, and the group's active process does not answer (a fail-over may be under way); \
         try again in a few seconds",
    )))
}

/// A request that reached the active process, with no answer back: 502,
/// and not "try again", since it may have been applied.
fn sent_unanswered() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        ErrorCode::Unavailable,
        "this process is a standby: it passed the request on to the group's active process, and no answer came \
         back; the request may have been applied, so check before repeating it",
        serde_json::Value::Null,
    )
}

/// The whole body, up to the service's limit (`[http] max_body_bytes`), as
/// the active process would take it.
async fn read_body(body: Body, max_body_bytes: usize) -> Result<axum::body::Bytes, ApiError> {
    use http_body_util::BodyExt as _;
    match http_body_util::Limited::new(body, max_body_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "the body is over the service's limit (`[http] max_body_bytes`)",
            json!({ "field": "body" }),
        )),
        Err(e) => Err(ApiError::invalid("body", format!("cannot read the body: {e}"))),
    }
}

/// The request's headers as they go on: without those about this
/// connection, and saying who forwarded it.
fn passed_on(headers: &HeaderMap, this: &str) -> HeaderMap {
    let mut out = without_hop_by_hop(headers);
    if let Ok(value) = HeaderValue::from_str(this) {
        out.insert(HeaderName::from_static(FORWARDED_BY), value);
    }
    out
}

fn without_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in HOP_BY_HOP.iter().copied().chain(named.iter().map(String::as_str)) {
        out.remove(name);
    }
    out
}

/// The active process's answer, streamed back as it comes, until `stop`.
/// Its `content-length` is kept: an answer cut short by `stop` then ends
/// the connection as an error, and the caller can tell; a stream without
/// a length (the event stream) simply ends.
fn answered(answer: reqwest::Response, member: &str, mut stop: tokio::sync::watch::Receiver<bool>) -> Response {
    let status = answer.status();
    let mut headers = without_hop_by_hop(answer.headers());
    if let Ok(value) = HeaderValue::from_str(member) {
        headers.insert(HeaderName::from_static(ANSWERED_BY), value);
    }
    let stopped = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let mut response = Response::new(Body::from_stream(answer.bytes_stream().take_until(stopped)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{Member, MemberRole, Registry};

    /// A standby's registry that has heard from these active members:
    /// (member id, base URL, last heard from, in ms from now).
    fn standby_hearing(active: &[(&str, String, i64)]) -> Registry {
        let (standby, _) = Registry::new("g", "http://127.0.0.1:1".into(), MemberRole::Standby);
        let (_, template) = Registry::new("g", "http://unused".into(), MemberRole::Active);
        for (id, http, seen_ms) in active {
            let seen_at = mon_stdlib::time::format_rfc3339(wall_now() + seen_ms);
            standby.heard(Member { member: id.to_string(), http: http.clone(), seen_at, ..template.clone() });
        }
        standby
    }

    /// Serves `app` over plain HTTP on a free port, until the sender says
    /// stop; the receiver is the forwarder's stop signal.
    async fn serve(
        app: axum::Router,
    ) -> (std::net::SocketAddr, tokio::sync::watch::Sender<bool>, tokio::sync::watch::Receiver<bool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(crate::tls::serve(listener, app, None, stopped.clone()));
        (address, stop, stopped)
    }

    #[test]
    fn passes_on_the_request_headers_but_not_those_of_the_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer mon_x"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::HOST, HeaderValue::from_static("standby:8080"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Hop"));
        headers.insert("x-hop", HeaderValue::from_static("only for this connection"));
        let out = passed_on(&headers, "host-1-2");
        assert!(out.get("x-hop").is_none(), "a header named by `connection` passed on");
        assert_eq!(out.get(header::AUTHORIZATION).unwrap(), "Bearer mon_x");
        assert_eq!(out.get(header::ACCEPT).unwrap(), "text/event-stream");
        assert_eq!(out.get(FORWARDED_BY).unwrap(), "host-1-2");
        for gone in [header::HOST, header::CONNECTION, header::TRANSFER_ENCODING] {
            assert!(out.get(&gone).is_none(), "{gone} passed on");
        }
    }

    /// A standby of a group serving HTTPS under a certificate of its own
    /// (self-signed here) reaches the active process because it trusts
    /// `[http.tls] cert`; without that, it could not.
    #[tokio::test]
    async fn reaches_an_active_process_serving_https_under_the_groups_own_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let tls = crate::tls::server_config(&crate::config::TlsConfig { cert: cert.clone(), key, ca: None }).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let active_app = axum::Router::new().route("/api/v1/group", axum::routing::get(|| async { "the active one" }));
        tokio::spawn(crate::tls::serve(listener, active_app, Some(tls), stopped.clone()));

        let active_id = "the-active-one";
        let standby = standby_hearing(&[(active_id, format!("https://127.0.0.1:{port}"), 0)]);
        let request = || Request::builder().uri("/api/v1/group").body(Body::empty()).unwrap();

        let trusting = Forwarder::new(standby.clone(), 1 << 20, &[cert.as_path()], stopped.clone()).unwrap();
        let answer = pass_on(&trusting, request()).await.expect("the active process reached over HTTPS");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers().get(ANSWERED_BY).unwrap(), active_id);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.unwrap();
        assert_eq!(&body[..], b"the active one");

        let public_roots_only = Forwarder::new(standby, 1 << 20, &[], stopped).unwrap();
        let refused = pass_on(&public_roots_only, request()).await.expect_err("a certificate no public root signed");
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.message);
        assert!(refused.message.contains("does not answer"), "refused before anything was sent: {}", refused.message);
        let _ = stop.send(true);
    }

    /// Processes under a private authority, each with a certificate of its
    /// own that the authority signed: one reaches another when it trusts
    /// `[http.tls] ca`, and cannot with its own `cert` alone.
    #[tokio::test]
    async fn reaches_a_process_whose_certificate_a_private_authority_signed() {
        let dir = tempfile::tempdir().unwrap();
        let mut authority = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        authority.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let authority = rcgen::CertifiedIssuer::self_signed(authority, rcgen::KeyPair::generate().unwrap()).unwrap();
        let issue = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
            let cert = cert.signed_by(&key, &authority).unwrap();
            let paths = (dir.path().join(format!("{name}.pem")), dir.path().join(format!("{name}-key.pem")));
            std::fs::write(&paths.0, cert.pem()).unwrap();
            std::fs::write(&paths.1, key.serialize_pem()).unwrap();
            paths
        };
        let ((other_cert, other_key), (own_cert, _)) = (issue("other"), issue("own"));
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, authority.pem()).unwrap();
        let served = crate::config::TlsConfig { cert: other_cert, key: other_key, ca: Some(ca.clone()) };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let app = axum::Router::new().route("/api/v1/group", axum::routing::get(|| async { "the other one" }));
        let tls = crate::tls::server_config(&served).unwrap();
        tokio::spawn(crate::tls::serve(listener, app, Some(tls), stopped.clone()));
        let url = format!("https://127.0.0.1:{port}/api/v1/group");

        let own = crate::config::TlsConfig { cert: own_cert, key: dir.path().join("own-key.pem"), ca: Some(ca) };
        let trusting = client_trusting(reqwest::Client::builder(), &own.trusted()).unwrap();
        let answer = trusting.get(&url).send().await.expect("the other process reached over HTTPS");
        assert_eq!(answer.text().await.unwrap(), "the other one");

        let without_ca = crate::config::TlsConfig { ca: None, ..own };
        let refused = client_trusting(reqwest::Client::builder(), &without_ca.trusted()).unwrap();
        assert!(refused.get(&url).send().await.is_err(), "its own certificate is not the authority");
        let nothing = dir.path().join("empty.pem");
        std::fs::write(&nothing, "").unwrap();
        let error = client_trusting(reqwest::Client::builder(), &[nothing.as_path()]).unwrap_err().to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        let _ = stop.send(true);
    }

    /// A member record dated in the future is not believed (it would count
    /// as alive for good and sort first), and of two active members the
    /// one heard from last comes first.
    #[test]
    fn takes_the_active_member_heard_from_last_and_none_from_the_future() {
        let standby = standby_hearing(&[
            ("earlier", "http://earlier:1".into(), -2_500),
            ("later", "http://later:1".into(), -500),
            ("future", "http://future:1".into(), 3_600_000),
            ("not-http", "file:///etc/passwd".into(), 0),
        ]);
        let (_, stopped) = tokio::sync::watch::channel(false);
        let forwarder = Forwarder::new(standby, 1 << 20, &[], stopped).unwrap();
        let ids: Vec<String> = forwarder.active_members().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["later", "earlier"]);
    }

    /// The newest active member does not accept connections (it died just
    /// now): the request goes to the next, which answers; nothing was sent
    /// to the first, so sending it on cannot apply it twice.
    #[tokio::test]
    async fn passes_over_an_active_member_that_cannot_be_reached() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let app = axum::Router::new().route(
            "/api/v1/alerts/a/ack",
            axum::routing::post(|body: String| async move { format!("acknowledged: {body}") }),
        );
        let (open, stop, stopped) = serve(app).await;

        let standby = standby_hearing(&[
            ("died-just-now", format!("http://{closed}"), 0),
            ("alive", format!("http://{open}"), -1_000),
        ]);
        let forwarder = Forwarder::new(standby, 1 << 20, &[], stopped).unwrap();
        let request = Request::builder().method("POST").uri("/api/v1/alerts/a/ack").body(Body::from("by ops")).unwrap();
        let answer = pass_on(&forwarder, request).await.expect("the live active member's answer");
        assert_eq!(answer.headers().get(ANSWERED_BY).unwrap(), "alive");
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.unwrap();
        assert_eq!(&body[..], b"acknowledged: by ops");
        let _ = stop.send(true);
    }

    /// The active process takes the request and closes without an answer:
    /// 502, saying it may have been applied, and the request goes to no
    /// other member.
    #[tokio::test]
    async fn a_request_sent_and_unanswered_is_a_502_and_is_not_sent_again() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use tokio::io::AsyncReadExt as _;

        let hangs_up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hangs_up_at = hangs_up.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut connection, _) = hangs_up.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = connection.read(&mut request).await;
        });
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new().fallback(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { "answered" }
        });
        let (other_at, stop, stopped) = serve(app).await;

        let standby = standby_hearing(&[
            ("hangs-up", format!("http://{hangs_up_at}"), 0),
            ("other", format!("http://{other_at}"), -1_000),
        ]);
        let forwarder = Forwarder::new(standby, 1 << 20, &[], stopped).unwrap();
        let request = Request::builder().method("POST").uri("/api/v1/alerts/a/ack").body(Body::from("by ops")).unwrap();
        let refused = pass_on(&forwarder, request).await.expect_err("no answer came back");
        assert_eq!(refused.status, StatusCode::BAD_GATEWAY, "{}", refused.message);
        assert!(refused.message.contains("may have been applied"), "{}", refused.message);
        assert_eq!(hits.load(Ordering::SeqCst), 0, "sent to a second member");
        let _ = stop.send(true);
    }
}
