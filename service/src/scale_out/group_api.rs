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
//!   a merge of every task's list in the same order, paged with a cursor
//!   that holds each task's own cursor ([`GroupCursor`]).
//! - **A stage's items** are every task's oldest, merged oldest first,
//!   with their counts summed.
//! - **The workflow views** (`/workflows`, `/workflows/{w}`, its groups)
//!   are made from every task's numbers added ([`group_views`]), so a
//!   colour is the rules on the group's counts.
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

/// Names the partition whose task should answer: the front passes the
/// request to that task's own API, wherever it runs.
pub const TASK_HEADER: &str = "mon-task";

/// Set by a front on what it passes to another process's front: that one
/// answers from its own tasks only, so two fronts with different views of
/// the group never pass a request back and forth.
const PASSED_HEADER: &str = "mon-passed";

/// The headers a task's answer keeps on its way back.
const KEPT: [HeaderName; 3] = [header::CONTENT_TYPE, header::RETRY_AFTER, header::WWW_AUTHENTICATE];

/// A task's answer, as it came.
pub(super) struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, self.headers, self.body).into_response()
    }
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A question for a task: the method, path (as the caller wrote it,
/// percent-encoding kept), query, and the caller's token and body.
#[derive(Clone)]
pub(super) struct Question {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    authorization: Option<HeaderValue>,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

impl Question {
    fn get(path: &str, query: Vec<(String, String)>, headers: &HeaderMap) -> Question {
        Question {
            method: Method::GET,
            path: path.to_string(),
            query,
            authorization: headers.get(header::AUTHORIZATION).cloned(),
            content_type: None,
            body: Bytes::new(),
        }
    }

    fn with_query(&self, query: Vec<(String, String)>) -> Question {
        Question { query, ..self.clone() }
    }
}

impl Front {
    /// The base URL of the process that runs `partition`'s task, when it
    /// is another one: the member that last said it runs it.
    fn peer_of(&self, partition: u16) -> Option<String> {
        let named = format!("{}/{partition}", self.tasks_topic);
        let view = self.registry.view(crate::clock::wall_now());
        view.members
            .into_iter()
            .filter(|m| m.alive && m.member.member != self.registry.this)
            .find(|m| m.member.partitions.contains(&named))
            .map(|m| m.member.http)
    }

    /// Asks `partition`'s task, here or in another process (unless
    /// `local_only`); `Err` says why no answer came.
    pub(super) async fn ask_task(
        &self,
        partition: u16,
        question: &Question,
        local_only: bool,
    ) -> Result<Answer, String> {
        let local = self.slots().into_iter().find(|(p, _)| *p == partition);
        let local = local.and_then(|(_, slot)| slot.address.lock().ok().and_then(|a| *a));
        let (url, passed) = match (local, local_only) {
            (Some(address), _) => (format!("http://{address}{}", question.path), false),
            (None, true) => return Err(format!("task {partition} does not run in this process")),
            (None, false) => match self.peer_of(partition) {
                Some(base) => (format!("{}{}", base.trim_end_matches('/'), question.path), true),
                None => return Err(format!("no process of the group says it runs task {partition}")),
            },
        };
        let mut request =
            self.client.request(question.method.clone(), url).query(&question.query).timeout(TASK_TIMEOUT);
        if let Some(token) = &question.authorization {
            request = request.header(header::AUTHORIZATION, token);
        }
        if let Some(content_type) = &question.content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        if passed {
            request = request.header(TASK_HEADER, partition.to_string()).header(PASSED_HEADER, "1");
        }
        let answer = request.body(question.body.clone()).send().await.map_err(|e| format!("task {partition}: {e}"))?;
        let status = answer.status();
        let mut headers = HeaderMap::new();
        for name in KEPT {
            if let Some(value) = answer.headers().get(&name) {
                headers.insert(name, value.clone());
            }
        }
        let body = answer.bytes().await.map_err(|e| format!("task {partition}: {e}"))?;
        // A 503 is a task restoring, stopping or busy: not an answer for
        // the partition yet.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return Err(format!("task {partition} is not ready (503)"));
        }
        Ok(Answer { status, headers, body })
    }

    /// Asks every partition's task at once: the answers by partition.
    async fn ask_every(&self, question: &Question) -> Vec<(u16, Result<Answer, String>)> {
        let asks = (0..self.partitions).map(|p| async move { (p, self.ask_task(p, question, false).await) });
        futures_util::future::join_all(asks).await
    }
}

/// The 503 of a question some tasks did not answer.
fn unanswered(failures: &[String]) -> Response {
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
        let message = format!("Mon-Task: the group has partitions 0 to {}", front.partitions - 1);
        return ApiError::invalid(TASK_HEADER, message).into_response();
    }
    let local_only = request.headers().contains_key(PASSED_HEADER);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, front.max_body).await else {
        return ApiError::invalid("body", "the body could not be read, or is over the limit").into_response();
    };
    let query = pairs(&parts.uri);
    let question = Question {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        authorization: parts.headers.get(header::AUTHORIZATION).cloned(),
        content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
        body,
    };
    match front.ask_task(partition, &question, local_only).await {
        Ok(answer) => answer.into_response(),
        Err(why) => unanswered(&[why]),
    }
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
    for (partition, asked) in front.ask_every(question).await {
        match asked {
            Ok(answer) if answer.status.is_success() => return Ok((partition, answer)),
            Ok(answer) if answer.status == StatusCode::NOT_FOUND => not_found = not_found.or(Some(answer)),
            Ok(answer) => return Err(answer.into_response()),
            Err(why) => failures.push(why),
        }
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
    };
    match front.ask_task(partition, &command, false).await {
        Ok(answer) => answer.into_response(),
        Err(why) => unanswered(&[why]),
    }
}

