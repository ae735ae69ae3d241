//! One job's state machine (SPEC §3.2, §3.3): when it starts, restarts,
//! gives up, stops and completes. Pure: every method takes the current time
//! and returns the `Action`s for the event loop to carry out, so each rule is
//! unit-tested without a process.

use std::time::{Duration, Instant};

use crate::config::{JobConfig, Restarts, When};
use crate::event::{Event, EventCode, GLOBAL};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for its start condition (or for the next interval tick).
    Waiting,
    /// Its process has been asked to start or is running.
    Running,
    /// Has published `stopping`; waiting for its dependant, then for its process to exit.
    Stopping,
    /// Has published `stopped`: it will never run again.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Healthy,
    Unhealthy,
}

impl Health {
    /// The last check's result, if there has been one.
    pub fn passed(self) -> Option<bool> {
        match self {
            Health::Unknown => None,
            Health::Healthy => Some(true),
            Health::Unhealthy => Some(false),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// The first time after `now` on the grid `t + k·every`: a missed tick is
/// skipped, not bunched up with the next (after a suspend, say).
pub fn next_tick(t: Instant, every: Duration, now: Instant) -> Instant {
    let mut next = t + every;
    while next <= now {
        next += every;
    }
    next
}

/// What the event loop must do on the job's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the job's process (the loop builds argv and environment).
    Start,
    /// SIGTERM the process group.
    Terminate,
    /// SIGKILL the process group.
    Kill,
    /// Publish an event whose source is this job.
    Publish(EventCode),
    /// Run the health check now.
    Check,
    /// Discovery: the check passed (register if needed, heartbeat).
    Pass,
    /// Discovery: the check failed with this output.
    Fail(String),
    /// Discovery: remove the service.
    Deregister,
    /// Say something in the log.
    Log(String),
}

#[derive(Debug)]
pub struct Job {
    pub cfg: JobConfig,
    pub phase: Phase,
    pub health: Health,
    pub pid: Option<u32>,
    /// A process was asked for and has not exited (its pid may not be known yet).
    has_process: bool,
    /// Process starts so far.
    pub runs: u64,
    pub last_exit: Option<i32>,
    /// `None`: unlimited.
    restarts_left: Option<u32>,
    /// The `when` trigger is still accepted (3.x "startsRemain != 0").
    armed: bool,
    /// The job named by `when.source` has published `stopped`: it can never fire again.
    source_gone: bool,
    /// Jobs that start on our `stopping` and have not yet published `stopped`.
    dependants: Vec<String>,
    global_stop_timeout: Duration,
    maintenance: bool,
    shutting_down: bool,
    // Deadlines the loop waits for (s6-style: a timeout is an event).
    tick_at: Option<Instant>,
    give_up_at: Option<Instant>,
    kill_at: Option<Instant>,
    stop_wait_until: Option<Instant>,
    check_at: Option<Instant>,
}

impl Job {
    /// `dependants`: names of the jobs whose `when` is `{source: this job, once|each: stopping}`.
    pub fn new(cfg: JobConfig, dependants: Vec<String>, global_stop_timeout: Duration) -> Job {
        let restarts_left = match cfg.restarts {
            Restarts::Unlimited => None,
            Restarts::Count(n) => Some(n),
            Restarts::Never => Some(0),
        };
        Job {
            cfg,
            phase: Phase::Waiting,
            health: Health::Unknown,
            pid: None,
            has_process: false,
            runs: 0,
            last_exit: None,
            restarts_left,
            armed: true,
            source_gone: false,
            dependants,
            global_stop_timeout,
            maintenance: false,
            shutting_down: false,
            tick_at: None,
            give_up_at: None,
            kill_at: None,
            stop_wait_until: None,
            check_at: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Starts after the first one, for /status and metrics.
    pub fn restarts(&self) -> u64 {
        self.runs.saturating_sub(1)
    }

    /// The job or watch this job waits for, as `when.source` names it.
    pub fn depends_on(&self) -> Option<&str> {
        match &self.cfg.when {
            When::Event { sources, code, .. }
                if *code != EventCode::Signal && sources.first().is_some_and(|s| s != GLOBAL) =>
            {
                sources.first().map(String::as_str)
            }
            _ => None,
        }
    }

    /// Finished for good: it will never run again.
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// A process exists or has been asked for.
    pub fn is_running(&self) -> bool {
        self.has_process
    }

    /// The earliest deadline this job is waiting for.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.tick_at,
            self.give_up_at,
            self.kill_at,
            self.stop_wait_until,
            self.check_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The loop has started watching: arm `when.timeout`.
    pub fn on_subscribed(&mut self, now: Instant) {
        if let When::Event {
            timeout: Some(t), ..
        } = self.cfg.when
        {
            self.give_up_at = Some(now + t);
        }
    }

    /// Deliver one event (published by anyone, this job included).
    pub fn on_event(&mut self, ev: &Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Stopped {
            return out;
        }
        if ev.code == EventCode::Stopped && self.dependants.contains(&ev.source) {
            self.dependants.retain(|d| *d != ev.source);
            if self.phase == Phase::Stopping
                && self.stop_wait_until.is_some()
                && self.dependants.is_empty()
            {
                self.stop_wait_until = None;
                self.finish_stopping(now, &mut out);
            }
        }
        if *ev == Event::global(EventCode::Shutdown) {
            self.on_shutdown(now, &mut out);
            return out;
        }
        if *ev == Event::global(EventCode::Startup) {
            self.on_startup(now, &mut out);
        }
        if self.triggered_by(ev) {
            self.on_trigger(ev, now, &mut out);
        }
        if ev.code == EventCode::Stopped
            && self.source_is_job()
            && self.when_source() == Some(ev.source.as_str())
        {
            self.source_gone = true;
            if self.phase == Phase::Waiting {
                out.push(Action::Log(format!(
                    "{} can never fire again: giving up",
                    self.trigger_text()
                )));
                self.halt(now, &mut out);
            }
        }
        out
    }

    fn on_startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.cfg.exec.is_none() && self.cfg.health.is_some() {
            self.schedule_check(now);
        }
        if let When::Interval(every) = self.cfg.when {
            self.tick_at = Some(now + every);
            self.start(now, out);
        }
    }

    fn triggered_by(&self, ev: &Event) -> bool {
        match &self.cfg.when {
            When::Startup => *ev == Event::global(EventCode::Startup),
            When::Interval(_) => false,
            When::Event { sources, code, .. } => ev.code == *code && sources.contains(&ev.source),
            When::Never => false,
        }
    }

    fn on_trigger(&mut self, ev: &Event, now: Instant, out: &mut Vec<Action>) {
        let signal = ev.code == EventCode::Signal;
        if !self.armed && !signal {
            return;
        }
        if self.phase != Phase::Waiting {
            if self.phase == Phase::Running {
                out.push(Action::Log(format!(
                    "{ev} arrived while the job is running: ignored"
                )));
            }
            return;
        }
        if let When::Event { once: true, .. } | When::Startup = self.cfg.when {
            if !signal {
                self.armed = false;
            }
        }
        self.give_up_at = None;
        self.start(now, out);
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.cfg.exec.is_none() {
            // Nothing to run: a job that only advertises or health-checks something
            // run elsewhere. It completes only if nothing keeps it alive.
            if self.cfg.health.is_none() && self.cfg.service.is_none() && !self.can_fire_again() {
                self.halt(now, out);
            }
            return;
        }
        self.runs += 1;
        self.phase = Phase::Running;
        self.has_process = true;
        self.health = Health::Unknown;
        self.kill_at = self.cfg.timeout.map(|t| now + t);
        out.push(Action::Start);
    }

    /// The loop learned the pid of the process it started.
    pub fn on_started(&mut self, pid: u32, now: Instant) {
        self.pid = Some(pid);
        if self.cfg.health.is_some() && !self.maintenance {
            self.schedule_check(now);
        }
    }

    /// The job's process exited with `code` (128+signal when killed).
    pub fn on_exit(&mut self, code: i32, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.pid = None;
        self.has_process = false;
        self.last_exit = Some(code);
        self.kill_at = None;
        self.check_at = None;
        let was = self.phase;
        if was == Phase::Running {
            self.phase = Phase::Waiting;
        }
        out.push(Action::Publish(if code == 0 {
            EventCode::ExitSuccess
        } else {
            EventCode::ExitFailed
        }));
        match was {
            Phase::Stopping => {
                if self.stop_wait_until.is_none() {
                    self.become_stopped(&mut out);
                }
            }
            Phase::Running => self.after_exit(now, &mut out),
            Phase::Waiting | Phase::Stopped => {}
        }
        out
    }

    fn after_exit(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let When::Interval(_) = self.cfg.when {
            // Periodic jobs run again on the next tick, which spends a restart.
            if self.restarts_left == Some(0) || self.shutting_down {
                self.halt(now, out);
            }
            return;
        }
        if self.restart_permitted() {
            if let Some(n) = self.restarts_left.as_mut() {
                *n -= 1;
            }
            self.start(now, out);
            return;
        }
        if self.can_fire_again() {
            return;
        }
        self.halt(now, out);
    }

    fn restart_permitted(&self) -> bool {
        !self.shutting_down && self.restarts_left != Some(0)
    }

    /// Could the `when` trigger still start this job?
    fn can_fire_again(&self) -> bool {
        match &self.cfg.when {
            When::Startup => false,
            When::Interval(_) => !self.shutting_down,
            When::Event {
                code: EventCode::Signal,
                ..
            } => !self.shutting_down,
            When::Event { .. } => self.armed && !self.source_gone,
            When::Never => false,
        }
    }

    fn when_source(&self) -> Option<&str> {
        match &self.cfg.when {
            When::Event { sources, .. } => sources.first().map(String::as_str),
            _ => None,
        }
    }

    fn source_is_job(&self) -> bool {
        match &self.cfg.when {
            When::Event { sources, code, .. } => sources.first().is_some_and(|source| {
                *code != EventCode::Signal && source != GLOBAL && !source.starts_with("watch.")
            }),
            _ => false,
        }
    }

    fn trigger_text(&self) -> String {
        match &self.cfg.when {
            When::Event { sources, code, .. } => format!("{}.{}", sources.join("|"), code.name()),
            _ => "startup".into(),
        }
    }

    /// Deadlines that have passed.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.kill_at) {
            self.kill_at = None;
            if self.has_process {
                out.push(Action::Log(if self.phase == Phase::Stopping {
                    "still running after the stop timeout: killing it".into()
                } else {
                    "timeout reached: killing the process group".into()
                }));
                out.push(Action::Kill);
            }
        }
        if due(self.give_up_at) {
            self.give_up_at = None;
            if self.phase == Phase::Waiting && self.runs == 0 {
                out.push(Action::Log(format!(
                    "{} did not happen in time: giving up",
                    self.trigger_text()
                )));
                self.armed = false;
                self.halt(now, &mut out);
            }
        }
        if due(self.stop_wait_until) {
            self.stop_wait_until = None;
            if self.phase == Phase::Stopping {
                out.push(Action::Log(format!(
                    "stop timeout: no longer waiting for {}",
                    self.dependants.join(", ")
                )));
                self.finish_stopping(now, &mut out);
            }
        }
        if let (Some(t), When::Interval(every)) = (self.tick_at, &self.cfg.when) {
            if t <= now {
                self.tick_at = Some(next_tick(t, *every, now));
                self.on_tick(now, &mut out);
            }
        }
        if due(self.check_at) {
            let every = self
                .cfg
                .health
                .as_ref()
                .map_or(Duration::from_secs(1), |h| h.interval);
            self.check_at = self.check_at.map(|t| next_tick(t, every, now));
            if self.checks_active() {
                out.push(Action::Check);
            } else {
                self.check_at = None;
            }
        }
        out
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Running => out.push(Action::Log(
                "interval tick while the job is still running: skipped".into(),
            )),
            Phase::Waiting => {
                if self.restarts_left == Some(0) {
                    self.tick_at = None;
                    self.halt(now, out);
                    return;
                }
                if let Some(n) = self.restarts_left.as_mut() {
                    *n -= 1;
                }
                self.start(now, out);
            }
            Phase::Stopping | Phase::Stopped => self.tick_at = None,
        }
    }

