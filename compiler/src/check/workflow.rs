//! One workflow from declaration to `ir::Workflow`: its settings (alerting,
//! retention, aging, handling of strays, dependencies), its steps with the
//! `where` of each split into relevance and guard, and the calls to the
//! modules that check its graph, timing, key, schedule and status.

use std::collections::{BTreeSet, HashMap};

use mon_grammar::ast::{self, ClauseKind, Ident, SettingKind, Span, StepForm, StmtKind};

use super::graph::ancestors;
use super::Checker;
use crate::diagnostics::{DiagnosticKind, Related, TimingConflict};
use crate::expr::{conjunction, conjuncts, reads_kept, ExprChecker, Scope};
use crate::ir::{self, EventType, Handling, Outcome, Severity};
use crate::time;
use crate::types::Type;

const DEFAULT_RETAIN_MS: u64 = 7 * 86_400_000;

const DEFAULT_AGING_MS: [u64; 4] = [60_000, 300_000, 900_000, 3_600_000];

/// Workflow-level statements gathered before the steps are lowered.
pub(super) struct Settings<'a> {
    pub(super) alerting: ir::Alerting,
    pub(super) grace_ms: u64,
    pub(super) retain_ms: Option<u64>,
    pub(super) aging_ms: Option<Vec<u64>>,
    pub(super) timezone: Option<String>,
    pub(super) key: Option<(&'a Vec<ast::KeyField>, Span)>,
    pub(super) group_by: Option<&'a Vec<Ident>>,
    pub(super) cohort: Option<&'a Ident>,
    pub(super) open: Option<(u32, Span)>,
    pub(super) status: Vec<(&'a Ident, &'a ast::Expr)>,
    /// out_of_order, duplicate, unexpected.
    pub(super) handling: [Handling; 3],
    pub(super) depends_on: Vec<u32>,
}

impl<'a> Checker<'a> {
    pub(super) fn workflow(&mut self, file: usize, decl: &'a ast::WorkflowDecl, id: u32) -> ir::Workflow {
        let settings = self.workflow_settings(file, decl);
        // Without `timezone`, a scheduled workflow lives in the zone of its
        // start's `by` (`expect prices_file by 18:30 America/New_York`), so
        // that an event's local date is the date of that deadline.
        let start_zone = decl.stmts.iter().find_map(|s| match &s.kind {
            StmtKind::Step(step) if is_start(step) => step.clauses.iter().find_map(|c| match &c.kind {
                ClauseKind::By { zone: Some(z), .. } if time::is_zone(&z.name) => Some(z.name.clone()),
                _ => None,
            }),
            _ => None,
        });
        let timezone = settings.timezone.clone().or(start_zone).unwrap_or_else(|| "UTC".to_string());

        // Steps, their names and their events.
        let step_decls: Vec<&ast::StepDecl> = decl.steps().collect();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, step) in step_decls.iter().enumerate() {
            let name = step.step_name();
            if let Some(&first) = names.get(name.name.as_str()) {
                self.report_with(
                    file,
                    name.span,
                    DiagnosticKind::DuplicateInside {
                        what: "step",
                        name: name.name.clone(),
                        container: format!("workflow `{}`", decl.name.name),
                    },
                    Related { file, span: step_decls[first].step_name().span, label: "first declared here".into() },
                );
            } else {
                names.insert(&name.name, i);
            }
        }
        if step_decls.len() > crate::diagnostics::MAX_STEPS {
            let kind = DiagnosticKind::TooManySteps { workflow: decl.name.name.clone(), steps: step_decls.len() };
            self.report(file, decl.name.span, kind);
        }
        let events: Vec<Option<u32>> = step_decls.iter().map(|s| self.event_id(file, &s.event)).collect();
        let sources = self.step_sources(file, decl, &step_decls, &names);

        // A scheduled workflow is one whose start steps have a `by`.
        let starts: Vec<usize> = (0..step_decls.len()).filter(|&i| is_start(step_decls[i])).collect();
        if starts.is_empty() && !decl.incomplete {
            self.report(file, decl.name.span, DiagnosticKind::NoStartStep { workflow: decl.name.name.clone() });
        }
        let has_by = |s: &ast::StepDecl| s.clauses.iter().any(|c| matches!(c.kind, ClauseKind::By { .. }));
        let scheduled_starts = starts.iter().filter(|&&i| has_by(step_decls[i])).count();
        let scheduled = scheduled_starts > 0;
        if scheduled && scheduled_starts != starts.len() {
            for &i in &starts {
                if !has_by(step_decls[i]) {
                    self.report(
                        file,
                        step_decls[i].span,
                        DiagnosticKind::TimingConflict(TimingConflict::StartsDisagree),
                    );
                }
            }
        }

