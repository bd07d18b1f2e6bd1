//! Rules without deployments: store a bundle as a new version, validate
//! one, dry-run a version over events, diff two versions, activate one (or
//! roll back), enable or disable a workflow, and read the audit log.
//!
//! Storing and validating change nothing that runs. Activation and
//! enabling go to the processing thread as journaled inputs and answer
//! once their batch is durable ([`crate::processor::RulesRequest`]); every
//! change is appended to the audit log ([`crate::audit`]) with who did it.
//! Compiling runs on tokio's blocking pool: a large bundle must not stall
//! the threads that answer health checks.
//!
//! On a scale-out task every change is published to the group's rules
//! topic instead ([`crate::rules::group`]), and answered once this task
//! has applied it; every other task applies it too, in the same order.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::group_changes::{not_applied, through_group, GroupPlace};
use super::page::{self, DEFAULT_LIMIT};
use super::Api;
use crate::audit::AuditEntry;
use crate::auth::Caller;
use crate::processor::{Request, RulesChange, RulesDone, RulesRequest};
use crate::rules::diff::{program_diff, source_diff, FileDiff, ProgramDiff};
use crate::rules::group::{Change, Outcome};
use crate::rules::versions::{ActivationEntry, Draft, Origin, StoredVersion, VersionInfo};
use crate::rules::Bundle;
use mon_runtime::alerts::BookConfig;
use mon_runtime::dry_run::{dry_run, dry_run_events, notification_json, DryRunOptions};
use mon_runtime::live::Migration;

/// Who the caller is: the authenticated name, else (auth off) what the
/// body says, else `anonymous`.
fn who(caller: &Option<Extension<Caller>>, said: Option<&str>) -> String {
    match (caller, said) {
        (Some(Extension(caller)), _) => caller.name.clone(),
        (None, Some(name)) if !name.trim().is_empty() => name.trim().to_string(),
        _ => "anonymous".into(),
    }
}

/// A JSON body as `T`, or a 400 saying what is wrong with it. An empty
/// body is `{}`.
fn body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body?;
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::invalid("body", format!("the body is not what this endpoint takes: {e}")))
}

/// A version number; 0 is well formed and names no version (a 404).
fn version_number(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| ApiError::invalid("version", format!("version: `{text}` is not a version number (1, 2, ...)")))
}

fn no_version(version: u64) -> ApiError {
    ApiError::not_found(format!("no rule version {version}"), json!({ "version": version }))
}

fn stored(api: &Api, version: u64) -> Result<StoredVersion, ApiError> {
    api.versions
        .get(version)
        .map_err(|e| ApiError::internal("reading a rule version", e))?
        .ok_or_else(|| no_version(version))
}

fn unprocessable(message: impl Into<String>, details: Value) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidRequest, message, details)
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::internal("compiling rules", e))
}

/// A whole number from 0 to i64's largest: JSON Schema's integers include
/// `3.0`, serde's `u64` does not.
fn whole<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error as _;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    // The document says int64 (utoipa's u64), whose largest value is i64's.
    if let Some(n) = number.as_u64().filter(|n| i64::try_from(*n).is_ok()) {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_992.0 => Ok(Some(f as u64)),
        _ => Err(D::Error::custom(format!("`{number}` is not a whole number of 0 or more"))),
    }
}

/// A bundle: `{"files": {"path.mon": "text", "schemas/x.json": "{...}"}}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleBody {
    /// `.mon` files and `.json` schemas by relative path.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    files: Bundle,
}

/// The body of `POST /api/v1/rules/versions`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersionBody {
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    files: Bundle,
    /// Why: what the change is for.
    #[serde(default)]
    message: String,
    /// Who, when auth is off (with auth on the caller's identity is used).
    author: Option<String>,
}

/// What compiling a bundle said.
#[derive(Serialize, ToSchema)]
pub struct Validation {
    /// No errors: the bundle can become a version.
    ok: bool,
    errors: usize,
    warnings: usize,
    /// The program's hash, when it compiled.
    hash: Option<String>,
    /// The workflows it declares, when it compiled.
    workflows: Vec<String>,
    /// As `mon check --format json` prints them, one object each.
    #[schema(value_type = Vec<Object>)]
    diagnostics: Vec<Value>,
}

