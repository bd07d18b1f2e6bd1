//! The group's API at any process's address: what a lone `mon run`
//! answers, answered for every partition of a scale-out group.
//!
//! Each partition's state lives in one task, in some process. A front
//! reaches a task of its own on loopback, and another process's task
//! through that process's front, named in `<group>.members` (`group.rs`),
//! with the `Mon-Task` header. Then, by the kind of question:
//!
//! - **An item or an alert** (`/workflows/{w}/items/{key}`,
//!   `/alerts/{id}` and its commands) is asked of every task, and the one
//!   that has it answers. Why not to the key's partition: which partition a
//!   key lands on is the producer's partitioner's choice (murmur2 in Java
//!   clients, CRC32 in librdkafka's default), which mon cannot know.
//! - **A list** (alerts, records, dead letters, notifications, events) is
//!   a merge of every task's list by time, paged with a cursor that holds
//!   each task's own cursor ([`GroupCursor`]), from the cursors the tasks
//!   give for each item (`mon-item-cursors`).
//! - **A stage's items** are every task's oldest, merged oldest first,
//!   with their counts summed.
//! - **The workflow views** (`/workflows`, `/workflows/{w}`, its groups)
//!   and the status are made from every task's numbers added
//!   ([`group_views`]), so a colour is the rules on the group's counts.
//!   Lists are in `group_lists.rs`, the views in `group_views.rs`, trends
//!   in `group_trends.rs`, the stream in `group_stream.rs`.
//! - **What every task answers alike** (who the caller is, the rule
//!   versions, the command center's pages) comes from one task.
//! - **A rule change** goes to one task, which publishes it to the
//!   group's rules topic; the answer waits for every task (`group_rules.rs`).
//! - **Anything else**, with `Mon-Task: <partition>`, goes to that task's
//!   own API as it is.
//!
//! A question some task did not answer gets a 503 naming the partitions
//! that did not (a partition is restored for a few seconds after a
//! hand-over): a partial list would look whole.
//!
//! What it must not do: keep state or answer from a copy. Every answer is
//! the tasks' own, asked now; and with `[auth]` on, every task checks the
//! caller's token itself (the front passes `Authorization` on).

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::front::{Front, TASK_TIMEOUT};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::page::ITEM_CURSORS;

/// Names the partition whose task should answer: the front passes the
/// request to that task's own API, wherever it runs.
pub const TASK_HEADER: &str = "mon-task";

/// Set by a front on what it passes to another process's front: that one
/// answers from its own tasks only, so two fronts with different views of
/// the group never pass a request back and forth.
const PASSED_HEADER: &str = "mon-passed";

/// The headers a task's answer keeps on its way back.
const KEPT: [HeaderName; 4] =
    [header::CONTENT_TYPE, header::RETRY_AFTER, header::WWW_AUTHENTICATE, HeaderName::from_static(ITEM_CURSORS)];

/// How long the front waits for a task to apply a command (an alert
/// acknowledged): the task answers once its batch is durable, which under
/// load takes longer than a read.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A task's answer, as it came.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, self.headers, self.body).into_response()
    }
}

impl Answer {
    pub(super) fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A 503 is a task restoring, stopping or busy: no answer for its
    /// partition yet, where every partition's is needed.
    fn ready(self, partition: u16) -> Result<Answer, String> {
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => Err(format!("task {partition} is not ready (503)")),
            _ => Ok(self),
        }
    }
}

/// Why no answer came from a task.
pub(super) struct Unanswered {
    pub(super) why: String,
    /// It was asked, and did not answer in time: a command may have been
    /// applied.
    pub(super) timed_out: bool,
    /// The request may have reached it (anything but a refused
    /// connection or no route): a change may have been made.
    pub(super) maybe_received: bool,
}

/// A question for a task: the method, path (as the caller wrote it,
/// percent-encoding kept), query, and the caller's token and body.
#[derive(Clone)]
pub(super) struct Question {
    method: Method,
    path: String,
    pub(super) query: Vec<(String, String)>,
    authorization: Option<HeaderValue>,
    content_type: Option<HeaderValue>,
    body: Bytes,
    /// Ask for each item's cursor ([`ITEM_CURSORS`]).
    pub(super) item_cursors: bool,
    /// How long to wait for the answer, when not the method's default.
    timeout: Option<std::time::Duration>,
}

