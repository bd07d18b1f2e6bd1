//! The command center in a real browser: Debian's headless Chromium,
//! driven over WebDriver (chromedriver, with `fantoccini`), against a real
//! `mon run` on the wall clock, fed over HTTP. What a person at the
//! wallboard sees: a missed deadline turns red and pulses within 5 s, the
//! alert is acknowledged from the strip and the pulse stops, the map is
//! laid out left to right from the program, and an item's lifecycle opens
//! from a stage tile. Text contrast is measured on the rendered pages.
//!
//! The tests write `docs/screenshots/{wallboard,workflow-map,lifecycle}.png`
//! (shown in the README). Without Chromium they fail, saying to run
//! `scripts/setup-test-env`: a skipped browser test would hide a broken UI.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/service.rs"]
mod service;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use browser::{assert_legible, contrast, Browser};
use fantoccini::Locator;
use serde_json::{json, Value};
use service::Service;

const RULES: &str = r#"
event order_placed { order: string, desk: string }
event order_routed { order: string }
event order_filled { order: string }
event order_rejected { order: string }
event batch_opened { batch: string }
event batch_closed { batch: string }
channel ops webhook "http://127.0.0.1:9/hook"

/// Orders from placement to a fill; a rejection is a failure.
workflow orders {
  key order
  group by desk
  severity high
  runbook "https://runbooks.example.com/orders"
  notify ops
  aging 1m, 5m
  start placed: order_placed
  step routed: order_routed after placed within 3s
  step rejected: order_rejected after placed | routed -> failure
  step filled: order_filled after routed within 1h -> success
}

/// A quiet workflow that stays green, so the board has an order to keep.
workflow settlements {
  key batch
  notify ops
  start opened: batch_opened
  step closed: batch_closed after opened within 1h
}
"#;

/// The browser tests run side by side, except the one that times the
/// page: it waits for the others to finish and runs alone (with six
/// browsers and services on two cores, a timing says more about the
/// machine than about the page).
static TIMING: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// How long after `placed` the `routed` deadline of RULES falls.
const ROUTED_WITHIN: Duration = Duration::from_secs(3);

/// `mon run` on the wall clock with RULES; notifications go to its log.
fn start_service(dir: &Path) -> Service {
    start_service_with(dir, "")
}

/// The same, with more configuration (`extra`, TOML).
fn start_service_with(dir: &Path, extra: &str) -> Service {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("orders.mon"), RULES).unwrap();
    let config = dir.join("mon.toml");
    std::fs::write(
        &config,
        format!("[alerts]\ngroup_wait_ms = 200\ngroup_interval_ms = 500\n[notify]\ndeliver = \"log\"\n{extra}"),
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
        &dir.join("service.log"),
    )
}

/// A CloudEvents envelope of `type` with `data`, timed now.
fn envelope(id: &str, type_name: &str, data: Value) -> String {
    json!({
        "specversion": "1.0", "id": id, "source": "ui-test", "type": type_name,
        "time": mon_stdlib::time::format_rfc3339(service::now_ms()), "data": data,
    })
    .to_string()
}

fn send(service: &Service, events: &[String]) {
    let (status, body) = service.post("/api/v1/events", &events.join("\n"));
    assert!(status == 200 || status == 202, "POST /api/v1/events: {status} {body}");
}

/// Status and body of `method path` with a bearer token and a JSON body.
fn call_as(service: &Service, token: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut request = ureq::http::Request::builder().method(method).uri(service.url(path));
    if !token.is_empty() {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = match body {
        Some(body) => agent.run(request.header("Content-Type", "application/json").body(body.to_string()).unwrap()),
        None => agent.run(request.body(()).unwrap()),
    }
    .expect("HTTP");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap_or_default())
}

/// A token of `role` named `name`, made as an operator would (`mon token create`).
fn create_token(state: &Path, role: &str, name: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["token", "create", "--role", role, "--name", name, "--state-dir"])
        .arg(state)
        .output()
        .expect("mon token create");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The alerts of the `orders` workflow, as the API lists them.
fn order_alerts(service: &Service) -> Vec<Value> {
    let body = service.get("/api/v1/alerts?workflow=orders").expect("GET /api/v1/alerts");
    let list: Value = serde_json::from_str(&body).unwrap();
    list["alerts"].as_array().cloned().unwrap_or_default()
}

/// The tile of a workflow on the wallboard: its status, whether it pulses
/// and its text.
fn tile_script(workflow: &str) -> String {
    format!(
        "const t = document.querySelector('.tile[data-workflow=\"{workflow}\"]'); \
         return t ? {{status: t.dataset.status, pulse: t.classList.contains('pulse'), text: t.innerText}} : null;"
    )
}

#[test]
fn contrast_is_the_wcag_ratio() {
    assert!((contrast([0.0, 0.0, 0.0], [255.0, 255.0, 255.0]) - 21.0).abs() < 1e-9);
    assert!((contrast([119.0, 119.0, 119.0], [255.0, 255.0, 255.0]) - 4.48).abs() < 0.01);
}

