//! Trend rollups: entered, completed, late and missing counts per minute
//! and per (workflow, stage, group), kept longer than the record log and
//! compacted to hours, for trend charts and their baselines.
//!
//! The engine counts movements per minute (`aggregates::Tally`); the
//! processing thread turns each batch's tally into rows ([`rows`]) that
//! go into sled in the batch's own atomic write, beside `m/applied`. So
//! a replay after a crash counts a batch exactly once: a batch at or below
//! `m/applied` has its rows already and its tally is dropped; one above
//! it is written now, as its records are (docs/notes/durability.md).
//!
//! Keys live in the store's default tree, because a sled `Batch` writes
//! one tree and the batch write must stay one atomic `apply_batch`:
//! `u` + `m`|`h` (minute or hour) + workflow + 0 + bucket start (ms, as
//! big-endian u64 with the sign bit flipped, so keys sort by time) +
//! stage + 0 + group (values joined by `/`). A value is four big-endian
//! u64s: entered, completed, late, missing.
//!
//! Compaction ([`compact`]) folds minute rows older than
//! `[retention] rollups_minutes_ms` into hour rows and drops hour rows
//! older than `rollups_hours_ms`, in one atomic batch, on the processing
//! thread (the rows' only writer). Reading ([`series`]) is for the HTTP
//! side and never writes.
//!
//! [`anomalies`] reads a series against its baselines and names the
//! intervals worth a look (`drop`, `spike`, `stalled`); it is a pure
//! function of the points, so its thresholds are tested on constructed
//! series.

use std::collections::{BTreeMap, HashMap};

use mon_compiler::ir::Program;
use mon_runtime::aggregates::{Movement, Tally};
use mon_runtime::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Domain, Error};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// How many days back the same-time-of-day baseline looks.
pub const BASELINE_DAYS: i64 = 7;

/// Minute or hour rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Minute,
    Hour,
}

impl Step {
    fn tag(self) -> u8 {
        match self {
            Step::Minute => b'm',
            Step::Hour => b'h',
        }
    }

    pub fn ms(self) -> i64 {
        match self {
            Step::Minute => MINUTE_MS,
            Step::Hour => HOUR_MS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Step::Minute => "minute",
            Step::Hour => "hour",
        }
    }
}

fn time_bytes(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_of(bytes: &[u8]) -> Option<i64> {
    let array: [u8; 8] = bytes.try_into().ok()?;
    Some((u64::from_be_bytes(array) ^ (1 << 63)) as i64)
}

fn prefix(step: Step, workflow: &str) -> Vec<u8> {
    let mut key = vec![b'u', step.tag()];
    key.extend_from_slice(workflow.as_bytes());
    key.push(0);
    key
}

/// The key of one row.
pub fn key(step: Step, workflow: &str, bucket: i64, stage: &str, group: &str) -> Vec<u8> {
    let mut key = prefix(step, workflow);
    key.extend_from_slice(&time_bytes(bucket));
    key.extend_from_slice(stage.as_bytes());
    key.push(0);
    key.extend_from_slice(group.as_bytes());
    key
}

/// A row's key read back: (workflow, bucket, stage, group).
struct RowKey<'a> {
    workflow: &'a [u8],
    bucket: i64,
    stage: &'a [u8],
    group: &'a [u8],
}

fn parse_key(key: &[u8]) -> Option<RowKey<'_>> {
    let rest = key.get(2..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    let (workflow, rest) = (&rest[..end], &rest[end + 1..]);
    let bucket = time_of(rest.get(..8)?)?;
    let rest = &rest[8..];
    let end = rest.iter().position(|&b| b == 0)?;
    Some(RowKey { workflow, bucket, stage: &rest[..end], group: &rest[end + 1..] })
}

pub fn encode(m: &Movement) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, n) in [m.entered, m.completed, m.late, m.missing].into_iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&n.to_be_bytes());
    }
    out
}

