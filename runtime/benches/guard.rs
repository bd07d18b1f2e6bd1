//! Criterion benchmark of conditions: native code from `mon-jit` against
//! the reference interpreter, on the relevance predicates of real rules
//! compiled by the real compiler (issue 13, "Cranelift, where it pays").
//!
//! `cargo bench -p mon-runtime --bench guard`. Shapes: a number and a
//! string (`amount > 1000000 and currency == "USD"`), five numeric
//! conjuncts, a time comparison (`shipped - ordered > 5m`), and the lone
//! string equality of the many-rules benchmark (`job_id == "JOB-00042"`).
//! For each, both are checked to agree on every event before timing, and
//! the events alternate so that both outcomes are timed. What the figures
//! decide is `engine/conditions.rs::worth_compiling`.

use criterion::{criterion_group, criterion_main, Criterion};
use mon_compiler::ir::{Expr, Program, Value};
use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_jit::{Guards, Input, Kind, Verdict};
use mon_runtime::eval::{holds, Env};
use std::hint::black_box;

const RULES: &str = r#"
event payment { id: string, amount: int, currency: string, fee: float, tries: int, risk: float, hour: int }
event shipment { id: string, ordered: timestamp, shipped: timestamp }
event file_received { job_id: string, file_id: string, size: int }
workflow large_usd {
  key id
  start paid: payment where amount > 1000000 and currency == "USD"
}
workflow five_numbers {
  key id
  start paid: payment where amount > 100 and fee < 2.5 and tries <= 3 and risk >= 0.2 and hour != 4
}
workflow slow_shipping {
  key id
  start shipped: shipment where shipped - ordered > 5m
}
workflow job_00042 {
  key file_id
  start received: file_received where job_id == "JOB-00042"
}
"#;

fn program() -> Program {
    let sources = vec![SourceFile { path: "guard.mon".into(), text: RULES.into() }];
    compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("the benchmark's rules compile")
}

/// (workflow, events to evaluate it on).
fn cases() -> Vec<(&'static str, Vec<Vec<Value>>)> {
    let s = |v: &str| Value::String(v.into());
    let payment = |amount: i64, currency: &str, fee: f64, tries: i64, risk: f64, hour: i64| {
        vec![
            s("P1"),
            Value::Int(amount),
            s(currency),
            Value::Float(fee),
            Value::Int(tries),
            Value::Float(risk),
            Value::Int(hour),
        ]
    };
    let shipment = |ordered: i64, shipped: i64| vec![s("S1"), Value::Timestamp(ordered), Value::Timestamp(shipped)];
    let file = |job: &str| vec![s(job), s("F00012345"), Value::Int(3372)];
    vec![
        ("large_usd", vec![payment(2_000_000, "USD", 1.0, 1, 0.5, 9), payment(2_000_000, "EUR", 1.0, 1, 0.5, 9)]),
        ("five_numbers", vec![payment(500, "USD", 1.0, 2, 0.5, 9), payment(500, "USD", 1.0, 2, 0.5, 4)]),
        ("slow_shipping", vec![shipment(0, 600_000), shipment(0, 60_000)]),
        ("job_00042", vec![file("JOB-00042"), file("JOB-00043")]),
    ]
}

fn guard(c: &mut Criterion) {
    let program = program();
    let functions = mon_stdlib::registry();
    for (name, events) in cases() {
        let workflow = program.workflow(name).expect("the workflow exists");
        let step = &workflow.steps[0];
        let condition: &Expr = step.relevance.as_ref().expect("the step has a where clause");
        let fields = &program.events[step.event as usize].fields;
        let kind_of = |input: Input| match input {
            Input::Field(slot) => fields.get(slot as usize).map(|f| Kind::of_field(&f.ty)),
            Input::Kept { .. } => None,
        };
        let kind_of: &dyn Fn(Input) -> Option<Kind> = &kind_of;
        let guards = Guards::compile([(condition, kind_of)]).expect("a native backend");
        let native = guards.get(0).expect("the condition compiles");
        for event in &events {
            let env = Env { fields: event, kept: &[], functions };
            let answer = native.run(event, &[]);
            assert_ne!(answer, Verdict::Unknown, "{name}: every operand has its declared kind");
            assert_eq!(answer == Verdict::True, holds(condition, &env), "{name}: native and interpreter agree");
        }
        let mut group = c.benchmark_group(format!("guard/{name}"));
        group.bench_function("interpreter", |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                let event = &events[i % events.len()];
                holds(black_box(condition), &Env { fields: black_box(event), kept: &[], functions })
            })
        });
        group.bench_function("jit", |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                let event = &events[i % events.len()];
                native.run(black_box(event), &[]) == Verdict::True
            })
        });
        group.finish();
    }
}

criterion_group!(benches, guard);
criterion_main!(benches);
