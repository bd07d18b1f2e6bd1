//! The status and trends API of `mon run` and its event stream, over real
//! HTTP, on a real state directory, on the event clock (events posted over
//! HTTP set the time): the workflow list and a workflow's stages with the
//! reason a red one is red, groups a page at a time, the countdown to a
//! `by 08:00` deadline, per-minute rollups and their compaction to hours,
//! the baseline, and the server-sent-events stream read with reqwest.

#[path = "support/service.rs"]
mod service;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use service::Service;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

/// `mon run --clock event` on `rules`, notifications to the log.
fn start(dir: &Path, rules: &Path, extra_config: &str, extra_args: &[&str]) -> Service {
    let config = dir.join("mon.toml");
    let text = format!("[alerts]\ngroup_wait_ms = 100\n[notify]\ndeliver = \"log\"\n{extra_config}");
    std::fs::write(&config, text).unwrap();
    let state = dir.join("state");
    let mut args = vec![
        "--config".to_string(),
        config.display().to_string(),
        "--state-dir".to_string(),
        state.display().to_string(),
        "--clock".to_string(),
        "event".to_string(),
    ];
    args.extend(extra_args.iter().map(|a| a.to_string()));
    args.push(rules.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Service::start(&args, &dir.join("mon.log"))
}

fn get_json(service: &Service, path: &str) -> (u16, Value) {
    let (status, body) = service.get_any(path).expect("GET");
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path} gave no JSON: {body}")))
}

fn post_events(service: &Service, body: &str) {
    let (status, reply) = service.post("/api/v1/events", body);
    assert_eq!(status, 200, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["rejected"], serde_json::json!([]), "{reply}");
}

/// Polls `path` until `check` accepts its JSON (the views are rebuilt
/// about once a second).
fn wait_json(service: &Service, path: &str, mut check: impl FnMut(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (status, value) = get_json(service, path);
        if status == 200 && check(&value) {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{path} never matched; last: {value}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn workflow<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {list}"))
}

fn sum(points: &Value, field: &str) -> f64 {
    points.as_array().unwrap().iter().map(|p| p[field].as_f64().unwrap()).sum()
}

/// One server-sent event: its name, id and data.
#[derive(Debug)]
struct Sse {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads server-sent events from a streaming reqwest body until `want`
/// has seen what it needs, or the time is up.
async fn read_events(
    response: &mut reqwest::Response,
    limit: Duration,
    mut want: impl FnMut(&Sse) -> bool,
) -> Vec<Sse> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await;
        let Ok(Ok(Some(bytes))) = chunk else {
            panic!("the stream ended or stalled before the wanted events; got {events:?}")
        };
        buffer.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::new(), None, String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if event.is_empty() {
                continue; // a keep-alive comment
            }
            let sse = Sse { event, id, data: serde_json::from_str(&data).unwrap_or(Value::Null) };
            let done = want(&sse);
            events.push(sse);
            if done {
                return events;
            }
        }
    }
}

