//! Status and trends of the workflows: `GET /api/v1/workflows`,
//! `/workflows/{workflow}`, `/workflows/{workflow}/groups` and
//! `/workflows/{workflow}/trends`.
//!
//! The first three only read and page the views the processing thread
//! rebuilt (`views.rs`); nothing here walks the engine's items per
//! request. Trends read the rollup rows in sled (`rollups.rs`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::page::{self, DEFAULT_LIMIT};
use super::Api;
use crate::rollups::{self, Anomaly, Point, Step};
use crate::views::{GroupView, WorkflowDetail, WorkflowList};

pub(crate) fn unknown_workflow(name: &str) -> ApiError {
    ApiError::not_found(format!("no workflow is named `{name}`"), serde_json::json!({ "workflow": name }))
}

fn poisoned() -> ApiError {
    ApiError::internal("reading the workflow views", "the lock is poisoned")
}

/// What the workflow views are made of, before they are views.
#[derive(Serialize, ToSchema)]
pub struct Breakdowns {
    /// The engine's clock (ms) they were measured at; null before the
    /// engine started.
    pub clock_ms: Option<i64>,
    /// The hash of the rules they were measured by: parts of other rules
    /// do not add up.
    pub program_hash: String,
    /// One per workflow, in program order: its counts, aging, oldest
    /// items, next deadlines and stay samples, for the whole, each stage
    /// and each group.
    #[schema(value_type = Vec<Object>)]
    #[serde(serialize_with = "shared_parts")]
    pub workflows: std::sync::Arc<Vec<crate::views::WorkflowPart>>,
}

/// The parts as the views share them, without a copy.
fn shared_parts<S: serde::Serializer>(
    parts: &std::sync::Arc<Vec<crate::views::WorkflowPart>>,
    to: S,
) -> Result<S::Ok, S::Error> {
    parts.as_slice().serialize(to)
}

/// The numbers the workflow views are made of, unfinished (with the stay
/// samples): what a scale-out process adds over its group's tasks to
/// answer `/api/v1/workflows` for the group. Their shape follows the
/// engine's and may change between versions of mon.
#[utoipa::path(
    get,
    path = "/api/v1/breakdowns",
    tag = "status",
    responses(
        (status = 200, description = "Every workflow's numbers, in program order", body = Breakdowns),
        (status = 404, description = "Not a scale-out task: no one adds this process's numbers", body = ErrorBody),
        (status = 500, description = "The views are unavailable", body = ErrorBody),
    )
)]
pub async fn breakdowns(State(api): State<Api>) -> Result<Json<Breakdowns>, ApiError> {
    // Only a task keeps them (`views::Board::keep_parts`).
    if !api.scale_out_task {
        return Err(ApiError::not_found(
            "only a task of a scale-out group gives its breakdowns (docs/service.md, \"Scale-out\")",
            serde_json::json!({}),
        ));
    }
    let (clock_ms, workflows) = {
        let views = api.views.read().map_err(|_| poisoned())?;
        (views.clock, views.parts.clone())
    };
    Ok(Json(Breakdowns { clock_ms, program_hash: api.program().hash(), workflows }))
}

/// Every workflow: its colour, why when it is not green, its counts and
/// its worst stage. Rebuilt by the processing thread about once a second.
#[utoipa::path(
    get,
    path = "/api/v1/workflows",
    tag = "status",
    responses(
        (status = 200, description = "Every workflow, in program order", body = WorkflowList),
        (status = 500, description = "The views are unavailable", body = ErrorBody),
    )
)]
pub async fn list(State(api): State<Api>) -> Result<Json<WorkflowList>, ApiError> {
    let views = api.views.read().map_err(|_| poisoned())?;
    Ok(Json(views.list.clone()))
}

/// One workflow: its stages in program order (counts, aging, the oldest
/// item, the next deadline and the time left on the engine's clock, and
/// why each is amber or red), and its graph of stages and steps.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{workflow}",
    tag = "status",
    params(("workflow" = String, Path, description = "The workflow's name")),
    responses(
        (status = 200, description = "The workflow", body = WorkflowDetail),
        (status = 404, description = "No workflow has this name", body = ErrorBody),
        (status = 500, description = "The views are unavailable", body = ErrorBody),
    )
)]
pub async fn detail(State(api): State<Api>, Path(workflow): Path<String>) -> Result<Json<WorkflowDetail>, ApiError> {
    let views = api.views.read().map_err(|_| poisoned())?;
    views.details.get(&workflow).cloned().map(Json).ok_or_else(|| unknown_workflow(&workflow))
}

