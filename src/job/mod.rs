//! One job's state machine (SPEC §3.2, §3.3, §3.7, §4.1): when it starts,
//! restarts (at once or after a backoff), gives up, stops, completes, and
//! what the job API does to it. Pure: every method takes the current time
//! and returns the [`Action`]s for the event loop to carry out, so each rule
//! is unit-tested without a process. Its health (checks, thresholds, the
//! notify watchdog) is in [`health`].

pub mod health;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::config::{JobConfig, Probe, Restarts, When};
use crate::event::{Event, EventCode, GLOBAL};

pub use health::{Health, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for its start condition (or for the next interval tick).
    Waiting,
    /// Its process has been asked to start or is running.
    Running,
    /// Waiting out `restartDelay` (or the spawn-failure backoff) before a restart.
    Backoff,
    /// Has published `stopping`; waiting for its dependant, then for its process to exit.
    Stopping,
    /// Has published `stopped`: it will not run again unless the API starts it.
    Stopped,
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
    /// Start the job's process (the loop builds the environment).
    Start,
    /// SIGTERM the process group.
    Terminate,
    /// SIGKILL the process group.
    Kill,
    /// SIGABRT the process group (a missed watchdog, as systemd does).
    Abort,
    /// Publish an event whose source is this job.
    Publish(EventCode),
    /// The heartbeat of a job without a check is due: it passes now.
    Heartbeat,
    /// Discovery: the check passed (register if needed, heartbeat).
    Pass,
    /// Discovery: the check failed with this output.
    Fail(String),
    /// Discovery: remove the service.
    Deregister,
    /// Say something in the log.
    Log(String),
    /// `shutdownOn` fired: shut down and exit with this status.
    ShutDown(i32),
}

/// The first spawn failure backs off this long, doubling up to the cap.
const SPAWN_BACKOFF_MIN: Duration = Duration::from_millis(100);
const SPAWN_BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Job {
    pub cfg: JobConfig,
    pub phase: Phase,
    pub health: Health,
    pub pid: Option<u32>,
    /// A process was asked for and has not exited (its pid may not be known yet).
    has_process: bool,
    started_at: Option<Instant>,
    /// Every start of its process, whatever started it.
    pub runs: u64,
    /// Starts the restart policy made after an exit.
    pub restarts: u64,
    pub last_exit: Option<i32>,
    /// `None`: unlimited.
    restarts_left: Option<u32>,
    /// Consecutive restarts so far, for `restartDelay`.
    consecutive: u32,
    /// Consecutive failures to start the process at all.
    spawn_failures: u32,
    /// The `when` trigger is still accepted (3.x "startsRemain != 0").
    armed: bool,
    /// `when.all`: the sources seen since the last firing.
    seen: BTreeSet<String>,
    /// Sources that have stopped for good: they will never publish again.
    gone: BTreeSet<String>,
    /// Jobs that start on our `stopping` and have not yet published `stopped`.
    dependants: Vec<String>,
    global_stop_timeout: Duration,
    maintenance: bool,
    /// `shutdown` has been published: no more restarts or triggers but
    /// those of pre- and post-stop jobs.
    shutting_down: bool,
    /// Stopped through the API: triggers are ignored until it is started.
    pub held: bool,
    /// An API restart is under way: start again once stopped.
    restart_after_stop: bool,
    // Deadlines the loop waits for (s6-style: a timeout is an event).
    tick_at: Option<Instant>,
    give_up_at: Option<Instant>,
    kill_at: Option<Instant>,
    stop_wait_until: Option<Instant>,
    /// Heartbeat-only health (no check to run): when the next pass is due.
    check_at: Option<Instant>,
    restart_at: Option<Instant>,
}

