//! probe
const RULES: &str = r#"
event trade_ingested { trade_id: string, region: enum { EMEA, AMER, APAC }, book: string }
event trade_verified { trade_id: string, system: string }
event trade_enriched { trade_id: string }
event sent_to_sys3 { trade_id: string }
event sys3_ack { trade_id: string, status: enum { ACK, NACK } }
event sent_to_sys4 { trade_id: string }
event file_received { job_id: string, path: string }
event file_loaded { job_id: string, rows: int }

workflow trade_lifecycle {
  key trade_id
  group by region, book
  grace 30s
  start ingested: trade_ingested
  step verified: trade_verified where system == "S2" after ingested within 2m warn 1m
  then maybe trade_enriched as enriched within 1m
  then sent_to_sys3 as sent3 within 3m
  step acked: sys3_ack where status == ACK after sent3 within 5m warn 3m
  step nacked: sys3_ack where status == NACK after sent3 -> failure
  step sent4: sent_to_sys4 after acked within 1m -> success
}

workflow daily_feed {
  timezone Europe/London
  grace 5m
  expect file_received where job_id == "DAILY_FEED" by 08:00 warn at 07:45 every day
  then file_loaded where job_id == "DAILY_FEED" and rows > 0 within 30m warn 20m
}

workflow nightly_batch {
  expect file_received where job_id == "NIGHTLY" by 01:30 Europe/London every weekday
  then file_loaded where job_id == "NIGHTLY" within 2h
}
"#;

#[test]
fn probe() {
    let c = mon_compiler::compile(&[mon_compiler::SourceFile { path: "p.mon".into(), text: RULES.into() }], mon_stdlib::registry(), &mon_compiler::NoSchemas);
    for d in &c.diagnostics { eprintln!("{d:?}"); }
    let p = c.program.unwrap();
    for w in &p.workflows {
        eprintln!("{} key={:?} sched={:?} grace={}", w.name, w.key.iter().map(|k| &k.name).collect::<Vec<_>>(), w.schedule.is_some(), w.grace_ms);
        for s in &w.steps { eprintln!("  step {} {} src={:?} opt={} timing={:?} out={:?} grace={}", s.id, s.name, s.sources, s.optional, s.timing, s.outcome, s.grace_ms); }
        for s in &w.stages { eprintln!("  stage {} {} out={:?} timers={:?} closes={:?}", s.id, s.name, s.outgoing, s.timers, s.closes); }
    }
}
