//! Real receivers for the notifier tests (tests/notify.rs), each on a
//! port of its own: an HTTP server in the test process that records what
//! it is sent, servers that misbehave (hang, answer garbage), an aiosmtpd
//! SMTP server and a Prometheus Alertmanager as child processes. The
//! programs come from `scripts/setup-test-env`.
//!
//! Include with `#[path = "support/receivers.rs"] mod receivers;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request as an HTTP receiver got it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// An HTTP server that records every request and answers 202, or the
/// status its path asks for (`/status/429/...` answers 429).
pub struct HttpReceiver {
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl HttpReceiver {
    pub async fn start() -> HttpReceiver {
        HttpReceiver::start_on("127.0.0.1:0").await
    }

    /// On a given address (`127.0.0.1:PORT`), to come back where a
    /// receiver that was down is expected.
    pub async fn start_on(address: &str) -> HttpReceiver {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, StatusCode, Uri};
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let recorded = requests.clone();
        let handler = move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            async move {
                let body = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
                let headers = headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let path = uri.path().to_string();
                let status = path
                    .strip_prefix("/status/")
                    .and_then(|rest| rest.split('/').next())
                    .and_then(|code| code.parse().ok())
                    .unwrap_or(202);
                recorded.lock().unwrap().push(Recorded { path, headers, body });
                (StatusCode::from_u16(status).unwrap(), "receiver says so")
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        HttpReceiver { base, requests }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// A TCP server that accepts connections and never answers.
pub async fn hanging_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}")
}

/// A TCP server that reads a little and answers bytes that are not HTTP.
pub async fn garbage_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.write_all(b"\x00\x01 this is not HTTP at all\r\n\r\n").await;
            let _ = socket.shutdown().await;
        }
    });
    format!("http://{address}")
}

/// A child process killed (by its own id) when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tests/support/smtp_server.py on a free port, saving into a directory.
pub struct SmtpServer {
    pub port: u16,
    pub dir: PathBuf,
    _child: Reaped,
}

/// One message the SMTP server accepted.
#[derive(Debug)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The message as received, CRLF line ends made LF.
    pub text: String,
}

impl Mail {
    /// The headers, up to the first empty line.
    pub fn headers(&self) -> &str {
        self.text.split_once("\n\n").map_or(&self.text, |(head, _)| head)
    }

    /// The body as its reader sees it: quoted-printable decoded when the
    /// message says it is (lettre picks the encoding).
    pub fn body(&self) -> String {
        let body = self.text.split_once("\n\n").map_or("", |(_, body)| body);
        if !self.headers().contains("Content-Transfer-Encoding: quoted-printable") {
            return body.to_string();
        }
        let bytes = body.replace("=\n", "").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match (bytes[i], hex) {
                (b'=', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }
}

impl SmtpServer {
    pub fn start(dir: &Path) -> SmtpServer {
        SmtpServer::start_on(dir, 0)
    }

    /// On `port` (0: a free one), saving into `dir`, numbering after the
    /// messages already there.
    pub fn start_on(dir: &Path, port: u16) -> SmtpServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(dir)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP server (scripts/setup-test-env installs python3-aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        let child = Reaped(child);
        // The first line says the port, once the server accepts connections.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP server did not start: {line:?}"));
        SmtpServer { port, dir: dir.to_path_buf(), _child: child }
    }

    /// The messages saved so far, in arrival order.
    pub fn messages(&self) -> Vec<Mail> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap();
                let (head, message) = text.split_once('\n').unwrap();
                let head: serde_json::Value = serde_json::from_str(head).unwrap();
                Mail {
                    mail_from: head["mail_from"].as_str().unwrap().to_string(),
                    rcpt_tos: head["rcpt_tos"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().into()).collect(),
                    text: message.replace("\r\n", "\n"),
                }
            })
            .collect()
    }
}

/// A Prometheus Alertmanager (Debian's package) on a free port, with no
/// cluster and a route to nowhere: the tests read its API.
pub struct Alertmanager {
    pub base: String,
    _child: Reaped,
}

impl Alertmanager {
    pub fn start(dir: &Path) -> Alertmanager {
        let config = dir.join("alertmanager.yml");
        std::fs::write(&config, "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n").unwrap();
        let address = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
        let child = Command::new("/usr/bin/prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={address}"))
            // Empty: no gossip, so no second port and no peers to wait for.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager (scripts/setup-test-env installs it)");
        let alertmanager = Alertmanager { base: format!("http://{address}"), _child: Reaped(child) };
        let ready = format!("{}/-/ready", alertmanager.base);
        wait_until(Duration::from_secs(20), "Alertmanager to be ready", || {
            ureq::get(&ready).call().is_ok_and(|r| r.status() == 200)
        });
        alertmanager
    }

    /// `GET /api/v2/alerts`: the alerts it holds that are not resolved.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let url = format!("{}/api/v2/alerts", self.base);
        let text = ureq::get(&url).call().unwrap().into_body().read_to_string().unwrap();
        serde_json::from_str::<Vec<serde_json::Value>>(&text).unwrap()
    }
}

/// Polls `done` until it holds, failing the test after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
