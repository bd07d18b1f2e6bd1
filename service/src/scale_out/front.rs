//! What a scale-out process serves on `[http] listen` (`scale_out.rs`):
//! its health and readiness, the list of its tasks with their own APIs'
//! addresses, one `/metrics` for all of them, and the group's API
//! (`group_api.rs`).
//!
//! What it must not do: answer for the group what it cannot. What is not
//! answered for the group (a dry-run on history, the OpenAPI document)
//! says so, and how to ask one task (`Mon-Task`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde::Serialize;

use super::group_api;
use super::group_lists::{self, Listing};
use super::group_rules;
use super::group_stream;
use super::group_trends;
use super::group_views;
use super::{Shared, Slot};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long the front waits for one task's answer.
pub(super) const TASK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub(super) struct Front {
    pub shared: Arc<Shared>,
    pub partitions: u16,
    pub group: String,
    pub client: reqwest::Client,
    /// The group's members: where the other processes' tasks run.
    pub registry: crate::group::Registry,
    /// `<group>.tasks`: a member runs the tasks it lists as `<topic>/<p>`.
    pub tasks_topic: String,
    /// `[http] max_body_bytes`, for what is passed to a task.
    pub max_body: usize,
    /// The programs the group's views have been made by, by hash: the
    /// start rules', and each the tasks have run since
    /// (`group_rules::program_of`).
    pub programs: Arc<Mutex<HashMap<String, Arc<mon_compiler::ir::Program>>>>,
    /// What rules compile against.
    pub functions: &'static dyn mon_compiler::Functions,
    /// The group's split-key check, so far (`group_split.rs`).
    pub split: super::group_split::SharedSplitCheck,
    /// `[auth] enabled`: what the front answers itself needs a viewer.
    pub auth: bool,
    /// Turns true when the process stops: endless streams end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

pub(super) fn router(front: Front) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/tasks", get(tasks_view))
        .route("/api/v1/group", get(group_api::group))
        .route("/api/v1/alerts", merged(group_lists::ALERTS))
        .route("/api/v1/records", merged(group_lists::RECORDS))
        .route("/api/v1/dead-letters", merged(group_lists::DEAD_LETTERS))
        .route("/api/v1/notifications", merged(group_lists::NOTIFICATIONS))
        .route("/api/v1/events", merged(group_lists::EVENTS).post(events_come_from_kafka))
        .route("/api/v1/alerts/{id}", get(group_api::found))
        .route("/api/v1/alerts/{id}/{action}", post(group_api::alert_command))
        .route("/api/v1/status", get(group_views::status))
        .route("/api/v1/stream", get(group_stream::stream))
        .route("/api/v1/whoami", get(group_api::any_task))
        .route("/api/v1/rules/versions", get(group_api::any_task).post(group_rules::rules_change))
        .route("/api/v1/rules/versions/{version}", get(group_api::any_task))
        .route("/api/v1/rules/versions/{version}/diff", get(group_api::any_task))
        .route("/api/v1/rules/versions/{version}/dry-run", post(group_api::dry_run))
        .route("/api/v1/rules/versions/{version}/activate", post(group_rules::rules_change))
        .route("/api/v1/rules/rollback", post(group_rules::rules_change))
        .route("/api/v1/rules/activations", get(group_api::any_task))
        .route("/api/v1/rules/validate", post(group_api::any_task))
        .route("/api/v1/audit", merged(group_lists::AUDIT))
        .route("/api/v1/workflows/{workflow}/disable", post(group_rules::rules_change))
        .route("/api/v1/workflows/{workflow}/enable", post(group_rules::rules_change))
        .route("/api/v1/workflows", get(group_views::workflows))
        .route("/api/v1/workflows/{workflow}", get(group_views::workflow))
        .route("/api/v1/workflows/{workflow}/groups", get(group_views::groups))
        .route("/api/v1/workflows/{workflow}/trends", get(group_trends::trends))
        .route("/api/v1/workflows/{workflow}/items/{key}", get(group_api::found))
        .route("/api/v1/workflows/{workflow}/stages/{stage}/items", get(group_lists::stage_items))
        .fallback(not_here)
        .layer(axum::middleware::from_fn_with_state(front.clone(), group_api::to_one_task))
        .with_state(front)
}

/// A list endpoint, merged over the group's tasks.
fn merged(listing: Listing) -> MethodRouter<Front> {
    get(move |State(front): State<Front>, uri: Uri, headers: HeaderMap| async move {
        group_lists::merged_list(front, listing, uri.path(), headers, group_api::pairs(&uri)).await
    })
}