fn validate_bundle(bundle: &Bundle, functions: &'static dyn mon_compiler::Functions) -> Result<Validation, ApiError> {
    // Well-formed JSON whose paths are not a bundle's: unprocessable, like
    // rules that do not compile.
    bundle.check().map_err(|message| unprocessable(message, json!({ "field": "files" })))?;
    let compiled = bundle.compile(functions);
    let diagnostics = compiled.diagnostics_json();
    let errors =
        compiled.compilation.diagnostics.iter().filter(|d| d.kind.level() == mon_compiler::Level::Error).count();
    let program = compiled.compilation.program.as_ref();
    Ok(Validation {
        ok: program.is_some(),
        errors,
        warnings: compiled.compilation.diagnostics.len() - errors,
        hash: program.map(|p| p.hash()),
        workflows: program.map(|p| p.workflows.iter().map(|w| w.name.clone()).collect()).unwrap_or_default(),
        diagnostics,
    })
}

/// Compiles a bundle and answers with the compiler's diagnostics; stores nothing.
#[utoipa::path(
    post,
    path = "/api/v1/rules/validate",
    tag = "rules",
    request_body = BundleBody,
    responses(
        (status = 200, description = "The diagnostics (`ok` is false when there are errors)", body = Validation),
        (status = 400, description = "The body is not a bundle", body = ErrorBody),
        (status = 413, description = "The body is over the limit", body = ErrorBody),
        (status = 422, description = "A path is not a bundle's (relative, `.mon` or `.json`)", body = ErrorBody),
    )
)]
pub async fn validate(
    State(api): State<Api>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Validation>, ApiError> {
    let BundleBody { files } = body(raw)?;
    let functions = api.functions;
    Ok(Json(blocking(move || validate_bundle(&files, functions)).await??))
}

/// A version stored (or found already stored), with its diagnostics.
#[derive(Serialize, ToSchema)]
pub struct NewVersion {
    version: VersionInfo,
    /// False when the same bundle was already stored as this version.
    created: bool,
    #[schema(value_type = Vec<Object>)]
    diagnostics: Vec<Value>,
    /// A scale-out group's change: where it is in the group's rules topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<GroupPlace>,
}

/// Stores a bundle as the next version; it runs only once activated. A
/// bundle with errors is refused (422) with its diagnostics.
#[utoipa::path(
    post,
    path = "/api/v1/rules/versions",
    tag = "rules",
    request_body = NewVersionBody,
    responses(
        (status = 201, description = "Stored as a new version", body = NewVersion),
        (status = 200, description = "The same bundle is already stored: that version", body = NewVersion),
        (status = 202, description = "A scale-out group's change, published; this task has not applied it yet", body = Object),
        (status = 400, description = "The body is not a bundle", body = ErrorBody),
        (status = 413, description = "The body is over the limit", body = ErrorBody),
        (status = 422, description = "A path is not a bundle's, or the rules do not compile (`details.diagnostics` says why)", body = ErrorBody),
    )
)]
pub async fn create(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let NewVersionBody { files, message, author } = body(raw)?;
    let author = who(&caller, author.as_deref());
    let functions = api.functions;
    let checked = files.clone();
    let validation = blocking(move || validate_bundle(&checked, functions)).await??;
    let Some(hash) = validation.hash.clone().filter(|_| validation.ok) else {
        return Err(unprocessable(
            format!("the rules do not compile: {} error(s)", validation.errors),
            json!({ "field": "files", "diagnostics": validation.diagnostics }),
        ));
    };
    if let Some(group) = &api.group_rules {
        let change = Change::Store { files, message };
        return Ok(match through_group(group, &author, change).await {
            Ok((place, Outcome::Stored { version, created })) => {
                let status = if created { StatusCode::CREATED } else { StatusCode::OK };
                let diagnostics = validation.diagnostics;
                (status, Json(NewVersion { version, created, diagnostics, group: Some(place) })).into_response()
            }
            Ok((place, outcome)) => not_applied(place, outcome),
            Err(pending) => pending,
        });
    }
    let now = mon_stdlib::time::format_rfc3339(crate::clock::wall_now());
    let draft = Draft {
        hash,
        workflows: validation.workflows.clone(),
        author: author.clone(),
        message: message.clone(),
        origin: Origin::Api,
        created_at: now,
    };
    let (info, created) =
        api.versions.add(files, draft).map_err(|e| ApiError::internal("storing a rule version", e))?;
    if created {
        audit(
            &api,
            &author,
            "rules.version_stored",
            &info.version.to_string(),
            json!({ "version": info, "message": message }),
        )?;
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let new = NewVersion { version: info, created, diagnostics: validation.diagnostics, group: None };
    Ok((status, Json(new)).into_response())
}

fn audit(api: &Api, who: &str, action: &str, target: &str, details: Value) -> Result<AuditEntry, ApiError> {
    api.audit.append(who, action, target, details).map_err(|e| ApiError::internal("writing the audit log", e))
}

/// The parameters of the version and audit lists.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageQuery {
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, as it is.
    #[param(pattern = "^[0-9a-f]{16}$")]
    cursor: Option<String>,
}

