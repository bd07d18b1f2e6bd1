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
use serde::Serialize;

use crate::engine::{Counters, Instance, State};

/// Green, amber or red: the compiler's vocabulary, shared with `expect status`.
pub use mon_compiler::ir::Status;

/// The numbers of one workflow, or one of its stages or groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
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
    let mut m = Metrics { aging: vec![0; workflow.aging_ms.len()], ..Metrics::default() };
    let mut stays: Vec<i64> = Vec::new();
    let group_id = match slice.group {
        Some(values) => match state.group_id(values) {
            Some(id) => Some(id),
            None => return m, // a group never seen has no items
        },
        None => None,
    };
    for ((w, stage, group), c) in &state.counters {
        if *w != workflow.id || slice.stage.is_some_and(|s| s != *stage) || group_id.is_some_and(|g| g != *group) {
            continue;
        }
        add_counters(&mut m, c, now);
        stays.extend(c.stay_ms.iter().copied());
    }
    if slice.stage.is_none() && slice.group.is_none() {
        if let Some(c) = state.strays.get(&workflow.id) {
            add_counters(&mut m, c, now);
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
        count_instance(&mut m, workflow, instance, now);
    }
    stays.sort_unstable();
    m.stay_p50_ms = percentile(&stays, 50);
    m.stay_p95_ms = percentile(&stays, 95);
    m
}

fn add_counters(m: &mut Metrics, c: &Counters, now: i64) {
    m.entered += c.entered;
    m.completed += c.completed;
    m.duplicate += c.duplicate;
    m.out_of_order += c.out_of_order;
    m.unexpected += c.unexpected;
    m.entries_last_minute += c.recent_entries.iter().filter(|&&e| e > now - 60_000 && e <= now).count() as u64;
}

fn count_instance(m: &mut Metrics, workflow: &ir::Workflow, instance: &Instance, now: i64) {
    if instance.was_late() {
        m.late += 1;
    }
    match instance.closed {
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
    let m = metrics(state, workflow, slice, now);
    let aged = |ms: u64| -> u64 {
        let group_id = slice.group.map(|g| state.group_id(g));
        state.workflows[workflow.id as usize]
            .iter()
            .map(|(_, i)| i)
            .filter(|i| i.closed.is_none() && i.stage.is_some())
            .filter(|i| slice.stage.is_none_or(|s| i.stage == Some(s)))
            .filter(|i| group_id.is_none_or(|g| g == Some(i.group)))
            .filter(|i| now.saturating_sub(i.entered_at) >= i64::try_from(ms).unwrap_or(i64::MAX))
            .count() as u64
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
