//! The event loop: the one thread that owns and mutates all state (SPEC §3).
//!
//! Other threads (signals, job runners, health checkers, discovery, the two
//! HTTP servers) send [`Msg`]s in. The loop turns them into events, delivers
//! every event to every job in one FIFO order, and carries out the
//! `Action`s the jobs return. Timers are deadlines held here: the loop
//! sleeps in `recv_deadline` until the earliest one, and with none it
//! sleeps until a message arrives (no idle wake-ups).
//!
//! The parts of the loop live beside this file: [`reload`] (a pure plan of
//! what a new config keeps, replaces, adds and removes), [`shutdown`] (the
//! shutdown sequence as a state machine), [`maintenance`], [`jobs`] (the
//! per-job API), [`env`] (what a child process gets), [`report`]
//! (`/v3/jobs` entries, `/v3/health`), [`pages`] (`/status` and `/metrics`,
//! which the servers cache), [`servers`] (the control socket
//! and the telemetry listener), [`services`] (registration and watches in
//! discovery), and [`workers`] (the seam through
//! which the loop gets its threads, so unit tests can drive the loop over
//! plain channels).

mod env;
mod jobs;
mod maintenance;
mod pages;
mod reload;
mod report;
mod servers;
mod services;
mod shutdown;
mod workers;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use nix::libc::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use nix::sys::signal::Signal;

use crate::config::{Config, JobConfig, Probe, WatchConfig, When};
use crate::discovery::{self, Agent, Command as DiscoveryCmd, Poller, WatchState};
use crate::event::{Event, EventCode};
use crate::health::{CheckCmd, CheckerSpec};
use crate::inbox::Inbox;
use crate::job::{Action, Job, Status};
use crate::log::{self, Level};
use crate::logbuf::LogBuffer;
use crate::metrics::{Histogram, Registry, RequestCounter};
use crate::msg::{
    Answer, Command, Env, JobId, Msg, Pages, Published, Query, Refusal, RefusalKind, Reply,
};
use crate::process::{NotifySpec, RunnerCmd, RunnerSpec};
use crate::signals;

use shutdown::{Bounds, Shutdown, Step};
pub use workers::{Threads, Workers};

/// Why a job is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retiring {
    No,
    /// Removed by a reload: stops as in shutdown, events and all.
    Removed,
    /// Replaced by a reload: stops quietly, then its successor starts.
    Replaced {
        by: JobId,
    },
}

/// One job and what the loop keeps beside it.
struct Entry {
    id: JobId,
    job: Job,
    runner: Option<Inbox<RunnerCmd>>,
    checker: Option<Inbox<CheckCmd>>,
    /// The checker has been told to run (`Resume`).
    checking: bool,
    retiring: Retiring,
    /// Waiting for the job it replaces to be gone before its `startup`.
    pending_start: bool,
    /// Its recent output, for `/v3/jobs/NAME/logs`.
    log: Arc<LogBuffer>,
    /// When its process last started, in the loop's order (with duplicate
    /// names, `CONTAINERPILOT_{JOB}_PID` names the latest).
    started_seq: u64,
    /// Processes its last process left behind (it daemonized).
    survivors: Vec<u32>,
}

/// Per-job metrics, by name: duplicates share one series (SPEC §3.7).
#[derive(Default)]
struct JobStats {
    exits_success: u64,
    exits_failed: u64,
    check_durations: Option<Histogram>,
}

/// One Consul watch: its last poll and when the next is due.
struct Watch {
    key: u64,
    cfg: WatchConfig,
    state: WatchState,
    due: Instant,
}

/// A job API request answered once its jobs are done stopping.
struct Pending {
    ids: Vec<JobId>,
    reply: Reply,
    updated: bool,
    deadline: Instant,
}

