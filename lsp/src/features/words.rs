//! Timing rules in words, for hover: "within 5 minutes after stage sent3;
//! amber after 3 minutes".

use mon_grammar::ast::{ClauseKind, StepDecl, StepForm, StmtKind, TimeOfDay, WorkflowDecl, Zone};

/// `90000` → "1 minute 30 seconds".
pub fn duration(millis: u64) -> String {
    const UNITS: [(u64, &str); 5] =
        [(86_400_000, "day"), (3_600_000, "hour"), (60_000, "minute"), (1000, "second"), (1, "millisecond")];
    let mut rest = millis;
    let mut parts = Vec::new();
    for (size, name) in UNITS {
        let n = rest / size;
        if n > 0 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
            rest %= size;
        }
    }
    if parts.is_empty() {
        "0 seconds".into()
    } else {
        parts.join(" ")
    }
}

fn clock(time: &TimeOfDay) -> String {
    if time.second == 0 {
        format!("{:02}:{:02}", time.hour, time.minute)
    } else {
        format!("{:02}:{:02}:{:02}", time.hour, time.minute, time.second)
    }
}

/// The workflow's `timezone`, or UTC.
fn default_zone(workflow: &WorkflowDecl) -> String {
    workflow
        .stmts
        .iter()
        .find_map(|s| match &s.kind {
            StmtKind::Timezone(zone) => Some(zone.name.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "UTC".into())
}

fn zone_name(zone: &Option<Zone>, default: &str) -> String {
    zone.as_ref().map_or_else(|| default.to_string(), |z| z.name.clone())
}

/// The stages a step leaves: its `after` list, or for `then` the step
/// above it.
fn sources(workflow: &WorkflowDecl, step: &StepDecl) -> Vec<String> {
    match step.form {
        StepForm::Step => step.after.iter().map(|a| a.name.clone()).collect(),
        StepForm::Then { .. } => {
            let mut previous = None;
            for stmt in &workflow.stmts {
                if let StmtKind::Step(s) = &stmt.kind {
                    if s.span == step.span {
                        break;
                    }
                    previous = Some(s.step_name().name.clone());
                }
            }
            previous.into_iter().collect()
        }
        StepForm::Expect | StepForm::Start => Vec::new(),
    }
}

/// One paragraph describing when a step must happen.
pub fn step_timing(workflow: &WorkflowDecl, step: &StepDecl) -> String {
    let zone = default_zone(workflow);
    let from = sources(workflow, step);
    let from_words = match from.as_slice() {
        [] => String::new(),
        [one] => format!("stage {one}"),
        many => format!("stage {}", many.join(" or ")),
    };
    let mut parts: Vec<String> = Vec::new();
    let mut deadline = false;
    for clause in &step.clauses {
        let words = match &clause.kind {
            ClauseKind::Within(d) => {
                deadline = true;
                if from_words.is_empty() {
                    format!("within {}", duration(d.millis))
                } else {
                    format!("within {} after {from_words}", duration(d.millis))
                }
            }
            ClauseKind::By { time, zone: z, day_offset } => {
                deadline = true;
                let days = match day_offset {
                    Some((1, _)) => " the next day".to_string(),
                    Some((n, _)) => format!(" {n} days later"),
                    None => String::new(),
                };
                format!("by {} {}{days}", clock(time), zone_name(z, &zone))
            }
            ClauseKind::Warn(d) => format!("amber after {}", duration(d.millis)),
            ClauseKind::WarnAt { time, zone: z } => format!("amber at {} {}", clock(time), zone_name(z, &zone)),
            ClauseKind::NotBefore(d) => format!("not before {}", duration(d.millis)),
            ClauseKind::NotBeforeTime { time, zone: z } => {
                format!("not before {} {}", clock(time), zone_name(z, &zone))
            }
            ClauseKind::Every(days) => {
                format!("every {}", days.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", "))
            }
            ClauseKind::Except(calendars) => {
                format!("except on {}", calendars.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "))
            }
            ClauseKind::Open(time) => format!("expected from {} {zone}", clock(time)),
            ClauseKind::Setting(_) => continue,
        };
        parts.push(words);
    }
    if !deadline {
        let start = matches!(step.form, StepForm::Expect | StepForm::Start);
        parts.insert(
            0,
            match (start, from_words.is_empty()) {
                (true, _) => "starts an instance; no deadline".to_string(),
                (false, true) => "no deadline".to_string(),
                (false, false) => format!("after {from_words}; no deadline"),
            },
        );
    }
    if matches!(step.form, StepForm::Then { maybe: true }) {
        parts.push("optional (never missing, only late)".into());
    }
    if let Some(outcome) = &step.outcome {
        parts.push(format!("closes the instance: {}", outcome.name));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(duration(300_000), "5 minutes");
        assert_eq!(duration(5_400_000), "1 hour 30 minutes");
        assert_eq!(duration(1000), "1 second");
    }
}
