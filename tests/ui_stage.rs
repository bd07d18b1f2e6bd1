//! The stage page and the trend charts in a real browser: Debian's
//! headless Chromium over WebDriver (chromedriver, `fantoccini`) against a
//! real `mon run`, fed over HTTP on the event clock, so that an hour of
//! history, a planted stalled item and a drop in a stage's rate are exact
//! and take no waiting. The stage page lists the stalled item first, with
//! its overdue deadline, and opens its lifecycle; the stage's chart shows
//! the drop as a labelled band; the workflow page draws one chart per stage
//! and its tiles link to the stage page. Every text is measured for 7:1
//! contrast and 16 px. Writes `docs/screenshots/stage.png` and
//! `workflow-trends.png`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/service.rs"]
mod service;

use std::path::Path;
use std::time::Duration;

use browser::{assert_legible, Browser};
use fantoccini::Locator;
use serde_json::{json, Value};
use service::Service;

const RULES: &str = r#"
event order_placed { order: string, desk: string }
event order_routed { order: string }

/// Orders from placement to routing.
workflow orders {
  key order
  group by desk
  severity high
  aging 1m, 5m
  start placed: order_placed
  step routed: order_routed after placed within 3m -> success
}
"#;

/// 2026-03-02T08:00:00Z.
const T0: i64 = 1_772_438_400_000;
const MINUTE: i64 = 60_000;

/// `mon run --clock event` with RULES.
fn start_service(dir: &Path) -> Service {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("orders.mon"), RULES).unwrap();
    let config = dir.join("mon.toml");
    std::fs::write(&config, "[notify]\ndeliver = \"log\"\n").unwrap();
    let (config, state) = (config.display().to_string(), dir.join("state").display().to_string());
    Service::start(
        &["--config", &config, "--state-dir", &state, "--clock", "event", &rules.display().to_string()],
        &dir.join("service.log"),
    )
}

fn event(id: &str, kind: &str, order: &str, desk: &str, at: i64) -> String {
    json!({
        "specversion": "1.0", "id": id, "source": "ui-test", "type": kind,
        "time": mon_stdlib::time::format_rfc3339(at), "data": { "order": order, "desk": desk },
    })
    .to_string()
}

/// An hour at 6 orders a minute, each routed 30 s later; then 4 minutes
/// at 1 a minute (a drop); O-STUCK placed at 08:50 and never routed (due
/// 08:53: missing), O-LATE placed at 09:02 (due 09:05). The last event,
/// at 09:03:30, sets the clock.
fn history() -> Vec<String> {
    let mut lines = Vec::new();
    for minute in 0..64 {
        let per_minute = if minute < 60 { 6 } else { 1 };
        for n in 0..per_minute {
            let (order, at) = (format!("O-{minute:02}-{n}"), T0 + minute * MINUTE + n * 5_000);
            lines.push(event(&format!("p{order}"), "order_placed", &order, "FX", at));
            lines.push(event(&format!("r{order}"), "order_routed", &order, "FX", at + 30_000));
        }
    }
    lines.push(event("p-stuck", "order_placed", "O-STUCK", "EQ", T0 + 50 * MINUTE));
    lines.push(event("p-late", "order_placed", "O-LATE", "EQ", T0 + 62 * MINUTE));
    lines.sort_by_key(|l| serde_json::from_str::<Value>(l).unwrap()["time"].as_str().unwrap().to_string());
    lines
}

