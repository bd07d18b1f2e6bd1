//! mon's own health on the page, in a real browser (Debian's headless
//! Chromium over WebDriver): a service that cannot reach Kafka says, under
//! the header of every page, that it is not seeing everything and why; a
//! service whose producer does not key by item says that too, naming the
//! item and both partitions (real broker). While mon is not ready, the
//! header says "● not monitoring" instead of "● live" and the board's
//! tiles are greyed; the active process of a fail-over group with no
//! standby says so in amber; the page opened through a standby shows the
//! active process's health. Every text is measured for 7:1 contrast and
//! 16 px. Writes `docs/screenshots/health.png` and `not-monitoring.png`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/service.rs"]
mod service;

use std::time::Duration;

use browser::{assert_legible, Browser};
use serde_json::Value;
use service::{now_ms, wait_until_true, Service};

/// A job event as a Kafka message's payload.
fn job(kind: &str, job: &str, time: i64) -> Vec<u8> {
    service::job_event(kind, job, time).into_bytes()
}

async fn health_lines(browser: &Browser, wanted: usize) -> Vec<(String, String)> {
    let lines = browser
        .wait_for(
            Duration::from_secs(20),
            "the health strip",
            "return [...document.querySelectorAll('#health .health-line')].map(l => [l.className, l.innerText])",
            |lines| lines.as_array().is_some_and(|l| l.len() == wanted),
        )
        .await;
    lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l[0].as_str().unwrap().to_string(), l[1].as_str().unwrap().to_string()))
        .collect()
}

/// What the page shows of whether mon monitors.
const LOOK: &str = "
  const live = document.getElementById('live');
  const tile = document.querySelector('.board .tile');
  const board = document.querySelector('.board');
  return {
    monitoring: document.body.dataset.monitoring || null,
    header: document.getElementById('not-monitoring').innerText,
    live_shown: live.getClientRects().length > 0,
    tile_border: tile ? getComputedStyle(tile).borderLeftStyle : null,
    note: board ? getComputedStyle(board, '::before').content : null,
  };
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_when_mon_is_not_seeing_everything() {
    let dir = tempfile::tempdir().unwrap();
    let rules = service::write_job_rules(dir.path(), "1h");

    // Kafka out of reach: not ready, and the page says why.
    let away = dir.path().join("away.toml");
    std::fs::write(&away, "[kafka]\nbrokers = \"127.0.0.1:1\"\ntopics = [\"jobs\"]\ngroup = \"away\"\n").unwrap();
    let state = dir.path().join("away-state");
    let blind = Service::spawn(
        &["--config", away.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), rules.to_str().unwrap()],
        &dir.path().join("away.log"),
    );
    let browser = Browser::open().await;
    browser.client.goto(&blind.url("/")).await.unwrap();
    let lines = health_lines(&browser, 1).await;
    assert_eq!(lines[0].0, "health-line down", "{lines:?}");
    assert!(lines[0].1.starts_with("✖ mon is not seeing everything: no Kafka partitions assigned"), "{lines:?}");
    // Its event stream is live, but mon sees nothing: the header does not
    // say "live", and the board is greyed with a note saying why.
    let look = browser
        .wait_for(Duration::from_secs(10), "the board greyed", LOOK, |look| {
            look["monitoring"] == "false" && look["tile_border"] == "dashed"
        })
        .await;
    assert_eq!(look["header"], "● not monitoring", "{look}");
    assert_eq!(look["live_shown"], false, "{look}");
    assert!(look["note"].as_str().unwrap().contains("Not monitoring"), "{look}");
    assert_legible(&browser, "the wallboard while not monitoring").await;
    browser.screenshot("not-monitoring.png").await;
    blind.terminate();

    // A producer that does not key by item: J1 starts on partition 0 and
    // ends on partition 1.
    let brokers = kafka::brokers();
    let (topic, records, dead) = kafka::topic_set("ui-health", 2);
    let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic);
    // With fail-over and no standby: after the grace period it says that
    // no one would take over.
    let text =
        std::fs::read_to_string(&config).unwrap().replace("[kafka.properties]", "failover = true\n[kafka.properties]");
    std::fs::write(&config, text).unwrap();
    let state = dir.path().join("state");
    let service = Service::start(
        &["--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), rules.to_str().unwrap()],
        &dir.path().join("mon.log"),
    );
    let t = now_ms();
    kafka::produce_to(&topic, Some(0), [(None, job("job_started", "J1", t), Vec::new())]);
    wait_until_true(Duration::from_secs(30), "the start accepted", || service.metric_sum("mon_events_total") >= 1.0);
    kafka::produce_to(&topic, Some(1), [(None, job("job_done", "J1", t + 1), Vec::new())]);
    wait_until_true(Duration::from_secs(30), "the split counted", || {
        service.metric("mon_split_key_events_total") == Some(1.0)
    });
    browser.client.goto(&service.url("/")).await.unwrap();
    let lines = health_lines(&browser, 2).await;
    assert_eq!(lines[1].0, "health-line warn", "{lines:?}");
    let group = &topic;
    assert_eq!(
        lines[1].1,
        format!(
            "▲ No standby: no other process of the group {group} is waiting to take over. If this one stops, \
             monitoring stops until another one is started (mon run --failover)."
        ),
        "{lines:?}"
    );
    assert_eq!(service.metric("mon_standbys_alive"), Some(0.0));
    let look = browser.eval(LOOK).await;
    assert_eq!(look["monitoring"], "true", "ready again: {look}");
    assert_eq!(look["live_shown"], true, "{look}");
    assert_eq!(look["tile_border"], "solid", "{look}");
    assert_eq!(lines[0].0, "health-line warn", "{lines:?}");
    let text = &lines[0].1;
    assert!(text.starts_with("▲ A producer does not key its messages by item: 1 event(s)"), "{text}");
    assert!(text.contains("jobs J1, started on partition 0 and had an event on partition 1"), "{text}");
    let status: Value = serde_json::from_str(&service.get("/api/v1/status").unwrap()).unwrap();
    let at = status["split_keys"]["last"]["at"].as_str().unwrap();
    assert!(text.contains(&format!("at {} UTC.", &at[11..19])), "the event's time, as the pages write it: {text}");
    assert_legible(&browser, "the wallboard with a health warning").await;
    browser.screenshot("health.png").await;

    // Through a standby of the group, the page shows the group: the
    // active process's readiness and warnings, not "a standby". The "no
    // standby" line goes once the active process hears of this one.
    let standby_state = dir.path().join("standby");
    let standby = Service::spawn(
        &[
            "--config",
            config.to_str().unwrap(),
            "--state-dir",
            standby_state.to_str().unwrap(),
            rules.to_str().unwrap(),
        ],
        &dir.path().join("mon.log"),
    );
    wait_until_true(Duration::from_secs(30), "the standby passing requests on", || {
        standby.get("/api/v1/group").is_some()
    });
    assert_eq!(standby.get_any("/readyz").map(|(status, _)| status), Some(503), "a probe still sees a standby");
    browser.client.goto(&standby.url("/")).await.unwrap();
    let through = health_lines(&browser, 1).await;
    assert_eq!(through[0], lines[0], "the active process's warning, through the standby");
    let look = browser.eval(LOOK).await;
    assert_eq!(look["monitoring"], "true", "the group monitors: {look}");
    assert_eq!(look["live_shown"], true, "{look}");
    browser.close().await;
    standby.terminate();
    service.terminate();
}
