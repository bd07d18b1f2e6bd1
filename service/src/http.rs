//! The HTTP side (axum): health, readiness, metrics, event ingest
//! ([`ingest`]), the local logs ([`logs`]), event search ([`events`]),
//! item lifecycles ([`items`]), the alert API ([`alerts`]), the caller
//! ([`whoami`]),
//! and the OpenAPI 3.1 document that describes them, served at
//! `GET /api/v1/openapi.json`.
//!
//! Architecture invariant: the router and the document are built from the
//! same list ([`routes`]): each handler carries its `#[utoipa::path]`
//! description, and `utoipa_axum` registers the route and its description
//! together, so the document lists every route the router serves and no
//! other. Every error answer has the shape of [`error`].
//!
//! With `[auth] enabled`, one middleware ([`authorize`]) asks every
//! matched route for the role [`crate::auth::required_role`] gives it, and
//! the document served declares the same requirements, made from the same
//! table ([`openapi_with_auth`]). The middleware hands the handler the
//! [`crate::auth::Caller`] (a request extension): who the alert commands
//! record.

mod alerts;
pub mod error;
mod events;
mod group_changes;
mod ingest;
mod items;
mod keys;
mod logs;
pub(crate) mod page;
mod rules;
pub mod schema;
mod stages;
mod stream;
mod ui;
mod whoami;
pub(crate) mod workflows;

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, OnceLock, RwLock};

use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{self, Authenticator, Refusal};
use super::metrics::Metrics;
use super::processor::{AlertsView, Request, StatusView};
use super::store::StoreHandle;

#[derive(Clone)]
pub struct Api {
    pub metrics: Arc<Metrics>,
    /// The processing thread's input channel: events and alert commands.
    pub ingest: SyncSender<Request>,
    pub status: Arc<RwLock<StatusView>>,
    pub alerts: Arc<RwLock<AlertsView>>,
    /// The workflow views, rebuilt by the processing thread.
    pub views: Arc<RwLock<crate::views::Views>>,
    /// Status and alert changes, for `GET /api/v1/stream`.
    pub changes: tokio::sync::broadcast::Sender<crate::views::Change>,
    /// Turns true when HTTP drains: endless streams end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub store: StoreHandle,
    pub kafka_configured: bool,
    /// The tokens and the OIDC check, when `[auth] enabled`; `None`:
    /// every endpoint is open.
    pub auth: Option<Arc<Authenticator>>,
    pub versions: crate::rules::versions::Versions,
    pub audit: crate::audit::Audit,
    /// What rules compile against (the standard library).
    pub functions: &'static dyn mon_compiler::Functions,
    /// The rules that run (the active version's), for event search and
    /// lifecycle replays; the processing thread swaps it on activation.
    pub program: ActiveProgram,
    pub clock: mon_runtime::live::ClockMode,
    /// The engine's clock (ms) after the last durable batch
    /// ([`NO_CLOCK`](crate::processor::NO_CLOCK) before the first): fresher
    /// than the views' copy, which is made once a second.
    pub engine_now: Arc<std::sync::atomic::AtomicI64>,
    /// The event store is on (`[retention] events` is not "0").
    pub event_store: bool,
    /// The consumer group's processes (with Kafka).
    pub group: Option<crate::group::Registry>,
    /// A scale-out task's own API (`scale_out.rs`): its events come from
    /// its Kafka partition, so posting events answers 409, and its rule
    /// changes go to the whole group ([`Self::group_rules`]).
    pub scale_out_task: bool,
    /// A scale-out task's side of its group's rule changes
    /// (`rules/group.rs`): the rule changes its API takes go there.
    pub group_rules: Option<Arc<crate::rules::group::GroupRules>>,
    /// A scale-out task's keys another task may hold (`http/keys.rs`).
    pub recent_keys: Option<crate::processor::SharedRecentKeys>,
}

impl Api {
    /// Hands `request` to the processing thread: a 503 when its queue is
    /// full (busy: retry) or it has gone (shutting down).
    pub fn hand_over(&self, request: Request) -> Result<(), crate::http::error::ApiError> {
        use std::sync::mpsc::TrySendError;
        match self.ingest.try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(crate::http::error::ApiError::busy()),
            Err(TrySendError::Disconnected(_)) => Err(crate::http::error::ApiError::unavailable("shutting down")),
        }
    }

    /// The 409 of [`scale_out_task`](Self::scale_out_task)'s endpoints.
    pub fn refuse_on_a_task(&self, what: &str) -> Result<(), crate::http::error::ApiError> {
        if !self.scale_out_task {
            return Ok(());
        }
        Err(crate::http::error::ApiError::new(
            axum::http::StatusCode::CONFLICT,
            crate::http::error::ErrorCode::Conflict,
            format!(
                "this is one partition's task of a scale-out group: {what} would change this partition alone \
                 (docs/service.md, \"Scale-out\")"
            ),
            serde_json::Value::Null,
        ))
    }
}

