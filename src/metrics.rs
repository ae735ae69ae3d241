//! Metric values and their Prometheus text exposition (format 0.0.4), SPEC §4
//! (`POST /v3/metric`) and §5 (`GET /metrics`). This module owns:
//!
//! - [`Registry`]: the user's metrics from `telemetry.metrics`, their values, and
//!   how those values survive a reload. It is owned by the event-loop thread and
//!   has no locks; the loop calls it.
//!   - `Registry::new(&[MetricConfig]) -> Registry`
//!   - `reconfigure(&mut self, &[MetricConfig])`: keeps the values of metrics
//!     whose definition is unchanged (SPEC §3.5), drops removed ones, adds new ones.
//!   - `check(&self, name, value) -> Result<(), String>`: validates one update
//!     without applying it, so a whole `/v3/metric` request can be all-or-nothing.
//!   - `apply(&mut self, name, value, now)`: counter add, gauge set,
//!     histogram/summary observe. Updates `check` would refuse are ignored.
//!   - `render(&mut self, now, &mut String)`: every user metric, sorted by name.
//! - The families ContainerPilot serves about itself, formatted from data the
//!   caller passes in: [`RequestCounter`] (`containerpilot_control_http_requests`),
//!   [`render_watch_instances`], [`render_jobs`] (per-job metrics, beyond 3.x) and
//!   [`render_process`] (`process_*`, from `/proc`).
//! - [`Histogram`] and [`Summary`], usable on their own (the job health-check
//!   durations are a [`Histogram`] the caller keeps).
//!
//! Hand-written rather than a client library: a dependency would cost more
//! binary (SPEC §8: ≤ 1.5 MiB) than these few hundred lines.
//!
//! Summary quantiles: over a sliding window of 8 to 10 minutes, as
//! client_golang does it (`MaxAge` 10 min, 5 age buckets). Each observation
//! goes into 5 streams whose resets are staggered by 2 minutes; a query reads
//! the oldest stream. A stream is a list of centroids (value, weight) sorted by
//! value. Incoming values are buffered and merged in; when the list grows past
//! [`STREAM_CAP`] it is compressed CKMS-style: neighbours merge only while the
//! merged weight stays within every objective's allowed rank error at that
//! rank (`ε·n` at the target rank, growing away from it). So a stream is exact
//! while it holds at most [`STREAM_CAP`] observations; past that the rank error
//! at each objective is within its `ε·n` (merges made under a smaller `n` are
//! never split, so this holds up to the usual CKMS approximation). Because the
//! allowed weight scales with `n`, a compressed stream needs a few dozen
//! centroids for the default objectives, whatever `n` is. If many tight
//! objectives would keep it above half the cap, the allowance is doubled until
//! it fits: memory is bounded at `5 × (STREAM_CAP centroids + BUFFER_CAP values)`
//! per summary (≈ 23 KiB) and accuracy degrades instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::{MetricConfig, MetricKind};

/// Prometheus's default histogram buckets.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Prometheus's default summary objectives: (quantile, allowed rank error).
pub const DEFAULT_OBJECTIVES: [(f64, f64); 3] = [(0.5, 0.05), (0.9, 0.01), (0.99, 0.001)];
/// How far back summary quantiles look.
pub const SUMMARY_MAX_AGE: Duration = Duration::from_secs(600);
/// Number of staggered streams per summary; the window slides in steps of
/// `SUMMARY_MAX_AGE / AGE_BUCKETS`.
pub const AGE_BUCKETS: usize = 5;
/// Centroids one summary stream may hold before it is compressed.
pub const STREAM_CAP: usize = 256;
/// Observations buffered unsorted before they are merged into a stream.
pub const BUFFER_CAP: usize = 64;

// ---------------------------------------------------------------------------
// Registry of user metrics

pub struct Registry {
    /// Sorted by name: render order, and lookups by binary search.
    metrics: Vec<Metric>,
}

struct Metric {
    config: MetricConfig,
    /// The `# HELP`/`# TYPE` lines, written once: most of a scrape is these.
    head: String,
    value: Value,
}

enum Value {
    Counter(f64),
    Gauge(f64),
    Histogram(Histogram),
    Summary(Summary),
}

impl Metric {
    fn new(config: &MetricConfig) -> Metric {
        let value = match config.kind {
            MetricKind::Counter => Value::Counter(0.0),
            MetricKind::Gauge => Value::Gauge(0.0),
            MetricKind::Histogram => Value::Histogram(Histogram::new(
                config.buckets.as_deref().unwrap_or(&DEFAULT_BUCKETS),
            )),
            MetricKind::Summary => Value::Summary(Summary::new(
                config.objectives.as_deref().unwrap_or(&DEFAULT_OBJECTIVES),
            )),
        };
        let mut head = String::new();
        header(
            &mut head,
            &config.name,
            &config.help,
            kind_name(config.kind),
        );
        Metric {
            config: config.clone(),
            head,
            value,
        }
    }
}

fn kind_name(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram => "histogram",
        MetricKind::Summary => "summary",
    }
}

impl Registry {
    pub fn new(metrics: &[MetricConfig]) -> Registry {
        let mut r = Registry {
            metrics: Vec::new(),
        };
        r.reconfigure(metrics);
        r
    }

    /// Keeps the values of metrics whose whole definition (name, kind, help,
    /// buckets, objectives) is unchanged, drops removed ones and starts new or
    /// changed ones from zero (SPEC §3.5).
    pub fn reconfigure(&mut self, metrics: &[MetricConfig]) {
        let mut old = std::mem::take(&mut self.metrics);
        let mut new: Vec<Metric> = Vec::with_capacity(metrics.len());
        for config in metrics {
            // Validation guarantees unique names; a duplicate would only shadow.
            if new.iter().any(|m| m.config.name == config.name) {
                continue;
            }
            match old.iter().position(|m| m.config == *config) {
                Some(i) => new.push(old.swap_remove(i)),
                None => new.push(Metric::new(config)),
            }
        }
        new.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        self.metrics = new;
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.metrics
            .binary_search_by(|m| m.config.name.as_str().cmp(name))
            .ok()
    }

