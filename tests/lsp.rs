//! The language server driven as an editor drives it: the real `mon lsp`
//! binary over stdio, JSON-RPC messages framed with `Content-Length`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(30);

struct Client {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    /// Notifications that arrived while waiting for something else.
    pending: VecDeque<Value>,
    next_id: i64,
    /// The workspace's URI prefix, replaced by `file:///ws` in snapshots.
    root_uri: String,
    /// What the server said it can do, from `initialize`.
    capabilities: Value,
}

fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

impl Client {
    fn start(root: &Path) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mon"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mon lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, incoming) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        let root_uri = format!("file://{}", root.display());
        let mut client = Client {
            child,
            stdin,
            incoming,
            pending: VecDeque::new(),
            next_id: 1,
            root_uri,
            capabilities: Value::Null,
        };
        let result = client.request(
            "initialize",
            json!({
                "processId": null,
                "rootUri": client.root_uri,
                "capabilities": {},
                "workspaceFolders": [{ "uri": client.root_uri, "name": "ws" }],
            }),
        );
        assert_eq!(result["capabilities"]["textDocumentSync"]["change"], 2, "incremental sync");
        client.capabilities = result["capabilities"].clone();
        client.notify("initialized", json!({}));
        client
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("server reads");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// The whole response (result or error) to one request.
    fn request_raw(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let message = self.incoming.recv_timeout(deadline - Instant::now()).expect("a response in time");
            if message["id"] == json!(id) && message.get("method").is_none() {
                return message;
            }
            self.pending.push_back(message);
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let response = self.request_raw(method, params);
        assert!(response.get("error").is_none(), "{method} failed: {response}");
        response["result"].clone()
    }

    /// The next `publishDiagnostics` for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Value {
        let is_it = |m: &Value| m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri;
        if let Some(i) = self.pending.iter().position(is_it) {
            return self.pending.remove(i).expect("present")["params"].clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let message = self.incoming.recv_timeout(deadline - Instant::now()).expect("diagnostics in time");
            if is_it(&message) {
                return message["params"].clone();
            }
            self.pending.push_back(message);
        }
    }

    fn open(&mut self, uri: &str, text: &str) {
        let doc = json!({ "uri": uri, "languageId": "mon", "version": 1, "text": text });
        self.notify("textDocument/didOpen", json!({ "textDocument": doc }));
    }

    fn change(&mut self, uri: &str, version: i32, changes: Value) {
        let doc = json!({ "uri": uri, "version": version });
        self.notify("textDocument/didChange", json!({ "textDocument": doc, "contentChanges": changes }));
    }

    fn at(&mut self, method: &str, uri: &str, line: u32, character: u32) -> Value {
        let params = json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
        self.request(method, params)
    }

    /// JSON with the temporary directory's URI replaced, for snapshots.
    fn redact(&self, value: &Value) -> String {
        serde_json::to_string_pretty(value).expect("json").replace(&self.root_uri, "file:///ws")
    }

    /// `shutdown` then `exit`; the process's exit code.
    fn stop(mut self) -> i32 {
        let result = self.request_raw("shutdown", Value::Null);
        assert_eq!(result["result"], Value::Null);
        self.notify("exit", Value::Null);
        wait(&mut self.child)
    }
}

fn wait(child: &mut Child) -> i32 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

const EVENTS: &str = "\
/// A trade entered the system.
event trade_ingested {
  trade_id: string
  /// Where the trade is booked.
  book: string
  notional: float
}

event trade_verified {
  trade_id: string
  ok: bool
}
";

const WORKFLOW: &str = "\
workflow lifecycle {
  key trade_id
  start ingested: trade_ingested where notional > 0.0
  step verified: trade_verifed after ingested within 5m warn 3m
}
";

fn workspace() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("events.mon"), EVENTS).expect("write");
    let uri = format!("file://{}/flows.mon", dir.path().display());
    (dir, uri)
}

