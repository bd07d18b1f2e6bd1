//! Rule changes at a scale-out group's address, and the rules the
//! group's views are made by (`scale_out/group_api.rs`).
//!
//! A change (a version stored or run, a rollback, a workflow switched off
//! or on) goes to one task, this process's own first, which publishes it
//! to `<group>.rules` and answers once it has applied it
//! (`rules/group.rs`). The answer here waits until every task has
//! applied it too, and lists what each did; one not done within
//! [`CHANGE_WAIT`] makes it a 202 naming those still to apply it (they
//! will: the change is in the topic). Once published, a change is
//! waited for even when the taking task refused it (rules that do not
//! compile with its release of mon): the others may have applied it.
//!
//! The views are made by the rules the tasks run: when every task
//! reports a program this process has not compiled, it compiles the
//! active version of one of them, once.
//!
//! What it must not do: publish a change itself, or ask a second task to
//! take one the first did not answer in time (it may have published it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::front::Front;
use super::group_api::{unanswered, Answer, Question};
use crate::http::error::{ApiError, ErrorCode};

/// How long a change through the group's address waits for every task.
const CHANGE_WAIT: Duration = Duration::from_secs(30);

/// How long each ask of a task waits for it to apply the change (the
/// task's `wait_ms`): under the front's timeout for a read.
const ASK_WAIT_MS: &str = "1000";

/// How long the taking task may take to answer: compiling, publishing
/// (the producer gives up after 30 s) and applying (it answers 202 after
/// 20 s), with room to spare, so that a change published is not called
/// unknown.
pub(super) const TAKE_TIMEOUT: Duration = Duration::from_secs(75);

/// Whether a request is a rule change (the routes of [`rules_change`]).
pub(super) fn is_rule_change(method: &axum::http::Method, path: &str) -> bool {
    *method == axum::http::Method::POST
        && (path == "/api/v1/rules/versions"
            || path == "/api/v1/rules/rollback"
            || (path.starts_with("/api/v1/rules/versions/") && path.ends_with("/activate"))
            || (path.starts_with("/api/v1/workflows/") && (path.ends_with("/enable") || path.ends_with("/disable"))))
}

/// How many compiled programs a process keeps for the group's views.
const PROGRAMS_KEPT: usize = 16;

/// `POST` of a rule change at the group's address.
pub(super) async fn rules_change(State(front): State<Front>, request: Request) -> Response {
    let question = match Question::of(&front, request).await {
        Ok(question) => question,
        Err(refused) => return refused,
    };
    let question = question.with_timeout(TAKE_TIMEOUT);
    let answer = match one_task(&front, &question).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    let published = answer.json().and_then(|body| Some((body["group"]["offset"].as_i64()?, body)));
    let Some((offset, mut body)) = published else {
        // Refused before it was published (a 4xx): as it came.
        return answer.into_response();
    };
    let (tasks, pending) = every_task_applied(&front, offset, &question.caller()).await;
    body["group"]["tasks"] = json!(tasks);
    body["group"]["pending"] = json!(pending);
    let status = match (pending.is_empty(), answer.status) {
        (false, _) => StatusCode::ACCEPTED,
        // The taking task had not applied it when it answered; all have now.
        (true, StatusCode::ACCEPTED) => StatusCode::OK,
        (true, status) => status,
    };
    (status, Json(body)).into_response()
}

/// The first task that takes the change, this process's own first. One
/// that could not be reached, or answered 503 (restoring; or Kafka away,
/// so nothing was published), is passed over; one that was asked and did
/// not answer (in time, or whole) may have published it, so no other is.
async fn one_task(front: &Front, question: &Question) -> Result<Answer, Response> {
    let mut failures = Vec::new();
    for partition in front.local_first() {
        match front.ask_task(partition, question, false).await {
            Ok(answer) if answer.status == StatusCode::SERVICE_UNAVAILABLE => {
                failures.push(format!("task {partition} is not ready (503)"));
            }
            Ok(answer) => return Ok(answer),
            Err(failed) if failed.maybe_received => {
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorCode::Unavailable,
                    format!(
                        "{}: no answer in time; whether the change was published is not known: look at \
                         /api/v1/rules/activations before trying again",
                        failed.why
                    ),
                    json!({}),
                )
                .into_response())
            }
            Err(failed) => failures.push(failed.why),
        }
    }
    Err(unanswered(&failures))
}

