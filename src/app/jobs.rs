//! The per-job API (SPEC §4.1): start, stop, restart and signal a job by
//! name, list jobs, and hand out their output buffers. A name addresses
//! every job of that name. `stop` and `restart` answer once their jobs are
//! done stopping, so their replies wait here, bounded.

use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::config::TELEMETRY_SERVICE;
use crate::logbuf::LogBuffer;
use crate::msg::{Answer, JobAction, Refusal, RefusalKind, Reply, ServiceReport};
use crate::process::RunnerCmd;

use super::{App, Pending, Retiring};

impl App {
    /// The jobs answering to `name` (not those on their way out).
    fn named(&self, name: &str) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| {
                self.entries[i].retiring == Retiring::No && self.entries[i].job.name() == name
            })
            .collect()
    }

    fn not_found(name: &str) -> Refusal {
        Refusal::new(RefusalKind::NotFound, format!("no job named {name:?}"))
    }

    /// `None` when the answer comes later (see `answer_pending`).
    pub(super) fn job_command(
        &mut self,
        name: &str,
        action: JobAction,
        reply: &Reply,
    ) -> Option<Result<Answer, Refusal>> {
        let found = self.named(name);
        if found.is_empty() {
            return Some(Err(Self::not_found(name)));
        }
        if self.telemetry_entry().is_some_and(|t| found.contains(&t)) {
            return Some(Err(Refusal::new(
                RefusalKind::Conflict,
                "the telemetry service cannot be started, stopped or signalled",
            )));
        }
        let now = Instant::now();
        match action {
            JobAction::Start => {
                let mut updated = false;
                let mut any_exec = false;
                for &i in &found {
                    let Some((u, actions)) = self.entries[i].job.api_start(now) else {
                        continue;
                    };
                    any_exec = true;
                    updated |= u;
                    if u {
                        // A stop took it out of discovery.
                        self.register(i);
                    }
                    self.apply(i, actions);
                }
                if !any_exec {
                    return Some(Err(no_exec(name)));
                }
                Some(Ok(Answer::Updated(updated)))
            }
            JobAction::Stop => {
                let mut updated = false;
                for &i in &found {
                    let (u, actions) = self.entries[i].job.api_stop(now);
                    updated |= u;
                    self.apply(i, actions);
                }
                self.wait_for(&found, reply, updated, now)
            }
            JobAction::Restart => {
                let mut any_exec = false;
                for &i in &found {
                    let Some(actions) = self.entries[i].job.api_restart(now) else {
                        continue;
                    };
                    any_exec = true;
                    self.register(i);
                    self.apply(i, actions);
                }
                if !any_exec {
                    return Some(Err(no_exec(name)));
                }
                self.wait_for(&found, reply, true, now)
            }
            JobAction::Signal(number) => {
                let Ok(sig) = Signal::try_from(number) else {
                    return Some(Err(Refusal::invalid(format!("unknown signal {number}"))));
                };
                let running: Vec<usize> = found
                    .into_iter()
                    .filter(|&i| self.entries[i].job.is_running())
                    .collect();
                if running.is_empty() {
                    return Some(Err(Refusal::new(
                        RefusalKind::Conflict,
                        format!("job {name:?} has no process running"),
                    )));
                }
                for i in running {
                    if let Some(r) = &self.entries[i].runner {
                        r.send(RunnerCmd::Signal(sig));
                    }
                }
                Some(Ok(Answer::Updated(true)))
            }
        }
    }

    /// Answer now if none of `found` is still stopping, else once they are
    /// (bounded by their and the global stop timeouts).
    fn wait_for(
        &mut self,
        found: &[usize],
        reply: &Reply,
        updated: bool,
        now: Instant,
    ) -> Option<Result<Answer, Refusal>> {
        if found.iter().all(|&i| !self.entries[i].job.api_busy()) {
            return Some(Ok(Answer::Updated(updated)));
        }
        let longest = found
            .iter()
            .map(|&i| self.entries[i].job.cfg.stop_timeout)
            .max()
            .unwrap_or_default();
        let bound = longest.max(self.cfg.stop_timeout)
            + self.cfg.stop_timeout
            + std::time::Duration::from_secs(1);
        self.pending.push(Pending {
            ids: found.iter().map(|&i| self.entries[i].id).collect(),
            reply: reply.clone(),
            updated,
            deadline: now + bound,
        });
        None
    }

    /// Answer the stops and restarts whose jobs are done (or gone, or late).
    pub(super) fn answer_pending(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let done = p.ids.iter().all(|id| {
                self.index(*id)
                    .is_none_or(|j| !self.entries[j].job.api_busy())
            });
            if done || now >= p.deadline {
                let p = self.pending.remove(i);
                let _ = p.reply.send(Ok(Answer::Updated(p.updated)));
            } else {
                i += 1;
            }
        }
    }

    /// `GET /v3/jobs` and `GET /v3/jobs/NAME`.
    pub(super) fn job_reports(&self, name: Option<&str>) -> Result<Vec<ServiceReport>, Refusal> {
        let reports: Vec<ServiceReport> = self
            .entries
            .iter()
            .filter(|e| e.retiring == Retiring::No)
            .filter(|e| name.is_none_or(|n| e.job.name() == n))
            .map(|e| self.service_report(&e.job))
            .collect();
        match name {
            Some(n) if reports.is_empty() => Err(Self::not_found(n)),
            _ => Ok(reports),
        }
    }

    /// The output buffers of the jobs of `name`, for `/v3/jobs/NAME/logs`.
    pub(super) fn log_buffers(&self, name: &str) -> Result<Vec<Arc<LogBuffer>>, Refusal> {
        let found = self.named(name);
        if found.is_empty() {
            return Err(Self::not_found(name));
        }
        Ok(found.iter().map(|&i| self.entries[i].log.clone()).collect())
    }
}

fn no_exec(name: &str) -> Refusal {
    let what = if name == TELEMETRY_SERVICE {
        "the telemetry service"
    } else {
        "it"
    };
    Refusal::new(
        RefusalKind::Conflict,
        format!("job {name:?} has no exec: {what} has no process to start"),
    )
}