#[test]
fn diagnostics_follow_edits_and_offer_the_suggested_fix() {
    let (dir, uri) = workspace();
    let mut client = Client::start(dir.path());
    client.open(&uri, WORKFLOW);
    let published = client.diagnostics(&uri);
    let diagnostics = published["diagnostics"].as_array().expect("a list");
    assert_eq!(diagnostics.len(), 1, "{published}");
    assert_eq!(diagnostics[0]["code"], "E201");
    // `trade_verifed` on line 3 (0-based), columns 17..30.
    assert_eq!(
        diagnostics[0]["range"],
        json!({ "start": { "line": 3, "character": 17 }, "end": { "line": 3, "character": 30 } })
    );
    insta::assert_snapshot!("lsp_unknown_event", client.redact(&published));

    let range = diagnostics[0]["range"].clone();
    let actions = client.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": range, "context": { "diagnostics": [] } }),
    );
    insta::assert_snapshot!("lsp_quick_fix", client.redact(&actions));

    // The fix, as an incremental edit: the diagnostics go away.
    client.change(&uri, 2, json!([{ "range": range, "text": "trade_verified" }]));
    let published = client.diagnostics(&uri);
    assert_eq!(published["diagnostics"], json!([]), "{published}");
    assert_eq!(published["version"], 2);
    assert_eq!(client.stop(), 0);
}

#[test]
fn a_duplicate_points_at_both_files() {
    let (dir, _) = workspace();
    let uri = format!("file://{}/more.mon", dir.path().display());
    let mut client = Client::start(dir.path());
    client.open(&uri, "event trade_verified {\n  trade_id: string\n}\n");
    let published = client.diagnostics(&uri);
    let diagnostic = &published["diagnostics"][0];
    assert_eq!(diagnostic["code"], "E208", "{published}");
    let related = &diagnostic["relatedInformation"][0]["location"];
    assert_eq!(related["uri"], format!("{}/events.mon", client.root_uri));
    assert_eq!(related["range"]["start"], json!({ "line": 8, "character": 6 }));
    assert_eq!(client.stop(), 0);
}

#[test]
fn positions_count_utf16_units() {
    let (dir, uri) = workspace();
    let mut client = Client::start(dir.path());
    // `é` and `𝄞` before the error: 1 and 2 UTF-16 units, 2 and 4 bytes.
    client.open(&uri, "/* é𝄞 */ workflow w { key trade_id; expect nope }\n");
    let published = client.diagnostics(&uri);
    let diagnostic = &published["diagnostics"][0];
    assert_eq!(diagnostic["code"], "E201", "{published}");
    assert_eq!(diagnostic["range"]["start"], json!({ "line": 0, "character": 44 }));
    assert_eq!(diagnostic["range"]["end"], json!({ "line": 0, "character": 48 }));
    assert_eq!(client.stop(), 0);
}

#[test]
fn formatting_gives_the_formatted_text() {
    let (dir, uri) = workspace();
    let mut client = Client::start(dir.path());
    let messy = "workflow   lifecycle{\nkey trade_id\n   start ingested:trade_ingested\nstep verified: trade_verified after ingested within 300s\n}\n";
    client.open(&uri, messy);
    let edits = client.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    let edits = edits.as_array().expect("edits");
    assert_eq!(edits.len(), 1);
    let formatted = edits[0]["newText"].as_str().expect("text");
    assert_eq!(Ok(formatted.to_string()), mon_grammar_format(messy));
    insta::assert_snapshot!("lsp_formatted", formatted);
    assert_eq!(client.stop(), 0);
}

/// What `mon fmt` would write.
fn mon_grammar_format(text: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("x.mon");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let status = Command::new(env!("CARGO_BIN_EXE_mon")).arg("fmt").arg(&path).status().map_err(|e| e.to_string())?;
    assert!(status.success());
    std::fs::read_to_string(&path).map_err(|e| e.to_string())
}

