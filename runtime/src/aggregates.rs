//! Aggregates and status: counts per workflow × stage × group, aging of
//! in-flight items, time in stage, entry rate, and green/amber/red.
//!
//! Event counts (entered, completed, failed, late, duplicates...) are kept
//! incrementally by the engine; the state-dependent ones (in flight,
//! missing, at risk, aging) are computed here from the instances at the
//! instant asked for. Status metrics count the items the engine still holds:
//! open instances, and closed ones until their `retain` ends, so a failed
//! trade keeps its workflow red until it expires (acknowledging alerts is
//! the service's job).

use mon_compiler::ir::{self, BinaryOp, Expr, Metric, Outcome, StatusMetric, UnaryOp, Value};
use serde::{Deserialize, Serialize};

use crate::engine::{Counters, Instance, State};

/// Green, amber or red: the compiler's vocabulary, shared with `expect status`.
pub use mon_compiler::ir::Status;

/// The numbers of one workflow, or one of its stages or groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub in_flight: u64,
    pub entered: u64,
    pub completed: u64,
    pub failed: u64,
    pub late: u64,
    pub missing: u64,
    pub at_risk: u64,
    pub duplicate: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    /// In-flight items per aging bucket: `aging[i]` counts those in their
    /// stage for at least `aging_ms[i]` (and less than the next bucket).
    pub aging: Vec<u64>,
    pub stay_p50_ms: Option<i64>,
    pub stay_p95_ms: Option<i64>,
    pub entries_last_minute: u64,
}

impl Metrics {
    /// The count a metric names.
    pub fn count(&self, metric: Metric) -> u64 {
        match metric {
            Metric::InFlight => self.in_flight,
            Metric::Entered => self.entered,
            Metric::Completed => self.completed,
            Metric::Failed => self.failed,
            Metric::Late => self.late,
            Metric::Missing => self.missing,
            Metric::AtRisk => self.at_risk,
            Metric::Duplicate => self.duplicate,
            Metric::OutOfOrder => self.out_of_order,
            Metric::Unexpected => self.unexpected,
        }
    }
}

/// Which slice of a workflow to measure.
#[derive(Clone, Debug, Default)]
pub struct Slice<'a> {
    pub stage: Option<u32>,
    pub group: Option<&'a [String]>,
}

pub fn metrics(state: &State, workflow: &ir::Workflow, slice: &Slice, now: i64) -> Metrics {
    metrics_over(&[state], workflow, slice, now)
}

/// [`metrics`] of a workflow whose items are spread over several engines'
/// states (one per input partition: `engine::share`): the sums, with the
/// stay percentiles of the states' samples together.
pub fn metrics_over(states: &[&State], workflow: &ir::Workflow, slice: &Slice, now: i64) -> Metrics {
    let mut m = Metrics { aging: vec![0; workflow.aging_ms.len()], ..Metrics::default() };
    let mut stays: Vec<i64> = Vec::new();
    for state in states {
        add_state(&mut m, &mut stays, state, workflow, slice, now);
    }
    stays.sort_unstable();
    m.stay_p50_ms = percentile(&stays, 50);
    m.stay_p95_ms = percentile(&stays, 95);
    m
}

fn add_state(m: &mut Metrics, stays: &mut Vec<i64>, state: &State, workflow: &ir::Workflow, slice: &Slice, now: i64) {
    let group_id = match slice.group {
        Some(values) => match state.group_id(values) {
            Some(id) => Some(id),
            None => return, // a group never seen has no items
        },
        None => None,
    };
    for ((w, stage, group), c) in &state.counters {
        if *w != workflow.id || slice.stage.is_some_and(|s| s != *stage) || group_id.is_some_and(|g| g != *group) {
            continue;
        }
        add_counters(m, c, now);
        stays.extend(c.stay_ms.iter().copied());
    }
    if slice.stage.is_none() && slice.group.is_none() {
        if let Some(c) = state.strays.get(&workflow.id) {
            add_counters(m, c, now);
        }
    }
    for (_, instance) in state.workflows[workflow.id as usize].iter() {
        if group_id.is_some_and(|g| g != instance.group) {
            continue;
        }
        if let Some(stage) = slice.stage {
            if instance.stage != Some(stage) {
                continue;
            }
        }
        count_instance(m, workflow, instance, now);
    }
}