/// The wallboard loads with a countdown; a missed deadline turns the tile
/// and its stage on the map red and pulsing within 5 s; the alert is
/// acknowledged from the strip, the pulse stops and the tile says who.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_deadline_turns_red_and_pulses_until_acknowledged_from_the_strip() {
    let _side_by_side = TIMING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let service = start_service(dir.path());
    let browser = Browser::open().await;

    let placed_at = Instant::now();
    send(
        &service,
        &[
            envelope("p1", "order_placed", json!({"order": "O-1001", "desk": "FX"})),
            envelope("p2", "order_placed", json!({"order": "O-1002", "desk": "Rates"})),
            envelope("r2", "order_routed", json!({"order": "O-1002"})),
            envelope("b1", "batch_opened", json!({"batch": "B-7"})),
        ],
    );
    let deadline = placed_at + ROUTED_WITHIN;
    browser.client.goto(&service.url("/")).await.unwrap();

    // Before the deadline: a tile with the status word, its counts and a
    // countdown to the deadline of `routed`.
    let tile = browser
        .wait_for(Duration::from_secs(5), "the orders tile with 2 in flight", &tile_script("orders"), |t| {
            t["text"].as_str().is_some_and(|s| s.contains("2\nin flight") || s.contains("2 in flight"))
        })
        .await;
    assert!(Instant::now() < deadline, "the page took until the deadline to load; the test cannot see the countdown");
    let text = tile["text"].as_str().unwrap();
    assert!(text.contains("routed due") && text.contains(" left"), "no countdown on the tile: {text}");
    assert_ne!(tile["status"], "red", "red before the deadline: {tile}");

    // The deadline passes: red, pulsing, saying why (the rule's words, the key).
    let red = browser
        .wait_for(
            deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5),
            "a red, pulsing tile",
            &tile_script("orders"),
            |t| t["status"] == "red" && t["pulse"] == true,
        )
        .await;
    let late_by = Instant::now().saturating_duration_since(deadline);
    assert!(late_by <= Duration::from_secs(5), "red {late_by:?} after the deadline");
    let text = red["text"].as_str().unwrap();
    assert!(text.contains("BREACHED") && text.contains("missing") && text.contains("O-1001"), "{text}");
    // Worst first: the red workflow before the green one.
    let order = browser.eval("return [...document.querySelectorAll('.tile')].map(t => t.dataset.workflow)").await;
    assert_eq!(order, json!(["orders", "settlements"]));
    let strip = browser
        .wait_for(
            Duration::from_secs(5),
            "the alert on the strip",
            "return document.getElementById('strip').innerText",
            |s| s.as_str().is_some_and(|s| s.contains("O-1001")),
        )
        .await;
    assert!(strip.as_str().unwrap().contains("runbook"), "{strip}");
    assert_legible(&browser, "the wallboard").await;
    browser.screenshot("wallboard.png").await;

    // The workflow page: the stage the item waits in is red and pulsing.
    browser.client.find(Locator::Css(".tile[data-workflow=\"orders\"]")).await.unwrap().click().await.unwrap();
    let node_script = "const n = document.querySelector('#map g.node[data-stage=\"placed\"]'); \
                       return n ? {status: n.dataset.status, pulse: n.classList.contains('pulse'), text: n.textContent} : null;";
    let node = browser
        .wait_for(Duration::from_secs(5), "the placed stage red and pulsing on the map", node_script, |n| {
            n["status"] == "red" && n["pulse"] == true
        })
        .await;
    assert!(node["text"].as_str().unwrap().contains("BREACHED"), "{node}");
    assert_legible(&browser, "the workflow page").await;
    browser.screenshot("workflow-map.png").await;

    // Acknowledge it from the strip, with a name and a reason.
    let ack = browser.client.find(Locator::Css(".alert[data-workflow=\"orders\"] button.ack")).await.unwrap();
    ack.click().await.unwrap();
    let form = browser.client.find(Locator::Css(".alert form")).await.unwrap();
    form.find(Locator::Css("input[name=by]")).await.unwrap().send_keys("ann").await.unwrap();
    form.find(Locator::Css("input[name=reason]")).await.unwrap().send_keys("calling the FX desk").await.unwrap();
    form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    browser
        .wait_for(Duration::from_secs(5), "the map node to stop pulsing", node_script, |n| {
            n["status"] == "red" && n["pulse"] == false
        })
        .await;
    // The command went through the API: the alert book has it.
    let alerts: Value = serde_json::from_str(&service.get("/api/v1/alerts?workflow=orders").unwrap()).unwrap();
    let states: Vec<&str> = alerts["alerts"].as_array().unwrap().iter().map(|a| a["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["acknowledged"], "{alerts}");

    // Back on the wallboard: still red, not pulsing, says who acknowledged.
    browser.client.goto(&service.url("/")).await.unwrap();
    let acked = browser
        .wait_for(Duration::from_secs(5), "a red tile acknowledged by ann", &tile_script("orders"), |t| {
            t["text"].as_str().is_some_and(|s| s.contains("acknowledged by ann"))
        })
        .await;
    assert_eq!((acked["status"].as_str(), acked["pulse"].as_bool()), (Some("red"), Some(false)), "{acked}");
    browser.close().await;
}

/// The map is laid out from the program, left to right (a stage right of
/// the stages it follows; the failure step drawn as such), and a stage
/// tile's oldest key opens that item's lifecycle: its hops, what it waits
/// for now, its payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_follows_the_program_and_a_tile_opens_an_items_lifecycle() {
    let _side_by_side = TIMING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let service = start_service(dir.path());
    let browser = Browser::open().await;
    send(
        &service,
        &[
            envelope("p1", "order_placed", json!({"order": "O-2001", "desk": "FX"})),
            envelope("r1", "order_routed", json!({"order": "O-2001"})),
            envelope("p2", "order_placed", json!({"order": "O-2002", "desk": "Rates"})),
            envelope("x2", "order_rejected", json!({"order": "O-2002"})),
        ],
    );
    browser.client.goto(&service.url("/workflows/orders")).await.unwrap();
    let nodes = browser
        .wait_for(
            Duration::from_secs(5),
            "four stages on the map, one item in flight in routed",
            "return [...document.querySelectorAll('#map g.node')].map(n => { const b = n.getBoundingClientRect(); \
             return {stage: n.dataset.stage, x: b.x, y: b.y, text: n.textContent}; })",
            |n| {
                n.as_array().is_some_and(|n| {
                    n.len() == 4
                        && n.iter().any(|n| {
                            n["stage"] == "routed" && n["text"].as_str().unwrap_or_default().contains("1 in flight")
                        })
                })
            },
        )
        .await;
    let x =
        |stage: &str| nodes.as_array().unwrap().iter().find(|n| n["stage"] == stage).unwrap()["x"].as_f64().unwrap();
    assert!(x("placed") < x("routed") && x("routed") < x("filled"), "not left to right: {nodes}");
    assert!(x("placed") < x("rejected"), "{nodes}");
    let failure =
        browser.eval("return [...document.querySelectorAll('#map g.edge.failure')].map(e => e.dataset.step)").await;
    assert_eq!(failure, json!(["rejected", "rejected"]), "the failure step leaves placed and routed");

    // The routed stage's tile names its oldest item; the link opens it.
    let link = browser
        .client
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(".stage[data-stage=\"routed\"] a.item-link"))
        .await
        .unwrap();
    assert_eq!(link.text().await.unwrap(), "O-2001");
    link.click().await.unwrap();
    let waits = browser
        .wait_for(
            Duration::from_secs(5),
            "the lifecycle's current state",
            "const w = document.getElementById('waits'); return w ? w.innerText : null",
            |w| w.as_str().is_some_and(|w| w.contains("filled")),
        )
        .await;
    assert!(waits.as_str().unwrap().contains("routed"), "{waits}");
    // The design brief's path for an item (the map itself was opened at
    // the first slice's `/workflows/orders`, which keeps working).
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/w/orders/i/O-2001");
    let hops = browser
        .eval("return [...document.querySelectorAll('table.hops tbody tr')].map(r => r.cells[0].innerText)")
        .await;
    assert_eq!(hops, json!(["placed", "routed"]));
    let payload = browser.eval("return document.querySelector('pre.payload').innerText").await;
    assert!(payload.as_str().unwrap().contains("O-2001"), "{payload}");
    assert_legible(&browser, "the lifecycle page").await;
    browser.screenshot("lifecycle.png").await;

    // The events page with no filter lists the latest events, newest first.
    browser.client.goto(&service.url("/events")).await.unwrap();
    let rows = browser
        .wait_for(
            Duration::from_secs(5),
            "the four events, newest first",
            "return [...document.querySelectorAll('table.events tbody tr')].map(r => r.cells[1].innerText)",
            |r| r.as_array().is_some_and(|r| r.len() == 4),
        )
        .await;
    assert_eq!(rows, json!(["order_rejected", "order_placed", "order_routed", "order_placed"]), "newest first");
    let older = browser.eval("return document.getElementById('older').innerText").await;
    assert_eq!(older, "No older event.", "one page holds them all");
    assert_legible(&browser, "the events page").await;
    browser.close().await;
}