    /// Whether `apply(name, value)` would be accepted; the error is meant for
    /// the `/v3/metric` caller as is.
    pub fn check(&self, name: &str, value: f64) -> Result<(), String> {
        let Some(i) = self.find(name) else {
            return Err(format!("unknown metric '{name}'"));
        };
        if !value.is_finite() {
            return Err(format!(
                "metric '{name}': value must be a finite number, got {}",
                go_float(value)
            ));
        }
        if self.metrics[i].config.kind == MetricKind::Counter && value < 0.0 {
            return Err(format!(
                "metric '{name}' is a counter and cannot decrease: value must not be negative, got {}",
                go_float(value)
            ));
        }
        Ok(())
    }

    /// Counter: add; gauge: set; histogram and summary: observe. An update
    /// that `check` refuses is ignored, so bad input never corrupts a value.
    pub fn apply(&mut self, name: &str, value: f64, now: Instant) {
        if self.check(name, value).is_err() {
            return;
        }
        let Some(i) = self.find(name) else { return };
        match &mut self.metrics[i].value {
            Value::Counter(v) => *v += value,
            Value::Gauge(v) => *v = value,
            Value::Histogram(h) => h.observe(value),
            Value::Summary(s) => s.observe(value, now),
        }
    }

    /// Appends every user metric in text format 0.0.4, quantiles as of `now`.
    pub fn render(&mut self, now: Instant, out: &mut String) {
        for m in &mut self.metrics {
            let name = m.config.name.as_str();
            out.push_str(&m.head);
            match &mut m.value {
                Value::Counter(v) | Value::Gauge(v) => sample(out, name, "", &[], *v),
                Value::Histogram(h) => h.render_samples(out, name, &[]),
                Value::Summary(s) => s.render_samples(out, name, &[], now),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Histogram

/// A Prometheus histogram: per-bucket counts, sum and count over all time.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Upper bounds, strictly increasing, finite; `+Inf` is implicit.
    bounds: Vec<f64>,
    /// Non-cumulative: `counts[i]` for `bounds[i]`, the last one for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new(&DEFAULT_BUCKETS)
    }
}

impl Histogram {
    /// Bounds are sorted and deduplicated; NaN and `+Inf` (always implicit,
    /// as in client_golang) are dropped, so any input makes a valid histogram.
    pub fn new(bounds: &[f64]) -> Histogram {
        let mut b: Vec<f64> = bounds
            .iter()
            .copied()
            .filter(|x| !x.is_nan() && *x != f64::INFINITY)
            .collect();
        b.sort_by(f64::total_cmp);
        b.dedup();
        let n = b.len();
        Histogram {
            bounds: b,
            counts: vec![0; n + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        // `le` is inclusive: the first bucket whose bound is >= v.
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// `name_bucket{labels,le=...}` for every bound and `+Inf`, then `_sum`
    /// and `_count`. The family header is the caller's.
    pub fn render_samples(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let mut cum = 0u64;
        let mut le = String::new();
        for (i, c) in self.counts.iter().enumerate() {
            cum += c;
            le.clear();
            match self.bounds.get(i) {
                Some(b) => write_go_float(&mut le, *b),
                None => le.push_str("+Inf"),
            }
            sample_extra(out, name, "_bucket", labels, Some(("le", &le)), cum as f64);
        }
        sample(out, name, "_sum", labels, self.sum);
        sample(out, name, "_count", labels, self.count as f64);
    }
}

// ---------------------------------------------------------------------------
// Summary

/// A Prometheus summary: quantiles over a sliding window (see the module doc),
/// sum and count over all time.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Sorted by quantile.
    objectives: Vec<(f64, f64)>,
    streams: Vec<Stream>,
    /// Time 0 of the window slots: the first observation or render.
    origin: Option<Instant>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Clone, Default)]
struct Stream {
    /// The slot (see `Summary::slot`) at whose start this stream was last
    /// emptied; `None` before first use.
    reset_at: Option<i64>,
    /// (value, weight), sorted by value.
    centroids: Vec<(f64, u64)>,
    buffer: Vec<f64>,
    /// Total weight of `centroids`.
    n: u64,
}

impl Summary {
    /// Objectives outside 0..=1 or with a NaN are dropped; with none left the
    /// summary exposes only `_sum` and `_count` and stores no samples (as
    /// client_golang with empty objectives).
    pub fn new(objectives: &[(f64, f64)]) -> Summary {
        let mut o: Vec<(f64, f64)> = objectives
            .iter()
            .copied()
            .filter(|(q, e)| (0.0..=1.0).contains(q) && e.is_finite() && *e >= 0.0)
            .collect();
        o.sort_by(|a, b| a.0.total_cmp(&b.0));
        o.dedup_by(|a, b| a.0 == b.0);
        let streams = if o.is_empty() {
            Vec::new()
        } else {
            vec![Stream::default(); AGE_BUCKETS]
        };
        Summary {
            objectives: o,
            streams,
            origin: None,
            sum: 0.0,
            count: 0,
        }
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }

    #[cfg(test)]
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Which `SUMMARY_MAX_AGE / AGE_BUCKETS`-long slot `now` falls in.
    fn slot(&mut self, now: Instant) -> i64 {
        let origin = *self.origin.get_or_insert(now);
        let step = SUMMARY_MAX_AGE.as_nanos() / AGE_BUCKETS as u128;
        (now.saturating_duration_since(origin).as_nanos() / step) as i64
    }

    /// Empties every stream whose reset time has come since it was last used:
    /// stream `j` is reset at the start of each slot `s` with `s % AGE_BUCKETS == j`.
    fn rotate(&mut self, now: Instant) -> i64 {
        let cur = self.slot(now);
        let k = AGE_BUCKETS as i64;
        for (j, s) in self.streams.iter_mut().enumerate() {
            let due = cur - (cur - j as i64).rem_euclid(k);
            if s.reset_at != Some(due) {
                s.centroids.clear();
                s.buffer.clear();
                s.n = 0;
                s.reset_at = Some(due);
            }
        }
        cur
    }

    pub fn observe(&mut self, v: f64, now: Instant) {
        self.sum += v;
        self.count += 1;
        if self.streams.is_empty() || v.is_nan() {
            return;
        }
        self.rotate(now);
        for s in &mut self.streams {
            s.buffer.push(v);
            if s.buffer.len() >= BUFFER_CAP {
                s.flush(&self.objectives);
            }
        }
    }

    /// The objectives' quantiles over the window ending at `now`, in the order
    /// of the objectives; `NaN` when the window is empty (as client_golang).
    pub fn quantiles(&mut self, now: Instant) -> Vec<f64> {
        if self.streams.is_empty() {
            return Vec::new();
        }
        let cur = self.rotate(now);
        // The oldest stream: reset at the start of slot cur - (AGE_BUCKETS - 1).
        let head = (cur + 1).rem_euclid(AGE_BUCKETS as i64) as usize;
        let objectives = &self.objectives;
        let s = &mut self.streams[head];
        s.flush(objectives);
        s.query(objectives)
    }

    /// Centroids and buffered values held over all streams: what bounds memory.
    #[cfg(test)]
    pub fn stored_samples(&self) -> usize {
        self.streams
            .iter()
            .map(|s| s.centroids.len() + s.buffer.len())
            .sum()
    }

    /// `name{labels,quantile=...}` per objective, then `_sum` and `_count`.
    pub fn render_samples(
        &mut self,
        out: &mut String,
        name: &str,
        labels: &[(&str, &str)],
        now: Instant,
    ) {
        let qs = self.quantiles(now);
        let mut qlabel = String::new();
        for ((q, _), v) in self.objectives.iter().zip(qs) {
            qlabel.clear();
            write_go_float(&mut qlabel, *q);
            sample_extra(out, name, "", labels, Some(("quantile", &qlabel)), v);
        }
        sample(out, name, "_sum", labels, self.sum);
        sample(out, name, "_count", labels, self.count as f64);
    }
}

impl Stream {
    fn flush(&mut self, objectives: &[(f64, f64)]) {
        if self.buffer.is_empty() {
            return;
        }
        self.buffer.sort_by(f64::total_cmp);
        let old = std::mem::take(&mut self.centroids);
        let mut merged = Vec::with_capacity(old.len() + self.buffer.len());
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < self.buffer.len() {
            if j >= self.buffer.len() || (i < old.len() && old[i].0 <= self.buffer[j]) {
                merged.push(old[i]);
                i += 1;
            } else {
                merged.push((self.buffer[j], 1));
                j += 1;
            }
        }
        self.n += self.buffer.len() as u64;
        self.buffer.clear();
        self.centroids = merged;
        if self.centroids.len() > STREAM_CAP {
            let mut slack = 1.0;
            loop {
                self.compress(objectives, slack);
                if self.centroids.len() <= STREAM_CAP / 2 {
                    break;
                }
                slack *= 2.0;
            }
        }
    }

    /// The largest weight a centroid spanning ranks `lo..hi` may have so that
    /// no objective's rank error exceeds `ε·n`: at the rank closest to each
    /// target, `ε·r/q` above it and `ε·(n-r)/(1-q)` below it (CKMS targeted
    /// quantiles).
    fn allowed(objectives: &[(f64, f64)], n: f64, lo: f64, hi: f64) -> f64 {
        let mut f = f64::INFINITY;
        for &(q, e) in objectives {
            let target = q * n;
            let r = target.clamp(lo, hi);
            let ft = if r >= target {
                if q > 0.0 {
                    e * r / q
                } else {
                    f64::INFINITY
                }
            } else if q < 1.0 {
                e * (n - r) / (1.0 - q)
            } else {
                f64::INFINITY
            };
            f = f.min(ft);
        }
        f
    }

    fn compress(&mut self, objectives: &[(f64, f64)], slack: f64) {
        let n = self.n as f64;
        let mut out: Vec<(f64, u64)> = Vec::with_capacity(self.centroids.len());
        let mut start = 0u64; // rank of the first value in `out`'s last centroid
        for &(v, w) in &self.centroids {
            if let Some(last) = out.last_mut() {
                let merged = last.1 + w;
                let limit =
                    slack * Self::allowed(objectives, n, start as f64, (start + merged) as f64);
                if merged as f64 <= limit {
                    // Weighted mean: stays between the merged values, so the
                    // reported value's true rank stays inside the centroid.
                    last.0 = (last.0 * last.1 as f64 + v * w as f64) / merged as f64;
                    last.1 = merged;
                    continue;
                }
                start += last.1;
            }
            out.push((v, w));
        }
        self.centroids = out;
    }

    fn query(&self, objectives: &[(f64, f64)]) -> Vec<f64> {
        if self.n == 0 {
            return vec![f64::NAN; objectives.len()];
        }
        let n = self.n as f64;
        let mut res = Vec::with_capacity(objectives.len());
        let mut cum = 0u64;
        let mut i = 0;
        // Objectives are sorted, so one walk over the centroids serves them all.
        for &(q, _) in objectives {
            let rank = (q * n).ceil().max(1.0) as u64;
            while i + 1 < self.centroids.len() && cum + self.centroids[i].1 < rank {
                cum += self.centroids[i].1;
                i += 1;
            }
            res.push(self.centroids.get(i).map_or(f64::NAN, |c| c.0));
        }
        res
    }
}

// ---------------------------------------------------------------------------
// ContainerPilot's own families

/// `containerpilot_control_http_requests{code,path}`. The caller passes only
/// known paths, so the label set stays bounded.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    /// Sorted by (code, path): the order samples are rendered in.
    counts: Vec<(u16, String, u64)>,
}

impl RequestCounter {
    #[cfg(test)]
    pub fn new() -> RequestCounter {
        RequestCounter::default()
    }

    pub fn inc(&mut self, code: u16, path: &str) {
        match self
            .counts
            .binary_search_by(|(c, p, _)| (*c, p.as_str()).cmp(&(code, path)))
        {
            Ok(i) => self.counts[i].2 += 1,
            Err(i) => self.counts.insert(i, (code, path.to_string(), 1)),
        }
    }

    #[cfg(test)]
    pub fn get(&self, code: u16, path: &str) -> u64 {
        self.counts
            .iter()
            .find(|(c, p, _)| *c == code && p == path)
            .map_or(0, |e| e.2)
    }

    /// Help text as ContainerPilot 3's. Nothing when no request was counted
    /// (client_golang omits a vector with no children).
    pub fn render(&self, out: &mut String) {
        const NAME: &str = "containerpilot_control_http_requests";
        if self.counts.is_empty() {
            return;
        }
        header(
            out,
            NAME,
            "count of requests to control socket, partitioned by path and HTTP code",
            "counter",
        );
        let mut code = String::new();
        for (c, p, n) in &self.counts {
            code.clear();
            let _ = write!(code, "{c}");
            sample(out, NAME, "", &[("code", &code), ("path", p)], *n as f64);
        }
    }
}

/// `containerpilot_watch_instances{service}`: instances each watch last saw.
pub fn render_watch_instances(watches: &[(&str, usize)], out: &mut String) {
    const NAME: &str = "containerpilot_watch_instances";
    if watches.is_empty() {
        return;
    }
    header(
        out,
        NAME,
        "gauge of instances found for each ContainerPilot watch, partitioned by service",
        "gauge",
    );
    for (service, n) in watches {
        sample(out, NAME, "", &[("service", service)], *n as f64);
    }
}

/// `containerpilot_events{code,source}`: events published so far, as 3.x
/// counted them. Sources are job and watch names, so the series stay bounded
/// by the configuration.
pub fn render_events(events: &BTreeMap<(String, String), u64>, out: &mut String) {
    const NAME: &str = "containerpilot_events";
    if events.is_empty() {
        return;
    }
    header(
        out,
        NAME,
        "count of ContainerPilot events, partitioned by type and source",
        "counter",
    );
    for ((code, source), n) in events {
        sample(
            out,
            NAME,
            "",
            &[("code", code), ("source", source)],
            *n as f64,
        );
    }
}

/// One job's numbers for [`render_jobs`], filled by the caller.
pub struct JobSample<'a> {
    pub name: &'a str,
    pub restarts: u64,
    pub exits_success: u64,
    pub exits_failed: u64,
    /// `None`: no health check, or no result yet; the sample is omitted.
    pub healthy: Option<bool>,
    /// `None`: no health check; the job has no duration samples.
    pub check_durations: Option<&'a Histogram>,
}

/// Per-job metrics (beyond 3.x), labelled by job name only: never a pid or a
/// value in a label, so the series stay bounded by the configuration.
pub fn render_jobs(jobs: &[JobSample], out: &mut String) {
    if jobs.is_empty() {
        return;
    }
    const RESTARTS: &str = "containerpilot_job_restarts_total";
    header(
        out,
        RESTARTS,
        "Number of times ContainerPilot restarted the job's process.",
        "counter",
    );
    for j in jobs {
        sample(out, RESTARTS, "", &[("job", j.name)], j.restarts as f64);
    }
    const EXITS: &str = "containerpilot_job_exits_total";
    header(
        out,
        EXITS,
        "Number of exits of the job's process, by outcome (exit code 0 or not).",
        "counter",
    );
    for j in jobs {
        sample(
            out,
            EXITS,
            "",
            &[("job", j.name), ("outcome", "failed")],
            j.exits_failed as f64,
        );
        sample(
            out,
            EXITS,
            "",
            &[("job", j.name), ("outcome", "success")],
            j.exits_success as f64,
        );
    }
    const HEALTHY: &str = "containerpilot_job_healthy";
    if jobs.iter().any(|j| j.healthy.is_some()) {
        header(
            out,
            HEALTHY,
            "Whether the job's last health check passed (1) or failed (0).",
            "gauge",
        );
        for j in jobs {
            if let Some(h) = j.healthy {
                sample(
                    out,
                    HEALTHY,
                    "",
                    &[("job", j.name)],
                    if h { 1.0 } else { 0.0 },
                );
            }
        }
    }
    const DURATION: &str = "containerpilot_job_health_check_duration_seconds";
    if jobs.iter().any(|j| j.check_durations.is_some()) {
        header(
            out,
            DURATION,
            "Duration of the job's health checks in seconds.",
            "histogram",
        );
        for j in jobs {
            if let Some(h) = j.check_durations {
                h.render_samples(out, DURATION, &[("job", j.name)]);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// process_* from /proc/self, as client_golang's process collector

/// Page size and clock ticks from the auxiliary vector (`AT_PAGESZ`,
/// `AT_CLKTCK`): what `sysconf` returns, without enabling nix's `feature`
/// feature or adding libc. Falls back to 4096 and 100, the Linux values on
/// every architecture we build for.
fn page_size_and_ticks() -> (f64, f64) {
    static CACHE: OnceLock<(f64, f64)> = OnceLock::new();
    *CACHE.get_or_init(|| {
        let (mut page, mut ticks) = (4096.0, 100.0);
        if let Ok(aux) = fs::read("/proc/self/auxv") {
            const W: usize = std::mem::size_of::<usize>();
            for pair in aux.chunks_exact(2 * W) {
                let word = |b: &[u8]| {
                    let mut a = [0u8; W];
                    a.copy_from_slice(b);
                    usize::from_ne_bytes(a)
                };
                let (key, val) = (word(&pair[..W]), word(&pair[W..]));
                match key {
                    6 if val > 0 => page = val as f64,   // AT_PAGESZ
                    17 if val > 0 => ticks = val as f64, // AT_CLKTCK
                    _ => {}
                }
            }
        }
        (page, ticks)
    })
}

/// The fields of `/proc/self/stat` after the `(comm)`, which may itself hold
/// spaces and parentheses; `fields[0]` is field 3 (state) of proc(5).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// Field `n` (1-based, as in proc(5)) of the stat fields.
fn stat_field(fields: &[&str], n: usize) -> Option<f64> {
    fields.get(n.checked_sub(3)?)?.parse().ok()
}

/// Appends the standard `process_*` families. A file that cannot be read or
/// parsed omits its samples rather than failing the scrape.
pub fn render_process(out: &mut String) {
    let (page, ticks) = page_size_and_ticks();
    if let Some(cpu) = cpu_seconds() {
        gauge_family(
            out,
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            cpu,
        );
    }
    if let Some(fds) = fs::read_dir("/proc/self/fd").ok().map(|d| d.count()) {
        gauge_family(
            out,
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            fds as f64,
        );
    }
    if let Some(max) = max_fds() {
        gauge_family(
            out,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            "gauge",
            max,
        );
    }
    // statm (sizes in pages) is cheaper for the kernel to produce than stat.
    let statm = fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut pages = statm.split_whitespace().map(|f| f.parse::<f64>().ok());
    if let (Some(Some(size)), Some(Some(resident))) = (pages.next(), pages.next()) {
        gauge_family(
            out,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            "gauge",
            size * page,
        );
        gauge_family(
            out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            resident * page,
        );
    }
    if let Some(start) = start_time(ticks) {
        gauge_family(
            out,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            start,
        );
    }
}

/// User plus system CPU time of every thread, from getrusage (no file to read).
fn cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(secs(u.user_time()) + secs(u.system_time()))
}

/// Our soft limit on open files, read once: nothing in containerpilot
/// changes it, and `/proc/self/limits` is the costliest file to read here.
fn max_fds() -> Option<f64> {
    static MAX: OnceLock<Option<f64>> = OnceLock::new();
    *MAX.get_or_init(|| {
        fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| max_open_files(&l))
    })
}

/// When we started, since the epoch: boot time plus field 22 of our stat.
fn start_time(ticks: f64) -> Option<f64> {
    static START: OnceLock<Option<f64>> = OnceLock::new();
    *START.get_or_init(|| {
        let stat = fs::read_to_string("/proc/self/stat").ok()?;
        let fields = stat_fields(&stat)?;
        Some(boot_time()? + stat_field(&fields, 22)? / ticks)
    })
}

/// Boot time from `/proc/stat`, read once: it never changes, and the file
/// is costly to generate (the kernel formats every CPU's counters).
fn boot_time() -> Option<f64> {
    static BTIME: OnceLock<Option<f64>> = OnceLock::new();
    *BTIME.get_or_init(|| {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    })
}

/// The soft limit of "Max open files"; "unlimited" as client_golang reports it.
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(u64::MAX as f64);
    }
    soft.parse().ok()
}

fn gauge_family(out: &mut String, name: &str, help: &str, kind: &str, v: f64) {
    header(out, name, help, kind);
    sample(out, name, "", &[], v);
}

// ---------------------------------------------------------------------------
// Text format primitives

/// `# HELP` (help escaped: `\` and newline) and `# TYPE` lines.
fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape_into(out, help, false);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// Backslash and newline escaped (HELP text); double quotes too in label values.
fn escape_into(out: &mut String, text: &str, quotes: bool) {
    let special = |c: char| c == '\\' || c == '\n' || (quotes && c == '"');
    if !text.contains(special) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn sample(out: &mut String, name: &str, suffix: &str, labels: &[(&str, &str)], v: f64) {
    sample_extra(out, name, suffix, labels, None, v);
}

/// One sample line; `extra` (`le` or `quantile`) comes after the other labels,
/// as client_golang writes it.
fn sample_extra(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
    v: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let mut first = true;
    for (k, val) in labels.iter().copied().chain(extra) {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_into(out, val, true);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    write_go_float(out, v);
    out.push('\n');
}

fn go_float(v: f64) -> String {
    let mut s = String::new();
    write_go_float(&mut s, v);
    s
}

/// A float as client_golang writes it: Go's `strconv.FormatFloat(v, 'g', -1,
/// 64)`, the shortest digits that round-trip, in exponent form when the
/// decimal exponent is below -4 or at least 6 (`1e+06`, `1.5e-07`); else plain
/// (`1`, `0.5`, `123456`). Specials as the text format spells them.
pub fn write_go_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        // Go prints negative zero as "-0"; Prometheus treats both alike.
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Whole numbers below 1e6 print as integers in Go's shortest 'g' too;
    // they are most samples, so skip the float formatting for them.
    if v.fract() == 0.0 && v.abs() < 1e6 {
        let _ = write!(out, "{}", v as i64);
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e3".
    let e = format!("{v:e}");
    let Some((mantissa, exp)) = e.split_once('e') else {
        let _ = write!(out, "{v}");
        return;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go's shortest 'g' always decides with precision 6.
    let eprec = 6;
    if exp < -4 || exp >= eprec {
        out.push_str(mantissa);
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.abs());
    } else {
        // Display never uses an exponent and prints the shortest digits.
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Seconds since the Unix epoch.
    fn unix_now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    fn cfg(name: &str, kind: MetricKind) -> MetricConfig {
        MetricConfig {
            name: name.into(),
            help: format!("help for {name}"),
            kind,
            buckets: None,
            objectives: None,
        }
    }

    fn render(r: &mut Registry, now: Instant) -> String {
        let mut s = String::new();
        r.render(now, &mut s);
        s
    }

    fn value_of(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn go_floats() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (0.5, "0.5"),
            (0.005, "0.005"),
            (2.5, "2.5"),
            (10.0, "10"),
            (-3.0, "-3"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.0, "0"),
            (1.8446744073709552e19, "1.8446744073709552e+19"),
        ];
        for (v, want) in cases {
            assert_eq!(go_float(*v), *want, "{v}");
        }
    }

    #[test]
    fn counter_adds_and_refuses_negative() {
        let mut r = Registry::new(&[cfg("app_c", MetricKind::Counter)]);
        let now = Instant::now();
        r.apply("app_c", 2.0, now);
        r.apply("app_c", 0.5, now);
        assert!(r.check("app_c", -1.0).unwrap_err().contains("app_c"));
        r.apply("app_c", -1.0, now); // ignored
        let text = render(&mut r, now);
        assert_eq!(value_of(&text, "app_c"), Some(2.5));
        assert!(text.contains("# TYPE app_c counter\n"));
    }

    #[test]
    fn gauge_sets() {
        let mut r = Registry::new(&[cfg("app_g", MetricKind::Gauge)]);
        let now = Instant::now();
        assert!(r.check("app_g", -5.0).is_ok());
        r.apply("app_g", 7.0, now);
        r.apply("app_g", -5.0, now);
        assert_eq!(value_of(&render(&mut r, now), "app_g"), Some(-5.0));
    }

    #[test]
    fn check_refuses_unknown_and_non_finite() {
        let r = Registry::new(&[cfg("app_g", MetricKind::Gauge)]);
        assert_eq!(r.check("nope", 1.0).unwrap_err(), "unknown metric 'nope'");
        assert!(r.check("app_g", f64::NAN).is_err());
        assert!(r.check("app_g", f64::INFINITY).is_err());
        assert!(r.check("app_g", f64::NEG_INFINITY).is_err());
        assert!(r.check("app_g", 1e300).is_ok());
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut r = Registry::new(&[cfg("app_h", MetricKind::Histogram)]);
        let now = Instant::now();
        for v in [0.001, 0.005, 0.3, 0.3, 4.0, 50.0] {
            r.apply("app_h", v, now);
        }
        let text = render(&mut r, now);
        let expect = [
            ("0.005", 2.0),
            ("0.01", 2.0),
            ("0.025", 2.0),
            ("0.05", 2.0),
            ("0.1", 2.0),
            ("0.25", 2.0),
            ("0.5", 4.0),
            ("1", 4.0),
            ("2.5", 4.0),
            ("5", 5.0),
            ("10", 5.0),
            ("+Inf", 6.0),
        ];
        for (le, n) in expect {
            assert_eq!(
                value_of(&text, &format!("app_h_bucket{{le=\"{le}\"}}")),
                Some(n),
                "le={le}\n{text}"
            );
        }
        assert_eq!(value_of(&text, "app_h_count"), Some(6.0));
        assert!((value_of(&text, "app_h_sum").unwrap() - 54.606).abs() < 1e-9);
        // Buckets come in order and +Inf is last before _sum.
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("app_h")).collect();
        assert!(lines[11].starts_with("app_h_bucket{le=\"+Inf\"}"));
        assert!(lines[12].starts_with("app_h_sum "));
        assert!(lines[13].starts_with("app_h_count "));
    }

    #[test]
    fn histogram_custom_buckets() {
        let mut c = cfg("app_h", MetricKind::Histogram);
        c.buckets = Some(vec![10.0, 1.0, 100.0, f64::INFINITY]);
        let mut r = Registry::new(&[c]);
        let now = Instant::now();
        for v in [1.0, 5.0, 1000.0] {
            r.apply("app_h", v, now);
        }
        let text = render(&mut r, now);
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("app_h_bucket"))
            .collect();
        assert_eq!(
            buckets,
            [
                "app_h_bucket{le=\"1\"} 1",
                "app_h_bucket{le=\"10\"} 2",
                "app_h_bucket{le=\"100\"} 2",
                "app_h_bucket{le=\"+Inf\"} 3"
            ]
        );
    }

    #[test]
    fn summary_quantiles_within_objectives() {
        let mut r = Registry::new(&[cfg("app_s", MetricKind::Summary)]);
        let now = Instant::now();
        for v in 1..=1000 {
            r.apply("app_s", v as f64, now);
        }
        let text = render(&mut r, now);
        let q = |q: &str| value_of(&text, &format!("app_s{{quantile=\"{q}\"}}")).unwrap();
        assert!((q("0.5") - 500.0).abs() <= 50.0, "{text}");
        assert!((q("0.9") - 900.0).abs() <= 10.0, "{text}");
        assert!((q("0.99") - 990.0).abs() <= 1.0, "{text}");
        assert_eq!(value_of(&text, "app_s_count"), Some(1000.0));
        assert_eq!(value_of(&text, "app_s_sum"), Some(500500.0));
    }

    #[test]
    fn summary_accuracy_after_compression() {
        // Shuffled 1..=100_000 (a fixed LCG permutation), so compression runs often.
        let mut s = Summary::new(&DEFAULT_OBJECTIVES);
        let now = Instant::now();
        let n = 100_000u64;
        let mut x = 0u64;
        for _ in 0..n {
            x = (x + 48_271) % n; // 48271 is coprime to n: a permutation
            s.observe((x + 1) as f64, now);
        }
        let qs = s.quantiles(now);
        for ((q, e), v) in DEFAULT_OBJECTIVES.iter().zip(qs) {
            let err = (v / n as f64 - q).abs();
            assert!(err <= *e, "q={q}: got {v}, rank error {err} > {e}");
        }
        assert!(s.stored_samples() <= AGE_BUCKETS * (STREAM_CAP + BUFFER_CAP));
    }

    #[test]
    fn summary_window_expires() {
        let mut s = Summary::new(&DEFAULT_OBJECTIVES);
        let t0 = Instant::now();
        for _ in 0..100 {
            s.observe(1000.0, t0);
        }
        // Still inside 8 minutes: seen.
        assert_eq!(s.quantiles(t0 + Duration::from_secs(7 * 60))[0], 1000.0);
        let t1 = t0 + Duration::from_secs(9 * 60);
        for _ in 0..100 {
            s.observe(1.0, t1);
        }
        // Just over 10 minutes after t0: only the later observations count.
        let t2 = t0 + Duration::from_secs(600) + Duration::from_millis(1);
        assert_eq!(s.quantiles(t2), vec![1.0, 1.0, 1.0]);
        // Long after: nothing in the window, NaN; sum and count stay all-time.
        let qs = s.quantiles(t0 + Duration::from_secs(3600));
        assert!(qs.iter().all(|q| q.is_nan()));
        assert_eq!(s.count(), 200);
        assert_eq!(s.sum(), 100_100.0);
    }

    #[test]
    fn summary_empty_is_nan() {
        let mut r = Registry::new(&[cfg("app_s", MetricKind::Summary)]);
        let text = render(&mut r, Instant::now());
        assert!(text.contains("app_s{quantile=\"0.5\"} NaN\n"), "{text}");
        assert!(text.contains("app_s{quantile=\"0.99\"} NaN\n"));
        assert!(text.contains("app_s_count 0\n"));
    }

    #[test]
    fn summary_memory_is_bounded() {
        let mut s = Summary::new(&DEFAULT_OBJECTIVES);
        let t0 = Instant::now();
        let mut x = 12345u64;
        let mut peak = 0;
        for i in 0..1_000_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Time moves too, so streams rotate.
            s.observe(
                (x % 1_000_000) as f64 / 1000.0,
                t0 + Duration::from_millis(i),
            );
            peak = peak.max(s.stored_samples());
        }
        assert!(
            peak <= AGE_BUCKETS * (STREAM_CAP + BUFFER_CAP),
            "peak {peak}"
        );
        // Many tight objectives still fit the cap (accuracy gives way instead).
        let objectives: Vec<(f64, f64)> = (1..100).map(|i| (i as f64 / 100.0, 0.0001)).collect();
        let mut s = Summary::new(&objectives);
        for i in 0..200_000u64 {
            s.observe(i as f64, t0);
        }
        assert!(s.stored_samples() <= AGE_BUCKETS * (STREAM_CAP + BUFFER_CAP));
    }