impl Question {
    pub(super) fn get(path: &str, query: Vec<(String, String)>, headers: &HeaderMap) -> Question {
        Question {
            method: Method::GET,
            path: path.to_string(),
            query,
            authorization: headers.get(header::AUTHORIZATION).cloned(),
            content_type: None,
            body: Bytes::new(),
            item_cursors: false,
            timeout: None,
        }
    }

    pub(super) fn post_json(path: &str, body: Bytes, headers: &HeaderMap) -> Question {
        Question {
            method: Method::POST,
            content_type: Some(HeaderValue::from_static("application/json")),
            body,
            ..Question::get(path, Vec::new(), headers)
        }
    }

    pub(super) fn with_query(&self, query: Vec<(String, String)>) -> Question {
        Question { query, ..self.clone() }
    }

    pub(super) fn with_timeout(self, timeout: std::time::Duration) -> Question {
        Question { timeout: Some(timeout), ..self }
    }
}

impl Front {
    /// The base URL of the process that runs `partition`'s task, when it
    /// is another one: the member that last said it runs it.
    fn peer_of(&self, partition: u16) -> Option<String> {
        let named = format!("{}/{partition}", self.tasks_topic);
        let view = self.registry.view(crate::clock::wall_now());
        // A process killed without its goodbye is alive for a while
        // yet: the latest to say it runs the task is its owner.
        view.members
            .into_iter()
            .filter(|m| m.alive && m.member.member != self.registry.this && m.member.partitions.contains(&named))
            .max_by_key(|m| mon_stdlib::time::parse_rfc3339(&m.member.seen_at).unwrap_or(i64::MIN))
            .map(|m| m.member.http)
    }

    /// Where to ask `partition`'s task: the base URL, and whether it is
    /// another process's front (which passes the question on).
    fn route(&self, partition: u16, local_only: bool) -> Result<(String, bool), String> {
        let local = self.slots().into_iter().find(|(p, _)| *p == partition);
        match (local.and_then(|(_, slot)| slot.address.lock().ok().and_then(|a| *a)), local_only) {
            (Some(address), _) => Ok((format!("http://{address}"), false)),
            (None, true) => Err(format!("task {partition} does not run in this process")),
            (None, false) => match self.peer_of(partition) {
                Some(base) => Ok((base.trim_end_matches('/').to_string(), true)),
                None => Err(format!("no process of the group says it runs task {partition}")),
            },
        }
    }

    /// `partition`'s task's answer to `/api/v1/stream`: open, its events
    /// come as they are sent (only the wait for its answer is bounded); a
    /// refusal (401, 403) or a 503 as the task gave it.
    pub(super) async fn open_stream(
        &self,
        partition: u16,
        headers: &HeaderMap,
        local_only: bool,
    ) -> Result<reqwest::Response, String> {
        let (base, passed) = self.route(partition, local_only)?;
        let mut request = self.client.get(format!("{base}/api/v1/stream"));
        if let Some(token) = headers.get(header::AUTHORIZATION) {
            request = request.header(header::AUTHORIZATION, token);
        }
        if passed {
            request = request.header(TASK_HEADER, partition.to_string()).header(PASSED_HEADER, "1");
        }
        match tokio::time::timeout(TASK_TIMEOUT, request.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(format!("task {partition}'s stream: {e}")),
            Err(_) => Err(format!("task {partition}'s stream: no answer in time")),
        }
    }

