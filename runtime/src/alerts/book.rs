//! The book: alerts by id, their groups, and the book's own timers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mon_compiler::ir::{self, Program, RecordKind, Severity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::command::{Action, Command, CommandError};
use super::group::{Group, GroupId};
use super::notification::{AlertState, Notification};
use crate::engine::{bit, ClearCause, Clearance, Engine};
use crate::record::Record;

/// How the book groups notifications (Alertmanager's defaults, shortened
/// for a monitor whose alerts are already deliberate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BookConfig {
    /// How long a new group gathers alerts before its first message, ms.
    pub group_wait_ms: u64,
    /// The shortest time between two messages of a group about changes, ms.
    pub group_interval_ms: u64,
}

impl Default for BookConfig {
    fn default() -> Self {
        BookConfig { group_wait_ms: 30_000, group_interval_ms: 300_000 }
    }
}

/// How long a group whose message falls in a maintenance window waits
/// before it looks again.
pub(super) const RECHECK_MS: i64 = 60_000;

/// One alert: an item's step that is missing, at risk, late, early, out of
/// order, a duplicate or unexpected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The id of the record that opened it.
    pub id: String,
    pub workflow: String,
    pub step: String,
    pub kind: RecordKind,
    pub key: BTreeMap<String, String>,
    /// The workflow's `group by` field name to value.
    pub group: BTreeMap<String, String>,
    pub severity: Severity,
    pub state: AlertState,
    /// When its record was made (ms).
    pub opened_at: i64,
    /// The deadline that was missed or is at risk (ms).
    pub deadline: Option<i64>,
    /// Later records of the same (workflow, step, kind, key) while it was active.
    pub repeats: u32,
    pub runbook: Option<String>,
    /// The hash of the rule version whose engine made it.
    pub program_hash: String,
    /// What the engine knew of the item when the alert opened: its stage,
    /// the steps it took and when, and the fields later steps read (`pii`
    /// fields never reach the engine in clear).
    pub excerpt: serde_json::Value,
    /// With state `suppressed`: until when (ms); `None` until resolved.
    pub suppressed_until: Option<i64>,
    /// With state `suppressed`: the state it goes back to (open or
    /// acknowledged) when the suppression ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_from: Option<AlertState>,
    pub resolved_at: Option<i64>,
    /// Why it was resolved, in words.
    pub resolution: Option<String>,
    /// What happened to it, oldest first: opened, notified, acknowledged...
    pub history: Vec<AlertEntry>,
    workflow_id: u32,
    step_id: u32,
    /// The instance key string (as the engine joins it).
    item: String,
    /// The groups it belongs to: its routes, then escalations.
    groups: Vec<GroupId>,
}

/// One line of an alert's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEntry {
    pub at: i64,
    /// `opened`, `notified`, `acknowledged`, `unacknowledged`, `suppressed`,
    /// `unsuppressed`, `escalated`, `resolved`.
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `notified` and `escalated`: the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// For `notified`: the notification's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
}

impl AlertEntry {
    pub(super) fn new(at: i64, what: &str) -> Self {
        AlertEntry { at, what: what.to_string(), by: None, reason: None, channel: None, notification: None }
    }
}

impl Alert {
    pub fn is_active(&self) -> bool {
        matches!(self.state, AlertState::Open | AlertState::Acknowledged)
    }
}

/// What the book's timers do when they come due. At one instant they fire
/// in this order: state changes first, messages last, so a message says
/// what the instant left (an alert back from a suppression at 06:00 is in
/// the group's message at 06:00).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) enum Timer {
    /// An alert's escalation number `n` (index into its step's `escalate`).
    Escalate(String, u32),
    /// A suppression ends.
    Unsuppress(String),
    /// An alert about something that happened once is over.
    Expire(String),
    /// A resolved alert is dropped from the book.
    Forget(String),
    /// A group's next message (if the group still wants it then).
    Flush(GroupId),
}

