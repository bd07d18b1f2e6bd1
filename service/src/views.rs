//! The workflow views behind `GET /api/v1/workflows...`: what each
//! workflow, stage and group looks like now, and *why* when it is not
//! green, in words a wallboard can show as they are.
//!
//! The processing thread (the engine's only owner) builds them with
//! [`build`] at most about once a second, from one
//! [`aggregates::breakdown`] walk per workflow, and swaps them into a
//! shared [`Views`]; HTTP handlers only read and page. Nothing here reads
//! the wall clock: "now" is the engine's clock, passed in.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mon_compiler::ir::{self, Expr, Program, StatusMetric};
use mon_runtime::aggregates::{self, Breakdown, NextDeadline, Part, Status, Witness};
use mon_runtime::alerts::Alert;
use mon_runtime::engine::key_object;
use mon_runtime::State;
use serde::Serialize;
use tokio::sync::broadcast;
use utoipa::ToSchema;

/// Every view, as of one refresh.
#[derive(Clone, Debug, Default)]
pub struct Views {
    /// The engine's clock (ms) the views were computed at; `None` before
    /// the engine has started.
    pub clock: Option<i64>,
    pub list: WorkflowList,
    /// By workflow name.
    pub details: HashMap<String, WorkflowDetail>,
    /// By workflow name: every group, ordered by its id.
    pub groups: HashMap<String, Vec<GroupView>>,
    /// What the views were made of, unfinished (`GET /api/v1/breakdowns`):
    /// a scale-out front adds every task's and renders the group's views.
    /// Kept by a scale-out task only ([`Board::keep_parts`]).
    pub parts: Arc<Vec<WorkflowPart>>,
}

/// One workflow's numbers in one engine (or several), before they are
/// views: [`render`] makes the views of any sum of them.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct WorkflowPart {
    pub name: String,
    /// False while switched off in any engine.
    pub enabled: bool,
    pub breakdown: aggregates::Breakdown,
}

/// `GET /api/v1/workflows`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct WorkflowList {
    /// The engine's clock (RFC 3339) the views were computed at.
    pub clock: Option<String>,
    pub workflows: Vec<WorkflowSummary>,
}

/// One workflow at a glance.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct WorkflowSummary {
    pub name: String,
    /// False while switched off (`POST /api/v1/workflows/{w}/disable`): it
    /// takes no events and fires no timers; its items stay as they are.
    pub enabled: bool,
    #[schema(value_type = crate::http::schema::StatusWord)]
    pub status: &'static str,
    #[serde(flatten)]
    pub why: Why,
    pub counts: Counts,
    /// The first stage (in program order) of the workflow's worst colour,
    /// when that colour is not green.
    pub worst_stage: Option<String>,
    /// The earliest deadline still ahead of any of its items.
    pub next_deadline: Option<DeadlineView>,
}

/// Why a slice is amber or red (both null when green).
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Why {
    /// The `status red|amber when ...` rule that holds, as written.
    pub rule: Option<String>,
    /// The rule, the items it counts and the oldest of them, in words:
    /// "red: `missing > 0` holds: 2 missing (oldest O-2003, 14m in its stage)".
    pub reason: Option<String>,
}

/// The counts of a slice. `entered`, `completed` count since monitoring
/// started; the others count the items the engine holds now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Counts {
    pub in_flight: u64,
    pub entered: u64,
    pub completed: u64,
    pub failed: u64,
    pub late: u64,
    pub missing: u64,
    pub at_risk: u64,
}

/// `GET /api/v1/workflows/{workflow}`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct WorkflowDetail {
    pub name: String,
    /// False while switched off.
    pub enabled: bool,
    /// The engine's clock (RFC 3339) the view was computed at.
    pub clock: Option<String>,
    #[schema(value_type = crate::http::schema::StatusWord)]
    pub status: &'static str,
    #[serde(flatten)]
    pub why: Why,
    pub counts: Counts,
    pub worst_stage: Option<String>,
    pub next_deadline: Option<DeadlineView>,
    /// Every stage, in program order.
    pub stages: Vec<StageView>,
    /// The workflow as a map: stages are nodes, steps are edges.
    pub graph: Graph,
    /// How many groups `/groups` lists.
    pub groups: usize,
}