#[test]
fn hover_definition_references_symbols_and_completion() {
    let (dir, uri) = workspace();
    let events_uri = format!("file://{}/events.mon", dir.path().display());
    let mut client = Client::start(dir.path());
    let text = WORKFLOW.replace("trade_verifed", "trade_verified");
    client.open(&uri, &text);
    let _ = client.diagnostics(&uri);

    // Hover: a field in a `where`, an event, a step's timing, a zone.
    let field = client.at("textDocument/hover", &uri, 2, 46);
    insta::assert_snapshot!("lsp_hover_field", client.redact(&field));
    let event = client.at("textDocument/hover", &uri, 2, 20);
    insta::assert_snapshot!("lsp_hover_event", client.redact(&event));
    let step = client.at("textDocument/hover", &uri, 3, 8);
    insta::assert_snapshot!("lsp_hover_step", client.redact(&step));
    assert!(step["contents"]["value"]
        .as_str()
        .unwrap_or("")
        .contains("within 5 minutes after stage ingested; amber after 3 minutes"));

    // Definition: an event in another file, a stage in this one.
    let definition = client.at("textDocument/definition", &uri, 2, 20);
    assert_eq!(definition[0]["uri"], events_uri);
    assert_eq!(definition[0]["range"]["start"], json!({ "line": 1, "character": 6 }));
    let stage = client.at("textDocument/definition", &uri, 3, 46);
    assert_eq!(stage[0]["uri"], uri);
    assert_eq!(
        stage[0]["range"],
        json!({ "start": { "line": 2, "character": 8 }, "end": { "line": 2, "character": 16 } })
    );

    // References of the field `trade_id`... of `ingested`: its declaration and the `after`.
    let references = client.request(
        "textDocument/references",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 2, "character": 10 }, "context": { "includeDeclaration": true } }),
    );
    assert_eq!(references.as_array().map(Vec::len), Some(2), "{references}");

    let symbols = client.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": events_uri } }));
    insta::assert_snapshot!("lsp_document_symbols", client.redact(&symbols));

    // Completion: stage names after `after`, events after `then`, fields in a `where`.
    let edited = format!(
        "{}  then \n  step x: trade_verified after \n  step y: trade_verified where  after verified\n}}\n",
        text.trim_end().trim_end_matches('}')
    );
    client.change(&uri, 2, json!([{ "text": edited }]));
    let labels = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|i| i["label"].as_str().map(str::to_string)).collect()
    };
    let events = client.at("textDocument/completion", &uri, 4, 7);
    assert_eq!(labels(&events), ["trade_ingested", "trade_verified"]);
    let stages = client.at("textDocument/completion", &uri, 5, 31);
    // The lines being typed do not parse yet, so only the steps above count.
    assert_eq!(labels(&stages), ["ingested", "verified"]);
    let fields = labels(&client.at("textDocument/completion", &uri, 6, 31));
    assert!(fields.starts_with(&["trade_id".to_string(), "ok".to_string()]), "{fields:?}");
    let top = client.at("textDocument/completion", &uri, 8, 0);
    assert_eq!(labels(&top), ["event", "workflow", "channel", "calendar", "maintenance", "test"]);
    // In a test block, `expect` is followed by an assertion or any record kind.
    client.change(&uri, 3, json!([{ "text": format!("{edited}test t {{\n  expect \n}}\n") }]));
    let expectations = labels(&client.at("textDocument/completion", &uri, 9, 9));
    for word in ["alert", "count", "missing", "at_risk", "early", "rejected"] {
        assert!(expectations.iter().any(|l| l == word), "{word} in {expectations:?}");
    }
    // Only an activation makes `superseded`, which `mon test` never does.
    assert!(!expectations.iter().any(|l| l == "superseded"), "{expectations:?}");
    assert_eq!(client.stop(), 0);
}

