//! `event X from "schema.json"`: fields from a JSON Schema (draft 2020-12).
//!
//! Only the flat subset that maps onto mon fields is accepted: `properties`
//! of type string (with `format` date or date-time for dates and
//! timestamps), integer, number, boolean, a string `enum`, and
//! `["T", "null"]` for optional. A property left out of `required` is
//! optional; `"x-mon-pii": true` marks it `pii`. Anything else (nested
//! objects, arrays) is refused with the property's name, because a field the
//! checker cannot type is a field no rule could use safely.

use serde_json::Value as Json;

use crate::ir::FieldType;

/// Reads schema files for the compiler, which itself does no I/O.
pub trait SchemaLoader {
    /// The text of `relative`, resolved against the directory of `rule_file`.
    fn load(&self, rule_file: &str, relative: &str) -> Result<String, String>;
}

/// For callers without files (the language server on unsaved buffers can
/// supply its own): every schema is unreadable.
pub struct NoSchemas;

impl SchemaLoader for NoSchemas {
    fn load(&self, _rule_file: &str, relative: &str) -> Result<String, String> {
        Err(format!("schemas are not available here ({relative})"))
    }
}

#[derive(Debug, PartialEq)]
pub struct SchemaField {
    pub name: String,
    pub ty: FieldType,
    pub optional: bool,
    pub pii: bool,
}

#[derive(Debug, PartialEq)]
pub enum SchemaError {
    Invalid(String),
    Unsupported { property: String, reason: String },
}

pub fn fields_from_schema(text: &str) -> Result<Vec<SchemaField>, SchemaError> {
    let root: Json = serde_json::from_str(text).map_err(|e| SchemaError::Invalid(format!("invalid JSON: {e}")))?;
    if root.get("type").and_then(Json::as_str).is_some_and(|t| t != "object") {
        return Err(SchemaError::Invalid("the schema's top-level type must be `object`".into()));
    }
    let properties = root
        .get("properties")
        .and_then(Json::as_object)
        .ok_or_else(|| SchemaError::Invalid("the schema has no `properties` object".into()))?;
    let required: Vec<&str> = root
        .get("required")
        .and_then(Json::as_array)
        .map(|r| r.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let mut fields = Vec::with_capacity(properties.len());
    for (name, property) in properties {
        let unsupported =
            |reason: &str| SchemaError::Unsupported { property: name.clone(), reason: reason.to_string() };
        let (type_name, nullable) = match property.get("type") {
            Some(Json::String(t)) => (Some(t.as_str()), false),
            Some(Json::Array(types)) => {
                let names: Vec<&str> = types.iter().filter_map(Json::as_str).collect();
                let non_null: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
                if non_null.len() != 1 {
                    return Err(unsupported("a property must have one type, optionally with \"null\""));
                }
                (Some(non_null[0]), names.contains(&"null"))
            }
            None => (None, false),
            Some(_) => return Err(unsupported("`type` must be a string or an array of strings")),
        };
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !mon_grammar::reserved_words().contains(&name.as_str());
        if !valid_name {
            return Err(unsupported(
                "the name is not a valid mon field name (letters, digits and `_`, not a reserved word)",
            ));
        }
        let mut nullable = nullable;
        let ty = if let Some(variants) = property.get("enum").and_then(Json::as_array) {
            // `null` among the values is the usual way to say "optional".
            nullable |= variants.iter().any(Json::is_null);
            let names: Option<Vec<String>> =
                variants.iter().filter(|v| !v.is_null()).map(|v| v.as_str().map(str::to_string)).collect();
            let names = names.ok_or_else(|| unsupported("only string enums are supported"))?;
            let repeated = names.iter().enumerate().any(|(i, n)| names[..i].contains(n));
            if names.is_empty() || repeated {
                return Err(unsupported("an enum needs distinct values"));
            }
            FieldType::Enum(names)
        } else {
            match (type_name, property.get("format").and_then(Json::as_str)) {
                (Some("string"), Some("date")) => FieldType::Date,
                (Some("string"), Some("date-time")) => FieldType::Timestamp,
                (Some("string"), Some("duration")) => FieldType::Duration,
                (Some("string"), _) => FieldType::String,
                (Some("integer"), _) => FieldType::Int,
                (Some("number"), _) => FieldType::Float,
                (Some("boolean"), _) => FieldType::Bool,
                (Some(other @ ("object" | "array")), _) => {
                    return Err(unsupported(&format!("type `{other}` has no mon field type")));
                }
                (Some(other), _) => return Err(unsupported(&format!("unknown type `{other}`"))),
                (None, _) => return Err(unsupported("the property has no `type`")),
            }
        };
        let pii = property.get("x-mon-pii").and_then(Json::as_bool).unwrap_or(false);
        fields.push(SchemaField {
            name: name.clone(),
            ty,
            optional: nullable || !required.contains(&name.as_str()),
            pii,
        });
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_supported_type() {
        let schema = r#"{
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "job_id": {"type": "string"},
                "date": {"type": "string", "format": "date"},
                "at": {"type": "string", "format": "date-time"},
                "rows": {"type": "integer"},
                "ratio": {"type": ["number", "null"]},
                "ok": {"type": "boolean"},
                "region": {"type": "string", "enum": ["EMEA", "AMER"]},
                "trader": {"type": "string", "x-mon-pii": true}
            },
            "required": ["job_id", "date", "at", "rows", "ratio", "ok", "region", "trader"]
        }"#;
        let fields = fields_from_schema(schema).expect("valid schema");
        let find = |n: &str| fields.iter().find(|f| f.name == n).expect(n);
        assert_eq!(find("date").ty, FieldType::Date);
        assert_eq!(find("at").ty, FieldType::Timestamp);
        assert_eq!(find("rows").ty, FieldType::Int);
        assert!(find("ratio").optional, "null in the type list makes it optional");
        assert!(!find("ok").optional);
        assert_eq!(find("region").ty, FieldType::Enum(vec!["EMEA".into(), "AMER".into()]));
        assert!(find("trader").pii);
    }

    #[test]
    fn unlisted_properties_are_optional() {
        let fields = fields_from_schema(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#).expect("valid");
        assert!(fields[0].optional);
    }

    #[test]
    fn refuses_nested_objects_naming_the_property() {
        let err = fields_from_schema(r#"{"type":"object","properties":{"meta":{"type":"object"}}}"#).unwrap_err();
        assert!(matches!(err, SchemaError::Unsupported { ref property, .. } if property == "meta"), "{err:?}");
    }

    #[test]
    fn a_null_enum_value_makes_the_field_optional() {
        let fields = fields_from_schema(
            r#"{"type":"object","properties":{"s":{"type":["string","null"],"enum":["NEW",null]}},"required":["s"]}"#,
        )
        .expect("valid");
        assert_eq!(fields[0].ty, FieldType::Enum(vec!["NEW".into()]));
        assert!(fields[0].optional);
    }

    #[test]
    fn refuses_names_no_rule_could_use() {
        for name in ["trade-id", "open", "", "9lives"] {
            let schema = format!(r#"{{"type":"object","properties":{{"{name}":{{"type":"string"}}}}}}"#);
            assert!(matches!(fields_from_schema(&schema), Err(SchemaError::Unsupported { .. })), "{name}");
        }
    }

    #[test]
    fn refuses_invalid_json() {
        assert!(matches!(fields_from_schema("{"), Err(SchemaError::Invalid(_))));
    }
}