/// Everything the book knows; serialisable for the service's snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BookState {
    pub(super) alerts: BTreeMap<String, Alert>,
    pub(super) groups: Vec<Group>,
    pub(super) timers: BTreeSet<(i64, Timer)>,
    /// The latest instant the book has seen.
    pub clock: i64,
    /// The rules whose ids (workflow, step, channel) the state uses.
    #[serde(default)]
    pub(super) program_hash: String,
    /// The input partition whose book this is, when it is one of several
    /// (state per partition, a scale-out task): its groups' keys carry
    /// it, and so their notifications' ids, so that two partitions'
    /// groups are never one to a receiver (one PagerDuty incident that
    /// either would resolve, one `Idempotency-Key` for two messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) partition: Option<u16>,
}

pub struct AlertBook<'p> {
    pub(super) program: &'p Program,
    pub(super) config: BookConfig,
    pub(super) program_hash: String,
    pub(super) state: BookState,
    /// Active alerts by item: (workflow, key string) → alert ids. Rebuilt
    /// from the alerts on restore.
    active: HashMap<(u32, String), Vec<String>>,
    /// Groups by what identifies them. Rebuilt on restore.
    pub(super) group_index: HashMap<(u32, u32, u32, RecordKind, Vec<String>), GroupId>,
    /// `missing` alerts resolved by a step taken in the current call, so
    /// the `late` record of that step is told in their resolution.
    resolved_by_step: Vec<(u32, String, u32, i64, String)>,
    /// The first timer's instant (`i64::MAX`: none), kept beside the set.
    earliest: i64,
}

impl<'p> AlertBook<'p> {
    pub fn new(program: &'p Program, config: BookConfig) -> Self {
        AlertBook::restore(program, config, BookState::default())
    }

    /// Makes this the book of one input partition of several (see
    /// [`BookState::partition`]): call it before its first record.
    pub fn of_partition(mut self, share: Option<crate::engine::Share>) -> Self {
        if let Some(share) = share {
            self.state.partition = Some(share.partition);
        }
        self
    }

    pub fn restore(program: &'p Program, config: BookConfig, mut state: BookState) -> Self {
        let program_hash = program.hash();
        let rules_changed = !state.program_hash.is_empty() && state.program_hash != program_hash;
        state.program_hash = program_hash.clone();
        let mut active: HashMap<(u32, String), Vec<String>> = HashMap::new();
        for alert in state.alerts.values().filter(|a| a.state != AlertState::Resolved) {
            active.entry((alert.workflow_id, alert.item.clone())).or_default().push(alert.id.clone());
        }
        let group_index = state.groups.iter().enumerate().map(|(i, g)| (g.identity(), i as GroupId)).collect();
        let mut book = AlertBook {
            program,
            config,
            program_hash,
            state,
            active,
            group_index,
            resolved_by_step: Vec::new(),
            earliest: 0,
        };
        book.earliest = book.state.timers.first().map_or(i64::MAX, |(at, _)| *at);
        if rules_changed {
            book.rebase();
        }
        book
    }

    /// Moves the book to another rules version, when the engine beside it
    /// was activated under them (`Engine::activate`). First the items the
    /// activation superseded resolve their alerts, under the rules that
    /// made them (`clearances` name the old program's workflows); then,
    /// if the rules differ, the alerts are matched to the new rules by name
    /// as for a book restored under changed rules (`rebase`). Activating
    /// the same rules changes nothing.
    pub fn switch_program(
        &mut self,
        program: &'p Program,
        clearances: &[Clearance],
        now: i64,
        out: &mut Vec<Notification>,
    ) {
        for clearance in clearances {
            self.fire_before(clearance.at.min(now), out);
            self.clear(clearance);
        }
        self.advance(now, out);
        self.program = program;
        let program_hash = program.hash();
        if program_hash != self.program_hash {
            self.program_hash = program_hash.clone();
            self.state.program_hash = program_hash;
            self.rebase();
        }
    }

