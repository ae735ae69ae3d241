//! [`Histogram`]: a Prometheus histogram (per-bucket counts, sum and count over
//! all time) and how its samples are written. Used for the user's histograms
//! and for the job health-check durations.

use std::sync::{Arc, OnceLock};

use super::text::{go_float, sample_extra, sum_and_count};

/// Prometheus's default histogram buckets.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus histogram: per-bucket counts, sum and count over all time.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Arc<Buckets>,
    /// Non-cumulative: `counts[i]` for `bounds[i]`, the last one for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Upper bounds and their `le` labels, formatted once: a scrape writes a
/// bucket line per bound of every job's check-duration histogram, and the
/// bounds never change. Histograms with the default buckets share one.
#[derive(Debug)]
struct Buckets {
    /// Strictly increasing, finite; `+Inf` is implicit.
    bounds: Vec<f64>,
    /// The `le` value of each bound, then `+Inf`.
    le: Vec<String>,
}

impl Buckets {
    fn new(bounds: &[f64]) -> Buckets {
        let mut b: Vec<f64> = bounds
            .iter()
            .copied()
            .filter(|x| !x.is_nan() && *x != f64::INFINITY)
            .collect();
        b.sort_by(f64::total_cmp);
        b.dedup();
        let le = b
            .iter()
            .map(|x| go_float(*x))
            .chain(std::iter::once("+Inf".to_string()))
            .collect();
        Buckets { bounds: b, le }
    }
}

impl Default for Histogram {
    fn default() -> Histogram {
        static DEFAULT: OnceLock<Arc<Buckets>> = OnceLock::new();
        Histogram::with(
            DEFAULT
                .get_or_init(|| Arc::new(Buckets::new(&DEFAULT_BUCKETS)))
                .clone(),
        )
    }
}

impl Histogram {
    /// Bounds are sorted and deduplicated; NaN and `+Inf` (always implicit,
    /// as in client_golang) are dropped, so any input makes a valid histogram.
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram::with(Arc::new(Buckets::new(bounds)))
    }

    fn with(buckets: Arc<Buckets>) -> Histogram {
        let n = buckets.le.len();
        Histogram {
            buckets,
            counts: vec![0; n],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        // `le` is inclusive: the first bucket whose bound is >= v.
        let i = self.buckets.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// `name_bucket{labels,le=...}` for every bound and `+Inf`, then `_sum`
    /// and `_count`. The family header is the caller's.
    pub fn render_samples(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let mut cum = 0u64;
        for (c, le) in self.counts.iter().zip(&self.buckets.le) {
            cum += c;
            sample_extra(out, name, "_bucket", labels, Some(("le", le)), cum as f64);
        }
        sum_and_count(out, name, labels, self.sum, self.count);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::MetricKind;
    use crate::metrics::tests::{cfg, render, value_of};
    use crate::metrics::Registry;
    use std::time::Instant;

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
}