pub fn decode(bytes: &[u8]) -> Option<Movement> {
    let n = |i: usize| bytes.get(i * 8..i * 8 + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    Some(Movement { entered: n(0)?, completed: n(1)?, late: n(2)?, missing: n(3)? })
}

/// A batch's tally as minute rows (key, movements to add), named by the
/// program so that rows outlive a change of rule ids.
pub fn rows(program: &Program, state: &State, tally: Tally) -> Vec<(Vec<u8>, Movement)> {
    let mut out = Vec::with_capacity(tally.len());
    for ((minute, workflow, stage, group), movement) in tally {
        let Some(workflow) = program.workflows.get(workflow as usize) else { continue };
        let stage = workflow.steps.get(stage as usize).map_or("", |s| s.name.as_str());
        let group = crate::views::group_text(state.group(group));
        out.push((key(Step::Minute, &workflow.name, minute, stage, &group), movement));
    }
    out
}

/// Adds `rows` to what sled holds for them, into `write`. The caller is
/// the rows' only writer, so reading before the atomic write is safe.
/// A key may come twice (a batch with an activation in it counts before
/// and after): it is summed first, since a batch keeps only its last
/// insert of a key.
pub fn add_rows(db: &sled::Db, write: &mut sled::Batch, rows: &[(Vec<u8>, Movement)]) -> Result<(), Error> {
    let mut summed: BTreeMap<&[u8], Movement> = BTreeMap::new();
    for (key, movement) in rows {
        summed.entry(key.as_slice()).or_default().add(movement);
    }
    for (key, movement) in summed {
        let mut total = match db.get(key)? {
            Some(old) => decode(&old).ok_or_else(|| damaged(key))?,
            None => Movement::default(),
        };
        total.add(&movement);
        write.insert(key, &encode(&total));
    }
    Ok(())
}

/// A row as stored: its key and its value.
pub type Row = (Vec<u8>, Vec<u8>);

/// Every row as stored, (key, value): what a snapshot in the changelog
/// carries, so that a state rebuilt elsewhere keeps its trends.
pub fn export(db: &sled::Db) -> Result<Vec<Row>, Error> {
    let mut rows = Vec::new();
    for prefix in [&b"um"[..], b"uh"] {
        for entry in db.scan_prefix(prefix) {
            let (key, value) = entry?;
            rows.push((key.to_vec(), value.to_vec()));
        }
    }
    Ok(rows)
}

/// Rows a snapshot carried ([`export`]), as movements to add to a store
/// that holds none; a row that is not one is damage.
pub fn import(rows: &[Row]) -> Result<Vec<(Vec<u8>, Movement)>, Error> {
    rows.iter()
        .map(|(key, value)| {
            let row = (key.starts_with(b"um") || key.starts_with(b"uh")).then(|| decode(value)).flatten();
            Ok((key.clone(), row.ok_or_else(|| damaged(key))?))
        })
        .collect()
}

fn damaged(key: &[u8]) -> Error {
    Error::damaged(Domain::Store, format!("the rollup row {} is damaged", String::from_utf8_lossy(key)))
}

/// Folds minute rows before `minutes_before` into hour rows and drops hour
/// rows before `hours_before`, in one atomic write. Returns the minute
/// rows folded.
pub fn compact(db: &sled::Db, minutes_before: i64, hours_before: i64) -> Result<usize, Error> {
    let mut write = sled::Batch::default();
    let mut hours: BTreeMap<Vec<u8>, Movement> = BTreeMap::new();
    let mut folded = 0;
    for entry in db.scan_prefix(b"um") {
        let (key, value) = entry?;
        let row = parse_key(&key).ok_or_else(|| damaged(&key))?;
        if row.bucket >= minutes_before {
            continue;
        }
        let movement = decode(&value).ok_or_else(|| damaged(&key))?;
        let hour = row.bucket.div_euclid(HOUR_MS) * HOUR_MS;
        let (workflow, stage, group) = (lossy(row.workflow), lossy(row.stage), lossy(row.group));
        if hour >= hours_before {
            hours.entry(self::key(Step::Hour, &workflow, hour, &stage, &group)).or_default().add(&movement);
        }
        write.remove(key);
        folded += 1;
    }
    for entry in db.scan_prefix(b"uh") {
        let (key, value) = entry?;
        let row = parse_key(&key).ok_or_else(|| damaged(&key))?;
        if row.bucket < hours_before {
            write.remove(key);
        } else if let Some(add) = hours.remove(key.as_ref()) {
            let mut total = decode(&value).ok_or_else(|| damaged(&key))?;
            total.add(&add);
            write.insert(key, &encode(&total));
        }
    }
    for (key, movement) in hours {
        write.insert(key, &encode(&movement));
    }
    db.apply_batch(write)?;
    db.flush()?;
    Ok(folded)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Movements as rates: counts per bucket, as numbers, since a baseline
/// is a mean and a minute read from an hour row is a share of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Counts {
    pub entered: f64,
    pub completed: f64,
    pub late: f64,
    pub missing: f64,
}

impl Counts {
    fn add(&mut self, m: &Movement, share: f64) {
        self.entered += m.entered as f64 * share;
        self.completed += m.completed as f64 * share;
        self.late += m.late as f64 * share;
        self.missing += m.missing as f64 * share;
    }

    fn plus(&mut self, other: &Counts) {
        self.entered += other.entered;
        self.completed += other.completed;
        self.late += other.late;
        self.missing += other.missing;
    }

    fn divided(mut self, n: f64) -> Counts {
        self.entered /= n;
        self.completed /= n;
        self.late /= n;
        self.missing /= n;
        self
    }
}

/// One point of a trend.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Point {
    /// The bucket's start (RFC 3339).
    pub at: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// What this bucket usually holds; null without any history before it.
    pub baseline: Option<Baseline>,
}