/// The rule editor: an edit with an error shows the compiler's diagnostic
/// with its line; a valid edit is stored, diffed against the active
/// version, dry-run over pasted events, and activated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_edit_shows_its_diagnostic_then_dry_runs_and_activates() {
    let _side_by_side = TIMING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let service = start_service(dir.path());
    // The stored history a dry-run can replay.
    send(
        &service,
        &[
            envelope("h1", "order_placed", json!({"order": "H-1", "desk": "FX"})),
            envelope("h2", "order_routed", json!({"order": "H-1"})),
        ],
    );
    let browser = Browser::open().await;
    browser.client.goto(&service.url("/rules")).await.unwrap();
    browser
        .wait_for(
            Duration::from_secs(5),
            "the active rules in the editor",
            "const t = document.getElementById('rule-text'); return t ? t.value : null",
            |t| t.as_str().is_some_and(|t| t.contains("workflow orders")),
        )
        .await;
    // What typing does: change the text and raise `input`.
    let edit = |from: &str, to: &str| {
        format!(
            "const t = document.getElementById('rule-text'); t.value = t.value.replace({}, {}); \
             t.dispatchEvent(new Event('input')); return t.value;",
            json!(from),
            json!(to)
        )
    };
    let broken = browser.eval(&edit("step routed: order_routed after", "step routed: order_routd after")).await;
    let line = broken.as_str().unwrap().lines().position(|l| l.contains("order_routd")).unwrap() + 1;
    let diagnostics = browser
        .wait_for(
            Duration::from_secs(5),
            "the diagnostic of the typo",
            "return document.getElementById('diagnostics').innerText",
            |d| d.as_str().is_some_and(|d| d.contains("order_routd")),
        )
        .await;
    assert!(diagnostics.as_str().unwrap().contains(&format!("orders.mon:{line}:")), "no line {line}: {diagnostics}");
    assert!(diagnostics.as_str().unwrap().contains("error"), "{diagnostics}");
    assert_legible(&browser, "the rule editor").await;
    browser.screenshot("rule-editor.png").await;

    // Fixed, and the deadline made longer: no problem left.
    browser.eval(&edit("order_routd after placed within 3s", "order_routed after placed within 10s")).await;
    browser
        .wait_for(
            Duration::from_secs(5),
            "no diagnostics",
            "return document.getElementById('diagnostics').dataset.ok",
            |ok| ok == "true",
        )
        .await;
    let form = browser.client.find(Locator::Css("#rule-store")).await.unwrap();
    form.find(Locator::Css("input[name=message]")).await.unwrap().send_keys("routing may take 10s").await.unwrap();
    form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let stored = browser
        .wait_for(
            Duration::from_secs(5),
            "version 2 and its diff",
            "return document.getElementById('stored').innerText",
            |s| s.as_str().is_some_and(|s| s.contains("Version 2") && s.contains("within 10s")),
        )
        .await;
    assert!(stored.as_str().unwrap().contains("-  step routed: order_routed after placed within 3s"), "{stored}");

    // Dry-run: an order routed after 5 s is late under version 1 only.
    let at = |s: i64| mon_stdlib::time::format_rfc3339(1_772_438_400_000 + s * 1000);
    let events = [
        json!({"specversion": "1.0", "id": "d1", "source": "t", "type": "order_placed", "time": at(0), "data": {"order": "D-1", "desk": "FX"}}),
        json!({"specversion": "1.0", "id": "d2", "source": "t", "type": "order_routed", "time": at(5), "data": {"order": "D-1"}}),
    ]
    .map(|e| e.to_string())
    .join("\n");
    let dry_run = browser.client.find(Locator::Css("#dry-run")).await.unwrap();
    dry_run.find(Locator::Css("textarea[name=events]")).await.unwrap().send_keys(&events).await.unwrap();
    dry_run.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let result = browser
        .wait_for(
            Duration::from_secs(10),
            "the dry-run's result",
            "return document.getElementById('dry-run-result').innerText",
            |r| r.as_str().is_some_and(|r| r.contains("records")),
        )
        .await;
    let result = result.as_str().unwrap();
    assert!(result.contains("Over the pasted events: 2 lines, 0 rejected"), "{result}");
    assert!(result.contains("only with version 2"), "{result}");

    // The same version over the stored history: the two events sent above.
    browser.click("#dry-run-history").await;
    let result = browser
        .wait_for(
            Duration::from_secs(10),
            "the dry-run over the history",
            "return document.getElementById('dry-run-result').innerText",
            |r| r.as_str().is_some_and(|r| r.contains("Over the stored history")),
        )
        .await;
    assert!(result.as_str().unwrap().contains("Over the stored history: 2 lines, 0 rejected"), "{result}");

    let activate = browser.client.find(Locator::Css("#activate")).await.unwrap();
    activate.find(Locator::Css("input[name=message]")).await.unwrap().send_keys("reviewed").await.unwrap();
    activate.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    browser
        .wait_for(
            Duration::from_secs(10),
            "the activation",
            "return document.getElementById('activated').innerText",
            |a| a.as_str().is_some_and(|a| a.contains("Version 2 is active")),
        )
        .await;
    let versions: Value = serde_json::from_str(&service.get("/api/v1/rules/versions").unwrap()).unwrap();
    assert_eq!(versions["active"], 2, "{versions}");
    browser.close().await;
}

