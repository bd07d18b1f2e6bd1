//! Every name in a program and what it refers to, from the syntax trees.
//!
//! Hover, go to definition, references and rename all start the same way:
//! which symbol is under the cursor, and where else does it occur. The
//! trees are the compiler's (`Compilation::files`), so they exist even when
//! the program has errors; names that cannot be resolved are simply left out.

use std::collections::{HashMap, HashSet};

use mon_grammar::ast::{
    ClauseKind, EventBody, Expectation, Expr, ExprKind, File, Item, MaintenanceWindow, SettingKind, Span, StepDecl,
    StmtKind, Target, TestStmtKind, WorkflowDecl, Zone,
};

/// What a name refers to. Stages and fields are qualified by their owner.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Symbol {
    Event(String),
    Field { event: String, field: String },
    Workflow(String),
    Stage { workflow: String, stage: String },
    Calendar(String),
    Channel(String),
    Zone(String),
}

#[derive(Clone, Debug)]
pub struct Occurrence {
    pub file: usize,
    pub span: Span,
    pub symbol: Symbol,
    /// The declaration itself (or, for a step without a name, the event
    /// name that names its stage).
    pub is_decl: bool,
}

#[derive(Default)]
pub struct Index {
    pub occurrences: Vec<Occurrence>,
}

impl Index {
    pub fn build(files: &[File]) -> Self {
        let mut fields: HashMap<&str, HashSet<&str>> = HashMap::new();
        for file in files {
            for item in &file.items {
                if let Item::Event(e) = item {
                    let set = fields.entry(e.name.name.as_str()).or_default();
                    if let EventBody::Fields(declared) = &e.body {
                        set.extend(declared.iter().map(|f| f.name.name.as_str()));
                    }
                }
            }
        }
        let mut builder = Builder { fields, out: Vec::new(), file: 0 };
        for (i, file) in files.iter().enumerate() {
            builder.file = i;
            for item in &file.items {
                builder.item(item);
            }
        }
        Index { occurrences: builder.out }
    }

    /// The occurrence under `offset` in `file` (the first recorded wins when
    /// spans coincide: an unnamed step's event name is the event first).
    pub fn at(&self, file: usize, offset: usize) -> Option<&Occurrence> {
        self.occurrences.iter().find(|o| o.file == file && o.span.start <= offset && offset <= o.span.end)
    }

    pub fn declarations<'a>(&'a self, symbol: &'a Symbol) -> impl Iterator<Item = &'a Occurrence> + 'a {
        self.occurrences.iter().filter(move |o| o.is_decl && &o.symbol == symbol)
    }

    pub fn references<'a>(&'a self, symbol: &'a Symbol) -> impl Iterator<Item = &'a Occurrence> + 'a {
        self.occurrences.iter().filter(move |o| &o.symbol == symbol)
    }
}

struct Builder<'a> {
    /// The declared fields of each event (for telling fields from enum values).
    fields: HashMap<&'a str, HashSet<&'a str>>,
    out: Vec<Occurrence>,
    file: usize,
}