    /// The state was made by other rules: workflow, step and channel ids
    /// may mean something else now. Alerts are matched to the new rules by
    /// name (those whose step is gone resolve), groups start again, and
    /// the active alerts join them as new: their receivers hear of them
    /// again, under notification ids the new rules' hash makes distinct.
    fn rebase(&mut self) {
        let at = self.state.clock;
        self.state.groups.clear();
        self.state.timers.retain(|(_, timer)| !matches!(timer, Timer::Flush(_)));
        self.earliest = self.state.timers.first().map_or(i64::MAX, |(at, _)| *at);
        self.group_index.clear();
        let ids: Vec<String> = self.state.alerts.keys().cloned().collect();
        for id in ids {
            let Some(alert) = self.state.alerts.get_mut(&id) else { continue };
            alert.groups.clear();
            let found = self
                .program
                .workflow(&alert.workflow)
                .and_then(|w| w.steps.iter().find(|s| s.name == alert.step).map(|s| (w.id, s.id)));
            match found {
                Some((workflow, step)) => {
                    alert.workflow_id = workflow;
                    alert.step_id = step;
                }
                None if alert.state != AlertState::Resolved => {
                    self.resolve(&id, at, "its rule is gone from the active rules".into(), None);
                    continue;
                }
                None => continue,
            }
            let state = alert.state;
            if matches!(state, AlertState::Open | AlertState::Acknowledged) {
                self.activate(&id, at, state);
            }
        }
        self.active.clear();
        for alert in self.state.alerts.values().filter(|a| a.state != AlertState::Resolved) {
            self.active.entry((alert.workflow_id, alert.item.clone())).or_default().push(alert.id.clone());
        }
    }

    pub fn state(&self) -> &BookState {
        &self.state
    }

    pub fn into_state(self) -> BookState {
        self.state
    }

    pub fn config(&self) -> BookConfig {
        self.config
    }