    #[test]
    fn custom_objectives() {
        let mut c = cfg("app_s", MetricKind::Summary);
        c.objectives = Some(vec![(0.75, 0.01), (0.25, 0.01)]);
        let mut r = Registry::new(&[c]);
        let now = Instant::now();
        for v in 1..=100 {
            r.apply("app_s", v as f64, now);
        }
        let text = render(&mut r, now);
        assert!(
            text.contains("app_s{quantile=\"0.25\"} 25\napp_s{quantile=\"0.75\"} 75\n"),
            "{text}"
        );
    }

    #[test]
    fn reconfigure_keeps_unchanged_and_resets_changed() {
        let mut r = Registry::new(&[
            cfg("a_keep", MetricKind::Counter),
            cfg("b_change", MetricKind::Counter),
            cfg("c_gone", MetricKind::Gauge),
        ]);
        let now = Instant::now();
        for n in ["a_keep", "b_change", "c_gone"] {
            r.apply(n, 3.0, now);
        }
        let mut changed = cfg("b_change", MetricKind::Counter);
        changed.help = "new help".into();
        r.reconfigure(&[
            cfg("d_new", MetricKind::Gauge),
            changed,
            cfg("a_keep", MetricKind::Counter),
        ]);
        let text = render(&mut r, now);
        assert_eq!(value_of(&text, "a_keep"), Some(3.0));
        assert_eq!(value_of(&text, "b_change"), Some(0.0));
        assert_eq!(value_of(&text, "d_new"), Some(0.0));
        assert!(!text.contains("c_gone"));
        assert!(r.check("c_gone", 1.0).is_err());
        assert!(text.contains("# HELP b_change new help\n"));
        // A kind change is a change too.
        r.reconfigure(&[cfg("a_keep", MetricKind::Gauge)]);
        assert_eq!(value_of(&render(&mut r, now), "a_keep"), Some(0.0));
    }

