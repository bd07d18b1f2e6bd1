//! What changed between two rule versions: the source, file by file as
//! unified diffs, and the program, as workflows and steps added, removed
//! or changed (timings, conditions, order, outcome, alerting), matched by
//! name as an activation matches them.
//!
//! The program diff reads the compiled programs, not the text: a comment
//! or a reformatting changes the source diff and nothing here.

use std::collections::BTreeMap;

use mon_compiler::ir::{Program, Step, Workflow};
use serde::Serialize;
use serde_json::Value;

/// One file's change.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FileDiff {
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub status: &'static str,
    /// A unified diff (`---`/`+++` headers, three lines of context).
    pub diff: String,
}

/// The files that differ, in path order.
pub fn source_diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<FileDiff> {
    let paths: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut diffs = Vec::new();
    for path in paths {
        let (old, new) = (before.get(path), after.get(path));
        let status = match (old, new) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => "changed",
            (None, _) => "added",
            (_, None) => "removed",
        };
        let (old, new) = (old.map_or("", String::as_str), new.map_or("", String::as_str));
        let diff = similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{path}"), &format!("b/{path}"))
            .to_string();
        diffs.push(FileDiff { path: path.clone(), status, diff });
    }
    diffs
}

/// What changed in the compiled program.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProgramDiff {
    pub workflows_added: Vec<String>,
    pub workflows_removed: Vec<String>,
    pub workflows_changed: Vec<WorkflowDiff>,
}

