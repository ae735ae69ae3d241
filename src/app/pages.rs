//! The two pages the servers cache (see `msg::Published`): the `/status`
//! document (SPEC §5), serialised here by hand, and the loop's part of the
//! `/metrics` page; and `stale`, which drops both before anything that may
//! change them.
//!
//! `/status` is written straight into bytes rather than built as a
//! `StatusReport` for serde: that made a dozen small allocations per job
//! and cost several µs per job, where writing the text costs a fraction of
//! one. The text is byte for byte what serde_json writes for the
//! `StatusReport` (strings and numbers go through serde_json itself), and
//! a test holds the two side by side.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use crate::job::Job;
use crate::log;
use crate::metrics::{self, JobSample};
use crate::msg::MetricsPage;
use crate::version::VERSION;

use super::{App, Retiring};

impl App {
    /// The state may change from here on: drop the cached pages, so that
    /// nobody is served one the loop would no longer render. Called before
    /// every message but a query is handled, and before a turn's timers
    /// and bookkeeping run when the turn handled one or a timer is due
    /// (see `finish_turn`); what a query-only turn does after its queries
    /// changes nothing that the pages show.
    pub(super) fn stale(&self) {
        self.pages.status.clear();
        self.pages.metrics.clear();
    }

    /// The `/status` document, rendered and cached.
    pub(super) fn status_page(&mut self) -> Arc<Vec<u8>> {
        let page = Arc::new(self.status_json());
        self.pages.status.set(page.clone());
        page
    }

    /// The loop's part of `/metrics`, rendered and cached.
    pub(super) fn metrics_page(&mut self) -> Arc<MetricsPage> {
        let page = Arc::new(self.metrics_text());
        self.pages.metrics.set(page.clone());
        page
    }

    fn status_json(&mut self) -> Vec<u8> {
        // About as long as last time: one allocation, not a dozen.
        let mut out = Vec::with_capacity(self.status_len + 256);
        out.extend_from_slice(b"{\"version\":");
        json(&mut out, VERSION);
        out.extend_from_slice(b",\"maintenance\":");
        json(&mut out, &self.maintenance);
        out.extend_from_slice(b",\"services\":[");
        let mut first = true;
        for e in self.entries.iter().filter(|e| e.retiring == Retiring::No) {
            if !first {
                out.push(b',');
            }
            first = false;
            self.write_service(&mut out, &e.job);
        }
        out.extend_from_slice(b"],\"watches\":[");
        for (i, w) in self.watches.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            json(&mut out, &w.cfg.name);
            out.extend_from_slice(b",\"status\":");
            json(&mut out, w.state.status());
            out.extend_from_slice(b",\"instances\":");
            json(&mut out, &w.state.instances().map_or(0, |s| s.len()));
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        self.status_len = out.len();
        out
    }

    /// One `services` entry, the fields of `ServiceReport` in its order.
    fn write_service(&self, out: &mut Vec<u8>, job: &Job) {
        let cfg = &job.cfg;
        let svc = cfg.service.as_ref();
        out.extend_from_slice(b"{\"name\":");
        json(out, &cfg.name);
        out.extend_from_slice(b",\"address\":");
        match svc.and_then(|s| s.address) {
            // An address needs no escaping.
            Some(a) => {
                let _ = write!(out, "\"{a}\"");
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"port\":");
        json(out, &svc.map(|s| s.port));
        out.extend_from_slice(b",\"status\":");
        json(out, self.service_status(job));
        out.extend_from_slice(b",\"depends_on\":[");
        for (i, d) in job.depends_on().into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json(out, d);
        }
        out.extend_from_slice(b"],\"state\":");
        json(out, job.state());
        out.extend_from_slice(b",\"pid\":");
        json(out, &job.pid);
        out.extend_from_slice(b",\"restarts\":");
        json(out, &job.restarts);
        out.extend_from_slice(b",\"runs\":");
        json(out, &job.runs);
        out.extend_from_slice(b",\"last_exit_code\":");
        json(out, &job.last_exit);
        out.extend_from_slice(b",\"last_check\":");
        match &job.health.last_check {
            Some(c) => {
                out.extend_from_slice(b"{\"output\":");
                json(out, &c.output);
                out.extend_from_slice(b",\"duration_ms\":");
                json(out, &(c.duration.as_secs_f64() * 1000.0));
                out.extend_from_slice(b",\"at\":\"");
                log::write_rfc3339(out, c.at);
                out.extend_from_slice(b"\"}");
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"notify_status\":");
        match &job.health.notify_status {
            Some(s) => json(out, s),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }

    /// The `/metrics` page but for the control plane's request counter and
    /// the `process_*` families, which the server adds.
    fn metrics_text(&mut self) -> MetricsPage {
        let now = Instant::now();
        let mut head = String::with_capacity(self.metrics_len.0 + 256);
        self.metrics.render(now, &mut head);
        let mut tail = String::with_capacity(self.metrics_len.1 + 1024);
        metrics::render_events(&self.events, &mut tail);
        let watched: Vec<(&str, usize)> = self
            .watches
            .iter()
            .map(|w| {
                (
                    w.cfg.name.as_str(),
                    w.state.instances().map_or(0, |s| s.len()),
                )
            })
            .collect();
        metrics::render_watch_instances(&watched, &mut tail);
        // One series per name: duplicates are summed (SPEC §3.7).
        let mut by_name: BTreeMap<&str, (u64, u64, Option<bool>)> = BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.retiring == Retiring::No) {
            let s = by_name.entry(e.job.name()).or_default();
            s.0 += e.job.restarts;
            s.1 += e.job.runs;
            let passed = e.job.health.status.passed();
            s.2 = match (s.2, passed) {
                (Some(a), Some(b)) => Some(a && b),
                (a, b) => a.or(b),
            };
        }
        let jobs: Vec<JobSample> = by_name
            .iter()
            .map(|(name, (restarts, runs, healthy))| {
                let stats = self.stats.get(*name);
                JobSample {
                    name,
                    restarts: *restarts,
                    runs: *runs,
                    exits_success: stats.map_or(0, |s| s.exits_success),
                    exits_failed: stats.map_or(0, |s| s.exits_failed),
                    healthy: *healthy,
                    check_durations: stats.and_then(|s| s.check_durations.as_ref()),
                }
            })
            .collect();
        metrics::render_jobs(&jobs, &mut tail);
        self.metrics_len = (head.len(), tail.len());
        MetricsPage {
            valid_until: self.metrics.valid_until(now),
            head,
            tail,
        }
    }
}

// serde_json writes every string and number, so that they come out exactly
// as in a serialised `StatusReport`; writing into a Vec cannot fail.

fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(&mut *out, value);
}
