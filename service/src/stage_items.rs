//! What one stage holds: its in-flight items, oldest first, each with the
//! deadline it waits for and the time left (negative once overdue), behind
//! `GET /api/v1/workflows/{workflow}/stages/{stage}/items`.
//!
//! Unlike the views (`views.rs`), which the processing thread rebuilds
//! once a second whether anyone looks or not, this is made on request:
//! the HTTP handler asks the processing thread (the engine's only owner),
//! which answers with [`list`] between two batches (after the commit of
//! any batch under way, so that nothing not yet durable shows). So [`list`] must stay
//! one cheap walk of the workflow's instances: no sort of the whole stage
//! (only the `limit` oldest are ordered), no allocation per instance
//! beyond a slot number, and it must never change the state.

use std::collections::HashMap;

use mon_compiler::ir;
use mon_runtime::engine::{self, key_object, Instance};
use mon_runtime::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::views::{clock_text, group_text};

/// A stage's items, as `GET .../stages/{stage}/items` answers.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct StageItems {
    pub workflow: String,
    pub stage: String,
    /// The group asked for (values joined by `/`); null: every group.
    pub group: Option<String>,
    /// The engine's clock (RFC 3339) the ages and times left are measured
    /// on.
    pub clock: String,
    /// How many in-flight items are in the stage (in the group): `items`
    /// holds the oldest `limit` of them.
    pub in_stage: u64,
    /// Oldest first (by the time they entered the stage, then by key).
    pub items: Vec<StageItem>,
}

/// One item waiting in the stage.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct StageItem {
    /// The key as text (compound keys joined by `/`): what the item
    /// endpoint takes, with `/` as `,`.
    pub key: String,
    /// Key field name to value.
    pub key_fields: std::collections::BTreeMap<String, String>,
    /// Its `group by` values joined by `/` (empty without `group by`).
    pub group: String,
    /// When it entered the stage (RFC 3339).
    pub entered_at: String,
    /// The engine's clock minus `entered_at`.
    pub age_ms: i64,
    /// The earliest deadline of the steps it waits for; null when no step
    /// out of the stage has one (or all are optional).
    pub deadline: Option<ItemDeadline>,
}

/// The deadline an item waits for.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ItemDeadline {
    /// The step awaited.
    pub step: String,
    /// RFC 3339.
    pub at: String,
    /// `at` minus the engine's clock: negative once overdue.
    pub time_left_ms: i64,
    /// The same as `HH:MM:SS` (`-` in front once overdue).
    pub time_left: String,
    /// True once the deadline passed and a `missing` record was made.
    pub missing: bool,
    /// True once an `at_risk` warning was made for it.
    pub at_risk: bool,
}

/// Why a stage's items cannot be listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unknown {
    Workflow,
    /// The workflow's stages, for the message.
    Stage(Vec<String>),
}

/// What the HTTP side asks for.
#[derive(Clone, Debug)]
pub struct Ask {
    pub workflow: String,
    pub stage: String,
    pub group: Option<String>,
    pub limit: usize,
}

/// The `ask.limit` oldest in-flight items of the stage at `now` (the
/// engine's clock), of every state (one per input partition with state
/// per partition). No state before the engine has started: every stage is
/// then empty, but still known.
pub fn list(program: &ir::Program, states: &[&State], ask: &Ask, now: i64) -> Result<StageItems, Unknown> {
    let workflow = program.workflows.iter().find(|w| w.name == ask.workflow).ok_or(Unknown::Workflow)?;
    let stage = workflow
        .steps
        .iter()
        .position(|s| s.name == ask.stage)
        .ok_or_else(|| Unknown::Stage(workflow.steps.iter().map(|s| s.name.clone()).collect()))? as u32;
    let mut answer = StageItems {
        workflow: workflow.name.clone(),
        stage: ask.stage.clone(),
        group: ask.group.clone(),
        clock: mon_stdlib::time::format_rfc3339(now),
        in_stage: 0,
        items: Vec::new(),
    };
    let mut found: Vec<(i64, &Instance, &State)> = Vec::new();
    for &state in states {
        let Some(instances) = state.workflows.get(workflow.id as usize) else { continue };
        // Why a cache by group id: comparing the asked group with each
        // instance's would join its values once per instance.
        let mut in_group: HashMap<u32, bool> = HashMap::new();
        for (_, instance) in instances.iter() {
            if instance.stage != Some(stage) || !instance.is_open() {
                continue;
            }
            if let Some(group) = &ask.group {
                let member = *in_group
                    .entry(instance.group)
                    .or_insert_with(|| group_text(state.group(instance.group)) == *group);
                if !member {
                    continue;
                }
            }
            found.push((instance.entered_at, instance, state));
        }
    }
    answer.in_stage = found.len() as u64;
    let oldest_first =
        |a: &(i64, &Instance, &State), b: &(i64, &Instance, &State)| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key));
    // Why select before sorting: a stage of 100,000 items answers its 100
    // oldest in one linear pass plus a sort of 100.
    if found.len() > ask.limit {
        found.select_nth_unstable_by(ask.limit, oldest_first);
        found.truncate(ask.limit);
    }
    found.sort_unstable_by(oldest_first);
    answer.items = found.into_iter().map(|(_, instance, state)| item(workflow, state, stage, instance, now)).collect();
    Ok(answer)
}

