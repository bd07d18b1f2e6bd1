//! The alert book over replays: each test names the promise it keeps
//! (issue 11: dedup, grouping, ack, suppression, maintenance across both
//! daylight-saving changes, escalation, replay).

use mon_compiler::ir::{Escalation, Program};
use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_runtime::alerts::{Action, AlertState, BookConfig, Command, CommandError, Notification, NotificationEvent};
use mon_runtime::live::{ClockMode, Fed, Input, Live};
use mon_runtime::simulate::Simulation;
use mon_runtime::Record;

const RULES: &str = r#"
event placed { id: string, book: string }
event booked { id: string }
event cancelled { id: string }
channel ops webhook "http://ops.example/hook"
channel pager pagerduty "routing-key"
channel lead email "lead@example.com"
workflow trade {
  key id
  group by book
  notify ops
  notify pager when severity >= critical
  renotify 10m
  expect placed
  then booked within 1m
  step cancel: cancelled after placed -> failure
}
"#;

const MINUTE: i64 = 60_000;

fn program(rules: &str) -> Program {
    let sources = vec![SourceFile { path: "r.mon".into(), text: rules.into() }];
    let compilation = compile(&sources, mon_stdlib::registry(), &NoSchemas);
    compilation.program.unwrap_or_else(|| panic!("rules do not compile: {:?}", compilation.diagnostics))
}

fn at(text: &str) -> i64 {
    mon_stdlib::time::parse_rfc3339(text).expect("an instant")
}