    /// Asks `partition`'s task, here or in another process (unless
    /// `local_only`), and gives its answer, whatever its status.
    pub(super) async fn ask_task(
        &self,
        partition: u16,
        question: &Question,
        local_only: bool,
    ) -> Result<Answer, Unanswered> {
        let (base, passed) = self.route(partition, local_only).map_err(|why| Unanswered {
            why,
            timed_out: false,
            maybe_received: false,
        })?;
        let url = format!("{base}{}", question.path);
        let default = if question.method == Method::GET { TASK_TIMEOUT } else { COMMAND_TIMEOUT };
        let timeout = question.timeout.unwrap_or(default);
        let mut request = self.client.request(question.method.clone(), url).query(&question.query).timeout(timeout);
        if let Some(token) = &question.authorization {
            request = request.header(header::AUTHORIZATION, token);
        }
        if let Some(content_type) = &question.content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        if question.item_cursors {
            request = request.header(ITEM_CURSORS, "1");
        }
        if passed {
            request = request.header(TASK_HEADER, partition.to_string()).header(PASSED_HEADER, "1");
        }
        let failed = |e: reqwest::Error| Unanswered {
            timed_out: e.is_timeout(),
            maybe_received: !e.is_connect(),
            why: format!("task {partition}: {e}"),
        };
        let answer = request.body(question.body.clone()).send().await.map_err(failed)?;
        let status = answer.status();
        let mut headers = HeaderMap::new();
        for name in KEPT {
            if let Some(value) = answer.headers().get(&name) {
                headers.insert(name, value.clone());
            }
        }
        let body = answer.bytes().await.map_err(failed)?;
        Ok(Answer { status, headers, body })
    }

    /// Asks `partition`'s task where every partition's answer is needed:
    /// a 503 counts as no answer.
    pub(super) async fn ask_ready(&self, partition: u16, question: &Question) -> Result<Answer, String> {
        self.ask_task(partition, question, false).await.map_err(|u| u.why)?.ready(partition)
    }

    /// Every partition's task's JSON answer to `question`, by partition;
    /// or the response to give instead: the first refusal (the same
    /// question is refused by every task alike: a 400, a 401, a 404), or
    /// the 503 naming the tasks that did not answer, or not with JSON.
    pub(super) async fn json_of_every(&self, question: &Question) -> Result<Vec<(u16, Value)>, Response> {
        let (mut answers, mut failures) = (Vec::new(), Vec::new());
        for (partition, asked) in self.ask_every(question).await {
            match asked {
                Ok(answer) if answer.status.is_success() => match answer.json() {
                    Some(json) => answers.push((partition, json)),
                    None => failures.push(format!("task {partition}: an answer to {} that is not JSON", question.path)),
                },
                Ok(refused) => return Err(refused.into_response()),
                Err(why) => failures.push(why),
            }
        }
        match failures.is_empty() {
            true => Ok(answers),
            false => Err(unanswered(&failures)),
        }
    }

    /// Asks every partition's task at once: the answers by partition.
    pub(super) async fn ask_every(&self, question: &Question) -> Vec<(u16, Result<Answer, String>)> {
        let asks = (0..self.partitions).map(|p| async move { (p, self.ask_ready(p, question).await) });
        futures_util::future::join_all(asks).await
    }
}

/// The 503 of a question some tasks did not answer.
pub(super) fn unanswered(failures: &[String]) -> Response {
    let error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        format!(
            "not every partition of the group answered, and an answer without them would look whole: {}",
            failures.join("; ")
        ),
        serde_json::json!({ "unanswered": failures }),
    );
    let mut response = error.into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

/// `Mon-Task: <partition>`: the request goes to that task's own API.
pub(super) async fn to_one_task(State(front): State<Front>, request: Request, next: Next) -> Response {
    let Some(named) = request.headers().get(TASK_HEADER) else { return next.run(request).await };
    let Some(partition) = named.to_str().ok().and_then(|t| t.trim().parse::<u16>().ok()) else {
        return ApiError::invalid(TASK_HEADER, "Mon-Task: not a partition number").into_response();
    };
    if partition >= front.partitions {
        let message = format!("Mon-Task: the group has partitions 0 to {}", front.partitions.saturating_sub(1));
        return ApiError::invalid(TASK_HEADER, message).into_response();
    }
    let local_only = request.headers().contains_key(PASSED_HEADER);
    // The stream never ends: passed through as it comes, until this
    // process stops; a refusal as the task gave it.
    if request.uri().path() == "/api/v1/stream" {
        let answer = match front.open_stream(partition, request.headers(), local_only).await {
            Ok(answer) => answer,
            Err(why) => return unanswered(&[why]),
        };
        let status = answer.status();
        let mut headers = HeaderMap::new();
        for name in KEPT {
            if let Some(value) = answer.headers().get(&name) {
                headers.insert(name, value.clone());
            }
        }
        if !status.is_success() {
            let body = answer.bytes().await.unwrap_or_default();
            return (status, headers, body).into_response();
        }
        let mut stopping = front.stopping.clone();
        let stopped = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let body = futures_util::StreamExt::take_until(answer.bytes_stream(), stopped);
        return (status, headers, axum::body::Body::from_stream(body)).into_response();
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, front.max_body).await else {
        return ApiError::invalid("body", "the body could not be read, or is over the limit").into_response();
    };
    let query = pairs(&parts.uri);
    // A rule change passed on by another process waits as long there as
    // at the process that took it (`group_rules.rs`).
    let timeout =
        super::group_rules::is_rule_change(&parts.method, parts.uri.path()).then_some(super::group_rules::TAKE_TIMEOUT);
    let question = Question {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        authorization: parts.headers.get(header::AUTHORIZATION).cloned(),
        content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
        item_cursors: parts.headers.contains_key(ITEM_CURSORS),
        timeout,
        body,
    };
    // The task's own answer, a 503 too (busy, restoring: it says which).
    match front.ask_task(partition, &question, local_only).await {
        Ok(answer) => answer.into_response(),
        Err(failed) => no_answer(failed),
    }
}