#[test]
fn exit_without_shutdown_is_exit_code_1() {
    let (dir, _) = workspace();
    let mut client = Client::start(dir.path());
    client.notify("exit", Value::Null);
    assert_eq!(wait(&mut client.child), 1);
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn random_edits_never_stop_the_server() {
    let (dir, uri) = workspace();
    let mut client = Client::start(dir.path());
    client.open(&uri, WORKFLOW);
    let _ = client.diagnostics(&uri);
    let alphabet: Vec<char> =
        "{}()[]:;.,|->=<!?\"\\/ \n\tabcxyz_09évent workflow step after within by 08:00 𝄞\u{0}\r".chars().collect();
    let pieces = [EVENTS, WORKFLOW, "where", "\"", "/*", "///", "}", "{", "after", "->", "by 25:99", "1h30m"];
    for seed in 1..=4u64 {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        for version in 0..150 {
            // Positions may be anywhere, including past the end of the text
            // and inside surrogate pairs: the server must clamp.
            let pos = |rng: &mut Rng| json!({ "line": rng.below(12), "character": rng.below(60) });
            let text: String = match rng.below(3) {
                0 => String::new(),
                1 => pieces[rng.below(pieces.len() as u64) as usize].to_string(),
                _ => (0..rng.below(20)).map(|_| alphabet[rng.below(alphabet.len() as u64) as usize]).collect(),
            };
            let change = if rng.below(40) == 0 {
                json!({ "text": text })
            } else {
                json!({ "range": { "start": pos(&mut rng), "end": pos(&mut rng) }, "text": text })
            };
            client.change(&uri, version + 2, json!([change]));
            if version % 25 == 0 {
                let line = rng.below(10) as u32;
                let character = rng.below(40) as u32;
                for method in ["textDocument/hover", "textDocument/completion", "textDocument/definition"] {
                    let params =
                        json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
                    let response = client.request_raw(method, params);
                    assert!(response.get("error").is_none(), "{method}: {response}");
                }
                for method in ["textDocument/semanticTokens/full", "textDocument/foldingRange"] {
                    let response = client.request_raw(method, json!({ "textDocument": { "uri": uri } }));
                    assert!(response.get("error").is_none(), "{method}: {response}");
                }
                // Refusing is fine (the cursor is rarely on a name); failing is not.
                let params = json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character }, "newName": "renamed" });
                let response = client.request_raw("textDocument/rename", params);
                assert_ne!(response["error"]["code"], -32603, "{response}");
                let response = client.request_raw(
                    "textDocument/formatting",
                    json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 2, "insertSpaces": true } }),
                );
                assert!(response.get("error").is_none(), "{response}");
            }
        }
    }
    // Still answering after all that.
    let response = client.request_raw(
        "textDocument/hover",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 0 } }),
    );
    assert!(response.get("error").is_none(), "{response}");
    assert_eq!(client.stop(), 0);
}

/// A rules file of about `lines` lines: events and workflows that use them.
fn big_rules(lines: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.lines().count() < lines {
        out.push_str(&format!(
            "/// Event {i}.\nevent e{i}_a {{\n  id: string\n  amount: float\n  region: enum {{ EMEA, AMER }}\n}}\n\nevent e{i}_b {{\n  id: string\n  ok: bool\n}}\n\n\
             workflow w{i} {{\n  key id\n  start a: e{i}_a where amount > 10.0 and region == EMEA\n  step b: e{i}_b where ok after a within 5m warn 3m\n}}\n\n"
        ));
        i += 1;
    }
    out
}

#[test]
fn diagnostics_of_a_5000_line_file_are_quick() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = format!("file://{}/big.mon", dir.path().display());
    let text = big_rules(5000);
    let mut client = Client::start(dir.path());
    client.open(&uri, &text);
    let first = client.diagnostics(&uri);
    assert_eq!(first["diagnostics"], json!([]), "the generated file is valid");
    // An edit that breaks a name, then one that fixes it: each publishes.
    let mut timings = Vec::new();
    for round in 0..10 {
        let (insert, expect_errors) = if round % 2 == 0 { ("x", true) } else { ("", false) };
        let range = json!({ "start": { "line": 14, "character": 12 }, "end": { "line": 14, "character": if expect_errors { 12 } else { 13 } } });
        let started = Instant::now();
        client.change(&uri, round + 2, json!([{ "range": range, "text": insert }]));
        let published = client.diagnostics(&uri);
        timings.push(started.elapsed());
        assert_eq!(published["diagnostics"].as_array().map(|d| !d.is_empty()), Some(expect_errors), "{published}");
    }
    timings.sort();
    let median = timings[timings.len() / 2];
    println!(
        "didChange → publishDiagnostics on a {}-line file: median {median:?}, max {:?}",
        text.lines().count(),
        timings[timings.len() - 1]
    );
    assert!(median < Duration::from_secs(2), "median {median:?}");
    assert_eq!(client.stop(), 0);
}

