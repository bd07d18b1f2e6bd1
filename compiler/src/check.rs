//! Name resolution, checks and lowering of a whole program.
//!
//! One pass over the declarations of every file builds the name tables
//! (reporting duplicates against the first declaration), then each
//! declaration is checked and lowered to the IR. Errors are recorded and
//! checking goes on, so one run reports everything; the caller discards the
//! program if any error was recorded.

use std::collections::{BTreeSet, HashMap};

use mon_grammar::ast::{self, ClauseKind, Ident, Item, SettingKind, Span, StepForm, StmtKind, TestStmtKind};

use crate::builtins::Functions;
use crate::diagnostics::{Diagnostic, DiagnosticKind, Misplaced, NeverMatch, Related, SourceFile, TimingConflict};
use crate::expr::{conjunction, conjuncts, reads_kept, ExprChecker, Scope};
use crate::ir::{
    self, EventType, FieldType, Handling, Metric, Outcome, RecordKind, Severity, Status, StatusMetric, Value,
};
use crate::schema::{fields_from_schema, SchemaError, SchemaLoader};
use crate::suggest::{did_you_mean, nearest_zone};
use crate::time;
use crate::types::Type;

const DEFAULT_RETAIN_MS: u64 = 7 * 86_400_000;
const DEFAULT_AGING_MS: [u64; 4] = [60_000, 300_000, 900_000, 3_600_000];
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
pub struct Checker<'a> {
    sources: &'a [SourceFile],
    files: &'a [ast::File],
    functions: &'a dyn Functions,
    schemas: &'a dyn SchemaLoader,
    pub diagnostics: Vec<Diagnostic>,
    events: Vec<EventType>,
    event_ids: HashMap<&'a str, u32>,
    channel_ids: HashMap<&'a str, u32>,
    calendar_ids: HashMap<&'a str, u32>,
    workflow_ids: HashMap<&'a str, u32>,
    /// (file, declaration) of each workflow, by id.
    workflow_decls: Vec<(usize, &'a ast::WorkflowDecl)>,
    /// (keyword, name) of declarations that did not parse: uses of them
    /// are not reported as unknown, the syntax error already is.
    unparsed: Vec<(&'a str, &'a str)>,
}

impl<'a> Checker<'a> {
    pub fn new(
        sources: &'a [SourceFile],
        files: &'a [ast::File],
        functions: &'a dyn Functions,
        schemas: &'a dyn SchemaLoader,
    ) -> Self {
        Checker {
            sources,
            files,
            functions,
            schemas,
            diagnostics: Vec::new(),
            events: Vec::new(),
            event_ids: HashMap::new(),
            channel_ids: HashMap::new(),
            calendar_ids: HashMap::new(),
            workflow_ids: HashMap::new(),
            workflow_decls: Vec::new(),
            unparsed: files
                .iter()
                .flat_map(|f| f.unparsed.iter().map(|(kind, name)| (kind.as_str(), name.name.as_str())))
                .collect(),
        }
    }

    fn is_unparsed(&self, keyword: &str, name: &str) -> bool {
        self.unparsed.contains(&(keyword, name))
    }

    fn report(&mut self, file: usize, span: Span, kind: DiagnosticKind) {
        self.diagnostics.push(Diagnostic { kind, file, span, related: Vec::new() });
    }

    fn report_with(&mut self, file: usize, span: Span, kind: DiagnosticKind, related: Related) {
        self.diagnostics.push(Diagnostic { kind, file, span, related: vec![related] });
    }

    pub fn run(mut self) -> (ir::Program, Vec<ir::TestCase>, Vec<Diagnostic>) {
        let mut event_decls = Vec::new();
        let mut channel_decls = Vec::new();
        let mut calendar_decls = Vec::new();
        let mut maintenance_decls = Vec::new();
        let mut test_decls = Vec::new();
        let mut seen: HashMap<(&'static str, &'a str), (usize, Span)> = HashMap::new();
        for (file, ast_file) in self.files.iter().enumerate() {
            for item in &ast_file.items {
                let what = match item {
                    Item::Event(_) => "event",
                    Item::Workflow(_) => "workflow",
                    Item::Channel(_) => "channel",
                    Item::Calendar(_) => "calendar",
                    Item::Maintenance(_) => "maintenance window",
                    Item::Test(_) => "test",
                };
                let (name, span) = item.name();
                if let Some(&(first_file, first_span)) = seen.get(&(what, name)) {
                    self.report_with(
                        file,
                        span,
                        DiagnosticKind::Duplicate { what, name: name.to_string() },
                        Related { file: first_file, span: first_span, label: "first declared here".into() },
                    );
                    continue;
                }
                seen.insert((what, name), (file, span));
                match item {
                    Item::Event(d) => event_decls.push((file, d)),
                    Item::Workflow(d) => {
                        self.workflow_ids.insert(&d.name.name, self.workflow_decls.len() as u32);
                        self.workflow_decls.push((file, d));
                    }
                    Item::Channel(d) => channel_decls.push((file, d)),
                    Item::Calendar(d) => calendar_decls.push((file, d)),
                    Item::Maintenance(d) => maintenance_decls.push((file, d)),
                    Item::Test(d) => test_decls.push((file, d)),
                }
            }
        }

        for (file, decl) in event_decls {
            let event = self.event(file, decl);
            self.event_ids.insert(&decl.name.name, event.id);
            self.events.push(event);
        }
        let channels: Vec<ir::Channel> =
            channel_decls.iter().enumerate().map(|(id, &(file, d))| self.channel(file, d, id as u32)).collect();
        for (c, (_, d)) in channels.iter().zip(&channel_decls) {
            self.channel_ids.insert(&d.name.name, c.id);
        }
        let calendars: Vec<ir::Calendar> = calendar_decls
            .iter()
            .enumerate()
            .map(|(id, (_, d))| {
                self.calendar_ids.insert(&d.name.name, id as u32);
                let mut dates: Vec<i32> =
                    d.dates.iter().filter_map(|x| time::days_from_civil(x.year, x.month, x.day)).collect();
                dates.sort_unstable();
                dates.dedup();
                ir::Calendar { id: id as u32, name: d.name.name.clone(), dates }
            })
            .collect();

        let decls = self.workflow_decls.clone();
        let mut workflows: Vec<ir::Workflow> =
            decls.iter().enumerate().map(|(id, &(file, d))| self.workflow(file, d, id as u32)).collect();
        self.check_dependencies(&mut workflows);

        let maintenance = maintenance_decls.iter().filter_map(|&(file, d)| self.maintenance(file, d)).collect();
        let mut tests = Vec::new();
        for (file, test) in test_decls {
            tests.push(self.test(file, test, &workflows));
        }

        let mut candidates = vec![Vec::new(); self.events.len()];
        for workflow in &workflows {
            for step in &workflow.steps {
                if let Some(list) = candidates.get_mut(step.event as usize) {
                    list.push(ir::Candidate { workflow: workflow.id, step: step.id });
                }
            }
        }
        let program = ir::Program {
            ir_version: ir::IR_VERSION,
            events: std::mem::take(&mut self.events),
            workflows,
            channels,
            calendars,
            maintenance,
            candidates,
        };
        (program, tests, self.diagnostics)
    }