/// One stage: the items in it, how old they are, and what it waits for.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct StageView {
    /// The stage's name: the name of the step that leads into it.
    pub name: String,
    #[schema(value_type = crate::http::schema::StatusWord)]
    pub status: &'static str,
    #[serde(flatten)]
    pub why: Why,
    pub counts: Counts,
    /// In-flight items by time in the stage.
    pub aging: Vec<AgingBucket>,
    /// The in-flight item longest in this stage.
    pub oldest: Option<ItemAge>,
    /// The earliest deadline ahead of the step into this stage, over the
    /// items waiting for it.
    pub next_deadline: Option<DeadlineView>,
    pub stay_p50_ms: Option<i64>,
    pub stay_p95_ms: Option<i64>,
    pub entries_last_minute: u64,
}

/// In-flight items in their stage for at least `from_ms` and less than
/// `to_ms` (none: no upper bound).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AgingBucket {
    pub from_ms: u64,
    pub to_ms: Option<u64>,
    /// `1m–5m`, `1h+`.
    pub label: String,
    pub items: u64,
}

/// An item and how long it has been in its stage.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ItemAge {
    /// The key as text (compound keys joined by `/`).
    pub key: String,
    /// Key field name to value.
    pub key_fields: BTreeMap<String, String>,
    /// When it entered its stage (RFC 3339).
    pub since: String,
    pub age_ms: i64,
}

/// A deadline ahead, with the time left on the engine's clock.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DeadlineView {
    /// The step awaited.
    pub step: String,
    /// RFC 3339.
    pub at: String,
    /// True for a clock-time deadline (`by 08:00 Europe/London`), false
    /// for one after entry (`within 30m`).
    pub absolute: bool,
    /// `at` minus the engine's clock; negative once passed (in grace).
    pub time_left_ms: i64,
    /// The same as `HH:MM:SS` (`-` in front once passed).
    pub time_left: String,
    /// Items waiting for the step by that same instant.
    pub items: u64,
}

/// Stages as nodes, steps as edges: enough to draw the workflow.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Graph {
    pub stages: Vec<String>,
    pub edges: Vec<Edge>,
}

/// A step: from each stage it leaves (none: a start step) into its stage.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Edge {
    pub step: String,
    /// The stages it leaves; empty for a start step.
    pub from: Vec<String>,
    pub to: String,
    /// The event type that takes it.
    pub event: String,
    pub optional: bool,
    /// `success` or `failure` when taking it closes the item.
    pub outcome: Option<String>,
    /// `within 30m`, `by 08:00 Europe/London`, both, or none.
    pub deadline: Option<String>,
}

/// One group of a workflow (`group by` values).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct GroupView {
    /// The values joined by `/`: what `trends?group=` takes.
    pub group: String,
    /// `group by` field name to value.
    pub values: BTreeMap<String, String>,
    #[schema(value_type = crate::http::schema::StatusWord)]
    pub status: &'static str,
    #[serde(flatten)]
    pub why: Why,
    pub counts: Counts,
    pub oldest: Option<ItemAge>,
    pub next_deadline: Option<DeadlineView>,
}

/// A change the stream (`GET /api/v1/stream`) sends, numbered.
#[derive(Clone, Debug)]
pub struct Change {
    /// Rises by one per change: the SSE event id.
    pub id: u64,
    pub what: Changed,
}

#[derive(Clone, Debug)]
pub enum Changed {
    /// The workflow list, when it differs from the last one sent.
    Status(Arc<WorkflowList>),
    /// Alerts opened, changed or resolved, with the clock to show them at
    /// (the engine's on the event clock; `None`: the wall clock).
    Alerts(Arc<Vec<Alert>>, Option<i64>),
}