/// A real client: headless Neovim (Debian's `neovim` package) opens a file
/// with an error and the server's diagnostic reaches `vim.diagnostic.get()`.
/// `scripts/setup-test-env` installs Neovim; without it this test fails.
#[test]
fn neovim_shows_the_diagnostic() {
    assert!(
        Command::new("nvim").arg("--version").output().is_ok(),
        "nvim is not installed: run scripts/setup-test-env (it installs Debian's neovim)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.mon"), "event a {\n  id: string\n}\nworkflow w {\n  key id\n  expect b\n}\n")
        .expect("write");
    // `start_client` + `buf_attach_client`: the API of Neovim 0.7 (Debian 12).
    let script = r#"
local client = vim.lsp.start_client({ name = "mon", cmd = { vim.env.MON_BIN, "lsp" }, root_dir = vim.fn.getcwd() })
vim.cmd("edit rules.mon")
vim.lsp.buf_attach_client(0, client)
local ok = vim.wait(20000, function() return #vim.diagnostic.get(0) > 0 end, 50)
local d = vim.diagnostic.get(0)[1]
if ok and d then
  io.stdout:write(string.format("diagnostic %s %d:%d\n", tostring(d.code), d.lnum, d.col))
else
  io.stdout:write("no diagnostic\n")
end
vim.cmd("qa!")
"#;
    std::fs::write(dir.path().join("check.lua"), script).expect("write");
    let output = Command::new("nvim")
        .args(["--headless", "--clean", "-u", "NONE", "-c", "luafile check.lua"])
        .current_dir(dir.path())
        .env("MON_BIN", env!("CARGO_BIN_EXE_mon"))
        .stdin(Stdio::null())
        .output()
        .expect("nvim runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("diagnostic E201 5:9"),
        "nvim printed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `text` with LSP edits applied (ranges in UTF-16 units of `text`).
fn apply_edits(text: &str, edits: &Value) -> String {
    let offset = |p: &Value| -> usize {
        let line = p["line"].as_u64().expect("line") as usize;
        let character = p["character"].as_u64().expect("character") as usize;
        let start: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
        let rest = &text[start..];
        let mut units = 0;
        for (i, c) in rest.char_indices() {
            if units >= character {
                return start + i;
            }
            units += c.len_utf16();
        }
        text.len()
    };
    let mut edits: Vec<&Value> = edits.as_array().expect("edits").iter().collect();
    // From the end, so earlier offsets stay valid.
    edits.sort_by_key(|e| std::cmp::Reverse(offset(&e["range"]["start"])));
    let mut out = text.to_string();
    for edit in edits {
        let (start, end) = (offset(&edit["range"]["start"]), offset(&edit["range"]["end"]));
        out.replace_range(start..end, edit["newText"].as_str().expect("text"));
    }
    out
}

const RENAME_FLOWS: &str = "\
workflow lifecycle {
  key trade_id
  start ingested: trade_ingested where notional > 0.0
  step verified: trade_verified after ingested within 5m warn 3m
}

workflow simple {
  key trade_id
  expect trade_ingested
  then trade_verified within 5m
}

test \"verified in time\" {
  at 2026-03-02T14:30:00Z
  event trade_ingested { trade_id: \"T1\", book: \"B\", notional: 1.0 } at 2026-03-02T14:30:00Z
  expect stage lifecycle for { trade_id: \"T1\" } ingested
  expect stage simple for { trade_id: \"T1\" } trade_ingested
}
";

#[test]
fn rename_changes_every_file_and_refuses_bad_names() {
    let (dir, uri) = workspace();
    let events_uri = format!("file://{}/events.mon", dir.path().display());
    std::fs::write(dir.path().join("flows.mon"), RENAME_FLOWS).expect("write");
    let mut client = Client::start(dir.path());
    assert_eq!(client.capabilities["renameProvider"]["prepareProvider"], true);
    client.open(&uri, RENAME_FLOWS);
    let published = client.diagnostics(&uri);
    assert_eq!(published["diagnostics"], json!([]), "{published}");

    let rename = |client: &mut Client, line: u32, character: u32, new_name: &str| {
        client.request_raw(
            "textDocument/rename",
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character }, "newName": new_name }),
        )
    };

    // prepareRename: the name's range and text.
    let prepared = client.at("textDocument/prepareRename", &uri, 2, 10);
    assert_eq!(
        prepared,
        json!({ "range": { "start": { "line": 2, "character": 8 }, "end": { "line": 2, "character": 16 } }, "placeholder": "ingested" })
    );
    // ...and a refusal on a keyword.
    let refused = client.request_raw(
        "textDocument/prepareRename",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 3 } }),
    );
    assert!(refused["error"]["message"].as_str().unwrap_or("").contains("no event, workflow"), "{refused}");

    // An event, declared in a file that is not open: both files change; the
    // unnamed `expect` step keeps its stage's name with `as`.
    let response = rename(&mut client, 2, 20, "trade_received");
    let changes = &response["result"]["changes"];
    assert_eq!(changes.as_object().map(|c| c.len()), Some(2), "{response}");
    let events = apply_edits(EVENTS, &changes[&events_uri]);
    assert!(events.contains("event trade_received {"), "{events}");
    assert!(!events.contains("trade_ingested"), "{events}");
    let flows = apply_edits(RENAME_FLOWS, &changes[&uri]);
    insta::assert_snapshot!("lsp_rename_event", flows);
    // The renamed program still checks.
    let renamed = tempfile::tempdir().expect("temp dir");
    std::fs::write(renamed.path().join("events.mon"), &events).expect("write");
    std::fs::write(renamed.path().join("flows.mon"), &flows).expect("write");
    let check = Command::new(env!("CARGO_BIN_EXE_mon")).arg("check").arg(renamed.path()).output().expect("mon check");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // A stage, within its workflow: the declaration, the `after` and the test's `expect stage`.
    let response = rename(&mut client, 3, 45, "received");
    let changes = &response["result"]["changes"];
    assert_eq!(changes.as_object().map(|c| c.len()), Some(1), "{response}");
    let flows = apply_edits(RENAME_FLOWS, &changes[&uri]);
    assert!(flows.contains("start received: trade_ingested"), "{flows}");
    assert!(flows.contains("after received within"), "{flows}");
    assert!(flows.contains("} received\n"), "{flows}");
    // The unnamed step of the other workflow is another stage.
    assert!(flows.contains("expect trade_ingested\n"), "{flows}");

    // A stage named by its event (`expect trade_ingested`) gets an `as`.
    let response = rename(&mut client, 16, 50, "received");
    let changes = &response["result"]["changes"];
    assert_eq!(changes.as_object().map(|c| c.len()), Some(1), "{response}");
    let flows = apply_edits(RENAME_FLOWS, &changes[&uri]);
    assert!(flows.contains("expect trade_ingested as received\n"), "{flows}");
    assert!(flows.contains("simple for { trade_id: \"T1\" } received\n"), "{flows}");
    assert!(flows.contains("start ingested: trade_ingested where"), "{flows}");

    // On such a step the name is the event first (as for definition): the
    // event is renamed and the stage keeps its name.
    let response = rename(&mut client, 9, 10, "trade_checked");
    let changes = &response["result"]["changes"];
    assert!(apply_edits(EVENTS, &changes[&events_uri]).contains("event trade_checked {"), "{response}");
    let flows = apply_edits(RENAME_FLOWS, &changes[&uri]);
    assert!(flows.contains("then trade_checked as trade_verified within 5m"), "{flows}");
    assert!(flows.contains("step verified: trade_checked after"), "{flows}");

    // A workflow: its declaration and the test's `expect stage`.
    let response = rename(&mut client, 0, 12, "trade_life");
    let flows = apply_edits(RENAME_FLOWS, &response["result"]["changes"][&uri]);
    assert_eq!(flows.matches("trade_life").count(), 2, "{flows}");

    // Refusals: a reserved word, an invalid name, an existing name, not a name.
    let cases = [
        (2, 20, "where", "reserved word"),
        (2, 20, "9lives", "not a valid name"),
        (2, 20, "trade-x", "not a valid name"),
        (2, 20, "trade_verified", "already an event named `trade_verified`"),
        (1, 3, "k", "no event, workflow, stage, calendar or channel"),
        (2, 44, "amount", "renaming fields is not supported"),
    ];
    for (line, character, new_name, message) in cases {
        let response = rename(&mut client, line, character, new_name);
        let error = response["error"]["message"].as_str().unwrap_or("");
        assert!(error.contains(message), "{new_name} at {line}:{character}: {response}");
        assert!(response.get("result").is_none_or(Value::is_null), "{response}");
    }
    assert_eq!(client.stop(), 0);
}