    // ------------------------------------------------------------ events

    fn event(&mut self, file: usize, decl: &ast::EventDecl) -> EventType {
        let id = self.events.len() as u32;
        let mut fields: Vec<ir::Field> = Vec::new();
        match &decl.body {
            ast::EventBody::Fields(declared) => {
                let mut seen: HashMap<&str, Span> = HashMap::new();
                for f in declared {
                    if let Some(&first) = seen.get(f.name.name.as_str()) {
                        self.report_with(
                            file,
                            f.name.span,
                            DiagnosticKind::DuplicateInside {
                                what: "field",
                                name: f.name.name.clone(),
                                container: format!("event `{}`", decl.name.name),
                            },
                            Related { file, span: first, label: "first declared here".into() },
                        );
                        continue;
                    }
                    seen.insert(&f.name.name, f.name.span);
                    let ty = self.field_type(file, &f.ty);
                    fields.push(ir::Field {
                        name: f.name.name.clone(),
                        slot: fields.len() as u32,
                        ty,
                        optional: f.ty.optional,
                        pii: f.pii,
                    });
                }
            }
            ast::EventBody::Schema(path) => {
                let rule_file = &self.sources[file].path;
                match self.schemas.load(rule_file, &path.value) {
                    Err(reason) => self.report(
                        file,
                        path.span,
                        DiagnosticKind::SchemaUnreadable { path: path.value.clone(), reason },
                    ),
                    Ok(text) => match fields_from_schema(&text) {
                        Ok(imported) => {
                            for f in imported {
                                fields.push(ir::Field {
                                    name: f.name,
                                    slot: fields.len() as u32,
                                    ty: f.ty,
                                    optional: f.optional,
                                    pii: f.pii,
                                });
                            }
                        }
                        Err(SchemaError::Invalid(reason)) => self.report(
                            file,
                            path.span,
                            DiagnosticKind::SchemaUnreadable { path: path.value.clone(), reason },
                        ),
                        Err(SchemaError::Unsupported { property, reason }) => self.report(
                            file,
                            path.span,
                            DiagnosticKind::SchemaUnsupported { path: path.value.clone(), property, reason },
                        ),
                    },
                }
            }
        }
        EventType { id, name: decl.name.name.clone(), fields }
    }

    fn field_type(&mut self, file: usize, ty: &ast::TypeExpr) -> FieldType {
        match &ty.kind {
            ast::TypeKind::Enum(variants) => {
                let mut names: Vec<String> = Vec::new();
                for v in variants {
                    if names.contains(&v.name) {
                        self.report(
                            file,
                            v.span,
                            DiagnosticKind::DuplicateInside {
                                what: "enum value",
                                name: v.name.clone(),
                                container: "this enum".into(),
                            },
                        );
                    } else {
                        names.push(v.name.clone());
                    }
                }
                FieldType::Enum(names)
            }
            ast::TypeKind::Named(name) => match name.name.as_str() {
                "string" => FieldType::String,
                "int" => FieldType::Int,
                "float" => FieldType::Float,
                "bool" => FieldType::Bool,
                "date" => FieldType::Date,
                "timestamp" => FieldType::Timestamp,
                "duration" => FieldType::Duration,
                other => {
                    let names = ["string", "int", "float", "bool", "date", "timestamp", "duration"];
                    let suggestion = did_you_mean(other, names).or_else(|| {
                        let alias = match other {
                            "str" | "text" => "string",
                            "integer" | "long" | "i64" => "int",
                            "number" | "double" | "decimal" | "f64" => "float",
                            "boolean" => "bool",
                            "datetime" | "instant" => "timestamp",
                            _ => return None,
                        };
                        Some(alias.to_string())
                    });
                    self.report(file, name.span, DiagnosticKind::UnknownType { name: other.to_string(), suggestion });
                    FieldType::String
                }
            },
        }
    }

    // ------------------------------------------------------------ channels

    fn channel(&mut self, file: usize, decl: &ast::ChannelDecl, id: u32) -> ir::Channel {
        let kind =
            self.choice(file, &decl.kind, "channel kind", ir::ChannelKind::ALL).unwrap_or(ir::ChannelKind::Webhook);
        let targets = decl
            .targets
            .iter()
            .map(|t| match t {
                ast::ChannelTarget::Literal(s) => ir::ChannelTarget::Literal(s.value.clone()),
                ast::ChannelTarget::Secret(s) => ir::ChannelTarget::Secret(s.value.clone()),
            })
            .collect();
        ir::Channel { id, name: decl.name.name.clone(), kind, targets }
    }

