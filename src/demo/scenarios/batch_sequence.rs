//! `batch_sequence`: extract (A), compute (B), publish (C), the regions
//! taking turns, with the trouble a nightly batch has.

use serde_json::{json, Value};

use crate::demo::draw::Draw;
use crate::demo::outbox::{Outbox, STREAM_BATCHES};
use crate::demo::{MINUTE, SECOND};
use crate::rng::SplitMix64;

/// The scheduler retries a job whose completion callback timed out, so A is
/// reported twice.
const BATCH_RETRY: f64 = 0.03;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BatchFate {
    Clean,
    /// Compute finished under 2 minutes: it skipped its inputs.
    EarlyCompute,
    /// Compute took over 15 minutes.
    LateCompute,
    /// Publish after the 10 min warning (at risk) ...
    SlowPublish,
    /// ... after the 15 min deadline (missing, paged, then late) ...
    LatePublish,
    /// ... or never.
    NoPublish,
    /// Publish fired on a stale trigger, before compute: yesterday's numbers went out.
    PublishBeforeCompute,
}

const BATCH_TROUBLES: &[(BatchFate, f64)] = &[
    (BatchFate::EarlyCompute, 0.05),
    (BatchFate::LateCompute, 0.01),
    (BatchFate::SlowPublish, 0.05),
    (BatchFate::LatePublish, 0.02),
    (BatchFate::NoPublish, 0.01),
    (BatchFate::PublishBeforeCompute, 0.03),
];

/// Region, extract host, compute/publish host, typical record count.
const BATCH_REGIONS: &[(&str, &str, &str, i64)] = &[
    ("EMEA", "batch-ldn-01", "batch-ldn-02", 182_000),
    ("AMER", "batch-ny-01", "batch-ny-02", 240_000),
    ("APAC", "batch-hk-01", "batch-hk-02", 96_000),
];

pub(crate) fn plan_batch(rng: &mut SplitMix64, tag: &str, n: u64, t0: i64, out: &mut Outbox) {
    const S: u64 = STREAM_BATCHES;
    const SOURCE: &str = "scheduler/control-m";
    // The regions take turns.
    let (region, extract_host, compute_host, typical) = BATCH_REGIONS[(n as usize) % BATCH_REGIONS.len()];
    let batch_id = format!("RISK-{region}-{tag}-{n:04}");
    let fate = rng.fate(BATCH_TROUBLES, BatchFate::Clean);
    let records = typical + rng.between(-typical / 100, typical / 100);
    let a = [("batch_id", json!(batch_id)), ("records", json!(records)), ("host", json!(extract_host))];
    out.add(S, t0, SOURCE, "batch_a_completed", &a);
    if rng.chance(BATCH_RETRY) {
        out.add(S, t0 + rng.between(20 * SECOND, 90 * SECOND), SOURCE, "batch_a_completed", &a);
    }

    let compute_after = match fate {
        BatchFate::EarlyCompute => rng.between(40 * SECOND, 110 * SECOND),
        BatchFate::LateCompute => rng.between(16 * MINUTE, 20 * MINUTE),
        _ => rng.between(3 * MINUTE, 9 * MINUTE),
    };
    let publish_after = match fate {
        BatchFate::SlowPublish => Some(rng.between(10 * MINUTE + 30 * SECOND, 14 * MINUTE + 30 * SECOND)),
        BatchFate::LatePublish => Some(rng.between(16 * MINUTE, 22 * MINUTE)),
        BatchFate::NoPublish => None,
        _ => Some(rng.between(2 * MINUTE, 8 * MINUTE)),
    };
    let (compute_at, publish_at) = if fate == BatchFate::PublishBeforeCompute {
        let publish = t0 + rng.between(150 * SECOND, 4 * MINUTE);
        (publish + rng.between(MINUTE, 3 * MINUTE), Some(publish))
    } else {
        let compute = t0 + compute_after;
        (compute, publish_after.map(|p| compute + p))
    };
    // An early compute skipped its inputs: it processed nothing.
    let computed = if fate == BatchFate::EarlyCompute { 0 } else { records };
    out.add(
        S,
        compute_at,
        SOURCE,
        "batch_b_completed",
        &[("batch_id", json!(batch_id)), ("records", json!(computed)), ("host", json!(compute_host))],
    );
    if let Some(publish_at) = publish_at {
        let path = if rng.chance(0.9) { json!(format!("/reports/risk/{batch_id}.pdf")) } else { Value::Null };
        out.add(
            S,
            publish_at,
            SOURCE,
            "batch_c_completed",
            &[
                ("batch_id", json!(batch_id)),
                ("records", json!(rng.between(380, 420))),
                ("host", json!(compute_host)),
                ("report_path", path),
            ],
        );
    }
}
