//! OIDC bearer JWTs against the real service and a real key set: an
//! identity provider's JWKS served over HTTP on loopback (axum), `mon run`
//! with `[auth.oidc]` pointing at it, and tokens signed here with RSA keys
//! (tests/fixtures/oidc, made once with openssl) and an EC key (made fresh
//! with rcgen). A valid token gets its role from a nested, mapped claim;
//! a wrong issuer or audience, an expired or not-yet-valid token, a wrong
//! signature, an unknown key, `alg: none` and an HMAC token are 401 with
//! the reason; a key rotation is followed, and refetches for unknown keys
//! are rate-limited.

#[path = "support/service.rs"]
mod service;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use service::Service;

const ISSUER: &str = "https://idp.example.test/realms/ops";
const AUDIENCE: &str = "mon";

/// The identity provider's JWKS endpoint: the set it serves can be
/// swapped (a key rotation), and it counts the fetches.
struct KeyServer {
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    address: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl KeyServer {
    fn start(jwks: Value) -> KeyServer {
        KeyServer::start_on("127.0.0.1:0", jwks)
    }

    fn start_on(address: &str, jwks: Value) -> KeyServer {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind(address)).unwrap();
        let address = listener.local_addr().unwrap();
        let jwks = Arc::new(Mutex::new(jwks));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (jwks.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let body = served.lock().unwrap().clone();
                counted.fetch_add(1, Ordering::SeqCst);
                async move { axum::Json(body) }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        KeyServer { jwks, fetches, address, _runtime: runtime }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A signing key and the public half the JWKS publishes.
struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
    kid: String,
}

impl Signer {
    fn rsa(fixture: &str, kid: &str) -> Signer {
        let path = format!("{}/tests/fixtures/oidc/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let pem = std::fs::read(&path).unwrap();
        Signer { key: EncodingKey::from_rsa_pem(&pem).unwrap(), algorithm: Algorithm::RS256, kid: kid.into() }
    }

    fn ec(kid: &str) -> Signer {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        Signer { key, algorithm: Algorithm::ES256, kid: kid.into() }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// Signed with this key, but naming another key id.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn jwks(signers: &[&Signer]) -> Value {
    serde_json::to_value(JwkSet { keys: signers.iter().map(|s| s.jwk()).collect() }).unwrap()
}

fn now() -> i64 {
    service::now_ms() / 1000
}

/// Valid claims for `user` with the provider's role names `roles`.
fn claims(user: &str, roles: &[&str]) -> Value {
    json!({
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
        "sub": format!("id-{user}"),
        "preferred_username": user,
        "iat": now(),
        "exp": now() + 300,
        "realm_access": { "roles": roles },
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// Status and JSON body of a request with a bearer value.
fn call(service: &Service, method: &str, path: &str, bearer: &str, body: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = service.url(path);
    let authorization = format!("Bearer {bearer}");
    let mut response = if method == "get" {
        agent.get(&url).header("Authorization", &authorization).call()
    } else {
        agent.post(&url).header("Authorization", &authorization).send(body)
    }
    .expect("HTTP");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn start(dir: &std::path::Path, keys: &KeyServer) -> Service {
    let rules = service::write_job_rules(dir, "1s");
    let config = dir.join("mon.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nenabled = true\n[auth.oidc]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
             jwks_url = \"http://{}/jwks\"\nrole_claim = \"realm_access.roles\"\njwks_min_refetch_seconds = 5\n\
             [auth.oidc.roles]\nmon-viewer = \"viewer\"\nmon-operator = \"operator\"\n\
             mon-editor = \"editor\"\nmon-admin = \"admin\"\n",
            keys.address
        ),
    )
    .unwrap();
    Service::start(
        &[
            "--config",
            &config.display().to_string(),
            "--state-dir",
            &dir.join("state").display().to_string(),
            &rules.display().to_string(),
        ],
        &dir.join("mon.log"),
    )
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(15), "{what}: not within 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_refused(service: &Service, token: &str, reason: &str) {
    let (status, body) = call(service, "get", "/api/v1/status", token, "");
    assert_eq!(status, 401, "{reason}: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert_eq!(body["error"]["details"]["reason"], reason, "{body}");
}

#[test]
fn tokens_of_the_identity_provider_are_checked_against_its_key_set() {
    let rsa = Signer::rsa("rsa-a.pem", "key-a");
    let ec = Signer::ec("key-ec");
    let keys = KeyServer::start(jwks(&[&rsa, &ec]));
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), &keys);
    // The key set is fetched at start, not at the first token.
    wait_for("the first JWKS fetch", || keys.fetches() >= 1);

    // The highest mapped role of the nested claim counts; unmapped names
    // (`admin`, `offline_access`) do not.
    let viewer = rsa.sign(&claims("vera", &["offline_access", "mon-viewer", "admin"]));
    let operator = ec.sign(&claims("otto", &["mon-viewer", "mon-operator"]));
    let editor = rsa.sign(&claims("edna", &["mon-editor"]));
    let admin = ec.sign(&claims("ada", &["mon-admin", "mon-viewer"]));
    for token in [&viewer, &operator, &editor, &admin] {
        let (status, body) = call(&service, "get", "/api/v1/status", token, "");
        assert_eq!(status, 200, "{body}");
    }
    // Who the API takes a JWT's caller for: its user, its mapped role, `oidc`.
    let (status, body) = call(&service, "get", "/api/v1/whoami", &operator, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"name": "otto", "role": "operator", "authentication": "oidc", "oidc_issuer": ISSUER}));
    let (status, body) = call(&service, "post", "/api/v1/alerts/nothing/ack", &viewer, "{}");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["details"], json!({"role": "viewer", "needed": "operator"}), "{body}");
    for token in [&operator, &editor, &admin] {
        let (status, body) = call(&service, "post", "/api/v1/alerts/nothing/ack", token, r#"{"by": "x"}"#);
        assert_eq!(status, 404, "{body}");
    }
    let nobody = rsa.sign(&claims("nina", &["admin", "offline_access"]));
    let (status, body) = call(&service, "get", "/api/v1/status", &nobody, "");
    assert_eq!(status, 403, "a valid token without a mon role: {body}");
    assert_eq!(body["error"]["details"]["role"], Value::Null, "{body}");

    // The caller's name is who acts: an ack with a JWT is audited as its user.
    let time = mon_stdlib::time::format_rfc3339(service::now_ms());
    let event = format!(
        r#"{{"specversion":"1.0","id":"e-1","source":"t","type":"job_started","time":"{time}","data":{{"job":"A"}}}}"#
    );
    let (status, body) = call(&service, "post", "/api/v1/events", &operator, &event);
    assert_eq!(status, 200, "{body}");
    let mut alert = String::new();
    wait_for("an alert", || {
        let (_, body) = call(&service, "get", "/api/v1/alerts", &viewer, "");
        alert = body["alerts"][0]["id"].as_str().unwrap_or_default().to_string();
        !alert.is_empty()
    });
    let (status, body) =
        call(&service, "post", &format!("/api/v1/alerts/{alert}/ack"), &operator, r#"{"by": "the night shift"}"#);
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&service, "get", "/api/v1/audit?action=alert.ack", &viewer, "");
    assert_eq!(status, 200, "{body}");
    let entry = &body["entries"][0];
    assert_eq!((&entry["who"], &entry["target"]), (&json!("otto"), &json!(alert)), "{body}");

    // Refused, each with the check that failed.
    let valid = claims("mallory", &["mon-admin"]);
    assert_refused(&service, &rsa.sign(&with(valid.clone(), "iss", json!("https://evil.example"))), "wrong issuer");
    assert_refused(&service, &rsa.sign(&with(valid.clone(), "aud", json!("another-app"))), "wrong audience");
    assert_refused(&service, &ec.sign(&with(valid.clone(), "exp", json!(now() - 3600))), "expired");
    assert_refused(&service, &rsa.sign(&with(valid.clone(), "nbf", json!(now() + 3600))), "not yet valid");
    let other = Signer::rsa("rsa-b.pem", "key-b");
    assert_refused(&service, &other.sign_as("key-a", &valid), "bad signature");
    let mut no_exp = valid.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(&service, &rsa.sign(&no_exp), "no `exp` claim");
    // `alg: none`, unsigned.
    let part = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!("{}.{}.", part(&json!({"alg": "none", "typ": "JWT", "kid": "key-a"})), part(&valid));
    assert_refused(&service, &unsigned, "unsupported algorithm");
    // HMAC with the public key's modulus as the secret: the old
    // algorithm-confusion attack.
    let modulus = match &rsa.jwk().algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) => rsa.n.clone(),
        _ => unreachable!(),
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("key-a".into());
    let hmac = jsonwebtoken::encode(&header, &valid, &EncodingKey::from_secret(modulus.as_bytes()).unwrap()).unwrap();
    assert_refused(&service, &hmac, "unsupported algorithm");
    // Unknown key: one refetch, and still unknown.
    let before = keys.fetches();
    let stranger = Signer::rsa("rsa-b.pem", "key-unknown");
    assert_refused(&service, &stranger.sign(&valid), "unknown key id (kid)");
    assert_eq!(keys.fetches(), before + 1, "an unknown kid fetches the key set again");
    let refetched = Instant::now();
    // An answer never carries key material.
    let (_, body) = call(&service, "get", "/api/v1/status", &other.sign_as("key-a", &valid), "");
    assert!(!body.to_string().contains(&modulus[..40]), "{body}");

    // Rotation: the provider now signs with key B only. After the
    // minimum interval, a token naming key B fetches the new set.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(refetched.elapsed()) + Duration::from_millis(300));
    let rotated = Signer::rsa("rsa-b.pem", "key-b");
    *keys.jwks.lock().unwrap() = jwks(&[&rotated]);
    let (status, body) = call(&service, "get", "/api/v1/status", &rotated.sign(&claims("rita", &["mon-viewer"])), "");
    assert_eq!(status, 200, "a token of the new key: {body}");
    assert_refused(&service, &viewer, "unknown key id (kid)");
    // Within the minimum interval, unknown keys fetch nothing more.
    let before = keys.fetches();
    for kid in ["k1", "k2", "k3", "k4", "k5"] {
        assert_refused(&service, &stranger.sign_as(kid, &valid), "unknown key id (kid)");
    }
    assert_eq!(keys.fetches(), before, "refetches for unknown keys are rate-limited");

    // API tokens work beside the JWTs.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["token", "create", "--role", "viewer", "--name", "script"])
        .args(["--state-dir", &dir.path().join("state").display().to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(call(&service, "get", "/api/v1/status", &token, "").0, 200);
    assert_refused(&service, "mon_0123", "the token is not known (or was revoked)");
    assert_eq!(service.terminate(), Some(0));
}

#[test]
fn the_service_starts_when_the_key_set_cannot_be_fetched_and_takes_it_when_it_can() {
    // A port with nothing behind it yet: the provider is down at start.
    let address = service::free_address();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mon.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nenabled = true\n[auth.oidc]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
             jwks_url = \"http://{address}/jwks\"\njwks_min_refetch_seconds = 0\njwks_refresh_seconds = 1\n"
        ),
    )
    .unwrap();
    let rules = service::write_job_rules(dir.path(), "1s");
    let service = Service::start(
        &[
            "--config",
            &config.display().to_string(),
            "--state-dir",
            &dir.path().join("state").display().to_string(),
            &rules.display().to_string(),
        ],
        &dir.path().join("mon.log"),
    );
    let signer = Signer::ec("only");
    let token = signer.sign(&json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "exp": now() + 300, "mon_role": "viewer",
    }));
    let (status, body) = call(&service, "get", "/api/v1/status", &token, "");
    assert_eq!(status, 401, "{body}");
    // The provider comes up on that port; the next token fetches its keys.
    let keys = KeyServer::start_on(&address, jwks(&[&signer]));
    let (status, body) = call(&service, "get", "/api/v1/status", &token, "");
    assert_eq!(status, 200, "{body}");
    let log = std::fs::read_to_string(dir.path().join("mon.log")).unwrap();
    assert!(log.contains("cannot fetch the JWKS"), "{log}");
    // Then it is fetched every `jwks_refresh_seconds` (and every 10 s
    // while it failed): give the periodic fetch a few seconds to show.
    let after_first = keys.fetches();
    wait_for("periodic JWKS fetches", || keys.fetches() >= after_first + 2);
    assert_eq!(service.terminate(), Some(0));
}