    /// Looks `ident` up in a fixed list of words, reporting E212 if absent.
    fn choice<T: Copy>(&mut self, file: usize, ident: &Ident, what: &'static str, options: &[(&str, T)]) -> Option<T> {
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == ident.name) {
            return Some(*value);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.report(
            file,
            ident.span,
            DiagnosticKind::InvalidChoice {
                what,
                found: ident.name.clone(),
                suggestion: did_you_mean(&ident.name, names.iter().copied()),
                expected: names.iter().map(|s| s.to_string()).collect(),
            },
        );
        None
    }

    fn zone(&mut self, file: usize, zone: &ast::Zone) -> Option<String> {
        if time::is_zone(&zone.name) {
            return Some(zone.name.clone());
        }
        self.report(
            file,
            zone.span,
            DiagnosticKind::UnknownTimeZone { name: zone.name.clone(), suggestion: nearest_zone(&zone.name) },
        );
        None
    }

    fn timestamp(&mut self, file: usize, ts: &ast::Timestamp) -> Option<i64> {
        let parsed = time::parse_timestamp(&ts.text);
        if parsed.is_none() {
            self.report(file, ts.span, DiagnosticKind::InvalidTimestamp { text: ts.text.clone() });
        }
        parsed
    }

    fn event_id(&mut self, file: usize, ident: &Ident) -> Option<u32> {
        if let Some(&id) = self.event_ids.get(ident.name.as_str()) {
            return Some(id);
        }
        if self.is_unparsed("event", &ident.name) {
            return None;
        }
        let suggestion = did_you_mean(&ident.name, self.event_ids.keys().copied());
        self.report(file, ident.span, DiagnosticKind::UnknownEvent { name: ident.name.clone(), suggestion });
        None
    }

    fn workflow_id(&mut self, file: usize, ident: &Ident) -> Option<u32> {
        if let Some(&id) = self.workflow_ids.get(ident.name.as_str()) {
            return Some(id);
        }
        if self.is_unparsed("workflow", &ident.name) {
            return None;
        }
        let suggestion = did_you_mean(&ident.name, self.workflow_ids.keys().copied());
        self.report(file, ident.span, DiagnosticKind::UnknownWorkflow { name: ident.name.clone(), suggestion });
        None
    }

    // ------------------------------------------------------------ workflows