/// The grouped-metrics example posted over HTTP: the list says which
/// workflows are red and why (the rule, the count, the oldest key, the
/// same key the `missing` record names), the detail lists the stages in
/// program order with the graph, groups page to the same totals, unknown
/// names are 404s in the error shape, the stream delivers a status and an
/// alert event, and per-minute rollups add up to the counts.
#[test]
fn workflows_say_why_page_groups_stream_changes_and_roll_up_per_minute() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), &example("grouped_metrics"), "", &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut stream = runtime.block_on(async {
        let response = reqwest::get(service.url("/api/v1/stream")).await.expect("GET /api/v1/stream");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        response
    });
    // The stream opens with the current list, before any event.
    let opening = runtime.block_on(read_events(&mut stream, Duration::from_secs(10), |e| e.event == "status"));
    assert_eq!(opening[0].data["workflows"][0]["counts"]["entered"], 0, "{:?}", opening[0]);

    let events = std::fs::read_to_string(example("grouped_metrics").join("events.ndjson")).unwrap();
    post_events(&service, &events);

    // The stream: a status event with the new counts, and an alert event.
    let (mut saw_status, mut saw_alert) = (false, false);
    let streamed = runtime.block_on(read_events(&mut stream, Duration::from_secs(15), |e| {
        match e.event.as_str() {
            "status" => saw_status |= e.data["workflows"][0]["counts"]["entered"].as_u64() > Some(0),
            "alert" => saw_alert |= e.data["alerts"].as_array().is_some_and(|a| !a.is_empty()),
            _ => {}
        }
        saw_status && saw_alert
    }));
    let ids: Vec<u64> = streamed.iter().filter_map(|e| e.id.as_deref()?.parse().ok()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && !ids.is_empty(), "event ids rise: {ids:?}");
    let alert = streamed.iter().find(|e| e.event == "alert").unwrap();
    assert!(alert.data["alerts"][0]["workflow"].is_string(), "{:?}", alert.data);

    // The list: order_flow is red because an order is missing.
    let list = wait_json(&service, "/api/v1/workflows", |l| workflow(l, "order_flow")["counts"]["missing"] != 0);
    let orders = workflow(&list, "order_flow");
    assert_eq!((&orders["status"], &orders["enabled"]), (&Value::from("red"), &Value::from(true)), "{orders}");
    assert_eq!(orders["rule"], "missing > 0 or aged(15m) > 10");
    let (_, records) = get_json(&service, "/api/v1/records?kind=missing&workflow=order_flow");
    let (_, late) = get_json(&service, "/api/v1/records?kind=late&workflow=order_flow");
    let late_keys: Vec<&Value> = late["records"].as_array().unwrap().iter().map(|r| &r["key"]["order_id"]).collect();
    // The missing record of an item that has not turned up late since.
    let still_missing: Vec<&str> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["key"]["order_id"])
        .filter(|k| !late_keys.contains(k))
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(orders["counts"]["missing"], still_missing.len(), "{orders} vs {records}");
    let reason = orders["reason"].as_str().unwrap();
    assert!(reason.starts_with("red: `missing > 0 or aged(15m) > 10` holds: "), "{reason}");
    assert!(reason.contains(&format!("{} missing (oldest {}", still_missing.len(), still_missing[0])), "{reason}");
    let confirmations = workflow(&list, "trade_confirmation");
    if confirmations["status"] == "green" {
        assert!(confirmations["reason"].is_null() && confirmations["worst_stage"].is_null(), "{confirmations}");
    }

    // The detail: stages in program order, the red one says why, the graph.
    let (status, detail) = get_json(&service, "/api/v1/workflows/order_flow");
    assert_eq!(status, 200, "{detail}");
    let stages: Vec<&str> = detail["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["placed", "routed", "filled", "cancelled", "rejected", "booked"]);
    let worst = detail["worst_stage"].as_str().unwrap();
    let red = detail["stages"].as_array().unwrap().iter().find(|s| s["name"] == worst).unwrap();
    assert_eq!(red["status"], "red", "{red}");
    assert!(red["reason"].as_str().unwrap().contains(still_missing[0]), "{red}");
    let buckets: Vec<u64> = red["aging"].as_array().unwrap().iter().map(|b| b["items"].as_u64().unwrap()).collect();
    assert!(buckets.iter().sum::<u64>() <= red["counts"]["in_flight"].as_u64().unwrap(), "{red}");
    assert_eq!(red["aging"][0]["from_ms"], 60_000);
    assert!(red["oldest"]["age_ms"].as_i64().unwrap() > 0, "{red}");
    let booked = detail["graph"]["edges"].as_array().unwrap().iter().find(|e| e["step"] == "booked").unwrap();
    assert_eq!((&booked["from"], &booked["event"]), (&serde_json::json!(["filled"]), &Value::from("trade_booked")));
    assert_eq!(booked["deadline"], "within 2m");
    assert_eq!(booked["outcome"], "success");

    // Groups, two at a time, add up to the workflow.
    let mut groups = Vec::new();
    let mut path = "/api/v1/workflows/order_flow/groups?limit=2".to_string();
    loop {
        let (status, page) = get_json(&service, &path);
        assert_eq!(status, 200, "{page}");
        let items = page["groups"].as_array().unwrap();
        assert!(items.len() <= 2);
        groups.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/workflows/order_flow/groups?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(groups.len(), detail["groups"].as_u64().unwrap() as usize);
    assert!(groups.len() > 2, "the example has several groups");
    let names: Vec<&str> = groups.iter().map(|g| g["group"].as_str().unwrap()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "ordered, no repeats: {names:?}");
    let entered: u64 = groups.iter().map(|g| g["counts"]["entered"].as_u64().unwrap()).sum();
    assert_eq!(entered, detail["counts"]["entered"].as_u64().unwrap());
    assert!(groups.iter().any(|g| g["status"] == "red" && g["reason"].as_str().unwrap().contains(still_missing[0])));

    // Unknown names and bad parameters: the one error shape.
    let (status, error) = get_json(&service, "/api/v1/workflows/no_such_flow");
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")), "{error}");
    let (status, _) = get_json(&service, "/api/v1/workflows/no_such_flow/groups");
    assert_eq!(status, 404);
    let (status, error) = get_json(&service, "/api/v1/workflows/order_flow/groups?cursor=zz");
    assert_eq!((status, &error["error"]["details"]["field"]), (400, &Value::from("cursor")), "{error}");
    let (status, error) = get_json(&service, "/api/v1/workflows/order_flow/trends?stage=nowhere");
    assert_eq!((status, &error["error"]["details"]["stage"]), (404, &Value::from("nowhere")), "{error}");
    let (status, error) = get_json(&service, "/api/v1/workflows/order_flow/trends?from=yesterday");
    assert_eq!((status, &error["error"]["details"]["field"]), (400, &Value::from("from")), "{error}");

    // A workflow switched off says so.
    let (status, reply) = service.post("/api/v1/workflows/trade_confirmation/disable", r#"{"reason": "test"}"#);
    assert_eq!(status, 200, "{reply}");
    wait_json(&service, "/api/v1/workflows", |l| workflow(l, "trade_confirmation")["enabled"] == false);
    let (_, confirmations) = get_json(&service, "/api/v1/workflows/trade_confirmation");
    assert_eq!(confirmations["enabled"], false, "{confirmations}");

    // Rollups: per minute over the example's span, adding up to the counts.
    let trend_path = "/api/v1/workflows/order_flow/trends?from=2026-03-02T14:00:00Z&to=2026-03-02T15:30:00Z";
    let (status, trend) = get_json(&service, trend_path);
    assert_eq!(status, 200, "{trend}");
    let points = &trend["points"];
    assert_eq!(points.as_array().unwrap().len(), 91, "one point a minute, both ends in");
    assert_eq!(sum(points, "entered"), detail["counts"]["entered"].as_f64().unwrap());
    assert_eq!(sum(points, "completed"), detail["counts"]["completed"].as_f64().unwrap());
    assert_eq!(sum(points, "missing"), records["records"].as_array().unwrap().len() as f64);
    assert_eq!(sum(points, "late"), late["records"].as_array().unwrap().len() as f64);
    // One stage and one group are slices of the same rows.
    let (_, placed) = get_json(&service, &format!("{trend_path}&stage=placed"));
    assert_eq!(sum(&placed["points"], "entered"), detail["stages"][0]["counts"]["entered"].as_f64().unwrap());
    let group = &groups[0];
    let (_, one) = get_json(&service, &format!("{trend_path}&group={}", group["group"].as_str().unwrap()));
    assert_eq!(sum(&one["points"], "entered"), group["counts"]["entered"].as_f64().unwrap());
    // Without earlier days, a point's baseline is the mean of the minutes
    // before it since the history began.
    let series: Vec<&Value> = points.as_array().unwrap().iter().collect();
    let first = series.iter().position(|p| p["entered"].as_f64() > Some(0.0)).unwrap();
    assert!(series[first]["baseline"].is_null(), "no history before the first minute: {}", series[first]);
    let next = series[first + 1];
    assert_eq!(next["baseline"]["method"], "previous_hour", "{next}");
    assert_eq!(next["baseline"]["entered"], series[first]["entered"], "{next}");
}

const JOBS: &str = "event job_started { job: string }\nevent job_done { job: string }\n\n\
    workflow jobs {\n  key job\n  start started: job_started\n  step done: job_done after started within 1h\n}\n";

fn job(n: usize, time: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"j{n}","source":"test","type":"job_started","time":"{time}","data":{{"job":"J{n}"}}}}"#
    )
}