fn add_counters(m: &mut Metrics, c: &Counters, now: i64) {
    m.entered += c.entered;
    m.completed += c.completed;
    m.duplicate += c.duplicate;
    m.out_of_order += c.out_of_order;
    m.unexpected += c.unexpected;
    m.entries_last_minute += c.recent.last_minute(now);
}

fn count_instance(m: &mut Metrics, workflow: &ir::Workflow, instance: &Instance, now: i64) {
    if instance.was_late() {
        m.late += 1;
    }
    match instance.closed() {
        Some((Outcome::Failure, _)) => m.failed += 1,
        Some(_) => {}
        None => {
            if instance.has_missing() {
                m.missing += 1;
            } else if instance.has_at_risk() {
                m.at_risk += 1;
            }
            if instance.stage.is_some() {
                m.in_flight += 1;
                let age = now - instance.entered_at;
                if let Some(bucket) =
                    workflow.aging_ms.iter().rposition(|&b| age >= i64::try_from(b).unwrap_or(i64::MAX))
                {
                    m.aging[bucket] += 1;
                }
            }
        }
    }
}

fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Green, amber or red, from the workflow's `status` rules (defaults:
/// red when missing > 0, amber when at_risk > 0 or late > 0).
pub fn status(state: &State, workflow: &ir::Workflow, slice: &Slice, now: i64) -> Status {
    status_over(&[state], workflow, slice, now)
}

/// [`status`] of a workflow whose items are spread over several engines'
/// states: its rules read the metrics of all of them together.
pub fn status_over(states: &[&State], workflow: &ir::Workflow, slice: &Slice, now: i64) -> Status {
    let m = metrics_over(states, workflow, slice, now);
    let aged = |ms: u64| -> u64 {
        let aged_in = |state: &State| {
            let group_id = slice.group.map(|g| state.group_id(g));
            state.workflows[workflow.id as usize]
                .iter()
                .map(|(_, i)| i)
                .filter(|i| i.is_open() && i.stage.is_some())
                .filter(|i| slice.stage.is_none_or(|s| i.stage == Some(s)))
                .filter(|i| group_id.is_none_or(|g| g == Some(i.group)))
                .filter(|i| now.saturating_sub(i.entered_at) >= i64::try_from(ms).unwrap_or(i64::MAX))
                .count() as u64
        };
        states.iter().map(|state| aged_in(state)).sum()
    };
    let holds = |rules: &[Expr]| rules.iter().any(|r| matches!(eval_status(r, &m, &aged), Value::Bool(true)));
    if holds(&workflow.status.red) {
        Status::Red
    } else if holds(&workflow.status.amber) {
        Status::Amber
    } else {
        Status::Green
    }
}

fn eval_status(expr: &Expr, m: &Metrics, aged: &dyn Fn(u64) -> u64) -> Value {
    let int = |n: u64| Value::Int(n as i64);
    match expr {
        Expr::Const(v) => v.clone(),
        Expr::Metric(StatusMetric::Count(metric)) => int(m.count(*metric)),
        Expr::Metric(StatusMetric::Aged(ms)) => int(aged(*ms)),
        Expr::Unary { op: UnaryOp::Not, operand } => match eval_status(operand, m, aged) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Null,
        },
        Expr::Binary { op, lhs, rhs } => {
            let (a, b) = (eval_status(lhs, m, aged), eval_status(rhs, m, aged));
            match (op, a, b) {
                (BinaryOp::And, Value::Bool(x), Value::Bool(y)) => Value::Bool(x && y),
                (BinaryOp::Or, Value::Bool(x), Value::Bool(y)) => Value::Bool(x || y),
                (op, Value::Int(x), Value::Int(y)) => match op {
                    BinaryOp::Eq => Value::Bool(x == y),
                    BinaryOp::Ne => Value::Bool(x != y),
                    BinaryOp::Lt => Value::Bool(x < y),
                    BinaryOp::Le => Value::Bool(x <= y),
                    BinaryOp::Gt => Value::Bool(x > y),
                    BinaryOp::Ge => Value::Bool(x >= y),
                    BinaryOp::Add => Value::Int(x.saturating_add(y)),
                    BinaryOp::Sub => Value::Int(x.saturating_sub(y)),
                    BinaryOp::Mul => Value::Int(x.saturating_mul(y)),
                    BinaryOp::Div if y != 0 => Value::Int(x / y),
                    _ => Value::Null,
                },
                _ => Value::Null,
            }
        }
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------- rollups

/// Movements counted per minute for the service's trend rollups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Movement {
    pub entered: u64,
    pub completed: u64,
    pub late: u64,
    pub missing: u64,
}

