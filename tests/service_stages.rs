//! A stage's items and a stage's trend over real HTTP, from a real `mon
//! run` on a real state directory, on the event clock (the posted events
//! set the time, so ages and an hour of history are exact and instant):
//! `GET .../stages/{stage}/items` lists the items waiting in a stage
//! oldest first with their ages and time left, keeps the oldest under a
//! limit, filters by group and answers unknown names with a 404 in the
//! error shape; `GET .../trends?stage=` names a drop in the stage's rate,
//! and a stall where items wait and nothing moves.

#[path = "support/service.rs"]
mod service;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use service::Service;

const RULES: &str = "event placed { order: string, desk: string }\nevent routed { order: string }\n\
    event ping { order: string }\n\
    workflow orders {\n  key order\n  group by desk\n  status red when missing > 0\n\
      start placed: placed\n  step routed: routed after placed within 5m\n}\n\
    workflow pings {\n  key order\n  start pinged: ping\n}\n";

/// 2026-03-02T08:00:00Z, a Monday.
const T0: i64 = 1_772_438_400_000;
const MINUTE: i64 = 60_000;

fn start(dir: &Path) -> Service {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("orders.mon"), RULES).unwrap();
    let config = dir.join("mon.toml");
    std::fs::write(&config, "[notify]\ndeliver = \"log\"\n").unwrap();
    let (config, state, rules) =
        (config.display().to_string(), dir.join("state").display().to_string(), rules.display().to_string());
    Service::start(&["--config", &config, "--state-dir", &state, "--clock", "event", &rules], &dir.join("mon.log"))
}

fn event(id: &str, kind: &str, order: &str, desk: &str, at: i64) -> String {
    json!({
        "specversion": "1.0", "id": id, "source": "test", "type": kind,
        "time": mon_stdlib::time::format_rfc3339(at), "data": { "order": order, "desk": desk },
    })
    .to_string()
}

fn post(service: &Service, lines: &[String]) {
    let (status, reply) = service.post("/api/v1/events", &lines.join("\n"));
    assert_eq!(status, 200, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["rejected"], json!([]), "{reply}");
}

fn get(service: &Service, path: &str) -> (u16, Value) {
    let (status, body) = service.get_any(path).expect("GET");
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path} gave no JSON: {body}")))
}

