//! A standby answers for its group: every request it does not serve
//! itself (`/healthz`, `/readyz`, `/metrics`) goes on to the active
//! process, found in the group's members topic, and the answer comes back
//! as the active process gave it, streamed (the live event stream too).
//! So a load balancer may send the API's and the command center's traffic
//! to any process of a fail-over group (issue 14, "One view of the
//! group").
//!
//! What it must not do: answer anything itself (the active process holds
//! the state, and checks the caller's token and role as for any request),
//! or forward a request that another process already forwarded: two
//! processes that each believed the other active would pass it back and
//! forth.

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

/// Headers about one connection, not the request (RFC 9110, 7.6.1), and
/// `host`, which names this process: none of them is passed on.
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
    /// live event stream never ends by itself) end then, so that they do
    /// not hold the port the process needs once it takes over.
    stop: tokio::sync::watch::Receiver<bool>,
    metrics: Option<Arc<Metrics>>,
}

impl Forwarder {
    /// `extra_roots`: certificates (PEM) to trust besides the public
    /// roots, for a group whose processes serve HTTPS under a private
    /// authority (`[http.tls] cert`).
    pub fn new(
        registry: Registry,
        max_body_bytes: usize,
        extra_roots: Option<&std::path::Path>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Self, Error> {
        let refuse = |message: String| Error::new(Domain::Config, Retry::Never, message);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mon/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = extra_roots {
            let pem =
                std::fs::read(path).map_err(|e| refuse(format!("cannot read {}", path.display())).caused_by(e))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| refuse(format!("{} holds no PEM certificate", path.display())).caused_by(e))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|e| refuse("cannot make the HTTP client".into()).caused_by(e))?;
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

    /// The base URLs of the live members that say they are active, the
    /// most recently heard first: just after a fail-over the killed
    /// process still counts as alive for a while, and is heard from no
    /// more.
    fn active_members(&self) -> Vec<(String, String)> {
        let mut members: Vec<_> = self
            .registry
            .view(wall_now())
            .members
            .into_iter()
            .filter(|m| m.alive && m.member.role == MemberRole::Active && m.member.member != self.registry.this)
            .map(|m| m.member)
            .collect();
        members.sort_by(|a, b| b.seen_at.cmp(&a.seen_at));
        members.into_iter().map(|m| (m.member, m.http)).collect()
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

/// The active process's answer to `request`, or why there is none (the
/// error says it in the API's shape).
pub async fn pass_on(forwarder: &Forwarder, request: Request) -> Result<Response, ApiError> {
    let passed = try_pass_on(forwarder, request).await;
    forwarder.count(if passed.is_ok() { "answered" } else { "unavailable" });
    passed
}

async fn try_pass_on(forwarder: &Forwarder, request: Request) -> Result<Response, ApiError> {
    if let Some(by) = request.headers().get(FORWARDED_BY) {
        let by = by.to_str().unwrap_or("another process");
        return Err(unavailable(format!(
            "{by} forwarded this request to this process as the group's active one, but this process is a standby: \
             the group's active process may have just changed; try again"
        )));
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, forwarder.max_body_bytes).await.map_err(|_| {
        let message = "the body is over the service's limit (`[http] max_body_bytes`)";
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, message, json!({"field": "body"}))
    })?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let headers = passed_on(&parts.headers, &forwarder.registry.this);
    let active = forwarder.active_members();
    if active.is_empty() {
        return Err(unavailable(
            "this process is a standby, and no process of its group is active now (a fail-over may be under way); \
             try again in a few seconds"
                .into(),
        ));
    }
    let mut tried = Vec::new();
    for (member, base) in active {
        let url = format!("{base}{path}");
        let sent = forwarder
            .client
            .request(parts.method.clone(), &url)
            .headers(headers.clone())
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) => return Ok(answered(answer, &member, forwarder.stop.clone())),
            // Only a process that could not be reached is passed over:
            // once a request went out, sending it again could do twice
            // what it asks (an acknowledgement, an activation).
            Err(e) if e.is_connect() => {
                tracing::debug!(error = %e, member, "the active process does not answer");
                tried.push(base);
            }
            Err(e) => {
                tracing::warn!(error = %e, member, path, "a request forwarded to the active process failed");
                return Err(unavailable(format!(
                    "this process is a standby; the group's active process at {base} did not answer this request: \
                     try again"
                )));
            }
        }
    }
    Err(unavailable(format!(
        "this process is a standby, and the group's active process does not answer at {} (a fail-over may be under \
         way); try again in a few seconds",
        tried.join(", ")
    )))
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, message, serde_json::Value::Null)
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
    for name in HOP_BY_HOP {
        out.remove(name);
    }
    out
}

/// The active process's answer, streamed back as it comes, until `stop`.
fn answered(answer: reqwest::Response, member: &str, mut stop: tokio::sync::watch::Receiver<bool>) -> Response {
    let status = answer.status();
    let mut headers = without_hop_by_hop(answer.headers());
    // The length is the body's, which is passed on unchanged; hyper sets
    // it again from the stream if it can.
    headers.remove(header::CONTENT_LENGTH);
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

    #[test]
    fn passes_on_the_request_headers_but_not_those_of_the_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer mon_x"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::HOST, HeaderValue::from_static("standby:8080"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        let out = passed_on(&headers, "host-1-2");
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
        use crate::group::{MemberRole, Registry};
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let tls = crate::tls::server_config(&crate::config::TlsConfig { cert: cert.clone(), key }).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let active_app = axum::Router::new().route("/api/v1/group", axum::routing::get(|| async { "the active one" }));
        tokio::spawn(crate::tls::serve(listener, active_app, Some(tls), stopped.clone()));

        let (standby, _) = Registry::new("g", "https://127.0.0.1:1".into(), MemberRole::Standby);
        let (_, active) = Registry::new("g", format!("https://127.0.0.1:{port}"), MemberRole::Active);
        let active_id = format!("{}-active", active.member);
        standby.heard(crate::group::Member { member: active_id.clone(), ..active });
        let request = || Request::builder().uri("/api/v1/group").body(Body::empty()).unwrap();

        let trusting = Forwarder::new(standby.clone(), 1 << 20, Some(&cert), stopped.clone()).unwrap();
        let answer = pass_on(&trusting, request()).await.expect("the active process reached over HTTPS");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers().get(ANSWERED_BY).unwrap(), active_id.as_str());
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.unwrap();
        assert_eq!(&body[..], b"the active one");

        let public_roots_only = Forwarder::new(standby, 1 << 20, None, stopped).unwrap();
        let refused = pass_on(&public_roots_only, request()).await.expect_err("a certificate no public root signed");
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.message);
        let _ = stop.send(true);
    }
}
