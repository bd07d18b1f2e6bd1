//! `GET /api/v1/stream`: status and alert changes as server-sent events,
//! for a UI that would otherwise poll.
//!
//! Each client holds a receiver of the processing thread's bounded
//! broadcast channel (`views::Board`). The processor never waits for a
//! client: one that falls more than `views::STREAM_BUFFER` changes behind
//! loses them and gets a `resync` event, after which it should read
//! `/api/v1/workflows` and `/api/v1/alerts` again.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::alerts::alert_view;
use super::Api;
use crate::views::{Change, Changed, WorkflowList};

/// How often an idle stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Server-sent events: `status` (the workflow list, as
/// `GET /api/v1/workflows` gives it, at once and then whenever it changes,
/// at most about once a second), `alert` (`{"alerts": [...]}`: the alerts
/// opened, changed or resolved, as `GET /api/v1/alerts` shows them) and
/// `resync` (`{"missed": N}`: changes were dropped because this client
/// read too slowly; read the lists again). Each change has an `id` that
/// rises by one; a comment every 15 s keeps an idle stream open. A
/// reconnecting client starts from the current status (`Last-Event-ID` is
/// not replayed).
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "status",
    responses((status = 200, description = "An endless stream of server-sent events", body = String,
        content_type = "text/event-stream"))
)]
pub async fn stream(State(api): State<Api>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribed before the current list is read: a change made between
    // the two is sent twice rather than lost.
    let receiver = api.changes.subscribe();
    let current = api.views.read().map(|v| v.list.clone()).unwrap_or_default();
    let first = stream::once(async move { Ok(status_event(&current, None)) });
    let changes = stream::unfold(receiver, |mut receiver| async move {
        let event = next_event(&mut receiver).await?;
        Some((Ok(event), receiver))
    });
    // Why: graceful shutdown waits for every connection to end, and this
    // one would not by itself.
    let mut stopping = api.stopping.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    Sse::new(first.chain(changes).take_until(stopped)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The next change as an event; `None` once the service is stopping.
async fn next_event(receiver: &mut Receiver<Change>) -> Option<Event> {
    match receiver.recv().await {
        Ok(change) => Some(change_event(&change)),
        Err(RecvError::Lagged(missed)) => {
            Some(Event::default().event("resync").data(json!({ "missed": missed }).to_string()))
        }
        Err(RecvError::Closed) => None,
    }
}

fn change_event(change: &Change) -> Event {
    match &change.what {
        Changed::Status(list) => status_event(list, Some(change.id)),
        Changed::Alerts(alerts, event_clock) => {
            let now = event_clock.unwrap_or_else(crate::clock::wall_now);
            let alerts: Vec<_> = alerts.iter().map(|a| alert_view(a, now)).collect();
            let data = serde_json::to_string(&json!({ "alerts": alerts })).unwrap_or_else(|_| "{}".into());
            Event::default().event("alert").id(change.id.to_string()).data(data)
        }
    }
}

fn status_event(list: &WorkflowList, id: Option<u64>) -> Event {
    let data = serde_json::to_string(list).unwrap_or_else(|_| "{}".into());
    let event = Event::default().event("status").data(data);
    match id {
        Some(id) => event.id(id.to_string()),
        None => event,
    }
}