pub struct App {
    cfg: Config,
    workers: Box<dyn Workers>,
    /// Service IDs are `NAME-HOSTNAME`.
    hostname: String,
    agent: Option<Agent>,
    poller: Option<Poller>,
    watches: Vec<Watch>,
    /// Where reload reads the config again.
    config_path: PathBuf,
    /// The control server and the socket path it listens on.
    control: Option<(PathBuf, workers::Guard)>,
    /// The telemetry server and its address.
    telemetry: Option<(SocketAddr, workers::Guard)>,
    /// Bumped by the control server's threads (see `Control::start`),
    /// rendered by the telemetry server's.
    requests: Arc<Mutex<RequestCounter>>,
    /// What the servers serve without asking (see `pages`).
    pages: Arc<Pages>,
    /// Events published so far, by (code, source), for `containerpilot_events`.
    events: BTreeMap<(String, String), u64>,
    stats: BTreeMap<String, JobStats>,
    /// Lengths of the last `/metrics` page's two parts.
    metrics_len: (usize, usize),
    /// Length of the last `/status` document.
    status_len: usize,
    entries: Vec<Entry>,
    next_id: u64,
    /// Counts process starts, for `Entry::started_seq`.
    starts: u64,
    queue: VecDeque<Event>,
    /// The environment we were started with, as children inherit it.
    base_env: BTreeMap<String, String>,
    /// `/v3/env` changes so far; `None` unsets.
    env_changes: BTreeMap<String, Option<String>>,
    /// The child environment as last built; `None` once something changed.
    env_cache: Option<Arc<Env>>,
    /// What exec health checks start with; republished when it changes.
    check_env: Arc<Published<Env>>,
    check_env_stale: bool,
    maintenance: bool,
    metrics: Registry,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    shutdown: Option<Shutdown>,
    /// A `shutdownOn` job fired with this status: shut down at the end of
    /// this turn and exit with it.
    exit_code: Option<i32>,
    shutdown_asked: bool,
    /// `begin` has run.
    begun: bool,
    pending: Vec<Pending>,
}

impl App {
    pub fn new(cfg: Config, config_path: &Path, workers: Box<dyn Workers>) -> Result<App, String> {
        let (tx, rx) = unbounded();
        let mut app = App {
            metrics: Registry::new(user_metrics(&cfg)),
            cfg,
            workers,
            hostname: discovery::hostname(),
            agent: None,
            poller: None,
            watches: Vec::new(),
            config_path: config_path.to_path_buf(),
            control: None,
            telemetry: None,
            requests: Arc::default(),
            pages: Arc::default(),
            events: BTreeMap::new(),
            stats: BTreeMap::new(),
            metrics_len: (0, 0),
            status_len: 0,
            entries: Vec::new(),
            next_id: 1,
            starts: 0,
            queue: VecDeque::new(),
            base_env: env::base_env(),
            env_changes: BTreeMap::new(),
            env_cache: None,
            check_env: Arc::default(),
            check_env_stale: true,
            maintenance: false,
            tx,
            rx,
            shutdown: None,
            exit_code: None,
            shutdown_asked: false,
            begun: false,
            pending: Vec::new(),
        };
        app.start_discovery()?;
        for jc in app.cfg.jobs.clone() {
            let entry = app.new_entry(jc)?;
            app.entries.push(entry);
        }
        let env = app.child_env();
        app.check_env.set(env);
        app.check_env_stale = false;
        Ok(app)
    }