impl ProgramDiff {
    pub fn is_empty(&self) -> bool {
        self.workflows_added.is_empty() && self.workflows_removed.is_empty() && self.workflows_changed.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkflowDiff {
    pub workflow: String,
    pub steps_added: Vec<String>,
    pub steps_removed: Vec<String>,
    pub steps_changed: Vec<StepDiff>,
    /// Workflow-wide settings that changed (key, grouping, schedule, ...).
    pub changes: Vec<Change>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepDiff {
    pub step: String,
    pub changes: Vec<Change>,
}

/// One setting's before and after, as the compiled program holds it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Change {
    /// `timing`, `where`, `after`, `optional`, `outcome`, `alerting`, `key`,
    /// `group_by`, `schedule`, `timezone`, `grace`, `retain`, ...
    pub what: &'static str,
    #[schema(value_type = Object)]
    pub before: Value,
    #[schema(value_type = Object)]
    pub after: Value,
}

pub fn program_diff(before: &Program, after: &Program) -> ProgramDiff {
    let find = |program: &'_ Program, name: &str| program.workflows.iter().find(|w| w.name == name).cloned();
    let mut diff = ProgramDiff::default();
    for old in &before.workflows {
        match find(after, &old.name) {
            None => diff.workflows_removed.push(old.name.clone()),
            Some(new) => {
                let changed = workflow_diff(before, old, after, &new);
                if !(changed.steps_added.is_empty()
                    && changed.steps_removed.is_empty()
                    && changed.steps_changed.is_empty()
                    && changed.changes.is_empty())
                {
                    diff.workflows_changed.push(changed);
                }
            }
        }
    }
    for new in &after.workflows {
        if find(before, &new.name).is_none() {
            diff.workflows_added.push(new.name.clone());
        }
    }
    diff
}

fn workflow_diff(old_program: &Program, old: &Workflow, new_program: &Program, new: &Workflow) -> WorkflowDiff {
    let mut changes = Vec::new();
    let key_names = |w: &Workflow| w.key.iter().map(|k| k.name.clone()).collect::<Vec<_>>();
    let group_names = |w: &Workflow| w.group_by.iter().map(|g| g.name.clone()).collect::<Vec<_>>();
    compare(&mut changes, "key", &key_names(old), &key_names(new));
    compare(&mut changes, "group_by", &group_names(old), &group_names(new));
    compare(
        &mut changes,
        "schedule",
        &old.schedule.as_ref().map(schedule_words),
        &new.schedule.as_ref().map(schedule_words),
    );
    compare(&mut changes, "timezone", &old.timezone, &new.timezone);
    compare(&mut changes, "grace_ms", &old.grace_ms, &new.grace_ms);
    compare(&mut changes, "retain_ms", &old.retain_ms, &new.retain_ms);
    compare(&mut changes, "aging_ms", &old.aging_ms, &new.aging_ms);
    compare(&mut changes, "status", &old.status, &new.status);
    compare(&mut changes, "alerting", &old.alerting, &new.alerting);
    compare(&mut changes, "on_out_of_order", &old.on_out_of_order, &new.on_out_of_order);
    compare(&mut changes, "on_duplicate", &old.on_duplicate, &new.on_duplicate);
    compare(&mut changes, "on_unexpected", &old.on_unexpected, &new.on_unexpected);
    let upstream = |p: &Program, w: &Workflow| {
        w.depends_on.iter().filter_map(|id| p.workflows.get(*id as usize)).map(|u| u.name.clone()).collect::<Vec<_>>()
    };
    compare(&mut changes, "depends_on", &upstream(old_program, old), &upstream(new_program, new));

    let step_named = |w: &'_ Workflow, name: &str| w.steps.iter().find(|s| s.name == name).cloned();
    let mut diff = WorkflowDiff {
        workflow: new.name.clone(),
        steps_added: new.steps.iter().filter(|s| step_named(old, &s.name).is_none()).map(|s| s.name.clone()).collect(),
        steps_removed: old
            .steps
            .iter()
            .filter(|s| step_named(new, &s.name).is_none())
            .map(|s| s.name.clone())
            .collect(),
        steps_changed: Vec::new(),
        changes,
    };
    for old_step in &old.steps {
        let Some(new_step) = step_named(new, &old_step.name) else { continue };
        let changes = step_changes(old_program, old, old_step, new_program, new, &new_step);
        if !changes.is_empty() {
            diff.steps_changed.push(StepDiff { step: old_step.name.clone(), changes });
        }
    }
    diff
}

fn step_changes(
    old_program: &Program,
    old_workflow: &Workflow,
    old: &Step,
    new_program: &Program,
    new_workflow: &Workflow,
    new: &Step,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let event = |p: &Program, s: &Step| p.events.get(s.event as usize).map(|e| e.name.clone());
    compare(&mut changes, "event", &event(old_program, old), &event(new_program, new));
    compare(&mut changes, "timing", &old.timing, &new.timing);
    // Conditions compare as compiled expressions; slots of the same field
    // can move when a schema gains a field, which shows here as a change.
    compare(&mut changes, "where", &(&old.relevance, &old.guard), &(&new.relevance, &new.guard));
    let sources = |w: &Workflow, s: &Step| {
        s.sources.iter().filter_map(|id| w.steps.get(*id as usize)).map(|x| x.name.clone()).collect::<Vec<_>>()
    };
    compare(&mut changes, "after", &sources(old_workflow, old), &sources(new_workflow, new));
    compare(&mut changes, "optional", &old.optional, &new.optional);
    compare(&mut changes, "outcome", &old.outcome, &new.outcome);
    compare(&mut changes, "alerting", &old.alerting, &new.alerting);
    compare(&mut changes, "grace_ms", &old.grace_ms, &new.grace_ms);
    changes
}

fn schedule_words(schedule: &mon_compiler::ir::Schedule) -> Value {
    serde_json::json!({
        "weekdays": schedule.weekdays,
        "except": schedule.except,
        "open_seconds": schedule.open_seconds,
    })
}

fn compare<T: Serialize + PartialEq>(changes: &mut Vec<Change>, what: &'static str, before: &T, after: &T) {
    if before != after {
        let json = |v: &T| serde_json::to_value(v).unwrap_or(Value::Null);
        changes.push(Change { what, before: json(before), after: json(after) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Bundle;

    fn program(text: &str) -> Program {
        let bundle = Bundle { files: [("rules.mon".to_string(), text.to_string())].into() };
        let compiled = bundle.compile(mon_stdlib::registry());
        let diagnostics = compiled.diagnostics_json();
        compiled.compilation.program.unwrap_or_else(|| panic!("{diagnostics:?}"))
    }

    const EVENTS: &str = "event a { id: string }\nevent b { id: string }\nevent c { id: string }\n";

    #[test]
    fn names_workflows_and_steps_added_removed_and_retimed() {
        let before = program(&format!(
            "{EVENTS}workflow flow {{\n key id\n expect a\n then b within 30m\n}}\nworkflow gone {{\n key id\n expect a\n then c\n}}\n"
        ));
        let after = program(&format!(
            "{EVENTS}workflow flow {{\n key id\n expect a\n then b within 1h\n then c within 5m\n}}\nworkflow new {{\n key id\n expect c\n then a\n}}\n"
        ));
        let diff = program_diff(&before, &after);
        assert_eq!(diff.workflows_added, ["new"]);
        assert_eq!(diff.workflows_removed, ["gone"]);
        assert_eq!(diff.workflows_changed.len(), 1);
        let flow = &diff.workflows_changed[0];
        assert_eq!(flow.workflow, "flow");
        assert_eq!(flow.steps_added, ["c"]);
        assert!(flow.steps_removed.is_empty());
        let timing = flow.steps_changed.iter().find(|s| s.step == "b").expect("b changed");
        let change = timing.changes.iter().find(|c| c.what == "timing").expect("timing changed");
        assert_eq!(change.before["within_ms"], 1_800_000);
        assert_eq!(change.after["within_ms"], 3_600_000);
        assert!(program_diff(&before, &before).is_empty());
    }

    #[test]
    fn source_diff_lists_only_files_that_differ() {
        let before: BTreeMap<String, String> = [
            ("a.mon".into(), "one\ntwo\n".into()),
            ("same.mon".into(), "x\n".into()),
            ("old.mon".into(), "o\n".into()),
        ]
        .into();
        let after: BTreeMap<String, String> = [
            ("a.mon".into(), "one\nthree\n".into()),
            ("same.mon".into(), "x\n".into()),
            ("new.mon".into(), "n\n".into()),
        ]
        .into();
        let diffs = source_diff(&before, &after);
        let summary: Vec<(&str, &str)> = diffs.iter().map(|d| (d.path.as_str(), d.status)).collect();
        assert_eq!(summary, [("a.mon", "changed"), ("new.mon", "added"), ("old.mon", "removed")]);
        assert!(diffs[0].diff.contains("-two\n") && diffs[0].diff.contains("+three\n"), "{}", diffs[0].diff);
        assert!(diffs[0].diff.starts_with("--- a/a.mon\n+++ b/a.mon\n"), "{}", diffs[0].diff);
    }
}