/// How many changes the stream holds for a slow client before it skips
/// ahead (and is told to `resync`).
pub const STREAM_BUFFER: usize = 256;

/// What the processing thread publishes: the views, and the changes to
/// them for the stream. Sending never blocks: a client that falls more
/// than [`STREAM_BUFFER`] changes behind loses them and is told so.
pub struct Board {
    pub views: Arc<RwLock<Views>>,
    pub changes: broadcast::Sender<Change>,
    next_id: u64,
    /// An input was applied since the last refresh.
    pub dirty: bool,
    /// The alerts as last published, by id.
    alerts: HashMap<String, Alert>,
    /// How long the last refresh took.
    pub last_refresh: Duration,
    /// Keep [`Views::parts`]: a scale-out task's, which its process's
    /// front adds up (their stay samples cost memory and a copy per
    /// refresh, which no other `mon run` needs).
    pub keep_parts: bool,
}

impl Board {
    pub fn new(views: Arc<RwLock<Views>>, changes: broadcast::Sender<Change>) -> Board {
        Board {
            views,
            changes,
            next_id: 1,
            dirty: true,
            alerts: HashMap::new(),
            last_refresh: Duration::ZERO,
            keep_parts: false,
        }
    }

    fn send(&mut self, what: Changed) {
        let id = self.next_id;
        self.next_id += 1;
        // No receiver is no error: nobody is watching.
        let _ = self.changes.send(Change { id, what });
    }

    /// Rebuilds the views when something changed (`always`: time alone
    /// changes them, on the wall clock), and sends the list if it differs.
    /// `states`: every engine's (one per input partition with state per
    /// partition); none before the engine starts.
    pub fn refresh(&mut self, program: &Program, states: &[&State], now: i64, always: bool) {
        if !(self.dirty || always) {
            return;
        }
        self.dirty = false;
        let started = Instant::now();
        let views = build(program, states, now, self.keep_parts);
        self.last_refresh = started.elapsed();
        let list = views.list.clone();
        let Ok(mut slot) = self.views.write() else { return };
        let changed = without_clock(&slot.list) != without_clock(&list);
        *slot = views;
        drop(slot);
        if changed {
            self.send(Changed::Status(Arc::new(list)));
        }
    }

    /// Sends the alerts that differ from the last ones seen (new, changed,
    /// resolved); `alerts` is every alert the book holds.
    pub fn alerts(&mut self, alerts: &[Alert], event_clock: Option<i64>) {
        let changed: Vec<Alert> = alerts.iter().filter(|a| self.alerts.get(&a.id) != Some(*a)).cloned().collect();
        if self.alerts.len() != alerts.len() || !changed.is_empty() {
            self.alerts = alerts.iter().map(|a| (a.id.clone(), a.clone())).collect();
        }
        if !changed.is_empty() {
            self.send(Changed::Alerts(Arc::new(changed), event_clock));
        }
    }
}

/// The list less its clock: a list that only moved in time is no change.
fn without_clock(list: &WorkflowList) -> &[WorkflowSummary] {
    &list.workflows
}

/// A group id as the API shows it and `trends?group=` takes it.
pub fn group_text(values: &[String]) -> String {
    values.join("/")
}

/// Builds every view at `now` (the engine's clock), over every engine's
/// state. Before any engine starts (the event clock's first event) there
/// is none, and every workflow is shown, empty, rather than unknown.
pub fn build(program: &Program, states: &[&State], now: i64, keep_parts: bool) -> Views {
    let parts = program
        .workflows
        .iter()
        .map(|workflow| WorkflowPart {
            name: workflow.name.clone(),
            // Switched off in one engine is switched off in all (a rules change).
            enabled: !states.iter().any(|state| state.disabled.contains(&workflow.name)),
            breakdown: aggregates::unfinished_breakdown_over(states, workflow, now),
        })
        .collect();
    render(program, parts, now, keep_parts)
}