/// With auth on, the page holds no data: it asks for a token, keeps it for
/// the tab, and reads the API and the stream with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_on_the_page_asks_for_a_token_and_reads_with_it() {
    let _side_by_side = TIMING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = Command::new(env!("CARGO_BIN_EXE_mon"))
        .args(["token", "create", "--role", "viewer", "--name", "wall", "--state-dir"])
        .arg(&state)
        .output()
        .expect("mon token create");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let service = start_service_with(dir.path(), "[auth]\nenabled = true\n");
    let browser = Browser::open().await;
    browser.client.goto(&service.url("/")).await.unwrap();
    browser
        .wait_for(
            Duration::from_secs(5),
            "the sign-in dialog",
            "return document.getElementById('login').open",
            |open| open == true,
        )
        .await;
    assert_eq!(browser.eval("return document.querySelectorAll('.tile').length").await, 0, "tiles without a token");
    // A wrong token first: refused, asked again, with the API's reason.
    browser.client.find(Locator::Id("login-token")).await.unwrap().send_keys("mon_wrong").await.unwrap();
    browser.client.find(Locator::Css("#login-form button[type=submit]")).await.unwrap().click().await.unwrap();
    browser
        .wait_for(
            Duration::from_secs(5),
            "the refusal",
            "return document.getElementById('login').open && document.getElementById('login-error').innerText",
            |e| e.as_str().is_some_and(|e| e.contains("refused")),
        )
        .await;
    browser.eval("document.getElementById('login-token').value = ''; return null").await;
    browser.client.find(Locator::Id("login-token")).await.unwrap().send_keys(&token).await.unwrap();
    browser.client.find(Locator::Css("#login-form button[type=submit]")).await.unwrap().click().await.unwrap();
    browser
        .wait_for(
            Duration::from_secs(5),
            "the wallboard and the live stream",
            "return [document.querySelectorAll('.tile').length, document.getElementById('live').dataset.live]",
            |v| *v == json!([2, "true"]),
        )
        .await;
    assert_eq!(browser.eval("return sessionStorage.getItem('mon.token')").await, json!(token));

    // NOC mode: the same board, read-only, with the token the tab keeps.
    browser.client.goto(&service.url("/?board")).await.unwrap();
    browser
        .wait_for(
            Duration::from_secs(5),
            "the board in NOC mode",
            "return document.querySelectorAll('.tile').length",
            |n| *n == 2,
        )
        .await;
    let navigation = browser.eval("return getComputedStyle(document.querySelector('.top nav')).display").await;
    assert_eq!(navigation, "none", "NOC mode shows the navigation");
    browser.close().await;
}