/// A point's baseline and how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Baseline {
    #[serde(flatten)]
    pub counts: Counts,
    /// `same_time_of_day`: the mean of this time of day over the previous
    /// days with history (up to 7); `previous_hour`: the mean of the
    /// buckets of the previous 60 minutes with history.
    pub method: &'static str,
    /// How many buckets the mean is over.
    pub samples: u32,
}

/// Which rows a trend reads.
pub struct Query<'a> {
    pub workflow: &'a str,
    pub stage: Option<&'a str>,
    pub group: Option<&'a str>,
    pub from: i64,
    pub to: i64,
    pub step: Step,
}

/// The series from `from` to `to` (bucket starts, both ends aligned down),
/// every bucket present, with its baseline.
pub fn series(db: &sled::Db, query: &Query) -> Result<Vec<Point>, Error> {
    let width = query.step.ms();
    let from = query.from.div_euclid(width) * width;
    let to = query.to.div_euclid(width) * width;
    if from > to {
        return Ok(Vec::new());
    }
    let reach = from.saturating_sub(BASELINE_DAYS * DAY_MS + HOUR_MS);
    let values = read(db, query, reach, to + width)?;
    let history_start = first_bucket(db, query.workflow)?;
    let has_history = |at: i64| history_start.is_some_and(|start| at >= start);
    let value = |at: i64| values.get(&at).copied().unwrap_or_default();
    let mut points = Vec::new();
    let mut at = from;
    while at <= to {
        let days: Vec<i64> = (1..=BASELINE_DAYS).map(|k| at - k * DAY_MS).filter(|t| has_history(*t)).collect();
        let baseline = if !days.is_empty() {
            let mut sum = Counts::default();
            days.iter().for_each(|t| sum.plus(&value(*t)));
            Some(Baseline {
                counts: sum.divided(days.len() as f64),
                method: "same_time_of_day",
                samples: days.len() as u32,
            })
        } else {
            let earlier: Vec<i64> = (1..=HOUR_MS / width).map(|k| at - k * width).filter(|t| has_history(*t)).collect();
            (!earlier.is_empty()).then(|| {
                let mut sum = Counts::default();
                earlier.iter().for_each(|t| sum.plus(&value(*t)));
                Baseline {
                    counts: sum.divided(earlier.len() as f64),
                    method: "previous_hour",
                    samples: earlier.len() as u32,
                }
            })
        };
        points.push(Point { at: mon_stdlib::time::format_rfc3339(at), counts: value(at), baseline });
        at += width;
    }
    Ok(points)
}

