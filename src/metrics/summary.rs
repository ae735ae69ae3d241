//! [`Summary`]: a Prometheus summary, quantiles over a sliding window plus sum
//! and count over all time, and how its samples are written.
//!
//! The window spans 8 to 10 minutes, as client_golang's does (`MaxAge` 10 min,
//! 5 age buckets). Each observation goes into 5 streams whose resets are
//! staggered by 2 minutes; a query reads the oldest stream. A stream is a list
//! of centroids (value, weight) sorted by value. Incoming values are buffered
//! and merged in; when the list grows past [`STREAM_CAP`] it is compressed
//! CKMS-style: neighbours merge only while the merged weight stays within every
//! objective's allowed rank error at that rank (`ε·n` at the target rank,
//! growing away from it). So a stream is exact while it holds at most
//! [`STREAM_CAP`] observations; past that the rank error at each objective is
//! within its `ε·n` (merges made under a smaller `n` are never split, so this
//! holds up to the usual CKMS approximation). Because the allowed weight scales
//! with `n`, a compressed stream needs a few dozen centroids for the default
//! objectives, whatever `n` is. If many tight objectives would keep it above
//! half the cap, the allowance is doubled until it fits: memory is bounded at
//! `5 × (STREAM_CAP centroids + BUFFER_CAP values)` per summary (≈ 23 KiB) and
//! accuracy degrades instead.

use std::time::{Duration, Instant};

use super::text::{go_float, sample_extra, sum_and_count};

/// Prometheus's default summary objectives: (quantile, allowed rank error).
pub const DEFAULT_OBJECTIVES: [(f64, f64); 3] = [(0.5, 0.05), (0.9, 0.01), (0.99, 0.001)];
/// How far back summary quantiles look.
pub const SUMMARY_MAX_AGE: Duration = Duration::from_secs(600);
/// Number of staggered streams per summary; the window slides in steps of
/// `SUMMARY_MAX_AGE / AGE_BUCKETS`.
pub const AGE_BUCKETS: usize = 5;
/// How long one of those slots is, in nanoseconds.
const SLOT_NANOS: u128 = SUMMARY_MAX_AGE.as_nanos() / AGE_BUCKETS as u128;
/// Centroids one summary stream may hold before it is compressed.
pub const STREAM_CAP: usize = 256;
/// Observations buffered unsorted before they are merged into a stream.
pub const BUFFER_CAP: usize = 64;

/// A Prometheus summary: quantiles over a sliding window (see the module doc),
/// sum and count over all time.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Sorted by quantile.
    objectives: Vec<(f64, f64)>,
    /// The `quantile` label of each objective, as Go formats it.
    quantile_labels: Vec<String>,
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
            quantile_labels: o.iter().map(|(q, _)| go_float(*q)).collect(),
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
        (now.saturating_duration_since(origin).as_nanos() / SLOT_NANOS) as i64
    }

    /// When the window next moves on after `now` (a stream is emptied and
    /// another one answers): quantiles rendered at `now` hold until then.
    /// `None` before the first observation or render, or without objectives.
    pub fn next_rotation(&self, now: Instant) -> Option<Instant> {
        let origin = self.origin.filter(|_| !self.streams.is_empty())?;
        let slots = now.saturating_duration_since(origin).as_nanos() / SLOT_NANOS;
        let next = u64::try_from(SLOT_NANOS.checked_mul(slots + 1)?).ok()?;
        origin.checked_add(Duration::from_nanos(next))
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
        for (q, v) in self.quantile_labels.iter().zip(qs) {
            sample_extra(out, name, "", labels, Some(("quantile", q)), v);
        }
        sum_and_count(out, name, labels, self.sum, self.count);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MetricKind;
    use crate::metrics::tests::{cfg, render, value_of};
    use crate::metrics::Registry;

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
    fn quantiles_hold_until_the_next_rotation() {
        // A cached `/metrics` page is served until `next_rotation`: the
        // quantiles must not change before it, and must have their say
        // when it comes (the old observations leave the window).
        let mut s = Summary::new(&DEFAULT_OBJECTIVES);
        let t0 = Instant::now();
        assert_eq!(s.next_rotation(t0), None);
        for v in 1..=100 {
            s.observe(v as f64, t0);
        }
        let step = SUMMARY_MAX_AGE / AGE_BUCKETS as u32;
        let mut changes = 0;
        let mut t = t0;
        while t < t0 + 3 * SUMMARY_MAX_AGE {
            let until = s.next_rotation(t).expect("a rotation ahead");
            assert!(until > t && until <= t + step, "{:?}", until - t);
            let now = s.quantiles(t);
            let mut probe = s.clone();
            let last = probe.quantiles(until - Duration::from_nanos(1));
            assert_eq!(format!("{now:?}"), format!("{last:?}"));
            let next = s.clone().quantiles(until);
            changes += usize::from(format!("{now:?}") != format!("{next:?}"));
            t += Duration::from_secs(37);
        }
        // The window emptied at some rotation, and only then.
        assert!(changes >= 1);
        assert!(s.quantiles(t).iter().all(|q| q.is_nan()));
        assert_eq!(Summary::new(&[]).next_rotation(t0), None);
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
}