impl Movement {
    pub fn add(&mut self, other: &Movement) {
        self.entered += other.entered;
        self.completed += other.completed;
        self.late += other.late;
        self.missing += other.missing;
    }
}

/// Movements by (minute start in ms, workflow, stage, group id), as the
/// engine counts them when asked (`Engine::keep_tally`). An entry counts in
/// the minute of its event's time, a `missing` in the minute of its
/// deadline's firing, in the stage the item sits in.
pub type Tally = std::collections::BTreeMap<(i64, u32, u32, u32), Movement>;

/// The start of the minute holding `ms`.
pub fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(60_000) * 60_000
}

// ---------------------------------------------------------------- breakdown

/// One workflow measured in one pass over its instances: the whole, each
/// stage and each group, with what a status view needs to say *why*.
/// [`metrics`] and [`status`] answer one slice each; this answers every
/// slice at once, so a view of 100,000 items costs one walk, not one per
/// stage and group.
///
/// Serialized, an unfinished breakdown (its stay samples kept) is what a
/// scale-out task gives its process's front, which [`absorb`]s every
/// task's and [`finish`]es the sum: the group's colour is its rules on the
/// group's counts, not the worst of the tasks' colours.
///
/// [`absorb`]: Breakdown::absorb
/// [`finish`]: Breakdown::finish
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Breakdown {
    pub whole: Part,
    /// By stage id (the id of the step that leads into it).
    pub stages: Vec<Part>,
    /// By the group's `group by` values.
    #[serde(with = "groups_as_pairs")]
    pub groups: std::collections::BTreeMap<Vec<String>, Part>,
}

/// JSON keys are strings: a group's values go as a pair with its part.
mod groups_as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::Part;

    pub fn serialize<S: Serializer>(groups: &BTreeMap<Vec<String>, Part>, to: S) -> Result<S::Ok, S::Error> {
        to.collect_seq(groups.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<BTreeMap<Vec<String>, Part>, D::Error> {
        Ok(Vec::<(Vec<String>, Part)>::deserialize(from)?.into_iter().collect())
    }
}

impl Breakdown {
    /// Adds another engine's breakdown of the same workflow, unfinished:
    /// its items are other items (another partition's).
    pub fn absorb(&mut self, other: Breakdown, workflow: &ir::Workflow) {
        self.whole.absorb(other.whole);
        for (mine, theirs) in self.stages.iter_mut().zip(other.stages) {
            mine.absorb(theirs);
        }
        let thresholds: Vec<u64> = self.whole.aged.iter().map(|(ms, _)| *ms).collect();
        for (values, part) in other.groups {
            self.groups.entry(values).or_insert_with(|| Part::new(workflow, &thresholds)).absorb(part);
        }
    }

    /// The stay percentiles of every slice, from the samples gathered.
    pub fn finish(&mut self) {
        self.whole.finish();
        self.stages.iter_mut().chain(self.groups.values_mut()).for_each(Part::finish);
    }
}

/// The numbers of one slice, with the oldest item behind each condition.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Part {
    pub metrics: Metrics,
    /// Per `aged(D)` threshold of the workflow's status rules: (D in ms,
    /// in-flight items at least that long in their stage).
    pub aged: Vec<(u64, u64)>,
    pub oldest: Oldest,
    /// The earliest deadline still ahead of an item, of a step into this
    /// stage (for a group or the whole: of any step); for a scheduled
    /// workflow, also of the first steps of the next occurrence to open.
    pub next_deadline: Option<NextDeadline>,
    #[serde(default)]
    stays: Vec<i64>,
}

/// The item that has been longest in its stage, per condition.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Oldest {
    pub in_flight: Option<Witness>,
    pub missing: Option<Witness>,
    pub at_risk: Option<Witness>,
    pub late: Option<Witness>,
    pub failed: Option<Witness>,
}

impl Oldest {
    /// The witness of a count metric, when the breakdown keeps one.
    pub fn of(&self, metric: Metric) -> Option<&Witness> {
        match metric {
            Metric::InFlight => self.in_flight.as_ref(),
            Metric::Missing => self.missing.as_ref(),
            Metric::AtRisk => self.at_risk.as_ref(),
            Metric::Late => self.late.as_ref(),
            Metric::Failed => self.failed.as_ref(),
            Metric::Entered | Metric::Completed | Metric::Duplicate | Metric::OutOfOrder | Metric::Unexpected => None,
        }
    }
}

