//! Alert groups: one per (channel, workflow, step, kind, group-by values),
//! each with its own message schedule (Alertmanager's group wait, group
//! interval and repeat interval; the last is the step's `renotify`).

use std::collections::{BTreeMap, BTreeSet};

use mon_compiler::ir::{RecordKind, Severity};
use serde::{Deserialize, Serialize};

use super::book::{human_duration, in_maintenance, AlertBook, AlertEntry, Timer, RECHECK_MS};
use super::notification::{AlertBrief, AlertState, Notification, NotificationEvent, FIRST_ALERTS};

/// Index into `BookState::groups`. Groups are never removed, so that a
/// group's message numbers, and so its notification ids, never repeat.
pub type GroupId = u32;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Group {
    /// Stable and readable: PagerDuty's `dedup_key`, a mail thread.
    pub key: String,
    pub channel: u32,
    pub workflow: u32,
    pub step: u32,
    pub kind: RecordKind,
    pub group: Vec<String>,
    /// Active members (open or acknowledged), oldest first.
    pub members: BTreeSet<(i64, String)>,
    /// Joined or left since the last message.
    pub joined: Vec<String>,
    pub left: Vec<String>,
    /// Resolved (not merely suppressed) since the last message.
    pub resolved: u32,
    /// Acknowledgements changed since the last message; who, if someone acknowledged.
    pub acknowledged_by: Option<String>,
    pub acknowledgement_changed: bool,
    /// A `firing` message was sent and no `resolved` since.
    pub notified: bool,
    /// The last message said every active alert was acknowledged.
    pub acknowledged_sent: bool,
    pub last_sent: Option<i64>,
    /// When the next message is due; a queued flush at another instant is stale.
    pub next_flush: Option<i64>,
    /// Messages sent: numbers the notification ids.
    pub sent: u32,
    /// Some member joined by escalation.
    pub escalated: bool,
}

impl Group {
    pub fn identity(&self) -> (u32, u32, u32, RecordKind, Vec<String>) {
        (self.channel, self.workflow, self.step, self.kind, self.group.clone())
    }
}

