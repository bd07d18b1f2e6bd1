//! The event store of `mon run`, over real HTTP on a real state directory:
//! `GET /api/v1/events` by type, item, time range, field and rejected or
//! not, newest first and paged; `pii` values neither shown, nor
//! searchable, nor in the state's files; the retention purge, which
//! deletes whole segment files; and a SIGKILL under load.

#[path = "support/service.rs"]
mod service;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use service::Service;

const RULES: &str = r#"
event order_placed { order: string, region: enum { EU, US }, customer: string pii }
event order_shipped { order: string }

workflow orders {
  key order
  start placed: order_placed
  step shipped: order_shipped after placed within 1h
}
"#;

/// A customer's name that must never reach the state.
const SECRET: &str = "Zelda Quuxworth";

fn start(dir: &Path, retention: &str) -> Service {
    let rules = dir.join("rules");
    let _ = std::fs::create_dir_all(&rules);
    std::fs::write(rules.join("orders.mon"), RULES).unwrap();
    let config = dir.join("mon.toml");
    std::fs::write(&config, format!("[retention]\nevents = \"{retention}\"\n")).unwrap();
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

fn rfc3339(ms: i64) -> String {
    mon_stdlib::time::format_rfc3339(ms)
}

fn placed(id: &str, order: &str, region: &str, time: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"test","type":"order_placed","time":"{}","data":{{"order":"{order}","region":"{region}","customer":"{SECRET}"}}}}"#,
        rfc3339(time)
    )
}

fn shipped(id: &str, order: &str, time: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"test","type":"order_shipped","time":"{}","data":{{"order":"{order}"}}}}"#,
        rfc3339(time)
    )
}

fn post(service: &Service, lines: &[String]) -> Value {
    let (status, body) = service.post("/api/v1/events", &lines.join("\n"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn search(service: &Service, query: &str) -> (u16, Value) {
    let (status, body) = service.get_any(&format!("/api/v1/events{query}")).unwrap();
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("{query}: {body}")))
}

/// The ids of a page, in order.
fn ids(page: &Value) -> Vec<String> {
    page["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

fn found(service: &Service, query: &str) -> Vec<String> {
    let (status, page) = search(service, query);
    assert_eq!(status, 200, "{query}: {page}");
    ids(&page)
}

/// Every file under `dir`, read whole.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

#[test]
fn search_filters_pages_and_keeps_no_pii() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), "14d");
    let t0 = service::now_ms() - 60_000;
    let mut lines = vec![
        placed("p1", "O1", "EU", t0),
        placed("p2", "O2", "US", t0 + 1_000),
        shipped("s1", "O1", t0 + 2_000),
        placed("p3", "O3", "EU", t0 + 3_000),
    ];
    // Rejected: `order` is missing.
    lines.push(format!(
        r#"{{"specversion":"1.0","id":"bad1","source":"test","type":"order_placed","time":"{}","data":{{"region":"EU"}}}}"#,
        rfc3339(t0 + 4_000)
    ));
    let reply = post(&service, &lines);
    assert_eq!(reply["accepted"], 4, "{reply}");

    assert_eq!(found(&service, ""), ["bad1", "p3", "s1", "p2", "p1"], "everything, newest first");
    assert_eq!(found(&service, "?type=order_placed"), ["bad1", "p3", "p2", "p1"]);
    assert_eq!(found(&service, "?type=order_placed&rejected=false"), ["p3", "p2", "p1"]);
    assert_eq!(found(&service, "?workflow=orders&key=O1"), ["s1", "p1"]);
    assert_eq!(found(&service, "?workflow=orders&key=O9"), Vec::<String>::new());
    let (from, to) = (rfc3339(t0 + 1_000), rfc3339(t0 + 2_000));
    assert_eq!(found(&service, &format!("?from={from}&to={to}")), ["s1", "p2"], "the range is inclusive");
    assert_eq!(found(&service, &format!("?workflow=orders&key=O1&from={from}")), ["s1"]);
    assert_eq!(found(&service, "?field=region:EU"), ["p3", "p1"]);
    assert_eq!(found(&service, "?field=region:EU&field=order:O3"), ["p3"]);
    assert_eq!(found(&service, "?field=nosuch:x"), Vec::<String>::new(), "a field no type declares matches nothing");
    assert_eq!(found(&service, "?workflow=orders&type=order_shipped"), ["s1"]);
    assert_eq!(found(&service, "?key=O2"), ["p2"], "a key in any workflow");
    assert_eq!(found(&service, "?rejected=true"), ["bad1"]);
    let (_, rejected) = search(&service, "?rejected=true");
    let reason = rejected["events"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("order"), "{rejected}");
    assert_eq!(rejected["events"][0]["rejected"], true);

    // What is shown: the item, the fields, never the pii one.
    let (_, page) = search(&service, "?workflow=orders&key=O1&type=order_placed");
    let event = &page["events"][0];
    assert_eq!(event["data"]["region"], "EU", "{event}");
    assert_eq!(event["items"][0]["key"]["order"], "O1", "{event}");
    assert!(event["data"].get("customer").is_none(), "{event}");

    // Pages: a position, so an append does not shift the next page.
    let (_, first) = search(&service, "?limit=2");
    assert_eq!(ids(&first), ["bad1", "p3"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    post(&service, &[placed("p4", "O4", "US", t0 + 5_000)]);
    let (_, second) = search(&service, &format!("?limit=2&cursor={cursor}"));
    assert_eq!(ids(&second), ["s1", "p2"]);
    let cursor = second["next_cursor"].as_str().unwrap().to_string();
    let (_, last) = search(&service, &format!("?limit=2&cursor={cursor}"));
    assert_eq!(ids(&last), ["p1"]);
    assert!(last["next_cursor"].is_null(), "{last}");

    // Bad input: a 400 in the one error shape, naming the parameter.
    for (query, field) in [
        ("?field=customer:x", "field"),
        ("?field=region", "field"),
        ("?from=yesterday", "from"),
        ("?rejected=maybe", "rejected"),
        ("?cursor=zz", "cursor"),
        ("?colour=red", "colour"),
    ] {
        let (status, body) = search(&service, query);
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{query}: {body}");
    }
    let (_, pii) = search(&service, "?field=customer:x");
    assert!(pii["error"]["message"].as_str().unwrap().contains("pii"), "{pii}");

    service.terminate();
    // The rejected line had no pii value; the accepted ones did, and the
    // event segments hold only its hash. (The journal keeps inputs as they
    // came, to replay them; it is not the store.)
    let segment_files = files_under(&dir.path().join("state").join("events"));
    // The events are in these files (so the check below reads them)...
    let holds = |text: &str| segment_files.iter().any(|(_, b)| String::from_utf8_lossy(b).contains(text));
    assert!(holds("\"O3\"") && holds("pii:"), "the stored events are not in the event segments");
    // ...and the customer's name is in none of the state's files but the journal's.
    let mut state_files = files_under(&dir.path().join("state").join("state.sled"));
    state_files.extend(segment_files);
    for (path, bytes) in &state_files {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(SECRET), "{} holds the pii value", path.display());
        assert!(!text.contains("Zelda"), "{} holds part of the pii value", path.display());
    }
}

#[test]
fn events_older_than_the_retention_are_purged_with_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), "3s");
    let now = service::now_ms();
    // Two batches an hour apart: the second closes the first's segment.
    post(&service, &[placed("old", "O1", "EU", now - 3_600_000)]);
    post(&service, &[placed("new", "O2", "US", now)]);
    let events_dir = dir.path().join("state").join("events");
    let segments =
        || files_under(&events_dir).into_iter().filter(|(p, _)| p.extension() == Some("seg".as_ref())).count();
    // The appends run on a thread of their own; a search waits for them,
    // so after it the files are there to count.
    let _ = search(&service, "");
    assert_eq!(segments(), 2, "one segment per hour");
    let wait_until = |what: &str, check: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !check() {
            assert!(started.elapsed() < Duration::from_secs(15), "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_until("the old event is never purged", &|| found(&service, "") == ["new"]);
    assert_eq!(found(&service, "?workflow=orders&key=O1"), Vec::<String>::new(), "its index entry too");
    assert_eq!(found(&service, "?type=order_placed"), ["new"]);
    wait_until("the old segment is never deleted", &|| segments() == 1);
    let (status, _) = service.get_any("/api/v1/workflows/orders/items/O1").unwrap();
    assert_eq!(status, 404);
    wait_until("the new event is never purged", &|| found(&service, "").is_empty());
    // Only the event store forgets: the engine still holds the items.
    let status: Value = serde_json::from_str(&service.get("/api/v1/status").unwrap()).unwrap();
    assert_eq!(status["workflows"][0]["metrics"]["in_flight"], 2, "{status}");
    service.terminate();
}

#[test]
fn with_the_event_store_off_search_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), "0");
    post(&service, &[placed("p1", "O1", "EU", service::now_ms())]);
    let (status, body) = search(&service, "");
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("off"), "{body}");
    service.terminate();
}