        let ancestors = ancestors(&sources);
        let mut steps: Vec<ir::Step> = Vec::with_capacity(step_decls.len());
        let mut kept: BTreeSet<(u32, u32)> = BTreeSet::new();
        let workflow_written = workflow_settings_written(decl);
        for (i, step) in step_decls.iter().enumerate() {
            let event = events[i].and_then(|e| self.events.get(e as usize)).cloned();
            let (relevance, guard) = match (&step.predicate, &event) {
                (Some(predicate), Some(event)) => {
                    let step_table: Vec<(String, &EventType, bool)> = step_decls
                        .iter()
                        .enumerate()
                        .map(|(j, s)| {
                            let ev = events[j].and_then(|e| self.events.get(e as usize)).unwrap_or(event);
                            (s.step_name().name.clone(), ev, ancestors[i].contains(&j))
                        })
                        .collect();
                    let scope = Scope::Step {
                        event,
                        steps: &step_table,
                        workflow: &decl.name.name,
                        current: &step.step_name().name,
                    };
                    let mut checker = ExprChecker::new(self.functions);
                    let (lowered, ty) = checker.check(predicate, &scope, None);
                    let found = checker.diagnostics;
                    kept.extend(checker.kept);
                    for (kind, span) in found {
                        self.report(file, span, kind);
                    }
                    if !matches!(ty, Type::Bool | Type::Error) {
                        self.report(
                            file,
                            predicate.span,
                            DiagnosticKind::NotBoolean { context: "where", found: ty.to_string() },
                        );
                    }
                    let mut parts = Vec::new();
                    conjuncts(lowered, &mut parts);
                    let (instance, own): (Vec<_>, Vec<_>) = parts.into_iter().partition(reads_kept);
                    (conjunction(own), conjunction(instance))
                }
                _ => (None, None),
            };
            let timing = self.timing(file, step, &timezone, is_start(step), scheduled);
            let optional = matches!(step.form, StepForm::Then { maybe: true });
            let outcome = step.outcome.as_ref().and_then(|o| self.choice(file, o, "outcome", Outcome::WRITTEN));
            let mut alerting = settings.alerting.clone();
            let mut grace_ms = settings.grace_ms;
            let mut seen_settings: HashMap<&'static str, Span> = HashMap::new();
            for clause in &step.clauses {
                if let ClauseKind::Setting(setting) = &clause.kind {
                    let name = setting_name(setting);
                    if !adds_up(name) && self.once(file, &mut seen_settings, name, clause.span) {
                        continue;
                    }
                    self.apply_setting(
                        file,
                        setting,
                        &mut alerting,
                        &mut grace_ms,
                        !adds_up(name) || seen_settings.contains_key(name),
                    );
                    seen_settings.insert(name, clause.span);
                }
            }
            // Whom the step notifies: its own `notify`, or the workflow's.
            let own: Vec<(&SettingKind, Span)> = step
                .clauses
                .iter()
                .filter_map(|c| match &c.kind {
                    ClauseKind::Setting(s) => Some((s, c.span)),
                    _ => None,
                })
                .collect();
            let notifies_itself = own.iter().any(|(s, _)| matches!(s, SettingKind::Notify { .. }));
            let notifies = if notifies_itself { &own } else { &workflow_written };
            self.escalation_to_notified(file, &own, notifies, &alerting);
            steps.push(ir::Step {
                id: i as u32,
                name: step.step_name().name.clone(),
                event: events[i].unwrap_or(u32::MAX),
                relevance,
                guard,
                sources: sources[i].iter().map(|&s| s as u32).collect(),
                optional,
                timing,
                outcome,
                alerting,
                grace_ms,
            });
        }
        self.never_matches(file, &step_decls, &steps);

        let stages = self.stages(file, &step_decls, &steps);
        if !decl.incomplete {
            self.unreachable(file, &step_decls, &steps, &stages);
        }

        // Key, groups and schedule.
        let key = self.key(file, decl, &settings, &step_decls, &events, scheduled);
        let group_by = self.group_by(file, &settings, &events);
        let schedule = if scheduled {
            Some(self.schedule(file, &settings, &step_decls, &starts, &events))
        } else {
            self.schedule_clauses_misplaced(file, &settings, &step_decls, &[]);
            None
        };