/// A scale-out group takes its events from its Kafka partitions only:
/// one posted to a process would reach one partition, whichever the
/// caller hit, and not the one its key's producer would have chosen.
async fn events_come_from_kafka() -> Response {
    let body = serde_json::json!({ "error": {
        "code": "conflict",
        "message": "a scale-out group takes its events from Kafka only: produce them to the input topic, keyed by \
                    their item (docs/service.md, \"Scale-out\")",
        "details": {},
    }});
    (StatusCode::CONFLICT, Json(body)).into_response()
}

#[derive(Serialize)]
struct TasksView {
    group: String,
    partitions: u16,
    /// An assignment has come: this process is counted in the group.
    joined: bool,
    rebalances: u64,
    tasks: Vec<TaskView>,
}

#[derive(Serialize)]
struct TaskView {
    partition: u16,
    /// The task's own API (loopback), once it listens.
    address: Option<String>,
    running_for_ms: u64,
    ready: bool,
}

impl Front {
    pub(super) fn slots(&self) -> Vec<(u16, Slot)> {
        self.shared.slots.lock().map(|s| s.iter().map(|(p, s)| (*p, s.clone())).collect()).unwrap_or_default()
    }

    /// The body of a 2xx answer of the task at `address` to `path`.
    async fn ask(&self, address: std::net::SocketAddr, path: &str) -> Option<String> {
        let answer = self.client.get(format!("http://{address}{path}")).timeout(TASK_TIMEOUT).send().await.ok()?;
        if !answer.status().is_success() {
            return None;
        }
        answer.text().await.ok()
    }

    /// Asks every task `path` at once (a stopped one costs the timeout
    /// once, not once per task): each task's partition, and its answer.
    async fn ask_all(&self, path: &str) -> Vec<(u16, Option<std::net::SocketAddr>, Option<String>)> {
        let asks = self.slots().into_iter().map(|(partition, slot)| async move {
            let address = slot.address.lock().ok().and_then(|a| *a);
            let answer = match address {
                Some(address) => self.ask(address, path).await,
                None => None,
            };
            (partition, address, answer)
        });
        futures_util::future::join_all(asks).await
    }

    async fn view(&self) -> TasksView {
        let started: std::collections::BTreeMap<u16, u64> =
            self.slots().iter().map(|(p, slot)| (*p, slot.started.elapsed().as_millis() as u64)).collect();
        let tasks = self
            .ask_all("/readyz")
            .await
            .into_iter()
            .map(|(partition, address, answer)| TaskView {
                partition,
                address: address.map(|a| a.to_string()),
                running_for_ms: started.get(&partition).copied().unwrap_or_default(),
                ready: answer.is_some(),
            })
            .collect();
        TasksView {
            group: self.group.clone(),
            partitions: self.partitions,
            joined: self.shared.joined.load(Ordering::SeqCst),
            rebalances: self.shared.rebalances.load(Ordering::Relaxed),
            tasks,
        }
    }
}

async fn tasks_view(State(front): State<Front>) -> Json<TasksView> {
    Json(front.view().await)
}

/// Ready once the group has counted this process and every task it was
/// given answers ready: its state restored and its input assigned.
async fn readyz(State(front): State<Front>) -> Response {
    let view = front.view().await;
    let assigned = front.shared.assigned.lock().map(|a| a.clone()).unwrap_or_default();
    // Every task it is assigned, by partition: a revoked task still
    // stopping does not stand in for one waiting to start again.
    let ready_task = |p: &u16| view.tasks.iter().any(|t| t.partition == *p && t.ready);
    let ready = view.joined && assigned.iter().all(ready_task);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(view)).into_response()
}

/// Every task's metrics in one exposition, each series labelled with its
/// `task` (its partition): one scrape target per process, as for a lone
/// `mon run`. A task that does not answer in time is left out.
async fn metrics(State(front): State<Front>) -> Response {
    let answers = front.ask_all("/metrics").await;
    let texts: Vec<(u16, String)> =
        answers.into_iter().filter_map(|(partition, _, text)| Some((partition, text?))).collect();
    let mut text = merge_metrics(&texts);
    // The process's own: what its split-key check found (`group_split.rs`).
    let (found, unchecked) = front.split.counts();
    let own = format!(
        "# HELP mon_group_split_key_events Events of this process's tasks whose item another task holds (its \
         producer does not key by item).\n# TYPE mon_group_split_key_events counter\n\
         mon_group_split_key_events_total {found}\n\
         # HELP mon_group_split_key_unchecked Keys this process's tasks dropped before the split-key check asked \
         about them.\n# TYPE mon_group_split_key_unchecked counter\nmon_group_split_key_unchecked_total {unchecked}\n"
    );
    text.insert_str(text.len() - "# EOF\n".len(), &own);
    ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
}