impl AlertBook<'_> {
    /// The group of these coordinates, made if new; records that `alert` joins it.
    pub(super) fn group_for(
        &mut self,
        channel: u32,
        workflow: u32,
        step: u32,
        kind: RecordKind,
        group: &[String],
        alert: &str,
    ) -> GroupId {
        let identity = (channel, workflow, step, kind, group.to_vec());
        let id = match self.group_index.get(&identity) {
            Some(id) => {
                // A group between episodes (its last message said
                // resolved, or it never sent one) starts the next under
                // the key it would be made with now: a book restored from
                // before its keys carried the partition takes them here.
                let between_episodes =
                    self.state.groups.get(*id as usize).is_some_and(|g| g.members.is_empty() && !g.notified);
                if between_episodes {
                    let key = self.group_key(channel, workflow, step, kind, group);
                    if let Some(g) = self.state.groups.get_mut(*id as usize) {
                        g.key = key;
                    }
                }
                *id
            }
            None => {
                let id = self.state.groups.len() as GroupId;
                let key = self.group_key(channel, workflow, step, kind, group);
                self.state.groups.push(Group {
                    key,
                    channel,
                    workflow,
                    step,
                    kind,
                    group: group.to_vec(),
                    members: BTreeSet::new(),
                    joined: Vec::new(),
                    left: Vec::new(),
                    resolved: 0,
                    acknowledged_by: None,
                    acknowledgement_changed: false,
                    notified: false,
                    acknowledged_sent: false,
                    last_sent: None,
                    next_flush: None,
                    sent: 0,
                    escalated: false,
                });
                self.group_index.insert(identity, id);
                id
            }
        };
        self.push_group(alert, id);
        id
    }

    /// `channel/workflow.step/kind[/group values][@partition-P]`.
    fn group_key(&self, channel: u32, workflow: u32, step: u32, kind: RecordKind, group: &[String]) -> String {
        let program = self.program;
        let channel = program.channels.get(channel as usize).map_or("", |c| c.name.as_str());
        let workflow = program.workflows.get(workflow as usize);
        let step = workflow.and_then(|w| w.steps.get(step as usize)).map_or("", |s| s.name.as_str());
        let workflow = workflow.map_or("", |w| w.name.as_str());
        let mut key = format!("{channel}/{workflow}.{step}/{kind}");
        if !group.is_empty() {
            // Escaped, so that values holding the separators cannot make
            // two groups one key (`a,b` + `c` against `a` + `b,c`).
            let values: Vec<String> =
                group.iter().map(|v| v.replace('%', "%25").replace(',', "%2C").replace('/', "%2F")).collect();
            key.push('/');
            key.push_str(&values.join(","));
        }
        if let Some(partition) = self.state.partition {
            key.push_str(&format!("@partition-{partition}"));
        }
        key
    }

    pub(super) fn join(&mut self, group: GroupId, alert: &str, at: i64, escalation: bool) {
        let opened_at = self.alert(alert).map_or(at, |a| a.opened_at);
        let Some(g) = self.state.groups.get_mut(group as usize) else { return };
        if !g.members.insert((opened_at, alert.to_string())) {
            return;
        }
        g.joined.push(alert.to_string());
        g.escalated |= escalation;
        self.changed(group, at, false);
    }

    pub(super) fn leave(&mut self, group: GroupId, alert: &str, at: i64, resolved: bool) {
        let opened_at = self.alert(alert).map_or(at, |a| a.opened_at);
        let Some(g) = self.state.groups.get_mut(group as usize) else { return };
        if !g.members.remove(&(opened_at, alert.to_string())) {
            return;
        }
        g.left.push(alert.to_string());
        if resolved {
            g.resolved += 1;
        }
        self.changed(group, at, false);
    }

    /// An alert of the group was acknowledged (`by` someone) or
    /// unacknowledged (`None`).
    pub(super) fn acknowledgement_changed(&mut self, group: GroupId, at: i64, by: Option<&str>) {
        let Some(g) = self.state.groups.get(group as usize) else { return };
        let open =
            g.members.iter().filter(|(_, id)| self.alert(id).is_some_and(|a| a.state == AlertState::Open)).count();
        let (notified, acknowledged_sent) = (g.notified, g.acknowledged_sent);
        let Some(g) = self.state.groups.get_mut(group as usize) else { return };
        match by {
            // The last open alert of a notified group acknowledged: told at
            // once, so a pager stops ringing. A partial acknowledgement is
            // told in the group's next message, not by one of its own.
            Some(by) if notified && open == 0 => {
                g.acknowledgement_changed = true;
                g.acknowledged_by = Some(by.to_string());
                self.changed(group, at, true);
            }
            Some(_) => {}
            // Open again after the receivers heard it was acknowledged.
            None if acknowledged_sent => {
                g.acknowledgement_changed = true;
                self.changed(group, at, false);
            }
            None => {}
        }
    }

    /// Schedules the group's next message after a change: the group wait
    /// for a group not yet notified, else the group interval after the
    /// last message (or now, when `immediate`).
    fn changed(&mut self, group: GroupId, at: i64, immediate: bool) {
        let config = self.config;
        let Some(g) = self.state.groups.get_mut(group as usize) else { return };
        let due = if immediate {
            at
        } else if !g.notified {
            match g.next_flush {
                Some(due) => due,
                None => at.saturating_add(config.group_wait_ms as i64),
            }
        } else {
            let earliest = g.last_sent.map_or(at, |last| last.saturating_add(config.group_interval_ms as i64));
            earliest.max(at)
        };
        if g.next_flush.is_some_and(|next| next <= due) {
            return;
        }
        g.next_flush = Some(due);
        self.schedule(due, Timer::Flush(group));
    }

    /// The group's message due at `due`, if it still has something to say.
    pub(super) fn flush(&mut self, group: GroupId, due: i64, out: &mut Vec<Notification>) {
        let Some(g) = self.state.groups.get(group as usize) else { return };
        if g.next_flush != Some(due) {
            return; // rescheduled since
        }
        let acknowledged = g
            .members
            .iter()
            .filter(|(_, id)| self.alert(id).is_some_and(|a| a.state == AlertState::Acknowledged))
            .count();
        let active = g.members.len();
        let open = active - acknowledged;
        let changed = !g.joined.is_empty() || !g.left.is_empty();
        let event = if !g.notified {
            (open > 0).then_some(NotificationEvent::Firing)
        } else if active == 0 {
            Some(NotificationEvent::Resolved)
        } else if open == 0 {
            (!g.acknowledged_sent || changed).then_some(NotificationEvent::Acknowledged)
        } else if changed || g.acknowledgement_changed {
            Some(NotificationEvent::Update)
        } else {
            Some(NotificationEvent::Renotify)
        };
        let renotify_ms = self
            .program
            .workflows
            .get(g.workflow as usize)
            .and_then(|w| w.steps.get(g.step as usize))
            .and_then(|s| s.alerting.renotify_ms);
        let Some(event) = event else {
            // Nothing to tell: everything left or was acknowledged before
            // the first message.
            if let Some(g) = self.state.groups.get_mut(group as usize) {
                g.next_flush = None;
                g.joined.clear();
                g.left.clear();
                g.resolved = 0;
                g.acknowledgement_changed = false;
                g.acknowledged_by = None;
            }
            return;
        };
        if event == NotificationEvent::Renotify && renotify_ms.is_none() {
            if let Some(g) = self.state.groups.get_mut(group as usize) {
                g.next_flush = None;
            }
            return;
        }
        // A window holds what would ring; an acknowledgement or a
        // resolution goes out, so a pager can stop.
        let rings =
            matches!(event, NotificationEvent::Firing | NotificationEvent::Update | NotificationEvent::Renotify);
        if rings && in_maintenance(self.program, g.workflow, due) {
            let next = due.saturating_add(RECHECK_MS);
            if let Some(g) = self.state.groups.get_mut(group as usize) {
                g.next_flush = Some(next);
            }
            self.schedule(next, Timer::Flush(group));
            return;
        }
        let Some(notification) = self.notification(group, due, event, active, acknowledged) else { return };
        let Some(g) = self.state.groups.get(group as usize) else { return };
        let listed: Vec<String> = match event {
            NotificationEvent::Firing | NotificationEvent::Update | NotificationEvent::Renotify => g.joined.clone(),
            NotificationEvent::Acknowledged | NotificationEvent::Resolved => g.left.clone(),
        };
        let channel_name = notification.channel.clone();
        for id in listed {
            if let Some(alert) = self.alert_mut(&id) {
                let mut entry = AlertEntry::new(due, "notified");
                entry.channel = Some(channel_name.clone());
                entry.notification = Some(notification.id.clone());
                entry.reason = Some(event.name().to_string());
                alert.history.push(entry);
            }
        }
        out.push(notification);
        let Some(g) = self.state.groups.get_mut(group as usize) else { return };
        g.sent += 1;
        g.last_sent = Some(due);
        g.joined.clear();
        g.left.clear();
        g.resolved = 0;
        g.acknowledgement_changed = false;
        g.acknowledged_by = None;
        g.notified = event != NotificationEvent::Resolved;
        g.acknowledged_sent = g.notified && open == 0;
        if !g.notified {
            g.escalated = false;
        }
        g.next_flush = None;
        if let (true, true, Some(every)) = (g.notified, open > 0, renotify_ms) {
            let next = due.saturating_add(every as i64);
            g.next_flush = Some(next);
            self.schedule(next, Timer::Flush(group));
        }
    }

    fn notification(
        &self,
        group: GroupId,
        at: i64,
        event: NotificationEvent,
        active: usize,
        acknowledged: usize,
    ) -> Option<Notification> {
        let g = self.state.groups.get(group as usize)?;
        let program = self.program;
        let workflow = program.workflows.get(g.workflow as usize)?;
        let step = workflow.steps.get(g.step as usize)?;
        let channel = program.channels.get(g.channel as usize).map_or_else(String::new, |c| c.name.clone());
        let brief = |id: &String| {
            self.alert(id).map(|a| AlertBrief {
                id: a.id.clone(),
                key: a.key.clone(),
                state: a.state,
                opened_at: a.opened_at,
                deadline: a.deadline,
            })
        };
        let alerts: Vec<AlertBrief> = match event {
            NotificationEvent::Resolved => g.left.iter().take(FIRST_ALERTS).filter_map(brief).collect(),
            _ => g.members.iter().take(FIRST_ALERTS).filter_map(|(_, id)| brief(id)).collect(),
        };
        let severity = g
            .members
            .iter()
            .map(|(_, id)| id)
            .chain(&g.left)
            .filter_map(|id| self.alert(id).map(|a| a.severity))
            .max()
            .unwrap_or(Severity::Info);
        let group_values: BTreeMap<String, String> =
            workflow.group_by.iter().map(|f| f.name.clone()).zip(g.group.iter().cloned()).collect();
        let runbook = step.alerting.runbook.clone().or_else(|| workflow.alerting.runbook.clone());
        let what = Subject { event, severity, workflow: &workflow.name, step: &step.name, kind: g.kind };
        let summary = summary(&what, at, active, &group_values, &alerts, g.resolved as usize);
        // The group and its message number make the id; the instant and
        // the rules' hash keep it distinct when a replay under other
        // settings or rules numbers the group's messages differently.
        let id = AlertBook::digest(&[&g.key, &g.sent.to_string(), &at.to_string(), event.name(), &self.program_hash]);
        Some(Notification {
            id,
            channel,
            at,
            event,
            group_key: g.key.clone(),
            workflow: workflow.name.clone(),
            step: step.name.clone(),
            kind: g.kind,
            severity,
            group: group_values,
            runbook,
            program_hash: self.program_hash.clone(),
            active: active as u32,
            acknowledged: acknowledged as u32,
            new: g
                .joined
                .iter()
                .filter(|id| self.alert(id).is_some_and(|a| g.members.contains(&(a.opened_at, (*id).clone()))))
                .count() as u32,
            resolved: g.resolved,
            escalated: g.escalated,
            acknowledged_by: g.acknowledged_by.clone().filter(|_| event == NotificationEvent::Acknowledged),
            alerts,
            summary,
        })
    }
}

