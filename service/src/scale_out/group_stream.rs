//! `GET /api/v1/stream` for a scale-out group: the events a lone
//! `mon run` streams, for every partition.
//!
//! - **`alert`**: each task's alert events, relayed as they come (an
//!   alert lives in one task's book, so its event is whole).
//! - **`status`**: the group's workflow list (`group_api::group_views`),
//!   made again whenever a task says its own list changed (at most about
//!   once a second each), and sent when it differs from the last one sent.
//!   A task's own `status` event is not relayed: it is one partition's.
//! - **`resync`**: relayed from a task that dropped changes for this
//!   client, and sent when a task's stream had to be opened again (its
//!   task moved to another process, or restarted): what changed meanwhile
//!   is not known, so the client reads the lists again.
//!
//! Event ids are the front's own, rising by one per event it sends.
//!
//! What it must not do: hold a client's events back for a slow task, or
//! keep reading tasks for a client that has gone.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, Notify};

use super::front::Front;
use super::group_api;
use crate::views::WorkflowList;

/// How long a relay waits before it opens a task's stream again.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// How often the group's list is made again without a task's word (a
/// task's clock moves its ages on the wall clock).
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// How many events wait for a slow client before the relays wait too.
const BUFFER: usize = 256;

/// What the stream's parts send the client.
struct Outbox {
    events: mpsc::Sender<Event>,
    next_id: AtomicU64,
}

impl Outbox {
    /// `false` once the client has gone.
    async fn send(&self, kind: &str, data: String) -> bool {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.events.send(Event::default().event(kind).id(id.to_string()).data(data)).await.is_ok()
    }
}

pub(super) async fn stream(State(front): State<Front>, headers: HeaderMap) -> Response {
    // Made first, with the caller's token: a refused token is refused here.
    let first = match group_api::group_views(&front, &headers).await {
        Ok(views) => views.list,
        Err(refused) => return refused,
    };
    let (events, received) = mpsc::channel(BUFFER);
    let outbox = Arc::new(Outbox { events, next_id: AtomicU64::new(1) });
    let task_changed = Arc::new(Notify::new());
    for partition in 0..front.partitions {
        tokio::spawn(relay(front.clone(), partition, headers.clone(), outbox.clone(), task_changed.clone()));
    }
    tokio::spawn(statuses(front.clone(), headers, first, outbox, task_changed));
    let events = futures_util::stream::unfold(received, |mut received| async move {
        let event = received.recv().await?;
        Some((Ok::<Event, Infallible>(event), received))
    });
    let mut stopping = front.stopping.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    Sse::new(events.take_until(stopped)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// The group's list: sent at once, then whenever it differs.
async fn statuses(front: Front, headers: HeaderMap, first: WorkflowList, outbox: Arc<Outbox>, changed: Arc<Notify>) {
    let text = |list: &WorkflowList| serde_json::to_string(list).unwrap_or_else(|_| "{}".into());
    if !outbox.send("status", text(&first)).await {
        return;
    }
    let mut last = first;
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(STATUS_EVERY) => {}
            _ = outbox.events.closed() => return,
        }
        // A task restoring answers 503: the next change makes it again.
        let Ok(views) = group_api::group_views(&front, &headers).await else { continue };
        if views.list.workflows != last.workflows {
            if !outbox.send("status", text(&views.list)).await {
                return;
            }
            last = views.list;
        }
    }
}

/// One task's stream, relayed until the client goes; opened again (with a
/// `resync` to the client) when it ends.
async fn relay(front: Front, partition: u16, headers: HeaderMap, outbox: Arc<Outbox>, status_changed: Arc<Notify>) {
    let mut opened_before = false;
    loop {
        if outbox.events.is_closed() {
            return;
        }
        let opened = front.open_stream(partition, &headers, false).await;
        if let Ok(response) = opened {
            if opened_before && !outbox.send("resync", r#"{"missed":null}"#.into()).await {
                return;
            }
            opened_before = true;
            let mut body = response.bytes_stream();
            let mut pending = String::new();
            loop {
                let chunk = tokio::select! {
                    chunk = body.next() => chunk,
                    _ = outbox.events.closed() => return,
                };
                let Some(Ok(chunk)) = chunk else { break };
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find("\n\n") {
                    let block: String = pending.drain(..end + 2).collect();
                    let (kind, data) = parse_event(&block);
                    let sent = match kind.as_deref() {
                        Some("status") => {
                            status_changed.notify_one();
                            true
                        }
                        Some(kind @ ("alert" | "resync")) => outbox.send(kind, data).await,
                        _ => true, // a keep-alive comment
                    };
                    if !sent {
                        return;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(REOPEN_AFTER) => {}
            _ = outbox.events.closed() => return,
        }
    }
}

/// A server-sent event's type and data (its `data:` lines joined).
fn parse_event(block: &str) -> (Option<String>, String) {
    let mut kind = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            kind = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    (kind, data.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_read_back_as_axum_writes_it() {
        let block = "event: alert\nid: 7\ndata: {\"alerts\":[]}\n\n";
        assert_eq!(parse_event(block), (Some("alert".into()), "{\"alerts\":[]}".into()));
        assert_eq!(parse_event(":\n\n"), (None, String::new()), "a keep-alive comment");
        assert_eq!(parse_event("event:resync\ndata:a\ndata:b\n\n"), (Some("resync".into()), "a\nb".into()));
    }
}