/// Merges OpenMetrics expositions of the same registry (every task's):
/// each family's `# HELP`, `# TYPE` and `# UNIT` once, then its samples
/// from every exposition, with a `task` label first.
fn merge_metrics(texts: &[(u16, String)]) -> String {
    struct Family {
        name: String,
        header: Vec<String>,
        samples: Vec<String>,
    }
    let mut families: Vec<Family> = Vec::new();
    for (task, text) in texts {
        let mut current: Option<usize> = None;
        for line in text.lines().filter(|l| !l.is_empty() && *l != "# EOF") {
            if let Some(rest) = line.strip_prefix("# ") {
                let mut words = rest.splitn(3, ' ');
                let (kind, name) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
                let index = match families.iter().position(|f| f.name == name) {
                    Some(index) => index,
                    None => {
                        families.push(Family { name: name.to_string(), header: Vec::new(), samples: Vec::new() });
                        families.len() - 1
                    }
                };
                let family = &mut families[index];
                if !family.header.iter().any(|h| h.split(' ').nth(1) == Some(kind)) {
                    family.header.push(line.to_string());
                }
                current = Some(index);
                continue;
            }
            let sample = with_task_label(line, *task);
            match current {
                Some(index) => families[index].samples.push(sample),
                None => families.push(Family { name: String::new(), header: Vec::new(), samples: vec![sample] }),
            }
        }
    }
    let mut out = String::new();
    for family in families {
        for line in family.header.iter().chain(&family.samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

/// `name{labels} value` or `name value`, with `task="<task>"` first.
fn with_task_label(sample: &str, task: u16) -> String {
    match sample.find(['{', ' ']) {
        Some(at) if sample[at..].starts_with("{}") => {
            format!("{}{{task=\"{task}\"}}{}", &sample[..at], &sample[at + 2..])
        }
        Some(at) if sample[at..].starts_with('{') => {
            format!("{}{{task=\"{task}\",{}", &sample[..at], &sample[at + 1..])
        }
        Some(at) => format!("{}{{task=\"{task}\"}}{}", &sample[..at], &sample[at..]),
        None => sample.to_string(),
    }
}

/// Everything else: the command center's pages (static, the same from
/// every task) come from a task; an API path not answered for the group
/// is answered by one task only when the caller names it.
async fn not_here(state: State<Front>, request: axum::extract::Request) -> Response {
    let path = request.uri().path().to_string();
    if !path.starts_with("/api/") {
        return group_api::any_task(state, request).await;
    }
    let body = serde_json::json!({ "error": {
        "code": "not_implemented",
        "message": format!(
            "{path} is not answered for the whole scale-out group: send `Mon-Task: <partition>` to ask one task's \
             own API through this address. Answered for the group: status, the workflows (a workflow, its groups, \
             trends, a stage's items, an item's lifecycle), alerts and their commands, records, dead letters, \
             notifications, event search, the stream, the rule versions as deployed, /api/v1/group; and this \
             process's own /api/v1/tasks and /metrics (docs/service.md, \"Scale-out\")"
        ),
        "details": {},
    }});
    (StatusCode::NOT_IMPLEMENTED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tasks_series_comes_once_under_its_family_with_its_task() {
        let task = |events: u64, lag: u64| {
            format!(
                "# HELP mon_events Events taken.\n# TYPE mon_events counter\n\
                 mon_events_total{{event_type=\"a\",outcome=\"accepted\"}} {events}\n\
                 # HELP mon_consumer_lag Lag.\n# TYPE mon_consumer_lag gauge\nmon_consumer_lag {lag}\n\
                 # HELP mon_up Up.\n# TYPE mon_up gauge\nmon_up{{}} 1\n# EOF\n"
            )
        };
        let merged = merge_metrics(&[(0, task(5, 1)), (2, task(7, 0))]);
        assert_eq!(
            merged,
            "# HELP mon_events Events taken.\n# TYPE mon_events counter\n\
             mon_events_total{task=\"0\",event_type=\"a\",outcome=\"accepted\"} 5\n\
             mon_events_total{task=\"2\",event_type=\"a\",outcome=\"accepted\"} 7\n\
             # HELP mon_consumer_lag Lag.\n# TYPE mon_consumer_lag gauge\n\
             mon_consumer_lag{task=\"0\"} 1\nmon_consumer_lag{task=\"2\"} 0\n\
             # HELP mon_up Up.\n# TYPE mon_up gauge\nmon_up{task=\"0\"} 1\nmon_up{task=\"2\"} 1\n# EOF\n"
        );
        assert_eq!(merge_metrics(&[]), "# EOF\n", "no task: an empty exposition");
    }
}