impl Job {
    /// `dependants`: names of the jobs whose `when` waits for this job's `stopping`.
    pub fn new(cfg: JobConfig, dependants: Vec<String>, global_stop_timeout: Duration) -> Job {
        let restarts_left = budget(&cfg);
        Job {
            cfg,
            phase: Phase::Waiting,
            health: Health::new(),
            pid: None,
            has_process: false,
            started_at: None,
            runs: 0,
            restarts: 0,
            last_exit: None,
            restarts_left,
            consecutive: 0,
            spawn_failures: 0,
            armed: true,
            seen: BTreeSet::new(),
            gone: BTreeSet::new(),
            dependants,
            global_stop_timeout,
            maintenance: false,
            shutting_down: false,
            held: false,
            restart_after_stop: false,
            tick_at: None,
            give_up_at: None,
            kill_at: None,
            stop_wait_until: None,
            check_at: None,
            restart_at: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// For `/status`: `idle`, `running`, `backoff`, `stopped` (through the
    /// API) or `completed`.
    pub fn state(&self) -> &'static str {
        if self.has_process {
            return "running";
        }
        match self.phase {
            Phase::Backoff => "backoff",
            Phase::Stopping | Phase::Stopped if self.held => "stopped",
            Phase::Stopping | Phase::Stopped => "completed",
            Phase::Waiting | Phase::Running => "idle",
        }
    }

    /// The sources this job waits for that are jobs or watches, as written.
    pub fn depends_on(&self) -> Vec<&str> {
        match &self.cfg.when {
            When::Event { sources, code, .. } if *code != EventCode::Signal => sources
                .iter()
                .filter(|s| *s != GLOBAL)
                .map(String::as_str)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Finished: it will not run again (unless the API starts it).
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    pub fn is_stopping(&self) -> bool {
        self.phase == Phase::Stopping
    }

    /// A process exists or has been asked for.
    pub fn is_running(&self) -> bool {
        self.has_process
    }

    /// A pre-stop hook on `shutdown` (`when: {once: "shutdown"}`).
    pub fn is_shutdown_hook(&self) -> bool {
        matches!(&self.cfg.when, When::Event { code: EventCode::Shutdown, sources, .. }
            if sources.iter().all(|s| s == GLOBAL))
    }

    /// An API stop or restart is still under way (its reply waits).
    pub fn api_busy(&self) -> bool {
        self.restart_after_stop || (self.held && self.phase == Phase::Stopping)
    }

    /// In `health.startPeriod`: `/v3/health` counts it as healthy.
    pub fn in_start_period(&self, now: Instant) -> bool {
        self.health.in_start_period(&self.cfg, now)
    }

    /// Whether its health check should be running now (the checker thread
    /// follows this; a heartbeat-only job is timed here instead).
    pub fn checks_active(&self) -> bool {
        self.cfg.health.is_some()
            && !self.maintenance
            && !self.held
            && !matches!(self.phase, Phase::Stopping | Phase::Stopped)
            && (self.cfg.exec.is_none() || self.pid.is_some())
    }

    fn heartbeat_only(&self) -> bool {
        matches!(
            self.cfg.health.as_ref().map(|h| &h.probe),
            Some(Probe::Heartbeat)
        )
    }

    /// The earliest deadline this job is waiting for.
    pub fn next_deadline(&self) -> Option<Instant> {
        let watchdog = self.health.watchdog_at.filter(|_| !self.maintenance);
        [
            self.tick_at,
            self.give_up_at,
            self.kill_at,
            self.stop_wait_until,
            self.check_at,
            self.restart_at,
            watchdog,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The loop has started watching: arm `when.timeout`. `seeds`: the
    /// listed sources whose current state already is the awaited one
    /// (`when.all` on `healthy`/`unhealthy`); when they are every source,
    /// the job fires now: the events it waits for will not come again.
    pub fn on_subscribed(&mut self, now: Instant, seeds: BTreeSet<String>) -> Vec<Action> {
        let mut out = Vec::new();
        let When::Event {
            timeout,
            all,
            sources,
            once,
            ..
        } = &self.cfg.when
        else {
            return out;
        };
        if let Some(t) = timeout {
            self.give_up_at = Some(now + *t);
        }
        if *all {
            self.seen = seeds;
            if sources.iter().all(|s| self.seen.contains(s)) {
                self.seen.clear();
                if *once {
                    self.armed = false;
                }
                self.give_up_at = None;
                self.start(now, &mut out);
            }
        }
        out
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
        if ev.is_global(EventCode::Shutdown) {
            self.on_shutdown();
        }
        if ev.is_global(EventCode::Startup) {
            self.on_startup(now, &mut out);
        }
        if self.triggered_by(ev) {
            self.on_trigger(ev, now, &mut out);
        }
        out
    }

    fn on_startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.cfg.exec.is_none() && self.cfg.health.is_some() {
            self.health.start_period_from(now);
            if self.heartbeat_only() {
                self.schedule_heartbeat(now);
            }
        }
        match self.cfg.when {
            When::Interval(every) => {
                self.tick_at = Some(now + every);
                self.start(now, out);
            }
            When::Never => {
                out.push(Action::Log(
                    "its trigger names no job or watch: it will never run".into(),
                ));
                self.halt(now, out);
            }
            _ => {}
        }
    }

    /// `shutdown` is out: nothing restarts or ticks any more. The loop
    /// stops every job later (`stop_for_shutdown`), once the jobs that run
    /// on `shutdown` are done.
    fn on_shutdown(&mut self) {
        self.shutting_down = true;
        self.restarts_left = Some(0);
        self.tick_at = None;
        self.give_up_at = None;
        if self.phase == Phase::Backoff {
            self.restart_at = None;
            self.phase = Phase::Waiting;
        }
    }

    fn triggered_by(&self, ev: &Event) -> bool {
        match &self.cfg.when {
            When::Startup => ev.is_global(EventCode::Startup),
            When::Interval(_) | When::Never => false,
            When::Event { sources, code, .. } => ev.code == *code && sources.contains(&ev.source),
        }
    }

    fn on_trigger(&mut self, ev: &Event, now: Instant, out: &mut Vec<Action>) {
        let signal = ev.code == EventCode::Signal;
        if self.held {
            return;
        }
        if self.shutting_down
            && !matches!(
                ev.code,
                EventCode::Shutdown | EventCode::Stopping | EventCode::Stopped
            )
        {
            return;
        }
        if !self.armed && !signal {
            return;
        }
        if let When::Event {
            all: true, sources, ..
        } = &self.cfg.when
        {
            self.seen.insert(ev.source.clone());
            if !sources.iter().all(|s| self.seen.contains(s)) {
                return;
            }
            // Cleared when it fires, even if the run is dropped below.
            self.seen.clear();
        }
        if self.phase != Phase::Waiting {
            if matches!(self.phase, Phase::Running | Phase::Backoff) {
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
        self.pid = None;
        self.started_at = Some(now);
        self.restart_at = None;
        self.health.restart(now);
        self.kill_at = self.cfg.timeout.map(|t| now + t);
        out.push(Action::Start);
    }

    /// The loop learned the pid of the process it started.
    pub fn on_started(&mut self, pid: u32, now: Instant) {
        self.pid = Some(pid);
        self.spawn_failures = 0;
        if self.heartbeat_only() && self.checks_active() {
            self.schedule_heartbeat(now);
        }
    }

    /// The job's process exited with `code` (128+signal when killed);
    /// `spawn_failed`: it could not be started at all.
    pub fn on_exit(&mut self, code: i32, spawn_failed: bool, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let ran_for = self
            .started_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.pid = None;
        self.has_process = false;
        self.last_exit = Some(code);
        self.kill_at = None;
        self.check_at = None;
        self.health.watchdog_at = None;
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
                    self.become_stopped(now, &mut out);
                }
            }
            Phase::Running => self.after_exit(code, spawn_failed, ran_for, now, &mut out),
            Phase::Waiting | Phase::Backoff | Phase::Stopped => {}
        }
        out
    }

    /// The process exited on its own (not stopped by us): restart it, wait
    /// for the next trigger, or stop for good; and `shutdownOn`.
    fn after_exit(
        &mut self,
        code: i32,
        spawn_failed: bool,
        ran_for: Duration,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if self.shutting_down {
            self.halt(now, out);
            return;
        }
        let interval = matches!(self.cfg.when, When::Interval(_));
        let restart = self.restarts_left != Some(0);
        if self.cfg.shutdown_on.is_some_and(|on| on.matches(code)) {
            // With unlimited restarts, shutdownOn covering a clean exit
            // ends the container instead of restarting (as Docker's
            // `on-failure`); otherwise only an exit that is not restarted.
            let unlimited_success =
                !interval && self.cfg.restarts == Restarts::Unlimited && code == 0;
            if !restart || unlimited_success {
                out.push(Action::Log(format!(
                    "exited with status {code} and will not be restarted: shutting down (shutdownOn)"
                )));
                out.push(Action::ShutDown(code));
                self.halt(now, out);
                return;
            }
        }
        if interval {
            // Periodic jobs run again on the next tick, which spends a restart.
            if !restart {
                self.halt(now, out);
            }
            return;
        }
        if restart {
            if let Some(n) = self.restarts_left.as_mut() {
                *n -= 1;
            }
            let wait = self.backoff(spawn_failed, ran_for);
            if wait.is_zero() {
                self.restarts += 1;
                self.start(now, out);
            } else {
                self.phase = Phase::Backoff;
                self.restart_at = Some(now + wait);
                out.push(Action::Log(format!("restarting in {wait:?}")));
            }
            return;
        }
        if self.can_fire_again() {
            return;
        }
        self.halt(now, out);
    }

    /// How long to wait before this restart: `restartDelay` doubling per
    /// consecutive restart (reset by a run longer than the cap), and for a
    /// process that could not even start, 100ms doubling to 30s; the
    /// longer wins.
    fn backoff(&mut self, spawn_failed: bool, ran_for: Duration) -> Duration {
        let mut wait = Duration::ZERO;
        let delay = self.cfg.restart_delay;
        let cap = self.cfg.restart_delay_max;
        if !delay.is_zero() {
            if ran_for > cap {
                self.consecutive = 0;
            }
            self.consecutive = self.consecutive.saturating_add(1);
            wait = doubled(delay, self.consecutive, cap);
        }
        if spawn_failed {
            self.spawn_failures = self.spawn_failures.saturating_add(1);
            wait = wait.max(doubled(
                SPAWN_BACKOFF_MIN,
                self.spawn_failures,
                SPAWN_BACKOFF_MAX,
            ));
        }
        wait
    }

    /// Could the `when` trigger still start this job?
    fn can_fire_again(&self) -> bool {
        match &self.cfg.when {
            When::Startup | When::Never => false,
            When::Interval(_) => !self.shutting_down,
            When::Event {
                code: EventCode::Signal,
                ..
            } => !self.shutting_down,
            When::Event { sources, all, .. } => {
                let alive = |s: &String| !self.gone.contains(s);
                self.armed
                    && if *all {
                        sources.iter().all(|s| alive(s) || self.seen.contains(s))
                    } else {
                        sources.iter().any(alive)
                    }
            }
        }
    }

    /// The job `source` has stopped for good (the loop knows: every job of
    /// that name is done): it will never publish again.
    pub fn on_source_gone(&mut self, source: &str, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.cfg.when.sources().iter().any(|s| s == source) {
            return out;
        }
        self.gone.insert(source.to_string());
        if self.phase == Phase::Waiting && !self.held && !self.can_fire_again() {
            out.push(Action::Log(format!(
                "{} can never fire again: giving up",
                self.trigger_text()
            )));
            self.halt(now, &mut out);
        }
        out
    }

    fn trigger_text(&self) -> String {
        match &self.cfg.when {
            When::Event { sources, code, .. } => {
                format!("{}.{}", sources.join("|"), code.name())
            }
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
                out.push(Action::Heartbeat);
            } else {
                self.check_at = None;
            }
        }
        if due(self.restart_at) {
            self.restart_at = None;
            if self.phase == Phase::Backoff {
                self.restarts += 1;
                self.start(now, &mut out);
            }
        }
        if !self.maintenance && due(self.health.watchdog_at) {
            self.watchdog_missed(now, &mut out);
        }
        out
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.held {
            return; // the schedule goes on; the runs resume at `start`
        }
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
            Phase::Backoff => {}
            Phase::Stopping | Phase::Stopped => self.tick_at = None,
        }
    }

    /// A health block without a check heartbeats discovery every interval;
    /// with nothing to heartbeat (no discovery, no process: the telemetry
    /// service without Consul) there is no timer, so no wake-ups.
    fn schedule_heartbeat(&mut self, now: Instant) {
        let matters =
            self.cfg.exec.is_some() || self.cfg.service.as_ref().is_some_and(|s| s.advertised);
        if let (Some(h), true) = (&self.cfg.health, matters) {
            self.check_at = Some(now + h.interval);
        }
    }

    /// A health check finished.
    pub fn on_checked(
        &mut self,
        passed: bool,
        output: &str,
        duration: Duration,
        at: std::time::SystemTime,
        now: Instant,
    ) -> Vec<Action> {
        if !self.checks_active() {
            return Vec::new();
        }
        self.health.record(output, duration, at);
        self.health
            .on_checked(&self.cfg, passed, output.to_string(), now)
    }

    /// What the job's process said on its notify socket.
    pub fn on_notified(
        &mut self,
        ready: bool,
        watchdog_ping: bool,
        trigger: bool,
        status: Option<&str>,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(notify) = &self.cfg.notify else {
            return out;
        };
        if !self.has_process || matches!(self.phase, Phase::Stopping | Phase::Stopped) {
            return out;
        }
        let watchdog = notify.watchdog;
        if let Some(text) = status {
            self.health.set_status_text(text);
        }
        if ready {
            out.extend(self.health.on_ready(watchdog, self.maintenance, now));
        }
        if watchdog_ping {
            self.health.on_watchdog_ping(watchdog, now);
        }
        if trigger && !self.maintenance {
            self.watchdog_missed(now, &mut out);
        }
        out
    }

    /// The watchdog ran out (or the process asked for it): unhealthy, and
    /// SIGABRT to the group, SIGKILL if it ignores that.
    fn watchdog_missed(&mut self, now: Instant, out: &mut Vec<Action>) {
        let watchdog = self
            .cfg
            .notify
            .as_ref()
            .and_then(|n| n.watchdog)
            .unwrap_or_default();
        out.extend(self.health.on_watchdog_missed(watchdog));
        if self.has_process {
            out.push(Action::Log(format!(
                "no WATCHDOG=1 within {watchdog:?}: aborting the process"
            )));
            out.push(Action::Abort);
            self.kill_at = Some(now + self.global_stop_timeout);
        }
    }

    pub fn set_maintenance(&mut self, on: bool, now: Instant) -> Vec<Action> {
        self.maintenance = on;
        if on {
            // No `Deregister`: that forgets the service for good. The loop
            // takes every service out of discovery at once, keeping their
            // registrations for the first passing check after maintenance.
            self.check_at = None;
            self.health.enter_maintenance();
            return Vec::new();
        }
        let watchdog = self.cfg.notify.as_ref().and_then(|n| n.watchdog);
        let out = if self.has_process && self.cfg.notify.is_some() {
            self.health.leave_maintenance(watchdog, now)
        } else {
            self.health.leave_maintenance(None, now)
        };
        if self.cfg.exec.is_none() {
            self.health.start_period_from(now);
        }
        if self.heartbeat_only() && self.checks_active() {
            self.schedule_heartbeat(now);
        }
        out
    }

    /// Shutdown has reached this job (after any pre-stop hooks on
    /// `shutdown` are done): stop it, unless it is a pre- or post-stop job
    /// that still has its event to wait for (it runs inside the grace
    /// period, as 3.x).
    pub fn stop_for_shutdown(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.on_shutdown();
        if matches!(self.phase, Phase::Stopping | Phase::Stopped) {
            return out;
        }
        if let When::Event {
            code: EventCode::Stopping | EventCode::Stopped,
            ..
        } = self.cfg.when
        {
            if self.cfg.exec.is_some() && self.waits_for_a_job() {
                if self.phase == Phase::Waiting && !self.can_fire_again() {
                    self.halt(now, &mut out);
                }
                return out;
            }
        }
        self.halt(now, &mut out);
        out
    }

    fn waits_for_a_job(&self) -> bool {
        match &self.cfg.when {
            When::Event { sources, code, .. } => sources
                .iter()
                .any(|s| *code != EventCode::Signal && s != GLOBAL && !s.starts_with("watch.")),
            _ => false,
        }
    }

    /// Begin stopping for good: publish `stopping`, wait for the dependant,
    /// then stop the process.
    fn halt(&mut self, now: Instant, out: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Stopping | Phase::Stopped) {
            return;
        }
        self.armed = false;
        self.tick_at = None;
        self.give_up_at = None;
        self.begin_stop(now, out);
    }