/// `limit`, `cursor`, and the other parameters a list takes (`more`).
struct Paging {
    limit: usize,
    cursor: Option<u64>,
    rest: Vec<(String, String)>,
}

fn paging(pairs: Vec<(String, String)>, more: &[&str]) -> Result<Paging, ApiError> {
    let (mut limit, mut cursor, mut rest) = (DEFAULT_LIMIT, None, Vec::new());
    for (name, value) in pairs {
        match name.as_str() {
            "limit" => limit = page::limit(&value)?,
            "cursor" => cursor = Some(page::decode_seq(&value)?),
            other if more.contains(&other) => rest.push((name, value)),
            other => {
                let mut known = vec!["limit", "cursor"];
                known.extend_from_slice(more);
                return Err(ApiError::unknown_parameter(other, &known));
            }
        }
    }
    Ok(Paging { limit, cursor, rest })
}

/// The stored versions, newest first, and which one runs.
#[derive(Serialize, ToSchema)]
pub struct VersionPage {
    versions: Vec<VersionInfo>,
    /// The version the engine runs.
    active: Option<u64>,
    next_cursor: Option<String>,
}

/// The stored rule versions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/rules/versions",
    tag = "rules",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of versions", body = VersionPage),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
    )
)]
pub async fn list(
    State(api): State<Api>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<VersionPage>, ApiError> {
    let Paging { limit, cursor, .. } = paging(query?.0, &[])?;
    let (versions, next) = api.versions.list(cursor, limit).map_err(|e| ApiError::internal("listing versions", e))?;
    let active = api.versions.active().map_err(|e| ApiError::internal("reading the active version", e))?;
    Ok(Json(VersionPage { versions, active, next_cursor: next.map(page::encode_seq) }))
}

/// One version with its files.
#[derive(Serialize, ToSchema)]
pub struct VersionDetail {
    #[serde(flatten)]
    info: VersionInfo,
    /// The bundle: path → text.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    sources: Bundle,
    /// The engine runs this version.
    active: bool,
}

/// A stored version with its source.
#[utoipa::path(
    get,
    path = "/api/v1/rules/versions/{version}",
    tag = "rules",
    params(("version" = u64, Path, description = "The version number")),
    responses(
        (status = 200, description = "The version", body = VersionDetail),
        (status = 400, description = "Not a version number", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
    )
)]
pub async fn get(State(api): State<Api>, Path(version): Path<String>) -> Result<Json<VersionDetail>, ApiError> {
    let version = version_number(&version)?;
    let StoredVersion { info, bundle } = stored(&api, version)?;
    let active = api.versions.active().ok().flatten() == Some(version);
    Ok(Json(VersionDetail { info, sources: bundle, active }))
}

/// What changed from one version to another.
#[derive(Serialize, ToSchema)]
pub struct VersionDiff {
    /// The version compared against (before).
    from: u64,
    /// The version asked about (after).
    to: u64,
    source: Vec<FileDiff>,
    program: ProgramDiff,
}

/// The parameters of a diff.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DiffQuery {
    /// The version to compare against; default the active one.
    #[param(minimum = 1)]
    against: Option<u64>,
}