/// Polls until `check` holds: the engine applies a post before it
/// answers, but the views that trends read follow about once a second.
fn wait(service: &Service, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (status, value) = get(service, path);
        if status == 200 && check(&value) {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{path} never matched; last: {status} {value}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn keys(answer: &Value) -> Vec<&str> {
    answer["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect()
}

#[test]
fn a_stages_items_come_oldest_first_with_ages_and_time_left_and_a_limit_keeps_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    // Posted out of age order, so the engine's slab order is not the age
    // order; O-3 is routed and leaves the stage; the last event sets the
    // clock to T0 + 8m.
    post(
        &service,
        &[
            event("p1", "placed", "O-1", "FX", T0 + 2 * MINUTE),
            event("p2", "placed", "O-2", "EQ", T0),
            event("p3", "placed", "O-3", "FX", T0 + MINUTE),
            event("p4", "placed", "O-4", "FX", T0 + 6 * MINUTE),
            event("r3", "routed", "O-3", "", T0 + 3 * MINUTE),
            event("p5", "placed", "O-5", "EQ", T0 + 8 * MINUTE),
        ],
    );
    let path = "/api/v1/workflows/orders/stages/placed/items";
    let all = wait(&service, path, |a| a["in_stage"] == 4);
    assert_eq!(keys(&all), ["O-2", "O-1", "O-4", "O-5"], "{all}");
    assert_eq!(all["clock"], "2026-03-02T08:08:00Z");
    let first = &all["items"][0];
    assert_eq!((first["group"].as_str(), first["age_ms"].as_i64()), (Some("EQ"), Some(8 * MINUTE)), "{first}");
    assert_eq!(first["entered_at"], "2026-03-02T08:00:00Z");
    // Due 5 minutes after entry: O-2 three minutes overdue (and missing,
    // once the event clock passed its deadline), O-5 five minutes ahead.
    assert_eq!(first["deadline"]["step"], "routed");
    assert_eq!(first["deadline"]["time_left_ms"], -3 * MINUTE);
    assert_eq!(first["deadline"]["time_left"], "-00:03:00");
    assert_eq!(first["deadline"]["missing"], true, "{first}");
    let last = &all["items"][3];
    assert_eq!(
        (last["deadline"]["time_left_ms"].as_i64(), last["deadline"]["missing"].as_bool()),
        (Some(5 * MINUTE), Some(false))
    );

    let (status, two) = get(&service, &format!("{path}?limit=2"));
    assert_eq!(status, 200);
    assert_eq!((keys(&two), two["in_stage"].as_u64()), (vec!["O-2", "O-1"], Some(4)));
    let (_, fx) = get(&service, &format!("{path}?group=FX"));
    assert_eq!((keys(&fx), fx["group"].as_str()), (vec!["O-1", "O-4"], Some("FX")));
    let (_, routed) = get(&service, "/api/v1/workflows/orders/stages/routed/items");
    assert_eq!(
        (keys(&routed), routed["in_stage"].as_u64()),
        (vec![], Some(0)),
        "routed is the last step: taking it closed O-3, which is no longer in flight: {routed}"
    );

    let (status, unknown) = get(&service, "/api/v1/workflows/orders/stages/shipped/items");
    assert_eq!(status, 404, "{unknown}");
    assert_eq!(unknown["error"]["code"], "not_found");
    assert!(unknown["error"]["message"].as_str().unwrap().contains("its stages are placed, routed"), "{unknown}");
    assert_eq!(unknown["error"]["details"], json!({ "workflow": "orders", "stage": "shipped" }));
    let (status, unknown) = get(&service, "/api/v1/workflows/nope/stages/placed/items");
    assert_eq!((status, &unknown["error"]["details"]), (404, &json!({ "workflow": "nope" })));
    for bad in ["limit=0", "limit=1001", "cursor=x"] {
        let (status, error) = get(&service, &format!("{path}?{bad}"));
        assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_request")), "{bad}: {error}");
    }
    service.terminate();
}

#[test]
fn a_stage_whose_rate_falls_under_half_its_baseline_is_a_drop_in_its_trend() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    // An hour at 6 orders a minute, each routed a minute later, then three
    // minutes at 1 a minute: against the previous hour's 6, a drop.
    let mut lines = Vec::new();
    for minute in 0..63 {
        let per_minute = if minute < 60 { 6 } else { 1 };
        for n in 0..per_minute {
            let (order, at) = (format!("O-{minute}-{n}"), T0 + minute * MINUTE + n * 5_000);
            lines.push(event(&format!("p{order}"), "placed", &order, "FX", at));
            lines.push(event(&format!("r{order}"), "routed", &order, "FX", at + 30_000));
        }
    }
    post(&service, &lines);
    let trend = wait(&service, "/api/v1/workflows/orders/trends?stage=placed", |t| t["to"] == "2026-03-02T09:02:00Z");
    let anomalies = trend["anomalies"].as_array().unwrap();
    assert_eq!(anomalies.len(), 1, "{anomalies:?}");
    let drop = &anomalies[0];
    assert_eq!(
        (drop["kind"].as_str(), drop["from"].as_str(), drop["to"].as_str()),
        (Some("drop"), Some("2026-03-02T09:00:00Z"), Some("2026-03-02T09:03:00Z")),
        "{drop}"
    );
    // Each minute's baseline is the mean of the 60 before it, which by
    // 09:01 include the slow minutes: 6, then 355/60, then 350/60.
    let usual = (6.0 + 355.0 / 60.0 + 350.0 / 60.0) / 3.0;
    assert_eq!(drop["rate"].as_f64(), Some(1.0), "{drop}");
    assert!((drop["baseline"].as_f64().unwrap() - usual).abs() < 1e-9, "{drop}");
    assert_eq!(drop["text"], "drop: 1.0 entered/minute against 5.9 usually");
    // The hour before is steady: no anomaly there, and none on the whole
    // workflow's other stage either.
    let (_, routed) = get(&service, "/api/v1/workflows/orders/trends?stage=routed&to=2026-03-02T08:59:00Z");
    assert_eq!(routed["anomalies"], json!([]), "{routed}");
    service.terminate();
}

#[test]
fn items_in_a_stage_where_nothing_moves_for_five_minutes_are_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    // Three orders placed at 08:00 and never routed; a ping of another
    // workflow at 08:07 moves the event clock on, and nothing in `orders`.
    post(
        &service,
        &[
            event("p1", "placed", "O-1", "FX", T0),
            event("p2", "placed", "O-2", "FX", T0 + 10_000),
            event("p3", "placed", "O-3", "EQ", T0 + 20_000),
            event("ping", "ping", "P-1", "", T0 + 7 * MINUTE),
        ],
    );
    let trend = wait(&service, "/api/v1/workflows/orders/trends?stage=placed", |t| {
        t["to"] == "2026-03-02T08:07:00Z" && !t["anomalies"].as_array().unwrap().is_empty()
    });
    assert_eq!(
        trend["anomalies"],
        json!([{
            "kind": "stalled", "from": "2026-03-02T08:01:00Z", "to": "2026-03-02T08:08:00Z", "rate": 0.0,
            "baseline": 0.0, "text": "stalled: 3 in flight, nothing entered or left for 7 min",
        }])
    );
    // A series that does not end now judges no stall: what was in flight
    // then is not known.
    let (_, earlier) = get(&service, "/api/v1/workflows/orders/trends?stage=placed&to=2026-03-02T08:07:00Z");
    assert_eq!(earlier["anomalies"], json!([]), "{earlier}");
    service.terminate();
}