/// What a notification is about, for its summary.
struct Subject<'a> {
    event: NotificationEvent,
    severity: Severity,
    workflow: &'a str,
    step: &'a str,
    kind: RecordKind,
}

/// `FIRING high trade_lifecycle.sys3_ack missing: 3 items (book=FX) — T1,
/// T2, T3 (oldest 12m past its deadline)`.
fn summary(
    what: &Subject,
    at: i64,
    active: usize,
    group: &BTreeMap<String, String>,
    alerts: &[AlertBrief],
    resolved: usize,
) -> String {
    let Subject { event, severity, workflow, step, kind } = what;
    let mut text = format!("{} {severity} {workflow}.{step} {kind}", event.name().to_uppercase());
    let items = |n: usize| if n == 1 { "1 item".to_string() } else { format!("{n} items") };
    match event {
        NotificationEvent::Resolved => text.push_str(&format!(": {} resolved", items(resolved))),
        NotificationEvent::Acknowledged => text.push_str(&format!(": {} acknowledged", items(active))),
        _ => text.push_str(&format!(": {}", items(active))),
    }
    if !group.is_empty() {
        let values: Vec<String> = group.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push_str(&format!(" ({})", values.join(", ")));
    }
    if !alerts.is_empty() {
        let keys: Vec<String> = alerts.iter().map(|a| key_text(&a.key)).collect();
        text.push_str(" — ");
        text.push_str(&keys.join(", "));
        if alerts.len() < active.max(resolved) {
            text.push_str(", …");
        }
    }
    // Only a missing step is still overdue; a late one has happened.
    let firing = matches!(event, NotificationEvent::Firing | NotificationEvent::Renotify | NotificationEvent::Update);
    if let (true, RecordKind::Missing, Some(deadline)) = (firing, kind, alerts.first().and_then(|a| a.deadline)) {
        if at > deadline {
            text.push_str(&format!(" (oldest {} past its deadline)", human_duration(at - deadline)));
        }
    }
    text
}

/// A key for people: the value alone for one field, `a=1, b=2` for several.
pub fn key_text(key: &BTreeMap<String, String>) -> String {
    match key.len() {
        1 => key.values().next().cloned().unwrap_or_default(),
        _ => key.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
    }
}