    /// Every alert the book holds (active, and resolved ones until their
    /// workflow's `retain` ends), by id.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.state.alerts.values()
    }

    pub fn alert(&self, id: &str) -> Option<&Alert> {
        self.state.alerts.get(id)
    }

    /// The earliest instant at which [`advance`](Self::advance) has work.
    pub fn next_due(&self) -> Option<i64> {
        self.state.timers.first().map(|(at, _)| *at)
    }

    /// Takes what one engine call made at clock `now`: its records (in the
    /// order made, so by instant) and the engine's clearances, which this
    /// drains. The book's own timers due before each one fire first, but
    /// none after `now` (on the wall clock an event's time may be ahead);
    /// then the book's clock moves to `now`.
    pub fn observe(&mut self, records: &[Record], engine: &mut Engine, now: i64, out: &mut Vec<Notification>) {
        if records.is_empty() && engine.clearances.is_empty() {
            self.advance(now, out);
            return;
        }
        let clearances = std::mem::take(&mut engine.clearances);
        let (mut r, mut c) = (records.iter().peekable(), clearances.into_iter().peekable());
        loop {
            // At one instant, clearances before records: the `late` record
            // of a step looks for the `missing` alert that step resolved.
            let take_clearance = match (r.peek(), c.peek()) {
                (Some(record), Some(clearance)) => clearance.at <= record.at,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => break,
            };
            if take_clearance {
                if let Some(clearance) = c.next() {
                    self.fire_before(clearance.at.min(now), out);
                    self.clear(&clearance);
                }
            } else if let Some(record) = r.next() {
                self.fire_before(record.at.min(now), out);
                self.record(record, engine);
            }
        }
        self.resolved_by_step.clear();
        self.advance(now, out);
    }

    /// Moves the clock to `now` and fires every timer due at or before it.
    fn advance(&mut self, now: i64, out: &mut Vec<Notification>) {
        self.fire_before(now.saturating_add(1), out);
        self.state.clock = self.state.clock.max(now);
    }

    fn fire_before(&mut self, instant: i64, out: &mut Vec<Notification>) {
        // Called for every event: the common case (nothing due) must not
        // walk the tree.
        if self.earliest >= instant {
            return;
        }
        while let Some((due, _)) = self.state.timers.first() {
            if *due >= instant {
                break;
            }
            let Some((due, timer)) = self.state.timers.pop_first() else { break };
            self.state.clock = self.state.clock.max(due);
            self.fire(due, timer, out);
        }
        self.earliest = self.state.timers.first().map_or(i64::MAX, |(at, _)| *at);
    }

    fn fire(&mut self, due: i64, timer: Timer, out: &mut Vec<Notification>) {
        match timer {
            Timer::Flush(group) => self.flush(group, due, out),
            Timer::Escalate(id, n) => self.escalate(&id, n, due),
            Timer::Unsuppress(id) => {
                let Some(alert) = self.state.alerts.get_mut(&id) else { return };
                if alert.state == AlertState::Suppressed && alert.suppressed_until == Some(due) {
                    alert.suppressed_until = None;
                    let back_to = alert.suppressed_from.take().unwrap_or(AlertState::Open);
                    alert.history.push(AlertEntry::new(due, "unsuppressed"));
                    self.activate(&id, due, back_to);
                    self.arm_escalations(&id, due);
                }
            }
            Timer::Expire(id) => {
                if self.state.alerts.get(&id).is_some_and(|a| a.state != AlertState::Resolved) {
                    self.resolve(&id, due, "expired: nothing to wait for, and retain has passed".into(), None);
                }
            }
            Timer::Forget(id) => {
                if self.state.alerts.get(&id).is_some_and(|a| a.state == AlertState::Resolved) {
                    self.state.alerts.remove(&id);
                }
            }
        }
    }

    pub(super) fn schedule(&mut self, at: i64, timer: Timer) {
        self.earliest = self.earliest.min(at);
        self.state.timers.insert((at, timer));
    }

    // ------------------------------------------------------------ records

    fn record(&mut self, record: &Record, engine: &Engine) {
        let (Some(severity), Some(workflow_name), Some(step_name), Some(key)) =
            (record.severity, &record.workflow, &record.step, &record.key)
        else {
            return; // not an alert: a flag, or a rejection
        };
        let Some(workflow) = self.program.workflow(workflow_name) else { return };
        let Some(step) = workflow.steps.iter().find(|s| &s.name == step_name) else { return };
        let item = item_key(workflow, key);
        let at = record.at;

        if record.kind == RecordKind::Late {
            if let Some(i) = self
                .resolved_by_step
                .iter()
                .position(|(w, k, s, when, _)| *w == workflow.id && *k == item && *s == step.id && *when == at)
            {
                let id = self.resolved_by_step[i].4.clone();
                if let Some(alert) = self.state.alerts.get_mut(&id) {
                    let late_by = record.delay_ms.map(human_duration).unwrap_or_default();
                    alert.resolution = Some(format!("{step_name} happened late, by {late_by}"));
                    if let Some(entry) = alert.history.last_mut() {
                        entry.reason = alert.resolution.clone();
                    }
                }
                return;
            }
        }
        if let Some(id) = self.find_active(workflow.id, &item, step.id, record.kind) {
            if let Some(alert) = self.state.alerts.get_mut(&id) {
                alert.repeats += 1;
            }
            return;
        }
        if record.kind == RecordKind::Missing {
            if let Some(id) = self.find_active(workflow.id, &item, step.id, RecordKind::AtRisk) {
                self.resolve(&id, at, format!("superseded: {step_name} is now missing"), None);
            }
        }

        let mut alert = Alert {
            id: record.id.clone(),
            workflow: workflow.name.clone(),
            step: step.name.clone(),
            kind: record.kind,
            key: key.clone(),
            group: group_of(engine, workflow, &item),
            severity,
            state: AlertState::Open,
            opened_at: at,
            deadline: record.deadline,
            repeats: 0,
            runbook: step.alerting.runbook.clone().or_else(|| workflow.alerting.runbook.clone()),
            program_hash: self.program_hash.clone(),
            excerpt: excerpt(self.program, engine, workflow, &item),
            suppressed_until: None,
            suppressed_from: None,
            resolved_at: None,
            resolution: None,
            history: vec![AlertEntry::new(at, "opened")],
            workflow_id: workflow.id,
            step_id: step.id,
            item: item.clone(),
            groups: Vec::new(),
        };
        let id = alert.id.clone();
        let window_end = if record.suppressed { maintenance_end(self.program, workflow.id, at) } else { None };
        if record.suppressed {
            alert.state = AlertState::Suppressed;
            alert.suppressed_until = window_end;
            alert.suppressed_from = Some(AlertState::Open);
            let mut entry = AlertEntry::new(at, "suppressed");
            entry.reason = Some(maintenance_name(self.program, workflow, at));
            alert.history.push(entry);
        }
        let one_shot = !matches!(record.kind, RecordKind::Missing | RecordKind::AtRisk);
        let suppressed = record.suppressed;
        self.state.alerts.insert(id.clone(), alert);
        self.active.entry((workflow.id, item)).or_default().push(id.clone());
        if one_shot {
            self.schedule(after(at, workflow.retain_ms), Timer::Expire(id.clone()));
        }
        if let Some(end) = window_end {
            // Told if still active when the window ends, as a silence ends.
            self.schedule(end, Timer::Unsuppress(id.clone()));
        }
        if !suppressed {
            self.activate(&id, at, AlertState::Open);
            self.arm_escalations(&id, at);
        }
    }

    /// Schedules the alert's escalations, counted from `since` (when it
    /// opened, or came back from a suppression); one already due fires now.
    fn arm_escalations(&mut self, id: &str, since: i64) {
        let Some(alert) = self.state.alerts.get(id) else { return };
        let Some(step) =
            self.program.workflows.get(alert.workflow_id as usize).and_then(|w| w.steps.get(alert.step_id as usize))
        else {
            return;
        };
        for (n, escalation) in step.alerting.escalate.iter().enumerate() {
            self.schedule(after(since, escalation.after_ms), Timer::Escalate(id.to_string(), n as u32));
        }
    }

    /// After an unacknowledgement: the escalations whose time passed while
    /// the alert was acknowledged happen now.
    fn escalate_overdue(&mut self, id: &str, now: i64) {
        let Some(alert) = self.state.alerts.get(id) else { return };
        let opened_at = alert.opened_at;
        let Some(step) =
            self.program.workflows.get(alert.workflow_id as usize).and_then(|w| w.steps.get(alert.step_id as usize))
        else {
            return;
        };
        let overdue: Vec<u32> = (0..step.alerting.escalate.len() as u32)
            .filter(|n| step.alerting.escalate.get(*n as usize).is_some_and(|e| after(opened_at, e.after_ms) <= now))
            .collect();
        for n in overdue {
            self.escalate(id, n, now);
        }
    }

    /// The active alert of an item's step and kind, if any.
    fn find_active(&self, workflow: u32, item: &str, step: u32, kind: RecordKind) -> Option<String> {
        let ids = self.active.get(&(workflow, item.to_string()))?;
        ids.iter().find(|id| self.state.alerts.get(*id).is_some_and(|a| a.step_id == step && a.kind == kind)).cloned()
    }

    fn clear(&mut self, clearance: &Clearance) {
        let Some(workflow) = self.program.workflows.get(clearance.workflow as usize) else { return };
        let Some(ids) = self.active.get(&(clearance.workflow, clearance.key.clone())).cloned() else { return };
        for id in ids {
            let Some(alert) = self.state.alerts.get(&id) else { continue };
            let (step, kind) = (alert.step_id, alert.kind);
            let condition = matches!(kind, RecordKind::Missing | RecordKind::AtRisk);
            let why = match clearance.cause {
                ClearCause::Taken(taken) if condition && clearance.steps & bit(step) != 0 => {
                    let taken_name = workflow.steps.get(taken as usize).map_or("", |s| s.name.as_str());
                    if taken == step {
                        format!("{taken_name} happened")
                    } else {
                        format!("no longer awaited: {taken_name} happened instead")
                    }
                }
                ClearCause::Taken(_) => continue,
                ClearCause::Closed => "the item closed".to_string(),
                ClearCause::Forgotten => "the item was forgotten after retain".to_string(),
                ClearCause::Superseded => "superseded: new rules have no place for the item".to_string(),
            };
            self.resolve(&id, clearance.at, why, None);
            if kind == RecordKind::Missing && matches!(clearance.cause, ClearCause::Taken(_) | ClearCause::Closed) {
                self.resolved_by_step.push((clearance.workflow, clearance.key.clone(), step, clearance.at, id));
            }
        }
    }

    // ------------------------------------------------------------ states

    /// Puts an alert in `state` (open or acknowledged) and into its groups:
    /// its routes, filtered by severity.
    fn activate(&mut self, id: &str, at: i64, state: AlertState) {
        let Some(alert) = self.state.alerts.get_mut(id) else { return };
        alert.state = state;
        let (workflow_id, step_id, kind, severity) = (alert.workflow_id, alert.step_id, alert.kind, alert.severity);
        let group_values = group_values(self.program, alert);
        let Some(step) = self.program.workflows.get(workflow_id as usize).and_then(|w| w.steps.get(step_id as usize))
        else {
            return;
        };
        let channels: Vec<u32> = step
            .alerting
            .notify
            .iter()
            .filter(|n| n.min_severity.is_none_or(|min| severity >= min))
            .map(|n| n.channel)
            .collect();
        for channel in channels {
            let group = self.group_for(channel, workflow_id, step_id, kind, &group_values, id);
            self.join(group, id, at, false);
        }
    }

    /// Takes an alert out of its groups (resolved or suppressed).
    fn deactivate(&mut self, id: &str, at: i64, resolved: bool) {
        let Some(alert) = self.state.alerts.get_mut(id) else { return };
        let groups = std::mem::take(&mut alert.groups);
        for group in groups {
            self.leave(group, id, at, resolved);
        }
    }

    pub(super) fn resolve(&mut self, id: &str, at: i64, why: String, by: Option<&str>) {
        self.deactivate(id, at, true);
        let Some(alert) = self.state.alerts.get_mut(id) else { return };
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(at);
        alert.suppressed_until = None;
        alert.suppressed_from = None;
        alert.resolution = Some(why.clone());
        let mut entry = AlertEntry::new(at, "resolved");
        entry.reason = Some(why);
        entry.by = by.map(str::to_string);
        alert.history.push(entry);
        let key = (alert.workflow_id, alert.item.clone());
        let retain = self.program.workflows.get(alert.workflow_id as usize).map_or(0, |w| w.retain_ms);
        if let Some(ids) = self.active.get_mut(&key) {
            ids.retain(|a| a != id);
            if ids.is_empty() {
                self.active.remove(&key);
            }
        }
        self.schedule(after(at, retain), Timer::Forget(id.to_string()));
    }

    fn escalate(&mut self, id: &str, n: u32, due: i64) {
        let Some(alert) = self.state.alerts.get(id) else { return };
        if alert.state != AlertState::Open {
            return; // acknowledged, suppressed or resolved in time
        }
        let (workflow_id, step_id, kind) = (alert.workflow_id, alert.step_id, alert.kind);
        let group_values = group_values(self.program, alert);
        let Some(escalation) = self
            .program
            .workflows
            .get(workflow_id as usize)
            .and_then(|w| w.steps.get(step_id as usize))
            .and_then(|s| s.alerting.escalate.get(n as usize))
        else {
            return;
        };
        let channel = escalation.channel;
        let mut entry = AlertEntry::new(due, "escalated");
        entry.channel = self.program.channels.get(channel as usize).map(|c| c.name.clone());
        if let Some(alert) = self.state.alerts.get_mut(id) {
            alert.history.push(entry);
        }
        let group = self.group_for(channel, workflow_id, step_id, kind, &group_values, id);
        self.join(group, id, due, true);
    }

    // ------------------------------------------------------------ commands

    /// Applies a person's command; the alert as it is afterwards.
    pub fn command(&mut self, command: &Command, out: &mut Vec<Notification>) -> Result<&Alert, CommandError> {
        self.fire_before(command.at, out);
        let at = command.at.max(self.state.clock);
        self.state.clock = at;
        let id = command.alert.as_str();
        let state = self.state.alerts.get(id).ok_or_else(|| CommandError::NotFound(id.to_string()))?.state;
        let conflict =
            |what: &str| Err(CommandError::Conflict(format!("alert {id} is {}: cannot {what} it", state.name())));
        let mut entry = AlertEntry::new(at, "");
        entry.by = Some(command.by.clone());
        entry.reason = command.reason.clone();
        match command.action {
            Action::Ack => {
                if state != AlertState::Open {
                    return conflict("acknowledge");
                }
                entry.what = "acknowledged".into();
                self.set_acknowledged(id, at, true, &command.by);
            }
            Action::Unack => {
                if state != AlertState::Acknowledged {
                    return conflict("unacknowledge");
                }
                entry.what = "unacknowledged".into();
                self.set_acknowledged(id, at, false, &command.by);
                self.escalate_overdue(id, at);
            }
            Action::Suppress { until } => {
                if !matches!(state, AlertState::Open | AlertState::Acknowledged | AlertState::Suppressed) {
                    return conflict("suppress");
                }
                if until.is_some_and(|u| u <= at) {
                    return Err(CommandError::Conflict(format!(
                        "`until` must be after {}, when the command was received",
                        mon_stdlib::time::format_rfc3339(at)
                    )));
                }
                entry.what = "suppressed".into();
                self.deactivate(id, at, false);
                if let Some(alert) = self.state.alerts.get_mut(id) {
                    if alert.state != AlertState::Suppressed {
                        alert.suppressed_from = Some(alert.state);
                    }
                    alert.state = AlertState::Suppressed;
                    alert.suppressed_until = until;
                }
                if let Some(until) = until {
                    self.schedule(until, Timer::Unsuppress(id.to_string()));
                }
            }
            Action::Resolve => {
                if state == AlertState::Resolved {
                    return conflict("resolve");
                }
                let why = match &command.reason {
                    Some(reason) => format!("resolved by {}: {reason}", command.by),
                    None => format!("resolved by {}", command.by),
                };
                self.resolve(id, at, why, Some(&command.by));
            }
        }
        if command.action != Action::Resolve {
            if let Some(alert) = self.state.alerts.get_mut(id) {
                alert.history.push(entry);
            }
        }
        self.state.alerts.get(id).ok_or_else(|| CommandError::NotFound(id.to_string()))
    }

    fn set_acknowledged(&mut self, id: &str, at: i64, acknowledged: bool, by: &str) {
        let Some(alert) = self.state.alerts.get_mut(id) else { return };
        alert.state = if acknowledged { AlertState::Acknowledged } else { AlertState::Open };
        for group in alert.groups.clone() {
            self.acknowledgement_changed(group, at, acknowledged.then_some(by));
        }
    }

    /// A stable id derived from parts: for groups and notifications.
    pub(super) fn digest(parts: &[&str]) -> String {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
    }

    pub(super) fn alert_mut(&mut self, id: &str) -> Option<&mut Alert> {
        self.state.alerts.get_mut(id)
    }

    pub(super) fn push_group(&mut self, alert: &str, group: GroupId) {
        if let Some(a) = self.state.alerts.get_mut(alert) {
            if !a.groups.contains(&group) {
                a.groups.push(group);
            }
        }
    }
}