/// The views of `parts` (one per workflow of `program`, in its order) at
/// `now`: of one engine's numbers, or of a scale-out group's, summed.
/// `keep_parts`: keep them, unfinished, in [`Views::parts`].
pub fn render(program: &Program, parts: Vec<WorkflowPart>, now: i64, keep_parts: bool) -> Views {
    let clock = Some(mon_stdlib::time::format_rfc3339(now));
    let mut views = Views { clock: Some(now), ..Views::default() };
    views.list.clock = clock.clone();
    let kept = keep_parts.then(|| parts.clone());
    for (workflow, part) in program.workflows.iter().zip(parts) {
        let WorkflowPart { mut breakdown, enabled, .. } = part;
        breakdown.finish();
        let (status, why) = judge(workflow, &breakdown.whole, now);
        let stages: Vec<StageView> = workflow
            .steps
            .iter()
            .zip(&breakdown.stages)
            .map(|(step, part)| stage_view(workflow, step, part, now))
            .collect();
        let worst = stages.iter().map(|s| s.status).max_by_key(|s| rank(s)).filter(|s| *s != Status::Green.name());
        let worst_stage = worst.and_then(|w| stages.iter().find(|s| s.status == w)).map(|s| s.name.clone());
        let next_deadline = breakdown.whole.next_deadline.as_ref().map(|d| deadline_view(workflow, d, now));
        let groups = group_views(workflow, &breakdown, now);
        views.list.workflows.push(WorkflowSummary {
            name: workflow.name.clone(),
            enabled,
            status: status.name(),
            why: why.clone(),
            counts: counts(&breakdown.whole),
            worst_stage: worst_stage.clone(),
            next_deadline: next_deadline.clone(),
        });
        views.details.insert(
            workflow.name.clone(),
            WorkflowDetail {
                name: workflow.name.clone(),
                enabled,
                clock: clock.clone(),
                status: status.name(),
                why,
                counts: counts(&breakdown.whole),
                worst_stage,
                next_deadline,
                stages,
                graph: graph(program, workflow),
                groups: groups.len(),
            },
        );
        views.groups.insert(workflow.name.clone(), groups);
    }
    views.parts = Arc::new(kept.unwrap_or_default());
    views
}

/// Several engines' parts of the same program (each in its order) as
/// one engine's: the numbers added, switched off if off in any.
pub fn add_parts(program: &Program, each: impl IntoIterator<Item = Vec<WorkflowPart>>) -> Vec<WorkflowPart> {
    let mut sum: Option<Vec<WorkflowPart>> = None;
    for parts in each {
        match &mut sum {
            None => sum = Some(parts),
            Some(sum) => {
                for ((mine, theirs), workflow) in sum.iter_mut().zip(parts).zip(&program.workflows) {
                    mine.enabled &= theirs.enabled;
                    mine.breakdown.absorb(theirs.breakdown, workflow);
                }
            }
        }
    }
    sum.unwrap_or_default()
}

fn rank(status: &str) -> u8 {
    Status::ALL.iter().position(|(w, _)| *w == status).unwrap_or(0) as u8
}

fn counts(part: &Part) -> Counts {
    let m = &part.metrics;
    Counts {
        in_flight: m.in_flight,
        entered: m.entered,
        completed: m.completed,
        failed: m.failed,
        late: m.late,
        missing: m.missing,
        at_risk: m.at_risk,
    }
}