/// An item: its key string (values joined by U+001F) and when it entered
/// its stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Witness {
    pub key: String,
    pub entered_at: i64,
}

/// A pending deadline: when, of which step, whether it is a clock time
/// (`by 08:00`) rather than a duration after entry, and how many items
/// wait for that same instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NextDeadline {
    pub at: i64,
    pub step: u32,
    pub absolute: bool,
    pub items: u64,
}

/// Which rule made a slice red or amber.
#[derive(Clone, Debug)]
pub struct Verdict<'w> {
    pub status: Status,
    /// The first rule of that colour that holds; `None` when green.
    pub rule: Option<&'w Expr>,
}

impl Part {
    fn new(workflow: &ir::Workflow, thresholds: &[u64]) -> Part {
        Part {
            metrics: Metrics { aging: vec![0; workflow.aging_ms.len()], ..Metrics::default() },
            aged: thresholds.iter().map(|&ms| (ms, 0)).collect(),
            ..Part::default()
        }
    }

    /// Green, amber or red by the workflow's rules, and the rule that held.
    pub fn verdict<'w>(&self, workflow: &'w ir::Workflow) -> Verdict<'w> {
        let aged = |ms: u64| self.aged.iter().find(|(d, _)| *d == ms).map_or(0, |(_, n)| *n);
        let first = |rules: &'w [Expr]| {
            rules.iter().find(|r| matches!(eval_status(r, &self.metrics, &aged), Value::Bool(true)))
        };
        if let Some(rule) = first(&workflow.status.red) {
            Verdict { status: Status::Red, rule: Some(rule) }
        } else if let Some(rule) = first(&workflow.status.amber) {
            Verdict { status: Status::Amber, rule: Some(rule) }
        } else {
            Verdict { status: Status::Green, rule: None }
        }
    }

    fn witness(slot: &mut Option<Witness>, instance: &Instance) {
        if slot.as_ref().is_none_or(|w| instance.entered_at < w.entered_at) {
            *slot = Some(Witness { key: instance.key.to_string(), entered_at: instance.entered_at });
        }
    }

    fn count(&mut self, workflow: &ir::Workflow, instance: &Instance, now: i64) {
        count_instance(&mut self.metrics, workflow, instance, now);
        if instance.was_late() {
            Part::witness(&mut self.oldest.late, instance);
        }
        match instance.closed() {
            Some((Outcome::Failure, _)) => Part::witness(&mut self.oldest.failed, instance),
            Some(_) => {}
            None => {
                if instance.has_missing() {
                    Part::witness(&mut self.oldest.missing, instance);
                } else if instance.has_at_risk() {
                    Part::witness(&mut self.oldest.at_risk, instance);
                }
                if instance.stage.is_some() {
                    Part::witness(&mut self.oldest.in_flight, instance);
                    let age = now.saturating_sub(instance.entered_at);
                    for (ms, n) in &mut self.aged {
                        if age >= i64::try_from(*ms).unwrap_or(i64::MAX) {
                            *n += 1;
                        }
                    }
                }
            }
        }
    }

    /// Adds another slice's numbers to this one's: the same slice, of the
    /// items another engine holds (see [`breakdown_over`]).
    fn absorb(&mut self, other: Part) {
        let (m, o) = (&mut self.metrics, &other.metrics);
        for (sum, add) in [
            (&mut m.in_flight, o.in_flight),
            (&mut m.entered, o.entered),
            (&mut m.completed, o.completed),
            (&mut m.failed, o.failed),
            (&mut m.late, o.late),
            (&mut m.missing, o.missing),
            (&mut m.at_risk, o.at_risk),
            (&mut m.duplicate, o.duplicate),
            (&mut m.out_of_order, o.out_of_order),
            (&mut m.unexpected, o.unexpected),
            (&mut m.entries_last_minute, o.entries_last_minute),
        ] {
            *sum += add;
        }
        for (sum, add) in m.aging.iter_mut().zip(&o.aging) {
            *sum += add;
        }
        for ((_, sum), (_, add)) in self.aged.iter_mut().zip(&other.aged) {
            *sum += add;
        }
        let older = |mine: &mut Option<Witness>, theirs: Option<Witness>| {
            if let Some(theirs) = theirs {
                if mine.as_ref().is_none_or(|w| theirs.entered_at < w.entered_at) {
                    *mine = Some(theirs);
                }
            }
        };
        let (mine, theirs) = (&mut self.oldest, other.oldest);
        older(&mut mine.in_flight, theirs.in_flight);
        older(&mut mine.missing, theirs.missing);
        older(&mut mine.at_risk, theirs.at_risk);
        older(&mut mine.late, theirs.late);
        older(&mut mine.failed, theirs.failed);
        if let Some(next) = other.next_deadline {
            self.deadline(next.at, next.step, next.absolute, next.items);
        }
        self.stays.extend(other.stays);
    }

    /// Counts `items` waiting for `step`'s deadline at `at`, if it is the
    /// earliest so far.
    fn deadline(&mut self, at: i64, step: u32, absolute: bool, items: u64) {
        match &mut self.next_deadline {
            Some(next) if next.at == at && next.step == step => next.items += items,
            Some(next) if next.at <= at => {}
            next => *next = Some(NextDeadline { at, step, absolute, items }),
        }
    }

    fn finish(&mut self) {
        self.stays.sort_unstable();
        self.metrics.stay_p50_ms = percentile(&self.stays, 50);
        self.metrics.stay_p95_ms = percentile(&self.stays, 95);
        self.stays = Vec::new();
    }
}

