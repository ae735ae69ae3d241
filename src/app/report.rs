//! What the loop shows of its state: the `/status` document (SPEC §5), the
//! container's health for `/v3/health` (SPEC §4), and the `/metrics` page
//! (but for `process_*`, which the telemetry thread reads itself).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::job::{Job, Status};
use crate::log;
use crate::metrics::{self, JobSample};
use crate::msg::{CheckReport, HealthReport, ServiceReport, StatusReport, WatchReport};
use crate::version::VERSION;

use super::{App, Retiring};

impl App {
    pub(super) fn status(&self) -> StatusReport {
        StatusReport {
            version: VERSION,
            maintenance: self.maintenance,
            services: self
                .entries
                .iter()
                .filter(|e| e.retiring == Retiring::No)
                .map(|e| self.service_report(&e.job))
                .collect(),
            watches: self
                .watches
                .iter()
                .map(|w| WatchReport {
                    name: w.cfg.name.clone(),
                    status: w.state.status(),
                    instances: w.state.instances().map_or(0, |s| s.len()),
                })
                .collect(),
        }
    }

    pub(super) fn service_report(&self, job: &Job) -> ServiceReport {
        let cfg = &job.cfg;
        let status = if self.maintenance {
            "maintenance"
        } else if cfg.health.is_some() || cfg.notify.is_some() {
            job.health.status.name()
        } else {
            "nonadvertised"
        };
        let svc = cfg.service.as_ref();
        ServiceReport {
            name: cfg.name.clone(),
            address: svc.and_then(|s| s.address).map(|a| a.to_string()),
            port: svc.map(|s| s.port),
            status,
            depends_on: job.depends_on().into_iter().map(str::to_string).collect(),
            state: job.state(),
            pid: job.pid,
            restarts: job.restarts,
            runs: job.runs,
            last_exit_code: job.last_exit,
            last_check: job.health.last_check.as_ref().map(|c| CheckReport {
                output: c.output.clone(),
                duration_ms: c.duration.as_secs_f64() * 1000.0,
                at: log::rfc3339(c.at),
            }),
            notify_status: job.health.notify_status.clone(),
        }
    }

    /// Healthy when every job with a health check or `notify` is healthy
    /// (in its start period counts as healthy), no `shutdownOn` job has
    /// fired, and not in maintenance. Completed jobs, jobs stopped through
    /// the API and the telemetry service are not considered.
    pub(super) fn health_report(&self, now: Instant) -> HealthReport {
        let telemetry = self.telemetry_entry();
        let mut unhealthy: Vec<String> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let job = &e.job;
            let considered = e.retiring == Retiring::No
                && Some(i) != telemetry
                && (job.cfg.health.is_some() || job.cfg.notify.is_some())
                && !job.is_stopped()
                && !job.held;
            if !considered {
                continue;
            }
            let ok = match job.health.status {
                Status::Healthy => job.state() != "backoff",
                Status::Unhealthy => false,
                Status::Unknown => job.in_start_period(now),
            };
            if (!ok || self.maintenance) && !unhealthy.iter().any(|n| n == job.name()) {
                unhealthy.push(job.name().to_string());
            }
        }
        let healthy = unhealthy.is_empty() && !self.maintenance && self.exit_code.is_none();
        HealthReport { healthy, unhealthy }
    }

    /// The `GET /metrics` page, but for the `process_*` families.
    pub(super) fn metrics_text(&mut self) -> String {
        // The page is about as long as last time: one allocation, not a dozen.
        let mut out = String::with_capacity(self.metrics_len + 1024);
        self.metrics.render(Instant::now(), &mut out);
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .render(&mut out);
        metrics::render_events(&self.events, &mut out);
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
        metrics::render_watch_instances(&watched, &mut out);
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
        metrics::render_jobs(&jobs, &mut out);
        self.metrics_len = out.len();
        out
    }
}
