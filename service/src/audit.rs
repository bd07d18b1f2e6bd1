//! The audit log: who did what to the service, and when. Rule versions
//! stored, activations and rollbacks (with the before/after diff and what
//! the activation superseded), workflows enabled or disabled, alert acks,
//! suppressions and resolutions, token changes.
//!
//! Append-only: entries are numbered from 0 in the sled tree `audit`
//! (`e`+seq, big-endian) and never changed or deleted by the service; the
//! API reads them newest first. With Kafka on, [`publish`] also sends each
//! entry, in order, to `[kafka] audit_topic`, and remembers how far it got
//! (`m/published`), so an entry is published at least once.
//!
//! What it must not do: hold anything an engine replay depends on. The
//! journal decides what runs; this records who asked for it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Domain, Error};
use crate::store::StoreHandle;

const ENTRY: u8 = b'e';
const PUBLISHED: &[u8] = b"m/published";

/// One thing a person (or `mon run` itself) did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: u64,
    /// When (RFC 3339, wall clock).
    pub at: String,
    /// The caller: an API token's name, an OIDC subject, `anonymous` with
    /// auth off, `mon run` for what the service did at start.
    pub who: String,
    /// `rules.version_stored`, `rules.activated`, `rules.rolled_back`,
    /// `workflow.disabled`, `workflow.enabled`, `alert.ack`, `alert.unack`,
    /// `alert.suppress`, `alert.resolve`, `token.created`, `token.revoked`.
    pub action: String,
    /// What it was done to: a version, a workflow, an alert id, a token name.
    pub target: String,
    /// What changed: for rule changes the before/after diff.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The audit log; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    tree: sled::Tree,
    /// Serialises appends, so sequence numbers have no gaps.
    append: Arc<Mutex<()>>,
    /// Wakes the publisher after an append.
    wake: Arc<tokio::sync::Notify>,
}

fn key(seq: u64) -> [u8; 9] {
    let mut k = [ENTRY; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(k: &[u8]) -> u64 {
    k.get(1..9).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes)
}

impl Audit {
    pub fn open(store: &StoreHandle) -> Result<Audit, Error> {
        Ok(Audit {
            tree: store.tree("audit")?,
            append: Arc::new(Mutex::new(())),
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Appends an entry and flushes it: the caller answers only after.
    pub fn append(&self, who: &str, action: &str, target: &str, details: Value) -> Result<AuditEntry, Error> {
        let _one_at_a_time = self.append.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let seq = match self.tree.scan_prefix([ENTRY]).next_back() {
            Some(entry) => seq_of(&entry?.0) + 1,
            None => 0,
        };
        let entry = AuditEntry {
            seq,
            at: mon_stdlib::time::format_rfc3339(crate::clock::wall_now()),
            who: who.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            details,
        };
        let bytes = serde_json::to_vec(&entry)
            .map_err(|e| Error::damaged(Domain::Store, "cannot encode an audit entry").caused_by(e))?;
        self.tree.insert(key(seq), bytes)?;
        self.tree.flush()?;
        self.wake.notify_one();
        Ok(entry)
    }

    /// Entries newest first below `before`, those `keep` accepts, up to
    /// `limit`; and the sequence to continue below when there are more.
    pub fn list(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<(Vec<AuditEntry>, Option<u64>), Error> {
        let mut entries = Vec::new();
        for item in self.tree.range(key(0)..key(before.unwrap_or(u64::MAX))).rev() {
            let (k, v) = item?;
            let Ok(entry) = serde_json::from_slice::<AuditEntry>(&v) else {
                tracing::warn!(seq = seq_of(&k), "a damaged audit entry is skipped");
                continue;
            };
            if !keep(&entry) {
                continue;
            }
            if entries.len() == limit {
                return Ok((entries, Some(entry.seq + 1)));
            }
            entries.push(entry);
        }
        Ok((entries, None))
    }

    fn unpublished(&self, limit: usize) -> Result<Vec<(u64, sled::IVec)>, Error> {
        let from = self.tree.get(PUBLISHED)?.and_then(|v| v.as_ref().try_into().ok()).map_or(0, u64::from_be_bytes);
        self.tree
            .range(key(from)..=key(u64::MAX))
            .take(limit)
            .map(|item| item.map(|(k, v)| (seq_of(&k), v)).map_err(Error::from))
            .collect()
    }

    fn published_below(&self, seq: u64) -> Result<(), Error> {
        self.tree.insert(PUBLISHED, &seq.to_be_bytes())?;
        Ok(())
    }
}

/// Sends every entry not yet published to `topic`, in order, until `stop`;
/// a failed send is retried (after a second) before any later entry goes.
pub async fn publish(
    audit: Audit,
    producer: crate::kafka::Producer,
    topic: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use rdkafka::producer::FutureRecord;
    loop {
        let entries = audit.unpublished(100).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the audit log");
            Vec::new()
        });
        let mut failed = false;
        for (seq, payload) in &entries {
            let key = seq.to_string();
            let record = FutureRecord::to(&topic).key(&key).payload(payload.as_ref());
            match producer.send(record, Duration::from_secs(10)).await {
                Ok(_) => {
                    if let Err(e) = audit.published_below(seq + 1) {
                        tracing::error!(error = %e, "cannot record how far the audit log is published");
                    }
                }
                Err((e, _)) => {
                    tracing::warn!(error = %e, seq, "publishing an audit entry failed; will retry");
                    failed = true;
                    break;
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        let pause = if failed { Duration::from_secs(1) } else { Duration::from_secs(5) };
        if entries.len() == 100 && !failed {
            continue;
        }
        tokio::select! {
            _ = audit.wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Audit) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let audit = Audit::open(&store.handle()).unwrap();
        (dir, audit)
    }

    #[test]
    fn entries_are_numbered_without_gaps_and_read_newest_first_in_pages() {
        let (_dir, audit) = open();
        for i in 0..5 {
            let entry = audit.append("ana", "alert.ack", &format!("a{i}"), serde_json::json!({"i": i})).unwrap();
            assert_eq!(entry.seq, i);
        }
        let (page, next) = audit.list(None, 2, |_| true).unwrap();
        assert_eq!(page.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(), ["a4", "a3"]);
        let (page, next) = audit.list(next, 2, |_| true).unwrap();
        assert_eq!(page.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(), ["a2", "a1"]);
        let (page, next) = audit.list(next, 2, |_| true).unwrap();
        assert_eq!(page.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(), ["a0"]);
        assert_eq!(next, None);
        let (odd, _) = audit.list(None, 10, |e| e.details["i"].as_u64().unwrap() % 2 == 1).unwrap();
        assert_eq!(odd.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 1]);
    }

    #[test]
    fn publishing_resumes_after_the_last_published_entry() {
        let (_dir, audit) = open();
        for i in 0..3 {
            audit.append("ana", "rules.activated", &i.to_string(), Value::Null).unwrap();
        }
        assert_eq!(audit.unpublished(10).unwrap().iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 1, 2]);
        audit.published_below(2).unwrap();
        assert_eq!(audit.unpublished(10).unwrap().iter().map(|(s, _)| *s).collect::<Vec<_>>(), [2]);
    }
}
