//! Standbys seen by the group, against a real broker: `mon run --failover`
//! processes announce their role in `<group>.members`, so the active one
//! lists its standbys in `GET /api/v1/group`, counts them in
//! `mon_standbys_alive`, and says `no_standby` when none would take over.
//! A standby stopped with SIGTERM is gone at once (its tombstone); one
//! that takes over is announced as the active one (docs/service.md,
//! "Fail-over").

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/service.rs"]
mod service;

use std::time::{Duration, Instant};

use serde_json::Value;
use service::{wait_until_true, Service};

fn group_view(service: &Service) -> Value {
    let body = service.get("/api/v1/group").expect("the active process answers GET /api/v1/group");
    serde_json::from_str(&body).expect("the group view is JSON")
}

/// Each member's role, by member id.
fn roles(view: &Value) -> Vec<(String, String)> {
    let members = view["members"].as_array().expect("members");
    members
        .iter()
        .map(|m| (m["member"].as_str().unwrap().to_string(), m["role"].as_str().unwrap().to_string()))
        .collect()
}

/// `mon run --failover` processes of one group (job rules, a topic set of
/// its own), each started on a state directory of its own.
struct Group {
    dir: tempfile::TempDir,
    topic: String,
    config: String,
    rules: String,
}

impl Group {
    fn new(name: &str) -> Group {
        let brokers = kafka::brokers();
        let dir = tempfile::tempdir().unwrap();
        let rules = service::write_job_rules(dir.path(), "1h");
        let (topic, records, dead) = kafka::topic_set(name, 1);
        let config = service::kafka_config(dir.path(), &brokers, &topic, &records, &dead, &topic);
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("[kafka.properties]", "failover = true\n[kafka.properties]");
        std::fs::write(&config, text).unwrap();
        let (config, rules) = (config.display().to_string(), rules.display().to_string());
        Group { dir, topic, config, rules }
    }

    /// A process on state directory `state`; `ready`: wait until it is
    /// (the active one), or not (a standby never is).
    fn start(&self, state: &str, ready: bool) -> Service {
        let state = self.dir.path().join(state).display().to_string();
        let args = ["--config", &self.config, "--state-dir", &state, &self.rules];
        let log = self.dir.path().join("mon.log");
        if ready {
            Service::start(&args, &log)
        } else {
            Service::spawn(&args, &log)
        }
    }
}