fn stage_view(workflow: &ir::Workflow, step: &ir::Step, part: &Part, now: i64) -> StageView {
    let (status, why) = judge(workflow, part, now);
    let m = &part.metrics;
    let aging = workflow
        .aging_ms
        .iter()
        .enumerate()
        .map(|(i, &from)| {
            let to = workflow.aging_ms.get(i + 1).copied();
            let label = match to {
                Some(to) => format!("{}–{}", aggregates::duration_text(from), aggregates::duration_text(to)),
                None => format!("{}+", aggregates::duration_text(from)),
            };
            AgingBucket { from_ms: from, to_ms: to, label, items: m.aging.get(i).copied().unwrap_or(0) }
        })
        .collect();
    StageView {
        name: step.name.clone(),
        status: status.name(),
        why,
        counts: counts(part),
        aging,
        oldest: part.oldest.in_flight.as_ref().map(|w| item_age(workflow, w, now)),
        next_deadline: part.next_deadline.as_ref().map(|d| deadline_view(workflow, d, now)),
        stay_p50_ms: m.stay_p50_ms,
        stay_p95_ms: m.stay_p95_ms,
        entries_last_minute: m.entries_last_minute,
    }
}

fn group_views(workflow: &ir::Workflow, breakdown: &Breakdown, now: i64) -> Vec<GroupView> {
    let mut groups: Vec<GroupView> = breakdown
        .groups
        .iter()
        .map(|(values, part)| {
            let (status, why) = judge(workflow, part, now);
            GroupView {
                group: group_text(values),
                values: workflow.group_by.iter().map(|g| g.name.clone()).zip(values.iter().cloned()).collect(),
                status: status.name(),
                why,
                counts: counts(part),
                oldest: part.oldest.in_flight.as_ref().map(|w| item_age(workflow, w, now)),
                next_deadline: part.next_deadline.as_ref().map(|d| deadline_view(workflow, d, now)),
            }
        })
        .collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    groups
}

/// The colour of a slice and, when not green, the rule and its items in words.
fn judge(workflow: &ir::Workflow, part: &Part, now: i64) -> (Status, Why) {
    let verdict = part.verdict(workflow);
    let Some(rule) = verdict.rule else { return (verdict.status, Why::default()) };
    let text = aggregates::rule_text(rule);
    let reason = format!("{}: `{text}` holds: {}", verdict.status.name(), evidence(rule, part, now));
    (verdict.status, Why { rule: Some(text), reason: Some(reason) })
}

/// What a rule counts, each with its oldest item: "2 missing (oldest
/// O-2003, 14m in its stage); 11 in flight over 15m (oldest O-1990, 3h in
/// its stage)".
fn evidence(rule: &Expr, part: &Part, now: i64) -> String {
    let oldest = |w: Option<&Witness>| match w {
        Some(w) => {
            format!(" (oldest {}, {} in its stage)", key_text(&w.key), age_text(now.saturating_sub(w.entered_at)))
        }
        None => String::new(),
    };
    let terms: Vec<(u64, String)> = aggregates::rule_metrics(rule)
        .into_iter()
        .map(|metric| match metric {
            StatusMetric::Count(metric) => {
                let n = part.metrics.count(metric);
                let witness = if n > 0 { part.oldest.of(metric) } else { None };
                (n, format!("{n} {}{}", metric.name(), oldest(witness)))
            }
            StatusMetric::Aged(ms) => {
                let n = part.aged.iter().find(|(d, _)| *d == ms).map_or(0, |(_, n)| *n);
                let witness = if n > 0 { part.oldest.in_flight.as_ref() } else { None };
                (n, format!("{n} in flight over {}{}", aggregates::duration_text(ms), oldest(witness)))
            }
        })
        .collect();
    // "0 at_risk; 1 late" says less than "1 late": the zero terms are left
    // out, unless the rule holds on zeros (`in_flight == 0`).
    let nonzero: Vec<&str> = terms.iter().filter(|(n, _)| *n > 0).map(|(_, t)| t.as_str()).collect();
    if nonzero.is_empty() {
        terms.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("; ")
    } else {
        nonzero.join("; ")
    }
}

fn key_text(key: &str) -> String {
    key.replace('\u{1f}', "/")
}