/// The alert strip's other commands, from the browser: Unack puts the
/// pulse back, a suppressed alert says until when, by whom and why, and
/// Resolve takes it off the strip (each through the API: the alert book
/// says the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unack_restores_the_pulse_suppress_says_until_when_and_resolve_clears_the_strip() {
    let _side_by_side = TIMING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let service = start_service(dir.path());
    let browser = Browser::open().await;
    send(&service, &[envelope("p1", "order_placed", json!({"order": "O-3001", "desk": "FX"}))]);
    browser.client.goto(&service.url("/")).await.unwrap();
    let pulsing = |pulse: bool| move |t: &Value| t["status"] == "red" && t["pulse"] == pulse;
    browser
        .wait_for(ROUTED_WITHIN + Duration::from_secs(5), "a red, pulsing tile", &tile_script("orders"), pulsing(true))
        .await;

    browser.click(".alert[data-workflow=\"orders\"] button.ack").await;
    browser
        .fill_and_submit(".alert form", &[("input[name=by]", "ann"), ("input[name=reason]", "calling the FX desk")])
        .await;
    browser.wait_for(Duration::from_secs(5), "the pulse to stop", &tile_script("orders"), pulsing(false)).await;

    // Unack: the name is remembered; only the reason is asked.
    browser.click(".alert[data-workflow=\"orders\"] button.unack").await;
    let by = browser.eval("return document.querySelector('.alert form input[name=by]').value").await;
    assert_eq!(by, "ann");
    browser.fill_and_submit(".alert form", &[("input[name=reason]", "the desk does not answer")]).await;
    browser.wait_for(Duration::from_secs(5), "the pulse back", &tile_script("orders"), pulsing(true)).await;
    assert_eq!(order_alerts(&service)[0]["state"], "open");

    // Suppress for 15 minutes (the form's first choice).
    browser.click(".alert[data-workflow=\"orders\"] button.suppress").await;
    browser.fill_and_submit(".alert form", &[("input[name=reason]", "maintenance window")]).await;
    browser
        .wait_for(
            Duration::from_secs(5),
            "the suppression on the strip",
            "return document.getElementById('strip').innerText",
            |s| s.as_str().is_some_and(|s| s.contains("suppressed until")),
        )
        .await;
    let alert = &order_alerts(&service)[0];
    assert_eq!(alert["state"], "suppressed", "{alert}");
    let until = alert["suppressed_until"].as_str().expect("a suppression with an end");
    let said = format!("suppressed until {} UTC by ann (“maintenance window”)", &until[11..16]);
    let strip = browser.eval("return document.getElementById('strip').innerText").await;
    assert!(strip.as_str().unwrap().contains(&said), "{said} is not in {strip}");
    browser.wait_for(Duration::from_secs(5), "no pulse while suppressed", &tile_script("orders"), pulsing(false)).await;
    assert_legible(&browser, "the wallboard with a suppressed alert").await;

    // Resolve: off the strip; the alert book has it resolved.
    browser.click(".alert[data-workflow=\"orders\"] button.resolve").await;
    browser.fill_and_submit(".alert form", &[("input[name=reason]", "routed by hand")]).await;
    browser
        .wait_for(
            Duration::from_secs(5),
            "an empty strip",
            "return document.querySelectorAll('#strip .alert').length",
            |n| *n == 0,
        )
        .await;
    assert_eq!(order_alerts(&service)[0]["state"], "resolved");
    browser.close().await;
}