#[test]
fn the_active_process_lists_its_standbys_counts_them_and_says_when_none_is_left() {
    let group = Group::new("standby-view");
    let topic = &group.topic;
    let start = |state: &str, ready: bool| group.start(state, ready);

    // Before it starts: it cannot have been active for longer than this.
    let spawned = Instant::now();
    let active = start("a", true);
    assert_eq!(active.metric("mon_lease_held"), Some(1.0));
    let standby = start("b", false);
    assert_eq!(standby.get_any("/readyz").map(|(status, _)| status), Some(503), "a standby is not ready");

    // Both listed, each with its role; the standby reads no input.
    wait_until_true(Duration::from_secs(15), "the standby listed by the active process", || {
        group_view(&active)["members"].as_array().is_some_and(|m| m.len() == 2)
    });
    let view = group_view(&active);
    let this = view["this"].as_str().unwrap().to_string();
    let listed = roles(&view);
    assert!(listed.contains(&(this.clone(), "active".into())), "{view}");
    let standby_member = listed.iter().find(|(member, _)| *member != this).expect("the standby").clone();
    assert_eq!(standby_member.1, "standby", "{view}");
    let standby_record = view["members"].as_array().unwrap().iter().find(|m| m["member"] == standby_member.0).unwrap();
    assert_eq!(standby_record["alive"], true, "{view}");
    assert_eq!(standby_record["partitions"], serde_json::json!([]), "{view}");
    assert_eq!(standby_record["http"], format!("http://{}", standby.address), "{view}");
    assert_eq!(view["failover"], serde_json::json!({ "standbys_alive": 1, "no_standby": false }), "{view}");
    wait_until_true(Duration::from_secs(2), "mon_standbys_alive 1", || {
        active.metric("mon_standbys_alive") == Some(1.0)
    });
    assert_eq!(standby.metric("mon_standbys_alive"), Some(0.0), "a standby counts no one");

    // SIGTERM: the standby's tombstone removes it at once, well before it
    // would count as gone for silence (15 s).
    assert_eq!(standby.terminate(), Some(0));
    let stopped = Instant::now();
    wait_until_true(Duration::from_secs(5), "mon_standbys_alive 0 after the standby's goodbye", || {
        active.metric("mon_standbys_alive") == Some(0.0)
    });
    assert_eq!(roles(&group_view(&active)), vec![(this.clone(), "active".to_string())]);
    assert!(stopped.elapsed() < Duration::from_secs(10), "gone by its tombstone, not by silence");
    // No standby, and the grace period since the active one started is
    // over (or soon): it says so.
    wait_until_true(Duration::from_secs(20), "no_standby", || group_view(&active)["failover"]["no_standby"] == true);
    assert!(spawned.elapsed() > Duration::from_secs(15), "not before the grace period");

    // A new standby covers the active process again; when the active one
    // stops, that standby takes over and is announced as the active one.
    let next = start("c", false);
    wait_until_true(Duration::from_secs(15), "a standby again", || active.metric("mon_standbys_alive") == Some(1.0));
    assert_eq!(group_view(&active)["failover"]["no_standby"], false);
    assert_eq!(active.terminate(), Some(0));
    next.wait_ready(Duration::from_secs(20));
    let view = group_view(&next);
    let successor = view["this"].as_str().unwrap().to_string();
    assert_eq!(roles(&view), vec![(successor.clone(), "active".to_string())], "the old active left: {view}");
    let members = kafka::consume_all(&format!("{topic}.members"), 1, Duration::from_secs(1), Duration::from_secs(10));
    let last = members
        .iter()
        .rfind(|m| m.key.as_deref() == Some(successor.as_bytes()))
        .and_then(|m| serde_json::from_slice::<Value>(m.payload.as_deref()?).ok())
        .expect("the successor's record in the members topic");
    assert_eq!(last["role"], "active", "{last}");
    assert_eq!(next.metric("mon_lease_held"), Some(1.0));
    next.terminate();
}