/// Compiles a stored version; the version was checked when stored, so a
/// failure now is the service's own (another stdlib, say).
fn compile_stored(api: &Api, stored: &StoredVersion) -> Result<mon_compiler::ir::Program, ApiError> {
    let compiled = stored.bundle.compile(api.functions);
    let diagnostics = compiled.diagnostics_json();
    compiled.compilation.program.ok_or_else(|| {
        unprocessable(
            format!("rule version {} no longer compiles", stored.info.version),
            json!({ "version": stored.info.version, "diagnostics": diagnostics }),
        )
    })
}

fn against_of(api: &Api, pairs: Vec<(String, String)>) -> Result<u64, ApiError> {
    let mut against = None;
    for (name, value) in pairs {
        match name.as_str() {
            "against" => {
                against =
                    Some(version_number(&value).map_err(|_| {
                        ApiError::invalid("against", format!("against: `{value}` is not a version number"))
                    })?)
            }
            other => return Err(ApiError::unknown_parameter(other, &["against"])),
        }
    }
    match against {
        Some(v) => Ok(v),
        None => api
            .versions
            .active()
            .map_err(|e| ApiError::internal("reading the active version", e))?
            .ok_or_else(|| ApiError::invalid("against", "against: no version is active yet; name one")),
    }
}

/// The source and program diff of a version against another (default:
/// the active one).
#[utoipa::path(
    get,
    path = "/api/v1/rules/versions/{version}/diff",
    tag = "rules",
    params(("version" = u64, Path, description = "The version number"), DiffQuery),
    responses(
        (status = 200, description = "What changed, from `against` to `version`", body = VersionDiff),
        (status = 400, description = "A parameter is wrong", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 422, description = "A version no longer compiles", body = ErrorBody),
    )
)]
pub async fn diff(
    State(api): State<Api>,
    Path(version): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<VersionDiff>, ApiError> {
    let to = version_number(&version)?;
    let from = against_of(&api, query?.0)?;
    let after = stored(&api, to)?;
    let before = stored(&api, from)?;
    let worker = api.clone();
    Ok(Json(blocking(move || version_diff(&worker, &before, &after)).await??))
}

fn version_diff(api: &Api, before: &StoredVersion, after: &StoredVersion) -> Result<VersionDiff, ApiError> {
    let program = program_diff(&compile_stored(api, before)?, &compile_stored(api, after)?);
    Ok(VersionDiff {
        from: before.info.version,
        to: after.info.version,
        source: source_diff(&before.bundle.files, &after.bundle.files),
        program,
    })
}

/// The body of a dry-run.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunBody {
    /// The events, NDJSON (one CloudEvents envelope per line), as `mon
    /// simulate --events` reads them. Without it: the service's stored
    /// history (the event store), within `from` and `until`.
    events: Option<String>,
    /// `--from` (RFC 3339).
    #[schema(format = DateTime)]
    from: Option<String>,
    /// `--until` (RFC 3339).
    #[schema(format = DateTime)]
    until: Option<String>,
    /// `--notifications`: also run the alert book and return what it would send.
    #[serde(default)]
    notifications: bool,
    /// `--group-wait`, in ms, as `[alerts] group_wait_ms` (default 30000).
    #[serde(default, deserialize_with = "whole")]
    group_wait_ms: Option<u64>,
    /// `--group-interval`, in ms, as `[alerts] group_interval_ms` (default 300000).
    #[serde(default, deserialize_with = "whole")]
    group_interval_ms: Option<u64>,
    /// Also replay the same events through this version and list the
    /// records only one of the two makes.
    #[serde(default, deserialize_with = "whole")]
    against: Option<u64>,
}

/// The most stored events a dry-run over the history replays: a bound on
/// the memory and time one request may take.
const HISTORY_LIMIT: usize = 1_000_000;

