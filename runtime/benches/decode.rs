//! Criterion benchmark of event decoding: the fast path against the
//! reference decoder (serde_json), on the lines `mon bench` generates: a
//! trade-lifecycle line (`mon bench`) and a file-SLA line (`mon bench
//! --workflows N`), plus one with an escape, which the fast path hands to
//! the reference (what a line off the fast path costs).
//!
//! `cargo bench -p mon-runtime --bench decode`. Both decoders are checked
//! to agree on each line before it is timed, so a figure is never that of
//! a wrong answer.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_runtime::{Decoded, Decoder};
use std::hint::black_box;

const RULES: &str = r#"
event trade_ingested { trade_id: string, region: enum { EMEA, AMER, APAC }, book: string, notional: float }
event sys3_ack { trade_id: string, status: enum { ACK, NACK } }
event file_received { job_id: string, file_id: string, size: int }
workflow trade_lifecycle {
  key trade_id
  start ingested: trade_ingested
  step acked: sys3_ack where status == ACK after ingested within 5m
}
workflow job_00042 {
  key file_id
  start received: file_received where job_id == "JOB-00042"
}
"#;

const LINES: &[(&str, &str)] = &[
    (
        "trade_ingested",
        r#"{"specversion":"1.0","type":"trade_ingested","id":"T00012345-0","source":"bench","time":"2026-03-02T08:00:00.246Z","data":{"trade_id":"T00012345","region":"AMER","book":"B45","notional":1345.5}}"#,
    ),
    (
        "sys3_ack",
        r#"{"specversion":"1.0","type":"sys3_ack","id":"T00012345-3","source":"bench","time":"2026-03-02T08:01:30.246Z","data":{"trade_id":"T00012345","status":"ACK"}}"#,
    ),
    (
        "file_received",
        r#"{"specversion":"1.0","type":"file_received","id":"R12345","source":"bench","time":"2026-03-02T08:02:03.450Z","data":{"job_id":"JOB-00042","file_id":"F00012345","size":3372}}"#,
    ),
    (
        "escaped (reference path)",
        r#"{"specversion":"1.0","type":"sys3_ack","id":"T00012345-3","source":"bench","time":"2026-03-02T08:01:30.246Z","data":{"trade_id":"T\u00e912345","status":"ACK"}}"#,
    ),
];

fn decode(c: &mut Criterion) {
    let sources = vec![SourceFile { path: "bench.mon".into(), text: RULES.into() }];
    let program = compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("the bench rules compile");
    let decoder = Decoder::new(&program);
    for (name, line) in LINES {
        let decoded = decoder.decode(line);
        assert!(matches!(decoded, Decoded::Event(_)), "{name}: {decoded:?}");
        assert_eq!(decoded, decoder.decode_reference(line), "{name}: the decoders disagree");
        let mut group = c.benchmark_group(format!("decode/{name}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("fast", |b| b.iter(|| decoder.decode(black_box(line))));
        group.bench_function("reference", |b| b.iter(|| decoder.decode_reference(black_box(line))));
        group.finish();
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