/// Buckets of `query.step` from `from` (inclusive) to `to` (exclusive),
/// summed over the stages and groups the query leaves open. A minute
/// series reads an hour row as 1/60 of it in each of its minutes; an hour
/// series adds the minute rows not compacted yet to their hour.
fn read(db: &sled::Db, query: &Query, from: i64, to: i64) -> Result<HashMap<i64, Counts>, Error> {
    let mut out: HashMap<i64, Counts> = HashMap::new();
    for step in [Step::Minute, Step::Hour] {
        let base = prefix(step, query.workflow);
        // An hour row starts up to an hour before the first minute asked.
        let start = [base.as_slice(), &time_bytes(from - HOUR_MS)].concat();
        let end = [base.as_slice(), &time_bytes(to)].concat();
        for entry in db.range(start..end) {
            let (key, value) = entry?;
            let row = parse_key(&key).ok_or_else(|| damaged(&key))?;
            if query.stage.is_some_and(|s| s.as_bytes() != row.stage)
                || query.group.is_some_and(|g| g.as_bytes() != row.group)
            {
                continue;
            }
            let movement = decode(&value).ok_or_else(|| damaged(&key))?;
            match (query.step, step) {
                (Step::Minute, Step::Minute) | (Step::Hour, Step::Hour) => {
                    out.entry(row.bucket).or_default().add(&movement, 1.0)
                }
                (Step::Hour, Step::Minute) => {
                    out.entry(row.bucket.div_euclid(HOUR_MS) * HOUR_MS).or_default().add(&movement, 1.0)
                }
                (Step::Minute, Step::Hour) => {
                    for minute in 0..60 {
                        out.entry(row.bucket + minute * MINUTE_MS).or_default().add(&movement, 1.0 / 60.0);
                    }
                }
            }
        }
    }
    out.retain(|at, _| *at >= from && *at < to);
    Ok(out)
}

/// The first bucket the workflow has any row for: where its history starts.
fn first_bucket(db: &sled::Db, workflow: &str) -> Result<Option<i64>, Error> {
    let mut first: Option<i64> = None;
    for step in [Step::Minute, Step::Hour] {
        if let Some(entry) = db.scan_prefix(prefix(step, workflow)).next() {
            let (key, _) = entry?;
            let bucket = parse_key(&key).ok_or_else(|| damaged(&key))?.bucket;
            first = Some(first.map_or(bucket, |f| f.min(bucket)));
        }
    }
    Ok(first)
}

/// What makes an anomaly. A rate is a stage's (or the workflow's)
/// `entered` per bucket; the baseline is the point's own.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// A drop: the rate under this share of the baseline...
    pub drop_below: f64,
    /// A spike: the rate over this multiple of the baseline...
    pub spike_above: f64,
    /// ...and over the baseline by at least this many items a bucket, so
    /// that 0 → 1 on a quiet stage is no spike.
    pub spike_margin: f64,
    /// Drops and spikes are judged only where the baseline is at least
    /// this many items a bucket: a drop from 0.3 a minute is noise.
    pub min_baseline: f64,
    /// ...and is a mean over at least this many buckets: the first minutes
    /// of a service's history make a baseline of a few odd minutes.
    pub min_samples: u32,
    /// A drop or spike must last this many buckets in a row: one odd
    /// minute is not a trend.
    pub min_buckets: usize,
    /// Stalled: items in flight, and nothing entered or left for at least
    /// this long, up to the end of the series.
    pub stall_ms: i64,
}

/// The thresholds the trends endpoint uses (docs/service.md, "Trends").
pub const THRESHOLDS: Thresholds = Thresholds {
    drop_below: 0.5,
    spike_above: 2.0,
    spike_margin: 3.0,
    min_baseline: 2.0,
    min_samples: 10,
    min_buckets: 2,
    stall_ms: 5 * MINUTE_MS,
};