        let status = self.status_rules(file, &settings);
        ir::Workflow {
            id,
            name: decl.name.name.clone(),
            key,
            group_by,
            schedule,
            timezone,
            alerting: settings.alerting.clone(),
            grace_ms: settings.grace_ms,
            retain_ms: settings.retain_ms.unwrap_or(DEFAULT_RETAIN_MS),
            aging_ms: settings.aging_ms.clone().unwrap_or_else(|| DEFAULT_AGING_MS.to_vec()),
            status,
            on_out_of_order: settings.handling[0],
            on_duplicate: settings.handling[1],
            on_unexpected: settings.handling[2],
            depends_on: settings.depends_on.clone(),
            steps,
            stages,
            kept: kept.into_iter().map(|(step, slot)| ir::KeptField { step, slot }).collect(),
        }
    }

    pub(super) fn workflow_settings(&mut self, file: usize, decl: &'a ast::WorkflowDecl) -> Settings<'a> {
        let mut s = Settings {
            alerting: ir::Alerting {
                severity: Severity::High,
                runbook: None,
                notify: Vec::new(),
                renotify_ms: None,
                escalate: Vec::new(),
            },
            grace_ms: 0,
            retain_ms: None,
            aging_ms: None,
            timezone: None,
            key: None,
            group_by: None,
            cohort: None,
            open: None,
            status: Vec::new(),
            handling: [Handling::Flag; 3],
            depends_on: Vec::new(),
        };
        let mut seen: HashMap<&'static str, Span> = HashMap::new();
        for stmt in &decl.stmts {
            let name = match &stmt.kind {
                StmtKind::Key(_) => "key",
                StmtKind::GroupBy(_) => "group by",
                StmtKind::Cohort(_) => "cohort",
                StmtKind::Timezone(_) => "timezone",
                StmtKind::Retain(_) => "retain",
                StmtKind::Aging(_) => "aging",
                StmtKind::Open(_) => "open",
                StmtKind::Setting(setting) => setting_name(&setting.kind),
                _ => "",
            };
            if !name.is_empty() && !adds_up(name) && self.once(file, &mut seen, name, stmt.span) {
                continue;
            }
            match &stmt.kind {
                StmtKind::Key(fields) => s.key = Some((fields, stmt.span)),
                StmtKind::GroupBy(fields) => s.group_by = Some(fields),
                StmtKind::Cohort(field) => s.cohort = Some(field),
                StmtKind::Timezone(zone) => s.timezone = self.zone(file, zone),
                StmtKind::Retain(d) => s.retain_ms = Some(d.millis),
                StmtKind::Aging(buckets) => {
                    if buckets.windows(2).any(|w| w[0].millis >= w[1].millis) {
                        self.report(
                            file,
                            stmt.span,
                            DiagnosticKind::TimingConflict(TimingConflict::AgingNotIncreasing),
                        );
                    }
                    s.aging_ms = Some(buckets.iter().map(|d| d.millis).collect());
                }
                StmtKind::Open(t) => s.open = Some((t.seconds_from_midnight(), stmt.span)),
                StmtKind::Setting(setting) => {
                    self.apply_setting(file, &setting.kind, &mut s.alerting, &mut s.grace_ms, true);
                }
                StmtKind::Status { color, condition } => s.status.push((color, condition)),
                StmtKind::On { case, action } => {
                    let cases = [("out_of_order", 0usize), ("duplicate", 1), ("unexpected", 2)];
                    let case_index = self.choice(file, case, "kind of event handling", &cases);
                    let action = self.choice(file, action, "handling action", Handling::ALL);
                    if let Some(index) = case_index {
                        let setting = ["on out_of_order", "on duplicate", "on unexpected"][index];
                        if !self.once(file, &mut seen, setting, stmt.span) {
                            if let Some(action) = action {
                                s.handling[index] = action;
                            }
                        }
                    }
                }
                StmtKind::DependsOn(names) => {
                    for name in names {
                        if let Some(id) = self.workflow_id(file, name) {
                            s.depends_on.push(id);
                        }
                    }
                }
                StmtKind::Step(_) => {}
            }
        }
        let written = workflow_settings_written(decl);
        self.escalation_to_notified(file, &written, &written, &s.alerting);
        s
    }

    /// E418 (a warning) for each `escalate` of `escalates` to a channel that
    /// `alerting` already notifies at its severity, pointing at the `notify`
    /// of `notifies` that names it. Only the `escalate` written at a level
    /// is checked there, so one mistake is reported once, not per step.
    fn escalation_to_notified(
        &mut self,
        file: usize,
        escalates: &[(&SettingKind, Span)],
        notifies: &[(&SettingKind, Span)],
        alerting: &ir::Alerting,
    ) {
        for (setting, span) in escalates {
            let SettingKind::Escalate { channel, .. } = setting else { continue };
            let Some(&id) = self.channel_ids.get(channel.name.as_str()) else { continue };
            let notified = alerting
                .notify
                .iter()
                .any(|n| n.channel == id && n.min_severity.is_none_or(|min| alerting.severity >= min));
            if !notified {
                continue;
            }
            let kind = DiagnosticKind::EscalationToNotified { channel: channel.name.clone() };
            let names_it = |s: &SettingKind| match s {
                SettingKind::Notify { channels, .. } => channels.iter().any(|c| c.name == channel.name),
                _ => false,
            };
            match notifies.iter().find(|(s, _)| names_it(s)) {
                Some(&(_, at)) => {
                    self.report_with(file, *span, kind, Related { file, span: at, label: "notified here".into() })
                }
                None => self.report(file, *span, kind),
            }
        }
    }

    /// Applies a workflow- or step-level setting. `append` is false for the
    /// first `notify` (or `escalate`) of a step, which replaces the
    /// workflow's list rather than adding to it (LANGUAGE.md changelog v1.1
    /// and v1.5).
    pub(super) fn apply_setting(
        &mut self,
        file: usize,
        setting: &SettingKind,
        alerting: &mut ir::Alerting,
        grace_ms: &mut u64,
        append: bool,
    ) {
        match setting {
            SettingKind::Severity(level) => {
                if let Some(sev) = self.choice(file, level, "severity", Severity::ALL) {
                    alerting.severity = sev;
                }
            }
            SettingKind::Runbook(url) => alerting.runbook = Some(url.value.clone()),
            SettingKind::Notify { channels, min_severity } => {
                let min = min_severity.as_ref().and_then(|m| self.choice(file, m, "severity", Severity::ALL));
                if !append {
                    alerting.notify.clear();
                }
                for channel in channels {
                    if let Some(id) = self.channel_id(file, channel) {
                        alerting.notify.push(ir::Notify { channel: id, min_severity: min });
                    }
                }
            }
            SettingKind::Renotify(d) => alerting.renotify_ms = Some(d.millis),
            SettingKind::Escalate { after, channel } => {
                if !append {
                    alerting.escalate.clear();
                }
                if let Some(id) = self.channel_id(file, channel) {
                    alerting.escalate.push(ir::Escalation { after_ms: after.millis, channel: id });
                }
            }
            SettingKind::Grace(d) => *grace_ms = d.millis,
        }
    }
}

