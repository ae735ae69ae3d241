//! A job's health (SPEC §3.2, §3.7): its status from check results and
//! sd_notify readiness, with `threshold` (consecutive failures before
//! `unhealthy`), `startPeriod` (failures of a young process do not count)
//! and the notify watchdog. Pure, like the rest of the job.

use std::time::{Duration, Instant, SystemTime};

use super::Action;
use crate::config::JobConfig;
use crate::event::EventCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unknown,
    Healthy,
    Unhealthy,
}

impl Status {
    /// The last result, if there has been one.
    pub fn passed(self) -> Option<bool> {
        match self {
            Status::Unknown => None,
            Status::Healthy => Some(true),
            Status::Unhealthy => Some(false),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// The most recent check result, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCheck {
    pub output: String,
    pub duration: Duration,
    pub at: SystemTime,
}

/// `STATUS=` text is cut to this many bytes.
pub const MAX_NOTIFY_STATUS: usize = 256;

#[derive(Debug, Clone)]
pub struct Health {
    pub status: Status,
    /// Consecutive failures counted so far.
    failures: u32,
    /// When the current start period began (process start, or start-up and
    /// each exit from maintenance for a job without `exec`); a pass ends it.
    period_from: Option<Instant>,
    /// The current process has sent `READY=1`.
    ready: bool,
    /// The watchdog fires at this time unless `WATCHDOG=1` comes first.
    pub watchdog_at: Option<Instant>,
    pub notify_status: Option<String>,
    pub last_check: Option<LastCheck>,
}

impl Health {
    pub fn new() -> Health {
        Health {
            status: Status::Unknown,
            failures: 0,
            period_from: None,
            ready: false,
            watchdog_at: None,
            notify_status: None,
            last_check: None,
        }
    }

    /// A new process starts (or a job without `exec` starts being checked):
    /// everything it proved about the last one is forgotten.
    pub fn restart(&mut self, now: Instant) {
        self.status = Status::Unknown;
        self.failures = 0;
        self.period_from = Some(now);
        self.ready = false;
        self.watchdog_at = None;
    }

    /// A check passed, or the process said `READY=1`.
    fn pass(&mut self, out: &mut Vec<Action>) {
        self.failures = 0;
        self.period_from = None;
        out.push(Action::Pass);
        if self.status != Status::Healthy {
            self.status = Status::Healthy;
            out.push(Action::Publish(EventCode::Healthy));
        }
    }

    /// A failure that counts (past the start period and the threshold).
    fn fail(&mut self, output: String, out: &mut Vec<Action>) {
        out.push(Action::Fail(output));
        if self.status != Status::Unhealthy {
            self.status = Status::Unhealthy;
            out.push(Action::Publish(EventCode::Unhealthy));
        }
    }

    /// A check result. Below `threshold`, and inside the start period, a
    /// failure changes nothing at all: no event, no Consul update.
    pub fn on_checked(
        &mut self,
        cfg: &JobConfig,
        passed: bool,
        output: String,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if passed {
            self.pass(&mut out);
            return out;
        }
        let Some(h) = &cfg.health else {
            return out;
        };
        if self
            .period_from
            .is_some_and(|from| now.saturating_duration_since(from) < h.start_period)
        {
            return out;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= h.threshold.max(1) {
            self.fail(output, &mut out);
        }
        out
    }

    pub fn record(&mut self, output: &str, duration: Duration, at: SystemTime) {
        self.last_check = Some(LastCheck {
            output: output.to_string(),
            duration,
            at,
        });
    }

    /// `READY=1`: healthy as a passing check makes it; the watchdog clock starts.
    pub fn on_ready(
        &mut self,
        watchdog: Option<Duration>,
        maintenance: bool,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        self.ready = true;
        if maintenance {
            return out;
        }
        self.watchdog_at = watchdog.map(|w| now + w);
        self.pass(&mut out);
        out
    }

    /// `WATCHDOG=1`: the clock starts over (only once the process is ready).
    pub fn on_watchdog_ping(&mut self, watchdog: Option<Duration>, now: Instant) {
        if self.ready && self.watchdog_at.is_some() {
            self.watchdog_at = watchdog.map(|w| now + w);
        }
    }

    pub fn set_status_text(&mut self, text: &str) {
        self.notify_status = Some(crate::logbuf::cut(text, MAX_NOTIFY_STATUS).to_string());
    }

    /// The watchdog ran out: unhealthy now; the caller aborts the process.
    pub fn on_watchdog_missed(&mut self, watchdog: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        self.watchdog_at = None;
        self.ready = false;
        self.fail(
            format!("no WATCHDOG=1 within {watchdog:?}: the process is hung"),
            &mut out,
        );
        out
    }

    pub fn enter_maintenance(&mut self) {
        self.watchdog_at = None;
    }

    /// Back from maintenance: unknown, unless the process already said it
    /// is ready (then healthy, and its watchdog clock starts over).
    pub fn leave_maintenance(&mut self, watchdog: Option<Duration>, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.status = Status::Unknown;
        self.failures = 0;
        if self.ready {
            self.watchdog_at = watchdog.map(|w| now + w);
            self.pass(&mut out);
        }
        out
    }

    /// Failures would not count now (the process is still young, and no
    /// check has passed since it started).
    pub fn in_start_period(&self, cfg: &JobConfig, now: Instant) -> bool {
        let period = cfg
            .health
            .as_ref()
            .map_or(Duration::ZERO, |h| h.start_period);
        self.period_from
            .is_some_and(|from| now.saturating_duration_since(from) < period)
    }

    /// The start period runs from now (a job without `exec` leaving
    /// maintenance or starting up).
    pub fn start_period_from(&mut self, now: Instant) {
        self.period_from = Some(now);
    }
}
