//! Authentication and authorization of the HTTP API: API tokens, OIDC
//! bearer JWTs ([`oidc`]) and roles.
//!
//! A token is `mon_` and 64 hex digits (32 random bytes from the operating
//! system). Only its SHA-256 is kept, with its name, role and creation time,
//! in `tokens.json` in the state directory. The file, not sled: sled admits
//! one process, and `mon token create` must work while `mon run` runs. The
//! file is replaced atomically (written beside, synced, renamed), and the
//! service re-reads it when it changes (its size, time or inode), so a new
//! or revoked token counts from the next request; what changed is kept as
//! [`TokenChange`]s for the audit log ([`Tokens::take_changes`]).
//!
//! A bearer value of three dot-separated parts is a JWT, checked by
//! [`oidc`] when `[auth.oidc]` is configured; anything else is an API
//! token. The two never overlap (an API token has no dot), so neither is
//! ever tried as the other. Either way the caller is a [`Caller`]: a name
//! (the token's name, or the JWT's `preferred_username`, `email` or `sub`)
//! and a role.
//!
//! Roles are ordered: a higher role may do what a lower one may
//! ([`Role`]). Which role each endpoint needs is [`required_role`], the one
//! table the middleware and the OpenAPI document are both made from.
//!
//! What it must not do: say in an answer or a log line more than which
//! check failed (never a token, a hash or key material).

pub mod oidc;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The roles, lowest first: each may do what the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read: status, records, dead letters, alerts, notifications, the document.
    Viewer,
    /// Act on alerts (ack, unack, suppress, resolve) and send events.
    Operator,
    /// Change rules (no endpoint yet).
    Editor,
    /// Manage tokens and configuration.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`; the roles are viewer, operator, editor, admin"))
    }
}

/// The role an endpoint needs, or `None` for the open ones (`/healthz`,
/// `/readyz`, `/metrics`). `path` is the route as declared
/// (`/api/v1/alerts/{id}/ack`), `method` in any case.
///
/// `POST /api/v1/events` needs `operator`: sending events changes what the
/// service believes and which alerts open, as much as acting on alerts
/// does; feeds in production come through Kafka, so the HTTP ingest is for
/// tests, demos and small feeds, and a separate role (outside the order)
/// is not worth its complication today.
pub fn required_role(method: &str, path: &str) -> Option<Role> {
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return None;
    }
    if method.eq_ignore_ascii_case("get") || method.eq_ignore_ascii_case("head") {
        return Some(Role::Viewer);
    }
    // A read with a body (the keys to look up): what any viewer may ask.
    if path == "/api/v1/keys/held" {
        return Some(Role::Viewer);
    }
    if path == "/api/v1/events" || path.starts_with("/api/v1/alerts/") {
        return Some(Role::Operator);
    }
    if path.starts_with("/api/v1/rules/")
        || (path.starts_with("/api/v1/workflows/") && (path.ends_with("/enable") || path.ends_with("/disable")))
    {
        return Some(Role::Editor);
    }
    if path.starts_with("/api/v1/tokens") {
        return Some(Role::Admin);
    }
    // Anything else that changes state: the highest role until decided.
    Some(Role::Admin)
}

/// Who makes a request, as the handlers record it (an alert's history,
/// the audit log), from an API token or a JWT alike; present only with
/// auth on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The API token's name, or the JWT's `preferred_username`, `email`
    /// or `sub` (the first present).
    pub name: String,
    pub role: Role,
    /// What vouched for the caller.
    pub credential: Credential,
}

/// What a caller presented: an API token from the token file, or a JWT
/// the identity provider of `[auth.oidc]` signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Credential {
    Token,
    Oidc,
}

/// Why credentials are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no credentials, or ones that do not check out; `reason` names
    /// the check (`expired`, `wrong issuer`, `unknown token`...).
    Unauthorized { reason: String },
    /// 403: a valid JWT whose claims give no mon role at all.
    NoRole { name: String, claim: String },
}

impl Refusal {
    pub fn unauthorized(reason: &str) -> Refusal {
        Refusal::Unauthorized { reason: reason.to_string() }
    }

    fn no_role(name: &str, claim: &str) -> Refusal {
        Refusal::NoRole { name: name.to_string(), claim: claim.to_string() }
    }
}