    fn checks_active(&self) -> bool {
        self.cfg.health.is_some()
            && !self.maintenance
            && !matches!(self.phase, Phase::Stopping | Phase::Stopped)
            && (self.cfg.exec.is_none() || self.pid.is_some())
    }

    fn schedule_check(&mut self, now: Instant) {
        if let Some(h) = &self.cfg.health {
            self.check_at = Some(now + h.interval);
        }
    }

    /// A health check finished.
    pub fn on_checked(&mut self, passed: bool, output: &str) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.checks_active() {
            return out;
        }
        let new = if passed {
            Health::Healthy
        } else {
            Health::Unhealthy
        };
        if passed {
            out.push(Action::Pass);
        } else {
            out.push(Action::Fail(output.to_string()));
        }
        if new != self.health {
            self.health = new;
            out.push(Action::Publish(if passed {
                EventCode::Healthy
            } else {
                EventCode::Unhealthy
            }));
        }
        out
    }

    pub fn set_maintenance(&mut self, on: bool, now: Instant) -> Vec<Action> {
        self.maintenance = on;
        if on {
            // No `Deregister`: that forgets the service for good. The loop
            // takes every service out of discovery at once, keeping their
            // registrations for the first passing check after maintenance.
            self.check_at = None;
        } else {
            self.health = Health::Unknown;
            if self.checks_active() {
                self.schedule_check(now);
            }
        }
        Vec::new()
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.shutting_down = true;
        self.restarts_left = Some(0);
        self.tick_at = None;
        self.give_up_at = None;
        if self.phase == Phase::Stopping {
            return;
        }
        // Pre-stop and post-stop jobs outlive the shutdown event: they still run
        // once on the event they wait for, inside the grace period (as 3.x).
        if let When::Event {
            code: EventCode::Stopping | EventCode::Stopped,
            ..
        } = self.cfg.when
        {
            if self.cfg.exec.is_some() && self.source_is_job() {
                if self.phase == Phase::Waiting && (!self.armed || self.source_gone) {
                    self.halt(now, out);
                }
                return;
            }
        }
        self.halt(now, out);
    }

    /// Begin stopping for good: publish `stopping`, wait for the dependant, then stop the process.
    fn halt(&mut self, now: Instant, out: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Stopping | Phase::Stopped) {
            return;
        }
        self.phase = Phase::Stopping;
        self.armed = false;
        self.tick_at = None;
        self.give_up_at = None;
        self.check_at = None;
        out.push(Action::Publish(EventCode::Stopping));
        if !self.dependants.is_empty() {
            // 3.x waited forever when the job had no stopTimeout; we bound the wait.
            let wait = if self.cfg.stop_timeout.is_zero() {
                self.global_stop_timeout
            } else {
                self.cfg.stop_timeout
            };
            self.stop_wait_until = Some(now + wait);
            return;
        }
        self.finish_stopping(now, out);
    }

    fn finish_stopping(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.has_process {
            out.push(Action::Terminate);
            self.kill_at = Some(now + self.global_stop_timeout);
        } else {
            self.become_stopped(out);
        }
    }

    fn become_stopped(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Stopped;
        self.kill_at = None;
        self.check_at = None;
        self.stop_wait_until = None;
        if self.cfg.service.is_some() {
            out.push(Action::Deregister);
        }
        out.push(Action::Publish(EventCode::Stopped));
    }

    /// Stop for good because a reload removed or replaced this job: as at
    /// shutdown, but for this job alone. `quiet` skips the stopping
    /// dependant (a replaced job is not really going away).
    pub fn retire(&mut self, now: Instant, quiet: bool) -> Vec<Action> {
        let mut out = Vec::new();
        self.shutting_down = true;
        self.restarts_left = Some(0);
        if quiet {
            self.dependants.clear();
        }
        self.halt(now, &mut out);
        out
    }

    /// A reload kept this job but other jobs may have changed around it.
    pub fn update_context(&mut self, dependants: Vec<String>, global_stop_timeout: Duration) {
        if self.phase != Phase::Stopping {
            self.dependants = dependants;
        }
        self.global_stop_timeout = global_stop_timeout;
    }

    /// Second SIGTERM: stop waiting for anything.
    pub fn hurry(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.stop_wait_until = None;
        self.dependants.clear();
        match self.phase {
            Phase::Waiting | Phase::Running => self.halt(now, &mut out),
            Phase::Stopping if !self.has_process => self.become_stopped(&mut out),
            _ => {}
        }
        if self.has_process {
            out.push(Action::Kill);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HealthConfig;

    fn cfg(name: &str, when: When, restarts: Restarts) -> JobConfig {
        JobConfig {
            when,
            restarts,
            ..JobConfig::plain(name, Some(vec!["/bin/true".into()]))
        }
    }

    fn job(c: JobConfig) -> Job {
        Job::new(c, vec![], Duration::from_secs(5))
    }

    fn startup() -> Event {
        Event::global(EventCode::Startup)
    }

    fn on(code: EventCode, src: &str) -> When {
        When::Event {
            sources: vec![src.into()],
            all: false,
            code,
            once: true,
            timeout: None,
        }
    }

    fn each(code: EventCode, src: &str) -> When {
        When::Event {
            sources: vec![src.into()],
            all: false,
            code,
            once: false,
            timeout: None,
        }
    }

    fn starts(a: &[Action]) -> usize {
        a.iter().filter(|a| **a == Action::Start).count()
    }

    fn publishes(a: &[Action]) -> Vec<EventCode> {
        a.iter()
            .filter_map(|a| match a {
                Action::Publish(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn no_when_runs_once_at_startup_then_completes() {
        let t = Instant::now();
        let mut j = job(cfg("a", When::Startup, Restarts::Never));
        assert_eq!(starts(&j.on_event(&startup(), t)), 1);
        j.on_started(10, t);
        assert_eq!(
            starts(&j.on_event(&startup(), t)),
            0,
            "startup is not repeated"
        );
        let a = j.on_exit(0, t);
        assert_eq!(
            publishes(&a),
            vec![
                EventCode::ExitSuccess,
                EventCode::Stopping,
                EventCode::Stopped
            ]
        );
        assert!(j.is_stopped());
    }

    #[test]
    fn exit_failed_on_nonzero_and_signal() {
        let t = Instant::now();
        let mut j = job(cfg("a", When::Startup, Restarts::Never));
        j.on_event(&startup(), t);
        assert_eq!(publishes(&j.on_exit(137, t))[0], EventCode::ExitFailed);
    }

    #[test]
    fn restarts_count_limits_runs() {
        let t = Instant::now();
        let mut j = job(cfg("a", When::Startup, Restarts::Count(2)));
        assert_eq!(starts(&j.on_event(&startup(), t)), 1);
        assert_eq!(starts(&j.on_exit(1, t)), 1);
        assert_eq!(starts(&j.on_exit(1, t)), 1);
        let last = j.on_exit(1, t);
        assert_eq!(starts(&last), 0);
        assert!(j.is_stopped());
        assert_eq!(j.runs, 3);
        assert_eq!(j.restarts(), 2);
    }

    #[test]
    fn restarts_unlimited_never_completes() {
        let t = Instant::now();
        let mut j = job(cfg("a", When::Startup, Restarts::Unlimited));
        j.on_event(&startup(), t);
        for _ in 0..100 {
            assert_eq!(starts(&j.on_exit(0, t)), 1);
        }
        assert!(!j.is_stopped());
    }

    #[test]
    fn once_fires_only_the_first_time() {
        let t = Instant::now();
        let mut j = job(cfg("b", on(EventCode::Healthy, "a"), Restarts::Never));
        let ev = Event::new(EventCode::Healthy, "a");
        assert_eq!(starts(&j.on_event(&startup(), t)), 0);
        assert_eq!(starts(&j.on_event(&ev, t)), 1);
        j.on_exit(0, t);
        assert!(j.is_stopped());
        assert_eq!(starts(&j.on_event(&ev, t)), 0);
    }

    #[test]
    fn each_fires_every_time_and_drops_triggers_while_running() {
        let t = Instant::now();
        let mut j = job(cfg(
            "b",
            each(EventCode::Changed, "watch.db"),
            Restarts::Never,
        ));
        let ev = Event::new(EventCode::Changed, "watch.db");
        assert_eq!(starts(&j.on_event(&ev, t)), 1);
        let dropped = j.on_event(&ev, t);
        assert_eq!(starts(&dropped), 0);
        assert!(dropped
            .iter()
            .any(|a| matches!(a, Action::Log(m) if m.contains("ignored"))));
        j.on_exit(0, t);
        assert_eq!(j.phase, Phase::Waiting);
        assert_eq!(starts(&j.on_event(&ev, t)), 1);
        assert_eq!(j.runs, 2);
    }

    #[test]
    fn other_sources_and_codes_do_not_trigger() {
        let t = Instant::now();
        let mut j = job(cfg("b", on(EventCode::Healthy, "a"), Restarts::Never));
        assert_eq!(
            starts(&j.on_event(&Event::new(EventCode::Healthy, "c"), t)),
            0
        );
        assert_eq!(
            starts(&j.on_event(&Event::new(EventCode::Unhealthy, "a"), t)),
            0
        );
    }

    #[test]
    fn interval_runs_n_plus_one_times() {
        let t = Instant::now();
        let every = Duration::from_secs(1);
        let mut j = job(cfg("p", When::Interval(every), Restarts::Count(2)));
        assert_eq!(starts(&j.on_event(&startup(), t)), 1);
        j.on_exit(0, t);
        assert_eq!(j.next_deadline(), Some(t + every));
        let mut total = 1;
        for i in 1..10 {
            let now = t + every * i;
            let a = j.on_timer(now);
            total += starts(&a);
            if j.is_running() {
                j.on_exit(0, now);
            }
        }
        assert_eq!(total, 3);
        assert!(j.is_stopped());
    }

    #[test]
    fn interval_tick_while_running_is_skipped() {
        let t = Instant::now();
        let every = Duration::from_secs(1);
        let mut j = job(cfg("p", When::Interval(every), Restarts::Unlimited));
        j.on_event(&startup(), t);
        let a = j.on_timer(t + every);
        assert_eq!(starts(&a), 0);
        assert!(a.iter().any(|a| matches!(a, Action::Log(_))));
        assert_eq!(j.next_deadline(), Some(t + every * 2));
    }

    #[test]
    fn timeout_kills() {
        let t = Instant::now();
        let mut c = cfg("a", When::Startup, Restarts::Never);
        c.timeout = Some(Duration::from_millis(500));
        let mut j = job(c);
        j.on_event(&startup(), t);
        j.on_started(5, t);
        assert!(j.on_timer(t + Duration::from_millis(499)).is_empty());
        assert!(j
            .on_timer(t + Duration::from_millis(500))
            .contains(&Action::Kill));
    }

    #[test]
    fn when_timeout_gives_up() {
        let t = Instant::now();
        let when = When::Event {
            sources: vec!["a".into()],
            all: false,
            code: EventCode::Healthy,
            once: true,
            timeout: Some(Duration::from_secs(2)),
        };
        let mut j = job(cfg("b", when, Restarts::Never));
        j.on_subscribed(t);
        j.on_event(&startup(), t);
        let a = j.on_timer(t + Duration::from_secs(2));
        assert_eq!(starts(&a), 0);
        assert_eq!(publishes(&a), vec![EventCode::Stopping, EventCode::Stopped]);
        assert!(j.is_stopped());
        assert_eq!(
            starts(&j.on_event(&Event::new(EventCode::Healthy, "a"), t)),
            0
        );
    }

    #[test]
    fn when_timeout_cancelled_by_trigger() {
        let t = Instant::now();
        let when = When::Event {
            sources: vec!["a".into()],
            all: false,
            code: EventCode::Healthy,
            once: true,
            timeout: Some(Duration::from_secs(2)),
        };
        let mut j = job(cfg("b", when, Restarts::Never));
        j.on_subscribed(t);
        assert_eq!(
            starts(&j.on_event(&Event::new(EventCode::Healthy, "a"), t)),
            1
        );
        j.on_started(3, t);
        assert!(j.on_timer(t + Duration::from_secs(3)).is_empty());
    }

    #[test]
    fn source_stopped_without_firing_completes_the_job() {
        let t = Instant::now();
        let mut j = job(cfg(
            "b",
            on(EventCode::ExitSuccess, "setup"),
            Restarts::Never,
        ));
        j.on_event(&Event::new(EventCode::ExitFailed, "setup"), t);
        let a = j.on_event(&Event::new(EventCode::Stopped, "setup"), t);
        assert_eq!(publishes(&a), vec![EventCode::Stopping, EventCode::Stopped]);
    }

    #[test]
    fn signal_source_fires_every_time() {
        let t = Instant::now();
        let mut j = job(cfg("h", on(EventCode::Signal, "SIGHUP"), Restarts::Never));
        let hup = Event::new(EventCode::Signal, "SIGHUP");
        assert_eq!(starts(&j.on_event(&hup, t)), 1);
        j.on_exit(0, t);
        assert_eq!(starts(&j.on_event(&hup, t)), 1, "signal jobs ignore once");
        j.on_exit(0, t);
        assert!(!j.is_stopped());
        assert_eq!(
            starts(&j.on_event(&Event::new(EventCode::Signal, "SIGUSR2"), t)),
            0
        );
    }

    #[test]
    fn health_events_only_on_change() {
        let t = Instant::now();
        let mut c = cfg("a", When::Startup, Restarts::Never);
        c.health = Some(HealthConfig {
            probe: crate::config::Probe::Exec(vec!["true".into()]),
            interval: Duration::from_secs(1),
            ttl: Some(Duration::from_secs(2)),
            timeout: Duration::from_secs(1),
            start_period: Duration::ZERO,
            threshold: 1,
            raw_logging: false,
        });
        c.service = Some(crate::config::ServiceConfig {
            port: 80,
            advertised: true,
            address: None,
            interfaces: vec![],
            tags: vec![],
            initial_status: None,
            enable_tag_override: false,
            deregister_critical_service_after: None,
        });
        let mut j = job(c);
        j.on_event(&startup(), t);
        j.on_started(9, t);
        assert_eq!(j.on_timer(t + Duration::from_secs(1)), vec![Action::Check]);
        assert_eq!(publishes(&j.on_checked(true, "")), vec![EventCode::Healthy]);
        assert_eq!(publishes(&j.on_checked(true, "")), vec![]);
        assert_eq!(
            publishes(&j.on_checked(false, "boom")),
            vec![EventCode::Unhealthy]
        );
        assert_eq!(publishes(&j.on_checked(false, "boom")), vec![]);
        assert_eq!(publishes(&j.on_checked(true, "")), vec![EventCode::Healthy]);
        assert_eq!(
            j.set_maintenance(true, t),
            vec![],
            "nothing to do for the job itself"
        );
        assert!(
            j.on_checked(true, "").is_empty(),
            "maintenance ignores late results"
        );
        assert_eq!(j.next_deadline(), None, "no checks in maintenance");
        j.set_maintenance(false, t);
        assert_eq!(j.health, Health::Unknown);
        assert!(j.next_deadline().is_some());
    }

    #[test]
    fn shutdown_terminates_then_kills_after_global_timeout() {
        let t = Instant::now();
        let mut j = job(cfg("a", When::Startup, Restarts::Unlimited));
        j.on_event(&startup(), t);
        j.on_started(7, t);
        let a = j.on_event(&Event::global(EventCode::Shutdown), t);
        assert_eq!(publishes(&a), vec![EventCode::Stopping]);
        assert!(a.contains(&Action::Terminate));
        assert!(j
            .on_timer(t + Duration::from_secs(5))
            .contains(&Action::Kill));
        let a = j.on_exit(137, t + Duration::from_secs(5));
        assert_eq!(
            publishes(&a),
            vec![EventCode::ExitFailed, EventCode::Stopped]
        );
        assert_eq!(starts(&a), 0, "no restart during shutdown");
    }

    #[test]
    fn shutdown_waits_for_stopping_dependant() {
        let t = Instant::now();
        let mut c = cfg("app", When::Startup, Restarts::Never);
        c.stop_timeout = Duration::from_secs(3);
        let mut app = Job::new(c, vec!["prestop".into()], Duration::from_secs(5));
        let mut pre = job(cfg(
            "prestop",
            on(EventCode::Stopping, "app"),
            Restarts::Never,
        ));
        app.on_event(&startup(), t);
        app.on_started(7, t);
        let shutdown = Event::global(EventCode::Shutdown);
        let a = app.on_event(&shutdown, t);
        assert_eq!(publishes(&a), vec![EventCode::Stopping]);
        assert!(!a.contains(&Action::Terminate), "waits for prestop first");
        assert!(pre.on_event(&shutdown, t).is_empty(), "prestop stays armed");
        assert_eq!(
            starts(&pre.on_event(&Event::new(EventCode::Stopping, "app"), t)),
            1
        );
        let a = pre.on_exit(0, t);
        assert_eq!(
            publishes(&a),
            vec![
                EventCode::ExitSuccess,
                EventCode::Stopping,
                EventCode::Stopped
            ]
        );
        let a = app.on_event(&Event::new(EventCode::Stopped, "prestop"), t);
        assert!(a.contains(&Action::Terminate));
    }

    #[test]
    fn stopping_dependant_wait_is_bounded() {
        let t = Instant::now();
        let mut c = cfg("app", When::Startup, Restarts::Never);
        c.stop_timeout = Duration::from_secs(3);
        let mut app = Job::new(c, vec!["prestop".into()], Duration::from_secs(5));
        app.on_event(&startup(), t);
        app.on_started(7, t);
        app.on_event(&Event::global(EventCode::Shutdown), t);
        assert!(app.on_timer(t + Duration::from_secs(2)).is_empty());
        assert!(app
            .on_timer(t + Duration::from_secs(3))
            .contains(&Action::Terminate));
    }

    #[test]
    fn poststop_runs_after_stopped_during_shutdown() {
        let t = Instant::now();
        let mut post = job(cfg("post", on(EventCode::Stopped, "app"), Restarts::Never));
        assert!(post
            .on_event(&Event::global(EventCode::Shutdown), t)
            .is_empty());
        assert_eq!(
            starts(&post.on_event(&Event::new(EventCode::Stopped, "app"), t)),
            1
        );
        let a = post.on_exit(0, t);
        assert!(post.is_stopped(), "{a:?}");
    }

    #[test]
    fn idle_job_stops_at_once_on_shutdown() {
        let t = Instant::now();
        let mut j = job(cfg(
            "b",
            each(EventCode::Changed, "watch.x"),
            Restarts::Never,
        ));
        let a = j.on_event(&Event::global(EventCode::Shutdown), t);
        assert_eq!(publishes(&a), vec![EventCode::Stopping, EventCode::Stopped]);
    }

    #[test]
    fn hurry_kills_at_once() {
        let t = Instant::now();
        let mut j = job(cfg("a", When::Startup, Restarts::Never));
        j.on_event(&startup(), t);
        j.on_started(7, t);
        j.on_event(&Event::global(EventCode::Shutdown), t);
        assert!(j.hurry(t).contains(&Action::Kill));
    }

    #[test]
    fn retire_quietly_skips_dependants() {
        let t = Instant::now();
        let mut app = Job::new(
            cfg("app", When::Startup, Restarts::Unlimited),
            vec!["pre".into()],
            Duration::from_secs(5),
        );
        app.on_event(&startup(), t);
        app.on_started(7, t);
        let a = app.retire(t, true);
        assert!(a.contains(&Action::Terminate));
        let a = app.on_exit(143, t);
        assert_eq!(starts(&a), 0);
        assert!(app.is_stopped());
    }

    #[test]
    fn stale_deadlines_are_none_when_idle() {
        let j = job(cfg("a", When::Startup, Restarts::Never));
        assert_eq!(j.next_deadline(), None);
    }
}