/// What a replay produced, as `mon simulate --format ndjson --notifications` prints it.
#[derive(Serialize, ToSchema)]
pub struct DryRunResult {
    version: u64,
    #[schema(value_type = Vec<crate::http::schema::Record>)]
    records: Vec<Value>,
    /// The alert book's messages (with `notifications: true`).
    #[schema(value_type = Vec<Object>)]
    notifications: Vec<Value>,
    /// One `summary` line per workflow.
    #[schema(value_type = Vec<Object>)]
    summary: Vec<Value>,
    lines: u64,
    rejected: u64,
    ignored: u64,
    /// Where the clock ended (RFC 3339); null when no event was read.
    end: Option<String>,
    /// `upload` (the body's events) or `history` (the event store's).
    source: &'static str,
    /// From the history: older events in the range were left out (at
    /// most [`HISTORY_LIMIT`] are replayed, the newest); narrow `from`.
    truncated: bool,
    /// With `against`: the records that differ between the two versions.
    compared: Option<RecordsCompared>,
}

/// Records only one of two versions makes over the same events, by id
/// (a record's id hashes its content).
#[derive(Serialize, ToSchema)]
pub struct RecordsCompared {
    against: u64,
    /// Made by `version` and not by `against`.
    #[schema(value_type = Vec<crate::http::schema::Record>)]
    only_in_version: Vec<Value>,
    /// Made by `against` and not by `version`.
    #[schema(value_type = Vec<crate::http::schema::Record>)]
    only_in_against: Vec<Value>,
    /// Made by both.
    same: usize,
}

fn instant(field: &str, text: &Option<String>) -> Result<Option<i64>, ApiError> {
    text.as_ref()
        .map(|t| {
            mon_stdlib::time::parse_rfc3339(t)
                .ok_or_else(|| ApiError::invalid(field, format!("{field}: `{t}` is not an RFC 3339 instant")))
        })
        .transpose()
}

/// Replays events through a stored version with the engine `mon simulate`
/// uses, and answers what `mon simulate --format ndjson` would print.
#[utoipa::path(
    post,
    path = "/api/v1/rules/versions/{version}/dry-run",
    tag = "rules",
    params(("version" = u64, Path, description = "The version number")),
    request_body = DryRunBody,
    responses(
        (status = 200, description = "The records, notifications and summary", body = DryRunResult),
        (status = 400, description = "The body is wrong", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 413, description = "The body is over the limit", body = ErrorBody),
        (status = 422, description = "A version no longer compiles", body = ErrorBody),
    )
)]
pub async fn dry_run_version(
    State(api): State<Api>,
    Path(version): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<DryRunResult>, ApiError> {
    let version = version_number(&version)?;
    // The body is required even though every field is optional: `{}` is
    // the way to say "the stored history, all of it".
    let raw = raw?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("body", "the body is required: `{}` replays the stored history"));
    }
    let request: DryRunBody = body(Ok(raw))?;
    let options = DryRunOptions {
        from: instant("from", &request.from)?,
        until: instant("until", &request.until)?,
        alerts: request.notifications.then(|| {
            let defaults = BookConfig::default();
            BookConfig {
                group_wait_ms: request.group_wait_ms.unwrap_or(defaults.group_wait_ms),
                group_interval_ms: request.group_interval_ms.unwrap_or(defaults.group_interval_ms),
            }
        }),
    };
    let subject = stored(&api, version)?;
    let against = request.against.map(|v| stored(&api, v)).transpose()?;
    let (history, truncated) = match &request.events {
        Some(_) => (Vec::new(), false),
        None => api
            .store
            .events()
            .history(options.from, options.until, HISTORY_LIMIT)
            .map_err(|e| ApiError::internal("reading the event history", e))?,
    };
    let source = if request.events.is_some() { "upload" } else { "history" };
    let worker = api.clone();
    blocking(move || {
        let replay = |stored: &StoredVersion| -> Result<mon_runtime::dry_run::DryRun, ApiError> {
            let program = compile_stored(&worker, stored)?;
            Ok(match &request.events {
                Some(text) => dry_run(&program, worker.functions, text.split('\n'), &options),
                // Decoded again for this version, field by field (`StoredEvent::to_event`).
                None => dry_run_events(
                    &program,
                    worker.functions,
                    history.iter().filter_map(|e| e.to_event(&program)),
                    &options,
                ),
            })
        };
        let run = replay(&subject)?;
        let to_json = |records: &[mon_runtime::Record]| -> Vec<Value> {
            records.iter().map(|r| serde_json::to_value(r).unwrap_or(Value::Null)).collect()
        };
        let compared = match &against {
            Some(other) => {
                let theirs = replay(other)?;
                let ids = |records: &[mon_runtime::Record]| -> std::collections::HashSet<String> {
                    records.iter().map(|r| r.id.clone()).collect()
                };
                let (mine, their_ids) = (ids(&run.records), ids(&theirs.records));
                let only = |records: &[mon_runtime::Record], other: &std::collections::HashSet<String>| {
                    to_json(&records.iter().filter(|r| !other.contains(&r.id)).cloned().collect::<Vec<_>>())
                };
                Some(RecordsCompared {
                    against: other.info.version,
                    only_in_version: only(&run.records, &their_ids),
                    only_in_against: only(&theirs.records, &mine),
                    same: run.records.iter().filter(|r| their_ids.contains(&r.id)).count(),
                })
            }
            None => None,
        };
        Ok(Json(DryRunResult {
            version,
            records: to_json(&run.records),
            notifications: run.notifications.iter().map(notification_json).collect(),
            summary: run.summary,
            lines: run.lines,
            rejected: run.rejected,
            ignored: run.ignored,
            end: run.end.map(mon_stdlib::time::format_rfc3339),
            source,
            truncated,
            compared,
        }))
    })
    .await?
}