/// An alert's group-by values in the workflow's `group by` order (the
/// alert's map is sorted by name).
fn group_values(program: &Program, alert: &Alert) -> Vec<String> {
    let Some(workflow) = program.workflows.get(alert.workflow_id as usize) else { return Vec::new() };
    workflow.group_by.iter().map(|f| alert.group.get(&f.name).cloned().unwrap_or_default()).collect()
}

/// `instant + ms`, saturating.
fn after(instant: i64, ms: u64) -> i64 {
    instant.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The engine's key string of a record's key object (the inverse of
/// `engine::key_object`).
fn item_key(workflow: &ir::Workflow, key: &BTreeMap<String, String>) -> String {
    if workflow.schedule.is_some() {
        return key.get("date").cloned().unwrap_or_default();
    }
    let values: Vec<&str> = workflow.key.iter().map(|k| key.get(&k.name).map_or("", String::as_str)).collect();
    values.join("\u{1f}")
}

fn group_of(engine: &Engine, workflow: &ir::Workflow, item: &str) -> BTreeMap<String, String> {
    let Some(instance) = engine.instance(workflow.id, item) else { return BTreeMap::new() };
    let values = engine.state.group(instance.group);
    workflow.group_by.iter().map(|g| g.name.clone()).zip(values.iter().cloned()).collect()
}

fn excerpt(program: &Program, engine: &Engine, workflow: &ir::Workflow, item: &str) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let Some(instance) = engine.instance(workflow.id, item) else { return Value::Null };
    let stage = instance.stage.and_then(|s| workflow.steps.get(s as usize)).map(|s| s.name.clone());
    let mut steps = Map::new();
    for step in &workflow.steps {
        if let Some(time) = instance.time(step.id).filter(|_| instance.was_taken(step.id)) {
            steps.insert(step.name.clone(), Value::String(mon_stdlib::time::format_rfc3339(time)));
        }
    }
    let mut fields = Map::new();
    for (step, slot, value) in instance.kept_fields() {
        let Some(event) = workflow.steps.get(*step as usize).and_then(|s| program.events.get(s.event as usize)) else {
            continue;
        };
        if let Some(field) = event.fields.get(*slot as usize).filter(|f| !f.pii) {
            fields.insert(field.name.clone(), Value::String(crate::engine::display(value, &field.ty)));
        }
    }
    json!({ "stage": stage, "steps": steps, "fields": fields })
}

/// The name of the maintenance window covering `workflow` at `at`.
fn maintenance_name(program: &Program, workflow: &ir::Workflow, at: i64) -> String {
    program
        .maintenance
        .iter()
        .filter(|m| m.workflows.is_empty() || m.workflows.contains(&workflow.id))
        .find(|m| mon_stdlib::time::in_maintenance(&m.window, at))
        .map_or_else(|| "maintenance".to_string(), |m| format!("maintenance {}", m.name))
}

pub(super) fn in_maintenance(program: &Program, workflow: u32, at: i64) -> bool {
    program
        .maintenance
        .iter()
        .filter(|m| m.workflows.is_empty() || m.workflows.contains(&workflow))
        .any(|m| mon_stdlib::time::in_maintenance(&m.window, at))
}

/// When the maintenance covering `workflow` at `at` ends: the first
/// instant after `at` outside every window, found by doubling steps (a
/// minute, two, four... up to two weeks) then halving them to the
/// millisecond. Windows are contiguous stretches of local time, so this
/// finds the end through daylight-saving changes as `in_maintenance` does.
fn maintenance_end(program: &Program, workflow: u32, at: i64) -> Option<i64> {
    const LIMIT_MS: i64 = 14 * 86_400_000;
    let mut inside = at;
    let mut step = 60_000;
    let outside = loop {
        if step > LIMIT_MS {
            return None;
        }
        let probe = inside.saturating_add(step);
        if !in_maintenance(program, workflow, probe) {
            break probe;
        }
        inside = probe;
        step *= 2;
    };
    let (mut inside, mut outside) = (inside, outside);
    while outside - inside > 1 {
        let middle = inside + (outside - inside) / 2;
        if in_maintenance(program, workflow, middle) {
            inside = middle;
        } else {
            outside = middle;
        }
    }
    Some(outside)
}

/// `1h 2m 3s`, for people.
pub(super) fn human_duration(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}