/// The rules page rolls back to the version that ran before (read back
/// from the API), lists the activations, and disables a workflow, which
/// the wallboard then shows grey and DISABLED, last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_and_a_disabled_workflow_from_the_rules_page() {
    let _side_by_side = TIMING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let service = start_service(dir.path());
    // Version 2, made and activated through the API.
    let first: Value = serde_json::from_str(&service.get("/api/v1/rules/versions/1").unwrap()).unwrap();
    let mut files = first["sources"].as_object().unwrap().clone();
    let (path, text) = files.iter().find(|(p, _)| p.ends_with(".mon")).map(|(p, t)| (p.clone(), t.clone())).unwrap();
    files.insert(path, json!(text.as_str().unwrap().replace("within 3s", "within 10s")));
    let (status, body) =
        service.post("/api/v1/rules/versions", &json!({"files": files, "message": "slower routing"}).to_string());
    assert_eq!(status, 201, "{body}");
    let (status, body) = service.post("/api/v1/rules/versions/2/activate", &json!({"message": "try it"}).to_string());
    assert_eq!(status, 200, "{body}");

    let browser = Browser::open().await;
    browser.client.goto(&service.url("/rules")).await.unwrap();
    let button = browser
        .wait_for(
            Duration::from_secs(5),
            "the rollback form",
            "const f = document.getElementById('rollback'); return f ? f.querySelector('button').innerText : null",
            |b| b.is_string(),
        )
        .await;
    assert_eq!(button, "Roll back to version 1");
    browser.fill_and_submit("#rollback", &[("input[name=message]", "10s hides real delays")]).await;
    browser
        .wait_for(
            Duration::from_secs(10),
            "the rollback",
            "const p = document.getElementById('rolled-back-to'); return p ? p.innerText : null",
            |p| p.as_str().is_some_and(|p| p.contains("version 1 is active")),
        )
        .await;
    let versions: Value = serde_json::from_str(&service.get("/api/v1/rules/versions").unwrap()).unwrap();
    assert_eq!(versions["active"], 1, "{versions}");
    let activations = browser
        .eval("return [...document.querySelectorAll('table.activations tbody tr')].map(r => r.cells[0].innerText)")
        .await;
    assert_eq!(activations, json!(["2 → 1", "1 → 2", "— → 1"]), "newest first, from → to");
    let editing = browser.eval("return document.querySelector('.view p').innerText").await;
    assert!(editing.as_str().unwrap().contains("version 1 (active)"), "{editing}");

    // Disable settlements, with a reason.
    browser
        .fill_and_submit("form.switch[data-workflow=\"settlements\"]", &[("input[name=reason]", "batch feed retired")])
        .await;
    browser
        .wait_for(
            Duration::from_secs(5),
            "settlements disabled",
            "const r = document.querySelector('#switches tr[data-workflow=\"settlements\"]'); \
             return r ? [r.dataset.enabled, r.innerText] : null",
            |r| r[0] == "false" && r[1].as_str().is_some_and(|t| t.contains("DISABLED") && t.contains("Enable")),
        )
        .await;
    // The workflow list follows once the processing thread has switched it.
    service::wait_until_true(Duration::from_secs(5), "settlements disabled in the API", || {
        let list: Value =
            serde_json::from_str(&service.get("/api/v1/workflows").unwrap_or_default()).unwrap_or_default();
        let enabled: Vec<(String, bool)> = list["workflows"]
            .as_array()
            .map(|w| w.iter().map(|w| (w["name"].as_str().unwrap_or("").to_string(), w["enabled"] == true)).collect())
            .unwrap_or_default();
        enabled == [("orders".to_string(), true), ("settlements".to_string(), false)]
    });
    assert_legible(&browser, "the rules page").await;
    browser.screenshot("rules.png").await;

    // Switched by someone else (through the API): the page follows the stream.
    let orders_enabled = "const r = document.querySelector('#switches tr[data-workflow=\"orders\"]'); \
                          return r ? r.dataset.enabled : null";
    let (status, body) = service.post("/api/v1/workflows/orders/disable", r#"{"reason": "elsewhere"}"#);
    assert_eq!(status, 200, "{body}");
    browser.wait_for(Duration::from_secs(5), "orders disabled on the page", orders_enabled, |e| e == "false").await;
    let (status, body) = service.post("/api/v1/workflows/orders/enable", r#"{"reason": "back"}"#);
    assert_eq!(status, 200, "{body}");
    browser.wait_for(Duration::from_secs(5), "orders enabled on the page", orders_enabled, |e| e == "true").await;

    // The wallboard: grey, the word DISABLED, not OK, after the others.
    send(&service, &[envelope("p1", "order_placed", json!({"order": "O-5001", "desk": "FX"}))]);
    browser.client.goto(&service.url("/")).await.unwrap();
    let tile = browser
        .wait_for(Duration::from_secs(5), "the disabled tile", &tile_script("settlements"), |t| {
            t["status"] == "disabled"
        })
        .await;
    let text = tile["text"].as_str().unwrap();
    assert!(text.contains("DISABLED") && !text.contains("OK"), "{text}");
    let order = browser.eval("return [...document.querySelectorAll('.tile')].map(t => t.dataset.workflow)").await;
    assert_eq!(order, json!(["orders", "settlements"]));
    assert_legible(&browser, "the wallboard with a disabled workflow").await;
    browser.close().await;
}

/// With auth on: the header says who is signed in and with which role,
/// and the page shows only what the role may do. A viewer sees no alert
/// action and the rules read-only; an operator (after signing out and in
/// again) sees Ack but still no rule change. With `[auth.oidc]` the
/// sign-in dialog says a JWT from its issuer works too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_says_who_is_signed_in_and_a_role_sees_only_its_actions() {
    let _side_by_side = TIMING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let viewer = create_token(&state, "viewer", "wall");
    let operator = create_token(&state, "operator", "ann");
    const ISSUER: &str = "https://idp.example.com/realms/ops";
    // The provider's keys are never fetched: no JWT is tried here.
    let service = start_service_with(
        dir.path(),
        &format!("[auth]\nenabled = true\n[auth.oidc]\nissuer = \"{ISSUER}\"\naudience = \"mon\"\njwks_url = \"http://127.0.0.1:9/certs\"\n"),
    );
    // The API first: who each token is, and what a refusal says.
    let (status, body) = call_as(&service, "", "GET", "/api/v1/whoami", None);
    let refused: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &refused["error"]["details"]["oidc_issuer"]), (401, &json!(ISSUER)), "{body}");
    let (status, body) = call_as(&service, &viewer, "GET", "/api/v1/whoami", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"name": "wall", "role": "viewer", "authentication": "token", "oidc_issuer": ISSUER})
    );
    let event = envelope("p1", "order_placed", json!({"order": "O-4001", "desk": "FX"}));
    let (status, body) = call_as(&service, &operator, "POST", "/api/v1/events", Some(&format!("[{event}]")));
    assert!(status == 200 || status == 202, "{status} {body}");

    let browser = Browser::open().await;
    browser.client.goto(&service.url("/")).await.unwrap();
    browser
        .wait_for(Duration::from_secs(5), "the sign-in dialog", "return document.getElementById('login').open", |o| {
            o == true
        })
        .await;
    let oidc =
        browser.eval("const p = document.getElementById('login-oidc'); return p.hidden ? null : p.innerText").await;
    assert!(oidc.as_str().is_some_and(|t| t.contains(ISSUER) && t.contains("JWT")), "{oidc}");
    browser.sign_in(&viewer).await;
    let who = browser
        .wait_for(
            Duration::from_secs(5),
            "the viewer in the header",
            "return document.getElementById('who').innerText",
            |w| w.as_str().is_some_and(|w| w.contains("wall")),
        )
        .await;
    assert!(who.as_str().unwrap().contains("wall · viewer") && who.as_str().unwrap().contains("Sign out"), "{who}");
    browser
        .wait_for(
            ROUTED_WITHIN + Duration::from_secs(5),
            "the alert on the strip",
            "return document.getElementById('strip').innerText",
            |s| s.as_str().is_some_and(|s| s.contains("O-4001")),
        )
        .await;
    let buttons = browser.eval("return document.querySelectorAll('#strip .alert button').length").await;
    assert_eq!(buttons, 0, "a viewer sees no alert action");
    assert_legible(&browser, "the wallboard of a viewer").await;

    browser.client.goto(&service.url("/rules")).await.unwrap();
    let editor = browser
        .wait_for(
            Duration::from_secs(5),
            "the rules, read-only",
            "const t = document.getElementById('rule-text'); return t && t.value ? {readonly: t.readOnly, \
             store: !!document.getElementById('rule-store'), rollback: !!document.getElementById('rollback'), \
             switches: document.querySelectorAll('form.switch').length, \
             workflows: document.querySelectorAll('#switches tbody tr').length, \
             note: (document.getElementById('read-only') || {}).innerText} : null",
            |e| e.is_object(),
        )
        .await;
    assert_eq!(
        editor,
        json!({"readonly": true, "store": false, "rollback": false, "switches": 0, "workflows": 2,
               "note": "Read-only: changing rules needs the editor role; you are viewer."})
    );
    assert_legible(&browser, "the rules page of a viewer").await;

    // Sign out: the token is forgotten and the dialog asks again.
    browser.click("#sign-out").await;
    browser.sign_in(&operator).await;
    assert_eq!(browser.eval("return sessionStorage.getItem('mon.token')").await, json!(operator));
    browser
        .wait_for(
            Duration::from_secs(5),
            "the operator in the header",
            "return document.getElementById('who').innerText",
            |w| w.as_str().is_some_and(|w| w.contains("ann · operator")),
        )
        .await;
    browser
        .wait_for(
            Duration::from_secs(5),
            "the rules page again",
            "const t = document.getElementById('rule-text'); return t ? t.value : ''",
            |t| t.as_str().is_some_and(|t| t.contains("workflow orders")),
        )
        .await;
    let rules = browser
        .eval("return [document.getElementById('rule-text').readOnly, !!document.getElementById('rule-store'), document.querySelectorAll('form.switch').length]")
        .await;
    assert_eq!(rules, json!([true, false, 0]), "an operator changes no rule");
    browser.client.goto(&service.url("/")).await.unwrap();
    let actions = browser
        .wait_for(
            Duration::from_secs(5),
            "the operator's actions",
            "return [...document.querySelectorAll('#strip .alert button')].map(b => b.innerText)",
            |b| b.as_array().is_some_and(|b| !b.is_empty()),
        )
        .await;
    assert_eq!(actions, json!(["Ack", "Suppress", "Resolve"]));
    browser.close().await;
}