/// Every task's outcome for the change at `offset`, by partition, and the
/// partitions that had not applied it by [`CHANGE_WAIT`].
async fn every_task_applied(front: &Front, offset: i64, caller: &HeaderMap) -> (Vec<Value>, Vec<u16>) {
    let path = format!("/api/v1/rules/group-changes/{offset}");
    let question = Question::get(&path, vec![("wait_ms".into(), ASK_WAIT_MS.into())], caller);
    let deadline = Instant::now() + CHANGE_WAIT;
    let mut applied: Vec<Option<Value>> = vec![None; usize::from(front.partitions)];
    loop {
        let waiting: Vec<u16> = (0..front.partitions).filter(|p| applied[usize::from(*p)].is_none()).collect();
        if waiting.is_empty() || Instant::now() >= deadline {
            let tasks = applied
                .into_iter()
                .enumerate()
                .filter_map(|(partition, outcome)| {
                    let mut outcome = outcome?;
                    outcome["partition"] = json!(partition);
                    Some(outcome)
                })
                .collect();
            return (tasks, waiting);
        }
        let asks = waiting.iter().map(|p| front.ask_task(*p, &question, false));
        let answers = futures_util::future::join_all(asks).await;
        let mut moved = false;
        for (partition, answer) in waiting.iter().zip(answers) {
            let Some(state) = answer.ok().filter(|a| a.status.is_success()).and_then(|a| a.json()) else { continue };
            if state["applied"] == json!(true) {
                applied[usize::from(*partition)] = Some(state);
                moved = true;
            }
        }
        // A task that is not reachable answers at once: not a busy loop.
        if !moved {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The rules the group's views are made by: the program whose hash every
/// task reports, compiled here once from the active version of the task
/// at `partition`.
pub(super) async fn program_of(
    front: &Front,
    hash: &str,
    partition: u16,
    caller: &HeaderMap,
) -> Result<Arc<mon_compiler::ir::Program>, String> {
    if let Some(program) = front.programs.lock().ok().and_then(|programs| programs.get(hash).cloned()) {
        return Ok(program);
    }
    let ask = |path: String| async move {
        let question = Question::get(&path, Vec::new(), caller);
        let answer = front.ask_ready(partition, &question).await?;
        answer.json().filter(|_| answer.status.is_success()).ok_or_else(|| format!("task {partition}: {path}"))
    };
    let versions = ask("/api/v1/rules/versions?limit=1".into()).await?;
    let active = versions["active"].as_u64().ok_or_else(|| format!("task {partition} runs no version"))?;
    let version = ask(format!("/api/v1/rules/versions/{active}")).await?;
    let bundle: crate::rules::Bundle = serde_json::from_value(version["sources"].clone())
        .map_err(|e| format!("task {partition}'s version {active}: {e}"))?;
    let functions = front.functions;
    let program = tokio::task::spawn_blocking(move || bundle.compile(functions).compilation.program)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("task {partition}'s version {active} does not compile in this process"))?;
    if program.hash() != hash {
        return Err(format!("task {partition}'s active version {active} is not the program it reports (changing?)"));
    }
    let program = Arc::new(program);
    if let Ok(mut programs) = front.programs.lock() {
        // Rule changes are rare; a process that lives through many keeps
        // the recent ones only.
        if programs.len() >= PROGRAMS_KEPT {
            programs.clear();
        }
        programs.insert(hash.to_string(), program.clone());
    }
    Ok(program)
}