/// The kinds of anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// The rate well below its baseline.
    Drop,
    /// The rate well above its baseline.
    Spike,
    /// Items in flight, and nothing entering or leaving.
    Stalled,
}

/// An interval of a trend worth a look.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// The first bucket's start and the last bucket's end (RFC 3339).
    pub from: String,
    pub to: String,
    /// Items entering per bucket over the interval, on average.
    pub rate: f64,
    /// The baseline's mean over the interval (0 for `stalled`).
    pub baseline: f64,
    /// The same in words: "drop: 1.0 entered/minute against 10.0 usually".
    pub text: String,
}

/// What [`anomalies`] reads beside the points.
pub struct Context<'a> {
    pub step: Step,
    /// Per point: the items that left the stage in that bucket (entries
    /// into the steps out of it); `None` for a whole workflow, where
    /// leaving is `completed`.
    pub leaving: Option<&'a [f64]>,
    /// Items in flight now in the slice; `None` when unknown (a stage of
    /// one group) or when the series does not end now: no stall is judged.
    pub in_flight: Option<u64>,
}

/// The anomalies of a series, in time order: runs of drops and spikes
/// against the baseline, then a stall at the end.
pub fn anomalies(points: &[Point], context: &Context, thresholds: &Thresholds) -> Vec<Anomaly> {
    let width = context.step.ms();
    let unit = context.step.name();
    let judge = |point: &Point| -> Option<AnomalyKind> {
        let baseline = point.baseline.as_ref()?;
        let (usual, rate) = (baseline.counts.entered, point.counts.entered);
        if usual < thresholds.min_baseline || baseline.samples < thresholds.min_samples {
            return None;
        }
        if rate < usual * thresholds.drop_below {
            Some(AnomalyKind::Drop)
        } else if rate > usual * thresholds.spike_above && rate - usual >= thresholds.spike_margin {
            Some(AnomalyKind::Spike)
        } else {
            None
        }
    };
    let mut out = Vec::new();
    let mut start = 0;
    while start < points.len() {
        let kind = judge(&points[start]);
        let mut end = start + 1;
        while end < points.len() && judge(&points[end]) == kind {
            end += 1;
        }
        if let Some(kind) = kind.filter(|_| end - start >= thresholds.min_buckets) {
            let run = &points[start..end];
            let n = run.len() as f64;
            let rate = run.iter().map(|p| p.counts.entered).sum::<f64>() / n;
            let usual = run.iter().filter_map(|p| p.baseline.as_ref()).map(|b| b.counts.entered).sum::<f64>() / n;
            let word = if kind == AnomalyKind::Drop { "drop" } else { "spike" };
            out.push(interval(
                kind,
                &run[0],
                &run[run.len() - 1],
                width,
                rate,
                usual,
                format!("{word}: {rate:.1} entered/{unit} against {usual:.1} usually"),
            ));
        }
        start = end;
    }
    if let Some(in_flight) = context.in_flight.filter(|n| *n > 0) {
        let moved = |i: usize| {
            let point = &points[i];
            let left = match context.leaving {
                Some(leaving) => leaving.get(i).copied().unwrap_or(0.0),
                None => point.counts.completed,
            };
            point.counts.entered + left > 0.0
        };
        let quiet = (0..points.len()).rev().take_while(|&i| !moved(i)).count();
        if quiet > 0 && quiet as i64 * width >= thresholds.stall_ms {
            let first = &points[points.len() - quiet];
            let last = &points[points.len() - 1];
            let minutes = quiet as i64 * width / MINUTE_MS;
            let text = format!("stalled: {in_flight} in flight, nothing entered or left for {minutes} min");
            out.push(interval(AnomalyKind::Stalled, first, last, width, 0.0, 0.0, text));
        }
    }
    out
}

