//! Metric values and their Prometheus text exposition (format 0.0.4), SPEC §4
//! (`POST /v3/metric`) and §5 (`GET /metrics`). This file owns:
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
//! - The families ContainerPilot serves about itself that are formatted from
//!   data the caller passes in: [`render_watch_instances`], [`render_events`]
//!   and [`render_jobs`] (per-job metrics, beyond 3.x).
//!
//! The rest lives beside it:
//! - `counter.rs`: [`RequestCounter`] (`containerpilot_control_http_requests`).
//! - `histogram.rs`, `summary.rs`: [`Histogram`] and `Summary`, usable on their
//!   own (the job health-check durations are a [`Histogram`] the caller keeps).
//! - `process.rs`: [`render_process`] (`process_*`, from getrusage and `/proc`).
//! - `text.rs`: the text format itself: HELP/TYPE lines, sample lines,
//!   escaping and Go's float formatting.
//!
//! Hand-written rather than a client library: a dependency would cost more
//! binary (SPEC §8: ≤ 1.5 MiB) than these few hundred lines.

mod counter;
mod histogram;
mod process;
mod summary;
mod text;

use std::collections::BTreeMap;
use std::time::Instant;

use crate::config::{MetricConfig, MetricKind};

pub use counter::RequestCounter;
pub use histogram::Histogram;
pub use process::render_process;

use histogram::DEFAULT_BUCKETS;
use summary::{Summary, DEFAULT_OBJECTIVES};
use text::{go_float, header, sample};

// ---------------------------------------------------------------------------
// Registry of user metrics

/// The user's metrics (`telemetry.metrics`) and their values.
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
        self.accepted(name, value).map(|_| ())
    }

    /// The index of the metric `name` if it accepts `value`.
    fn accepted(&self, name: &str, value: f64) -> Result<usize, String> {
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
        Ok(i)
    }

    /// Counter: add; gauge: set; histogram and summary: observe. An update
    /// that `check` refuses is ignored, so bad input never corrupts a value.
    pub fn apply(&mut self, name: &str, value: f64, now: Instant) {
        let Ok(i) = self.accepted(name, value) else {
            return;
        };
        match &mut self.metrics[i].value {
            Value::Counter(v) => *v += value,
            Value::Gauge(v) => *v = value,
            Value::Histogram(h) => h.observe(value),
            Value::Summary(s) => s.observe(value, now),
        }
    }

    /// When what `render(now)` wrote changes although nothing is applied:
    /// a summary's window moves on then. `None`: not before an update.
    pub fn valid_until(&self, now: Instant) -> Option<Instant> {
        self.metrics
            .iter()
            .filter_map(|m| match &m.value {
                Value::Summary(s) => s.next_rotation(now),
                _ => None,
            })
            .min()
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
// ContainerPilot's own families

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
    /// Starts the restart policy made after an exit (a crash loop shows here).
    pub restarts: u64,
    /// Every start of the job's process, whatever started it.
    pub runs: u64,
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
        "Number of times the restart policy started the job's process again after it exited.",
        "counter",
    );
    for j in jobs {
        sample(out, RESTARTS, "", &[("job", j.name)], j.restarts as f64);
    }
    const RUNS: &str = "containerpilot_job_runs_total";
    header(
        out,
        RUNS,
        "Number of times the job's process was started, by any trigger, tick, restart or the API.",
        "counter",
    );
    for j in jobs {
        sample(out, RUNS, "", &[("job", j.name)], j.runs as f64);
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn cfg(name: &str, kind: MetricKind) -> MetricConfig {
        MetricConfig {
            name: name.into(),
            help: format!("help for {name}"),
            kind,
            buckets: None,
            objectives: None,
        }
    }

    pub(super) fn render(r: &mut Registry, now: Instant) -> String {
        let mut s = String::new();
        r.render(now, &mut s);
        s
    }

    pub(super) fn value_of(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map(|v| v.parse().unwrap())
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
    fn job_metrics() {
        let mut h = Histogram::default();
        h.observe(0.02);
        let jobs = [
            JobSample {
                name: "app",
                restarts: 2,
                runs: 3,
                exits_success: 1,
                exits_failed: 3,
                healthy: Some(true),
                check_durations: Some(&h),
            },
            JobSample {
                name: "setup",
                restarts: 0,
                runs: 1,
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
                runs: 1,
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
    pub(super) fn parse_strict(text: &str) -> Vec<String> {
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