    /// Publish `stopping`, then wait for the dependant (bounded) or stop the
    /// process now.
    fn begin_stop(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.phase = Phase::Stopping;
        self.check_at = None;
        self.restart_at = None;
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
            self.become_stopped(now, out);
        }
    }

    fn become_stopped(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.phase = Phase::Stopped;
        // Nothing is checked any more: it proves nothing now (as 3.x).
        self.health.restart(now);
        self.kill_at = None;
        self.check_at = None;
        self.stop_wait_until = None;
        self.restart_at = None;
        if self.cfg.service.is_some() && !self.restart_after_stop {
            out.push(Action::Deregister);
        }
        out.push(Action::Publish(EventCode::Stopped));
        if self.restart_after_stop {
            // An API restart: up again at once, counted in neither
            // `restarts` nor the restart budget, the backoff forgotten.
            self.restart_after_stop = false;
            self.phase = Phase::Waiting;
            self.restarts_left = budget(&self.cfg);
            self.consecutive = 0;
            self.spawn_failures = 0;
            self.start(now, out);
        }
    }

    /// Stop for good because a reload removed or replaced this job: as at
    /// shutdown, but for this job alone. `quiet` skips the stopping
    /// dependant (a replaced job is not really going away).
    pub fn retire(&mut self, now: Instant, quiet: bool) -> Vec<Action> {
        let mut out = Vec::new();
        self.shutting_down = true;
        self.restarts_left = Some(0);
        self.restart_after_stop = false;
        if self.phase == Phase::Backoff {
            self.phase = Phase::Waiting;
        }
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

    /// SIGKILL for everything now (a second SIGTERM, or the grace is over).
    pub fn hurry(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.stop_wait_until = None;
        self.dependants.clear();
        self.restart_after_stop = false;
        self.shutting_down = true;
        self.restarts_left = Some(0);
        match self.phase {
            Phase::Waiting | Phase::Running | Phase::Backoff => self.halt(now, &mut out),
            Phase::Stopping if !self.has_process => self.become_stopped(now, &mut out),
            _ => {}
        }
        if self.has_process {
            out.push(Action::Kill);
        }
        out
    }

    // --- The job API (SPEC §4.1) ------------------------------------------

    /// `POST /v3/jobs/NAME/stop`: as at shutdown, and then held: not
    /// restarted, triggers ignored, until `start`. False when it already
    /// was stopped.
    pub fn api_stop(&mut self, now: Instant) -> (bool, Vec<Action>) {
        let mut out = Vec::new();
        if self.held {
            return (false, out);
        }
        self.held = true;
        self.restart_after_stop = false;
        self.give_up_at = None;
        if self.cfg.service.is_some() {
            // Out of discovery first, so traffic drains before it stops.
            out.push(Action::Deregister);
        }
        match self.phase {
            Phase::Waiting | Phase::Running | Phase::Backoff => self.begin_stop(now, &mut out),
            Phase::Stopping | Phase::Stopped => {}
        }
        (true, out)
    }

    /// `POST /v3/jobs/NAME/start`: run the process now, as if triggered.
    /// `None` for a job without `exec`. False when it already runs.
    pub fn api_start(&mut self, now: Instant) -> Option<(bool, Vec<Action>)> {
        let mut out = Vec::new();
        self.cfg.exec.as_ref()?;
        if self.has_process {
            return Some((false, out));
        }
        self.held = false;
        self.restart_after_stop = false;
        if let When::Event { once: true, .. } | When::Startup = self.cfg.when {
            self.armed = false; // a pending `once` is used up
        }
        self.give_up_at = None;
        self.restart_at = None;
        self.restarts_left = budget(&self.cfg);
        self.consecutive = 0;
        self.spawn_failures = 0;
        if let When::Interval(every) = self.cfg.when {
            if self.tick_at.is_none() && !self.shutting_down {
                self.tick_at = Some(now + every);
            }
        }
        self.phase = Phase::Waiting;
        self.start(now, &mut out);
        Some((true, out))
    }

    /// `POST /v3/jobs/NAME/restart`: stop (events and all), then start;
    /// as `start` when no process runs. `None` for a job without `exec`.
    pub fn api_restart(&mut self, now: Instant) -> Option<Vec<Action>> {
        self.cfg.exec.as_ref()?;
        if !self.has_process {
            return self.api_start(now).map(|(_, a)| a);
        }
        let mut out = Vec::new();
        self.held = false;
        if self.phase != Phase::Stopping {
            self.restart_after_stop = true;
            self.begin_stop(now, &mut out);
        }
        Some(out)
    }
}

/// The restart budget the config gives (`None`: unlimited).
fn budget(cfg: &JobConfig) -> Option<u32> {
    match cfg.restarts {
        Restarts::Unlimited => None,
        Restarts::Count(n) => Some(n),
        Restarts::Never => Some(0),
    }
}

/// `base × 2^(k-1)`, capped.
fn doubled(base: Duration, k: u32, cap: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(k.saturating_sub(1).min(31))
        .unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}