    #[test]
    fn escaping() {
        let mut c = cfg("app_g", MetricKind::Gauge);
        c.help = "a \\ back\nslash \"q\"".into();
        let mut r = Registry::new(&[c]);
        let text = render(&mut r, Instant::now());
        assert!(
            text.starts_with("# HELP app_g a \\\\ back\\nslash \"q\"\n# TYPE app_g gauge\n"),
            "{text}"
        );

        let mut s = String::new();
        render_watch_instances(&[("we\"ird\\na\nme", 2)], &mut s);
        assert!(
            s.contains("containerpilot_watch_instances{service=\"we\\\"ird\\\\na\\nme\"} 2\n"),
            "{s}"
        );
    }

    #[test]
    fn request_counter() {
        let mut c = RequestCounter::new();
        let mut s = String::new();
        c.render(&mut s);
        assert_eq!(s, "");
        c.inc(200, "/v3/ping");
        c.inc(400, "/v3/metric");
        c.inc(200, "/v3/ping");
        c.inc(200, "/v3/env");
        c.render(&mut s);
        assert_eq!(
            s,
            "# HELP containerpilot_control_http_requests count of requests to control socket, partitioned by path and HTTP code\n\
             # TYPE containerpilot_control_http_requests counter\n\
             containerpilot_control_http_requests{code=\"200\",path=\"/v3/env\"} 1\n\
             containerpilot_control_http_requests{code=\"200\",path=\"/v3/ping\"} 2\n\
             containerpilot_control_http_requests{code=\"400\",path=\"/v3/metric\"} 1\n"
        );
        assert_eq!(c.get(200, "/v3/ping"), 2);
    }