fn interval(
    kind: AnomalyKind,
    first: &Point,
    last: &Point,
    width: i64,
    rate: f64,
    baseline: f64,
    text: String,
) -> Anomaly {
    let end = mon_stdlib::time::parse_rfc3339(&last.at)
        .map_or_else(|| last.at.clone(), |at| mon_stdlib::time::format_rfc3339(at + width));
    Anomaly { kind, from: first.at.clone(), to: end, rate, baseline, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        (dir, db)
    }

    fn put(db: &sled::Db, step: Step, at: i64, stage: &str, entered: u64) {
        let mut write = sled::Batch::default();
        let row = (key(step, "w", at, stage, ""), Movement { entered, ..Movement::default() });
        add_rows(db, &mut write, &[row]).unwrap();
        db.apply_batch(write).unwrap();
    }

    #[test]
    fn a_key_twice_in_one_batch_is_summed() {
        let (_dir, db) = db();
        put(&db, Step::Minute, 0, "a", 1);
        let row = || (key(Step::Minute, "w", 0, "a", ""), Movement { entered: 2, ..Movement::default() });
        let mut write = sled::Batch::default();
        add_rows(&db, &mut write, &[row(), row()]).unwrap();
        db.apply_batch(write).unwrap();
        let value = db.get(key(Step::Minute, "w", 0, "a", "")).unwrap().unwrap();
        assert_eq!(decode(&value).unwrap().entered, 5);
    }

    #[test]
    fn keys_sort_by_time_across_the_epoch_and_read_back() {
        let before = key(Step::Minute, "w", -60_000, "a", "g");
        let after = key(Step::Minute, "w", 60_000, "a", "g");
        assert!(before < after);
        let row = parse_key(&after).unwrap();
        assert_eq!((row.workflow, row.bucket, row.stage, row.group), (&b"w"[..], 60_000, &b"a"[..], &b"g"[..]));
    }

    #[test]
    fn rows_add_up_and_compaction_keeps_the_sum() {
        let (_dir, db) = db();
        put(&db, Step::Minute, 0, "a", 2);
        put(&db, Step::Minute, 0, "a", 3);
        put(&db, Step::Minute, MINUTE_MS, "b", 4);
        put(&db, Step::Minute, HOUR_MS, "a", 1);
        let q = Query { workflow: "w", stage: None, group: None, from: 0, to: HOUR_MS, step: Step::Hour };
        let before = series(&db, &q).unwrap();
        assert_eq!(before.iter().map(|p| p.counts.entered).collect::<Vec<_>>(), [9.0, 1.0]);
        assert_eq!(compact(&db, HOUR_MS, 0).unwrap(), 2, "two minute rows (one added to twice) in the first hour");
        let after = series(&db, &q).unwrap();
        assert_eq!(after.iter().map(|p| p.counts.entered).collect::<Vec<_>>(), [9.0, 1.0]);
        assert_eq!(db.scan_prefix(b"um").count(), 1, "the minute of the second hour stays");
        compact(&db, HOUR_MS, HOUR_MS).unwrap();
        let dropped = series(&db, &q).unwrap();
        assert_eq!(dropped[0].counts.entered, 0.0, "hour rows past retention are dropped");
    }

    /// A minute series from `rates` (entered per minute), each point with
    /// `usual` as its baseline (`None`: no history).
    fn constructed(rates: &[f64], usual: Option<f64>) -> Vec<Point> {
        rates
            .iter()
            .enumerate()
            .map(|(i, &entered)| Point {
                at: mon_stdlib::time::format_rfc3339(i as i64 * MINUTE_MS),
                counts: Counts { entered, ..Counts::default() },
                baseline: usual.map(|u| Baseline {
                    counts: Counts { entered: u, ..Counts::default() },
                    method: "previous_hour",
                    samples: 60,
                }),
            })
            .collect()
    }

    fn context(in_flight: Option<u64>) -> Context<'static> {
        Context { step: Step::Minute, leaving: None, in_flight }
    }

    fn kinds(found: &[Anomaly]) -> Vec<(AnomalyKind, &str, &str)> {
        found.iter().map(|a| (a.kind, a.from.as_str(), a.to.as_str())).collect()
    }

    #[test]
    fn a_rate_under_half_its_baseline_for_two_minutes_is_a_drop() {
        let points = constructed(&[10.0, 9.0, 4.0, 1.0, 0.0, 11.0, 3.0, 10.0], Some(10.0));
        let found = anomalies(&points, &context(None), &THRESHOLDS);
        assert_eq!(
            kinds(&found),
            [(AnomalyKind::Drop, "1970-01-01T00:02:00Z", "1970-01-01T00:05:00Z")],
            "4, 1, 0 under 5 for three minutes; the lone 3 is one minute"
        );
        assert!((found[0].rate - 5.0 / 3.0).abs() < 1e-9 && found[0].baseline == 10.0, "{found:?}");
        assert_eq!(found[0].text, "drop: 1.7 entered/minute against 10.0 usually");
        assert_eq!(kinds(&anomalies(&points[..3], &context(None), &THRESHOLDS)), [], "one low minute at the end");
    }

    #[test]
    fn a_spike_must_clear_both_the_multiple_and_the_margin() {
        let busy = constructed(&[3.0, 9.0, 10.0, 3.0], Some(3.0));
        assert_eq!(kinds(&anomalies(&busy, &context(None), &THRESHOLDS))[0].0, AnomalyKind::Spike);
        // 2 → 5 is over twice the baseline but only 3 over it: exactly the
        // margin, a spike; 2 → 4.5 is not.
        assert_eq!(anomalies(&constructed(&[5.0, 5.0], Some(2.0)), &context(None), &THRESHOLDS).len(), 1);
        assert_eq!(anomalies(&constructed(&[4.5, 4.5], Some(2.0)), &context(None), &THRESHOLDS), []);
    }

    #[test]
    fn a_quiet_or_unknown_baseline_flags_nothing() {
        let quiet = constructed(&[0.0, 0.0, 5.0, 5.0], Some(1.0));
        assert_eq!(anomalies(&quiet, &context(None), &THRESHOLDS), [], "a baseline under 2 a minute is noise");
        let fresh = constructed(&[0.0, 0.0, 50.0, 50.0], None);
        assert_eq!(anomalies(&fresh, &context(None), &THRESHOLDS), [], "no history, no baseline, no judgement");
        let mut young = constructed(&[0.0, 0.0, 50.0, 50.0], Some(10.0));
        young.iter_mut().filter_map(|p| p.baseline.as_mut()).for_each(|b| b.samples = 9);
        assert_eq!(anomalies(&young, &context(None), &THRESHOLDS), [], "a baseline of nine minutes is too young");
        young.iter_mut().filter_map(|p| p.baseline.as_mut()).for_each(|b| b.samples = 10);
        assert_eq!(anomalies(&young, &context(None), &THRESHOLDS).len(), 2, "a drop, then a spike, at ten");
    }

    #[test]
    fn items_in_flight_and_five_quiet_minutes_at_the_end_are_a_stall() {
        let points = constructed(&[2.0, 0.0, 0.0, 0.0, 0.0, 0.0], None);
        let found = anomalies(&points, &context(Some(3)), &THRESHOLDS);
        assert_eq!(kinds(&found), [(AnomalyKind::Stalled, "1970-01-01T00:01:00Z", "1970-01-01T00:06:00Z")]);
        assert_eq!(found[0].text, "stalled: 3 in flight, nothing entered or left for 5 min");
        assert_eq!(anomalies(&points, &context(Some(0)), &THRESHOLDS), [], "nothing in flight: idle, not stalled");
        assert_eq!(anomalies(&points, &context(None), &THRESHOLDS), [], "in flight unknown");
        assert_eq!(anomalies(&points[..5], &context(Some(3)), &THRESHOLDS), [], "four quiet minutes");
        // Items leaving the stage are movement too.
        let leaving = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let moving = Context { step: Step::Minute, leaving: Some(&leaving), in_flight: Some(3) };
        assert_eq!(anomalies(&points, &moving, &THRESHOLDS), []);
    }
}