/// The program the engine runs, shared with the HTTP side.
pub type ActiveProgram = Arc<RwLock<Arc<mon_compiler::ir::Program>>>;

impl Api {
    /// The program the engine runs now.
    pub fn program(&self) -> Arc<mon_compiler::ir::Program> {
        self.program.read().map(|p| p.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mon service API",
        description = "The HTTP API of `mon run`: events in, status, records, dead letters, alerts and \
                       notifications. Every error answer is `{\"error\": {\"code\", \"message\", \"details\"}}`; \
                       every list is newest first (the pending notifications oldest first) and paged with an \
                       opaque `cursor` (the previous page's `next_cursor`).",
    ),
    tags(
        (name = "events", description = "Events in"),
        (name = "status", description = "Workflow status"),
        (name = "records", description = "The service's local logs"),
        (name = "alerts", description = "The alert book and its notifications"),
        (name = "rules", description = "Rule versions: store, validate, dry-run, diff, activate; the audit log"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

/// Every route with its description: the one list the router and the
/// document are both made of.
fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(ingest::ingest))
        .routes(routes!(ingest::status))
        .routes(routes!(workflows::list))
        .routes(routes!(workflows::detail))
        .routes(routes!(workflows::groups))
        .routes(routes!(workflows::trends))
        .routes(routes!(workflows::breakdowns))
        .routes(routes!(stages::items))
        .routes(routes!(stream::stream))
        .routes(routes!(logs::records))
        .routes(routes!(logs::dead_letters))
        .routes(routes!(events::search))
        .routes(routes!(items::lifecycle))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::get))
        .routes(routes!(alerts::ack))
        .routes(routes!(alerts::unack))
        .routes(routes!(alerts::suppress))
        .routes(routes!(alerts::resolve))
        .routes(routes!(alerts::notifications))
        .routes(routes!(rules::list, rules::create))
        .routes(routes!(rules::get))
        .routes(routes!(rules::validate))
        .routes(routes!(rules::diff))
        .routes(routes!(rules::dry_run_version))
        .routes(routes!(rules::activate))
        .routes(routes!(rules::rollback))
        .routes(routes!(rules::activations))
        .routes(routes!(group_changes::group_change))
        .routes(routes!(keys::recent))
        .routes(routes!(keys::held))
        .routes(routes!(rules::disable))
        .routes(routes!(rules::enable))
        .routes(routes!(rules::audit_log))
        .routes(routes!(whoami::whoami))
        .routes(routes!(group))
}

/// The processes of the consumer group, as each last announced itself in
/// `<group>.members`: where its API is, which input partitions Kafka gave
/// it, and its role (standbys included); on the active process of a
/// fail-over group, whether a standby would take over. 404 without Kafka.
#[utoipa::path(
    get,
    path = "/api/v1/group",
    tag = "operations",
    responses(
        (status = 200, description = "The group's processes", body = crate::group::ConsumerGroupView),
        (status = 404, description = "Kafka is not configured", body = error::ErrorBody),
    )
)]
async fn group(State(api): State<Api>) -> Result<Json<crate::group::ConsumerGroupView>, error::ApiError> {
    match &api.group {
        Some(registry) => Ok(Json(registry.view(crate::clock::wall_now()))),
        None => Err(error::ApiError::not_found(
            "no consumer group: this process does not read Kafka",
            serde_json::json!({}),
        )),
    }
}

/// The OpenAPI document of this API, with the bearer scheme and each
/// operation's role (the document of a service with `[auth] enabled`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi_with_auth(true)
}