/// How a list endpoint orders its items, so the merge keeps that order.
#[derive(Clone, Copy)]
pub(super) struct Listing {
    /// The field of the page that holds the items.
    pub items: &'static str,
    /// The item's instant (RFC 3339) it is ordered by, then a tie-break.
    pub instant: &'static str,
    pub tie: &'static str,
}

pub(super) const ALERTS: Listing = Listing { items: "alerts", instant: "opened_at", tie: "id" };
pub(super) const RECORDS: Listing = Listing { items: "records", instant: "at", tie: "id" };
pub(super) const DEAD_LETTERS: Listing = Listing { items: "dead_letters", instant: "received", tie: "origin" };
pub(super) const NOTIFICATIONS: Listing = Listing { items: "notifications", instant: "queued_at", tie: "id" };
pub(super) const EVENTS: Listing = Listing { items: "events", instant: "time", tie: "received" };

impl Listing {
    fn key(&self, item: &Value) -> (i64, String) {
        let instant = item[self.instant].as_str().and_then(mon_stdlib::time::parse_rfc3339).unwrap_or(i64::MIN);
        let tie = match &item[self.tie] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        (instant, tie)
    }
}

/// Where a page of the merged list starts in one task's list.
#[derive(Clone, Debug, PartialEq)]
enum Position {
    /// At its start.
    Start,
    /// After the task's own cursor.
    After(String),
    /// Past its end.
    Done,
}

/// A cursor of a merged list: each partition's [`Position`], as hex (the
/// tasks' cursors are hex themselves), so it is as opaque as theirs.
struct GroupCursor(Vec<Position>);