fn send(service: &Service, lines: &[String]) {
    let (status, body) = service.post("/api/v1/events", &lines.join("\n"));
    assert_eq!(status, 200, "POST /api/v1/events: {body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["rejected"], json!([]), "{reply}");
}

/// The stage page: the stalled item first, overdue and missing, its age
/// and time left; the drop labelled on the stage's chart; the item opens
/// its lifecycle. Then the workflow page: a chart per stage, the drop
/// named on the `placed` tile, and the tile's name opens the stage page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stage_page_lists_the_stalled_item_first_and_charts_the_drop() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_service(dir.path());
    send(&service, &history());
    let browser = Browser::open().await;
    browser.client.goto(&service.url("/w/orders/s/placed")).await.unwrap();
    let rows = browser
        .wait_for(
            Duration::from_secs(10),
            "the stage's items",
            "return [...document.querySelectorAll('table.stage-items tbody tr')].map(r => [...r.cells].map(c => c.innerText))",
            |rows| rows.as_array().is_some_and(|r| r.len() == 2),
        )
        .await;
    let rows = rows.as_array().unwrap();
    let cell = |row: usize, col: usize| rows[row][col].as_str().unwrap().to_string();
    assert_eq!((cell(0, 0), cell(1, 0)), ("O-STUCK".to_string(), "O-LATE".to_string()), "oldest first: {rows:?}");
    assert_eq!((cell(0, 1), cell(0, 2)), ("EQ".to_string(), "08:50:00 UTC".to_string()));
    assert_eq!(cell(0, 4), "routed by 08:53:00 UTC");
    assert!(cell(0, 5).starts_with("overdue by 00:10:") && cell(0, 5).ends_with("MISSING"), "{rows:?}");
    assert!(
        cell(1, 5).starts_with("00:01:") && cell(1, 5).ends_with("left"),
        "due 09:05, the clock 09:03:30: {rows:?}"
    );
    let heading = browser.eval("return document.getElementById('waiting').innerText").await;
    assert!(heading.as_str().unwrap().contains("(2 in flight)"), "{heading}");
    // The drop: a band with its word over the chart, and a line in words.
    let band = browser
        .wait_for(
            Duration::from_secs(5),
            "the drop's band on the stage chart",
            "const b = document.querySelector('#stage-trend .anomaly[data-kind=\"drop\"]'); \
             return b ? {label: b.innerText, width: b.getBoundingClientRect().width} : null",
            |b| !b.is_null(),
        )
        .await;
    assert_eq!(band["label"], "DROP");
    assert!(band["width"].as_f64().unwrap() > 10.0, "the band covers its minutes: {band}");
    let line = browser.eval("return document.querySelector('#stage-trend .anomaly-line').innerText").await;
    let line = line.as_str().unwrap();
    assert!(line.starts_with("DROP 09:00:00–09:04:00 UTC") && line.contains("entered/minute against"), "{line}");
    // Per group: EQ (the two items in flight) first, then FX, whose rate
    // made the drop; EQ's two entries an hour are no baseline to judge.
    let groups = browser
        .wait_for(
            Duration::from_secs(5),
            "a chart per group, FX's with its drop",
            "return [...document.querySelectorAll('.group-trend')].map(g => \
               [g.dataset.group, [...g.querySelectorAll('.anomaly')].map(a => a.dataset.kind).join(',')])",
            |g| g == &json!([["EQ", ""], ["FX", "drop"]]),
        )
        .await;
    assert_eq!(groups[1][1], "drop");
    assert_legible(&browser, "the stage page").await;
    browser.screenshot("stage.png").await;

    let link = browser.client.find(Locator::Css("table.stage-items tbody tr:first-child a.item-link")).await.unwrap();
    link.click().await.unwrap();
    let hops = browser
        .wait_for(
            Duration::from_secs(10),
            "O-STUCK's lifecycle",
            "return [...document.querySelectorAll('table.hops tbody tr')].map(r => r.cells[0].innerText)",
            |hops| hops.as_array().is_some_and(|h| !h.is_empty()),
        )
        .await;
    assert_eq!(hops, json!(["placed"]));
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/w/orders/i/O-STUCK");

    browser.client.goto(&service.url("/w/orders")).await.unwrap();
    let note = browser
        .wait_for(
            Duration::from_secs(10),
            "a chart per stage, the drop named on placed's",
            "const charts = document.querySelectorAll('.stage .stage-chart .chart canvas').length; \
             const note = document.querySelector('.stage[data-stage=\"placed\"] .anomaly-note'); \
             return {charts, note: note ? note.innerText : null}",
            |v| v["charts"] == 2 && !v["note"].is_null(),
        )
        .await;
    assert!(note["note"].as_str().unwrap().starts_with("DROP 09:00:00–09:04:00 UTC"), "{note}");
    assert_legible(&browser, "the workflow page with charts").await;
    // The stage tiles and their charts are below the map: in view for
    // the screenshot.
    browser.eval("document.querySelector('.stages').scrollIntoView(); return null").await;
    browser.screenshot("workflow-trends.png").await;
    let link = browser.client.find(Locator::Css(".stage[data-stage=\"placed\"] h3 a")).await.unwrap();
    link.click().await.unwrap();
    browser
        .wait_for(Duration::from_secs(10), "the stage page from the tile", "return location.pathname", |p| {
            p == "/w/orders/s/placed"
        })
        .await;
    browser.close().await;
    service.terminate();
}