/// Status, one header's value and the body of a request to `url`.
fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut answer = match method {
        "GET" => {
            let mut request = agent.get(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.call()
        }
        _ => {
            let mut request = agent.post(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.send(body)
        }
    }
    .expect("the process answers");
    let answered_by = answer.headers().get("mon-answered-by").and_then(|v| v.to_str().ok()).map(str::to_string);
    (answer.status().as_u16(), answered_by, answer.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn a_standby_passes_what_it_does_not_answer_itself_on_to_the_active_process() {
    let group = Group::new("standby-forward");
    let active = group.start("a", true);
    let standby = group.start("b", false);
    let this = group_view(&active)["this"].as_str().unwrap().to_string();

    // The standby still answers for itself what a supervisor asks it.
    wait_until_true(Duration::from_secs(15), "the standby's own /healthz", || standby.get("/healthz").is_some());
    assert_eq!(standby.get_any("/readyz").map(|(status, _)| status), Some(503));

    // The rest is the active process's answer, saying whose it is, once
    // the standby has read who is active from the members topic.
    wait_until_true(Duration::from_secs(15), "the standby forwarding to the active process", || {
        request("GET", &standby.url("/api/v1/group"), &[], "").0 == 200
    });
    let (status, answered_by, body) = request("GET", &standby.url("/api/v1/group"), &[], "");
    assert_eq!((status, answered_by.as_deref()), (200, Some(this.as_str())), "{body}");
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["this"], this.as_str(), "the active process answered: {view}");

    // The page's readiness, asked through the standby, is the active
    // process's: the group monitors. A probe's is the standby's own.
    let (status, by, body) = request("GET", &standby.url("/readyz"), &[("mon-readiness", "group")], "");
    assert_eq!((status, by.as_deref()), (200, Some(this.as_str())), "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ready"], true, "{body}");
    let (status, by, _) = request("GET", &standby.url("/readyz"), &[], "");
    assert_eq!((status, by), (503, None));

    // The query string and the method and body go on unchanged: the active
    // process's own refusals come back.
    let (status, by, body) = request("GET", &standby.url("/api/v1/alerts?bogus=1"), &[], "");
    assert_eq!((status, by.as_deref()), (400, Some(this.as_str())), "{body}");
    assert!(body.contains("bogus"), "the refusal names the parameter: {body}");
    let (status, by, body) = request("POST", &standby.url("/api/v1/events"), &[("content-type", "text/plain")], "");
    assert_eq!((status, by.as_deref()), (400, Some(this.as_str())), "{body}");
    let direct = active.post("/api/v1/events", "");
    assert_eq!(direct.0, 400);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), serde_json::from_str::<Value>(&direct.1).unwrap());

    // An event posted through the standby is taken by the active process.
    let event = service::job_started(1, service::now_ms());
    let (status, by, body) = request("POST", &standby.url("/api/v1/events"), &[("content-type", "text/plain")], &event);
    assert_eq!((status, by.as_deref()), (200, Some(this.as_str())), "{body}");
    wait_until_true(Duration::from_secs(10), "the posted event processed by the active process", || {
        active.metric_sum("mon_events_total") >= 1.0
    });

    // The command center's page too.
    let (status, by, page) = request("GET", &standby.url("/"), &[], "");
    assert_eq!((status, by.as_deref()), (200, Some(this.as_str())));
    assert!(page.contains("<html") || page.contains("<!doctype") || page.contains("<!DOCTYPE"), "{page}");

    // The live stream comes through as it is written, not when it ends
    // (it never does): its first event arrives.
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build().into();
    let mut stream = agent.get(&standby.url("/api/v1/stream")).call().expect("the stream through the standby");
    assert_eq!(stream.headers().get("mon-answered-by").and_then(|v| v.to_str().ok()), Some(this.as_str()));
    let mut reader = stream.body_mut().as_reader();
    let mut first = Vec::new();
    let mut chunk = [0u8; 512];
    while !String::from_utf8_lossy(&first).contains("event: status") {
        let read = std::io::Read::read(&mut reader, &mut chunk).expect("the stream's first event");
        assert!(read > 0, "the stream ended: {}", String::from_utf8_lossy(&first));
        first.extend_from_slice(&chunk[..read]);
    }

    // A request another process already forwarded is not passed on again:
    // two processes that each took the other for the active one would pass
    // it back and forth. It is counted as not sent; the others as answered.
    let counted = |outcome: &str| standby.metric(&format!("mon_forwarded_requests_total{{outcome=\"{outcome}\"}}"));
    let unavailable_before = counted("unavailable").unwrap_or(0.0);
    let (status, by, body) = request("GET", &standby.url("/api/v1/group"), &[("mon-forwarded-by", "elsewhere")], "");
    assert_eq!((status, by), (503, None), "{body}");
    assert!(body.contains("\"unavailable\"") && body.contains("elsewhere"), "{body}");
    assert_eq!(counted("unavailable"), Some(unavailable_before + 1.0));
    assert!(counted("answered").is_some_and(|n| n >= 8.0), "{:?}", counted("answered"));

    // Stopping (or taking over, which stops its server the same way), the
    // standby ends the streams it passes on rather than wait for them: the
    // client sees its stream end at once, where the server's stop would
    // otherwise wait 5 s before it cut it.
    standby.signal("TERM");
    let stopping = Instant::now();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut reader, &mut rest);
    let ended = stopping.elapsed();
    assert!(ended < Duration::from_secs(3), "the stream through the stopping standby ended after {ended:?}");
    assert_eq!(standby.wait_exit(Duration::from_secs(20)), Some(0));
    assert_eq!(active.terminate(), Some(0));
}