/// Every stored event's id, all pages.
fn all_ids(service: &Service) -> Vec<String> {
    let (mut ids_seen, mut cursor) = (Vec::new(), String::new());
    loop {
        let (status, page) = search(service, &format!("?limit=1000{cursor}"));
        assert_eq!(status, 200, "{page}");
        ids_seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids_seen,
        }
    }
}

#[test]
fn a_crash_keeps_an_event_exactly_when_it_keeps_its_effects() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), "14d");
    let url = service.url("/api/v1/events");
    let now = service::now_ms();
    // Batches of new orders until the service dies under them.
    let poster = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut acknowledged = Vec::new();
        for batch in 0..10_000 {
            let ids: Vec<String> = (0..50).map(|i| format!("b{batch}-{i}")).collect();
            let lines: Vec<String> = ids.iter().map(|id| placed(id, id, "EU", now)).collect();
            match agent.post(&url).send(lines.join("\n")) {
                Ok(response) if response.status() == 200 => acknowledged.extend(ids),
                _ => break,
            }
        }
        acknowledged
    });
    std::thread::sleep(Duration::from_millis(700));
    service.kill9();
    let acknowledged = poster.join().unwrap();
    assert!(!acknowledged.is_empty(), "nothing was acknowledged before the kill");

    let service = start(dir.path(), "14d");
    let stored = all_ids(&service);
    let mut distinct = stored.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), stored.len(), "an event is stored twice");
    eprintln!("{} acknowledged, {} stored after the crash", acknowledged.len(), stored.len());
    let missing: Vec<&String> = acknowledged.iter().filter(|id| distinct.binary_search(id).is_err()).collect();
    assert!(missing.is_empty(), "{} acknowledged events were lost, e.g. {:?}", missing.len(), missing.first());
    // Each stored event opened one item, and each item the engine holds
    // came from a stored event: the store and the state agree.
    let started = Instant::now();
    loop {
        let status: Value = serde_json::from_str(&service.get("/api/v1/status").unwrap()).unwrap();
        let in_flight = status["workflows"][0]["metrics"]["in_flight"].as_u64();
        if in_flight == Some(stored.len() as u64) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{} stored, status {status}", stored.len());
        std::thread::sleep(Duration::from_millis(100));
    }
    service.terminate();
}
