//! Scheduled workflows, whose start steps have a `by`: the days they run
//! (`every`, `except` calendars), the instant an occurrence opens, the
//! `cohort` date field, and schedule clauses given where no scheduled start
//! can take them.

use mon_grammar::ast::{self, ClauseKind, Ident};

use super::workflow::{distinct_events, Settings};
use super::Checker;
use crate::diagnostics::DiagnosticKind;
use crate::ir::{self, FieldType};
use crate::suggest::did_you_mean;
use crate::types::Type;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl<'a> Checker<'a> {
    pub(super) fn schedule(
        &mut self,
        file: usize,
        settings: &Settings<'a>,
        steps: &[&ast::StepDecl],
        starts: &[usize],
        events: &[Option<u32>],
    ) -> ir::Schedule {
        let mut weekdays: u8 = 0;
        let mut except = Vec::new();
        let mut open_seconds = settings.open.map_or(0, |(s, _)| s);
        for &i in starts {
            for clause in &steps[i].clauses {
                match &clause.kind {
                    ClauseKind::Every(days) => {
                        for day in days {
                            weekdays |= self.day_set(file, day);
                        }
                    }
                    ClauseKind::Except(calendars) => {
                        for calendar in calendars {
                            match self.calendar_ids.get(calendar.name.as_str()) {
                                Some(&id) => except.push(id),
                                None if self.is_unparsed("calendar", &calendar.name) => {}
                                None => {
                                    let suggestion = did_you_mean(&calendar.name, self.calendar_ids.keys().copied());
                                    self.report(
                                        file,
                                        calendar.span,
                                        DiagnosticKind::UnknownCalendar { name: calendar.name.clone(), suggestion },
                                    );
                                }
                            }
                        }
                    }
                    ClauseKind::Open(t) => open_seconds = t.seconds_from_midnight(),
                    _ => {}
                }
            }
        }
        self.schedule_clauses_misplaced(file, settings, steps, starts);
        let mut cohort = Vec::new();
        if let Some(field) = settings.cohort {
            for e in distinct_events(events) {
                let event = &self.events[e as usize];
                if let Some(f) = event.field(&field.name) {
                    if f.ty == FieldType::Date {
                        cohort.push((e, f.slot));
                    } else if !self.diagnostics.iter().any(|d| d.span == field.span) {
                        let kind = DiagnosticKind::CohortNotDate {
                            field: field.name.clone(),
                            event: event.name.clone(),
                            found: Type::from_field(&f.ty, false).to_string(),
                        };
                        self.report(file, field.span, kind);
                    }
                }
            }
            if cohort.is_empty() && !self.diagnostics.iter().any(|d| d.span == field.span) {
                let start_event = starts.first().and_then(|&i| events[i]).map(|e| self.events[e as usize].clone());
                if let Some(event) = start_event {
                    let suggestion = did_you_mean(&field.name, event.fields.iter().map(|f| f.name.as_str()));
                    self.report(
                        file,
                        field.span,
                        DiagnosticKind::UnknownField {
                            field: field.name.clone(),
                            event: event.name.clone(),
                            suggestion,
                        },
                    );
                }
            }
        }
        ir::Schedule { weekdays: if weekdays == 0 { 0x7f } else { weekdays }, except, open_seconds, cohort }
    }

    /// Reports `every`, `except`, `open` and `cohort` where there is no
    /// scheduled start step to attach them to. `starts` lists the steps
    /// where they are allowed.
    pub(super) fn schedule_clauses_misplaced(
        &mut self,
        file: usize,
        settings: &Settings<'a>,
        steps: &[&ast::StepDecl],
        starts: &[usize],
    ) {
        if starts.is_empty() {
            if let Some(field) = settings.cohort {
                self.report(file, field.span, DiagnosticKind::ScheduleOutsideStart { clause: "cohort" });
            }
            if let Some((_, span)) = settings.open {
                self.report(file, span, DiagnosticKind::ScheduleOutsideStart { clause: "open" });
            }
        }
        for (i, step) in steps.iter().enumerate() {
            if starts.contains(&i) {
                continue;
            }
            for clause in &step.clauses {
                let name = match clause.kind {
                    ClauseKind::Every(_) => "every",
                    ClauseKind::Except(_) => "except",
                    ClauseKind::Open(_) => "open",
                    _ => continue,
                };
                self.report(file, clause.span, DiagnosticKind::ScheduleOutsideStart { clause: name });
            }
        }
    }

    pub(super) fn day_set(&mut self, file: usize, day: &Ident) -> u8 {
        let full = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
        match day.name.as_str() {
            "day" => 0x7f,
            "weekday" => 0x1f,
            "weekend" => 0x60,
            name => {
                if let Some(i) =
                    DAY_NAMES.iter().position(|d| *d == name).or_else(|| full.iter().position(|d| *d == name))
                {
                    return 1 << i;
                }
                let options: Vec<&str> = ["day", "weekday", "weekend"].into_iter().chain(DAY_NAMES).collect();
                let suggestion = did_you_mean(name, options.iter().copied().chain(full));
                self.report(
                    file,
                    day.span,
                    DiagnosticKind::InvalidChoice {
                        what: "day",
                        found: name.to_string(),
                        expected: options.iter().map(|s| s.to_string()).collect(),
                        suggestion,
                    },
                );
                0
            }
        }
    }
}
