//! The one-line parts of workflows: settings, steps and their clauses.
//!
//! A step's clauses are printed in a canonical order (see [`clause_order`]);
//! everything here is a pure function of the tree.

use super::expr::{expr, string};
use crate::ast::*;
use crate::literal::{format_duration, format_time_of_day};

pub(super) fn setting_text(setting: &SettingKind) -> String {
    match setting {
        SettingKind::Severity(level) => format!("severity {}", level.name),
        SettingKind::Runbook(url) => format!("runbook {}", string(&url.value)),
        SettingKind::Notify { channels, min_severity } => {
            let mut text = format!("notify {}", names(channels, ", "));
            if let Some(level) = min_severity {
                text.push_str(&format!(" when severity >= {}", level.name));
            }
            text
        }
        SettingKind::Renotify(d) => format!("renotify {}", format_duration(d.millis)),
        SettingKind::Escalate { after, channel } => {
            format!("escalate after {} to {}", format_duration(after.millis), channel.name)
        }
        SettingKind::Grace(d) => format!("grace {}", format_duration(d.millis)),
    }
}

pub(super) fn step_text(step: &StepDecl) -> String {
    let mut text = match step.form {
        StepForm::Expect | StepForm::Then { .. } => {
            let mut text = match step.form {
                StepForm::Then { maybe: true } => format!("then maybe {}", step.event.name),
                StepForm::Then { maybe: false } => format!("then {}", step.event.name),
                _ => format!("expect {}", step.event.name),
            };
            if let Some(alias) = &step.name {
                text.push_str(&format!(" as {}", alias.name));
            }
            text
        }
        StepForm::Start | StepForm::Step => {
            let keyword = if step.form == StepForm::Start { "start" } else { "step" };
            format!("{keyword} {}: {}", step.step_name().name, step.event.name)
        }
    };
    if let Some(predicate) = &step.predicate {
        text.push_str(" where ");
        text.push_str(&expr(predicate));
    }
    if !step.after.is_empty() {
        text.push_str(" after ");
        text.push_str(&names(&step.after, " | "));
    }
    for clause in clause_order(&step.clauses) {
        text.push(' ');
        text.push_str(&clause_text(&clause.kind));
    }
    if let Some(outcome) = &step.outcome {
        text.push_str(&format!(" -> {}", outcome.name));
    }
    text
}

/// The clauses in canonical order, unless that order would put `notify`
/// right after a clock time without a zone: the grammar would read `notify`
/// as the zone (`reserved` in mon.pest fails to reserve it), so the author's
/// order, which parsed, is kept.
fn clause_order(clauses: &[Clause]) -> Vec<&Clause> {
    let mut sorted: Vec<&Clause> = clauses.iter().collect();
    sorted.sort_by_key(|c| clause_rank(&c.kind));
    let zoneless_time = |c: &Clause| {
        matches!(
            c.kind,
            ClauseKind::By { zone: None, day_offset: None, .. }
                | ClauseKind::WarnAt { zone: None, .. }
                | ClauseKind::NotBeforeTime { zone: None, .. }
        )
    };
    let notify = |c: &Clause| matches!(c.kind, ClauseKind::Setting(SettingKind::Notify { .. }));
    if sorted.windows(2).any(|w| zoneless_time(w[0]) && notify(w[1])) {
        return clauses.iter().collect();
    }
    sorted
}

/// Where a clause goes in a step: timing first, from the tightest to the
/// loosest, then the schedule, then the settings it overrides. The sort is
/// stable, so clauses of one rank keep the author's order.
fn clause_rank(clause: &ClauseKind) -> u8 {
    match clause {
        ClauseKind::Within(_) => 0,
        ClauseKind::By { .. } => 1,
        ClauseKind::Warn(_) | ClauseKind::WarnAt { .. } => 2,
        ClauseKind::NotBefore(_) | ClauseKind::NotBeforeTime { .. } => 3,
        ClauseKind::Every(_) => 4,
        ClauseKind::Except(_) => 5,
        ClauseKind::Open(_) => 6,
        ClauseKind::Setting(_) => 7,
    }
}

fn clause_text(clause: &ClauseKind) -> String {
    match clause {
        ClauseKind::Within(d) => format!("within {}", format_duration(d.millis)),
        ClauseKind::By { time, zone, day_offset } => {
            let mut text = format!("by {}", time_of_day(time));
            push_zone(&mut text, zone);
            if let Some((days, _)) = day_offset {
                text.push_str(&format!(" +{days}d"));
            }
            text
        }
        ClauseKind::Warn(d) => format!("warn {}", format_duration(d.millis)),
        ClauseKind::WarnAt { time, zone } => {
            let mut text = format!("warn at {}", time_of_day(time));
            push_zone(&mut text, zone);
            text
        }
        ClauseKind::NotBefore(d) => format!("not before {}", format_duration(d.millis)),
        ClauseKind::NotBeforeTime { time, zone } => {
            let mut text = format!("not before {}", time_of_day(time));
            push_zone(&mut text, zone);
            text
        }
        ClauseKind::Every(days) => format!("every {}", names(days, ", ")),
        ClauseKind::Except(calendars) => format!("except {}", names(calendars, ", ")),
        ClauseKind::Open(time) => format!("open {}", time_of_day(time)),
        ClauseKind::Setting(setting) => setting_text(setting),
    }
}

pub(super) fn target_text(target: &Target) -> String {
    match &target.step {
        Some(step) => format!("{}.{}", target.workflow.name, step.name),
        None => target.workflow.name.clone(),
    }
}

pub(super) fn names(idents: &[Ident], sep: &str) -> String {
    idents.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(sep)
}

pub(super) fn qualified(q: &QualifiedName) -> String {
    format!("{}.{}", q.qualifier.name, q.name.name)
}

pub(super) fn push_zone(text: &mut String, zone: &Option<Zone>) {
    if let Some(zone) = zone {
        text.push(' ');
        text.push_str(&zone.name);
    }
}

pub(super) fn time_of_day(t: &TimeOfDay) -> String {
    format_time_of_day(t.hour, t.minute, t.second)
}