    fn workflow(&mut self, file: usize, decl: &'a ast::WorkflowDecl, id: u32) -> ir::Workflow {
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
        let step_decls: Vec<&ast::StepDecl> = decl
            .stmts
            .iter()
            .filter_map(|s| match &s.kind {
                StmtKind::Step(step) => Some(step),
                _ => None,
            })
            .collect();
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
            let outcome = step.outcome.as_ref().and_then(|o| {
                self.choice(file, o, "outcome", &[("success", Outcome::Success), ("failure", Outcome::Failure)])
            });
            let mut alerting = settings.alerting.clone();
            let mut grace_ms = settings.grace_ms;
            let mut seen_settings: HashMap<&'static str, Span> = HashMap::new();
            for clause in &step.clauses {
                if let ClauseKind::Setting(setting) = &clause.kind {
                    let name = setting_name(setting);
                    if name != "notify" && self.once(file, &mut seen_settings, name, clause.span) {
                        continue;
                    }
                    self.apply_setting(
                        file,
                        setting,
                        &mut alerting,
                        &mut grace_ms,
                        name != "notify" || seen_settings.contains_key("notify"),
                    );
                    seen_settings.insert(name, clause.span);
                }
            }
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

        // Stages: one per step; which close the instance; which timers they arm.
        let mut stages: Vec<ir::Stage> = steps
            .iter()
            .map(|s| ir::Stage {
                id: s.id,
                name: s.name.clone(),
                outgoing: Vec::new(),
                timers: Vec::new(),
                closes: None,
            })
            .collect();
        for step in &steps {
            for &source in &step.sources {
                stages[source as usize].outgoing.push(step.id);
                let timed = step.timing.has_deadline() || step.timing.warn.is_some();
                if timed {
                    stages[source as usize].timers.push(step.id);
                }
            }
        }
        for (i, stage) in stages.iter_mut().enumerate() {
            // A stage followed only by optional steps ends the flow: the
            // optional step may still come and fills in.
            let only_optional = stage.outgoing.iter().all(|&n| steps[n as usize].optional);
            stage.closes = match (steps[i].outcome, only_optional) {
                (Some(outcome), _) => Some(outcome),
                (None, true) => Some(Outcome::Success),
                (None, false) => None,
            };
        }
        for stage in &stages {
            if steps[stage.id as usize].outcome.is_some() && !stage.outgoing.iter().all(|&n| steps[n as usize].optional)
            {
                for &next in &stage.outgoing {
                    let decl = step_decls[next as usize];
                    let span = decl.after.iter().find(|a| a.name == stage.name).map_or(decl.span, |a| a.span);
                    self.report(
                        file,
                        span,
                        DiagnosticKind::StepAfterClosingStage {
                            step: steps[next as usize].name.clone(),
                            stage: stage.name.clone(),
                        },
                    );
                }
            }
        }
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

    /// Records that `name` was given at `span`; true (and E414) if it was already.
    fn once(&mut self, file: usize, seen: &mut HashMap<&'static str, Span>, name: &'static str, span: Span) -> bool {
        if let Some(&first) = seen.get(name) {
            self.report_with(
                file,
                span,
                DiagnosticKind::DuplicateSetting { setting: name.to_string() },
                Related { file, span: first, label: "first given here".into() },
            );
            return true;
        }
        seen.insert(name, span);
        false
    }

    fn workflow_settings(&mut self, file: usize, decl: &'a ast::WorkflowDecl) -> Settings<'a> {
        let mut s = Settings {
            alerting: ir::Alerting { severity: Severity::High, runbook: None, notify: Vec::new(), renotify_ms: None },
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
            if !name.is_empty() && name != "notify" && self.once(file, &mut seen, name, stmt.span) {
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
                    let actions = [("flag", Handling::Flag), ("drop", Handling::Drop), ("alert", Handling::Alert)];
                    let case_index = self.choice(file, case, "kind of event handling", &cases);
                    let action = self.choice(file, action, "handling action", &actions);
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
        s
    }

    /// Applies a workflow- or step-level setting. `replace_notify` is false
    /// for the first `notify` of a step, which replaces the workflow's list
    /// rather than adding to it.
    fn apply_setting(
        &mut self,
        file: usize,
        setting: &SettingKind,
        alerting: &mut ir::Alerting,
        grace_ms: &mut u64,
        append_notify: bool,
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
                if !append_notify {
                    alerting.notify.clear();
                }
                for channel in channels {
                    match self.channel_ids.get(channel.name.as_str()) {
                        Some(&id) => alerting.notify.push(ir::Notify { channel: id, min_severity: min }),
                        None if self.is_unparsed("channel", &channel.name) => {}
                        None => {
                            let suggestion = did_you_mean(&channel.name, self.channel_ids.keys().copied());
                            self.report(
                                file,
                                channel.span,
                                DiagnosticKind::UnknownChannel { name: channel.name.clone(), suggestion },
                            );
                        }
                    }
                }
            }
            SettingKind::Renotify(d) => alerting.renotify_ms = Some(d.millis),
            SettingKind::Grace(d) => *grace_ms = d.millis,
        }
    }

    /// The stages each step leaves.
    fn step_sources(
        &mut self,
        file: usize,
        decl: &ast::WorkflowDecl,
        steps: &[&ast::StepDecl],
        names: &HashMap<&str, usize>,
    ) -> Vec<Vec<usize>> {
        let mut sources: Vec<Vec<usize>> = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let mut from: Vec<usize> = Vec::new();
            match step.form {
                StepForm::Expect | StepForm::Start => {
                    if let Some(first) = step.after.first() {
                        self.report(file, first.span, DiagnosticKind::Misplaced(Misplaced::AfterOnLinearOrStart));
                    }
                }
                StepForm::Then { .. } => {
                    if let Some(first) = step.after.first() {
                        self.report(file, first.span, DiagnosticKind::Misplaced(Misplaced::AfterOnLinearOrStart));
                    }
                    if i == 0 {
                        if !decl.incomplete {
                            self.report(file, step.span, DiagnosticKind::Misplaced(Misplaced::ThenWithoutPrevious));
                        }
                    } else {
                        // After an optional step, the next one may also
                        // follow whatever the optional step follows.
                        from.push(i - 1);
                        if matches!(steps[i - 1].form, StepForm::Then { maybe: true }) {
                            from.extend(sources[i - 1].iter().copied());
                        }
                    }
                }
                StepForm::Step => {
                    if step.after.is_empty() {
                        self.report(file, step.span, DiagnosticKind::Misplaced(Misplaced::StepWithoutAfter));
                    }
                    for stage in &step.after {
                        match names.get(stage.name.as_str()) {
                            Some(&j) if j == i => {
                                self.report(file, stage.span, DiagnosticKind::Misplaced(Misplaced::AfterItself))
                            }
                            Some(&j) => from.push(j),
                            None if decl.incomplete => {}
                            None => {
                                let suggestion = did_you_mean(&stage.name, names.keys().copied());
                                self.report(
                                    file,
                                    stage.span,
                                    DiagnosticKind::UnknownStage {
                                        name: stage.name.clone(),
                                        workflow: decl.name.name.clone(),
                                        suggestion,
                                    },
                                );
                            }
                        }
                    }
                }
            }
            from.sort_unstable();
            from.dedup();
            sources.push(from);
        }
        sources
    }

    fn timing(
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

    fn never_matches(&mut self, file: usize, decls: &[&ast::StepDecl], steps: &[ir::Step]) {
        for (i, step) in steps.iter().enumerate() {
            let span = decls[i].predicate.as_ref().map_or(decls[i].span, |p| p.span);
            let mut parts = Vec::new();
            for e in [&step.relevance, &step.guard].into_iter().flatten() {
                conjuncts(e.clone(), &mut parts);
            }
            if parts.iter().any(|p| const_bool(p) == Some(false)) {
                self.report(
                    file,
                    span,
                    DiagnosticKind::NeverMatches { step: step.name.clone(), reason: NeverMatch::AlwaysFalse },
                );
                continue;
            }
            let mut equalities: HashMap<u32, &Value> = HashMap::new();
            for part in &parts {
                if let ir::Expr::Binary { op: ir::BinaryOp::Eq, lhs, rhs } = part {
                    let pair = match (&**lhs, &**rhs) {
                        (ir::Expr::Field(slot), ir::Expr::Const(v)) | (ir::Expr::Const(v), ir::Expr::Field(slot)) => {
                            Some((*slot, v))
                        }
                        _ => None,
                    };
                    if let Some((slot, value)) = pair {
                        if equalities.get(&slot).is_some_and(|prev| *prev != value) {
                            let field = self
                                .events
                                .get(step.event as usize)
                                .and_then(|e| e.fields.get(slot as usize))
                                .map_or(String::new(), |f| f.name.clone());
                            self.report(
                                file,
                                span,
                                DiagnosticKind::NeverMatches {
                                    step: step.name.clone(),
                                    reason: NeverMatch::ConflictingEquality { field },
                                },
                            );
                            break;
                        }
                        equalities.insert(slot, value);
                    }
                }
            }
        }
        // An alternative is shadowed when an earlier step from the same
        // stage takes the same events with the same (or no) condition.
        for (j, later) in steps.iter().enumerate() {
            for earlier in &steps[..j] {
                let same_place =
                    earlier.sources == later.sources || (earlier.sources.is_empty() && later.sources.is_empty());
                let overlaps = !later.sources.is_empty() && later.sources.iter().all(|s| earlier.sources.contains(s));
                if earlier.event == later.event
                    && (same_place || overlaps)
                    && earlier.event != u32::MAX
                    && ((earlier.relevance.is_none() && earlier.guard.is_none())
                        || (earlier.relevance == later.relevance && earlier.guard == later.guard))
                {
                    self.report(
                        file,
                        decls[j].step_name().span,
                        DiagnosticKind::NeverMatches {
                            step: later.name.clone(),
                            reason: NeverMatch::Shadowed { by: earlier.name.clone() },
                        },
                    );
                    break;
                }
            }
        }
    }

    fn unreachable(&mut self, file: usize, decls: &[&ast::StepDecl], steps: &[ir::Step], stages: &[ir::Stage]) {
        let mut reached = vec![false; steps.len()];
        let mut queue: Vec<usize> = steps.iter().filter(|s| s.sources.is_empty()).map(|s| s.id as usize).collect();
        while let Some(i) = queue.pop() {
            if std::mem::replace(&mut reached[i], true) {
                continue;
            }
            if stages[i].closes.is_some() && steps[i].outcome.is_some() {
                continue;
            }
            queue.extend(stages[i].outgoing.iter().map(|&n| n as usize));
        }
        for (i, step) in steps.iter().enumerate() {
            // A step after a closing stage already has E410; one whose
            // sources are unknown already has E203.
            let explained = step.sources.iter().any(|&s| steps[s as usize].outcome.is_some())
                || (step.sources.is_empty() && !is_start(decls[i]));
            if !reached[i] && !explained {
                self.report(
                    file,
                    decls[i].step_name().span,
                    DiagnosticKind::UnreachableStage { stage: step.name.clone() },
                );
            }
        }
    }

    fn key(
        &mut self,
        file: usize,
        decl: &ast::WorkflowDecl,
        settings: &Settings<'a>,
        steps: &[&ast::StepDecl],
        events: &[Option<u32>],
        scheduled: bool,
    ) -> Vec<ir::KeyField> {
        let Some((fields, span)) = settings.key else {
            if !scheduled && !steps.is_empty() && !decl.incomplete {
                self.report(file, decl.name.span, DiagnosticKind::MissingKey { workflow: decl.name.name.clone() });
            }
            return Vec::new();
        };
        if scheduled {
            self.report(file, span, DiagnosticKind::KeyOnScheduled { workflow: decl.name.name.clone() });
            return Vec::new();
        }
        // The distinct events of the workflow, each with its first use.
        let mut used: Vec<(u32, Span)> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if let Some(e) = events[i] {
                if !used.iter().any(|(u, _)| *u == e) {
                    used.push((e, step.event.span));
                }
            }
        }
        let mut key = Vec::new();
        let mut seen_names: Vec<&str> = Vec::new();
        for field in fields {
            if seen_names.contains(&field.name.name.as_str()) {
                self.report(
                    file,
                    field.name.span,
                    DiagnosticKind::DuplicateInside {
                        what: "key field",
                        name: field.name.name.clone(),
                        container: "this key".into(),
                    },
                );
                continue;
            }
            seen_names.push(&field.name.name);
            // Mapped sources: `event.field`.
            let mut mapped: HashMap<u32, &Ident> = HashMap::new();
            for source in &field.sources {
                if let Some(e) = self.event_id(file, &source.qualifier) {
                    mapped.insert(e, &source.name);
                }
            }
            let mut slots = Vec::new();
            let mut first: Option<(String, FieldType)> = None;
            for &(e, use_span) in &used {
                let event = self.events[e as usize].clone();
                let (field_name, at) = match mapped.get(&e) {
                    Some(name) => (name.name.as_str(), name.span),
                    None => (field.name.name.as_str(), use_span),
                };
                let Some(found) = event.field(field_name) else {
                    let candidates = event.fields.iter().map(|f| f.name.as_str());
                    let suggestion = did_you_mean(field_name, candidates);
                    if mapped.contains_key(&e) {
                        self.report(
                            file,
                            at,
                            DiagnosticKind::UnknownField {
                                field: field_name.to_string(),
                                event: event.name.clone(),
                                suggestion,
                            },
                        );
                    } else {
                        self.report_with(
                            file,
                            at,
                            DiagnosticKind::KeyFieldMissing {
                                key: field.name.name.clone(),
                                event: event.name.clone(),
                                suggestion,
                            },
                            Related { file, span: field.name.span, label: "the key is declared here".into() },
                        );
                    }
                    continue;
                };
                if found.optional {
                    self.report(
                        file,
                        at,
                        DiagnosticKind::OptionalValue { name: field_name.to_string(), context: "a key field" },
                    );
                }
                match &first {
                    None => first = Some((event.name.clone(), found.ty.clone())),
                    Some((first_event, ty)) if *ty != found.ty => {
                        self.report(
                            file,
                            at,
                            DiagnosticKind::KeyTypeMismatch {
                                key: field.name.name.clone(),
                                event: event.name.clone(),
                                found: Type::from_field(&found.ty, false).to_string(),
                                first_event: first_event.clone(),
                                expected: Type::from_field(ty, false).to_string(),
                            },
                        );
                    }
                    Some(_) => {}
                }
                slots.push((e, found.slot));
            }
            key.push(ir::KeyField {
                name: field.name.name.clone(),
                ty: first.map_or(FieldType::String, |(_, ty)| ty),
                slots,
            });
        }
        key
    }

    fn group_by(&mut self, file: usize, settings: &Settings<'a>, events: &[Option<u32>]) -> Vec<ir::GroupField> {
        let Some(fields) = settings.group_by else {
            return Vec::new();
        };
        let used = distinct_events(events);
        let mut groups = Vec::new();
        for field in fields {
            let slots: Vec<(u32, u32)> =
                used.iter().filter_map(|&e| self.events[e as usize].field(&field.name).map(|f| (e, f.slot))).collect();
            if slots.is_empty() {
                let all: Vec<String> =
                    used.iter().flat_map(|&e| self.events[e as usize].fields.iter().map(|f| f.name.clone())).collect();
                let suggestion = did_you_mean(&field.name, all.iter().map(String::as_str));
                self.report(
                    file,
                    field.span,
                    DiagnosticKind::GroupFieldMissing { field: field.name.clone(), suggestion },
                );
            }
            groups.push(ir::GroupField { name: field.name.clone(), slots });
        }
        groups
    }

    fn schedule(
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
    fn schedule_clauses_misplaced(
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

    fn day_set(&mut self, file: usize, day: &Ident) -> u8 {
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

    fn status_rules(&mut self, file: usize, settings: &Settings<'a>) -> ir::StatusRules {
        let mut rules = ir::StatusRules { red: Vec::new(), amber: Vec::new() };
        for (color, condition) in &settings.status {
            let mut checker = ExprChecker::new(self.functions);
            let (lowered, ty) = checker.check(condition, &Scope::Status, None);
            for (kind, span) in checker.diagnostics {
                self.report(file, span, kind);
            }
            if !matches!(ty, Type::Bool | Type::Error) {
                self.report(
                    file,
                    condition.span,
                    DiagnosticKind::NotBoolean { context: "status", found: ty.to_string() },
                );
            }
            let colors = [Status::Red, Status::Amber].map(|c| (c.name(), c));
            match self.choice(file, color, "status color", &colors) {
                Some(Status::Red) => rules.red.push(lowered),
                Some(Status::Amber) => rules.amber.push(lowered),
                Some(Status::Green) | None => {}
            }
        }
        let gt_zero = |m: Metric| ir::Expr::Binary {
            op: ir::BinaryOp::Gt,
            lhs: Box::new(ir::Expr::Metric(StatusMetric::Count(m))),
            rhs: Box::new(ir::Expr::Const(Value::Int(0))),
        };
        if rules.red.is_empty() {
            rules.red.push(gt_zero(Metric::Missing));
        }
        if rules.amber.is_empty() {
            rules.amber.push(ir::Expr::Binary {
                op: ir::BinaryOp::Or,
                lhs: Box::new(gt_zero(Metric::AtRisk)),
                rhs: Box::new(gt_zero(Metric::Late)),
            });
        }
        rules
    }

    fn check_dependencies(&mut self, workflows: &mut [ir::Workflow]) {
        for i in 0..workflows.len() {
            let (file, decl) = self.workflow_decls[i];
            for &up in &workflows[i].depends_on.clone() {
                let upstream = &workflows[up as usize];
                let this = &workflows[i];
                let key_of = |w: &ir::Workflow| -> Vec<(String, FieldType)> {
                    w.key.iter().map(|k| (k.name.clone(), k.ty.clone())).collect()
                };
                let both_scheduled = this.schedule.is_some() && upstream.schedule.is_some();
                let same_key =
                    this.schedule.is_none() && upstream.schedule.is_none() && key_of(this) == key_of(upstream);
                if !(both_scheduled || same_key) {
                    let describe = |w: &ir::Workflow| {
                        if w.schedule.is_some() {
                            "date".to_string()
                        } else {
                            w.key.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
                        }
                    };
                    let span = decl
                        .stmts
                        .iter()
                        .find_map(|s| match &s.kind {
                            StmtKind::DependsOn(names) => {
                                names.iter().find(|n| n.name == upstream.name).map(|n| n.span)
                            }
                            _ => None,
                        })
                        .unwrap_or(decl.name.span);
                    let kind = DiagnosticKind::DependencyKeyMismatch {
                        workflow: this.name.clone(),
                        upstream: upstream.name.clone(),
                        key: describe(this),
                        upstream_key: describe(upstream),
                    };
                    self.report(file, span, kind);
                }
            }
        }
    }

    // ------------------------------------------------------------ maintenance

    fn maintenance(&mut self, file: usize, decl: &ast::MaintenanceDecl) -> Option<ir::Maintenance> {
        let workflows: Vec<u32> = decl.workflows.iter().filter_map(|w| self.workflow_id(file, w)).collect();
        let window = match &decl.window {
            ast::MaintenanceWindow::Weekly { from_day, from, to_day, to, zone } => {
                let day = |this: &mut Self, d: &Option<Ident>| -> Option<u8> {
                    let d = d.as_ref()?;
                    let set = this.day_set(file, d);
                    (set.count_ones() == 1).then(|| set.trailing_zeros() as u8)
                };
                let from_day = day(self, from_day);
                let to_day = day(self, to_day);
                let zone = match zone {
                    Some(z) => self.zone(file, z)?,
                    None => "UTC".to_string(),
                };
                ir::MaintenanceWindow::Weekly {
                    from_day,
                    from_seconds: from.seconds_from_midnight(),
                    to_day,
                    to_seconds: to.seconds_from_midnight(),
                    zone,
                }
            }
            ast::MaintenanceWindow::Fixed { from, to } => {
                let from_ms = self.timestamp(file, from)?;
                let to_ms = self.timestamp(file, to)?;
                ir::MaintenanceWindow::Fixed { from_ms, to_ms }
            }
        };
        Some(ir::Maintenance { name: decl.name.name.clone(), window, workflows })
    }

    // ------------------------------------------------------------ tests

    fn test(&mut self, file: usize, test: &ast::TestDecl, workflows: &[ir::Workflow]) -> ir::TestCase {
        let mut steps = Vec::new();
        let mut clock: Option<(i64, &str)> = None;
        for stmt in &test.stmts {
            if let TestStmtKind::At(ts) | TestStmtKind::AdvanceTo(ts) = &stmt.kind {
                if let Some(to) = time::parse_timestamp(&ts.text) {
                    match clock {
                        Some((now, from)) if to < now => {
                            let kind = DiagnosticKind::ClockBackwards { to: ts.text.clone(), from: from.to_string() };
                            self.report(file, ts.span, kind);
                        }
                        _ => clock = Some((to, ts.text.as_str())),
                    }
                }
            }
            let kind = match &stmt.kind {
                TestStmtKind::At(ts) => self.timestamp(file, ts).map(ir::TestStepKind::At),
                TestStmtKind::AdvanceTo(ts) => self.timestamp(file, ts).map(ir::TestStepKind::AdvanceTo),
                TestStmtKind::AdvanceBy(d) => Some(ir::TestStepKind::AdvanceBy(d.millis)),
                TestStmtKind::Event { event, fields, at, id } => {
                    let at = at.as_ref().and_then(|ts| self.timestamp(file, ts));
                    self.event_id(file, event).map(|e| {
                        let event_type = self.events[e as usize].clone();
                        let values = self.event_literal(file, &event_type, event.span, fields);
                        ir::TestStepKind::Event {
                            event_type: e,
                            fields: values,
                            at,
                            id: id.as_ref().map(|i| i.value.clone()),
                        }
                    })
                }
                TestStmtKind::Expect(expectation) => {
                    self.expectation(file, expectation, workflows).map(ir::TestStepKind::Expect)
                }
            };
            if let Some(kind) = kind {
                steps.push(ir::TestStep { kind, span: (stmt.span.start, stmt.span.end) });
            }
        }
        ir::TestCase { name: test.name.value.clone(), file, span: (test.span.start, test.span.end), steps }
    }

    /// Checks an event literal against its schema; returns a value per slot.
    fn event_literal(&mut self, file: usize, event: &EventType, span: Span, fields: &[ast::RecordField]) -> Vec<Value> {
        let mut values = vec![Value::Null; event.fields.len()];
        for given in fields {
            let Some(field) = event.field(&given.name.name) else {
                let suggestion = did_you_mean(&given.name.name, event.fields.iter().map(|f| f.name.as_str()));
                self.report(
                    file,
                    given.name.span,
                    DiagnosticKind::UnknownField {
                        field: given.name.name.clone(),
                        event: event.name.clone(),
                        suggestion,
                    },
                );
                continue;
            };
            let context = format!("field `{}`", field.name);
            values[field.slot as usize] =
                self.literal_value(file, &given.value, &Type::from_field(&field.ty, false), &context);
        }
        for field in event.fields.iter().filter(|f| !f.optional) {
            if !fields.iter().any(|g| g.name.name == field.name) {
                self.report(
                    file,
                    span,
                    DiagnosticKind::MissingRequiredField { event: event.name.clone(), field: field.name.clone() },
                );
            }
        }
        values
    }

    fn literal_value(&mut self, file: usize, value: &ast::Expr, expected: &Type, context: &str) -> Value {
        let mut checker = ExprChecker::new(self.functions);
        let (lowered, ty) = checker.check(value, &Scope::Literal, Some(expected));
        for (kind, span) in checker.diagnostics {
            self.report(file, span, kind);
        }
        let ok = ty.is_error() || ty == *expected || (*expected == Type::Float && ty == Type::Int);
        if !ok {
            self.report(
                file,
                value.span,
                DiagnosticKind::WrongType {
                    context: context.to_string(),
                    expected: expected.to_string(),
                    found: ty.to_string(),
                },
            );
        }
        let value = const_value(&lowered);
        match (value, expected) {
            (Value::Int(i), Type::Float) => Value::Float(i as f64),
            (v, _) => v,
        }
    }

    /// The workflow (and step) a test names.
    fn target(
        &mut self,
        file: usize,
        target: &ast::Target,
        workflows: &'_ [ir::Workflow],
    ) -> Option<(u32, Option<u32>)> {
        let id = self.workflow_id(file, &target.workflow)?;
        let workflow = &workflows[id as usize];
        let Some(step) = &target.step else { return Some((id, None)) };
        match workflow.steps.iter().position(|s| s.name == step.name) {
            Some(s) => Some((id, Some(s as u32))),
            None => {
                let suggestion = did_you_mean(&step.name, workflow.steps.iter().map(|s| s.name.as_str()));
                self.report(
                    file,
                    step.span,
                    DiagnosticKind::UnknownStage {
                        name: step.name.clone(),
                        workflow: workflow.name.clone(),
                        suggestion,
                    },
                );
                None
            }
        }
    }

    fn key_filter(&mut self, file: usize, workflow: &ir::Workflow, fields: &[ast::RecordField]) -> ir::KeyLiteral {
        let mut key = Vec::new();
        for given in fields {
            let expected = if workflow.schedule.is_some() {
                (given.name.name == "date").then_some(Type::Date)
            } else {
                workflow.key.iter().find(|k| k.name == given.name.name).map(|k| Type::from_field(&k.ty, false))
            };
            match expected {
                Some(ty) => {
                    let value =
                        self.literal_value(file, &given.value, &ty, &format!("key field `{}`", given.name.name));
                    key.push((given.name.name.clone(), value));
                }
                None => {
                    let names: Vec<String> = if workflow.schedule.is_some() {
                        vec!["date".into()]
                    } else {
                        workflow.key.iter().map(|k| k.name.clone()).collect()
                    };
                    let suggestion = did_you_mean(&given.name.name, names.iter().map(String::as_str));
                    self.report(
                        file,
                        given.name.span,
                        DiagnosticKind::InvalidChoice {
                            what: "key field of this workflow",
                            found: given.name.name.clone(),
                            expected: names,
                            suggestion,
                        },
                    );
                }
            }
        }
        key
    }

    fn expectation(
        &mut self,
        file: usize,
        expectation: &ast::Expectation,
        workflows: &[ir::Workflow],
    ) -> Option<ir::Expectation> {
        match expectation {
            ast::Expectation::Alert { kind, target, key } | ast::Expectation::Record { kind, target, key, .. } => {
                let kind = self.choice(file, kind, "record kind", RecordKind::ALL);
                let (workflow, step) = self.target(file, target, workflows)?;
                let key = key.as_ref().map(|k| self.key_filter(file, &workflows[workflow as usize], k));
                let delay_ms = match expectation {
                    ast::Expectation::Record { delay, .. } => delay.map(|d| d.millis),
                    _ => None,
                };
                let alert = matches!(expectation, ast::Expectation::Alert { .. });
                Some(ir::Expectation::Record { alert, kind: kind?, workflow, step, delay_ms, key })
            }
            ast::Expectation::Status { target, color } => {
                let color = self.choice(file, color, "status color", Status::ALL);
                let (workflow, stage) = self.target(file, target, workflows)?;
                Some(ir::Expectation::Status { workflow, stage, color: color? })
            }
            ast::Expectation::Stage { workflow, key, stage } => {
                let target = ast::Target { workflow: workflow.clone(), step: Some(stage.clone()), span: workflow.span };
                let (workflow, stage) = self.target(file, &target, workflows)?;
                let key = self.key_filter(file, &workflows[workflow as usize], key);
                Some(ir::Expectation::Stage { workflow, key, stage: stage? })
            }
            ast::Expectation::Count { metric, target, op, value, .. } => {
                let metric = self.choice(file, metric, "count metric", Metric::ALL);
                let (workflow, stage) = self.target(file, target, workflows)?;
                let op = match op {
                    ast::CompareOp::Eq => ir::CompareOp::Eq,
                    ast::CompareOp::Ne => ir::CompareOp::Ne,
                    ast::CompareOp::Lt => ir::CompareOp::Lt,
                    ast::CompareOp::Le => ir::CompareOp::Le,
                    ast::CompareOp::Gt => ir::CompareOp::Gt,
                    ast::CompareOp::Ge => ir::CompareOp::Ge,
                };
                Some(ir::Expectation::Count { metric: metric?, workflow, stage, op, value: *value })
            }
            ast::Expectation::No { alert, kind, target } => {
                let kind = match kind {
                    Some(k) => Some(self.choice(file, k, "record kind", RecordKind::ALL)?),
                    None => None,
                };
                let (workflow, step) = match target {
                    Some(t) => {
                        let (w, s) = self.target(file, t, workflows)?;
                        (Some(w), s)
                    }
                    None => (None, None),
                };
                Some(ir::Expectation::NoRecord { alert: *alert, kind, workflow, step })
            }
        }
    }
}

/// The value of a literal (possibly negated) after checking.
fn const_value(expr: &ir::Expr) -> Value {
    match expr {
        ir::Expr::Const(v) => v.clone(),
        ir::Expr::Unary { op: ir::UnaryOp::Neg, operand } => match const_value(operand) {
            Value::Int(i) => Value::Int(-i),
            Value::Float(f) => Value::Float(-f),
            Value::Duration(d) => Value::Duration(-d),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// Workflow-level statements gathered before the steps are lowered.
struct Settings<'a> {
    alerting: ir::Alerting,
    grace_ms: u64,
    retain_ms: Option<u64>,
    aging_ms: Option<Vec<u64>>,
    timezone: Option<String>,
    key: Option<(&'a Vec<ast::KeyField>, Span)>,
    group_by: Option<&'a Vec<Ident>>,
    cohort: Option<&'a Ident>,
    open: Option<(u32, Span)>,
    status: Vec<(&'a Ident, &'a ast::Expr)>,
    /// out_of_order, duplicate, unexpected.
    handling: [Handling; 3],
    depends_on: Vec<u32>,
}

/// The event types of a workflow's steps, each once, in step order (so
/// that what is reported about them comes in the order of the source).
fn distinct_events(events: &[Option<u32>]) -> Vec<u32> {
    let mut seen = BTreeSet::new();
    events.iter().flatten().copied().filter(|e| seen.insert(*e)).collect()
}

fn is_start(step: &ast::StepDecl) -> bool {
    matches!(step.form, StepForm::Expect | StepForm::Start)
}

fn setting_name(setting: &SettingKind) -> &'static str {
    match setting {
        SettingKind::Severity(_) => "severity",
        SettingKind::Runbook(_) => "runbook",
        SettingKind::Notify { .. } => "notify",
        SettingKind::Renotify(_) => "renotify",
        SettingKind::Grace(_) => "grace",
    }
}

/// For each step, the steps that can come before it (transitively).
fn ancestors(sources: &[Vec<usize>]) -> Vec<BTreeSet<usize>> {
    (0..sources.len())
        .map(|i| {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<usize> = sources[i].clone();
            while let Some(j) = stack.pop() {
                if seen.insert(j) {
                    stack.extend(sources[j].iter().copied());
                }
            }
            seen
        })
        .collect()
}

/// The value of a condition made only of constants, if it is one.
fn const_bool(expr: &ir::Expr) -> Option<bool> {
    match expr {
        ir::Expr::Const(Value::Bool(b)) => Some(*b),
        ir::Expr::Unary { op: ir::UnaryOp::Not, operand } => const_bool(operand).map(|b| !b),
        ir::Expr::Binary { op, lhs, rhs } => {
            if let (ir::Expr::Const(a), ir::Expr::Const(b)) = (&**lhs, &**rhs) {
                let ordering = match (a, b) {
                    (Value::Int(x), Value::Int(y)) => x.partial_cmp(y),
                    (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
                    (Value::String(x), Value::String(y)) => x.partial_cmp(y),
                    (Value::Bool(x), Value::Bool(y)) => x.partial_cmp(y),
                    _ => None,
                }?;
                use std::cmp::Ordering::*;
                return Some(match op {
                    ir::BinaryOp::Eq => ordering == Equal,
                    ir::BinaryOp::Ne => ordering != Equal,
                    ir::BinaryOp::Lt => ordering == Less,
                    ir::BinaryOp::Le => ordering != Greater,
                    ir::BinaryOp::Gt => ordering == Greater,
                    ir::BinaryOp::Ge => ordering != Less,
                    _ => return None,
                });
            }
            match op {
                ir::BinaryOp::And => match (const_bool(lhs), const_bool(rhs)) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
                ir::BinaryOp::Or => match (const_bool(lhs), const_bool(rhs)) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}