/// A task asked one question did not answer: a 503 to try again, or,
/// when it was asked and did not answer in time, a 504 without
/// `Retry-After`: a command may have been applied, and tried again may be
/// a conflict.
fn no_answer(failed: Unanswered) -> Response {
    if !failed.timed_out {
        return unanswered(&[failed.why]);
    }
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Unavailable,
        format!("{}: no answer in time; whether it was applied is not known, look before trying again", failed.why),
        serde_json::json!({}),
    )
    .into_response()
}

/// An item, or an alert: the answer of the task that has it. Every task
/// has the same rules, so a 404 from all is the 404 of any.
pub(super) async fn found(
    State(front): State<Front>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let question = Question::get(uri.path(), query, &headers);
    match owner(&front, &question).await {
        Ok((_, answer)) => answer.into_response(),
        Err(response) => response,
    }
}

/// The task that answers `question` with a success, and its answer; or
/// the response to give: the first refusal other than a 404 (a 400, a
/// 401), the 503 of tasks that did not answer, or the 404.
async fn owner(front: &Front, question: &Question) -> Result<(u16, Answer), Response> {
    let mut failures = Vec::new();
    let mut not_found = None;
    let mut found: Vec<(u16, Answer)> = Vec::new();
    for (partition, asked) in front.ask_every(question).await {
        match asked {
            Ok(answer) if answer.status.is_success() => found.push((partition, answer)),
            Ok(answer) if answer.status == StatusCode::NOT_FOUND => not_found = not_found.or(Some(answer)),
            Ok(answer) => return Err(answer.into_response()),
            Err(why) => failures.push(why),
        }
    }
    if found.len() > 1 {
        // Its events came from several partitions (a producer that does
        // not key by item): each task holds a part, and none is the item.
        let holders: Vec<u16> = found.iter().map(|(p, _)| *p).collect();
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "tasks {holders:?} each hold it: its events came from several partitions (a producer that does not \
                 key by item); ask each with `Mon-Task`"
            ),
            serde_json::json!({ "tasks": holders }),
        )
        .into_response());
    }
    if let Some(one) = found.pop() {
        return Ok(one);
    }
    match (failures.is_empty(), not_found) {
        (false, _) => Err(unanswered(&failures)),
        (true, Some(answer)) => Err(answer.into_response()),
        (true, None) => Err(StatusCode::NOT_FOUND.into_response()),
    }
}

/// `POST /api/v1/alerts/{id}/{action}`: to the task whose book holds the
/// alert, found by asking every task for it first.
pub(super) async fn alert_command(
    State(front): State<Front>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // `/api/v1/alerts/{id}/{action}` as the caller encoded it, less the action.
    let alert = uri.path().rsplit_once('/').map_or(uri.path(), |(alert, _)| alert);
    let lookup = Question::get(alert, Vec::new(), &headers);
    let partition = match owner(&front, &lookup).await {
        Ok((partition, _)) => partition,
        Err(response) => return response,
    };
    let command = Question {
        method: Method::POST,
        path: uri.path().to_string(),
        query: Vec::new(),
        authorization: headers.get(header::AUTHORIZATION).cloned(),
        content_type: headers.get(header::CONTENT_TYPE).cloned(),
        body,
        item_cursors: false,
        timeout: None,
    };
    match front.ask_task(partition, &command, false).await {
        Ok(answer) => answer.into_response(),
        Err(failed) => no_answer(failed),
    }
}