    #[test]
    fn job_metrics() {
        let mut h = Histogram::default();
        h.observe(0.02);
        let jobs = [
            JobSample {
                name: "app",
                restarts: 2,
                exits_success: 1,
                exits_failed: 3,
                healthy: Some(true),
                check_durations: Some(&h),
            },
            JobSample {
                name: "setup",
                restarts: 0,
                exits_success: 1,
                exits_failed: 0,
                healthy: None,
                check_durations: None,
            },
        ];
        let mut s = String::new();
        render_jobs(&jobs, &mut s);
        assert!(s.contains("containerpilot_job_restarts_total{job=\"app\"} 2\n"));
        assert!(s.contains("containerpilot_job_exits_total{job=\"app\",outcome=\"failed\"} 3\n"));
        assert!(s.contains("containerpilot_job_exits_total{job=\"setup\",outcome=\"success\"} 1\n"));
        assert!(s.contains("containerpilot_job_healthy{job=\"app\"} 1\n"));
        assert!(!s.contains("containerpilot_job_healthy{job=\"setup\"}"));
        assert!(s.contains(
            "containerpilot_job_health_check_duration_seconds_bucket{job=\"app\",le=\"0.025\"} 1\n"
        ));
        assert!(
            s.contains("containerpilot_job_health_check_duration_seconds_count{job=\"app\"} 1\n")
        );
        parse_strict(&s);
    }

