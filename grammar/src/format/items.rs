//! Items, workflow statements and test statements, printed.
//!
//! Each method renders one node of the tree; a node with a block hands its
//! children to `braced`, which lays them out on one line or one
//! per line as the source had them.

use super::expr::{expr, string};
use super::statements::{names, push_zone, qualified, setting_text, step_text, target_text, time_of_day};
use super::{Printer, Rendered};
use crate::ast::*;
use crate::literal::{format_date, format_duration};

impl<'a> Printer<'a> {
    pub(super) fn item(&mut self, item: &Item, depth: usize) -> Rendered {
        match item {
            Item::Event(d) => self.event(d, depth),
            Item::Workflow(d) => {
                let kids: Vec<Span> = d.stmts.iter().map(|s| s.span).collect();
                let open = self.find(d.name.span.end, b'{');
                let expanded = self.spans_lines(d.span.start, d.span.end);
                let (body, span) =
                    self.braced(d.span.start, open, d.span.end - 1, expanded, &kids, depth, "; ", &mut |p, i| {
                        Rendered::line(p.stmt(&d.stmts[i]))
                    });
                Rendered { text: format!("workflow {} {body}", d.name.name), body: span, doc: d.doc.is_some() }
            }
            Item::Channel(d) => {
                let targets: Vec<String> = d
                    .targets
                    .iter()
                    .map(|t| match t {
                        ChannelTarget::Literal(s) => string(&s.value),
                        ChannelTarget::Secret(s) => format!("secret({})", string(&s.value)),
                    })
                    .collect();
                let text = format!("channel {} {} {}", d.name.name, d.kind.name, targets.join(", "));
                Rendered { text, body: None, doc: d.doc.is_some() }
            }
            Item::Calendar(d) => {
                let kids: Vec<Span> = d.dates.iter().map(|s| s.span).collect();
                let open = self.find(d.name.span.end, b'{');
                let expanded = self.spans_lines(d.span.start, d.span.end);
                let (body, span) =
                    self.braced(d.span.start, open, d.span.end - 1, expanded, &kids, depth, ", ", &mut |_, i| {
                        let date = &d.dates[i];
                        Rendered::line(format_date(date.year, date.month, date.day))
                    });
                Rendered { text: format!("calendar {} {body}", d.name.name), body: span, doc: d.doc.is_some() }
            }
            Item::Maintenance(d) => {
                let mut text = format!("maintenance {} ", d.name.name);
                match &d.window {
                    MaintenanceWindow::Weekly { from_day, from, to_day, to, zone } => {
                        text.push_str("every ");
                        if let Some(day) = from_day {
                            text.push_str(&day.name);
                            text.push(' ');
                        }
                        text.push_str(&time_of_day(from));
                        text.push_str(" to ");
                        if let Some(day) = to_day {
                            text.push_str(&day.name);
                            text.push(' ');
                        }
                        text.push_str(&time_of_day(to));
                        push_zone(&mut text, zone);
                    }
                    MaintenanceWindow::Fixed { from, to } => {
                        text.push_str(&format!("from {} to {}", from.text, to.text));
                    }
                }
                if !d.workflows.is_empty() {
                    text.push_str(" for ");
                    text.push_str(&names(&d.workflows, ", "));
                }
                Rendered { text, body: None, doc: d.doc.is_some() }
            }
            Item::Test(d) => {
                let kids: Vec<Span> = d.stmts.iter().map(|s| s.span).collect();
                let open = self.find(d.name.span.end, b'{');
                let expanded = self.spans_lines(d.span.start, d.span.end);
                let (body, span) =
                    self.braced(d.span.start, open, d.span.end - 1, expanded, &kids, depth, "; ", &mut |p, i| {
                        p.test_stmt(&d.stmts[i], depth + 1)
                    });
                Rendered { text: format!("test {} {body}", string(&d.name.value)), body: span, doc: false }
            }
        }
    }

    fn event(&mut self, d: &EventDecl, depth: usize) -> Rendered {
        let doc = d.doc.is_some();
        match &d.body {
            EventBody::Schema(path) => {
                Rendered { text: format!("event {} from {}", d.name.name, string(&path.value)), body: None, doc }
            }
            EventBody::Fields(fields) => {
                let kids: Vec<Span> = fields.iter().map(|f| f.span).collect();
                let open = self.find(d.name.span.end, b'{');
                let expanded = self.spans_lines(d.span.start, d.span.end);
                let (body, span) =
                    self.braced(d.span.start, open, d.span.end - 1, expanded, &kids, depth, ", ", &mut |p, i| {
                        p.field(&fields[i], depth + 1)
                    });
                Rendered { text: format!("event {} {body}", d.name.name), body: span, doc }
            }
        }
    }

    fn field(&mut self, f: &FieldDecl, depth: usize) -> Rendered {
        let doc = f.doc.is_some();
        let suffix = format!("{}{}", if f.ty.optional { "?" } else { "" }, if f.pii { " pii" } else { "" });
        if let TypeKind::Enum(values) = &f.ty.kind {
            let open = self.find(f.ty.span.start, b'{');
            let close = self.find(values.last().map_or(open + 1, |v| v.span.end), b'}');
            if self.spans_lines(open, close) {
                let kids: Vec<Span> = values.iter().map(|v| v.span).collect();
                let (body, span) = self.braced(f.span.start, open, close, true, &kids, depth, ", ", &mut |_, i| {
                    Rendered::line(values[i].name.clone())
                });
                return Rendered { text: format!("{}: enum {body}{suffix}", f.name.name), body: span, doc };
            }
        }
        let ty = match &f.ty.kind {
            TypeKind::Named(name) => name.name.clone(),
            TypeKind::Enum(values) => format!("enum {{ {} }}", names(values, ", ")),
        };
        Rendered { text: format!("{}: {ty}{suffix}", f.name.name), body: None, doc }
    }