/// Minute rows older than `[retention] rollups_minutes_ms` become hour
/// rows with the same totals; an hour's baseline is the mean of the same
/// hour on the earlier days; a replay of the journal after SIGKILL does
/// not count the rows twice.
#[test]
fn rollups_compact_to_hours_and_the_baseline_is_the_same_hour_on_earlier_days() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("jobs.mon"), JOBS).unwrap();
    let retention = "[retention]\nrollups_minutes_ms = 3600000\nrollups_hours_ms = 2592000000\n";
    let service = start(dir.path(), &rules, retention, &[]);
    // 10:00–10:04 on three days: 4, 8, then 5 jobs started.
    let mut n = 0;
    for (day, count) in [("2026-03-02", 4), ("2026-03-03", 8), ("2026-03-04", 5)] {
        let mut lines = Vec::new();
        for i in 0..count {
            n += 1;
            lines.push(job(n, &format!("{day}T10:0{}:00Z", i % 5)));
        }
        post_events(&service, &lines.join("\n"));
    }
    // Two hours on: the engine's clock passes an hour, so compaction runs.
    post_events(&service, &job(1000, "2026-03-04T12:30:00Z"));
    let path = "/api/v1/workflows/jobs/trends?step=hour&from=2026-03-02T09:00:00Z&to=2026-03-04T12:00:00Z";
    let trend = wait_json(&service, path, |t| t["points"].as_array().is_some_and(|p| !p.is_empty()));
    let at = |day: &str| {
        trend["points"].as_array().unwrap().iter().find(|p| p["at"] == format!("{day}T10:00:00Z")).cloned().unwrap()
    };
    assert_eq!(at("2026-03-02")["entered"], 4.0);
    assert_eq!(at("2026-03-03")["entered"], 8.0);
    let today = at("2026-03-04");
    assert_eq!(today["entered"], 5.0);
    assert_eq!(today["baseline"]["method"], "same_time_of_day", "{today}");
    assert_eq!((today["baseline"]["entered"].as_f64(), today["baseline"]["samples"].as_u64()), (Some(6.0), Some(2)));
    assert_eq!(at("2026-03-03")["baseline"]["entered"], 4.0, "one earlier day");

    // The minutes of the first day are hour rows now: a minute series
    // spreads the hour evenly over its minutes.
    let (_, minutes) =
        get_json(&service, "/api/v1/workflows/jobs/trends?from=2026-03-02T10:00:00Z&to=2026-03-02T10:59:00Z");
    let values: Vec<f64> =
        minutes["points"].as_array().unwrap().iter().map(|p| p["entered"].as_f64().unwrap()).collect();
    assert_eq!(values.len(), 60);
    assert!(values.iter().all(|v| (v - 4.0 / 60.0).abs() < 1e-9), "{values:?}");
    // The last hour is still minutes.
    let (_, recent) =
        get_json(&service, "/api/v1/workflows/jobs/trends?from=2026-03-04T12:29:00Z&to=2026-03-04T12:31:00Z");
    let recent: Vec<f64> =
        recent["points"].as_array().unwrap().iter().map(|p| p["entered"].as_f64().unwrap()).collect();
    assert_eq!(recent, [0.0, 1.0, 0.0]);

    // Killed, the service replays its journal at start (no snapshot was
    // taken): the batches are re-applied, their rows are not added again.
    service.kill9();
    let service = start(dir.path(), &rules, retention, &[]);
    let (_, again) = get_json(&service, path);
    assert_eq!(again["points"], trend["points"]);
}