fn event(kind: &str, n: u64, time: i64, data: &str) -> String {
    let time = mon_stdlib::time::format_rfc3339(time);
    format!(r#"{{"type":"{kind}","id":"{kind}-{n}","time":"{time}","data":{data}}}"#)
}

fn placed(n: u64, time: i64) -> String {
    event("placed", n, time, &format!(r#"{{"id":"T{n}","book":"FX"}}"#))
}

/// An event no rule uses: it only moves the virtual clock.
fn clock(time: i64) -> Input {
    Input::Line(event("noise", time as u64, time, "{}"))
}

fn booked(n: u64, time: i64) -> String {
    event("booked", n, time, &format!(r#"{{"id":"T{n}"}}"#))
}

/// Replays `lines` (then up to `until`) with the book on; records and notifications.
fn replay(program: &Program, lines: &[String], until: i64) -> (Vec<Record>, Vec<Notification>) {
    let mut simulation =
        Simulation::new(program, mon_stdlib::registry(), None, Some(until)).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    for line in lines {
        simulation.feed(line, &mut records);
    }
    simulation.finish(&mut records);
    (records, simulation.notifications)
}

fn brief(n: &Notification) -> String {
    format!("{} {} {} active={} new={} resolved={}", n.channel, n.event.name(), n.step, n.active, n.new, n.resolved)
}

#[test]
fn ten_thousand_stalls_in_a_minute_give_one_grouped_message_then_updates() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    // 10,000 trades placed over one minute, none booked: all missing within a minute.
    let mut lines: Vec<String> = (0..10_000).map(|n| placed(n, start + n as i64 * 6)).collect();
    // Ten more stall a little later, after the first message.
    lines.extend((10_000..10_010).map(|n| placed(n, start + 3 * MINUTE)));
    let (records, notifications) = replay(&program, &lines, start + 20 * MINUTE);
    let missing = records.iter().filter(|r| r.kind.name() == "missing").count();
    assert_eq!(missing, 10_010);
    let sent: Vec<String> = notifications.iter().map(brief).collect();
    // Group wait 30 s after the first missing (08:01:00): one firing with the
    // 5,001 gathered by 08:01:30 (a record at the instant of a message comes
    // first, as engine timers do); the rest and the late ten arrive as
    // updates at the 5-minute group interval; renotify after 10 minutes.
    assert_eq!(
        sent,
        [
            "ops firing booked active=5001 new=5001 resolved=0",
            "ops update booked active=10010 new=5009 resolved=0",
            "ops renotify booked active=10010 new=0 resolved=0",
        ]
    );
    let first = &notifications[0];
    assert_eq!(first.at, at("2026-03-02T08:01:30Z"));
    assert_eq!(first.alerts.len(), 10);
    assert_eq!(first.alerts[0].key["id"], "T0");
    assert_eq!(first.group["book"], "FX");
    assert!(
        first.summary.starts_with("FIRING high trade.booked missing: 5001 items (book=FX) — T0, T1,"),
        "{}",
        first.summary
    );
    assert_eq!(notifications[1].at, at("2026-03-02T08:06:30Z"));
    assert_eq!(notifications[2].at, at("2026-03-02T08:16:30Z"));
    // Ids are distinct and stable per group and message number.
    assert_ne!(notifications[0].id, notifications[1].id);
    assert!(notifications.iter().all(|n| n.group_key == "ops/trade.booked/missing/FX"));
}

#[test]
fn a_late_arrival_resolves_its_missing_alert_and_the_group_says_resolved() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let lines = [placed(1, start), placed(2, start), booked(1, start + 3 * MINUTE), booked(2, start + 4 * MINUTE)];
    let (records, notifications) = replay(&program, &lines, start + 30 * MINUTE);
    assert_eq!(records.iter().filter(|r| r.kind.name() == "late").count(), 2, "the engine still records lateness");
    let sent: Vec<String> = notifications.iter().map(brief).collect();
    // Firing at 08:01:30; both resolve before the group interval ends, so one
    // `resolved` at 08:06:30, and no separate alert for the late steps.
    assert_eq!(sent, ["ops firing booked active=2 new=2 resolved=0", "ops resolved booked active=0 new=0 resolved=2"]);
    assert_eq!(notifications[1].at, at("2026-03-02T08:06:30Z"));
}

#[test]
fn the_book_records_why_an_alert_resolved_and_keeps_an_excerpt() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let lines = [
        placed(1, start),
        placed(2, start),
        booked(1, start + 3 * MINUTE + 4_000),
        event("cancelled", 2, start + 5 * MINUTE, r#"{"id":"T2"}"#),
    ];
    let mut simulation =
        Simulation::new(&program, mon_stdlib::registry(), None, None).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    for line in &lines {
        simulation.feed(line, &mut records);
    }
    let book = simulation.book().expect("alerting is on");
    let alerts: Vec<_> = book.alerts().collect();
    assert_eq!(alerts.len(), 2, "no alert for the late step itself: {alerts:?}");
    let t1 = alerts.iter().find(|a| a.key["id"] == "T1").expect("T1's alert");
    assert_eq!(t1.state, AlertState::Resolved);
    assert_eq!(t1.resolution.as_deref(), Some("booked happened late, by 2m 4s"));
    assert_eq!(t1.excerpt["steps"]["placed"], "2026-03-02T08:00:00Z");
    assert_eq!(t1.group["book"], "FX");
    let t2 = alerts.iter().find(|a| a.key["id"] == "T2").expect("T2's alert");
    assert_eq!(t2.resolution.as_deref(), Some("the item closed"));
    let whats: Vec<&str> = t2.history.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(whats, ["opened", "notified", "resolved"]);
}

/// Feeds lines and commands in order through `Live` on the event clock,
/// as the service does; returns the notifications and command results.
fn live_run(program: &Program, inputs: &[Input]) -> (Vec<Notification>, Vec<Result<AlertState, CommandError>>) {
    let mut live =
        Live::new(program, mon_stdlib::registry(), ClockMode::Event, None).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    let mut results = Vec::new();
    for input in inputs {
        if let Fed::Command(result) = live.apply(input, &mut records) {
            results.push(result.map(|a| a.state));
        }
    }
    (live.take_notifications(), results)
}

fn alert_id(program: &Program, lines: &[String], key: &str) -> String {
    let (records, _) = replay(program, lines, i64::MAX);
    records
        .iter()
        .find(|r| r.kind.name() == "missing" && r.key.as_ref().is_some_and(|k| k["id"] == key))
        .expect("a missing record")
        .id
        .clone()
}

fn command(alert: &str, action: Action) -> Input {
    Input::Command(Command { alert: alert.into(), action, by: "alice".into(), reason: Some("on it".into()), at: 0 })
}

#[test]
fn an_ack_is_told_at_once_and_stops_renotifying_until_unacknowledged() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let id = alert_id(&program, &[placed(1, start), placed(99, start + 2 * MINUTE)], "T1");
    let tick = |_: u64, minutes: i64| clock(start + minutes * MINUTE);
    let inputs = vec![
        Input::Line(placed(1, start)),
        tick(0, 2), // T1 missing at 08:01, firing at 08:01:30
        command(&id, Action::Ack),
        tick(1, 30), // no renotify while acknowledged
        command(&id, Action::Unack),
        tick(2, 45),
        command("no-such-alert", Action::Ack),
    ];
    let (notifications, results) = live_run(&program, &inputs);
    let sent: Vec<String> = notifications
        .iter()
        .filter(|n| n.step == "booked" && n.alerts.iter().any(|a| a.key["id"] == "T1"))
        .map(|n| format!("{} at {}", n.event.name(), mon_stdlib::time::format_rfc3339(n.at)))
        .collect();
    assert_eq!(
        sent,
        [
            "firing at 2026-03-02T08:01:30Z",
            "acknowledged at 2026-03-02T08:02:00Z",
            "update at 2026-03-02T08:30:00Z",
            "renotify at 2026-03-02T08:40:00Z",
        ]
    );
    let ack = notifications.iter().find(|n| n.event == NotificationEvent::Acknowledged).expect("an ack message");
    assert_eq!(ack.acknowledged_by.as_deref(), Some("alice"));
    assert_eq!(results[0], Ok(AlertState::Acknowledged));
    assert_eq!(results[1], Ok(AlertState::Open));
    assert_eq!(results[2], Err(CommandError::NotFound("no-such-alert".into())));
}

#[test]
fn commands_refuse_what_the_state_does_not_allow() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let id = alert_id(&program, &[placed(1, start), placed(9, start + 2 * MINUTE)], "T1");
    let inputs = vec![
        Input::Line(placed(1, start)),
        clock(start + 2 * MINUTE),
        command(&id, Action::Unack),
        command(&id, Action::Suppress { until: Some(start) }),
        command(&id, Action::Resolve),
        command(&id, Action::Ack),
    ];
    let (_, results) = live_run(&program, &inputs);
    assert!(matches!(&results[0], Err(CommandError::Conflict(why)) if why.contains("is open: cannot unacknowledge")));
    assert!(matches!(&results[1], Err(CommandError::Conflict(why)) if why.contains("`until` must be after")));
    assert_eq!(results[2], Ok(AlertState::Resolved));
    assert!(matches!(&results[3], Err(CommandError::Conflict(why)) if why.contains("is resolved")));
}

#[test]
fn a_suppression_ends_at_its_time_and_the_alert_is_told_again() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let id = alert_id(&program, &[placed(1, start), placed(9, start + 2 * MINUTE)], "T1");
    let until = start + 20 * MINUTE;
    let inputs = vec![
        Input::Line(placed(1, start)),
        clock(start + 2 * MINUTE),
        command(&id, Action::Suppress { until: Some(until) }),
        clock(start + 40 * MINUTE),
    ];
    let (notifications, results) = live_run(&program, &inputs);
    assert_eq!(results, [Ok(AlertState::Suppressed)]);
    let t1: Vec<String> = notifications
        .iter()
        .filter(|n| n.alerts.iter().any(|a| a.key["id"] == "T1"))
        .map(|n| format!("{} at {}", n.event.name(), mon_stdlib::time::format_rfc3339(n.at)))
        .collect();
    // Firing at 08:01:30; suppressed at 08:02 (nothing else active:
    // `resolved` for the receiver at the group interval); back at 08:20.
    assert_eq!(
        t1,
        [
            "firing at 2026-03-02T08:01:30Z",
            "resolved at 2026-03-02T08:06:30Z",
            "firing at 2026-03-02T08:20:30Z",
            "renotify at 2026-03-02T08:30:30Z",
        ]
    );
}

