//! `GET /api/v1/workflows/{w}/trends` for a scale-out group: every task's
//! series added, bucket by bucket, and the anomalies judged on the sum.
//!
//! The tasks are asked for the same buckets: the front fixes `from` and
//! `to` (the caller's, or the hour or day up to the latest of the tasks'
//! clocks) so that each task's series lines up with the others'. A
//! bucket's baseline is the sum of the tasks' baselines (each the mean of
//! its own history: a sum of means is the mean of the sums over the same
//! buckets), while every task has one (a task's rollups start afresh at
//! each assignment), with the fewest samples among them; a stage's stall
//! is judged on the items leaving it in every task.
//!
//! What it must not do: keep a series, or judge an anomaly on one task's.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::front::Front;
use super::group_api::{self, Question};
use super::group_views;
use crate::http::workflows::{trend_range, Trend, TrendAsk, TrendSlice};
use crate::rollups::{Baseline, Counts, Point};

pub(super) async fn trends(
    State(front): State<Front>,
    Path(workflow): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    match trend(&front, workflow, group_api::pairs(&uri), &headers).await {
        Ok(trend) => Json(trend).into_response(),
        Err(response) => response,
    }
}

async fn trend(
    front: &Front,
    workflow: String,
    pairs: Vec<(String, String)>,
    headers: &HeaderMap,
) -> Result<Trend, Response> {
    let TrendAsk { stage, group, from, to, step } = TrendAsk::parse(pairs).map_err(IntoResponse::into_response)?;
    let views = group_views::group_views(front, headers).await?;
    // As a task judges its own (`http/workflows.rs`), on the group's views.
    let slice = TrendSlice::of(&views, &workflow, stage.as_deref(), group.as_deref());
    let TrendSlice { leaving: leaving_stages, in_flight: in_flight_now } =
        slice.map_err(IntoResponse::into_response)?;
    let ends_now = to.is_none();
    let (from, to) = trend_range(from, to, views.clock, step);

    let path = format!("/api/v1/workflows/{workflow}/trends");
    let ask = |stage: Option<&str>| {
        let mut query = vec![
            ("from".to_string(), mon_stdlib::time::format_rfc3339(from)),
            ("to".to_string(), mon_stdlib::time::format_rfc3339(to)),
            ("step".to_string(), step.name().to_string()),
        ];
        if let Some(stage) = stage {
            query.push(("stage".into(), stage.to_string()));
        }
        if let Some(group) = &group {
            query.push(("group".into(), group.clone()));
        }
        Question::get(&path, query, headers)
    };
    let points = added(front, &ask(stage.as_deref())).await?;
    let mut leaving = vec![0.0; points.len()];
    for next in &leaving_stages {
        for (sum, point) in leaving.iter_mut().zip(added(front, &ask(Some(next))).await?) {
            *sum += point.counts.entered;
        }
    }
    let ask = TrendAsk { stage, group, from: None, to: None, step };
    Ok(Trend::judged(workflow, ask, points, &leaving, in_flight_now.filter(|_| ends_now)))
}

/// Every task's series for `question`, added bucket by bucket.
async fn added(front: &Front, question: &Question) -> Result<Vec<Point>, Response> {
    let mut sum: Option<Vec<Point>> = None;
    let mut failures = Vec::new();
    for (partition, trend) in front.json_of_every(question).await? {
        let Some(points) = trend["points"].as_array().map(|p| read(p)) else {
            failures.push(format!("task {partition}: an answer that is not a trend"));
            continue;
        };
        match &mut sum {
            None => sum = Some(points),
            Some(sum) => {
                let lined_up = sum.len() == points.len() && sum.iter().zip(&points).all(|(a, b)| a.at == b.at);
                if !lined_up {
                    failures.push(format!("task {partition}: its buckets do not line up with the others'"));
                    continue;
                }
                for (mine, theirs) in sum.iter_mut().zip(points) {
                    add(mine, theirs);
                }
            }
        }
    }
    if !failures.is_empty() {
        return Err(group_api::unanswered(&failures));
    }
    Ok(sum.unwrap_or_default())
}

/// Adds another task's point. The bucket keeps a baseline only while
/// every task has one: a task without history (its rollups start afresh
/// at each assignment) adds to the count and not to the baseline, which
/// would then read as a spike.
fn add(mine: &mut Point, theirs: Point) {
    plus(&mut mine.counts, &theirs.counts);
    match (&mut mine.baseline, theirs.baseline) {
        (Some(mine), Some(theirs)) => {
            plus(&mut mine.counts, &theirs.counts);
            mine.samples = mine.samples.min(theirs.samples);
        }
        (baseline, None) => *baseline = None,
        (None, Some(_)) => {}
    }
}

fn plus(sum: &mut Counts, add: &Counts) {
    sum.entered += add.entered;
    sum.completed += add.completed;
    sum.late += add.late;
    sum.missing += add.missing;
}

/// A task's points, as `GET .../trends` writes them.
fn read(points: &[Value]) -> Vec<Point> {
    let counts = |v: &Value| Counts {
        entered: v["entered"].as_f64().unwrap_or(0.0),
        completed: v["completed"].as_f64().unwrap_or(0.0),
        late: v["late"].as_f64().unwrap_or(0.0),
        missing: v["missing"].as_f64().unwrap_or(0.0),
    };
    points
        .iter()
        .map(|point| Point {
            at: point["at"].as_str().unwrap_or_default().to_string(),
            counts: counts(point),
            baseline: point["baseline"].is_object().then(|| Baseline {
                counts: counts(&point["baseline"]),
                method: match point["baseline"]["method"].as_str() {
                    Some("previous_hour") => "previous_hour",
                    _ => "same_time_of_day",
                },
                samples: point["baseline"]["samples"].as_u64().unwrap_or(0) as u32,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_buckets_add_up_and_a_baseline_is_the_sum_of_all_theirs() {
        let task = |entered: f64, baseline: Option<f64>| {
            let baseline = baseline.map(|b| {
                serde_json::json!({"entered": b, "completed": 0.0, "late": 0.0,
                "missing": 0.0, "method": "same_time_of_day", "samples": 7})
            });
            serde_json::json!([{ "at": "2026-03-03T08:00:00Z", "entered": entered, "completed": 1.0, "late": 0.0,
                "missing": 0.0, "baseline": baseline }])
        };
        let sum_of = |tasks: Vec<Value>| {
            let mut tasks = tasks.into_iter();
            let mut sum = read(tasks.next().unwrap().as_array().unwrap());
            for other in tasks {
                for (mine, theirs) in sum.iter_mut().zip(read(other.as_array().unwrap())) {
                    add(mine, theirs);
                }
            }
            sum
        };
        let sum = sum_of(vec![task(3.0, Some(4.0)), task(5.0, Some(6.0))]);
        assert_eq!((sum[0].counts.entered, sum[0].counts.completed), (8.0, 2.0));
        let baseline = sum[0].baseline.as_ref().unwrap();
        assert_eq!((baseline.counts.entered, baseline.samples, baseline.method), (10.0, 7, "same_time_of_day"));
        // A task without history: its count is there, and no baseline is
        // the group's, whichever task comes first.
        for tasks in [vec![task(3.0, Some(4.0)), task(1.0, None)], vec![task(1.0, None), task(3.0, Some(4.0))]] {
            let sum = sum_of(tasks);
            assert_eq!((sum[0].counts.entered, sum[0].baseline.is_none()), (4.0, true));
        }
    }
}