/// What every task answers alike (who the caller is, the rule versions
/// every task imported from the same deployment, a rules check, the
/// command center's pages): the first task that answers, this process's
/// own first.
pub(super) async fn any_task(State(front): State<Front>, request: Request) -> Response {
    let question = match Question::of(&front, request).await {
        Ok(question) => question,
        Err(refused) => return refused,
    };
    let mut failures = Vec::new();
    for partition in front.local_first() {
        match front.ask_ready(partition, &question).await {
            Ok(answer) => return answer.into_response(),
            Err(why) => failures.push(why),
        }
    }
    unanswered(&failures)
}

impl Question {
    /// The caller's request as a question for a task.
    pub(super) async fn of(front: &Front, request: Request) -> Result<Question, Response> {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, front.max_body).await else {
            return Err(ApiError::invalid("body", "the body could not be read, or is over the limit").into_response());
        };
        Ok(Question {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: pairs(&parts.uri),
            authorization: parts.headers.get(header::AUTHORIZATION).cloned(),
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            body,
            item_cursors: false,
            timeout: None,
        })
    }

    /// The caller's token, as headers for another question.
    pub(super) fn caller(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(token) = &self.authorization {
            headers.insert(header::AUTHORIZATION, token.clone());
        }
        headers
    }
}

impl Front {
    /// Every partition, this process's own tasks first.
    pub(super) fn local_first(&self) -> Vec<u16> {
        let mut order: Vec<u16> = self.slots().into_iter().map(|(p, _)| p).collect();
        order.extend((0..self.partitions).filter(|p| !order.contains(p)).collect::<Vec<_>>());
        order
    }
}

/// `POST /api/v1/rules/versions/{v}/dry-run`: over pasted events, any
/// task's answer is the group's (the rules are the same); over the stored
/// history, it would be one partition's history, so it is not answered.
pub(super) async fn dry_run(state: State<Front>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, state.max_body).await else {
        return ApiError::invalid("body", "the body could not be read, or is over the limit").into_response();
    };
    let pasted =
        serde_json::from_slice::<Value>(&body).ok().is_some_and(|v| v.get("events").is_some_and(|e| !e.is_null()));
    if !pasted {
        let body = serde_json::json!({ "error": {
            "code": "not_implemented",
            "message": "a dry-run over the stored history is not answered for a scale-out group (each task stores \
                        its own partition's events): paste the events (`events`), or ask one task with `Mon-Task`",
            "details": {},
        }});
        return (StatusCode::NOT_IMPLEMENTED, Json(body)).into_response();
    }
    any_task(state, Request::from_parts(parts, axum::body::Body::from(body))).await
}

/// The group's members, as `<group>.members` tells this process: to a
/// viewer, as a lone `mon run` tells it.
pub(super) async fn group(State(front): State<Front>, headers: HeaderMap) -> Response {
    if let Err(refused) = caller_may_view(&front, &headers).await {
        return refused;
    }
    Json(front.registry.view(crate::clock::wall_now())).into_response()
}

/// With `[auth]` on, what the front answers from its own knowledge needs
/// a viewer too. The front holds no authenticator of its own: a task
/// checks the token (`/api/v1/whoami`), as for any request it answers.
async fn caller_may_view(front: &Front, headers: &HeaderMap) -> Result<(), Response> {
    if !front.auth {
        return Ok(());
    }
    let question = Question::get("/api/v1/whoami", Vec::new(), headers);
    let mut failures = Vec::new();
    for partition in 0..front.partitions {
        match front.ask_ready(partition, &question).await {
            Ok(answer) if answer.status.is_success() => return Ok(()),
            Ok(refused) => return Err(refused.into_response()),
            Err(why) => failures.push(why),
        }
    }
    Err(unanswered(&failures))
}

/// The query of a request, decoded (for the list endpoints, which take
/// repeated parameters).
pub(super) fn pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri).map(|Query(pairs)| pairs).unwrap_or_default()
}