/// The body of an activation or a rollback.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateBody {
    /// Why: kept in the audit log.
    #[serde(default)]
    message: String,
    /// Who, when auth is off.
    by: Option<String>,
}

/// What an activation did.
#[derive(Serialize, ToSchema)]
pub struct Activated {
    version: u64,
    previous: Option<u64>,
    /// When it took effect, on the engine's clock (RFC 3339).
    at: String,
    /// Items carried over to the new version, and those superseded.
    #[schema(value_type = Object)]
    migration: Migration,
    /// The audit entry that records it.
    audit: AuditEntry,
    /// A scale-out group's change: where it is in the group's rules topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<GroupPlace>,
}

/// Makes a stored version the one the engine runs, keeping state: items
/// whose workflow and stage still exist carry over (their timers re-derived
/// from the new timings), the rest close as `superseded`.
#[utoipa::path(
    post,
    path = "/api/v1/rules/versions/{version}/activate",
    tag = "rules",
    params(("version" = u64, Path, description = "The version number")),
    request_body = ActivateBody,
    responses(
        (status = 200, description = "Activated; the migration and the audit entry", body = Activated),
        (status = 202, description = "A scale-out group's change, published; this task has not applied it yet", body = Object),
        (status = 400, description = "The body is wrong", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 409, description = "This version already runs", body = ErrorBody),
        (status = 422, description = "The version no longer compiles", body = ErrorBody),
        (status = 503, description = "Busy or shutting down; retry", body = ErrorBody),
    )
)]
pub async fn activate(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    Path(version): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let version = version_number(&version)?;
    let request: ActivateBody = body(raw)?;
    let by = who(&caller, request.by.as_deref());
    activate_version(&api, version, &by, &request.message, "rules.activated").await
}

async fn activate_version(
    api: &Api,
    version: u64,
    by: &str,
    message: &str,
    action: &str,
) -> Result<Response, ApiError> {
    let target = stored(api, version)?;
    let previous = api.versions.active().map_err(|e| ApiError::internal("reading the active version", e))?;
    if previous == Some(version) {
        return Err(already_runs(version));
    }
    let before = previous.map(|v| stored(api, v)).transpose()?;
    // Checked here, off the processing thread: the processor compiles it
    // again (it must, on replay too), and that must not be where a bad
    // version is found.
    let worker = api.clone();
    let diff_target = target.clone();
    let diff = blocking(move || match &before {
        Some(before) => version_diff(&worker, before, &diff_target).map(Some),
        None => compile_stored(&worker, &diff_target).map(|_| None),
    })
    .await??;
    if let Some(group) = &api.group_rules {
        let rollback = action == "rules.rolled_back";
        let change =
            Change::Activate { files: target.bundle, hash: target.info.hash, message: message.to_string(), rollback };
        return Ok(match through_group(group, by, change).await {
            Ok((place, Outcome::Activated { version, previous, at, migration, audit: Some(audit) })) => {
                Json(Activated { version, previous, at, migration, audit, group: Some(place) }).into_response()
            }
            Ok((place, outcome)) => not_applied(place, outcome),
            Err(pending) => pending,
        });
    }
    let done = send(api, RulesChange::Activate { version }, by).await?;
    let (migration, previous, at) = match done {
        RulesDone::Activated { migration, previous, at } => (migration, previous, at),
        RulesDone::AlreadyRunning { version } => return Err(already_runs(version)),
        _ => return Err(ApiError::internal("activating", "the processor answered another change")),
    };
    let at = mon_stdlib::time::format_rfc3339(at);
    let details = json!({
        "version": version, "previous": previous, "message": message, "at": at,
        "diff": diff, "migration": migration,
    });
    let audit = audit(api, by, action, &version.to_string(), details)?;
    Ok(Json(Activated { version, previous, at, migration, audit, group: None }).into_response())
}

