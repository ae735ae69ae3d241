//! What the loop shows of its state: the `/status` document (SPEC §5) and
//! the `/metrics` page (but for `process_*`, which the telemetry thread
//! reads itself).

use std::time::Instant;

use crate::job::{Job, Phase};
use crate::metrics::{self, JobSample};
use crate::msg::{ServiceReport, StatusReport, WatchReport};
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

    fn service_report(&self, job: &Job) -> ServiceReport {
        let cfg = &job.cfg;
        let status = if self.maintenance {
            "maintenance"
        } else if cfg.health.is_some() {
            job.health.name()
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
            state: match job.phase {
                Phase::Waiting => "waiting",
                Phase::Running => "running",
                Phase::Stopping => "stopping",
                Phase::Stopped => "stopped",
            },
            pid: job.pid,
            restarts: job.restarts(),
            last_exit_code: job.last_exit,
        }
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
        let jobs: Vec<JobSample> = self
            .entries
            .iter()
            .filter(|e| e.retiring == Retiring::No)
            .map(|e| JobSample {
                name: e.job.name(),
                restarts: e.job.restarts(),
                exits_success: e.exits_success,
                exits_failed: e.exits_failed,
                healthy: e.job.health.passed(),
                check_durations: e.check_durations.as_ref(),
            })
            .collect();
        metrics::render_jobs(&jobs, &mut out);
        self.metrics_len = out.len();
        out
    }
}
