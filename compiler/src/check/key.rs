//! How events are correlated into items: the workflow's key fields with
//! the slot that holds each in every event (mapped with `= event.field`
//! where names differ), `group by` fields, and `depends on` between
//! workflows, which needs the same key (or both scheduled).

use std::collections::HashMap;

use mon_grammar::ast::{self, Ident, Span, StmtKind};

use super::workflow::{distinct_events, Settings};
use super::Checker;
use crate::diagnostics::{DiagnosticKind, Related};
use crate::ir::{self, FieldType};
use crate::suggest::did_you_mean;
use crate::types::Type;

impl<'a> Checker<'a> {
    pub(super) fn key(
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

    pub(super) fn group_by(
        &mut self,
        file: usize,
        settings: &Settings<'a>,
        events: &[Option<u32>],
    ) -> Vec<ir::GroupField> {
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

    pub(super) fn check_dependencies(&mut self, workflows: &mut [ir::Workflow]) {
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
}