/// Everything that can vouch for a caller: the token file and, when
/// configured, the identity provider.
pub struct Authenticator {
    pub tokens: Tokens,
    pub oidc: Option<std::sync::Arc<oidc::OidcVerifier>>,
}

impl Authenticator {
    /// The caller a bearer value stands for: a JWT (three dot-separated
    /// parts) goes to the identity provider's check, anything else is
    /// looked up as an API token.
    pub async fn authenticate(&self, bearer: &str) -> Result<Caller, Refusal> {
        if looks_like_jwt(bearer) {
            return match &self.oidc {
                Some(verifier) => verifier.verify(bearer).await,
                None => Err(Refusal::unauthorized("a JWT, and this service has no [auth.oidc] to check it with")),
            };
        }
        self.tokens.authenticate(bearer).ok_or_else(|| Refusal::unauthorized("the token is not known (or was revoked)"))
    }
}

/// Three base64url parts separated by dots, the first two not empty: the
/// compact JWS form (an unsigned `alg: none` token has an empty third
/// part, and is refused by the JWT check, with its reason).
fn looks_like_jwt(bearer: &str) -> bool {
    let parts: Vec<&str> = bearer.split('.').collect();
    let base64url = |p: &&str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    parts.len() == 3 && !parts[0].is_empty() && !parts[1].is_empty() && parts.iter().all(base64url)
}

/// A change of the token file, for the audit log: made by `mon token
/// create` or `revoke` while the service runs, seen when it re-reads the
/// file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenChange {
    /// `token.created` or `token.revoked`.
    pub action: &'static str,
    pub name: String,
    /// The new token's role; `None` for a revocation.
    pub role: Option<Role>,
}

/// What differs between two versions of the file. A name that is in both
/// with another hash was revoked and made again (`mon token` refuses a
/// duplicate name, so that is the only way).
fn changes_between(before: &TokenFile, after: &TokenFile) -> Vec<TokenChange> {
    let same = |a: &TokenEntry, b: &TokenEntry| a.name == b.name && a.sha256 == b.sha256;
    let revoked = before.tokens.iter().filter(|old| !after.tokens.iter().any(|new| same(old, new)));
    let created = after.tokens.iter().filter(|new| !before.tokens.iter().any(|old| same(old, new)));
    revoked
        .map(|e| TokenChange { action: "token.revoked", name: e.name.clone(), role: None })
        .chain(created.map(|e| TokenChange { action: "token.created", name: e.name.clone(), role: Some(e.role) }))
        .collect()
}

/// One token as stored: never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    /// RFC 3339.
    pub created_at: String,
    /// SHA-256 of the token, lowercase hex.
    pub sha256: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFile {
    pub tokens: Vec<TokenEntry>,
}

/// The file of tokens in a state directory.
pub fn tokens_path(state_dir: &Path) -> PathBuf {
    state_dir.join("tokens.json")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a token, lowercase hex.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A new token: `mon_` and 32 random bytes from the OS, in hex.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness from the operating system: {e}"))?;
    Ok(format!("mon_{}", hex(&bytes)))
}

