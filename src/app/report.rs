//! What the loop shows of its state as values: the jobs of `/v3/jobs`
//! and the container's health for `/v3/health` (SPEC §4). The cached
//! pages, `/status` and `/metrics`, are in `pages`.

use std::time::Instant;

use crate::job::{Job, Status};
use crate::log;
use crate::msg::{CheckReport, HealthReport, ServiceReport};

use super::{App, Retiring};

impl App {
    /// The `/status` document as a value: what `status_json` writes, for
    /// the tests that hold the two side by side and read the document.
    #[cfg(test)]
    pub(super) fn status(&self) -> crate::msg::StatusReport {
        use crate::msg::{StatusReport, WatchReport};
        StatusReport {
            version: crate::version::VERSION,
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

    /// `maintenance` while in maintenance; else for a job with a health
    /// check or `notify` `unknown`/`healthy`/`unhealthy`; else
    /// `nonadvertised` (SPEC §5).
    pub(super) fn service_status(&self, job: &Job) -> &'static str {
        let cfg = &job.cfg;
        if self.maintenance {
            "maintenance"
        } else if cfg.health.is_some() || cfg.notify.is_some() {
            job.health.status.name()
        } else {
            "nonadvertised"
        }
    }

    pub(super) fn service_report(&self, job: &Job) -> ServiceReport {
        let cfg = &job.cfg;
        let svc = cfg.service.as_ref();
        ServiceReport {
            name: cfg.name.clone(),
            address: svc.and_then(|s| s.address).map(|a| a.to_string()),
            port: svc.map(|s| s.port),
            status: self.service_status(job),
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
}
