//! Rule versions in sled (tree `rules`): every bundle a person or `mon run`
//! stored, numbered from 1, with its program hash, author and message;
//! which version the engine runs; and the history of activations.
//!
//! Keys: `v`+version the [`StoredVersion`] (JSON); `a`+seq an
//! [`ActivationEntry`]; `m/active` the version the engine runs;
//! `m/imported` the last version imported from a rules directory;
//! `s/`+journal sequence the version a snapshot covering the journal up to
//! that sequence was made under. Numbers are big-endian so keys sort.
//!
//! Versions are written by the HTTP side (storing one changes nothing that
//! runs); what runs changes only by an activation, which is a journaled
//! input of the processing thread. That thread writes `m/active` and the
//! history after applying one, in replay too, so the pointer always ends
//! as the journal says.

use serde::{Deserialize, Serialize};

use super::Bundle;
use crate::error::{Domain, Error};
use crate::store::StoreHandle;

const VERSION: u8 = b'v';
const ACTIVATION: u8 = b'a';
const ACTIVE: &[u8] = b"m/active";
const IMPORTED: &[u8] = b"m/imported";
const SNAPSHOT: &[u8] = b"s/";

/// Where a version came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `mon run RULES` read it from its rules directory at start.
    Directory,
    /// Uploaded through the API (`mon rules push`, the rule editor).
    Api,
}

/// What the API shows of a version, without its files' text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub version: u64,
    /// The compiled program's hash (hex SHA-256).
    pub hash: String,
    pub author: String,
    pub message: String,
    /// When it was stored (RFC 3339, wall clock).
    pub created_at: String,
    pub origin: Origin,
    /// The bundle's paths.
    pub files: Vec<String>,
    /// The program's workflows, in program order.
    pub workflows: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredVersion {
    pub info: VersionInfo,
    pub bundle: Bundle,
}

/// One activation, as the history keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivationEntry {
    pub version: u64,
    /// The version that ran before (`None`: the first one).
    pub previous: Option<u64>,
    /// When it took effect (RFC 3339, on the engine's clock).
    pub at: String,
    pub by: String,
}

/// What a new version is stored with, besides its bundle.
pub struct Draft {
    /// The compiled program's hash.
    pub hash: String,
    pub workflows: Vec<String>,
    pub author: String,
    pub message: String,
    pub origin: Origin,
    /// RFC 3339, wall clock.
    pub created_at: String,
}

/// The version store; cheap to clone (a sled tree handle).
#[derive(Clone)]
pub struct Versions {
    tree: sled::Tree,
}

fn key(prefix: u8, n: u64) -> [u8; 9] {
    let mut k = [prefix; 9];
    k[1..].copy_from_slice(&n.to_be_bytes());
    k
}