fn already_runs(version: u64) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::Conflict,
        format!("rule version {version} already runs"),
        json!({ "version": version }),
    )
}

/// Sends a change to the processing thread and waits until it is durable.
async fn send(api: &Api, change: RulesChange, by: &str) -> Result<RulesDone, ApiError> {
    // A task without its group's topic (never, with Kafka configured).
    api.refuse_on_a_task("a rule change that does not go through the group's rules topic")?;
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let request = Request::Rules(RulesRequest { change, by: by.to_string(), group_offset: None, reply });
    api.hand_over(request)?;
    match outcome.await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(message)) => Err(unprocessable(message, Value::Null)),
        Err(_) => Err(ApiError::unavailable("shutting down")),
    }
}

/// Activates the version that ran before the active one.
#[utoipa::path(
    post,
    path = "/api/v1/rules/rollback",
    tag = "rules",
    request_body = ActivateBody,
    responses(
        (status = 200, description = "Rolled back; the migration and the audit entry", body = Activated),
        (status = 202, description = "A scale-out group's change, published; this task has not applied it yet", body = Object),
        (status = 400, description = "The body is wrong", body = ErrorBody),
        (status = 409, description = "Nothing ran before the active version", body = ErrorBody),
        (status = 422, description = "The earlier version no longer compiles", body = ErrorBody),
        (status = 503, description = "Busy or shutting down; retry", body = ErrorBody),
    )
)]
pub async fn rollback(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ActivateBody = body(raw)?;
    let by = who(&caller, request.by.as_deref());
    let (history, _) = api.versions.history(None, 1).map_err(|e| ApiError::internal("reading activations", e))?;
    let Some(previous) = history.first().and_then(|(_, last)| last.previous) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "no version ran before the active one",
            Value::Null,
        ));
    };
    activate_version(&api, previous, &by, &request.message, "rules.rolled_back").await
}

/// Activations, newest first.
#[derive(Serialize, ToSchema)]
pub struct ActivationPage {
    activations: Vec<ActivationEntry>,
    next_cursor: Option<String>,
}

/// Which versions ran from when, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/rules/activations",
    tag = "rules",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of activations", body = ActivationPage),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
    )
)]
pub async fn activations(
    State(api): State<Api>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<ActivationPage>, ApiError> {
    let Paging { limit, cursor, .. } = paging(query?.0, &[])?;
    let (entries, next) =
        api.versions.history(cursor, limit).map_err(|e| ApiError::internal("reading activations", e))?;
    Ok(Json(ActivationPage {
        activations: entries.into_iter().map(|(_, e)| e).collect(),
        next_cursor: next.map(page::encode_seq),
    }))
}

/// Whether a workflow now runs.
#[derive(Serialize, ToSchema)]
pub struct WorkflowSwitched {
    workflow: String,
    enabled: bool,
    audit: AuditEntry,
    /// A scale-out group's change: where it is in the group's rules topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<GroupPlace>,
}

/// The body of enable and disable.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchBody {
    /// Why: kept in the audit log.
    #[serde(default)]
    reason: String,
    /// Who, when auth is off.
    by: Option<String>,
}