#[test]
fn folding_ranges_cover_blocks_and_comments() {
    let (dir, uri) = workspace();
    let mut client = Client::start(dir.path());
    assert_eq!(client.capabilities["foldingRangeProvider"], true);
    let text = format!("/* A block\n   comment. */\n{RENAME_FLOWS}\ncalendar holidays {{\n  2026-12-25\n}}\n");
    client.open(&uri, &text);
    let ranges = client.request("textDocument/foldingRange", json!({ "textDocument": { "uri": uri } }));
    let lines: Vec<(u64, u64, String)> = ranges
        .as_array()
        .expect("ranges")
        .iter()
        .map(|r| {
            let kind = r["kind"].as_str().unwrap_or("").to_string();
            (r["startLine"].as_u64().expect("start"), r["endLine"].as_u64().expect("end"), kind)
        })
        .collect();
    assert_eq!(
        lines,
        [
            (0, 1, "comment".to_string()),
            (2, 6, String::new()),
            (8, 12, String::new()),
            (14, 19, String::new()),
            (21, 23, String::new()),
        ]
    );
    assert_eq!(client.stop(), 0);
}

#[test]
fn semantic_tokens_classify_names_keywords_and_literals() {
    let (dir, uri) = workspace();
    let mut client = Client::start(dir.path());
    let legend = client.capabilities["semanticTokensProvider"]["legend"]["tokenTypes"].clone();
    assert_eq!(client.capabilities["semanticTokensProvider"]["full"], true);
    let text = format!("// Flows.\n{}", WORKFLOW.replace("trade_verifed", "trade_verified"));
    client.open(&uri, &text);
    let result = client.request("textDocument/semanticTokens/full", json!({ "textDocument": { "uri": uri } }));
    let data: Vec<u64> = result["data"].as_array().expect("data").iter().map(|n| n.as_u64().expect("u32")).collect();
    assert_eq!(data.len() % 5, 0);
    // Decode: (line, start, length) → type name.
    let mut tokens = std::collections::HashMap::new();
    let (mut line, mut start) = (0, 0);
    for token in data.chunks(5) {
        if token[0] > 0 {
            line += token[0];
            start = token[1];
        } else {
            start += token[1];
        }
        let kind = legend[token[3] as usize].as_str().expect("a type name").to_string();
        tokens.insert((line, start), (token[2], kind));
    }
    let at = |line: u64, start: u64| tokens.get(&(line, start)).cloned().unwrap_or((0, "none".into()));
    // Line 0: `// Flows.`
    assert_eq!(at(0, 0), (9, "comment".into()));
    // Line 1: `workflow lifecycle {`
    assert_eq!(at(1, 0), (8, "keyword".into()));
    assert_eq!(at(1, 9), (9, "namespace".into()));
    // Line 3: `  start ingested: trade_ingested where notional > 0.0`
    assert_eq!(at(3, 2), (5, "keyword".into()));
    assert_eq!(at(3, 8), (8, "variable".into()));
    assert_eq!(at(3, 18), (14, "type".into()));
    assert_eq!(at(3, 33), (5, "keyword".into()));
    assert_eq!(at(3, 39), (8, "property".into()));
    assert_eq!(at(3, 48), (1, "operator".into()));
    assert_eq!(at(3, 50), (3, "number".into()));
    // Line 4: `  step verified: trade_verified after ingested within 5m warn 3m`
    assert_eq!(at(4, 38), (8, "variable".into()));
    assert_eq!(at(4, 54), (2, "number".into()));
    assert_eq!(at(4, 62), (2, "number".into()));
    // Tokens on the same line never overlap and come in order.
    let mut sorted: Vec<_> = tokens.iter().collect();
    sorted.sort();
    for pair in sorted.windows(2) {
        let ((l1, s1), (len1, _)) = pair[0];
        let ((l2, s2), _) = pair[1];
        assert!(l1 < l2 || s1 + len1 <= *s2, "{pair:?}");
    }
    assert_eq!(client.stop(), 0);
}