fn number(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

/// One (key, value) of the store, as the changelog keeps it.
pub type Entry = (Vec<u8>, Vec<u8>);

fn damaged(what: String) -> impl FnOnce(serde_json::Error) -> Error {
    move |e| Error::damaged(Domain::Store, what).caused_by(e)
}

impl Versions {
    pub fn open(store: &StoreHandle) -> Result<Versions, Error> {
        Ok(Versions { tree: store.tree("rules")? })
    }

    /// Stores `bundle` as the next version, or returns the stored version
    /// with the same files and hash (`false`: nothing new was stored), so
    /// that a CI pipeline pushing the same rules twice makes one version.
    pub fn add(&self, bundle: Bundle, draft: Draft) -> Result<(VersionInfo, bool), Error> {
        if let Some(same) = self.find(|stored| stored.info.hash == draft.hash && stored.bundle == bundle)? {
            return Ok((same.info, false));
        }
        let version = self.latest()?.map_or(1, |v| v + 1);
        let info = VersionInfo {
            version,
            hash: draft.hash,
            author: draft.author,
            message: draft.message,
            created_at: draft.created_at,
            origin: draft.origin,
            files: bundle.files.keys().cloned().collect(),
            workflows: draft.workflows,
        };
        let stored = StoredVersion { info: info.clone(), bundle };
        let bytes = serde_json::to_vec(&stored).map_err(damaged("cannot encode a rule version".into()))?;
        self.tree.insert(key(VERSION, version), bytes)?;
        self.tree.flush()?;
        Ok((info, true))
    }

    pub fn get(&self, version: u64) -> Result<Option<StoredVersion>, Error> {
        let Some(bytes) = self.tree.get(key(VERSION, version))? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(damaged(format!("rule version {version} is damaged")))
    }

    /// The highest version number stored.
    pub fn latest(&self) -> Result<Option<u64>, Error> {
        Ok(match self.tree.scan_prefix([VERSION]).next_back() {
            Some(entry) => number(&entry?.0[1..]),
            None => None,
        })
    }

    fn find(&self, wanted: impl Fn(&StoredVersion) -> bool) -> Result<Option<StoredVersion>, Error> {
        for entry in self.tree.scan_prefix([VERSION]) {
            let (k, v) = entry?;
            let stored: StoredVersion = serde_json::from_slice(&v)
                .map_err(damaged(format!("rule version {:?} is damaged", number(&k[1..]))))?;
            if wanted(&stored) {
                return Ok(Some(stored));
            }
        }
        Ok(None)
    }

    /// Versions newest first, below `before` when given; and the version
    /// to continue below when there are more.
    pub fn list(&self, before: Option<u64>, limit: usize) -> Result<(Vec<VersionInfo>, Option<u64>), Error> {
        let end = key(VERSION, before.unwrap_or(u64::MAX));
        let mut infos = Vec::new();
        for entry in self.tree.range(key(VERSION, 0)..end).rev() {
            let (k, v) = entry?;
            if infos.len() == limit {
                // The page ends below the last version shown.
                let below = number(&k[1..]).map(|v| v + 1);
                return Ok((infos, below));
            }
            let stored: StoredVersion = serde_json::from_slice(&v)
                .map_err(damaged(format!("rule version {:?} is damaged", number(&k[1..]))))?;
            infos.push(stored.info);
        }
        Ok((infos, None))
    }

    /// The version the engine runs, once one was activated.
    pub fn active(&self) -> Result<Option<u64>, Error> {
        Ok(self.tree.get(ACTIVE)?.and_then(|v| number(&v)))
    }

    /// The last version imported from a rules directory.
    pub fn imported(&self) -> Result<Option<u64>, Error> {
        Ok(self.tree.get(IMPORTED)?.and_then(|v| number(&v)))
    }

    /// Remembers `version` as the rules directory's content at the last start.
    pub fn set_imported(&self, version: u64) -> Result<(), Error> {
        self.tree.insert(IMPORTED, &version.to_be_bytes())?;
        self.tree.flush()?;
        Ok(())
    }

    /// Records that `entry.version` now runs (the processing thread's
    /// call, after applying the activation). Appends to the history unless
    /// its last entry is this very activation (a replay applies it again,
    /// and does not know who asked: the first entry, which does, stays).
    pub fn activated(&self, entry: &ActivationEntry) -> Result<(), Error> {
        let last = self.history(None, 1)?.0.into_iter().next();
        let same = |e: &ActivationEntry| (e.version, e.previous, &e.at) == (entry.version, entry.previous, &entry.at);
        if !last.as_ref().is_some_and(|(_, e)| same(e)) {
            let seq = last.map_or(0, |(seq, _)| seq + 1);
            let bytes = serde_json::to_vec(entry).map_err(damaged("cannot encode an activation".into()))?;
            self.tree.insert(key(ACTIVATION, seq), bytes)?;
        }
        self.tree.insert(ACTIVE, &entry.version.to_be_bytes())?;
        self.tree.flush()?;
        Ok(())
    }

    /// Activations newest first, with their sequence numbers, below
    /// `before`; and the sequence to continue below when there are more.
    #[allow(clippy::type_complexity)]
    pub fn history(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<(u64, ActivationEntry)>, Option<u64>), Error> {
        let end = key(ACTIVATION, before.unwrap_or(u64::MAX));
        let mut entries = Vec::new();
        for entry in self.tree.range(key(ACTIVATION, 0)..end).rev() {
            let (k, v) = entry?;
            let seq = number(&k[1..]).unwrap_or(0);
            if entries.len() == limit {
                return Ok((entries, Some(seq + 1)));
            }
            let activation: ActivationEntry =
                serde_json::from_slice(&v).map_err(damaged(format!("activation {seq} is damaged")))?;
            entries.push((seq, activation));
        }
        Ok((entries, None))
    }

    /// Records the version a snapshot covering the journal below `covered`
    /// is made under; written (and flushed) before the snapshot itself.
    pub fn snapshot_made(&self, covered: u64, version: u64) -> Result<(), Error> {
        let mut k = SNAPSHOT.to_vec();
        k.extend_from_slice(&covered.to_be_bytes());
        self.tree.insert(k, &version.to_be_bytes())?;
        self.tree.flush()?;
        // Pointers of snapshots replaced since can go, but not the one
        // before this: until the new snapshot's file is renamed in place,
        // a crash leaves the previous snapshot to start from.
        let pointers: Vec<sled::IVec> = self.tree.scan_prefix(SNAPSHOT).keys().collect::<Result<_, _>>()?;
        for old in pointers.iter().rev().skip(2) {
            self.tree.remove(old)?;
        }
        Ok(())
    }

    /// Every entry of the store, as (key, value): what the changelog keeps
    /// of it, so that a state rebuilt from Kafka finds the versions its
    /// journal activates and the one its snapshot was made under.
    pub fn export(&self) -> Result<Vec<Entry>, Error> {
        let mut entries = Vec::new();
        for entry in self.tree.iter() {
            let (k, v) = entry?;
            entries.push((k.to_vec(), v.to_vec()));
        }
        Ok(entries)
    }

    /// Replaces the whole store with `entries` (from [`export`](Self::export),
    /// through the changelog), for a state rebuilt from Kafka.
    pub fn import(&self, entries: impl IntoIterator<Item = Entry>) -> Result<(), Error> {
        self.tree.clear()?;
        for (k, v) in entries {
            self.tree.insert(k, v)?;
        }
        self.tree.flush()?;
        Ok(())
    }

    /// The version the snapshot covering the journal below `covered` was made under.
    pub fn snapshot_version(&self, covered: u64) -> Result<Option<u64>, Error> {
        let mut k = SNAPSHOT.to_vec();
        k.extend_from_slice(&covered.to_be_bytes());
        Ok(self.tree.get(k)?.and_then(|v| number(&v)))
    }
}
