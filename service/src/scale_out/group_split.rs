//! The group's split-key check (docs/service.md, "Scale-out"): an item
//! whose events a producer put on two partitions (it does not key by
//! item) is in two tasks, often in two processes, and neither task can
//! see it alone. Each task lists the keys it took an event of without
//! holding their item before (`GET /api/v1/keys/recent`); this process
//! asks every other task which of them it holds (`POST
//! /api/v1/keys/held`). A key held elsewhere is a split key: counted, the
//! latest shown in the group's `/api/v1/status` (`split_keys`), warned
//! about in the log at most once a minute, and in `/metrics` as
//! `mon_group_split_key_events_total`.
//!
//! When: every [`CHECK_EVERY`] with `[auth]` off, and at each request for
//! the group's status (with the caller's token, which the tasks check).
//! Each process checks on its own, from where it last left each task, so
//! its count is what it found since it started.
//!
//! What it must not do: claim a key is whole. A task keeps its newest
//! 10,000 such keys; more between two checks are dropped unchecked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::front::Front;
use super::group_api::Question;
use crate::processor::{SplitKeyView, SplitKeysView};

/// How often a process without `[auth]` checks on its own.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(10);

/// A split key is warned about this often at most, as on one process.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What this process has found so far, and where it left each task.
#[derive(Default)]
pub(super) struct SplitCheck {
    /// Per partition, the number of the next key to ask its task for.
    from: Vec<u64>,
    events: u64,
    last: Option<SplitKeyView>,
    warned: Option<Instant>,
}

pub(super) type SharedSplitCheck = Arc<tokio::sync::Mutex<SplitCheck>>;

impl SplitCheck {
    fn view(&self) -> Option<SplitKeysView> {
        self.last.clone().map(|last| SplitKeysView { events: self.events, last })
    }

    pub(super) fn events(&self) -> u64 {
        self.events
    }
}

/// Runs a check with `caller`'s token; what the group has shown so far.
/// A task that does not answer is asked again next time, from where it was.
pub(super) async fn check(front: &Front, caller: &HeaderMap) -> Option<SplitKeysView> {
    // One check at a time: each reads on from where the last one left.
    let mut state = front.split.lock().await;
    state.from.resize(usize::from(front.partitions), 0);
    let found_before = state.events;
    for partition in 0..front.partitions {
        let Some(keys) = recent_keys(front, partition, &mut state, caller).await else { continue };
        if keys.is_empty() {
            continue;
        }
        let asked: Vec<Value> = keys.iter().map(|k| json!({ "workflow": k["workflow"], "key": k["key"] })).collect();
        let body = json!({ "keys": asked }).to_string();
        for other in (0..front.partitions).filter(|p| *p != partition) {
            let question = Question::post_json("/api/v1/keys/held", body.clone().into(), caller);
            let Ok(answer) = front.ask_ready(other, &question).await else { continue };
            let Some(held) = answer.json().filter(|_| answer.status.is_success()) else { continue };
            for item in held["keys"].as_array().into_iter().flatten() {
                let seen = keys.iter().filter(|k| k["workflow"] == item["workflow"] && k["key"] == item["key"]);
                for key in seen {
                    state.events += 1;
                    state.last = Some(SplitKeyView {
                        workflow: key["workflow"].as_str().unwrap_or_default().to_string(),
                        key: key["key"].as_str().unwrap_or_default().to_string(),
                        owner_partition: other,
                        seen_on_partition: partition,
                        at: mon_stdlib::time::format_rfc3339(key["at"].as_i64().unwrap_or_default()),
                    });
                }
            }
        }
    }
    if state.events > found_before && state.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
        state.warned = Some(Instant::now());
        if let Some(last) = &state.last {
            tracing::warn!(
                workflow = %last.workflow,
                key = %last.key,
                owner_partition = last.owner_partition,
                seen_on_partition = last.seen_on_partition,
                events_so_far = state.events,
                "an item's events come from two partitions, whose tasks each hold a part of it: its producer does \
                 not key messages by the item (docs/service.md, \"Keys and partitions\")"
            );
        }
    }
    state.view()
}

/// The keys `partition`'s task took events of without holding their item,
/// since this process last asked; none if it did not answer.
async fn recent_keys(front: &Front, partition: u16, state: &mut SplitCheck, caller: &HeaderMap) -> Option<Vec<Value>> {
    let from = &mut state.from[usize::from(partition)];
    for _ in 0..2 {
        let question = Question::get("/api/v1/keys/recent", vec![("from".into(), from.to_string())], caller);
        let answer = front.ask_ready(partition, &question).await.ok()?;
        let page = answer.json().filter(|_| answer.status.is_success())?;
        let next = page["next"].as_u64()?;
        if next < *from {
            // The task started again (moved, or restarted): it numbers
            // from 0 anew.
            *from = 0;
            continue;
        }
        *from = next;
        return Some(page["keys"].as_array().cloned().unwrap_or_default());
    }
    None
}

/// Checks every [`CHECK_EVERY`] until the process stops: with `[auth]`
/// off, no token is needed to ask the tasks.
pub(super) async fn keep_checking(front: Front) {
    let mut stopping = front.stopping.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        check(&front, &HeaderMap::new()).await;
    }
}
