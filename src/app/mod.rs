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
//! shutdown sequence as a state machine), [`maintenance`], [`env`] (what a
//! child process gets), [`report`] (`/status` and `/metrics`), and
//! [`workers`] (the seam through which the loop gets its threads, so unit
//! tests can drive the loop over plain channels).

mod env;
mod maintenance;
mod reload;
mod report;
mod shutdown;
mod workers;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use nix::sys::signal::Signal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

use crate::config::{Config, JobConfig, WatchConfig, When};
use crate::discovery::{self, Agent, Command as DiscoveryCmd, Poller, Registration, WatchState};
use crate::event::{Event, EventCode};
use crate::health::CheckRun;
use crate::job::{next_tick, Action, Job, Phase};
use crate::log::{self, Level};
use crate::metrics::{Histogram, Registry, RequestCounter};
use crate::msg::{Answer, Command, JobId, Msg, Query, Refusal, RefusalKind};
use crate::process::{Launch, RunnerCmd};
use crate::signals;

use shutdown::{Shutdown, Step};
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
    runner: Option<Sender<RunnerCmd>>,
    checker: Option<Sender<CheckRun>>,
    checking: bool,
    retiring: Retiring,
    /// Waiting for the job it replaces to be gone before its `startup`.
    pending_start: bool,
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
    /// Bumped by the control server's threads (see `Control::start`).
    requests: Arc<Mutex<RequestCounter>>,
    /// Events published so far, by (code, source), for `containerpilot_events`.
    events: BTreeMap<(String, String), u64>,
    /// Length of the last `/metrics` page.
    metrics_len: usize,
    entries: Vec<Entry>,
    next_id: u64,
    queue: VecDeque<Event>,
    /// The environment we were started with, as children inherit it.
    base_env: BTreeMap<String, String>,
    /// `/v3/env` changes so far; `None` unsets.
    env_changes: BTreeMap<String, Option<String>>,
    maintenance: bool,
    metrics: Registry,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    shutdown: Option<Shutdown>,
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
            events: BTreeMap::new(),
            metrics_len: 0,
            entries: Vec::new(),
            next_id: 1,
            queue: VecDeque::new(),
            base_env: env::base_env(),
            env_changes: BTreeMap::new(),
            maintenance: false,
            tx,
            rx,
            shutdown: None,
        };
        app.start_discovery()?;
        for jc in app.cfg.jobs.clone() {
            let entry = app.new_entry(jc)?;
            app.entries.push(entry);
        }
        Ok(app)
    }

    fn new_entry(&mut self, jc: JobConfig) -> Result<Entry, String> {
        let id = JobId(self.next_id);
        self.next_id += 1;
        let runner = match jc.exec {
            Some(_) => Some(self.workers.runner(id, &jc.name, &self.tx)?),
            None => None,
        };
        let checker = match jc.health.as_ref().map(|h| &h.probe) {
            Some(crate::config::Probe::Exec(_)) => {
                Some(self.workers.checker(id, &jc.name, &self.tx)?)
            }
            _ => None,
        };
        let dependants = stopping_dependants(&self.cfg, &jc.name);
        let check_durations = jc.health.as_ref().map(|_| Histogram::default());
        Ok(Entry {
            exits_success: 0,
            exits_failed: 0,
            check_durations,
            id,
            job: Job::new(jc, dependants, self.cfg.stop_timeout),
            runner,
            checker,
            checking: false,
            retiring: Retiring::No,
            pending_start: false,
        })
    }

    pub fn sender(&self) -> Sender<Msg> {
        self.tx.clone()
    }

    /// The Consul agent worker and the watch poller, when `consul` is set.
    fn start_discovery(&mut self) -> Result<(), String> {
        let Some(consul) = &self.cfg.consul else {
            return Ok(());
        };
        let (agent, poller) = self.workers.discovery(consul, &self.tx)?;
        self.agent = Some(agent);
        self.poller = Some(poller);
        Ok(())
    }

    /// Reload pointed discovery elsewhere (or turned it on or off): leave
    /// the old agent cleanly and start over with the new one.
    fn restart_discovery(&mut self) {
        if let Some(old) = self.agent.take() {
            old.send(DiscoveryCmd::DeregisterAll {
                done: Box::new(|| {}),
            });
            // Dropping detaches: the worker finishes deregistering on its own.
        }
        self.poller = None;
        if let Err(e) = self.start_discovery() {
            log::error(&format!("cannot start discovery with the new config: {e}"));
        }
    }

    /// (Re)build the watch list; a watch whose definition is unchanged keeps
    /// its last poll, so a reload does not fire `changed` for nothing.
    fn set_watches(&mut self, now: Instant) {
        let mut old = std::mem::take(&mut self.watches);
        for cfg in self.cfg.watches.clone() {
            let state = match old.iter().position(|w| w.cfg == cfg) {
                Some(p) => old.remove(p).state,
                None => WatchState::default(),
            };
            self.next_id += 1;
            self.watches.push(Watch {
                key: self.next_id,
                cfg,
                state,
                due: now,
            });
        }
    }

    fn register(&self, i: usize) {
        let e = &self.entries[i];
        if let (Some(agent), Some(mut reg)) = (
            &self.agent,
            Registration::for_job(&e.job.cfg, &self.hostname),
        ) {
            if self.maintenance {
                // Added by a reload during maintenance: nothing may be
                // registered now; it comes in at its first passing check
                // after maintenance, as every other service does.
                reg.initial_status = None;
            }
            agent.send(DiscoveryCmd::Register(reg));
        }
    }

    fn service_id(&self, i: usize) -> String {
        discovery::service_id(self.entries[i].job.name(), &self.hostname)
    }

    /// Listen on the control socket; failing to is fatal at start-up.
    pub fn start_control(&mut self) -> Result<(), String> {
        let path = self.cfg.control.socket.clone();
        let guard = self.open_control(&path)?;
        self.control = Some((path, guard));
        Ok(())
    }

    fn open_control(&mut self, path: &Path) -> Result<workers::Guard, String> {
        self.workers
            .control(path, &self.config_path, &self.tx, &self.requests)
    }

    fn telemetry_addr(&self) -> Option<SocketAddr> {
        let t = self.cfg.telemetry.as_ref()?;
        Some(SocketAddr::new(t.address, t.port))
    }

    /// Listen for telemetry if configured; failing to is fatal at start-up.
    pub fn start_telemetry(&mut self) -> Result<(), String> {
        if let Some(addr) = self.telemetry_addr() {
            let guard = self.workers.telemetry(addr, &self.tx)?;
            self.telemetry = Some((addr, guard));
        }
        Ok(())
    }

    /// The telemetry service is healthy whenever its listener is up: say so
    /// at once rather than at its first heartbeat.
    fn telemetry_up(&mut self) {
        if self.telemetry.is_none() {
            return;
        }
        let found = self.entries.iter().position(|e| {
            e.retiring == Retiring::No && e.job.name() == crate::config::TELEMETRY_SERVICE
        });
        if let Some(i) = found {
            let actions = self.entries[i].job.on_checked(true, "");
            self.apply(i, actions);
        }
    }

    /// Reload changed the telemetry block: stop the old listener first (the
    /// new one may want the same port), then start the new one.
    fn move_telemetry(&mut self) {
        if self.telemetry.as_ref().map(|t| t.0) == self.telemetry_addr() {
            return;
        }
        // Dropping the guard stops the old server.
        self.telemetry = None;
        match self.start_telemetry() {
            Ok(()) => self.telemetry_up(),
            Err(e) => log::error(&e),
        }
    }

    /// Reload moved the socket: listen on the new path before leaving the
    /// old one, so a failure keeps the control plane where it was.
    fn move_control(&mut self) {
        let path = self.cfg.control.socket.clone();
        if self.control.as_ref().is_some_and(|c| c.0 == path) {
            return;
        }
        match self.open_control(&path) {
            Ok(guard) => {
                log::info(&format!("control socket moved to {}", path.display()));
                // Dropping the old one stops it and removes its socket file.
                self.control = Some((path, guard));
            }
            Err(e) => log::error(&format!("{e}; the control socket stays where it was")),
        }
    }

    /// Run until shutdown completes. Returns the exit code.
    pub fn run(mut self) -> i32 {
        if self.entries.is_empty() {
            log::warn("no jobs configured: nothing to do");
        } else {
            self.supervise();
        }
        // Dropping the control server removes its socket file (SPEC §3.3).
        self.control = None;
        self.telemetry = None;
        log::info("containerpilot stopped");
        0
    }

    fn supervise(&mut self) {
        self.begin();
        while !self.finished() {
            let msg = match self.next_deadline() {
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
            if let Some(m) = msg {
                self.handle(m);
            }
            self.fire_timers(Instant::now());
            self.drain();
            self.sweep();
        }
    }

    /// Subscribe every job, then publish `startup` (SPEC §3.1).
    fn begin(&mut self) {
        let now = Instant::now();
        for e in &mut self.entries {
            e.job.on_subscribed(now);
        }
        for i in 0..self.entries.len() {
            self.register(i);
        }
        self.set_watches(now);
        self.publish(Event::global(EventCode::Startup));
        self.drain();
        self.telemetry_up();
    }

    /// Normal running ends when every job is done; shutdown ends when no
    /// process is left and no job is still stopping.
    fn finished(&mut self) -> bool {
        let idle = self
            .entries
            .iter()
            .all(|e| !e.job.is_running() && e.job.phase != Phase::Stopping);
        match &self.shutdown {
            None => {
                if self.entries.iter().all(|e| e.job.is_stopped()) {
                    log::info("every job has completed: shutting down");
                    self.begin_shutdown();
                    self.drain();
                    return self.finished();
                }
                false
            }
            Some(s) => s.finished(idle),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let jobs = self.entries.iter().filter_map(|e| e.job.next_deadline());
        let shutdown = self.shutdown.as_ref().and_then(|s| s.deadline());
        let watches = self
            .watches
            .iter()
            .filter(|_| self.shutdown.is_none())
            .map(|w| w.due);
        jobs.chain(shutdown).chain(watches).min()
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
                self.entries[i].job.on_started(pid, now);
                if self.shutdown.as_ref().is_some_and(|s| s.hurried()) {
                    self.send_signal(i, Signal::SIGKILL);
                }
            }
            Msg::ProcessExited { job, code } => {
                let Some(i) = self.index(job) else { return };
                if code == 0 {
                    self.entries[i].exits_success += 1;
                } else {
                    self.entries[i].exits_failed += 1;
                }
                let actions = self.entries[i].job.on_exit(code, now);
                self.apply(i, actions);
            }
            Msg::HealthChecked {
                job,
                passed,
                output,
                duration,
            } => {
                let Some(i) = self.index(job) else { return };
                self.entries[i].checking = false;
                if let Some(h) = self.entries[i].check_durations.as_mut() {
                    h.observe(duration.as_secs_f64());
                }
                let actions = self.entries[i].job.on_checked(passed, &output);
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
                let answer = self.command(cmd);
                let _ = reply.send(answer);
            }
            Msg::Query(q, reply) => {
                let answer = self.query(q);
                let _ = reply.send(answer);
            }
        }
    }

    fn command(&mut self, cmd: Command) -> Result<Answer, Refusal> {
        let changes_jobs = matches!(cmd, Command::Reload(_) | Command::Maintenance(_));
        if changes_jobs && self.shutdown.is_some() {
            return Err(Refusal::new(
                RefusalKind::ShuttingDown,
                "containerpilot is shutting down",
            ));
        }
        match cmd {
            Command::PutEnv(pairs) => {
                self.put_env(pairs);
                Ok(Answer::Done)
            }
            Command::PutMetric(pairs) => {
                for (name, value) in &pairs {
                    self.metrics.check(name, *value).map_err(Refusal::invalid)?;
                }
                let now = Instant::now();
                for (name, value) in pairs {
                    self.metrics.apply(&name, value, now);
                }
                Ok(Answer::Done)
            }
            Command::Maintenance(on) => Ok(Answer::Updated(self.set_maintenance(on))),
            Command::Reload(cfg) => {
                self.reload(*cfg);
                Ok(Answer::Done)
            }
        }
    }

    fn query(&mut self, q: Query) -> Result<Answer, Refusal> {
        Ok(match q {
            Query::Status => Answer::Status(self.status()),
            Query::Metrics => Answer::Metrics(self.metrics_text()),
            Query::Environment => Answer::Environment(self.child_env()),
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
        let (s, steps) = Shutdown::begin(Instant::now(), self.grace(), self.agent.is_some());
        self.shutdown = Some(s);
        self.take_steps(steps);
    }

    fn take_steps(&mut self, steps: Vec<Step>) {
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
                Step::PublishShutdown => {
                    self.publish(Event::global(EventCode::Shutdown));
                    self.drain();
                }
                Step::KillAll => {
                    let now = Instant::now();
                    for i in 0..self.entries.len() {
                        let actions = self.entries[i].job.hurry(now);
                        self.apply(i, actions);
                    }
                }
                Step::Warn(msg) => log::warn(msg),
            }
        }
    }

    /// From `shutdown` to SIGKILL for everything: the longest wait for a
    /// `stopping` dependant, then the global grace period.
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
        }
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
        self.entries[i].job.on_subscribed(now);
        let mut actions = self.entries[i]
            .job
            .on_event(&Event::global(EventCode::Startup), now);
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
                Action::Publish(code) => {
                    if !quiet {
                        let ev = Event::new(code, self.entries[i].job.name());
                        self.publish(ev);
                    }
                }
                Action::Check => self.run_check(i),
                // A replaced job's successor has the same service ID.
                Action::Pass | Action::Fail(_) | Action::Deregister if quiet => {}
                Action::Pass => self.discover(DiscoveryCmd::Pass {
                    id: self.service_id(i),
                }),
                Action::Fail(output) => self.discover(DiscoveryCmd::Fail {
                    id: self.service_id(i),
                    output,
                }),
                Action::Deregister => self.discover(DiscoveryCmd::Deregister {
                    id: self.service_id(i),
                }),
                Action::Log(msg) => {
                    log::log(Level::Info, &msg, &[("job", self.entries[i].job.name())])
                }
            }
        }
    }

    fn discover(&self, cmd: DiscoveryCmd) {
        if let Some(agent) = &self.agent {
            agent.send(cmd);
        }
    }

    fn poll_watches(&mut self, now: Instant) {
        for w in &mut self.watches {
            if w.due > now {
                continue;
            }
            if let Some(p) = &self.poller {
                p.poll(w.key, &w.cfg);
            }
            w.due = next_tick(w.due, w.cfg.interval, now);
        }
    }

    fn on_watched(
        &mut self,
        key: u64,
        instances: Option<std::collections::BTreeSet<discovery::Instance>>,
    ) {
        let Some(w) = self.watches.iter_mut().find(|w| w.key == key) else {
            return;
        };
        let source = format!("watch.{}", w.cfg.name);
        for code in w.state.update(instances) {
            self.publish(Event::new(code, &source));
        }
    }

    fn send_signal(&self, i: usize, sig: Signal) {
        if let Some(r) = &self.entries[i].runner {
            let _ = r.send(RunnerCmd::Signal(sig));
        }
    }

    fn start_process(&mut self, i: usize) {
        let job = &self.entries[i].job;
        let Some(argv) = job.cfg.exec.clone() else {
            return;
        };
        let launch = Launch {
            argv,
            env: self.child_env(),
            raw: job.cfg.raw_logging,
            field: "job",
            name: job.name().to_string(),
        };
        if let Some(r) = &self.entries[i].runner {
            let _ = r.send(RunnerCmd::Start(launch));
        }
    }

    fn run_check(&mut self, i: usize) {
        let Some(h) = self.entries[i].job.cfg.health.clone() else {
            return;
        };
        let crate::config::Probe::Exec(argv) = h.probe else {
            // A health block without a command always passes (heartbeat only).
            let actions = self.entries[i].job.on_checked(true, "");
            self.apply(i, actions);
            return;
        };
        if self.entries[i].checking {
            log::debug(&format!(
                "check.{}: previous check still running, skipped",
                self.entries[i].job.name()
            ));
            return;
        }
        let launch = Launch {
            argv,
            env: self.child_env(),
            raw: h.raw_logging,
            field: "check",
            name: format!("check.{}", self.entries[i].job.name()),
        };
        if let Some(c) = &self.entries[i].checker {
            if c.send(CheckRun {
                launch,
                timeout: h.timeout,
            })
            .is_ok()
            {
                self.entries[i].checking = true;
            }
        }
    }
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
