//! OIDC bearer JWTs: checks a token an identity provider signed, against
//! the keys it publishes (its JWKS), and reads who the caller is and which
//! role it has from the token's claims.
//!
//! What is checked, and why (docs/service.md, "Authentication"):
//! - the signature, with the JWKS key the header's `kid` names, in the
//!   algorithm that key is for (RS256/384/512, PS256/384/512, ES256/384).
//!   The header's `alg` must be that algorithm: a token cannot pick a
//!   weaker one, and `none` or an HMAC algorithm is never accepted (an HMAC
//!   "key" from a public JWKS would let anyone sign);
//! - `iss` equal to the configured issuer, `aud` containing the configured
//!   audience, `exp` present and in the future, `nbf` (when present) in the
//!   past, each with [`OidcConfig::leeway_seconds`] of leeway for clocks
//!   that disagree a little.
//!
//! The JWKS is fetched when the service starts (a failure is logged and
//! retried every 10 s, never fatal: the provider may come up after mon),
//! again every `jwks_refresh_seconds`, and at once when a token names a
//! `kid` the set does not have (a rotation), but such a fetch at most once
//! every `jwks_min_refetch_seconds`, so that a stream of made-up `kid`s
//! cannot make mon hammer the provider. Tokens must name their key: a JWKS
//! key without `kid` is left out, as OIDC providers always give one.
//!
//! What it must not do: put key material, or the token, in an answer or a
//! log line; the reasons it gives ("expired", "wrong issuer") name the
//! check that failed and nothing more.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{Caller, Credential, Refusal, Role};
use crate::config::OidcConfig;

/// A key from the JWKS, ready to check signatures, with the one
/// algorithm it is for.
struct Key {
    decoding: DecodingKey,
    algorithm: Algorithm,
}

/// The keys by `kid`, and when they were fetched.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Key>,
    fetched_at: Option<Instant>,
}

/// Checks the JWTs of one identity provider.
pub struct OidcVerifier {
    config: OidcConfig,
    client: reqwest::Client,
    keys: RwLock<KeySet>,
    /// Held while fetching, so that concurrent requests that need the
    /// keys wait for one fetch instead of each making their own; it holds
    /// when the last fetch that a request asked for started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl OidcVerifier {
    pub fn new(config: OidcConfig) -> Result<OidcVerifier, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("auth.oidc: cannot make an HTTP client: {e}"))?;
        Ok(OidcVerifier { config, client, keys: RwLock::new(KeySet::default()), fetching: Default::default() })
    }

    /// Keeps the key set fresh until the runtime stops: fetched now,
    /// retried every 10 s (or every `jwks_refresh_seconds`, if shorter)
    /// while it fails, then every `jwks_refresh_seconds`.
    pub async fn keep_fresh(self: std::sync::Arc<Self>) {
        let refresh = Duration::from_secs(self.config.jwks_refresh_seconds.max(1));
        let retry = refresh.min(Duration::from_secs(10));
        loop {
            let wait = match self.fetch().await {
                Ok(count) => {
                    tracing::info!(keys = count, url = %self.config.jwks_url, "auth.oidc: JWKS fetched");
                    refresh
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        retry_in_s = retry.as_secs(),
                        "auth.oidc: cannot fetch the JWKS; its tokens are refused until it is fetched"
                    );
                    retry
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Fetches the JWKS and replaces the key set; returns how many keys
    /// it has. Keys of a type or algorithm mon does not check with are
    /// left out (and said so in the log).
    async fn fetch(&self) -> Result<usize, String> {
        let url = &self.config.jwks_url;
        let response = self.client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: {}", response.status()));
        }
        let set: JwkSet = response.json().await.map_err(|e| format!("GET {url}: not a JWKS: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                tracing::warn!("auth.oidc: a JWKS key without `kid` is left out");
                continue;
            };
            match usable(jwk) {
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(why) => tracing::warn!(kid, why, "auth.oidc: a JWKS key is left out"),
            }
        }
        let count = keys.len();
        if let Ok(mut set) = self.keys.write() {
            *set = KeySet { keys, fetched_at: Some(Instant::now()) };
        }
        Ok(count)
    }

    /// Fetches again because a token named an unknown `kid`, unless a
    /// fetch asked for that way started less than `jwks_min_refetch_seconds` ago.
    async fn refetch_for_unknown_kid(&self) {
        let mut last = self.fetching.lock().await;
        let minimum = Duration::from_secs(self.config.jwks_min_refetch_seconds);
        if last.is_some_and(|at| at.elapsed() < minimum) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.fetch().await {
            tracing::warn!(error = %e, "auth.oidc: cannot fetch the JWKS");
        }
    }

    /// The caller a token stands for, or why it is refused.
    pub async fn verify(&self, token: &str) -> Result<Caller, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            // jsonwebtoken has no `none` algorithm, so an unsigned token's
            // header does not even parse: say why rather than "malformed".
            match header_algorithm(token) {
                Some(alg) if alg.parse::<Algorithm>().is_err() => Refusal::unauthorized("unsupported algorithm"),
                _ => Refusal::unauthorized("malformed token"),
            }
        })?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(Refusal::unauthorized("unsupported algorithm"));
        }
        let kid = header.kid.ok_or_else(|| Refusal::unauthorized("no key id (kid) in the token's header"))?;
        if !self.has_key(&kid) {
            self.refetch_for_unknown_kid().await;
        }
        let claims = {
            let set = self.keys.read().map_err(|_| Refusal::unauthorized("the key set is unavailable"))?;
            if set.fetched_at.is_none() {
                return Err(Refusal::unauthorized("the identity provider's keys are not fetched yet"));
            }
            let key = set.keys.get(&kid).ok_or_else(|| Refusal::unauthorized("unknown key id (kid)"))?;
            if key.algorithm != header.alg {
                return Err(Refusal::unauthorized("the token's algorithm is not its key's"));
            }
            let mut validation = Validation::new(key.algorithm);
            validation.leeway = self.config.leeway_seconds;
            validation.validate_nbf = true;
            validation.set_issuer(&[&self.config.issuer]);
            validation.set_audience(&[&self.config.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            jsonwebtoken::decode::<Value>(token, &key.decoding, &validation).map_err(|e| refusal(&e))?.claims
        };
        let name = ["preferred_username", "email", "sub"]
            .iter()
            .find_map(|claim| claims.get(claim).and_then(Value::as_str).filter(|s| !s.is_empty()))
            .ok_or_else(|| Refusal::unauthorized("no sub, preferred_username or email claim"))?
            .to_string();
        match role_from_claims(&claims, &self.config) {
            Some(role) => Ok(Caller { name, role, credential: Credential::Oidc }),
            None => Err(Refusal::no_role(&name, &self.config.role_claim)),
        }
    }

    /// The configured issuer (`iss`): public, as the provider's discovery
    /// document says it to anyone; a sign-in page names it.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The configured audience: mon's client id at the provider, with
    /// which a browser signs in there (public, like the issuer).
    pub fn audience(&self) -> &str {
        &self.config.audience
    }

    fn has_key(&self, kid: &str) -> bool {
        self.keys.read().map(|set| set.keys.contains_key(kid)).unwrap_or(false)
    }
}