/// The document as a service with or without auth serves it: without,
/// no operation declares a requirement (none is enforced).
pub fn openapi_with_auth(auth: bool) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let mut document = routes().split_for_parts().1;
    if !auth {
        return document;
    }
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("mon API token")
                .description(Some(
                    "A token from `mon token create --role ROLE`, or a JWT from the identity provider of \
                     `[auth.oidc]`; the roles, lowest first, are viewer, operator, editor, admin, and each may \
                     do what the lower ones may. Each operation names the lowest role it needs.",
                ))
                .build(),
        ),
    );
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build(),
        )
    };
    for (path, item) in document.paths.paths.iter_mut() {
        let operations = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            match auth::required_role(method, path) {
                None => operation.security = Some(Vec::new()),
                Some(role) => {
                    operation.security = Some(vec![SecurityRequirement::new("bearer", [role.as_str()])]);
                    let responses = &mut operation.responses.responses;
                    responses.insert(
                        "401".into(),
                        error(
                            "No token, or not a known one; `details.oidc_issuer` names the identity provider \
                             whose JWTs are accepted, when `[auth.oidc]` is configured",
                        ),
                    );
                    responses.insert("403".into(), error(&format!("The token's role is below `{role}`")));
                }
            }
        }
    }
    document
}

pub fn router(api: Api, max_body_bytes: usize) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), authorize))
        // The command center's pages: HTML over the API, not part of it.
        .merge(ui::routes())
        .merge(ui::stage_assets())
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(api)
}

/// With auth on, the role the matched route needs, from the bearer value
/// (an API token or a JWT): none, or one that does not check out, is a 401
/// (with `WWW-Authenticate: Bearer` and `details.reason`), a caller of too
/// low a role a 403. The [`auth::Caller`] goes to the handler as a request
/// extension: the "who" it records.
async fn authorize(State(api): State<Api>, mut request: axum::extract::Request, next: Next) -> Response {
    let Some(authenticator) = &api.auth else { return next.run(request).await };
    let path = request.extensions().get::<MatchedPath>().map_or(request.uri().path(), |m| m.as_str());
    let Some(needed) = auth::required_role(request.method().as_str(), path) else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(bearer) = presented else {
        return refused(authenticator, "this endpoint needs `Authorization: Bearer <token>`".into(), None);
    };
    let forbidden = |message: String, role: Option<auth::Role>| {
        error::ApiError::new(
            StatusCode::FORBIDDEN,
            error::ErrorCode::Forbidden,
            message,
            serde_json::json!({ "role": role.map(auth::Role::as_str), "needed": needed.as_str() }),
        )
        .into_response()
    };
    match authenticator.authenticate(bearer).await {
        Err(Refusal::Unauthorized { reason }) => {
            refused(authenticator, format!("the credentials are refused: {reason}"), Some(reason))
        }
        Err(Refusal::NoRole { name, claim }) => {
            forbidden(format!("`{name}` has no mon role in the claim `{claim}`; this endpoint needs {needed}"), None)
        }
        Ok(caller) if !caller.role.allows(needed) => forbidden(
            format!("`{}` has the role {}; this endpoint needs {needed}", caller.name, caller.role),
            Some(caller.role),
        ),
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
    }
}

/// A 401 of the token check: `details.reason` names the check that failed
/// (when credentials were presented), and, when `[auth.oidc]` is
/// configured, `details.oidc_issuer` and `details.oidc_client_id` (the
/// audience), so that a sign-in page can say a JWT from the provider is
/// accepted too and send a browser there to sign in. Neither is a secret:
/// the provider's discovery document gives the issuer to anyone, and a
/// public client's id is in every sign-in address.
fn refused(authenticator: &Authenticator, message: String, reason: Option<String>) -> Response {
    let mut details = serde_json::Map::new();
    if let Some(reason) = reason {
        details.insert("reason".into(), reason.into());
    }
    if let Some(verifier) = &authenticator.oidc {
        details.insert("oidc_issuer".into(), verifier.issuer().into());
        details.insert("oidc_client_id".into(), verifier.audience().into());
    }
    let mut answer = error::ApiError::unauthorized(message);
    if !details.is_empty() {
        answer.details = serde_json::Value::Object(details);
    }
    answer.into_response()
}

/// `ok` while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process runs", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Whether the service is ready, and if not, why.
#[derive(Serialize, ToSchema)]
struct Readiness {
    ready: bool,
    /// Why not, in words; empty when ready.
    reasons: Vec<String>,
}