/// An age for a sentence: seconds under a minute, then whole minutes,
/// hours and minutes, days and hours, so the text changes at most once a
/// minute once past the first one.
fn age_text(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

fn item_age(workflow: &ir::Workflow, witness: &Witness, now: i64) -> ItemAge {
    ItemAge {
        key: key_text(&witness.key),
        key_fields: key_object(workflow, &witness.key),
        since: mon_stdlib::time::format_rfc3339(witness.entered_at),
        age_ms: now.saturating_sub(witness.entered_at),
    }
}

/// `01:02:03` for a time left; `-00:00:05` once passed; days as hours.
pub fn clock_text(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let s = ms.unsigned_abs() / 1000;
    format!("{sign}{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn deadline_view(workflow: &ir::Workflow, deadline: &NextDeadline, now: i64) -> DeadlineView {
    let left = deadline.at.saturating_sub(now);
    DeadlineView {
        step: workflow.steps.get(deadline.step as usize).map(|s| s.name.clone()).unwrap_or_default(),
        at: mon_stdlib::time::format_rfc3339(deadline.at),
        absolute: deadline.absolute,
        time_left_ms: left,
        time_left: clock_text(left),
        items: deadline.items,
    }
}

fn graph(program: &Program, workflow: &ir::Workflow) -> Graph {
    let name = |id: &u32| workflow.steps.get(*id as usize).map(|s| s.name.clone()).unwrap_or_default();
    let edges = workflow
        .steps
        .iter()
        .map(|step| {
            let timing = &step.timing;
            let within = timing.within_ms.map(|ms| format!("within {}", aggregates::duration_text(ms)));
            let by = timing.by.as_ref().map(|b| {
                let (h, m) = (b.seconds / 3600, b.seconds / 60 % 60);
                let day = if b.day_offset > 0 { format!(" +{}d", b.day_offset) } else { String::new() };
                format!("by {h:02}:{m:02}{day} {}", b.zone)
            });
            let deadline = match (within, by) {
                (Some(w), Some(b)) => Some(format!("{w}, {b}")),
                (w, b) => w.or(b),
            };
            Edge {
                step: step.name.clone(),
                from: step.sources.iter().map(name).collect(),
                to: step.name.clone(),
                event: program.events.get(step.event as usize).map(|e| e.name.clone()).unwrap_or_default(),
                optional: step.optional,
                outcome: step.outcome.map(|o| o.name().to_string()),
                deadline,
            }
        })
        .collect();
    Graph { stages: workflow.steps.iter().map(|s| s.name.clone()).collect(), edges }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "event placed { order_id: string, desk: string }\nevent routed { order_id: string }\n\
        workflow orders {\n  key order_id\n  group by desk\n  status red when missing > 0 or aged(15m) > 10\n\
          start placed: placed\n  step routed: routed after placed within 30s\n}\n";

    fn program() -> Program {
        use mon_compiler::{compile, NoSchemas, SourceFile};
        let sources = vec![SourceFile { path: "orders.mon".into(), text: RULES.into() }];
        compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("compiles")
    }

    fn placed(n: usize, at: i64) -> String {
        format!(
            r#"{{"specversion":"1.0","id":"p{n}","source":"t","type":"placed","time":"{}","data":{{"order_id":"O-{n}","desk":"D{}"}}}}"#,
            mon_stdlib::time::format_rfc3339(at),
            n % 100
        )
    }

    /// The refresh cost the processing thread pays about once a second,
    /// with 100,000 items in flight in 100 groups: one walk, not one per
    /// stage and group. Printed, and bounded loosely (a debug build on a
    /// shared machine) so that a walk per group or per stage would fail.
    #[test]
    fn a_refresh_with_100_000_items_in_flight_is_one_cheap_walk() {
        let program = program();
        let functions = mon_stdlib::registry();
        let mut simulation = mon_runtime::simulate::Simulation::new(&program, functions, None, None);
        let start = mon_stdlib::time::parse_rfc3339("2026-03-02T08:00:00Z").unwrap();
        let mut out = Vec::new();
        for n in 0..100_000 {
            simulation.feed(&placed(n, start + n as i64), &mut out);
        }
        let state = simulation.state().unwrap();
        let now = start + 20 * 60_000;
        let started = Instant::now();
        let views = build(&program, &[state], now, false);
        let took = started.elapsed();
        eprintln!("views of 100,000 items in flight in 100 groups: {took:?}");
        let orders = &views.details["orders"];
        assert_eq!(orders.counts.in_flight, 100_000);
        assert_eq!(views.groups["orders"].len(), 100);
        // Every item is past its 30 s deadline at `now` on the clock but no
        // timer has fired (nothing advanced the engine): red by aged(15m).
        assert_eq!(orders.status, "red", "{orders:?}");
        assert!(orders.why.reason.as_deref().unwrap_or("").contains("oldest O-0,"), "{:?}", orders.why);
        assert!(took < Duration::from_secs(3), "a refresh took {took:?}");
    }

    /// A scale-out group's views are its rules on its tasks' numbers
    /// added: here each half alone is green (8 items aged 15m, not over
    /// 10), the whole red, and the parts sent as JSON and added make the
    /// very views one engine over both halves makes.
    #[test]
    fn a_groups_views_are_its_rules_on_the_summed_numbers_not_the_worst_of_its_parts() {
        use mon_runtime::simulate::Simulation;
        let program = program();
        let functions = mon_stdlib::registry();
        let start = mon_stdlib::time::parse_rfc3339("2026-03-02T08:00:00Z").unwrap();
        let mut halves =
            [Simulation::new(&program, functions, None, None), Simulation::new(&program, functions, None, None)];
        let mut out = Vec::new();
        for n in 0..20 {
            halves[n % 2].feed(&placed(n, start + n as i64 * 1000), &mut out);
        }
        // Four orders routed, each after a stay of its own: the stay
        // percentiles come from both halves' samples.
        for n in 0..4 {
            let at = mon_stdlib::time::format_rfc3339(start + n as i64 * 1000 + (n as i64 + 1) * 2000);
            let routed = format!(
                r#"{{"specversion":"1.0","id":"r{n}","source":"t","type":"routed","time":"{at}","data":{{"order_id":"O-{n}"}}}}"#
            );
            halves[n % 2].feed(&routed, &mut out);
        }
        let states = [halves[0].state().unwrap(), halves[1].state().unwrap()];
        let now = start + 20 * 60_000;
        assert_eq!(build(&program, &[states[0]], now, false).details["orders"].status, "green", "8 aged, not over 10");
        let whole = build(&program, &states, now, false);
        assert_eq!(whole.details["orders"].status, "red", "16 aged over both");

        let sent = |state| -> Vec<WorkflowPart> {
            let text = serde_json::to_string(&*build(&program, &[state], now, true).parts).unwrap();
            serde_json::from_str(&text).unwrap()
        };
        let summed = render(&program, add_parts(&program, [sent(states[0]), sent(states[1])]), now, false);
        assert_eq!(summed.list, whole.list);
        assert_eq!(summed.details, whole.details);
        assert_eq!(summed.groups, whole.groups);
        let stays = whole.details["orders"].stages.iter().filter_map(|s| s.stay_p50_ms).collect::<Vec<_>>();
        assert!(!stays.is_empty(), "stays to merge: {:?}", whole.details);
    }

    #[test]
    fn times_left_read_as_a_clock() {
        assert_eq!(clock_text(751_000), "00:12:31");
        assert_eq!(clock_text(-5_000), "-00:00:05");
        assert_eq!(clock_text(90_000_000), "25:00:00");
    }

    #[test]
    fn ages_change_at_most_once_a_minute_past_the_first() {
        assert_eq!(age_text(59_999), "59s");
        assert_eq!(age_text(14 * 60_000 + 59_000), "14m");
        assert_eq!(age_text(3 * 3_600_000 + 5 * 60_000), "3h05m");
        assert_eq!(age_text(2 * 86_400_000 + 3_600_000), "2d01h");
    }
}