impl GroupCursor {
    fn encode(&self) -> String {
        let text: Vec<String> = self
            .0
            .iter()
            .map(|p| match p {
                Position::Start => String::new(),
                Position::After(cursor) => cursor.clone(),
                Position::Done => "-".into(),
            })
            .collect();
        text.join(";").bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(hex: &str, partitions: u16) -> Option<GroupCursor> {
        if !hex.len().is_multiple_of(2) {
            return None;
        }
        let bytes: Option<Vec<u8>> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
        let text = String::from_utf8(bytes?).ok()?;
        let positions: Vec<Position> = text
            .split(';')
            .map(|part| match part {
                "" => Position::Start,
                "-" => Position::Done,
                cursor => Position::After(cursor.to_string()),
            })
            .collect();
        (positions.len() == usize::from(partitions)).then_some(GroupCursor(positions))
    }
}

/// One task's page.
struct TaskPage {
    items: Vec<Value>,
    next: Option<String>,
}

fn task_page(listing: Listing, answer: &Value) -> Option<TaskPage> {
    let items = answer.get(listing.items)?.as_array()?.clone();
    let next = answer.get("next_cursor").and_then(Value::as_str).map(str::to_string);
    Some(TaskPage { items, next })
}

/// How many times a merged page is made again when a task's list moved
/// under it (see [`merged_page`]).
const ATTEMPTS: usize = 3;

/// A list endpoint for the whole group: every task's list, merged in the
/// order they share, a page at a time.
pub(super) async fn merged_list(
    front: Front,
    listing: Listing,
    path: &str,
    headers: HeaderMap,
    query: Vec<(String, String)>,
) -> Response {
    let mut cursor = GroupCursor(vec![Position::Start; usize::from(front.partitions)]);
    let mut limit = crate::http::page::DEFAULT_LIMIT;
    let mut filters = Vec::new();
    for (name, value) in query {
        match name.as_str() {
            "cursor" => match GroupCursor::decode(&value, front.partitions) {
                Some(decoded) => cursor = decoded,
                None => {
                    let message = "cursor: not a cursor this API gave (take `next_cursor` as it is)";
                    return ApiError::invalid("cursor", message).into_response();
                }
            },
            "limit" => match crate::http::page::limit(&value) {
                Ok(n) => limit = n,
                Err(e) => return e.into_response(),
            },
            _ => filters.push((name, value)),
        }
    }
    // The pending notifications go out oldest first; every other list,
    // the failed notifications too, is newest first.
    let newest_first = !(listing.items == NOTIFICATIONS.items
        && filters.iter().all(|(name, value)| name != "state" || value == "pending"));
    let question = Question::get(path, filters, &headers);
    for _ in 0..ATTEMPTS {
        match merged_page(&front, listing, &question, &cursor, limit, newest_first).await {
            Ok(Some(page)) => return Json(page).into_response(),
            Ok(None) => continue,
            Err(response) => return response,
        }
    }
    unanswered(&["the tasks' lists kept moving while the page was made; ask again".to_string()])
}

/// One attempt at a merged page. `Ok(None)`: a task's list moved between
/// the two questions asked of it (new items at its start), so the page
/// is made again.
///
/// Each task is asked for `limit` items after its position; the page
/// takes the best head among the tasks, one item at a time, so each
/// task's part is a prefix of its own page and no item is lost or given
/// twice. The new position of a task whose page was taken in part is
/// that of its last item taken, which only the task can give: it is
/// asked again, for that many items from the same position.
async fn merged_page(
    front: &Front,
    listing: Listing,
    question: &Question,
    cursor: &GroupCursor,
    limit: usize,
    newest_first: bool,
) -> Result<Option<Value>, Response> {
    let ask_from = |position: &Position, n: usize| {
        let mut query = question.query.clone();
        query.push(("limit".into(), n.to_string()));
        if let Position::After(c) = position {
            query.push(("cursor".into(), c.clone()));
        }
        question.with_query(query)
    };
    let asks = cursor.0.iter().enumerate().map(|(p, position)| {
        let question = ask_from(position, limit);
        async move {
            match position {
                Position::Done => Ok(None),
                _ => front.ask_task(p as u16, &question, false).await.map(Some),
            }
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    let mut failures = Vec::new();
    let mut pages: Vec<Option<TaskPage>> = Vec::new();
    let mut shape: Option<Value> = None;
    for (p, asked) in answers.into_iter().enumerate() {
        match asked {
            Ok(None) => pages.push(None),
            Ok(Some(answer)) if answer.status.is_success() => {
                let json = answer.json();
                match json.as_ref().and_then(|j| task_page(listing, j)) {
                    Some(page) => pages.push(Some(page)),
                    None => {
                        failures.push(format!("task {p}: an answer that is not a page of {}", listing.items));
                        pages.push(None);
                    }
                }
                shape = shape.or(json);
            }
            // The same question is refused by every task alike (a 400, a 401).
            Ok(Some(answer)) => return Err(answer.into_response()),
            Err(why) => {
                failures.push(why);
                pages.push(None);
            }
        }
    }
    if !failures.is_empty() {
        return Err(unanswered(&failures));
    }
    let better = |a: &(i64, String), b: &(i64, String)| if newest_first { a > b } else { a < b };
    let mut heads = vec![0usize; pages.len()];
    let mut taken: Vec<Value> = Vec::new();
    'merge: while taken.len() < limit {
        let mut best: Option<(usize, (i64, String))> = None;
        for (p, page) in pages.iter().enumerate() {
            let Some(page) = page else { continue };
            match page.items.get(heads[p]) {
                Some(item) => {
                    let key = listing.key(item);
                    if best.as_ref().is_none_or(|(_, b)| better(&key, b)) {
                        best = Some((p, key));
                    }
                }
                // Its page is used up and it has more: the merge cannot
                // know what comes next from it.
                None if page.next.is_some() => break 'merge,
                None => {}
            }
        }
        let Some((p, _)) = best else { break };
        if let Some(page) = &pages[p] {
            taken.push(page.items[heads[p]].clone());
        }
        heads[p] += 1;
    }
    let mut next = Vec::with_capacity(pages.len());
    for (p, page) in pages.iter().enumerate() {
        let position = &cursor.0[p];
        let Some(page) = page else {
            next.push(Position::Done);
            continue;
        };
        let used = heads[p];
        let after = if used == page.items.len() {
            match &page.next {
                Some(c) => Position::After(c.clone()),
                None => Position::Done,
            }
        } else if used == 0 {
            position.clone()
        } else {
            let again = front.ask_task(p as u16, &ask_from(position, used), false).await;
            let again = match again {
                Ok(answer) if answer.status.is_success() => answer.json().and_then(|j| task_page(listing, &j)),
                Ok(answer) => return Err(answer.into_response()),
                Err(why) => return Err(unanswered(&[why])),
            };
            let Some(again) = again else { return Ok(None) };
            let same_last = again.items.last().map(|i| listing.key(i)) == Some(listing.key(&page.items[used - 1]));
            match (&again.next, same_last && again.items.len() == used) {
                (Some(c), true) => Position::After(c.clone()),
                _ => return Ok(None),
            }
        };
        next.push(after);
    }
    let next_cursor = next.iter().any(|p| *p != Position::Done).then(|| GroupCursor(next).encode());
    let mut page = shape.unwrap_or_else(|| serde_json::json!({}));
    if let Value::Object(fields) = &mut page {
        fields.insert(listing.items.to_string(), Value::Array(taken));
        fields.insert("next_cursor".to_string(), next_cursor.map(Value::String).unwrap_or(Value::Null));
    }
    Ok(Some(page))
}

/// `GET /api/v1/workflows/{w}/stages/{s}/items`: every task's oldest
/// items, merged oldest first, `in_stage` summed over the tasks, on the
/// latest of their clocks.
pub(super) async fn stage_items(
    State(front): State<Front>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let mut limit = crate::http::page::DEFAULT_LIMIT;
    for (name, value) in &query {
        if name == "limit" {
            match crate::http::page::limit(value) {
                Ok(n) => limit = n,
                Err(e) => return e.into_response(),
            }
        }
    }
    let question = Question::get(uri.path(), query, &headers);
    let mut pages = Vec::new();
    let mut failures = Vec::new();
    for (partition, asked) in front.ask_every(&question).await {
        match asked {
            Ok(answer) if answer.status.is_success() => match answer.json() {
                Some(page) => pages.push(page),
                None => failures.push(format!("task {partition}: an answer that is not a stage's items")),
            },
            Ok(answer) => return answer.into_response(),
            Err(why) => failures.push(why),
        }
    }
    if !failures.is_empty() {
        return unanswered(&failures);
    }
    let Some(mut merged) = pages.first().cloned() else { return unanswered(&["no task answered".into()]) };
    let in_stage: u64 = pages.iter().filter_map(|p| p["in_stage"].as_u64()).sum();
    let latest_clock = pages
        .iter()
        .filter_map(|p| p["clock"].as_str())
        .max_by_key(|c| mon_stdlib::time::parse_rfc3339(c).unwrap_or(i64::MIN))
        .map(str::to_string);
    let mut items: Vec<Value> = pages.iter().flat_map(|p| p["items"].as_array().cloned().unwrap_or_default()).collect();
    let entered = |item: &Value| item["entered_at"].as_str().and_then(mon_stdlib::time::parse_rfc3339);
    items.sort_by(|a, b| (entered(a), a["key"].as_str()).cmp(&(entered(b), b["key"].as_str())));
    items.truncate(limit);
    merged["in_stage"] = in_stage.into();
    merged["items"] = Value::Array(items);
    if let Some(clock) = latest_clock {
        merged["clock"] = clock.into();
    }
    Json(merged).into_response()
}

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
async fn group_views(front: &Front, headers: &HeaderMap) -> Result<crate::views::Views, Response> {
    let question = Question::get("/api/v1/breakdowns", Vec::new(), headers);
    let ours = front.program.hash();
    let (mut each, mut failures, mut clock) = (Vec::new(), Vec::new(), None::<i64>);
    for (partition, asked) in front.ask_every(&question).await {
        let answer = match asked {
            Ok(answer) if answer.status.is_success() => answer,
            Ok(answer) => return Err(answer.into_response()),
            Err(why) => {
                failures.push(why);
                continue;
            }
        };
        match serde_json::from_slice::<TaskBreakdowns>(&answer.body) {
            Ok(task) if task.program_hash != ours => failures.push(format!(
                "task {partition} runs other rules ({}) than this process ({ours}): a rolling restart?",
                task.program_hash
            )),
            Ok(task) if task.workflows.len() != front.program.workflows.len() => {
                failures.push(format!("task {partition} has not measured its workflows yet"));
            }
            Ok(task) => {
                clock = clock.max(task.clock_ms);
                each.push(task.workflows);
            }
            Err(e) => failures.push(format!("task {partition}: an answer that is not its breakdowns ({e})")),
        }
    }
    if !failures.is_empty() {
        return Err(unanswered(&failures));
    }
    let parts = crate::views::add_parts(&front.program, each);
    let now = clock.unwrap_or_else(crate::clock::wall_now);
    Ok(crate::views::render(&front.program, std::sync::Arc::new(parts), now))
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

/// The group's members, as `<group>.members` tells this process.
pub(super) async fn group(State(front): State<Front>) -> Json<crate::group::ConsumerGroupView> {
    Json(front.registry.view(crate::clock::wall_now()))
}

/// The query of a request, decoded (for the list endpoints, which take
/// repeated parameters).
pub(super) fn pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri).map(|Query(pairs)| pairs).unwrap_or_default()
}

/// The partitions whose position a cursor holds, for a test's eyes.
#[cfg(test)]
fn positions(hex: &str, partitions: u16) -> Option<Vec<Position>> {
    GroupCursor::decode(hex, partitions).map(|c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_cursor_round_trips_and_a_foreign_one_is_refused() {
        let cursor = GroupCursor(vec![Position::Start, Position::After("00000000000000ff".into()), Position::Done]);
        let hex = cursor.encode();
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{hex}");
        assert_eq!(positions(&hex, 3), Some(cursor.0.clone()));
        assert_eq!(positions(&hex, 4), None, "a cursor of a group of another size");
        assert_eq!(positions("zz", 3), None);
        assert_eq!(positions("abc", 3), None);
    }

    #[test]
    fn an_item_is_ordered_by_its_instant_then_its_tie_break() {
        let early = serde_json::json!({ "at": "2026-12-07T08:00:00Z", "id": "b" });
        let late = serde_json::json!({ "at": "2026-12-07T08:00:00.001Z", "id": "a" });
        let same_instant = serde_json::json!({ "at": "2026-12-07T08:00:00.000Z", "id": "c" });
        assert!(RECORDS.key(&late) > RECORDS.key(&early), "by instant first, whatever the text");
        assert!(RECORDS.key(&same_instant) > RECORDS.key(&early), "then by the tie-break");
    }
}
