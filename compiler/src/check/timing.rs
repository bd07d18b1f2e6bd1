//! A step's timing clauses (`within`, `by`, `warn`, `not before`): each at
//! most once, clock times in the step's zone, and the combinations that
//! cannot work (a warning after its deadline, `within` on a start).

use std::collections::HashMap;

use mon_grammar::ast::{self, ClauseKind, Span};

use super::Checker;
use crate::diagnostics::{DiagnosticKind, TimingConflict};
use crate::ir;

impl<'a> Checker<'a> {
    pub(super) fn timing(
        &mut self,
        file: usize,
        step: &ast::StepDecl,
        timezone: &str,
        start: bool,
        scheduled: bool,
    ) -> ir::Timing {
        let mut timing = ir::Timing::default();
        let mut seen: HashMap<&'static str, Span> = HashMap::new();
        let mut warn_span = None;
        let mut not_before_span = None;
        for clause in &step.clauses {
            let name = match &clause.kind {
                ClauseKind::Within(_) => "within",
                ClauseKind::By { .. } => "by",
                ClauseKind::Warn(_) | ClauseKind::WarnAt { .. } => "warn",
                ClauseKind::NotBefore(_) | ClauseKind::NotBeforeTime { .. } => "not before",
                _ => continue,
            };
            if self.once(file, &mut seen, name, clause.span) {
                continue;
            }
            let clock = |this: &mut Self, time: &ast::TimeOfDay, zone: &Option<ast::Zone>, day_offset: u32| {
                let zone = match zone {
                    Some(z) => this.zone(file, z).unwrap_or_else(|| timezone.to_string()),
                    None => timezone.to_string(),
                };
                ir::ClockDeadline { seconds: time.seconds_from_midnight(), zone, day_offset }
            };
            match &clause.kind {
                ClauseKind::Within(d) => {
                    if start {
                        self.report(file, clause.span, DiagnosticKind::TimingConflict(TimingConflict::WithinOnStart));
                    }
                    timing.within_ms = Some(d.millis);
                }
                ClauseKind::By { time, zone, day_offset } => {
                    timing.by = Some(clock(self, time, zone, day_offset.map_or(0, |(d, _)| d)));
                }
                ClauseKind::Warn(d) => {
                    warn_span = Some(clause.span);
                    timing.warn = Some(ir::Warn::After(d.millis));
                }
                ClauseKind::WarnAt { time, zone } => {
                    warn_span = Some(clause.span);
                    timing.warn = Some(ir::Warn::At(clock(self, time, zone, 0)));
                }
                ClauseKind::NotBefore(d) => {
                    if start {
                        self.report(
                            file,
                            clause.span,
                            DiagnosticKind::TimingConflict(TimingConflict::NotBeforeOnStart),
                        );
                    }
                    not_before_span = Some(clause.span);
                    timing.not_before = Some(ir::NotBefore::After(d.millis));
                }
                ClauseKind::NotBeforeTime { time, zone } => {
                    not_before_span = Some(clause.span);
                    timing.not_before = Some(ir::NotBefore::At(clock(self, time, zone, 0)));
                }
                _ => {}
            }
        }
        if let Some(span) = warn_span {
            match (&timing.warn, timing.within_ms) {
                (_, None) if timing.by.is_none() => {
                    self.report(file, span, DiagnosticKind::TimingConflict(TimingConflict::WarnWithoutDeadline))
                }
                (Some(ir::Warn::After(w)), Some(within)) if *w >= within => {
                    self.report(file, span, DiagnosticKind::TimingConflict(TimingConflict::WarnNotBeforeDeadline))
                }
                // A relative warn needs a stage to count from; a scheduled
                // start has none, so its warning must be a clock time.
                (Some(ir::Warn::After(_)), None) if start && scheduled => {
                    self.report(file, span, DiagnosticKind::TimingConflict(TimingConflict::WarnNeedsClockTime))
                }
                _ => {}
            }
        }
        if let (Some(span), Some(ir::NotBefore::After(nb)), Some(within)) =
            (not_before_span, &timing.not_before, timing.within_ms)
        {
            if *nb >= within {
                self.report(file, span, DiagnosticKind::TimingConflict(TimingConflict::NotBeforeAfterDeadline));
            }
        }
        timing
    }
}