/// Measures a workflow: the whole, every stage and every group, in one
/// walk over its instances and counters.
pub fn breakdown(state: &State, workflow: &ir::Workflow, now: i64) -> Breakdown {
    breakdown_over(&[state], workflow, now)
}

/// [`breakdown`] of a workflow whose items are spread over several
/// engines' states (one per input partition: `engine::share`): every
/// slice of all of them together, groups matched by their values.
pub fn breakdown_over(states: &[&State], workflow: &ir::Workflow, now: i64) -> Breakdown {
    let mut out = unfinished_breakdown_over(states, workflow, now);
    out.finish();
    out
}

/// [`breakdown_over`] before its stay percentiles are taken: the samples
/// are kept, for [`Breakdown::absorb`] to add another engine's.
pub fn unfinished_breakdown_over(states: &[&State], workflow: &ir::Workflow, now: i64) -> Breakdown {
    let mut thresholds = Vec::new();
    for rule in workflow.status.red.iter().chain(&workflow.status.amber) {
        collect_aged(rule, &mut thresholds);
    }
    let fresh = || Part::new(workflow, &thresholds);
    let mut out = Breakdown {
        whole: fresh(),
        stages: workflow.steps.iter().map(|_| fresh()).collect(),
        groups: std::collections::BTreeMap::new(),
    };
    for state in states {
        // Group ids are each state's own: walked by id, then matched by values.
        let mut groups = std::collections::BTreeMap::new();
        walk(state, workflow, now, &mut out, &mut groups, &fresh);
        for (id, part) in groups {
            out.groups.entry(state.group(id).to_vec()).or_insert_with(fresh).absorb(part);
        }
    }
    out
}

