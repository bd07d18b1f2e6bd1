//! Output records: the contract of LANGUAGE.md §7.
//!
//! Instants are kept as milliseconds inside and written as RFC 3339 UTC.
//! Every record has a deterministic `id` (workflow, key, step, kind and the
//! instant or event that made it), so that a consumer can drop repeats after
//! a replay or a restart.

use std::collections::BTreeMap;

use mon_compiler::ir::Severity;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A record's kind is the compiler's vocabulary, so that `expect` in a
/// test and the records the engine makes name the same type.
pub use mon_compiler::ir::RecordKind as Kind;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    pub id: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<BTreeMap<String, String>>,
    #[serde(serialize_with = "instant")]
    pub at: i64,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "optional_instant")]
    pub deadline: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<String>,
    /// Why an event was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a `rejected` record of a replayed file: the line's number in it,
    /// from 1 (LANGUAGE.md changelog v1.4). A live input has no lines, and
    /// `id` leaves it out, so a record has the same id in a replay of a file
    /// and in the live service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Made during a maintenance window: recorded, not sent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

impl Record {
    /// Whether this record is an alert (it carries a severity).
    pub fn is_alert(&self) -> bool {
        self.severity.is_some()
    }

    pub fn new(kind: Kind, at: i64) -> Record {
        Record {
            id: String::new(),
            kind,
            workflow: None,
            step: None,
            key: None,
            at,
            deadline: None,
            delay_ms: None,
            severity: None,
            event_id: None,
            caused_by: None,
            reason: None,
            line: None,
            suppressed: false,
        }
    }

    /// Fills in `id` from what identifies the record.
    pub fn with_id(mut self) -> Record {
        let mut hasher = Sha256::new();
        hasher.update(self.kind.name());
        // The reason tells apart rejections of different lines at one instant.
        for part in [&self.workflow, &self.step, &self.event_id, &self.reason] {
            hasher.update([0]);
            hasher.update(part.as_deref().unwrap_or(""));
        }
        for (k, v) in self.key.iter().flatten() {
            hasher.update([1]);
            hasher.update(k);
            hasher.update([2]);
            hasher.update(v);
        }
        hasher.update(self.at.to_le_bytes());
        hasher.update(self.deadline.unwrap_or(i64::MIN).to_le_bytes());
        self.id = hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
        self
    }
}

fn instant<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mon_stdlib::time::format_rfc3339(*ms))
}

fn optional_instant<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => instant(ms, s),
        None => s.serialize_none(),
    }
}