impl Builder<'_> {
    fn push(&mut self, span: Span, symbol: Symbol, is_decl: bool) {
        self.out.push(Occurrence { file: self.file, span, symbol, is_decl });
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Event(e) => {
                self.push(e.name.span, Symbol::Event(e.name.name.clone()), true);
                if let EventBody::Fields(fields) = &e.body {
                    for f in fields {
                        let symbol = Symbol::Field { event: e.name.name.clone(), field: f.name.name.clone() };
                        self.push(f.name.span, symbol, true);
                    }
                }
            }
            Item::Workflow(w) => self.workflow(w),
            Item::Channel(c) => self.push(c.name.span, Symbol::Channel(c.name.name.clone()), true),
            Item::Calendar(c) => self.push(c.name.span, Symbol::Calendar(c.name.name.clone()), true),
            Item::Maintenance(m) => {
                if let MaintenanceWindow::Weekly { zone: Some(zone), .. } = &m.window {
                    self.zone(zone);
                }
                for w in &m.workflows {
                    self.push(w.span, Symbol::Workflow(w.name.clone()), false);
                }
            }
            Item::Test(t) => {
                for stmt in &t.stmts {
                    match &stmt.kind {
                        TestStmtKind::Event { event, fields, .. } => {
                            self.push(event.span, Symbol::Event(event.name.clone()), false);
                            for f in fields {
                                let symbol = Symbol::Field { event: event.name.clone(), field: f.name.name.clone() };
                                self.push(f.name.span, symbol, false);
                            }
                        }
                        TestStmtKind::Expect(expectation) => self.expectation(expectation),
                        _ => {}
                    }
                }
            }
        }
    }

    fn expectation(&mut self, expectation: &Expectation) {
        match expectation {
            Expectation::Alert { target, .. }
            | Expectation::Record { target, .. }
            | Expectation::Status { target, .. }
            | Expectation::Count { target, .. } => self.target(target),
            Expectation::No { target: Some(target), .. } => self.target(target),
            Expectation::No { target: None, .. } => {}
            Expectation::Stage { workflow, stage, .. } => {
                self.push(workflow.span, Symbol::Workflow(workflow.name.clone()), false);
                let symbol = Symbol::Stage { workflow: workflow.name.clone(), stage: stage.name.clone() };
                self.push(stage.span, symbol, false);
            }
        }
    }

    fn target(&mut self, target: &Target) {
        self.push(target.workflow.span, Symbol::Workflow(target.workflow.name.clone()), false);
        if let Some(step) = &target.step {
            let symbol = Symbol::Stage { workflow: target.workflow.name.clone(), stage: step.name.clone() };
            self.push(step.span, symbol, false);
        }
    }

    fn zone(&mut self, zone: &Zone) {
        self.push(zone.span, Symbol::Zone(zone.name.clone()), false);
    }

    fn workflow(&mut self, w: &WorkflowDecl) {
        let wf = w.name.name.clone();
        self.push(w.name.span, Symbol::Workflow(wf.clone()), true);
        let steps: Vec<&StepDecl> = w.steps().collect();
        for stmt in &w.stmts {
            match &stmt.kind {
                StmtKind::Key(keys) => {
                    for key in keys {
                        for source in &key.sources {
                            self.push(source.qualifier.span, Symbol::Event(source.qualifier.name.clone()), false);
                            let symbol =
                                Symbol::Field { event: source.qualifier.name.clone(), field: source.name.name.clone() };
                            self.push(source.name.span, symbol, false);
                        }
                    }
                }
                StmtKind::Timezone(zone) => self.zone(zone),
                StmtKind::DependsOn(names) => {
                    for n in names {
                        self.push(n.span, Symbol::Workflow(n.name.clone()), false);
                    }
                }
                StmtKind::Setting(setting) => self.setting(&setting.kind),
                StmtKind::Step(step) => self.step(&wf, step, &steps),
                _ => {}
            }
        }
    }

    fn setting(&mut self, setting: &SettingKind) {
        match setting {
            SettingKind::Notify { channels, .. } => {
                for c in channels {
                    self.push(c.span, Symbol::Channel(c.name.clone()), false);
                }
            }
            SettingKind::Escalate { channel, .. } => {
                self.push(channel.span, Symbol::Channel(channel.name.clone()), false)
            }
            _ => {}
        }
    }

    fn step(&mut self, wf: &str, step: &StepDecl, steps: &[&StepDecl]) {
        self.push(step.event.span, Symbol::Event(step.event.name.clone()), false);
        let name = step.step_name();
        self.push(name.span, Symbol::Stage { workflow: wf.to_string(), stage: name.name.clone() }, true);
        for after in &step.after {
            self.push(after.span, Symbol::Stage { workflow: wf.to_string(), stage: after.name.clone() }, false);
        }
        if let Some(predicate) = &step.predicate {
            self.expr(wf, &step.event.name, predicate, steps);
        }
        for clause in &step.clauses {
            match &clause.kind {
                ClauseKind::By { zone: Some(zone), .. }
                | ClauseKind::WarnAt { zone: Some(zone), .. }
                | ClauseKind::NotBeforeTime { zone: Some(zone), .. } => self.zone(zone),
                ClauseKind::Except(calendars) => {
                    for c in calendars {
                        self.push(c.span, Symbol::Calendar(c.name.clone()), false);
                    }
                }
                ClauseKind::Setting(setting) => self.setting(setting),
                _ => {}
            }
        }
    }

    /// Names in a `where`: a bare name is a field of the step's event (when
    /// it has one: it may also be an enum value); `step.field` is a field
    /// of an earlier step's event.
    fn expr(&mut self, wf: &str, event: &str, expr: &Expr, steps: &[&StepDecl]) {
        // An explicit stack: generated rules can nest thousands deep.
        let mut stack = vec![expr];
        while let Some(expr) = stack.pop() {
            match &expr.kind {
                ExprKind::Name(ident) if self.has_field(event, &ident.name) => {
                    let symbol = Symbol::Field { event: event.to_string(), field: ident.name.clone() };
                    self.push(ident.span, symbol, false);
                }
                ExprKind::Path(q) => {
                    let stage = Symbol::Stage { workflow: wf.to_string(), stage: q.qualifier.name.clone() };
                    self.push(q.qualifier.span, stage, false);
                    if let Some(source) = steps.iter().find(|s| s.step_name().name == q.qualifier.name) {
                        let symbol = Symbol::Field { event: source.event.name.clone(), field: q.name.name.clone() };
                        self.push(q.name.span, symbol, false);
                    }
                }
                ExprKind::Call { args, .. } | ExprKind::List(args) => stack.extend(args.iter()),
                ExprKind::Unary { operand, .. } | ExprKind::Paren(operand) => stack.push(operand),
                ExprKind::Binary { lhs, rhs, .. } => {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                _ => {}
            }
        }
    }

    fn has_field(&self, event: &str, field: &str) -> bool {
        self.fields.get(event).is_some_and(|fields| fields.contains(field))
    }
}

/// The declaration of event `name` and its file index.
pub fn find_event<'a>(files: &'a [File], name: &str) -> Option<(usize, &'a mon_grammar::ast::EventDecl)> {
    files.iter().enumerate().find_map(|(i, f)| {
        f.items.iter().find_map(|item| match item {
            Item::Event(e) if e.name.name == name => Some((i, e)),
            _ => None,
        })
    })
}

/// The declaration of workflow `name`.
pub fn find_workflow<'a>(files: &'a [File], name: &str) -> Option<&'a WorkflowDecl> {
    files.iter().find_map(|f| {
        f.items.iter().find_map(|item| match item {
            Item::Workflow(w) if w.name.name == name => Some(w),
            _ => None,
        })
    })
}