/// The parameters of `GET /api/v1/workflows/{workflow}/groups`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct GroupsQuery {
    /// At most this many groups (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, as it is.
    #[param(pattern = "^([0-9a-f]{2})*$")]
    cursor: Option<String>,
}

/// A page of groups, ordered by their values.
#[derive(Serialize, ToSchema)]
pub struct GroupPage {
    pub groups: Vec<GroupView>,
    /// The cursor of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Each group of a workflow (its `group by` values): counts, colour and
/// why, the oldest item and the next deadline; paged.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{workflow}/groups",
    tag = "status",
    params(("workflow" = String, Path, description = "The workflow's name"), GroupsQuery),
    responses(
        (status = 200, description = "A page of groups", body = GroupPage),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
        (status = 404, description = "No workflow has this name", body = ErrorBody),
        (status = 500, description = "The views are unavailable", body = ErrorBody),
    )
)]
pub async fn groups(
    State(api): State<Api>,
    Path(workflow): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<GroupPage>, ApiError> {
    let Query(pairs) = query?;
    let views = api.views.read().map_err(|_| poisoned())?;
    Ok(Json(page_of_groups(&views, &workflow, pairs)?))
}

/// A page of a workflow's groups in `views`, as `limit` and `cursor` ask
/// (a scale-out front pages the group's views the same way).
pub(crate) fn page_of_groups(
    views: &crate::views::Views,
    workflow: &str,
    pairs: Vec<(String, String)>,
) -> Result<GroupPage, ApiError> {
    let (mut limit, mut after) = (DEFAULT_LIMIT, None);
    for (name, value) in pairs {
        match name.as_str() {
            "limit" => limit = page::limit(&value)?,
            "cursor" => after = Some(decode_cursor(&value)?),
            other => return Err(ApiError::unknown_parameter(other, &["limit", "cursor"])),
        }
    }
    let all = views.groups.get(workflow).ok_or_else(|| unknown_workflow(workflow))?;
    // Sorted by `group`: a page starts after the cursor's group, so groups
    // that appear meanwhile cannot shift it.
    let start = match &after {
        Some(after) => all.partition_point(|g| g.group.as_bytes() <= after.as_slice()),
        None => 0,
    };
    let rest = all.get(start..).unwrap_or_default();
    let groups: Vec<GroupView> = rest.iter().take(limit).cloned().collect();
    let next_cursor = (rest.len() > limit).then(|| groups.last().map(|g| encode_cursor(&g.group))).flatten();
    Ok(GroupPage { groups, next_cursor })
}

/// A group cursor: the last group's text as hex, opaque to clients.
fn encode_cursor(group: &str) -> String {
    group.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A cursor back to bytes. Any even run of hex digits is a position in
/// the byte order of group texts, so none is refused for what it holds.
fn decode_cursor(text: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::invalid("cursor", "cursor: not a cursor this API gave (take `next_cursor` as it is)");
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> =
        (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    bytes.ok_or_else(bad)
}

/// The parameters of `GET /api/v1/workflows/{workflow}/trends`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TrendsQuery {
    /// One stage (default: all stages summed).
    stage: Option<String>,
    /// One group, its values joined by `/` as `/groups` shows it
    /// (default: all groups summed).
    group: Option<String>,
    /// The first bucket (RFC 3339; default: `to` minus an hour for
    /// minutes, a day for hours). After `to`: no points.
    #[param(format = DateTime)]
    from: Option<String>,
    /// The last bucket (RFC 3339; default: the engine's clock).
    #[param(format = DateTime)]
    to: Option<String>,
    /// `minute` (default) or `hour`.
    #[param(pattern = "^(minute|hour)$")]
    step: Option<String>,
}

/// A trend: one point per bucket, each with its baseline.
#[derive(Serialize, ToSchema)]
pub struct Trend {
    pub workflow: String,
    pub stage: Option<String>,
    pub group: Option<String>,
    /// `minute` or `hour`.
    pub step: &'static str,
    /// The first and last bucket (RFC 3339).
    pub from: String,
    pub to: String,
    pub points: Vec<Point>,
    /// Drops, spikes against the baseline and a stall at the end, in time
    /// order (docs/service.md, "Trends").
    pub anomalies: Vec<Anomaly>,
}

/// What a trends request asks for (its parameters, checked).
pub(crate) struct TrendAsk {
    pub stage: Option<String>,
    pub group: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub step: Step,
}

impl TrendAsk {
    pub(crate) fn parse(pairs: Vec<(String, String)>) -> Result<TrendAsk, ApiError> {
        let mut ask = TrendAsk { stage: None, group: None, from: None, to: None, step: Step::Minute };
        let instant = |field: &str, value: &str| {
            mon_stdlib::time::parse_rfc3339(value)
                .ok_or_else(|| ApiError::invalid(field, format!("{field}: `{value}` is not an RFC 3339 instant")))
        };
        for (name, value) in pairs {
            match name.as_str() {
                "stage" => ask.stage = Some(value),
                "group" => ask.group = Some(value),
                "from" => ask.from = Some(instant("from", &value)?),
                "to" => ask.to = Some(instant("to", &value)?),
                "step" => {
                    ask.step = match value.as_str() {
                        "minute" => Step::Minute,
                        "hour" => Step::Hour,
                        _ => {
                            return Err(ApiError::invalid("step", format!("step: `{value}`; expected minute or hour")))
                        }
                    }
                }
                other => return Err(ApiError::unknown_parameter(other, &["stage", "group", "from", "to", "step"])),
            }
        }
        Ok(ask)
    }
}

/// What a trend's stall is judged on, from the views: the steps out of
/// the stage (leaving it is entering them) and the items in flight in the
/// slice now.
pub(crate) struct TrendSlice {
    pub leaving: Vec<String>,
    /// `None` for a stage of one group: the views count a stage or a
    /// group, not both, so no stall is judged there.
    pub in_flight: Option<u64>,
}

impl TrendSlice {
    /// 404 for an unknown workflow, or a stage it does not have.
    pub(crate) fn of(
        views: &crate::views::Views,
        workflow: &str,
        stage: Option<&str>,
        group: Option<&str>,
    ) -> Result<TrendSlice, ApiError> {
        let detail = views.details.get(workflow).ok_or_else(|| unknown_workflow(workflow))?;
        if let Some(stage) = stage {
            // A 404 like an unknown workflow: the stage names a part of it.
            if !detail.graph.stages.iter().any(|s| s == stage) {
                return Err(ApiError::not_found(
                    format!("`{workflow}` has no stage `{stage}`; its stages are {}", detail.graph.stages.join(", ")),
                    serde_json::json!({ "workflow": workflow, "stage": stage }),
                ));
            }
        }
        let leaving = match stage {
            Some(stage) => detail
                .graph
                .edges
                .iter()
                .filter(|e| e.from.iter().any(|f| f == stage))
                .map(|e| e.step.clone())
                .collect(),
            None => Vec::new(),
        };
        let in_flight = match (stage, group) {
            (None, None) => Some(detail.counts.in_flight),
            (Some(stage), None) => detail.stages.iter().find(|s| s.name == stage).map(|s| s.counts.in_flight),
            (None, Some(group)) => views
                .groups
                .get(workflow)
                .and_then(|all| all.iter().find(|g| g.group == group))
                .map_or(Some(0), |g| Some(g.counts.in_flight)),
            (Some(_), Some(_)) => None,
        };
        Ok(TrendSlice { leaving, in_flight })
    }
}

/// The buckets a trend covers: `to` by default the engine's `clock` (else
/// the wall clock), `from` by default an hour (minutes) or a day (hours)
/// before it, and never more than [`MAX_POINTS`] buckets.
pub(crate) fn trend_range(from: Option<i64>, to: Option<i64>, clock: Option<i64>, step: Step) -> (i64, i64) {
    let to = to.or(clock).unwrap_or_else(crate::clock::wall_now);
    let default_span = if step == Step::Minute { rollups::HOUR_MS } else { rollups::DAY_MS };
    let from = from.unwrap_or(to.saturating_sub(default_span)).max(to.saturating_sub((MAX_POINTS - 1) * step.ms()));
    (from, to)
}

/// The most points one trend answers (a week of minutes): a longer range
/// is cut to its last `MAX_POINTS` buckets.
const MAX_POINTS: i64 = 10_080;

/// Entries, completions, late and missing per minute or hour, for the
/// whole workflow, one stage or one group, each point with a baseline:
/// the mean of the same time of day over the previous 7 days that have
/// history, else the mean of the previous 60 minutes (docs/service.md,
/// "Trends").
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{workflow}/trends",
    tag = "status",
    params(("workflow" = String, Path, description = "The workflow's name"), TrendsQuery),
    responses(
        (status = 200, description = "The trend", body = Trend),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
        (status = 404, description = "No workflow has this name, or it has no such stage", body = ErrorBody),
        (status = 500, description = "The rollups cannot be read", body = ErrorBody),
    )
)]
pub async fn trends(
    State(api): State<Api>,
    Path(workflow): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Trend>, ApiError> {
    let Query(pairs) = query?;
    let TrendAsk { stage, group, from, to, step } = TrendAsk::parse(pairs)?;
    let (clock, TrendSlice { leaving: leaving_stages, in_flight: in_flight_now }) = {
        let views = api.views.read().map_err(|_| poisoned())?;
        (views.clock, TrendSlice::of(&views, &workflow, stage.as_deref(), group.as_deref())?)
    };
    // A stall is about now: a series that ends earlier has no count of
    // what was in flight then.
    let ends_now = to.is_none();
    // The engine's clock after the last batch is fresher than the views'.
    let engine_now = api.engine_now.load(std::sync::atomic::Ordering::Relaxed);
    let clock = match (clock, engine_now) {
        (clock, crate::processor::NO_CLOCK) => clock,
        (clock, now) => Some(clock.map_or(now, |c| c.max(now))),
    };
    let (from, to) = trend_range(from, to, clock, step);
    // Why a blocking task: a week of minutes over many stages and groups is
    // a long sled scan, which must not hold up an async worker.
    let (store, names) = (api.store.clone(), (workflow.clone(), stage.clone(), group.clone()));
    let (points, leaving) = tokio::task::spawn_blocking(move || {
        let (workflow, stage, group) = &names;
        let query = rollups::Query { workflow, stage: stage.as_deref(), group: group.as_deref(), from, to, step };
        let points = store.trend(&query)?;
        let mut leaving = vec![0.0; points.len()];
        for next in &leaving_stages {
            let next_query = rollups::Query { stage: Some(next), ..query };
            for (sum, point) in leaving.iter_mut().zip(store.trend(&next_query)?) {
                *sum += point.counts.entered;
            }
        }
        Ok::<_, crate::error::Error>((points, leaving))
    })
    .await
    .map_err(|e| ApiError::internal("reading the rollups", e))?
    .map_err(|e| ApiError::internal("reading the rollups", e))?;
    let ask = TrendAsk { stage, group, from: None, to: None, step };
    Ok(Json(Trend::judged(workflow, ask, points, &leaving, in_flight_now.filter(|_| ends_now))))
}

impl Trend {
    /// A series with its anomalies judged: `leaving` per point for a
    /// stage, `in_flight` now when the series ends now (else no stall).
    pub(crate) fn judged(
        workflow: String,
        ask: TrendAsk,
        points: Vec<Point>,
        leaving: &[f64],
        in_flight: Option<u64>,
    ) -> Trend {
        let TrendAsk { stage, group, step, .. } = ask;
        let context = rollups::Context { step, leaving: stage.is_some().then_some(leaving), in_flight };
        let anomalies = rollups::anomalies(&points, &context, &rollups::THRESHOLDS);
        let first = points.first().map(|p| p.at.clone()).unwrap_or_default();
        let last = points.last().map(|p| p.at.clone()).unwrap_or_default();
        Trend { workflow, stage, group, step: step.name(), from: first, to: last, points, anomalies }
    }
}