/// The settings written as workflow statements, with their spans.
fn workflow_settings_written(decl: &ast::WorkflowDecl) -> Vec<(&SettingKind, Span)> {
    decl.stmts
        .iter()
        .filter_map(|st| match &st.kind {
            StmtKind::Setting(s) => Some((&s.kind, st.span)),
            _ => None,
        })
        .collect()
}

/// Whether statements of this setting add up instead of being given once:
/// a workflow's `notify` and `escalate` statements all apply, and on a step
/// the first replaces the workflow's list and the next add to it.
fn adds_up(setting: &str) -> bool {
    matches!(setting, "notify" | "escalate")
}

/// The event types of a workflow's steps, each once, in step order (so
/// that what is reported about them comes in the order of the source).
pub(super) fn distinct_events(events: &[Option<u32>]) -> Vec<u32> {
    let mut seen = BTreeSet::new();
    events.iter().flatten().copied().filter(|e| seen.insert(*e)).collect()
}

pub(super) fn is_start(step: &ast::StepDecl) -> bool {
    matches!(step.form, StepForm::Expect | StepForm::Start)
}

pub(super) fn setting_name(setting: &SettingKind) -> &'static str {
    match setting {
        SettingKind::Severity(_) => "severity",
        SettingKind::Runbook(_) => "runbook",
        SettingKind::Notify { .. } => "notify",
        SettingKind::Renotify(_) => "renotify",
        SettingKind::Escalate { .. } => "escalate",
        SettingKind::Grace(_) => "grace",
    }
}