#[test]
fn an_unacknowledged_alert_escalates_after_its_delay_and_an_acknowledged_one_does_not() {
    let program = program(&RULES.replace("renotify 10m", "renotify 10m\n  escalate after 15m to lead"));
    let lead = program.channels.iter().position(|c| c.name == "lead").expect("lead") as u32;
    let escalation = Escalation { after_ms: 15 * MINUTE as u64, channel: lead };
    assert!(program.workflows[0].steps.iter().all(|s| s.alerting.escalate == [escalation.clone()]));
    let start = at("2026-03-02T08:00:00Z");
    let acked = alert_id(&program, &[placed(2, start), placed(9, start + 2 * MINUTE)], "T2");
    let inputs = vec![
        Input::Line(placed(1, start)),
        Input::Line(placed(2, start)),
        clock(start + 2 * MINUTE),
        command(&acked, Action::Ack),
        clock(start + 20 * MINUTE),
    ];
    let (notifications, _) = live_run(&program, &inputs);
    let to_lead: Vec<&Notification> = notifications.iter().filter(|n| n.channel == "lead").collect();
    assert_eq!(to_lead.len(), 1, "{:?}", notifications.iter().map(brief).collect::<Vec<_>>());
    let escalation = to_lead[0];
    assert!(escalation.escalated);
    assert_eq!(escalation.event, NotificationEvent::Firing);
    // T1 opened at 08:01 and escalates at 08:16; the lead's group waits 30 s.
    assert_eq!(escalation.at, at("2026-03-02T08:16:30Z"));
    let keys: Vec<&str> = escalation.alerts.iter().map(|a| a.key["id"].as_str()).collect();
    assert_eq!(keys, ["T1"], "the acknowledged T2 does not escalate");
}

