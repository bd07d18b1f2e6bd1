//! `GET /api/v1/stream` for a scale-out group: the events a lone
//! `mon run` streams, for every partition.
//!
//! - **`status`**: the group's workflow list (`group_views::group_views`),
//!   first, then made again whenever a task says its own list changed (at
//!   most about once a second each) and sent when it differs from the last
//!   one sent. A task's own `status` event is not relayed: it is one
//!   partition's.
//! - **`alert`**: each task's alert events, relayed as they come (an
//!   alert lives in one task's book, so its event is whole).
//! - **`resync`**: relayed from a task that dropped changes for this
//!   client, and sent when a task's stream could not be read for a while
//!   (its task moved to another process, restarted, or was restoring):
//!   what changed meanwhile is not known, so the client reads the lists
//!   again.
//!
//! Event ids are the process's own, rising by one in the order the client
//! gets them. A token a task refuses (revoked, expired) ends the stream:
//! the client's reconnection then meets the refusal.
//!
//! Known cost: each client makes the group's list itself (every task's
//! breakdowns, at most about once a second per task's change); many
//! wallboards on one process multiply it.
//!
//! What it must not do: hold a client's events back for a slow task, or
//! keep reading tasks for a client that has gone.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, watch, Notify};

use super::front::Front;
use super::group_views;
use crate::views::WorkflowList;

/// How long a relay waits before it opens a task's stream again.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// How often the group's list is made again without a task's word (a
/// task's clock moves its ages on the wall clock).
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// How many events wait for a slow client before the relays wait too.
const BUFFER: usize = 256;

/// What the stream's parts send the client, numbered as it takes them.
#[derive(Clone)]
struct Outbox {
    events: mpsc::Sender<(&'static str, String)>,
    /// Set when a task refused the caller: the stream ends.
    refused: Arc<watch::Sender<bool>>,
}

impl Outbox {
    /// `false` once the client has gone.
    async fn send(&self, kind: &'static str, data: String) -> bool {
        self.events.send((kind, data)).await.is_ok()
    }

    fn gone(&self) -> bool {
        self.events.is_closed() || *self.refused.borrow()
    }

    async fn closed(&self) {
        let mut refused = self.refused.subscribe();
        tokio::select! {
            _ = self.events.closed() => {}
            _ = refused.wait_for(|refused| *refused) => {}
        }
    }
}

pub(super) async fn stream(State(front): State<Front>, headers: HeaderMap) -> Response {
    // Made first, with the caller's token: a refused token is refused here.
    let first = match group_views::group_views(&front, &headers).await {
        Ok(views) => views.list,
        Err(refused) => return refused,
    };
    let (events, received) = mpsc::channel(BUFFER);
    let (refused, refusal) = watch::channel(false);
    let outbox = Outbox { events, refused: Arc::new(refused) };
    // The first status goes in before any relay starts: it is the first
    // event the client gets.
    let text = serde_json::to_string(&first).unwrap_or_else(|_| "{}".into());
    if !outbox.send("status", text).await {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let task_changed = Arc::new(Notify::new());
    for partition in 0..front.partitions {
        tokio::spawn(relay(front.clone(), partition, headers.clone(), outbox.clone(), task_changed.clone()));
    }
    tokio::spawn(statuses(front.clone(), headers, first, outbox, task_changed));
    let numbered = futures_util::stream::unfold((received, 1u64), |(mut received, id)| async move {
        let (kind, data) = received.recv().await?;
        let event = Event::default().event(kind).id(id.to_string()).data(data);
        Some((Ok::<Event, Infallible>(event), (received, id + 1)))
    });
    let mut stopping = front.stopping.clone();
    let mut refusal = refusal;
    let ended = async move {
        tokio::select! {
            _ = stopping.wait_for(|stop| *stop) => {}
            _ = refusal.wait_for(|refused| *refused) => {}
        }
    };
    Sse::new(numbered.take_until(ended)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// The group's list, sent whenever it differs from the last one sent.
async fn statuses(front: Front, headers: HeaderMap, mut last: WorkflowList, outbox: Outbox, changed: Arc<Notify>) {
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(STATUS_EVERY) => {}
            _ = outbox.closed() => return,
        }
        let views = match group_views::group_views(&front, &headers).await {
            Ok(views) => views,
            Err(refused) if is_refusal(refused.status()) => {
                let _ = outbox.refused.send(true);
                return;
            }
            // A task restoring answers 503: the next change makes it again.
            Err(_) => continue,
        };
        if views.list.workflows != last.workflows {
            let text = serde_json::to_string(&views.list).unwrap_or_else(|_| "{}".into());
            if !outbox.send("status", text).await {
                return;
            }
            last = views.list;
        }
    }
}

fn is_refusal(status: StatusCode) -> bool {
    matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
}

/// One task's stream, relayed until the client goes; opened again when it
/// ends, with a `resync` to the client after any time it could not be read.
async fn relay(front: Front, partition: u16, headers: HeaderMap, outbox: Outbox, status_changed: Arc<Notify>) {
    // Whether events of this task may have been missed since the stream
    // began: set by every failed open and every end.
    let mut gap = false;
    loop {
        if outbox.gone() {
            return;
        }
        match front.open_stream(partition, &headers, false).await {
            Ok(answer) if answer.status().is_success() => {
                if gap && !outbox.send("resync", r#"{"missed":null}"#.into()).await {
                    return;
                }
                let mut body = answer.bytes_stream();
                let mut pending: Vec<u8> = Vec::new();
                loop {
                    let chunk = tokio::select! {
                        chunk = body.next() => chunk,
                        _ = outbox.closed() => return,
                    };
                    let Some(Ok(chunk)) = chunk else { break };
                    pending.extend_from_slice(&chunk);
                    // Split on whole events before decoding: a character
                    // may be cut between two chunks.
                    while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                        let block: Vec<u8> = pending.drain(..end + 2).collect();
                        let (kind, data) = parse_event(&String::from_utf8_lossy(&block));
                        let sent = match kind.as_deref() {
                            Some("status") => {
                                status_changed.notify_one();
                                true
                            }
                            Some("alert") => outbox.send("alert", data).await,
                            Some("resync") => outbox.send("resync", data).await,
                            _ => true, // a keep-alive comment
                        };
                        if !sent {
                            return;
                        }
                    }
                }
            }
            Ok(answer) if is_refusal(answer.status()) => {
                let _ = outbox.refused.send(true);
                return;
            }
            // Not ready, not there yet, or gone: tried again.
            Ok(_) | Err(_) => {}
        }
        gap = true;
        tokio::select! {
            _ = tokio::time::sleep(REOPEN_AFTER) => {}
            _ = outbox.closed() => return,
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