/// An identity provider on loopback for the browser's sign-in: its
/// discovery document, an authorization endpoint that signs `olga` in at
/// once (sending the browser back with a code), a token endpoint that
/// checks the code's PKCE verifier against its challenge, and its key
/// set. Its answers allow any origin, as a provider does for a
/// single-page client. The access token is for another audience (as
/// Keycloak's often is), so the page must fall back to the ID token.
struct IdentityProvider {
    issuer: String,
    /// Codes exchanged with a verifier that matched their challenge.
    exchanged: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl IdentityProvider {
    /// Serves on the test's own runtime, until the test ends.
    async fn start() -> IdentityProvider {
        use axum::extract::{Query, Request};
        use axum::http::{header, StatusCode};
        use axum::response::IntoResponse;
        use std::collections::HashMap;
        use std::sync::atomic::Ordering;
        use std::sync::{Arc, Mutex};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let pem = std::fs::read(format!("{}/tests/fixtures/oidc/rsa-a.pem", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).unwrap();
        jwk.common.key_id = Some("key-a".into());
        let jwks = json!({ "keys": [jwk] });
        let sign = {
            let issuer = issuer.clone();
            move |audience: &str| {
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                header.kid = Some("key-a".into());
                let now = service::now_ms() / 1000;
                let claims = json!({"iss": issuer, "aud": audience, "sub": "id-olga", "preferred_username": "olga",
                                    "mon_role": "operator", "iat": now, "exp": now + 300});
                jsonwebtoken::encode(&header, &claims, &key).unwrap()
            }
        };
        // Code -> (challenge, redirect_uri) of the sign-ins under way.
        let pending: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
        let exchanged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        fn any_origin() -> [(header::HeaderName, &'static str); 1] {
            [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")]
        }
        let discovery = json!({
            "issuer": issuer, "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
        });
        let authorize = {
            let pending = pending.clone();
            move |Query(query): Query<HashMap<String, String>>| {
                let pending = pending.clone();
                async move {
                    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
                    assert_eq!(
                        (
                            field("response_type").as_str(),
                            field("client_id").as_str(),
                            field("code_challenge_method").as_str()
                        ),
                        ("code", "mon", "S256"),
                        "{query:?}"
                    );
                    let code = format!("code-{}", pending.lock().unwrap().len() + 1);
                    pending.lock().unwrap().insert(code.clone(), (field("code_challenge"), field("redirect_uri")));
                    let back = format!("{}?code={code}&state={}", field("redirect_uri"), field("state"));
                    (StatusCode::FOUND, [(header::LOCATION, back)]).into_response()
                }
            }
        };
        let token = {
            let (pending, exchanged) = (pending.clone(), exchanged.clone());
            move |request: Request| {
                let (pending, exchanged, sign) = (pending.clone(), exchanged.clone(), sign.clone());
                async move {
                    let body = axum::body::to_bytes(request.into_body(), 10_000).await.unwrap_or_default();
                    let uri: axum::http::Uri = format!("/?{}", String::from_utf8_lossy(&body)).parse().unwrap();
                    let Query(form) = Query::<HashMap<String, String>>::try_from_uri(&uri).unwrap();
                    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
                    let expected = pending.lock().unwrap().remove(&field("code"));
                    let challenge = {
                        use base64::Engine;
                        use sha2::Digest;
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(sha2::Sha256::digest(field("code_verifier").as_bytes()))
                    };
                    let grant = field("grant_type") == "authorization_code" && field("client_id") == "mon";
                    if !grant || expected != Some((challenge, field("redirect_uri"))) {
                        return (StatusCode::BAD_REQUEST, any_origin(), axum::Json(json!({"error": "invalid_grant"})))
                            .into_response();
                    }
                    exchanged.fetch_add(1, Ordering::SeqCst);
                    let tokens =
                        json!({"token_type": "Bearer", "access_token": sign("account"), "id_token": sign("mon")});
                    (any_origin(), axum::Json(tokens)).into_response()
                }
            }
        };
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { (any_origin(), axum::Json(discovery)) }),
            )
            .route("/authorize", axum::routing::get(authorize))
            .route("/token", axum::routing::post(token))
            .route("/jwks", axum::routing::get(move || async move { axum::Json(jwks) }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        IdentityProvider { issuer, exchanged }
    }
}

/// Signing in at the identity provider from the sign-in dialog: the
/// browser goes to the provider and back with a code, exchanges it with
/// its PKCE verifier, keeps the token the API takes (the ID token: the
/// access token is for another audience), and lands signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_at_the_identity_provider_with_pkce() {
    let _side_by_side = TIMING.read().await;
    let provider = IdentityProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let issuer = provider.issuer.clone();
    let service = start_service_with(
        dir.path(),
        &format!("[auth]\nenabled = true\n[auth.oidc]\nissuer = \"{issuer}\"\naudience = \"mon\"\njwks_url = \"{issuer}/jwks\"\n"),
    );
    let browser = Browser::open().await;
    browser.client.goto(&service.url("/rules")).await.unwrap();
    browser
        .wait_for(
            Duration::from_secs(5),
            "the provider's sign-in button",
            "return document.getElementById('login-oidc-redirect').hidden",
            |h| h == false,
        )
        .await;
    browser.click("#login-oidc-button").await;
    let who = browser
        .wait_for(
            Duration::from_secs(10),
            "signed in as olga",
            "const w = document.getElementById('who'); return w ? w.innerText : null",
            |w| w.as_str().is_some_and(|w| w.contains("olga")),
        )
        .await;
    assert!(who.as_str().unwrap().contains("olga · operator"), "{who}");
    assert_eq!(
        provider.exchanged.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one code, exchanged with its verifier"
    );
    // Back where the sign-in started, reading with the provider's ID token.
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/rules");
    browser
        .wait_for(
            Duration::from_secs(5),
            "the rules",
            "const t = document.getElementById('rule-text'); return t ? t.value : ''",
            |t| t.as_str().is_some_and(|t| t.contains("workflow orders")),
        )
        .await;
    let token = browser.eval("return sessionStorage.getItem('mon.token')").await;
    let token = token.as_str().expect("a token kept for the tab").to_string();
    let (status, body) = call_as(&service, &token, "GET", "/api/v1/whoami", None);
    assert_eq!(status, 200, "{body}");
    let me: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((me["name"].as_str(), me["authentication"].as_str()), (Some("olga"), Some("oidc")), "{me}");
    assert_eq!(browser.eval("return sessionStorage.getItem('mon.oidc')").await, Value::Null, "the verifier is gone");
    browser.close().await;
}

/// The wallboard's update budget: with 50 workflows, 500 groups and
/// `UI_BUDGET_ITEMS` items in flight (default 10,000, to keep `cargo test`
/// quick; the issue's figure is 100,000:
/// `UI_BUDGET_ITEMS=100000 cargo test -p mon --test ui_browser budget -- --nocapture`),
/// applying a streamed status update (script, style and layout) takes
/// under 200 ms in the browser. The page sees the API's aggregates, not
/// the items, so the item count loads the service, not the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallboard_update_of_50_workflows_stays_within_its_budget() {
    let _alone = TIMING.write().await;
    const WORKFLOWS: usize = 50;
    const GROUPS_PER_WORKFLOW: usize = 10;
    let items: usize = std::env::var("UI_BUDGET_ITEMS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let mut text = String::new();
    for w in 0..WORKFLOWS {
        text.push_str(&format!(
            "event s{w} {{ id: string, desk: string }}\nevent d{w} {{ id: string }}\n\
             workflow flow_{w:02} {{\n  key id\n  group by desk\n  start started: s{w}\n  step done: d{w} after started within 1h\n}}\n"
        ));
    }
    std::fs::write(rules.join("flows.mon"), text).unwrap();
    let service = Service::start(
        &["--state-dir", &dir.path().join("state").display().to_string(), &rules.display().to_string()],
        &dir.path().join("service.log"),
    );
    let time = mon_stdlib::time::format_rfc3339(service::now_ms());
    let events: Vec<String> = (0..items)
        .map(|i| {
            let (w, desk) = (i % WORKFLOWS, (i / WORKFLOWS) % GROUPS_PER_WORKFLOW);
            format!(
                r#"{{"specversion":"1.0","id":"e{i}","source":"t","type":"s{w}","time":"{time}","data":{{"id":"K{i}","desk":"D{desk}"}}}}"#
            )
        })
        .collect();
    for batch in events.chunks(5000) {
        send(&service, batch);
    }
    service::wait_until_true(Duration::from_secs(300), "every item in flight", || {
        service.get("/api/v1/workflows").and_then(|body| serde_json::from_str::<Value>(&body).ok()).is_some_and(
            |list| {
                list["workflows"].as_array().is_some_and(|w| {
                    w.iter().map(|w| w["counts"]["in_flight"].as_u64().unwrap_or(0)).sum::<u64>() == items as u64
                })
            },
        )
    });

    // Items complete while the page watches: each changes the counts, so
    // the stream sends a status update (at most about one a second).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (stop, url, time) = (stop.clone(), service.url("/api/v1/events"), time.clone());
        std::thread::spawn(move || {
            for i in 0..items {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let event = format!(
                    r#"{{"specversion":"1.0","id":"d{i}","source":"t","type":"d{}","time":"{time}","data":{{"id":"K{i}"}}}}"#,
                    i % WORKFLOWS
                );
                let _ = ureq::post(&url).send(event.as_str());
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let browser = Browser::open().await;
    browser.client.goto(&service.url("/")).await.unwrap();
    let times = browser
        .wait_for(Duration::from_secs(15), "five streamed updates", "return window.monUpdateTimes || []", |t| {
            t.as_array().is_some_and(|t| t.len() >= 5)
        })
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();
    let tiles = browser.eval("return document.querySelectorAll('.tile').length").await;
    assert_eq!(tiles, WORKFLOWS, "tiles on the board");
    let mut sorted: Vec<f64> = times.as_array().unwrap().iter().filter_map(Value::as_f64).collect();
    sorted.sort_by(f64::total_cmp);
    let (median, slowest) = (sorted[sorted.len() / 2], sorted[sorted.len() - 1]);
    println!(
        "{WORKFLOWS} workflows, {} groups, {items} items in flight: updates took {median:.1} ms (median), \
         {slowest:.1} ms (slowest) of {times}",
        WORKFLOWS * GROUPS_PER_WORKFLOW
    );
    // The median holds the budget; the slowest may meet a machine busy
    // with other work, so it is only held to what no busy machine excuses.
    assert!(median < 200.0, "the median update took {median:.1} ms: {times}");
    assert!(slowest < 500.0, "an update took {slowest:.1} ms: {times}");
    browser.close().await;
}