    fn new_entry(&mut self, jc: JobConfig) -> Result<Entry, String> {
        let id = JobId(self.next_id);
        self.next_id += 1;
        let keep = if jc.raw_logging { 0 } else { jc.log_keep };
        let log = LogBuffer::new(keep);
        let runner = match &jc.exec {
            Some(argv) => {
                let notify = jc.notify.as_ref().map(|n| NotifySpec {
                    dir: self
                        .cfg
                        .control
                        .socket
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                    watchdog: n.watchdog,
                });
                let spec = RunnerSpec {
                    job: id,
                    name: jc.name.clone(),
                    argv: argv.clone(),
                    raw: jc.raw_logging,
                    log: log.clone(),
                    notify,
                };
                Some(self.workers.runner(spec, &self.tx)?)
            }
            None => None,
        };
        let checker = match &jc.health {
            Some(h) if h.probe != Probe::Heartbeat => {
                let spec = CheckerSpec {
                    job: id,
                    name: jc.name.clone(),
                    probe: h.probe.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    raw: h.raw_logging,
                    log: log.clone(),
                    env: self.check_env.clone(),
                };
                Some(self.workers.checker(spec, &self.tx)?)
            }
            _ => None,
        };
        let stats = self.stats.entry(jc.name.clone()).or_default();
        if jc.health.is_some() && stats.check_durations.is_none() {
            stats.check_durations = Some(Histogram::default());
        }
        let dependants = stopping_dependants(&self.cfg, &jc.name);
        Ok(Entry {
            id,
            job: Job::new(jc, dependants, self.cfg.stop_timeout),
            runner,
            checker,
            checking: false,
            retiring: Retiring::No,
            pending_start: false,
            log,
            started_seq: 0,
            survivors: Vec::new(),
        })
    }

    pub fn sender(&self) -> Sender<Msg> {
        self.tx.clone()
    }

    /// Run until shutdown completes. Returns the exit status: 0, or that of
    /// the job whose `shutdownOn` started the shutdown.
    pub fn run(mut self) -> i32 {
        if self.entries.is_empty() {
            log::warn("no jobs configured: nothing to do");
        } else {
            if !self.begun {
                self.begin();
            }
            self.supervise();
        }
        self.kill_survivors(Signal::SIGKILL);
        for e in &self.entries {
            // Followers of `logs?follow=1` see the end.
            e.log.close();
        }
        // The process ends next: remove the socket file (SPEC §3.3) but
        // leave the servers' threads to exit with it. Stopping them first
        // would wait for each accept() to let go, for nothing.
        if let Some((path, server)) = self.control.take() {
            let _ = std::fs::remove_file(path);
            std::mem::forget(server);
        }
        if let Some((_, server)) = self.telemetry.take() {
            std::mem::forget(server);
        }
        crate::notify::remove_files();
        let code = self.exit_code.unwrap_or(0);
        log::info(&format!("containerpilot stopped (exit status {code})"));
        // The process ends next: its memory goes with it. Dropping the
        // state here would free every job's buffers and wake every worker
        // to tell it, on the way to the exit (0.2 ms with one job).
        std::mem::forget(self);
        code
    }

    /// Start what starts at once: jobs, registrations, watches. Start-up
    /// calls this before it starts the servers' threads, so they are not
    /// on the way to the first job; `run` calls it if nobody did.
    pub fn start_jobs(&mut self) {
        if !self.begun && !self.entries.is_empty() {
            self.begin();
        }
    }

