//! The group's split-key check (docs/service.md, "Keys and partitions"):
//! an item whose events a producer put on two partitions (it does not key
//! by item) is in two tasks, often in two processes, and neither task can
//! see it alone. Each task keeps the keys of its own partition's events
//! whose item it did not hold before the event (`GET
//! /api/v1/keys/recent`); this process reads its own tasks' and asks
//! every other task which of them it holds (`POST /api/v1/keys/held`).
//!
//! A key held elsewhere is one split-key event: of an item the task holds
//! none of, always; of an item the task started, only when the holder's
//! partition is the lower, so that two tasks that both started it count
//! it once (each holds a part). Counted in
//! `mon_group_split_key_events_total`, the latest shown in the group's
//! `/api/v1/status` (`split_keys`), warned about at most once a minute.
//! Each process checks its own tasks, so the group's count is the sum
//! over its processes (what Prometheus sums), and a process's status
//! shows what its own tasks saw.
//!
//! When: every [`CHECK_EVERY`] with `[auth]` off, and at each request of
//! the group's status (with the caller's token, which the tasks check).
//!
//! What it must not do: make a status or a scrape wait for a check (one
//! under way is not waited for: what is known is answered), or move past
//! keys that not every other task was asked about.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::front::{Front, TASK_TIMEOUT};
use super::group_api::Question;
use crate::processor::{SplitKeyView, SplitKeysView};

/// How often a process without `[auth]` checks on its own.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(10);

/// A split key is warned about this often at most, as on one process.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The check's state: where it left each task (behind an async lock, one
/// check at a time), and what it found (read at once by status and
/// metrics).
#[derive(Default)]
pub(super) struct SplitCheck {
    /// Per partition: the task's instance and the number of the next key.
    cursors: tokio::sync::Mutex<HashMap<u16, (String, u64)>>,
    found: Mutex<Found>,
}

#[derive(Default)]
struct Found {
    events: u64,
    last: Option<SplitKeyView>,
    /// Keys a task dropped before they were asked about.
    unchecked: u64,
    warned: Option<Instant>,
}

impl SplitCheck {
    pub(super) fn view(&self) -> Option<SplitKeysView> {
        let found = self.found.lock().ok()?;
        found.last.clone().map(|last| SplitKeysView { events: found.events, last })
    }

    /// Split-key events found, and keys dropped by a task unchecked.
    pub(super) fn counts(&self) -> (u64, u64) {
        self.found.lock().map_or((0, 0), |found| (found.events, found.unchecked))
    }
}

/// One key of a task's page: did the event start the item there, when.
struct Seen {
    started: bool,
    at: i64,
}

/// Checks this process's tasks with `caller`'s token, unless a check is
/// under way; what has been found so far. Run apart from the caller, so
/// that a client that goes away does not cut a check in half.
pub(super) async fn check(front: &Front, caller: &HeaderMap) -> Option<SplitKeysView> {
    let (front_for_check, caller) = (front.clone(), caller.clone());
    let _ = tokio::spawn(async move { check_now(&front_for_check, &caller).await }).await;
    front.split.view()
}

async fn check_now(front: &Front, caller: &HeaderMap) {
    let Ok(mut cursors) = front.split.cursors.try_lock() else { return };
    let own: Vec<u16> = front.slots().into_iter().map(|(p, _)| p).collect();
    for partition in own {
        let cursor = cursors.entry(partition).or_insert_with(|| (String::new(), 0));
        let Some((keys, next, dropped)) = recent_keys(front, partition, cursor, caller).await else { continue };
        if !keys.is_empty() && !count_held_elsewhere(front, partition, &keys, caller).await {
            // Asked again next time, from where it was.
            continue;
        }
        cursor.1 = next;
        if dropped > 0 {
            tracing::warn!(partition, dropped, "split-key check: a task dropped keys before they were asked about");
            if let Ok(mut found) = front.split.found.lock() {
                found.unchecked += dropped;
            }
        }
    }
}