fn item(workflow: &ir::Workflow, state: &State, stage: u32, instance: &Instance, now: i64) -> StageItem {
    StageItem {
        key: instance.key.replace('\u{1f}', "/"),
        key_fields: key_object(workflow, &instance.key),
        group: group_text(state.group(instance.group)),
        entered_at: mon_stdlib::time::format_rfc3339(instance.entered_at),
        age_ms: now.saturating_sub(instance.entered_at),
        deadline: awaited_deadline(workflow, stage, instance, now),
    }
}

/// The earliest deadline among the required steps out of the stage that
/// have not happened. Unlike the views' next deadline, a missed one is
/// kept: an overdue item is exactly what this list is for.
fn awaited_deadline(workflow: &ir::Workflow, stage: u32, instance: &Instance, now: i64) -> Option<ItemDeadline> {
    let timers = &workflow.stages.get(stage as usize)?.timers;
    let (at, step) = timers
        .iter()
        .filter_map(|&n| workflow.steps.get(n as usize))
        .filter(|step| !step.optional && instance.time(step.id).is_none())
        .filter_map(|step| engine::deadline(step, instance.date, instance.entered_at).map(|at| (at, step)))
        .min_by_key(|(at, step)| (*at, step.id))?;
    let left = at.saturating_sub(now);
    Some(ItemDeadline {
        step: step.name.clone(),
        at: mon_stdlib::time::format_rfc3339(at),
        time_left_ms: left,
        time_left: clock_text(left),
        missing: instance.missing & engine::bit(step.id) != 0,
        at_risk: instance.at_risk & engine::bit(step.id) != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "event placed { order_id: string, desk: string }\nevent routed { order_id: string }\n\
        workflow orders {\n  key order_id\n  group by desk\n  status red when missing > 0\n\
          start placed: placed\n  step routed: routed after placed within 30s\n}\n";

    fn program() -> ir::Program {
        use mon_compiler::{compile, NoSchemas, SourceFile};
        let sources = vec![SourceFile { path: "orders.mon".into(), text: RULES.into() }];
        compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("compiles")
    }

    fn line(kind: &str, n: usize, desk: &str, at: i64) -> String {
        format!(
            r#"{{"specversion":"1.0","id":"{kind}{n}","source":"t","type":"{kind}","time":"{}","data":{{"order_id":"O-{n}","desk":"{desk}"}}}}"#,
            mon_stdlib::time::format_rfc3339(at),
        )
    }

    fn ask(stage: &str, group: Option<&str>, limit: usize) -> Ask {
        Ask { workflow: "orders".into(), stage: stage.into(), group: group.map(str::to_string), limit }
    }

    #[test]
    fn the_oldest_come_first_with_their_deadline_and_a_limit_keeps_the_oldest() {
        let program = program();
        let mut simulation = mon_runtime::simulate::Simulation::new(&program, mon_stdlib::registry(), None, None);
        let start = mon_stdlib::time::parse_rfc3339("2026-03-02T08:00:00Z").unwrap();
        let mut out = Vec::new();
        // Placed in a shuffled order of times, so the slab order is not the
        // age order: O-0 entered last, O-4 first.
        for (n, offset) in [(0, 40_000), (1, 30_000), (2, 20_000), (3, 10_000), (4, 0)] {
            simulation.feed(&line("placed", n, if n % 2 == 0 { "FX" } else { "EQ" }, start + offset), &mut out);
        }
        simulation.feed(&line("routed", 2, "FX", start + 45_000), &mut out);
        let state = simulation.state().unwrap();
        let now = start + 50_000;
        let all = list(&program, &[state], &ask("placed", None, 100), now).unwrap();
        let keys: Vec<&str> = all.items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["O-4", "O-3", "O-1", "O-0"], "O-2 was routed and left the stage");
        assert_eq!(all.in_stage, 4);
        assert_eq!(all.items[0].age_ms, 50_000);
        let deadline = all.items[0].deadline.as_ref().unwrap();
        assert_eq!((deadline.step.as_str(), deadline.time_left_ms), ("routed", -20_000), "30 s after entry, 20 s ago");
        assert_eq!(deadline.time_left, "-00:00:20");
        assert_eq!(all.items[3].deadline.as_ref().unwrap().time_left_ms, 20_000);
        let two = list(&program, &[state], &ask("placed", None, 2), now).unwrap();
        assert_eq!(two.items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["O-4", "O-3"]);
        assert_eq!(two.in_stage, 4, "the count is of the whole stage, not of the page");
        let fx = list(&program, &[state], &ask("placed", Some("FX"), 100), now).unwrap();
        assert_eq!(fx.items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["O-4", "O-0"]);
        assert!(fx.items.iter().all(|i| i.group == "FX"));
    }

    #[test]
    fn an_unknown_workflow_or_stage_is_told_apart_and_names_the_stages() {
        let program = program();
        let mut wrong = ask("placed", None, 10);
        wrong.workflow = "nope".into();
        assert_eq!(list(&program, &[], &wrong, 0), Err(Unknown::Workflow));
        assert_eq!(
            list(&program, &[], &ask("shipped", None, 10), 0),
            Err(Unknown::Stage(vec!["placed".into(), "routed".into()]))
        );
        assert_eq!(list(&program, &[], &ask("routed", None, 10), 0).unwrap().items, vec![], "known but not started");
    }
}