#[test]
fn routing_sends_only_alerts_at_or_above_a_channels_severity() {
    let critical = RULES.replace("then booked within 1m", "then booked within 1m severity critical");
    let start = at("2026-03-02T08:00:00Z");
    let lines = [placed(1, start), placed(9, start + 5 * MINUTE)];
    let (_, high) = replay(&program(RULES), &lines, start + 5 * MINUTE);
    let (_, crit) = replay(&program(&critical), &lines, start + 5 * MINUTE);
    let channels = |ns: &[Notification]| ns.iter().map(|n| n.channel.clone()).collect::<Vec<_>>();
    assert_eq!(channels(&high), ["ops"]);
    assert_eq!(channels(&crit), ["ops", "pager"]);
}

#[test]
fn at_risk_is_superseded_by_missing_and_an_alternative_step_ends_both() {
    let rules = RULES.replace("then booked within 1m", "then booked within 1m warn 30s");
    let program = program(&rules);
    let start = at("2026-03-02T08:00:00Z");
    let lines = [placed(1, start), event("cancelled", 1, start + 2 * MINUTE, r#"{"id":"T1"}"#)];
    let mut simulation =
        Simulation::new(&program, mon_stdlib::registry(), None, None).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    for line in &lines {
        simulation.feed(line, &mut records);
    }
    let book = simulation.book().expect("alerting is on");
    let mut resolutions: Vec<(String, String)> =
        book.alerts().map(|a| (a.kind.name().to_string(), a.resolution.clone().unwrap_or_default())).collect();
    resolutions.sort();
    assert_eq!(
        resolutions,
        [
            ("at_risk".to_string(), "superseded: booked is now missing".to_string()),
            ("missing".to_string(), "the item closed".to_string()),
        ]
    );
}

/// A weekly window over a night when the clocks change: alerts whose
/// records fall inside it are suppressed until the window ends, and only
/// those; nothing about them is sent before that end, and what is still
/// active is told after it. Returns (opened, suppressed until) per alert.
fn maintenance_case(window: &str, instants: &[&str], window_end: &str) -> Vec<(String, Option<String>)> {
    let rules = format!("{RULES}\nmaintenance night {window} for trade\n");
    let program = program(&rules);
    let mut lines = Vec::new();
    for (n, instant) in instants.iter().enumerate() {
        // Placed a minute before: its `missing` record is made at `instant`.
        lines.push(placed(n as u64, at(instant) - MINUTE));
    }
    let end = at(instants.last().expect("instants")) + MINUTE;
    let mut simulation =
        Simulation::new(&program, mon_stdlib::registry(), None, Some(end)).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    for line in &lines {
        simulation.feed(line, &mut records);
    }
    simulation.finish(&mut records);
    let book = simulation.book().expect("alerting is on");
    let mut alerts: Vec<_> = book.alerts().collect();
    alerts.sort_by_key(|a| a.opened_at);
    let window_end = at(window_end);
    for alert in &alerts {
        let key = &alert.key["id"];
        let told: Vec<i64> = simulation
            .notifications
            .iter()
            .filter(|n| n.alerts.iter().any(|a| &a.key["id"] == key))
            .map(|n| n.at)
            .collect();
        let inside =
            alert.history.iter().any(|e| e.what == "suppressed" && e.reason.as_deref() == Some("maintenance night"));
        if inside {
            assert!(told.iter().all(|t| *t >= window_end), "{key} was told inside the window: {told:?}");
            assert!(
                !told.is_empty(),
                "{key} is still missing after the window and was never told: {:?} {:?}",
                alert.history,
                simulation
                    .notifications
                    .iter()
                    .map(|n| (n.event, mon_stdlib::time::format_rfc3339(n.at), n.active))
                    .collect::<Vec<_>>()
            );
            assert!(
                alert.history.iter().any(|e| e.what == "unsuppressed" && e.at == window_end),
                "{:?}",
                alert.history
            );
        } else {
            assert!(told.iter().any(|t| *t < window_end.max(alert.opened_at + MINUTE)), "{key} was held: {told:?}");
        }
    }
    alerts
        .iter()
        .map(|a| {
            let suppressed = a.history.iter().find(|e| e.what == "suppressed").map(|_| {
                let until = a.history.iter().find(|e| e.what == "unsuppressed").map(|e| e.at);
                until.map(mon_stdlib::time::format_rfc3339).unwrap_or_default()
            });
            (mon_stdlib::time::format_rfc3339(a.opened_at), suppressed)
        })
        .collect()
}

#[test]
fn a_maintenance_window_across_the_october_change_suppresses_exactly_the_alerts_inside_it() {
    // Europe/London leaves BST at 2026-10-25 01:00 UTC: Saturday 22:00 local
    // is 21:00 UTC, Sunday 06:00 local is 06:00 UTC.
    let states = maintenance_case(
        "every sat 22:00 to sun 06:00 Europe/London",
        &["2026-10-24T20:59:00Z", "2026-10-24T21:00:00Z", "2026-10-25T05:59:00Z", "2026-10-25T06:00:00Z"],
        "2026-10-25T06:00:00Z",
    );
    let until = Some("2026-10-25T06:00:00Z".to_string());
    let expected = [
        ("2026-10-24T20:59:00Z", None),
        ("2026-10-24T21:00:00Z", until.clone()),
        ("2026-10-25T05:59:00Z", until),
        ("2026-10-25T06:00:00Z", None),
    ];
    assert_eq!(states, expected.map(|(a, s)| (a.to_string(), s)));
}

#[test]
fn a_maintenance_window_across_the_march_change_suppresses_exactly_the_alerts_inside_it() {
    // Europe/London enters BST at 2026-03-29 01:00 UTC: Saturday 22:00 local
    // is 22:00 UTC, Sunday 06:00 local is 05:00 UTC.
    let states = maintenance_case(
        "every sat 22:00 to sun 06:00 Europe/London",
        &["2026-03-28T21:59:00Z", "2026-03-28T22:00:00Z", "2026-03-29T04:59:00Z", "2026-03-29T05:00:00Z"],
        "2026-03-29T05:00:00Z",
    );
    let until = Some("2026-03-29T05:00:00Z".to_string());
    let expected = [
        ("2026-03-28T21:59:00Z", None),
        ("2026-03-28T22:00:00Z", until.clone()),
        ("2026-03-29T04:59:00Z", until),
        ("2026-03-29T05:00:00Z", None),
    ];
    assert_eq!(states, expected.map(|(a, s)| (a.to_string(), s)));
}

#[test]
fn a_replay_resumed_from_a_snapshot_gives_the_same_book_and_notifications() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let id = alert_id(&program, &[placed(3, start + 3000), placed(99, start + 2 * MINUTE)], "T3");
    let mut inputs: Vec<Input> = (0..6).map(|n| Input::Line(placed(n, start + n as i64 * 1000))).collect();
    inputs.push(Input::Line(booked(1, start + 90_000)));
    inputs.push(clock(start + 2 * MINUTE));
    inputs.push(command(&id, Action::Ack));
    inputs.push(Input::Line(placed(50, start + 3 * MINUTE)));
    inputs.extend((0..4).map(|n| clock(start + (5 + 5 * n as i64) * MINUTE)));

    let (whole, _) = live_run(&program, &inputs);
    for split in 1..inputs.len() {
        let mut live =
            Live::new(&program, mon_stdlib::registry(), ClockMode::Event, None).with_alerts(BookConfig::default());
        let mut records = Vec::new();
        for input in &inputs[..split] {
            live.apply(input, &mut records);
        }
        let mut notifications = live.take_notifications();
        let snapshot = live.snapshot_bytes().expect("a snapshot");
        let mut resumed = Live::resume_bytes(&program, mon_stdlib::registry(), &snapshot)
            .expect("resumes")
            .with_alerts(BookConfig::default());
        for input in &inputs[split..] {
            resumed.apply(input, &mut records);
        }
        notifications.extend(resumed.take_notifications());
        assert_eq!(notifications, whole, "split at {split}");
    }
    assert!(whole.iter().any(|n| n.acknowledged == 1), "the replay includes an ack");
    assert!(whole.len() >= 3, "{:?}", whole.iter().map(brief).collect::<Vec<_>>());
}

#[test]
fn alerting_turned_off_drops_the_book_a_snapshot_brought_back() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    for mode in [ClockMode::Event, ClockMode::Wall] {
        let mut live = Live::new(&program, mon_stdlib::registry(), mode, None).with_alerts(BookConfig::default());
        let mut records = Vec::new();
        live.apply(&Input::Tick(start), &mut records);
        live.apply(&Input::Line(placed(1, start)), &mut records);
        let snapshot = live.snapshot_bytes().expect("a snapshot");
        let resumed = Live::resume_bytes(&program, mon_stdlib::registry(), &snapshot).expect("resumes");
        assert!(resumed.book().is_some(), "{mode:?}: the snapshot carries the book");
        assert!(resumed.without_alerts().book().is_none(), "{mode:?}");
    }
}

