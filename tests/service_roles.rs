//! The role matrix, made from the served OpenAPI document so that an
//! endpoint added later is covered without touching this test: for every
//! operation the document lists and every role, a token below the role
//! the operation declares gets 403, one at or above it gets neither 401
//! nor 403, and no token gets 401, except on `/healthz`, `/readyz` and
//! `/metrics`, which answer without credentials. The role each operation
//! declares must be `auth::required_role`'s, the table the middleware
//! enforces.

#[path = "support/service.rs"]
mod service;

use std::process::Command;

use mon_service::auth::{required_role, Role};
use serde_json::Value;
use service::Service;

const OPEN: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn create_token(state: &std::path::Path, role: Role) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["token", "create", "--role", role.as_str(), "--name", &format!("{role}-user")])
        .args(["--state-dir", &state.display().to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Status and body of `method path`, with a JSON body when `body` is given.
fn call(service: &Service, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = service.url(path);
    let mut request = ureq::http::Request::builder().method(method.to_ascii_uppercase().as_str()).uri(&url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("Content-Type", "application/json");
    }
    let mut response = match body {
        Some(body) => agent.run(request.body(body.to_string()).unwrap()),
        None => agent.run(request.body(()).unwrap()),
    }
    .expect("HTTP");
    let status = response.status().as_u16();
    // An event stream never ends: its status is the answer.
    let streaming = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if streaming {
        return (status, String::new());
    }
    (status, response.body_mut().read_to_string().unwrap_or_default())
}

/// A path with each `{parameter}` filled with a dummy value.
fn filled(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str("dummy-0");
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_operation_of_the_document_refuses_the_roles_below_its_own_and_serves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rules = service::write_job_rules(dir.path(), "1s");
    let config = dir.path().join("mon.toml");
    std::fs::write(&config, "[auth]\nenabled = true\n").unwrap();
    let service = Service::start(
        &[
            "--config",
            &config.display().to_string(),
            "--state-dir",
            &state.display().to_string(),
            &rules.display().to_string(),
        ],
        &dir.path().join("mon.log"),
    );
    let tokens: Vec<(Role, String)> = Role::ALL.iter().map(|role| (*role, create_token(&state, *role))).collect();

    let (status, text) = call(&service, "get", "/api/v1/openapi.json", Some(&tokens[0].1), None);
    assert_eq!(status, 200, "{text}");
    let document: Value = serde_json::from_str(&text).unwrap();
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = 0;
    let mut open = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            operations += 1;
            let declared = match operation["security"].as_array() {
                Some(requirements) if requirements.is_empty() => None,
                Some(requirements) => {
                    let role = requirements[0]["bearer"][0].as_str().expect("a role in the requirement");
                    Some(role.parse::<Role>().unwrap())
                }
                None => panic!("{method} {path} declares no security requirement"),
            };
            assert_eq!(declared, required_role(method, path), "{method} {path}: document and table differ");
            let url = filled(path);
            let body = operation.get("requestBody").map(|_| "{}");
            let (status, text) = call(&service, method, &url, None, body);
            let Some(needed) = declared else {
                open.push(path.clone());
                assert_eq!(status, 200, "{method} {path} is open: {text}");
                continue;
            };
            assert_eq!(status, 401, "{method} {url} without a token: {text}");
            for (role, token) in &tokens {
                let (status, text) = call(&service, method, &url, Some(token), body);
                if role.allows(needed) {
                    assert!(
                        ![401, 403].contains(&status) && status < 500,
                        "{role} on {method} {url} (needs {needed}): {status} {text}"
                    );
                } else {
                    assert_eq!(status, 403, "{role} on {method} {url} (needs {needed}): {text}");
                    let value: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(value["error"]["details"]["needed"], needed.as_str(), "{text}");
                }
            }
        }
    }
    assert!(operations >= 15, "the document lists {operations} operations");
    open.sort();
    assert_eq!(open, ["/healthz", "/metrics", "/readyz"], "exactly these answer without credentials");
    assert!(OPEN.iter().all(|p| required_role("get", p).is_none()));
    assert_eq!(service.terminate(), Some(0));
}