    // ------------------------------------------------------------ workflows

    fn stmt(&self, s: &Stmt) -> String {
        match &s.kind {
            StmtKind::Key(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        if f.sources.is_empty() {
                            f.name.name.clone()
                        } else {
                            let sources: Vec<String> = f.sources.iter().map(qualified).collect();
                            format!("{} = {}", f.name.name, sources.join(", "))
                        }
                    })
                    .collect();
                format!("key {}", fields.join(", "))
            }
            StmtKind::GroupBy(fields) => format!("group by {}", names(fields, ", ")),
            StmtKind::Cohort(field) => format!("cohort {}", field.name),
            StmtKind::Timezone(zone) => format!("timezone {}", zone.name),
            StmtKind::Status { color, condition } => format!("status {} when {}", color.name, expr(condition)),
            StmtKind::On { case, action } => format!("on {} {}", case.name, action.name),
            StmtKind::DependsOn(workflows) => format!("depends on {}", names(workflows, ", ")),
            StmtKind::Retain(d) => format!("retain {}", format_duration(d.millis)),
            StmtKind::Aging(buckets) => {
                let buckets: Vec<String> = buckets.iter().map(|d| format_duration(d.millis)).collect();
                format!("aging {}", buckets.join(", "))
            }
            StmtKind::Open(time) => format!("open {}", time_of_day(time)),
            StmtKind::Setting(setting) => setting_text(&setting.kind),
            StmtKind::Step(step) => step_text(step),
        }
    }

    // ------------------------------------------------------------ tests

    fn test_stmt(&mut self, s: &TestStmt, depth: usize) -> Rendered {
        match &s.kind {
            TestStmtKind::At(ts) => Rendered::line(format!("at {}", ts.text)),
            TestStmtKind::AdvanceTo(ts) => Rendered::line(format!("advance to {}", ts.text)),
            TestStmtKind::AdvanceBy(d) => Rendered::line(format!("advance by {}", format_duration(d.millis))),
            TestStmtKind::Event { event, fields, at, id } => {
                let (record, body) = self.record(fields, event.span.end, depth);
                let mut text = format!("event {} {record}", event.name);
                if let Some(at) = at {
                    text.push_str(&format!(" at {}", at.text));
                }
                if let Some(id) = id {
                    text.push_str(&format!(" id {}", string(&id.value)));
                }
                Rendered { text, body, doc: false }
            }
            TestStmtKind::Expect(expectation) => self.expectation(expectation, depth),
        }
    }

    fn expectation(&mut self, e: &Expectation, depth: usize) -> Rendered {
        let mut body = None;
        let text = match e {
            Expectation::Alert { kind, target, key } => {
                let mut text = format!("expect alert {} {}", kind.name, target_text(target));
                if let Some(key) = key {
                    let (record, span) = self.record(key, target.span.end, depth);
                    text.push_str(&format!(" for {record}"));
                    body = span;
                }
                text
            }
            Expectation::Record { kind, target, delay, key } => {
                let mut text = format!("expect {} {}", kind.name, target_text(target));
                if let Some(delay) = delay {
                    text.push_str(&format!(" by {}", format_duration(delay.millis)));
                }
                if let Some(key) = key {
                    let (record, span) = self.record(key, target.span.end, depth);
                    text.push_str(&format!(" for {record}"));
                    body = span;
                }
                text
            }
            Expectation::Status { target, color } => {
                format!("expect status {} {}", target_text(target), color.name)
            }
            Expectation::Stage { workflow, key, stage } => {
                let (record, span) = self.record(key, workflow.span.end, depth);
                body = span;
                format!("expect stage {} for {record} {}", workflow.name, stage.name)
            }
            Expectation::Count { metric, target, op, value, .. } => {
                format!("expect count {} {} {} {value}", metric.name, target_text(target), op.symbol())
            }
            Expectation::No { alert, kind, target } => {
                let mut text = "expect no".to_string();
                if *alert {
                    text.push_str(" alert");
                }
                if let Some(kind) = kind {
                    text.push(' ');
                    text.push_str(&kind.name);
                }
                if let Some(target) = target {
                    text.push(' ');
                    text.push_str(&target_text(target));
                }
                text
            }
        };
        Rendered { text, body, doc: false }
    }

    /// A record literal whose `{` is the first one after `search_from`.
    fn record(&mut self, fields: &[RecordField], search_from: usize, depth: usize) -> (String, Option<Span>) {
        let open = self.find(search_from, b'{');
        let close = self.find(fields.last().map_or(open + 1, |f| f.span.end), b'}');
        let kids: Vec<Span> = fields.iter().map(|f| f.span).collect();
        let expanded = self.spans_lines(open, close);
        self.braced(open, open, close, expanded, &kids, depth, ", ", &mut |_, i| {
            Rendered::line(format!("{}: {}", fields[i].name.name, expr(&fields[i].value)))
        })
    }
}