#[test]
fn an_ack_in_the_group_wait_does_not_hurry_the_first_message_and_a_partial_ack_sends_nothing() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let id1 = alert_id(&program, &[placed(1, start), placed(99, start + 2 * MINUTE)], "T1");
    let id2 = alert_id(&program, &[placed(2, start), placed(99, start + 2 * MINUTE)], "T2");
    let inputs = vec![
        Input::Line(placed(1, start)),
        Input::Line(placed(2, start)),
        clock(start + MINUTE + 10_000), // both missing at 08:01; firing due 08:01:30
        command(&id1, Action::Ack),
        clock(start + 3 * MINUTE),
        command(&id2, Action::Ack),
        clock(start + 30 * MINUTE),
    ];
    let (notifications, results) = live_run(&program, &inputs);
    assert_eq!(results, [Ok(AlertState::Acknowledged), Ok(AlertState::Acknowledged)]);
    let sent: Vec<String> = notifications
        .iter()
        .map(|n| {
            format!("{} at {} acknowledged={}", n.event.name(), mon_stdlib::time::format_rfc3339(n.at), n.acknowledged)
        })
        .collect();
    // Firing at the end of the group wait with one of two acknowledged;
    // the last acknowledgement is told at once; nothing renotifies after.
    assert_eq!(
        sent,
        ["firing at 2026-03-02T08:01:30Z acknowledged=1", "acknowledged at 2026-03-02T08:03:00Z acknowledged=2"]
    );
}