    #[test]
    fn process_metrics() {
        let mut s = String::new();
        render_process(&mut s);
        let fams = parse_strict(&s);
        for name in [
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
            "process_virtual_memory_bytes",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
        ] {
            assert!(fams.iter().any(|f| f == name), "missing {name} in\n{s}");
        }
        let rss = value_of(&s, "process_resident_memory_bytes").unwrap();
        assert!(rss > 100_000.0 && rss < 1e11, "{rss}");
        let start = value_of(&s, "process_start_time_seconds").unwrap();
        assert!(
            (unix_now() - start).abs() < 24.0 * 3600.0 * 365.0,
            "{start}"
        );
        assert_eq!(stat_fields("1 (a) b) c) S 1 2").unwrap(), ["S", "1", "2"]);
        assert_eq!(
            max_open_files(
                "Max open files            1024                 4096                 files\n"
            ),
            Some(1024.0)
        );
    }

    #[test]
    fn full_render_parses_strictly() {
        let mut hc = cfg("app_h", MetricKind::Histogram);
        hc.help = "multi\nline \\ help".into();
        let mut r = Registry::new(&[
            cfg("app_c", MetricKind::Counter),
            cfg("app_g", MetricKind::Gauge),
            hc,
            cfg("app_s", MetricKind::Summary),
        ]);
        let now = Instant::now();
        for v in [0.1, 2.0, 1e7, 3e-9] {
            for n in ["app_c", "app_g", "app_h", "app_s"] {
                r.apply(n, v, now);
            }
        }
        let mut out = String::new();
        r.render(now, &mut out);
        let mut rc = RequestCounter::new();
        rc.inc(200, "/v3/metric");
        rc.render(&mut out);
        render_watch_instances(&[("backend", 3), ("db", 0)], &mut out);
        let h = Histogram::default();
        render_jobs(
            &[JobSample {
                name: "app",
                restarts: 0,
                exits_success: 0,
                exits_failed: 0,
                healthy: Some(false),
                check_durations: Some(&h),
            }],
            &mut out,
        );
        render_process(&mut out);
        let fams = parse_strict(&out);
        assert!(fams.len() >= 14, "{fams:?}");
    }

