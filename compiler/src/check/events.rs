//! Event declarations: fields in slot order, their types (with a "did you
//! mean" for a misspelt type), duplicates inside an event or an enum, and
//! fields imported from a JSON Schema through the caller's loader.

use std::collections::HashMap;

use mon_grammar::ast::{self, Span};

use super::Checker;
use crate::diagnostics::{DiagnosticKind, Related};
use crate::ir::{self, EventType, FieldType};
use crate::schema::{fields_from_schema, SchemaError};
use crate::suggest::did_you_mean;

impl<'a> Checker<'a> {
    pub(super) fn event(&mut self, file: usize, decl: &ast::EventDecl) -> EventType {
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

    pub(super) fn field_type(&mut self, file: usize, ty: &ast::TypeExpr) -> FieldType {
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
}
