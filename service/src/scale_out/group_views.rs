//! The group's workflow views and status (`scale_out/group_api.rs`):
//! every task's unfinished breakdowns (`GET /api/v1/breakdowns`) added,
//! and the views rendered from the sum with the code a lone `mon run`
//! uses (`views.rs`), so a colour is the rules on the group's counts.
//!
//! What it must not do: judge the group by its tasks' colours, or add
//! numbers that tasks measured by different rules.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::front::Front;
use super::group_api::{pairs, unanswered, Question};

/// A task's `GET /api/v1/breakdowns`.
#[derive(serde::Deserialize)]
struct TaskBreakdowns {
    clock_ms: Option<i64>,
    program_hash: String,
    workflows: Vec<crate::views::WorkflowPart>,
}

/// The group's workflow views: every task's numbers added, and the views
/// made of the sum, on the latest of the tasks' clocks. The colours are
/// the rules on the group's counts: `missing > 5` holds for the group
/// when three tasks have 2 missing each, though it holds for none of them.
pub(super) async fn group_views(front: &Front, headers: &HeaderMap) -> Result<crate::views::Views, Response> {
    group_numbers(front, headers).await.map(|(views, _)| views)
}

/// [`group_views`], with the numbers they were made of (every task's
/// added, unfinished).
async fn group_numbers(
    front: &Front,
    headers: &HeaderMap,
) -> Result<(crate::views::Views, Vec<crate::views::WorkflowPart>), Response> {
    let question = Question::get("/api/v1/breakdowns", Vec::new(), headers);
    let (mut tasks, mut failures) = (Vec::new(), Vec::new());
    for (partition, answer) in front.json_of_every(&question).await? {
        match serde_json::from_value::<TaskBreakdowns>(answer) {
            Ok(task) => tasks.push((partition, task)),
            Err(e) => failures.push(format!("task {partition}: an answer that is not its breakdowns ({e})")),
        }
    }
    if !failures.is_empty() {
        return Err(unanswered(&failures));
    }
    // Numbers are added only when every task counted them by one program.
    let Some((first, hash)) = tasks.first().map(|(p, task)| (*p, task.program_hash.clone())) else {
        return Err(unanswered(&["the group has no tasks".to_string()]));
    };
    if let Some((partition, other)) = tasks.iter().find(|(_, task)| task.program_hash != hash) {
        return Err(unanswered(&[format!(
            "task {partition} runs other rules ({}) than task {first} ({hash}): a rule change on its way, or a \
             rolling restart",
            other.program_hash
        )]));
    }
    let program =
        super::group_rules::program_of(front, &hash, first, headers).await.map_err(|why| unanswered(&[why]))?;
    let (mut each, mut clock) = (Vec::new(), None::<i64>);
    for (partition, task) in tasks {
        if task.workflows.len() != program.workflows.len() {
            return Err(unanswered(&[format!("task {partition} has not measured its workflows yet")]));
        }
        clock = clock.max(task.clock_ms);
        each.push(task.workflows);
    }
    let parts = crate::views::add_parts(&program, each);
    let now = clock.unwrap_or_else(crate::clock::wall_now);
    Ok((crate::views::render(&program, parts.clone(), now, false), parts))
}

/// `GET /api/v1/status` for the group: each workflow's colour and
/// numbers from the group's views, the event and record counts added
/// over the tasks.
pub(super) async fn status(State(front): State<Front>, headers: HeaderMap) -> Response {
    let question = Question::get("/api/v1/status", Vec::new(), &headers);
    let statuses: Vec<Value> = match front.json_of_every(&question).await {
        Ok(answers) => answers.into_iter().map(|(_, status)| status).collect(),
        Err(response) => return response,
    };
    let (views, parts) = match group_numbers(&front, &headers).await {
        Ok(numbers) => numbers,
        Err(response) => return response,
    };
    let workflows: Vec<Value> = views
        .list
        .workflows
        .iter()
        .zip(parts)
        .map(|(summary, part)| {
            let mut breakdown = part.breakdown;
            breakdown.finish();
            serde_json::json!({ "name": summary.name, "status": summary.status, "metrics": breakdown.whole.metrics })
        })
        .collect();
    let sum = |field: &str| statuses.iter().filter_map(|s| s[field].as_u64()).sum::<u64>();
    let mut records: BTreeMap<String, u64> = BTreeMap::new();
    for status in &statuses {
        for (kind, n) in status["records"].as_object().into_iter().flatten() {
            *records.entry(kind.clone()).or_default() += n.as_u64().unwrap_or(0);
        }
    }
    Json(serde_json::json!({
        "clock": views.list.clock,
        "workflows": workflows,
        "events_accepted": sum("events_accepted"),
        "events_ignored": sum("events_ignored"),
        "events_rejected": sum("events_rejected"),
        "records": records,
        "split_keys": super::group_split::check(&front, &headers).await,
    }))
    .into_response()
}

/// `GET /api/v1/workflows` for the group.
pub(super) async fn workflows(State(front): State<Front>, headers: HeaderMap) -> Response {
    match group_views(&front, &headers).await {
        Ok(views) => Json(views.list).into_response(),
        Err(response) => response,
    }
}

/// `GET /api/v1/workflows/{workflow}` for the group.
pub(super) async fn workflow(
    State(front): State<Front>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    match group_views(&front, &headers).await {
        Ok(mut views) => match views.details.remove(&name) {
            Some(detail) => Json(detail).into_response(),
            None => crate::http::workflows::unknown_workflow(&name).into_response(),
        },
        Err(response) => response,
    }
}

/// `GET /api/v1/workflows/{workflow}/groups` for the group, paged as a
/// task pages its own.
pub(super) async fn groups(
    State(front): State<Front>,
    axum::extract::Path(name): axum::extract::Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let views = match group_views(&front, &headers).await {
        Ok(views) => views,
        Err(response) => return response,
    };
    match crate::http::workflows::page_of_groups(&views, &name, pairs(&uri)) {
        Ok(page) => Json(page).into_response(),
        Err(e) => e.into_response(),
    }
}
