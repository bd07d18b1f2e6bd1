//! Schemas of the OpenAPI document for types the API shows but does not
//! own: the language's vocabulary (record kinds, severities, alert states:
//! enums of `mon-compiler` and `mon-runtime`, which know nothing of HTTP)
//! and the JSON that the engine writes (records, workflow metrics).
//!
//! The word lists come from the vocabulary itself where it has a list
//! (`ALL`), so a new record kind or severity is in the document at once.
//! The mirrors of engine structs are checked against real output by
//! schemathesis (tests/openapi.rs), which validates every answer.

use mon_compiler::ir::{RecordKind, Severity, Status};
use mon_runtime::alerts::{AlertState, NotificationEvent};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::store::DeliveryState;

/// A string schema whose values are `words`.
fn words<'a>(description: &str, words: impl IntoIterator<Item = &'a str>) -> RefOr<Schema> {
    let words: Vec<&str> = words.into_iter().collect();
    ObjectBuilder::new().schema_type(Type::String).description(Some(description)).enum_values(Some(words)).into()
}

macro_rules! word_schema {
    ($(#[$meta:meta])* $name:ident, $description:literal, $words:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                words($description, $words)
            }
        }

        impl ToSchema for $name {}
    };
}

word_schema!(RecordKindWord, "The kind of an output record (LANGUAGE.md §7).", RecordKind::ALL.iter().map(|(w, _)| *w));
word_schema!(SeverityWord, "An alert's severity, lowest first.", Severity::ALL.iter().map(|(w, _)| *w));
word_schema!(StatusWord, "A workflow's status colour.", Status::ALL.iter().map(|(w, _)| *w));
word_schema!(AlertStateWord, "The state of an alert.", AlertState::ALL.iter().map(|(w, _)| *w));
word_schema!(NotificationEventWord, "Why a group is notified.", NotificationEvent::ALL.iter().map(|(w, _)| *w));
word_schema!(
    DeliveryStateWord,
    "Where a notification is in its delivery.",
    [DeliveryState::Pending, DeliveryState::Retrying, DeliveryState::Sent, DeliveryState::Failed]
        .into_iter()
        .map(DeliveryState::name)
);

/// An output record as the engine writes it (LANGUAGE.md §7); fields
/// without a value are left out.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Record {
    /// Deterministic: the same input gives the same id.
    id: String,
    #[schema(value_type = RecordKindWord)]
    kind: String,
    workflow: Option<String>,
    step: Option<String>,
    /// Key field name to value.
    key: Option<std::collections::BTreeMap<String, String>>,
    /// RFC 3339.
    at: String,
    /// RFC 3339.
    deadline: Option<String>,
    delay_ms: Option<i64>,
    #[schema(value_type = Option<SeverityWord>)]
    severity: Option<String>,
    event_id: Option<String>,
    caused_by: Option<String>,
    /// Why an event was rejected.
    reason: Option<String>,
    /// Made during a maintenance window: recorded, not sent.
    suppressed: Option<bool>,
}

/// The numbers of one workflow (the engine's aggregates).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WorkflowMetrics {
    in_flight: u64,
    entered: u64,
    completed: u64,
    failed: u64,
    late: u64,
    missing: u64,
    at_risk: u64,
    duplicate: u64,
    out_of_order: u64,
    unexpected: u64,
    /// In-flight items per aging bucket.
    aging: Vec<u64>,
    stay_p50_ms: Option<i64>,
    stay_p95_ms: Option<i64>,
    /// Entries in the current second of event time and the 59 before it.
    entries_last_minute: u64,
}