    /// A strict reader of text format 0.0.4: every sample's family has had
    /// exactly one HELP then TYPE; families are contiguous and unique; names
    /// and labels are valid and values parse. Returns the family names.
    fn parse_strict(text: &str) -> Vec<String> {
        fn valid_name(n: &str) -> bool {
            let mut cs = n.chars();
            matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
                && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        }
        fn parse_value(v: &str) -> f64 {
            match v {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                _ => {
                    assert!(
                        !v.is_empty() && !v.contains(|c: char| c.is_ascii_alphabetic() && c != 'e'),
                        "bad value {v:?}"
                    );
                    v.parse().unwrap_or_else(|_| panic!("bad value {v:?}"))
                }
            }
        }
        assert!(text.ends_with('\n'));
        let mut families: Vec<(String, String)> = Vec::new(); // (name, type)
        let mut pending_help: Option<String> = None;
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                assert!(pending_help.is_none(), "HELP twice: {line}");
                let name = rest.split(' ').next().unwrap();
                assert!(valid_name(name), "{line}");
                assert!(
                    rest.len() > name.len(),
                    "HELP without text separator: {line}"
                );
                // Only \\ and \n escapes in help.
                let help = &rest[name.len() + 1..];
                let mut it = help.chars();
                while let Some(c) = it.next() {
                    if c == '\\' {
                        assert!(
                            matches!(it.next(), Some('\\' | 'n')),
                            "bad escape in {line}"
                        );
                    }
                }
                assert!(
                    !families.iter().any(|(n, _)| n == name),
                    "family {name} twice"
                );
                pending_help = Some(name.to_string());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(
                    pending_help.take().as_deref(),
                    Some(name),
                    "TYPE without HELP first: {line}"
                );
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
                families.push((name.into(), kind.into()));
                current = Some((name.into(), kind.into()));
                continue;
            }
            assert!(!line.starts_with('#'), "stray comment {line}");
            assert!(
                pending_help.is_none(),
                "sample between HELP and TYPE: {line}"
            );
            let (series, value) = line.rsplit_once(' ').unwrap();
            parse_value(value);
            let (name, labels) = match series.find('{') {
                Some(i) => (&series[..i], Some(&series[i..])),
                None => (series, None),
            };
            assert!(valid_name(name), "{line}");
            let (fam, kind) = current
                .as_ref()
                .unwrap_or_else(|| panic!("sample before any TYPE: {line}"));
            let ok = match kind.as_str() {
                "histogram" => [
                    format!("{fam}_bucket"),
                    format!("{fam}_sum"),
                    format!("{fam}_count"),
                ]
                .contains(&name.to_string()),
                "summary" => {
                    name == fam || name == format!("{fam}_sum") || name == format!("{fam}_count")
                }
                _ => name == fam,
            };
            assert!(ok, "sample {name} outside its family (current {fam})");
            let mut label_names = Vec::new();
            if let Some(l) = labels {
                let inner = l
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("{line}"));
                let mut chars = inner.chars().peekable();
                loop {
                    let mut key = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '=' {
                            break;
                        }
                        key.push(c);
                        chars.next();
                    }
                    assert!(
                        valid_name(&key) && !key.contains(':'),
                        "bad label name in {line}"
                    );
                    assert_eq!(chars.next(), Some('='));
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut val = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => match chars.next() {
                                Some('\\') => val.push('\\'),
                                Some('"') => val.push('"'),
                                Some('n') => val.push('\n'),
                                other => panic!("bad escape {other:?} in {line}"),
                            },
                            Some('"') => break,
                            Some('\n') | None => panic!("unterminated label value in {line}"),
                            Some(c) => val.push(c),
                        }
                    }
                    if key == "le" || key == "quantile" {
                        parse_value(&val);
                    }
                    label_names.push(key);
                    match chars.next() {
                        Some(',') => continue,
                        None => break,
                        other => panic!("unexpected {other:?} in {line}"),
                    }
                }
            }
            if kind == "histogram" && name.ends_with("_bucket") {
                assert_eq!(label_names.last().map(String::as_str), Some("le"), "{line}");
            }
            let mut sorted = label_names.clone();
            sorted.dedup();
            assert_eq!(sorted.len(), label_names.len(), "duplicate label in {line}");
        }
        assert!(pending_help.is_none());
        families.into_iter().map(|(n, _)| n).collect()
    }
}