/// `partition`'s task's keys from the cursor on (distinct, by workflow
/// and key), the number to ask from next, and how many it dropped; none
/// if it did not answer.
async fn recent_keys(
    front: &Front,
    partition: u16,
    cursor: &mut (String, u64),
    caller: &HeaderMap,
) -> Option<(HashMap<(String, String), Seen>, u64, u64)> {
    for _ in 0..2 {
        let question = Question::get("/api/v1/keys/recent", vec![("from".into(), cursor.1.to_string())], caller);
        let answer = front.ask_task(partition, &question, true).await.ok()?;
        let page = answer.json().filter(|_| answer.status.is_success())?;
        let instance = page["instance"].as_str()?.to_string();
        if instance != cursor.0 {
            // The task started again (moved here, or restarted): its
            // numbers start again.
            *cursor = (instance, 0);
            continue;
        }
        let mut keys = HashMap::new();
        for key in page["keys"].as_array().into_iter().flatten() {
            let (Some(workflow), Some(name)) = (key["workflow"].as_str(), key["key"].as_str()) else { continue };
            let seen = Seen { started: key["started"] == true, at: key["at"].as_i64().unwrap_or_default() };
            keys.insert((workflow.to_string(), name.to_string()), seen);
        }
        return Some((keys, page["next"].as_u64()?, page["dropped"].as_u64().unwrap_or(0)));
    }
    None
}

/// Asks every other task which of `keys` it holds, and counts the split
/// keys; false if one of them did not answer (nothing is counted then).
async fn count_held_elsewhere(
    front: &Front,
    partition: u16,
    keys: &HashMap<(String, String), Seen>,
    caller: &HeaderMap,
) -> bool {
    let asked: Vec<Value> = keys.keys().map(|(workflow, key)| json!({ "workflow": workflow, "key": key })).collect();
    let body = json!({ "keys": asked }).to_string();
    let question = Question::post_json("/api/v1/keys/held", body.into(), caller).with_timeout(TASK_TIMEOUT);
    let others: Vec<u16> = (0..front.partitions).filter(|p| *p != partition).collect();
    let asks = others.iter().map(|other| front.ask_ready(*other, &question));
    let answers = futures_util::future::join_all(asks).await;
    // The lowest holder first: the one a split key is counted against.
    let mut holders: HashMap<&(String, String), u16> = HashMap::new();
    for (other, answer) in others.iter().zip(answers) {
        let Some(held) = answer.ok().filter(|a| a.status.is_success()).and_then(|a| a.json()) else { return false };
        for item in held["keys"].as_array().into_iter().flatten() {
            let (Some(workflow), Some(key)) = (item["workflow"].as_str(), item["key"].as_str()) else { continue };
            if let Some((asked, _)) = keys.get_key_value(&(workflow.to_string(), key.to_string())) {
                holders.entry(asked).and_modify(|p| *p = (*p).min(*other)).or_insert(*other);
            }
        }
    }
    let Ok(mut found) = front.split.found.lock() else { return true };
    let before = found.events;
    for (asked, holder) in holders {
        let seen = &keys[asked];
        // Both started it: counted once, by the higher partition's check.
        if seen.started && holder > partition {
            continue;
        }
        found.events += 1;
        found.last = Some(SplitKeyView {
            workflow: asked.0.clone(),
            key: asked.1.clone(),
            owner_partition: holder,
            seen_on_partition: partition,
            at: mon_stdlib::time::format_rfc3339(seen.at),
        });
    }
    if found.events > before && found.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
        found.warned = Some(Instant::now());
        if let Some(last) = &found.last {
            tracing::warn!(
                workflow = %last.workflow,
                key = %last.key,
                owner_partition = last.owner_partition,
                seen_on_partition = last.seen_on_partition,
                events_so_far = found.events,
                "an item's events come from two partitions, whose tasks each hold a part of it: its producer does \
                 not key messages by the item (docs/service.md, \"Keys and partitions\")"
            );
        }
    }
    true
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
        check_now(&front, &HeaderMap::new()).await;
    }
}

pub(super) type SharedSplitCheck = Arc<SplitCheck>;
