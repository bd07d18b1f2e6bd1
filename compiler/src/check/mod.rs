//! Name resolution, checks and lowering of a whole program.
//!
//! One pass over the declarations of every file builds the name tables
//! (reporting duplicates against the first declaration), then each
//! declaration is checked and lowered to the IR. Errors are recorded and
//! checking goes on, so one run reports everything; the caller discards the
//! program if any error was recorded.
//!
//! This module owns the `Checker`, the first pass and the lookups every
//! declaration uses (names, fixed words, zones, timestamps); each kind of
//! declaration, and each concern of a workflow, has its own module below.

use std::collections::HashMap;

use mon_grammar::ast::{self, Ident, Item, Span};

use crate::builtins::Functions;
use crate::diagnostics::{Diagnostic, DiagnosticKind, Related, SourceFile};
use crate::ir::{self, EventType};
use crate::schema::SchemaLoader;
use crate::suggest::{did_you_mean, nearest_zone};
use crate::time;

mod declarations;
mod events;
mod graph;
mod key;
mod schedule;
mod status;
mod test_blocks;
mod timing;
mod workflow;

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

    /// The id of the channel `ident` names, or E205 with a suggestion
    /// (`notify` and `escalate` name channels the same way).
    fn channel_id(&mut self, file: usize, ident: &Ident) -> Option<u32> {
        if let Some(&id) = self.channel_ids.get(ident.name.as_str()) {
            return Some(id);
        }
        if self.is_unparsed("channel", &ident.name) {
            return None;
        }
        let suggestion = did_you_mean(&ident.name, self.channel_ids.keys().copied());
        self.report(file, ident.span, DiagnosticKind::UnknownChannel { name: ident.name.clone(), suggestion });
        None
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
}