impl TokenFile {
    /// The file at `path`; empty when there is none.
    pub fn read(path: &Path) -> Result<TokenFile, String> {
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a token file: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Replaces the file at `path` atomically: written beside it, synced,
    /// renamed over it (readable by its owner only).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).map_err(|e| format!("cannot encode the tokens: {e}"))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary).map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
        file.write_all(&text)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
        std::fs::rename(&temporary, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The entry whose hash is the token's, compared in constant time
    /// (every entry is compared, whatever matches).
    pub fn find(&self, token: &str) -> Option<&TokenEntry> {
        let hash = hash_token(token);
        let mut found = None;
        for entry in &self.tokens {
            if bool::from(entry.sha256.as_bytes().ct_eq(hash.as_bytes())) && found.is_none() {
                found = Some(entry);
            }
        }
        found
    }
}

/// Reads, changes and replaces the token file of `state_dir`, one process
/// at a time (a `tokens.json.lock` file made with `create_new` is the
/// lock; a stale one, left by a killed process, is named in the error).
pub fn update<T>(state_dir: &Path, change: impl FnOnce(&mut TokenFile) -> Result<T, String>) -> Result<T, String> {
    std::fs::create_dir_all(state_dir).map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    let lock = state_dir.join("tokens.json.lock");
    let started = std::time::Instant::now();
    loop {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if started.elapsed() > std::time::Duration::from_secs(5) {
                    return Err(format!(
                        "{} is held by another `mon token` (or left by one that was killed: remove it)",
                        lock.display()
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(format!("cannot create {}: {e}", lock.display())),
        }
    }
    let path = tokens_path(state_dir);
    let result = TokenFile::read(&path).and_then(|mut file| {
        let value = change(&mut file)?;
        file.write(&path)?;
        Ok(value)
    });
    let _ = std::fs::remove_file(&lock);
    result
}

/// What identifies a version of the file: size, modification time, inode.
type Stamp = (u64, Option<std::time::SystemTime>, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.len(), meta.modified().ok(), inode))
}

/// The service's view of the token file, re-read when it changes.
pub struct Tokens {
    path: PathBuf,
    cache: Mutex<Cache>,
}

struct Cache {
    stamp: Option<Stamp>,
    file: TokenFile,
    /// Seen since the last [`Tokens::take_changes`], oldest first.
    changes: Vec<TokenChange>,
}

impl Tokens {
    pub fn new(state_dir: &Path) -> Tokens {
        let path = tokens_path(state_dir);
        let file = TokenFile::read(&path).unwrap_or_else(|e| {
            tracing::error!(error = %e, "auth: the token file is unreadable; no token is accepted");
            TokenFile::default()
        });
        Tokens { cache: Mutex::new(Cache { stamp: stamp(&path), file, changes: Vec::new() }), path }
    }

    /// How many tokens there are now.
    pub fn count(&self) -> usize {
        self.cache.lock().map(|c| c.file.tokens.len()).unwrap_or(0)
    }

    /// The caller a token stands for, if it is known.
    pub fn authenticate(&self, token: &str) -> Option<Caller> {
        let Ok(mut cache) = self.cache.lock() else { return None };
        self.refresh(&mut cache);
        cache.file.find(token).map(|e| Caller { name: e.name.clone(), role: e.role, credential: Credential::Token })
    }

    /// The changes of the file since the last call (the file is re-read
    /// first if it changed), oldest first; the tokens that were there when
    /// the service started are not changes.
    pub fn take_changes(&self) -> Vec<TokenChange> {
        let Ok(mut cache) = self.cache.lock() else { return Vec::new() };
        self.refresh(&mut cache);
        std::mem::take(&mut cache.changes)
    }

    /// Re-reads the file if its stamp changed, and notes what changed.
    fn refresh(&self, cache: &mut Cache) {
        let now = stamp(&self.path);
        if cache.stamp == now {
            return;
        }
        let file = match TokenFile::read(&self.path) {
            Ok(f) => f,
            Err(e) => {
                // Fail closed: no token counts until the file is right.
                tracing::error!(error = %e, "auth: the token file is unreadable; no token is accepted");
                TokenFile::default()
            }
        };
        let changes = changes_between(&cache.file, &file);
        cache.changes.extend(changes);
        cache.stamp = now;
        cache.file = file;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_a_higher_one_may_do_what_a_lower_may() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Editor && Role::Editor < Role::Admin);
        for (i, have) in Role::ALL.iter().enumerate() {
            for (j, needed) in Role::ALL.iter().enumerate() {
                assert_eq!(have.allows(*needed), i >= j, "{have} for {needed}");
            }
        }
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert!("root".parse::<Role>().unwrap_err().contains("viewer, operator, editor, admin"));
    }

    #[test]
    fn each_endpoint_has_its_role() {
        assert_eq!(required_role("GET", "/healthz"), None);
        assert_eq!(required_role("GET", "/readyz"), None);
        assert_eq!(required_role("GET", "/metrics"), None);
        assert_eq!(required_role("GET", "/api/v1/openapi.json"), Some(Role::Viewer));
        assert_eq!(required_role("GET", "/api/v1/alerts/{id}"), Some(Role::Viewer));
        assert_eq!(required_role("GET", "/api/v1/workflows/{workflow}/stages/{stage}/items"), Some(Role::Viewer));
        assert_eq!(required_role("post", "/api/v1/alerts/{id}/ack"), Some(Role::Operator));
        assert_eq!(required_role("POST", "/api/v1/events"), Some(Role::Operator));
        assert_eq!(required_role("POST", "/api/v1/tokens"), Some(Role::Admin));
        assert_eq!(required_role("GET", "/api/v1/whoami"), Some(Role::Viewer));
    }

    #[test]
    fn tokens_are_random_and_kept_as_their_hash() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("mon_") && a.len() == 4 + 64, "{a}");
        // SHA-256 of "abc" (FIPS 180-2 example).
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let file = TokenFile {
            tokens: vec![TokenEntry {
                name: "alice".into(),
                role: Role::Operator,
                created_at: "2026-01-01T00:00:00Z".into(),
                sha256: hash_token(&a),
            }],
        };
        assert_eq!(file.find(&a).map(|e| e.name.as_str()), Some("alice"));
        assert!(file.find(&b).is_none());
        assert!(file.find("").is_none());
    }

    #[test]
    fn the_service_sees_a_new_and_a_revoked_token_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::new(dir.path());
        let token = new_token().unwrap();
        assert_eq!(tokens.authenticate(&token), None);
        let mut file = TokenFile::default();
        file.tokens.push(TokenEntry {
            name: "bob".into(),
            role: Role::Admin,
            created_at: "2026-01-01T00:00:00Z".into(),
            sha256: hash_token(&token),
        });
        file.write(&tokens_path(dir.path())).unwrap();
        assert_eq!(
            tokens.authenticate(&token),
            Some(Caller { name: "bob".into(), role: Role::Admin, credential: Credential::Token })
        );
        TokenFile::default().write(&tokens_path(dir.path())).unwrap();
        assert_eq!(tokens.authenticate(&token), None);
        let text = std::fs::read_to_string(tokens_path(dir.path())).unwrap();
        assert!(!text.contains(&token));
    }

    fn entry(name: &str, role: Role, token: &str) -> TokenEntry {
        TokenEntry { name: name.into(), role, created_at: "2026-01-01T00:00:00Z".into(), sha256: hash_token(token) }
    }

    #[test]
    fn the_changes_of_the_file_are_kept_for_the_audit_log_until_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = tokens_path(dir.path());
        // There at the start: not a change.
        TokenFile { tokens: vec![entry("old", Role::Viewer, "mon_a")] }.write(&path).unwrap();
        let tokens = Tokens::new(dir.path());
        assert_eq!(tokens.take_changes(), vec![]);

        update(dir.path(), |file| {
            file.tokens.push(entry("ci", Role::Operator, "mon_b"));
            Ok(())
        })
        .unwrap();
        update(dir.path(), |file| {
            file.tokens.retain(|e| e.name != "old");
            file.tokens.push(entry("boss", Role::Admin, "mon_c"));
            Ok(())
        })
        .unwrap();
        // A request in between re-reads the file; its changes still wait.
        assert!(tokens.authenticate("mon_b").is_some());
        update(dir.path(), |file| {
            file.tokens.retain(|e| e.name != "boss");
            Ok(())
        })
        .unwrap();
        let created = |name: &str, role| TokenChange { action: "token.created", name: name.into(), role: Some(role) };
        let revoked = |name: &str| TokenChange { action: "token.revoked", name: name.into(), role: None };
        let mut changes = tokens.take_changes();
        // The two middle changes were seen in one read: order them by name.
        changes[..3].sort_by(|a, b| (a.action, &a.name).cmp(&(b.action, &b.name)));
        assert_eq!(
            changes,
            vec![created("boss", Role::Admin), created("ci", Role::Operator), revoked("old"), revoked("boss")]
        );
        assert_eq!(tokens.take_changes(), vec![], "taken once");

        // Revoked and made again under the same name between two reads.
        update(dir.path(), |file| {
            file.tokens.retain(|e| e.name != "ci");
            file.tokens.push(entry("ci", Role::Viewer, "mon_d"));
            Ok(())
        })
        .unwrap();
        assert_eq!(tokens.take_changes(), vec![revoked("ci"), created("ci", Role::Viewer)]);
    }

    #[test]
    fn a_bearer_value_is_a_jwt_only_in_the_compact_form() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt(&new_token().unwrap()));
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), "unsigned, still a JWT");
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a.b.c d"));
    }
}