/// The `alg` a token's header names, read without trusting anything else.
fn header_algorithm(token: &str) -> Option<String> {
    use base64::Engine as _;
    let encoded = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(str::to_string)
}

/// The algorithms mon checks JWTs with: those of a public key.
const ASYMMETRIC: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// A JWKS key as a [`Key`]: its algorithm is its `alg`, or, without one,
/// what its type implies (RS256 for RSA, ES256/ES384 by curve).
fn usable(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Key, &'static str> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("an elliptic curve other than P-256 or P-384"),
        },
        _ => return Err("not an RSA or EC key"),
    };
    let algorithm = match jwk.common.key_algorithm {
        None => implied,
        Some(alg) => match alg {
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::RS384 => Algorithm::RS384,
            KeyAlgorithm::RS512 => Algorithm::RS512,
            KeyAlgorithm::PS256 => Algorithm::PS256,
            KeyAlgorithm::PS384 => Algorithm::PS384,
            KeyAlgorithm::PS512 => Algorithm::PS512,
            KeyAlgorithm::ES256 => Algorithm::ES256,
            KeyAlgorithm::ES384 => Algorithm::ES384,
            _ => return Err("an algorithm mon does not check with"),
        },
    };
    let decoding = DecodingKey::from_jwk(jwk).map_err(|_| "not a valid key")?;
    Ok(Key { decoding, algorithm })
}

/// Why a token's check failed, in words that name the check, never a key.
fn refusal(error: &jsonwebtoken::errors::Error) -> Refusal {
    let reason = match error.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not its key's",
        ErrorKind::MissingRequiredClaim(claim) => {
            return Refusal::unauthorized(&format!("no `{}` claim", claim.chars().take(16).collect::<String>()))
        }
        _ => "malformed token",
    };
    Refusal::unauthorized(reason)
}

/// The role the claims give: the claim at `role_claim` (a dotted path into
/// nested objects, such as `realm_access.roles`), a string or an array of
/// strings; each is mapped through `roles` (the provider's names to mon's)
/// or taken as a mon role's own name; the highest one wins. `None`: no
/// known role.
pub fn role_from_claims(claims: &Value, config: &OidcConfig) -> Option<Role> {
    let mut value = claims;
    for step in config.role_claim.split('.') {
        value = value.get(step)?;
    }
    let names: Vec<&str> = match value {
        Value::String(name) => vec![name.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    names
        .into_iter()
        .filter_map(|name| match config.roles.get(name) {
            Some(role) => Some(*role),
            None if config.roles.is_empty() => name.parse::<Role>().ok(),
            None => None,
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(claim: &str, roles: &[(&str, Role)]) -> OidcConfig {
        OidcConfig {
            role_claim: claim.into(),
            roles: roles.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..OidcConfig::default()
        }
    }

    #[test]
    fn the_role_is_the_highest_known_one_at_the_claim_path() {
        let plain = config("mon_role", &[]);
        assert_eq!(role_from_claims(&json!({"mon_role": "editor"}), &plain), Some(Role::Editor));
        assert_eq!(role_from_claims(&json!({"mon_role": "root"}), &plain), None);
        assert_eq!(role_from_claims(&json!({"other": "admin"}), &plain), None);
        assert_eq!(role_from_claims(&json!({"mon_role": 3}), &plain), None);

        let nested = config("realm_access.roles", &[]);
        let claims = json!({"realm_access": {"roles": ["offline_access", "viewer", "operator"]}});
        assert_eq!(role_from_claims(&claims, &nested), Some(Role::Operator));
        assert_eq!(role_from_claims(&json!({"realm_access": ["admin"]}), &nested), None);

        // With a map, only the mapped names count: the provider's `admin`
        // is not mon's unless the map says so.
        let mapped = config("groups", &[("sre", Role::Operator), ("platform-leads", Role::Admin)]);
        assert_eq!(role_from_claims(&json!({"groups": ["sre", "admin"]}), &mapped), Some(Role::Operator));
        assert_eq!(role_from_claims(&json!({"groups": ["platform-leads", "sre"]}), &mapped), Some(Role::Admin));
        assert_eq!(role_from_claims(&json!({"groups": []}), &mapped), None);
    }
}