/// Ready when the state is recovered and Kafka (when configured) has
/// assigned partitions.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready, with the reasons", body = Readiness),
    )
)]
async fn readyz(State(api): State<Api>) -> Response {
    let mut reasons = Vec::new();
    if !api.metrics.state_open.load(std::sync::atomic::Ordering::Relaxed) {
        reasons.push("the state is not open yet".to_string());
    }
    if api.kafka_configured && !api.metrics.kafka_assigned.load(std::sync::atomic::Ordering::Relaxed) {
        let why = api.metrics.kafka_problem().unwrap_or_else(|| "waiting for the group's assignment".into());
        reasons.push(format!("no Kafka partitions assigned: {why}"));
    }
    let elsewhere = api.metrics.partitions_elsewhere.get();
    if api.kafka_configured && elsewhere > 0 {
        let others = api.group.as_ref().map(|g| g.others(crate::clock::wall_now())).unwrap_or_default();
        let at = if others.is_empty() { String::new() } else { format!(" ({})", others.join(", ")) };
        reasons.push(format!(
            "{elsewhere} input partition(s) assigned to another process in the same consumer group{at}: \
             mon runs one process per group (give each its own group)"
        ));
    }
    let code = if reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(Readiness { ready: reasons.is_empty(), reasons })).into_response()
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"))
)]
async fn metrics(State(api): State<Api>) -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS)], api.metrics.encode()).into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
async fn openapi_json(State(api): State<Api>) -> Response {
    static DOCUMENTS: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
    let auth = api.auth.is_some();
    let text = DOCUMENTS[usize::from(auth)]
        .get_or_init(|| openapi_with_auth(auth).to_json().unwrap_or_else(|_| "{}".to_string()));
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_lists_every_route() {
        let document: serde_json::Value = serde_json::to_value(openapi()).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
        let paths: Vec<&str> = document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/v1/openapi.json",
            "/api/v1/events",
            "/api/v1/status",
            "/api/v1/records",
            "/api/v1/dead-letters",
            "/api/v1/alerts",
            "/api/v1/alerts/{id}",
            "/api/v1/alerts/{id}/ack",
            "/api/v1/alerts/{id}/unack",
            "/api/v1/alerts/{id}/suppress",
            "/api/v1/alerts/{id}/resolve",
            "/api/v1/notifications",
            "/api/v1/workflows",
            "/api/v1/workflows/{workflow}",
            "/api/v1/workflows/{workflow}/groups",
            "/api/v1/workflows/{workflow}/trends",
            "/api/v1/stream",
            "/api/v1/rules/versions",
            "/api/v1/rules/versions/{version}",
            "/api/v1/rules/validate",
            "/api/v1/rules/versions/{version}/diff",
            "/api/v1/rules/versions/{version}/dry-run",
            "/api/v1/rules/versions/{version}/activate",
            "/api/v1/rules/rollback",
            "/api/v1/rules/activations",
            "/api/v1/workflows/{workflow}/disable",
            "/api/v1/workflows/{workflow}/enable",
            "/api/v1/audit",
            "/api/v1/workflows/{workflow}/items/{key}",
            "/api/v1/whoami",
            "/api/v1/workflows/{workflow}/stages/{stage}/items",
            "/api/v1/group",
            "/api/v1/breakdowns",
            "/api/v1/rules/group-changes/{offset}",
            "/api/v1/keys/recent",
            "/api/v1/keys/held",
        ] {
            assert!(paths.contains(&path), "{path} is not in {paths:?}");
        }
        assert_eq!(paths.len(), 39, "{paths:?}");
    }

    #[test]
    fn the_document_declares_the_bearer_scheme_and_each_operations_role() {
        let document: serde_json::Value = serde_json::to_value(openapi()).unwrap();
        let scheme = &document["components"]["securitySchemes"]["bearer"];
        assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")), "{scheme}");
        for (path, method, role) in [
            ("/healthz", "get", None),
            ("/readyz", "get", None),
            ("/metrics", "get", None),
            ("/api/v1/status", "get", Some("viewer")),
            ("/api/v1/alerts/{id}/ack", "post", Some("operator")),
            ("/api/v1/events", "post", Some("operator")),
            ("/api/v1/rules/versions", "get", Some("viewer")),
            ("/api/v1/rules/versions", "post", Some("editor")),
            ("/api/v1/rules/versions/{version}/activate", "post", Some("editor")),
            ("/api/v1/workflows/{workflow}/disable", "post", Some("editor")),
            ("/api/v1/audit", "get", Some("viewer")),
            ("/api/v1/whoami", "get", Some("viewer")),
        ] {
            let operation = &document["paths"][path][method];
            match role {
                None => assert_eq!(operation["security"], serde_json::json!([]), "{path}"),
                Some(role) => {
                    assert_eq!(operation["security"], serde_json::json!([{ "bearer": [role] }]), "{path}");
                    assert!(operation["responses"]["401"].is_object() && operation["responses"]["403"].is_object());
                }
            }
        }
        let open: serde_json::Value = serde_json::to_value(openapi_with_auth(false)).unwrap();
        assert!(open["paths"]["/api/v1/status"]["get"]["security"].is_null());
    }
}
