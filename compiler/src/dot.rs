//! Graphviz rendering of workflows (`mon compile --emit dot`).

use std::fmt::Write;

use mon_grammar::format_duration;

use crate::ir::{Outcome, Program, Timing, Warn};

/// One `digraph` with a cluster per workflow: stages are nodes, steps are
/// edges labelled with their event and timing; closing stages are drawn
/// double, failures in red.
pub fn render(program: &Program) -> String {
    let mut out =
        String::from("digraph mon {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
    for workflow in &program.workflows {
        let w = workflow.id;
        let _ = writeln!(out, "  subgraph cluster_{w} {{\n    label={};", quote(&workflow.name));
        let _ = writeln!(out, "    w{w}_start [label=\"\", shape=circle, width=0.2, style=filled, fillcolor=black];");
        for stage in &workflow.stages {
            let shape = match stage.closes {
                Some(Outcome::Failure) => ", peripheries=2, color=red",
                Some(Outcome::Success) => ", peripheries=2",
                // Never a stage's outcome: the runtime gives it on activation.
                Some(Outcome::Superseded) | None => "",
            };
            let _ = writeln!(out, "    w{w}_s{} [label={}{shape}];", stage.id, quote(&stage.name));
        }
        for step in &workflow.steps {
            let event = program.events.get(step.event as usize).map_or("?", |e| e.name.as_str());
            let mut label = event.to_string();
            if step.relevance.is_some() || step.guard.is_some() {
                label.push_str(" [where]");
            }
            let timing = describe_timing(&step.timing);
            if !timing.is_empty() {
                label.push('\n');
                label.push_str(&timing);
            }
            let style = if step.optional { ", style=dashed" } else { "" };
            if step.sources.is_empty() {
                let _ = writeln!(out, "    w{w}_start -> w{w}_s{} [label={}{style}];", step.id, quote(&label));
            }
            for source in &step.sources {
                let _ = writeln!(out, "    w{w}_s{source} -> w{w}_s{} [label={}{style}];", step.id, quote(&label));
            }
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

fn describe_timing(timing: &Timing) -> String {
    let mut parts = Vec::new();
    if let Some(ms) = timing.within_ms {
        parts.push(format!("within {}", format_duration(ms)));
    }
    if let Some(by) = &timing.by {
        let offset = if by.day_offset > 0 { format!(" +{}d", by.day_offset) } else { String::new() };
        parts.push(format!("by {:02}:{:02} {}{offset}", by.seconds / 3600, by.seconds / 60 % 60, by.zone));
    }
    match &timing.warn {
        Some(Warn::After(ms)) => parts.push(format!("warn {}", format_duration(*ms))),
        Some(Warn::At(at)) => parts.push(format!("warn at {:02}:{:02}", at.seconds / 3600, at.seconds / 60 % 60)),
        None => {}
    }
    parts.join(", ")
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}
