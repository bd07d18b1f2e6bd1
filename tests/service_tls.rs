//! HTTPS with `[http.tls]`, against the real service: a self-signed
//! certificate made here (rcgen), `mon run` serving with it, a client that
//! trusts that certificate gets answers, one that does not is refused,
//! plain HTTP to the port gets nothing, SIGTERM still stops it cleanly;
//! and a missing or broken certificate or key stops `mon run` at start
//! with exit code 2 and the file named.

#[path = "support/service.rs"]
mod service;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, RootCerts, TlsConfig};

struct Files {
    config: std::path::PathBuf,
    rules: std::path::PathBuf,
    cert_pem: String,
}

fn write_files(dir: &Path, cert: &str, key: &str) -> Files {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert_pem = made.cert.pem();
    std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let config = dir.join("mon.toml");
    std::fs::write(
        &config,
        format!("[http.tls]\ncert = \"{}\"\nkey = \"{}\"\n", dir.join(cert).display(), dir.join(key).display()),
    )
    .unwrap();
    Files { config, rules: service::write_job_rules(dir, "1s"), cert_pem }
}

fn agent(trusted: Option<&str>) -> ureq::Agent {
    let mut tls = TlsConfig::builder();
    if let Some(pem) = trusted {
        let cert = Certificate::from_pem(pem.as_bytes()).unwrap();
        tls = tls.root_certs(RootCerts::new_with_certs(&[cert]));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

fn mon_run(dir: &Path, files: &Files, address: &str) -> std::process::Child {
    let log = std::fs::File::create(dir.join("mon.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["run", "--config", &files.config.display().to_string()])
        .args(["--state-dir", &dir.join("state").display().to_string()])
        .args(["--listen", address, "--log-format", "json"])
        .arg(&files.rules)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[test]
fn the_service_answers_over_https_with_its_certificate_and_not_over_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path(), "cert.pem", "key.pem");
    let address = service::free_address();
    let mut child = mon_run(dir.path(), &files, &address);
    let trusting = agent(Some(&files.cert_pem));
    let url = |path: &str| format!("https://{address}{path}");
    let started = Instant::now();
    let body = loop {
        if let Ok(mut response) = trusting.get(&url("/healthz")).call() {
            if response.status() == 200 {
                break response.body_mut().read_to_string().unwrap();
            }
        }
        let log = std::fs::read_to_string(dir.path().join("mon.log")).unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(20), "no HTTPS answer within 20 s; log:\n{log}");
        assert!(child.try_wait().unwrap().is_none(), "mon run stopped; log:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(body, "ok\n");
    let mut response = trusting.get(&url("/api/v1/status")).call().unwrap();
    assert_eq!(response.status(), 200, "{}", response.body_mut().read_to_string().unwrap_or_default());

    // A client that does not trust the certificate is refused by its own TLS.
    let error = agent(None).get(&url("/healthz")).call().map(|r| r.status().as_u16());
    assert!(error.is_err(), "a self-signed certificate must not be trusted by default: {error:?}");
    // Plain HTTP to the same port gets no HTTP answer.
    let plain = agent(None).get(&format!("http://{address}/healthz")).call().map(|r| r.status().as_u16());
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");

    // Graceful shutdown still works with TLS.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "mon run did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_missing_or_broken_certificate_or_key_stops_the_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("garbage.pem"), "this is not PEM\n").unwrap();
    let cases = [
        ("missing.pem", "key.pem", "missing.pem", "no such file"),
        ("cert.pem", "missing-key.pem", "missing-key.pem", "no such file"),
        ("garbage.pem", "key.pem", "garbage.pem", "no PEM certificate"),
        ("cert.pem", "garbage.pem", "garbage.pem", "no PEM item"),
        // A certificate where the key should be.
        ("cert.pem", "cert.pem", "http.tls.key", "no PEM item"),
    ];
    for (cert, key, named, why) in cases {
        let files = write_files(dir.path(), cert, key);
        let output = Command::new(env!("CARGO_BIN_EXE_mon"))
            .args(["run", "--config", &files.config.display().to_string()])
            .args(["--state-dir", &dir.path().join("state").display().to_string()])
            .args(["--listen", &service::free_address()])
            .arg(&files.rules)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{cert}/{key}: {stderr}");
        assert!(stderr.contains(named) && stderr.contains(why), "{cert}/{key}: {stderr}");
    }
    // The key of another certificate.
    let files = write_files(dir.path(), "cert.pem", "key.pem");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("other-key.pem"), other.signing_key.serialize_pem()).unwrap();
    std::fs::write(
        &files.config,
        format!(
            "[http.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.path().join("cert.pem").display(),
            dir.path().join("other-key.pem").display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["run", "--config", &files.config.display().to_string()])
        .args(["--state-dir", &dir.path().join("state").display().to_string()])
        .args(["--listen", &service::free_address()])
        .arg(&files.rules)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does not go with") && stderr.contains("other-key.pem"), "{stderr}");
}
