//! Authentication and authorization of `mon run`'s HTTP API, against the
//! real service: tokens made with `mon token create` (while the service
//! runs), each endpoint refused without a token (401, `WWW-Authenticate:
//! Bearer`), refused to a token of too low a role (403), served to the
//! right role; a revoked token is refused at once; the state directory
//! never holds a plain token; `mon demo`-style open access when auth is off.

#[path = "support/service.rs"]
mod service;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use service::Service;

/// Every route with the lowest role it needs (`None`: open).
const ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("get", "/healthz", None),
    ("get", "/readyz", None),
    ("get", "/metrics", None),
    ("get", "/api/v1/openapi.json", Some("viewer")),
    ("get", "/api/v1/status", Some("viewer")),
    ("get", "/api/v1/records", Some("viewer")),
    ("get", "/api/v1/dead-letters", Some("viewer")),
    ("get", "/api/v1/alerts", Some("viewer")),
    ("get", "/api/v1/alerts/{id}", Some("viewer")),
    ("get", "/api/v1/notifications", Some("viewer")),
    ("post", "/api/v1/events", Some("operator")),
    ("post", "/api/v1/alerts/{id}/ack", Some("operator")),
    ("post", "/api/v1/alerts/{id}/unack", Some("operator")),
    ("post", "/api/v1/alerts/{id}/suppress", Some("operator")),
    ("post", "/api/v1/alerts/{id}/resolve", Some("operator")),
];

const ROLES: [&str; 4] = ["viewer", "operator", "editor", "admin"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).expect("a role")
}

fn mon(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mon")).args(args).output().expect("run mon");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn create(state: &Path, role: &str, name: &str) -> String {
    let (code, out, err) =
        mon(&["token", "create", "--role", role, "--name", name, "--state-dir", &state.display().to_string()]);
    assert_eq!(code, 0, "mon token create: {err}");
    let token = out.trim().to_string();
    assert!(token.starts_with("mon_") && token.len() == 68 && out.lines().count() == 1, "stdout: {out}");
    assert!(err.contains(name) && err.contains(role), "stderr: {err}");
    token
}

/// Status, `WWW-Authenticate` and body of a request with an optional token.
fn call(service: &Service, method: &str, path: &str, token: Option<&str>) -> (u16, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = service.url(path);
    let time = mon_stdlib::time::format_rfc3339(service::now_ms());
    let mut response = if method == "get" {
        let mut request = agent.get(&url);
        if let Some(t) = token {
            request = request.header("Authorization", &format!("Bearer {t}"));
        }
        request.call()
    } else {
        let body = if path == "/api/v1/events" {
            format!(r#"{{"specversion":"1.0","id":"e-{}","source":"t","type":"job_started","time":"{time}","data":{{"job":"A"}}}}"#, service::now_ms())
        } else {
            r#"{"by": "auth test"}"#.to_string()
        };
        let mut request = agent.post(&url);
        if let Some(t) = token {
            request = request.header("Authorization", &format!("Bearer {t}"));
        }
        request.send(body.as_str())
    }
    .expect("HTTP");
    let status = response.status().as_u16();
    let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, challenge, response.body_mut().read_to_string().unwrap_or_default())
}

fn start(dir: &Path, auth: bool) -> Service {
    let rules = service::write_job_rules(dir, "1s");
    let config = dir.join("mon.toml");
    std::fs::write(&config, format!("[auth]\nenabled = {auth}\n")).unwrap();
    let state = dir.join("state");
    Service::start(
        &[
            "--config",
            &config.display().to_string(),
            "--state-dir",
            &state.display().to_string(),
            &rules.display().to_string(),
        ],
        &dir.join("mon.log"),
    )
}