/// A scheduled file SLA (`by 08:00` London): the stage shows the deadline
/// and the time left on the engine's clock, which the last event set.
#[test]
fn a_by_deadline_counts_down_on_the_engine_clock() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), &example("file_receipt"), "", &["--from", "2026-03-02T00:00:00Z"]);
    // Another job's file at 07:47:29 London (GMT in March): the clock moves.
    let line = r#"{"specversion":"1.0","type":"file_received","id":"fx-1","source":"sftp","time":"2026-03-02T07:47:29Z","data":{"job_id":"FX_RATES","date":"2026-03-02","path":"/in/fx.csv","transport":"S3","size_bytes":10}}"#;
    post_events(&service, line);
    let detail = wait_json(&service, "/api/v1/workflows/daily_positions", |d| d["clock"] == "2026-03-02T07:47:29Z");
    let stage = &detail["stages"][0];
    assert_eq!(stage["name"], "file_received", "{detail}");
    let deadline = &stage["next_deadline"];
    assert_eq!(deadline["at"], "2026-03-02T08:00:00Z", "{detail}");
    assert_eq!(deadline["absolute"], true);
    assert_eq!(deadline["time_left"], "00:12:31");
    assert_eq!(deadline["time_left_ms"], 751_000);
    assert_eq!(detail["next_deadline"], *deadline, "the workflow's next deadline is this one");
    // Past the 07:45 warning: amber, and it says which rule.
    assert_eq!(detail["status"], "amber", "{detail}");
    assert!(
        detail["reason"].as_str().unwrap().starts_with("amber: `at_risk > 0 or late > 0` holds: 1 at_risk"),
        "{detail}"
    );
    let edge = &detail["graph"]["edges"][0];
    assert_eq!(edge["deadline"], "by 08:00 Europe/London", "{edge}");

    // New York's occurrence opens at 16:00 there (21:00 UTC): before it
    // exists, its 18:30 deadline is already counted down to.
    let (_, ny) = get_json(&service, "/api/v1/workflows/ny_eod_prices");
    let deadline = &ny["stages"][0]["next_deadline"];
    assert_eq!(
        (&deadline["at"], &deadline["time_left"]),
        (&Value::from("2026-03-02T23:30:00Z"), &Value::from("15:42:31")),
        "{ny}"
    );
    assert_eq!(ny["counts"]["in_flight"], 0, "no occurrence yet: {ny}");
}