#[test]
fn an_alert_unacknowledged_after_its_escalation_time_escalates_at_once() {
    let program = program(&RULES.replace("renotify 10m", "escalate after 15m to lead"));
    let start = at("2026-03-02T08:00:00Z");
    let id = alert_id(&program, &[placed(1, start), placed(99, start + 2 * MINUTE)], "T1");
    let inputs = vec![
        Input::Line(placed(1, start)),
        clock(start + 2 * MINUTE),
        command(&id, Action::Ack),
        clock(start + 30 * MINUTE),
        command(&id, Action::Unack),
        clock(start + 40 * MINUTE),
    ];
    let (notifications, _) = live_run(&program, &inputs);
    let lead: Vec<String> = notifications
        .iter()
        .filter(|n| n.channel == "lead")
        .map(|n| format!("{} at {}", n.event.name(), mon_stdlib::time::format_rfc3339(n.at)))
        .collect();
    // Due at 08:16 while acknowledged; unacknowledged at 08:30: escalated
    // then, and the lead's group waits 30 s.
    assert_eq!(lead, ["firing at 2026-03-02T08:30:30Z"]);
}

#[test]
fn a_book_restored_under_changed_rules_finds_its_alerts_by_name() {
    let before = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let mut live =
        Live::new(&before, mon_stdlib::registry(), ClockMode::Event, None).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    for line in [placed(1, start), event("noise", 1, start + 2 * MINUTE, "{}")] {
        live.apply(&Input::Line(line), &mut records);
    }
    let told_before = live.take_notifications();
    assert_eq!(told_before.len(), 1);
    let snapshot = live.snapshot_bytes().expect("a snapshot");

    // Another workflow first and the channels in another order: every id
    // the state holds means something else now.
    let changed = RULES
        .replace("channel ops webhook", "channel first_new email \"x@example.com\"\nchannel ops webhook")
        .replace("workflow trade {", "workflow other { key id\n expect booked }\nworkflow trade {");
    let after = program(&changed);
    assert_ne!(after.workflows[0].name, "trade");
    let mut resumed = Live::resume_bytes(&after, mon_stdlib::registry(), &snapshot)
        .expect("resumes")
        .with_alerts(BookConfig::default());
    resumed.apply(&Input::Line(event("noise", 2, start + 10 * MINUTE, "{}")), &mut records);
    let told_after = resumed.take_notifications();
    let alert = resumed.book().expect("alerting is on").alerts().next().expect("the alert").clone();
    assert_eq!((alert.workflow.as_str(), alert.step.as_str(), alert.state), ("trade", "booked", AlertState::Open));
    // The active alert is told again, to the channel of the same name,
    // under an id the old rules never made.
    assert_eq!(told_after.iter().map(|n| n.channel.as_str()).collect::<Vec<_>>(), ["ops"]);
    assert_ne!(told_after[0].id, told_before[0].id);
}

#[test]
fn a_group_whose_alerts_all_resolve_in_the_group_wait_sends_nothing() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    // Missing at 08:01, booked late at 08:01:10, before the first message
    // was due (08:01:30): a flap nobody needs to hear about.
    let lines = [placed(1, start), booked(1, start + MINUTE + 10_000)];
    let (records, notifications) = replay(&program, &lines, start + 30 * MINUTE);
    assert!(records.iter().any(|r| r.kind.name() == "missing"), "the engine recorded it");
    assert!(notifications.is_empty(), "{:?}", notifications.iter().map(brief).collect::<Vec<_>>());
}