    fn supervise(&mut self) {
        self.end_turn();
        while !self.finished() {
            let due = self.next_deadline();
            let msg = match due {
                Some(at) => match self.rx.recv_deadline(at) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match self.rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                },
            };
            let mut changed = false;
            if let Some(m) = msg {
                changed |= self.take(m);
                // Take what else has arrived before the work done once per
                // turn (republishing the environment, answering requests):
                // 300 jobs starting at once report 300 pids in one burst.
                for _ in 0..255 {
                    let Ok(m) = self.rx.try_recv() else { break };
                    changed |= self.take(m);
                }
            }
            self.finish_turn(changed, due);
        }
    }

    /// Handles one message and delivers the events it caused; whether it
    /// may have changed the state (anything but a query may).
    fn take(&mut self, msg: Msg) -> bool {
        let query = matches!(msg, Msg::Query(..));
        if !query {
            // Before it is applied: a command's answer must not be followed
            // by a page from before it.
            self.stale();
        }
        self.handle(msg);
        self.drain();
        !query
    }

    /// The work done once per turn: timers, then bookkeeping. `changed`:
    /// the turn handled something other than queries; `due`: the deadline
    /// the turn waited for.
    fn finish_turn(&mut self, changed: bool, due: Option<Instant>) {
        let now = Instant::now();
        if changed || due.is_some_and(|at| at <= now) {
            // A query may have cached a page since; what follows may
            // change what it shows.
            self.stale();
        }
        self.fire_timers(now);
        self.drain();
        self.sweep();
        self.end_turn();
    }

    /// Subscribe every job, then publish `startup` (SPEC §3.1).
    fn begin(&mut self) {
        self.begun = true;
        let now = Instant::now();
        for i in 0..self.entries.len() {
            let seeds = self.seeds(&self.entries[i].job.cfg);
            let actions = self.entries[i].job.on_subscribed(now, seeds);
            self.apply(i, actions);
        }
        for i in 0..self.entries.len() {
            self.register(i);
        }
        self.set_watches(now);
        self.publish(Event::global(EventCode::Startup));
        self.drain();
        self.telemetry_up();
    }

    /// The work done once per turn, after every message and timer.
    fn end_turn(&mut self) {
        if let Some(code) = self.exit_code.filter(|_| self.shutdown_asked) {
            self.shutdown_asked = false;
            log::info(&format!(
                "a job's exit ends the container (shutdownOn): shutting down with status {code}"
            ));
            self.begin_shutdown();
        }
        if self.shutdown.is_none()
            && self
                .entries
                .iter()
                .filter(|e| !e.job.is_shutdown_hook())
                .all(|e| e.job.is_stopped())
        {
            log::info("every job has completed: shutting down");
            self.begin_shutdown();
        }
        self.drain();
        let hooks_running = self
            .entries
            .iter()
            .any(|e| e.job.is_shutdown_hook() && e.job.is_running());
        if let Some(s) = self.shutdown.as_mut().filter(|s| s.in_hooks()) {
            if !hooks_running {
                let steps = s.hooks_done(Instant::now());
                self.take_steps(steps);
                self.drain();
            }
        }
        self.answer_pending(Instant::now());
        if self.check_env_stale && self.entries.iter().any(|e| e.checker.is_some()) {
            let env = self.child_env();
            self.check_env.set(env);
            self.check_env_stale = false;
        }
    }

    /// Shutdown ends when no process is left and no job is still stopping.
    fn finished(&mut self) -> bool {
        let Some(s) = &self.shutdown else {
            return false;
        };
        for e in &mut self.entries {
            e.survivors.retain(|pid| alive(*pid));
        }
        let idle = self
            .entries
            .iter()
            .all(|e| !e.job.is_running() && !e.job.is_stopping() && e.survivors.is_empty());
        s.finished(idle)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let jobs = self.entries.iter().filter_map(|e| e.job.next_deadline());
        let shutdown = self.shutdown.as_ref().and_then(|s| s.deadline());
        let watches = self
            .watches
            .iter()
            .filter(|_| self.shutdown.is_none())
            .map(|w| w.due);
        let pending = self.pending.iter().map(|p| p.deadline);
        jobs.chain(shutdown).chain(watches).chain(pending).min()
    }

    fn index(&self, id: JobId) -> Option<usize> {
        self.entries.iter().position(|e| e.id == id)
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Signalled(sig) => self.on_signal(sig),
            Msg::ProcessStarted { job, pid } => {
                let Some(i) = self.index(job) else { return };
                log::debug(&format!(
                    "job[{}] started process {pid}",
                    self.entries[i].job.name()
                ));
                self.starts += 1;
                self.entries[i].started_seq = self.starts;
                self.entries[i].job.on_started(pid, now);
                self.env_changed();
                self.sync_checker(i);
                if self.shutdown.as_ref().is_some_and(|s| s.hurried()) {
                    self.send_signal(i, Signal::SIGKILL);
                }
            }
            Msg::ProcessExited {
                job,
                code,
                spawn_failed,
                survivors,
            } => {
                let Some(i) = self.index(job) else { return };
                let stats = self
                    .stats
                    .entry(self.entries[i].job.name().to_string())
                    .or_default();
                if code == 0 {
                    stats.exits_success += 1;
                } else {
                    stats.exits_failed += 1;
                }
                self.entries[i].survivors.extend(survivors);
                let actions = self.entries[i].job.on_exit(code, spawn_failed, now);
                self.env_changed();
                self.apply(i, actions);
            }
            Msg::Notified {
                job,
                pid,
                ready,
                watchdog,
                trigger,
                status,
            } => {
                let Some(i) = self.index(job) else { return };
                if self.entries[i].job.pid != Some(pid) {
                    return; // from a process that has exited since
                }
                let actions = self.entries[i].job.on_notified(
                    ready,
                    watchdog,
                    trigger,
                    status.as_deref(),
                    now,
                );
                self.apply(i, actions);
            }
            Msg::SurvivorsFound { job, pids } => {
                if let Some(i) = self.index(job) {
                    self.entries[i].survivors.extend(pids);
                }
            }
            Msg::OrphansReaped => {}
            Msg::HealthChecked {
                job,
                passed,
                output,
                duration,
                at,
            } => {
                let Some(i) = self.index(job) else { return };
                if let Some(h) = self
                    .stats
                    .get_mut(self.entries[i].job.name())
                    .and_then(|s| s.check_durations.as_mut())
                {
                    h.observe(duration.as_secs_f64());
                }
                let actions = self.entries[i]
                    .job
                    .on_checked(passed, &output, duration, at, now);
                self.apply(i, actions);
            }
            Msg::WatchPolled { watch, instances } => self.on_watched(watch, instances),
            Msg::Deregistered => {
                if let Some(s) = self.shutdown.as_mut() {
                    let steps = s.deregistered(now);
                    self.take_steps(steps);
                }
            }
            Msg::Command(cmd, reply) => {
                if let Some(answer) = self.command(cmd, &reply) {
                    let _ = reply.send(answer);
                }
            }
            Msg::Query(q, reply) => {
                let answer = self.query(q);
                let _ = reply.send(answer);
            }
        }
    }

    /// `None` when the answer comes later (a job stop in progress).
    fn command(&mut self, cmd: Command, reply: &Reply) -> Option<Result<Answer, Refusal>> {
        if self.shutdown.is_some() && !matches!(cmd, Command::PutEnv(_) | Command::PutMetric(_)) {
            return Some(Err(Refusal::new(
                RefusalKind::ShuttingDown,
                "shutting down",
            )));
        }
        Some(match cmd {
            Command::PutEnv(pairs) => {
                self.put_env(pairs);
                Ok(Answer::Done)
            }
            Command::PutMetric(pairs) => self.put_metrics(pairs),
            Command::Maintenance(on) => Ok(Answer::Updated(self.set_maintenance(on))),
            Command::Reload(cfg) => {
                self.reload(*cfg);
                Ok(Answer::Done)
            }
            Command::Job { name, action } => return self.job_command(&name, action, reply),
        })
    }

    /// All or nothing: every pair is checked before any is applied.
    fn put_metrics(&mut self, pairs: Vec<(String, f64)>) -> Result<Answer, Refusal> {
        for (name, value) in &pairs {
            self.metrics.check(name, *value).map_err(Refusal::invalid)?;
        }
        let now = Instant::now();
        for (name, value) in pairs {
            self.metrics.apply(&name, value, now);
        }
        Ok(Answer::Done)
    }

    fn query(&mut self, q: Query) -> Result<Answer, Refusal> {
        Ok(match q {
            Query::Status => Answer::Status(self.status_page()),
            Query::Metrics => Answer::Metrics(self.metrics_page()),
            Query::Environment => Answer::Environment(self.child_env().to_vec()),
            Query::Health => Answer::Health(self.health_report(Instant::now())),
            Query::Jobs(name) => Answer::Jobs(self.job_reports(name.as_deref())?),
            Query::Logs(name) => Answer::Logs(self.log_buffers(&name)?),
        })
    }

    fn on_signal(&mut self, sig: i32) {
        match sig {
            SIGTERM | SIGINT => {
                if self.shutdown.is_none() {
                    log::info(&format!("received {}: shutting down", signals::name(sig)));
                    self.begin_shutdown();
                } else {
                    log::info(&format!(
                        "received {} again: killing every job now",
                        signals::name(sig)
                    ));
                    let now = Instant::now();
                    if let Some(s) = self.shutdown.as_mut() {
                        let steps = s.hurry(now);
                        self.take_steps(steps);
                    }
                }
            }
            SIGHUP | SIGUSR2 => self.publish(Event::new(EventCode::Signal, signals::name(sig))),
            SIGUSR1 => {
                if let Err(e) = log::reopen() {
                    log::error(&format!("cannot reopen the log file: {e}"));
                }
            }
            _ => {}
        }
    }

    /// Deregister from discovery first, so traffic drains before anything
    /// stops; `shutdown` goes out when that is done (SPEC §3.3).
    fn begin_shutdown(&mut self) {
        if self.shutdown.is_some() {
            return;
        }
        let bounds = Bounds {
            hooks: self.hooks_bound(),
            grace: self.grace(),
        };
        let (s, steps) = Shutdown::begin(Instant::now(), bounds, self.agent.is_some());
        self.shutdown = Some(s);
        // Checks, watches and heartbeats stop before the services are
        // deregistered, so that nothing registers them again.
        for i in 0..self.entries.len() {
            if self.entries[i].checking {
                self.entries[i].checking = false;
                if let Some(c) = &self.entries[i].checker {
                    c.send(CheckCmd::Pause);
                }
            }
        }
        self.take_steps(steps);
    }

    fn take_steps(&mut self, steps: Vec<Step>) {
        let now = Instant::now();
        for step in steps {
            match step {
                Step::DeregisterAll => {
                    let tx = self.tx.clone();
                    self.discover(DiscoveryCmd::DeregisterAll {
                        done: Box::new(move || {
                            let _ = tx.send(Msg::Deregistered);
                        }),
                    });
                }
                // Queued only: the caller delivers it in order.
                Step::PublishShutdown => self.publish(Event::global(EventCode::Shutdown)),
                Step::StopAll => {
                    for i in 0..self.entries.len() {
                        let actions = self.entries[i].job.stop_for_shutdown(now);
                        self.apply(i, actions);
                    }
                    self.kill_survivors(Signal::SIGTERM);
                }
                Step::KillAll => {
                    for i in 0..self.entries.len() {
                        let actions = self.entries[i].job.hurry(now);
                        self.apply(i, actions);
                    }
                    self.kill_survivors(Signal::SIGKILL);
                }
                Step::Warn(msg) => log::warn(msg),
            }
        }
    }

    /// Processes that daemonizing jobs left behind go with the jobs.
    fn kill_survivors(&self, sig: Signal) {
        for e in self.entries.iter().filter(|e| !e.survivors.is_empty()) {
            if let Some(r) = &e.runner {
                r.send(RunnerCmd::Signal(sig));
            }
        }
    }

    /// How long pre-stop hooks on `shutdown` may run: the longest of their
    /// timeouts, else the global `stopTimeout`.
    fn hooks_bound(&self) -> Duration {
        self.entries
            .iter()
            .filter(|e| e.job.is_shutdown_hook())
            .map(|e| e.job.cfg.timeout.unwrap_or(self.cfg.stop_timeout))
            .max()
            .unwrap_or_default()
    }

    /// From stopping everything to SIGKILL for everything: the longest wait
    /// for a `stopping` dependant, then the global grace period.
    fn grace(&self) -> Duration {
        let waits = self
            .cfg
            .jobs
            .iter()
            .map(|j| j.stop_timeout)
            .max()
            .unwrap_or_default();
        waits.max(self.cfg.stop_timeout) + self.cfg.stop_timeout
    }

    fn fire_timers(&mut self, now: Instant) {
        if let Some(s) = self.shutdown.as_mut() {
            let steps = s.on_timer(now);
            self.take_steps(steps);
        } else {
            self.poll_watches(now);
        }
        for i in 0..self.entries.len() {
            if self.entries[i]
                .job
                .next_deadline()
                .is_some_and(|t| t <= now)
            {
                let actions = self.entries[i].job.on_timer(now);
                self.apply(i, actions);
            }
        }
    }

    fn publish(&mut self, ev: Event) {
        if log::enabled(Level::Debug) {
            log::debug(&format!("event: {ev}"));
        }
        *self
            .events
            .entry((ev.code.name().to_string(), ev.source.clone()))
            .or_default() += 1;
        self.queue.push_back(ev);
    }

    /// Deliver queued events to every job, in order, until none are left.
    fn drain(&mut self) {
        while let Some(ev) = self.queue.pop_front() {
            let now = Instant::now();
            for i in 0..self.entries.len() {
                if self.entries[i].pending_start
                    || matches!(self.entries[i].retiring, Retiring::Replaced { .. })
                {
                    continue;
                }
                let actions = self.entries[i].job.on_event(&ev, now);
                self.apply(i, actions);
            }
            if ev.code == EventCode::Stopped {
                self.source_gone(&ev.source, now);
            }
        }
    }

    /// A job published `stopped`: if every job of that name is done for
    /// good (not stopped through the API, which `start` can undo, nor
    /// restarting), the jobs waiting for it will never be triggered by it.
    fn source_gone(&mut self, name: &str, now: Instant) {
        let mut named = self
            .entries
            .iter()
            .filter(|e| e.retiring == Retiring::No && e.job.name() == name)
            .peekable();
        if named.peek().is_none() || !named.all(|e| e.job.is_stopped() && !e.job.held) {
            return;
        }
        for i in 0..self.entries.len() {
            let actions = self.entries[i].job.on_source_gone(name, now);
            self.apply(i, actions);
        }
    }

    /// For a job waiting for `all` its sources to be healthy (or unhealthy):
    /// the sources already in that state when it subscribes.
    fn seeds(&self, jc: &JobConfig) -> BTreeSet<String> {
        let When::Event {
            all: true,
            sources,
            code,
            ..
        } = &jc.when
        else {
            return BTreeSet::new();
        };
        let want = match code {
            EventCode::Healthy => Status::Healthy,
            EventCode::Unhealthy => Status::Unhealthy,
            _ => return BTreeSet::new(),
        };
        sources
            .iter()
            .filter(|s| {
                self.entries.iter().any(|e| {
                    e.retiring == Retiring::No
                        && e.job.name() == s.as_str()
                        && e.job.health.status == want
                })
            })
            .cloned()
            .collect()
    }

    /// Drop retired jobs that are gone, and start the jobs that replace them.
    fn sweep(&mut self) {
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            let gone = e.retiring != Retiring::No && e.job.is_stopped() && !e.job.is_running();
            if !gone {
                i += 1;
                continue;
            }
            let e = self.entries.remove(i);
            e.log.close();
            self.env_changed();
            if let Retiring::Replaced { by } = e.retiring {
                if let Some(j) = self.index(by) {
                    self.start_new(j);
                }
            }
        }
        if !self.queue.is_empty() {
            self.drain();
        }
    }

    /// A job added by a reload starts as it would at start-up.
    fn start_new(&mut self, i: usize) {
        let now = Instant::now();
        self.entries[i].pending_start = false;
        self.register(i);
        let seeds = self.seeds(&self.entries[i].job.cfg);
        let mut actions = self.entries[i].job.on_subscribed(now, seeds);
        actions.extend(
            self.entries[i]
                .job
                .on_event(&Event::global(EventCode::Startup), now),
        );
        if self.maintenance {
            actions.extend(self.entries[i].job.set_maintenance(true, now));
        }
        self.apply(i, actions);
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        let quiet = matches!(self.entries[i].retiring, Retiring::Replaced { .. });
        for action in actions {
            match action {
                Action::Start => self.start_process(i),
                Action::Terminate => self.send_signal(i, Signal::SIGTERM),
                Action::Kill => self.send_signal(i, Signal::SIGKILL),
                Action::Abort => self.send_signal(i, Signal::SIGABRT),
                Action::Publish(code) => {
                    if !quiet {
                        let ev = Event::new(code, self.entries[i].job.name());
                        self.publish(ev);
                    }
                }
                Action::Heartbeat => self.heartbeat(i),
                // A replaced job's successor has the same service ID.
                Action::Pass | Action::Fail(_) | Action::Deregister if quiet => {}
                Action::Pass => self.discover(DiscoveryCmd::Pass {
                    id: self.service_id(i),
                }),
                Action::Fail(output) => self.discover(DiscoveryCmd::Fail {
                    id: self.service_id(i),
                    output,
                }),
                Action::Deregister => {
                    // Duplicates share one service: it goes with the last copy.
                    let name = self.entries[i].job.name();
                    let shared = self.entries.iter().enumerate().any(|(j, e)| {
                        j != i
                            && e.retiring == Retiring::No
                            && e.job.name() == name
                            && !e.job.is_stopped()
                    });
                    if !shared {
                        self.discover(DiscoveryCmd::Deregister {
                            id: self.service_id(i),
                        });
                    }
                }
                Action::Log(msg) => {
                    log::log(Level::Info, &msg, &[("job", self.entries[i].job.name())])
                }
                Action::ShutDown(code) => {
                    // The first that fires decides; shutdown at the end of the turn.
                    if self.shutdown.is_none() && self.exit_code.is_none() {
                        self.exit_code = Some(code);
                        self.shutdown_asked = true;
                    }
                }
            }
        }
        self.sync_checker(i);
    }

    /// The heartbeat of a job without a check to run: a pass.
    fn heartbeat(&mut self, i: usize) {
        let now = Instant::now();
        let actions = self.entries[i].job.on_checked(
            true,
            "",
            Duration::ZERO,
            std::time::SystemTime::now(),
            now,
        );
        self.apply(i, actions);
    }

    /// The checker runs exactly while the job says its checks are active.
    fn sync_checker(&mut self, i: usize) {
        let e = &mut self.entries[i];
        let Some(checker) = &e.checker else {
            return;
        };
        let want = e.job.checks_active() && self.shutdown.is_none();
        if want != e.checking {
            e.checking = want;
            checker.send(if want {
                CheckCmd::Resume
            } else {
                CheckCmd::Pause
            });
        }
    }

    fn send_signal(&self, i: usize, sig: Signal) {
        if let Some(r) = &self.entries[i].runner {
            r.send(RunnerCmd::Signal(sig));
        }
    }

    fn start_process(&mut self, i: usize) {
        let env = self.child_env();
        if let Some(r) = &self.entries[i].runner {
            r.send(RunnerCmd::Start(env));
        }
    }
}

/// Whether `pid` still exists (a zombie counts as gone: it is not running).
fn alive(pid: u32) -> bool {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    kill(Pid::from_raw(pid as i32), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

fn user_metrics(cfg: &Config) -> &[crate::config::MetricConfig] {
    cfg.telemetry.as_ref().map_or(&[], |t| &t.metrics)
}

/// Names of the jobs that start on `name`'s `stopping` event.
fn stopping_dependants(cfg: &Config, name: &str) -> Vec<String> {
    cfg.jobs
        .iter()
        .filter(|d| matches!(&d.when, When::Event { sources, code: EventCode::Stopping, .. } if sources.iter().any(|s| s == name)))
        .map(|d| d.name.clone())
        .collect()
}

#[cfg(test)]
mod tests;