/// One state's part of [`breakdown_over`]: into `out`'s whole and stages,
/// and into `groups` by the state's group ids.
fn walk(
    state: &State,
    workflow: &ir::Workflow,
    now: i64,
    out: &mut Breakdown,
    groups: &mut std::collections::BTreeMap<u32, Part>,
    fresh: &dyn Fn() -> Part,
) {
    for ((w, stage, group), c) in &state.counters {
        if *w != workflow.id {
            continue;
        }
        let group = groups.entry(*group).or_insert_with(fresh);
        for part in [Some(&mut out.whole), out.stages.get_mut(*stage as usize), Some(group)].into_iter().flatten() {
            add_counters(&mut part.metrics, c, now);
            part.stays.extend(c.stay_ms.iter().copied());
        }
    }
    if let Some(c) = state.strays.get(&workflow.id) {
        add_counters(&mut out.whole.metrics, c, now);
    }
    for (_, instance) in state.workflows[workflow.id as usize].iter() {
        let group = groups.entry(instance.group).or_insert_with(fresh);
        let stage = instance.stage.and_then(|s| out.stages.get_mut(s as usize));
        for part in [Some(&mut out.whole), stage, Some(&mut *group)].into_iter().flatten() {
            part.count(workflow, instance, now);
        }
        if !instance.is_open() {
            continue;
        }
        // The steps the item waits for: those out of its stage, or the
        // start steps of an occurrence that has not started.
        let awaited: &[u32] = match instance.stage {
            Some(stage) => &workflow.stages[stage as usize].timers,
            None => &[],
        };
        let starts = workflow.steps.iter().filter(|s| instance.stage.is_none() && s.sources.is_empty()).map(|s| s.id);
        for n in awaited.iter().copied().chain(starts) {
            let step = &workflow.steps[n as usize];
            if step.optional || instance.missing & crate::engine::bit(n) != 0 || instance.time(n).is_some() {
                continue;
            }
            let Some(at) = crate::engine::deadline(step, instance.date, instance.entered_at) else { continue };
            let absolute =
                step.timing.by.as_ref().and_then(|b| mon_stdlib::time::clock_deadline(instance.date, b)) == Some(at);
            out.whole.deadline(at, n, absolute, 1);
            group.deadline(at, n, absolute, 1);
            if let Some(part) = out.stages.get_mut(n as usize) {
                part.deadline(at, n, absolute, 1);
            }
        }
    }
    // A scheduled workflow's next occurrence has no item yet, but its
    // first steps already have a deadline ("positions file due 08:00").
    if let Some((opens_at, date)) = state.next_opening(workflow.id) {
        for step in workflow.steps.iter().filter(|s| s.sources.is_empty() && !s.optional) {
            let Some(at) = crate::engine::deadline(step, date, opens_at) else { continue };
            let absolute = step.timing.by.as_ref().and_then(|b| mon_stdlib::time::clock_deadline(date, b)) == Some(at);
            out.whole.deadline(at, step.id, absolute, 1);
            if let Some(part) = out.stages.get_mut(step.id as usize) {
                part.deadline(at, step.id, absolute, 1);
            }
        }
    }
}

fn collect_aged(expr: &Expr, out: &mut Vec<u64>) {
    match expr {
        Expr::Metric(StatusMetric::Aged(ms)) if !out.contains(ms) => out.push(*ms),
        Expr::Unary { operand, .. } => collect_aged(operand, out),
        Expr::Binary { lhs, rhs, .. } => {
            collect_aged(lhs, out);
            collect_aged(rhs, out);
        }
        _ => {}
    }
}

/// The metrics a status rule reads, in the order they appear.
pub fn rule_metrics(expr: &Expr) -> Vec<StatusMetric> {
    fn walk(expr: &Expr, out: &mut Vec<StatusMetric>) {
        match expr {
            Expr::Metric(m) if !out.contains(m) => out.push(m.clone()),
            Expr::Unary { operand, .. } => walk(operand, out),
            Expr::Binary { lhs, rhs, .. } => {
                walk(lhs, out);
                walk(rhs, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(expr, &mut out);
    out
}

/// A status rule as it is written: `missing > 0 or aged(15m) > 10`.
pub fn rule_text(expr: &Expr) -> String {
    fn precedence(op: BinaryOp) -> u8 {
        match op {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => 3,
            BinaryOp::In | BinaryOp::NotIn | BinaryOp::Coalesce => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div => 5,
        }
    }
    fn word(op: BinaryOp) -> &'static str {
        match op {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::In => "in",
            BinaryOp::NotIn => "not in",
            BinaryOp::Coalesce => "??",
        }
    }
    fn text(expr: &Expr, outer: u8) -> String {
        match expr {
            Expr::Const(Value::Int(n)) => n.to_string(),
            Expr::Const(Value::Bool(b)) => b.to_string(),
            Expr::Const(other) => format!("{other:?}"),
            Expr::Metric(StatusMetric::Count(metric)) => metric.name().to_string(),
            Expr::Metric(StatusMetric::Aged(ms)) => format!("aged({})", duration_text(*ms)),
            Expr::Unary { op: UnaryOp::Not, operand } => format!("not {}", text(operand, 6)),
            Expr::Binary { op, lhs, rhs } => {
                let p = precedence(*op);
                let inner = format!("{} {} {}", text(lhs, p), word(*op), text(rhs, p + 1));
                if p < outer {
                    format!("({inner})")
                } else {
                    inner
                }
            }
            _ => "…".to_string(),
        }
    }
    text(expr, 0)
}

/// A duration in the language's largest whole unit: `15m`, `1h`, `90s`.
pub fn duration_text(ms: u64) -> String {
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}