fn an_alert(service: &Service, token: &str) -> String {
    let started = Instant::now();
    loop {
        let (status, _, body) = call(service, "get", "/api/v1/alerts", Some(token));
        assert_eq!(status, 200, "{body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        if let Some(id) = value["alerts"][0]["id"].as_str() {
            return id.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no alert within 15 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn each_endpoint_needs_its_role_and_a_revoked_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Made while the service runs: tokens.json, not sled, holds them.
    let service = start(dir.path(), true);
    let tokens: Vec<(&str, String)> = ROLES.iter().map(|r| (*r, create(&state, r, &format!("{r}-user")))).collect();
    let admin = &tokens[3].1;

    // An alert to act on: a job started and never done within 1 s.
    let (status, _, body) = call(&service, "post", "/api/v1/events", Some(admin));
    assert_eq!(status, 200, "{body}");
    let alert = an_alert(&service, admin);

    for (method, path, needed) in ROUTES {
        let path = path.replace("{id}", &alert);
        // No token, a malformed header's worth, and an unknown token.
        for token in [None, Some("mon_0000")] {
            let (status, challenge, body) = call(&service, method, &path, token);
            match needed {
                None => assert_eq!(status, 200, "{method} {path} is open: {body}"),
                Some(_) => {
                    assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
                    assert!(challenge.as_deref().is_some_and(|c| c.starts_with("Bearer")), "{challenge:?}");
                    let value: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(value["error"]["code"], "unauthorized", "{body}");
                }
            }
        }
        for (role, token) in &tokens {
            let (status, _, body) = call(&service, method, &path, Some(token));
            match needed {
                Some(needed) if rank(role) < rank(needed) => {
                    assert_eq!(status, 403, "{role} on {method} {path}: {body}");
                    let value: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(value["error"]["code"], "forbidden", "{body}");
                    assert_eq!(value["error"]["details"]["needed"], *needed, "{body}");
                }
                _ => assert!(
                    status != 401 && status != 403 && status < 500,
                    "{role} on {method} {path}: {status} {body}"
                ),
            }
        }
    }

    // The served document declares the scheme and the roles.
    let (_, _, body) = call(&service, "get", "/api/v1/openapi.json", Some(&tokens[0].1));
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(document["paths"]["/api/v1/events"]["post"]["security"][0]["bearer"][0], "operator");

    // Revoked: refused from the next request.
    let viewer = &tokens[0].1;
    assert_eq!(call(&service, "get", "/api/v1/status", Some(viewer)).0, 200);
    let (code, _, err) = mon(&["token", "revoke", "viewer-user", "--state-dir", &state.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(call(&service, "get", "/api/v1/status", Some(viewer)).0, 401);
    assert_eq!(call(&service, "get", "/api/v1/status", Some(&tokens[1].1)).0, 200);

    let (code, out, _) = mon(&["token", "list", "--state-dir", &state.display().to_string()]);
    assert_eq!(code, 0);
    assert!(out.contains("operator-user") && out.contains("admin-user") && !out.contains("viewer-user"), "{out}");
    assert!(!out.contains("mon_"), "the list shows no token: {out}");

    service.terminate();
    // Stored hashed: no plain token in any file of the state directory.
    let mut files = vec![state.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            for (_, token) in &tokens {
                let found = bytes.windows(token.len()).any(|w| w == token.as_bytes());
                assert!(!found, "{} holds a plain token", path.display());
            }
        }
    }
}

#[test]
fn without_auth_everything_is_open_and_the_document_declares_no_requirement() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false);
    for path in ["/api/v1/status", "/api/v1/alerts", "/api/v1/openapi.json"] {
        let (status, _, body) = call(&service, "get", path, None);
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, _, body) = call(&service, "post", "/api/v1/events", None);
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = call(&service, "get", "/api/v1/openapi.json", None);
    let document: Value = serde_json::from_str(&body).unwrap();
    assert!(document["paths"]["/api/v1/status"]["get"]["security"].is_null(), "{body}");
}

#[test]
fn token_create_refuses_a_duplicate_name_and_an_unknown_role() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    let token = create(dir.path(), "admin", "root");
    let (code, out, err) = mon(&["token", "create", "--role", "viewer", "--name", "root", "--state-dir", &state]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("`root` exists"), "{err}");
    let (code, _, err) = mon(&["token", "create", "--role", "superuser", "--name", "x", "--state-dir", &state]);
    assert_eq!(code, 2);
    assert!(err.contains("viewer, operator, editor, admin"), "{err}");
    let stored = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
    assert!(!stored.contains(&token) && stored.contains("\"sha256\""), "{stored}");
    let (code, _, err) = mon(&["token", "revoke", "nobody", "--state-dir", &state]);
    assert_eq!(code, 2, "{err}");
}