async fn switch(
    api: Api,
    caller: Option<Extension<Caller>>,
    workflow: String,
    enabled: bool,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: SwitchBody = body(raw)?;
    let by = who(&caller, request.by.as_deref());
    let no_workflow =
        |workflow: String| ApiError::not_found(format!("no workflow {workflow}"), json!({ "workflow": workflow }));
    if let Some(group) = &api.group_rules {
        // Checked before it is published: the topic keeps what it is given.
        if !api.program().workflows.iter().any(|w| w.name == workflow) {
            return Err(no_workflow(workflow));
        }
        let change = Change::SetEnabled { workflow, enabled, reason: request.reason };
        return Ok(match through_group(group, &by, change).await {
            Ok((place, Outcome::Switched { workflow, enabled, known: true, audit: Some(audit) })) => {
                Json(WorkflowSwitched { workflow, enabled, audit, group: Some(place) }).into_response()
            }
            Ok((place, outcome)) => not_applied(place, outcome),
            Err(pending) => pending,
        });
    }
    let done = send(&api, RulesChange::SetEnabled { workflow: workflow.clone(), enabled }, &by).await?;
    if !matches!(done, RulesDone::SetEnabled { known: true }) {
        return Err(no_workflow(workflow));
    }
    let action = if enabled { "workflow.enabled" } else { "workflow.disabled" };
    let audit = audit(&api, &by, action, &workflow, json!({ "reason": request.reason }))?;
    Ok(Json(WorkflowSwitched { workflow, enabled, audit, group: None }).into_response())
}

/// Stops a workflow: it takes no events, fires no timers and opens no
/// occurrences until enabled; its items stay as they are.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{workflow}/disable",
    tag = "rules",
    params(("workflow" = String, Path, description = "The workflow's name")),
    request_body = SwitchBody,
    responses(
        (status = 200, description = "Disabled", body = WorkflowSwitched),
        (status = 400, description = "The body is wrong", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 202, description = "A scale-out group's change, published; this task has not applied it yet", body = Object),
        (status = 503, description = "Busy or shutting down; retry", body = ErrorBody),
    )
)]
pub async fn disable(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    Path(workflow): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    switch(api, caller, workflow, false, raw).await
}

/// Starts a disabled workflow again; deadlines that passed while it was
/// disabled fire at once.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{workflow}/enable",
    tag = "rules",
    params(("workflow" = String, Path, description = "The workflow's name")),
    request_body = SwitchBody,
    responses(
        (status = 200, description = "Enabled", body = WorkflowSwitched),
        (status = 400, description = "The body is wrong", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 202, description = "A scale-out group's change, published; this task has not applied it yet", body = Object),
        (status = 503, description = "Busy or shutting down; retry", body = ErrorBody),
    )
)]
pub async fn enable(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    Path(workflow): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    switch(api, caller, workflow, true, raw).await
}

/// The parameters of `GET /api/v1/audit`, combined with "and".
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditQuery {
    /// Only this action, or actions starting with it followed by `.` (`rules`).
    action: Option<String>,
    /// Only entries by this caller.
    who: Option<String>,
    /// Only entries about this target (a version, workflow, alert id, token).
    target: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    #[param(pattern = "^[0-9a-f]{16}$")]
    cursor: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

/// Who did what and when, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "rules",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditPage),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
    )
)]
pub async fn audit_log(
    State(api): State<Api>,
    headers: axum::http::HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Paging { limit, cursor, rest: filters } = paging(query?.0, &["action", "who", "target"])?;
    let keep = |entry: &AuditEntry| {
        filters.iter().all(|(name, value)| match name.as_str() {
            "action" => {
                entry.action == *value || entry.action.strip_prefix(value.as_str()).is_some_and(|r| r.starts_with('.'))
            }
            "who" => entry.who == *value,
            _ => entry.target == *value,
        })
    };
    let (entries, next) =
        api.audit.list(cursor, limit, keep).map_err(|e| ApiError::internal("reading the audit log", e))?;
    // The cursor after an entry is its own number (the next page holds
    // those below it).
    let cursors: Vec<String> = entries.iter().map(|e| page::encode_seq(e.seq)).collect();
    let body = AuditPage { entries, next_cursor: next.map(page::encode_seq) };
    Ok(page::with_item_cursors(&headers, body, || cursors))
}
