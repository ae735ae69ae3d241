//! The event loop: the one thread that owns and mutates all state (SPEC §3).
//!
//! Other threads (signals, job runners, health checks, the control server)
//! send `Msg`s in. The loop turns them into events, delivers every event to
//! every job in one FIFO order, and carries out the `Action`s the jobs return.
//! Timers are deadlines held here: the loop sleeps in `recv_deadline` until
//! the earliest one, and with none it sleeps until a message arrives (no idle
//! wake-ups). Requests that need an answer carry a one-shot reply channel.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

use crate::config::{Config, JobConfig, WatchConfig, When};
use crate::control::Control;
use crate::discovery::{
    self, Agent, Command as DiscoveryCmd, Poller, Registration, WatchResult, WatchState,
};
use crate::event::{Event, EventCode};
use crate::health::{self, CheckRun};
use crate::job::{next_tick, Action, Job, Phase};
use crate::log::{self, Level};
use crate::metrics::{self, Histogram, JobSample, Registry, RequestCounter};
use crate::process::{self, Launch, RunnerCmd};
use crate::signals;
use crate::telemetry::Telemetry;

/// A job's identity for the threads that report on it. Stable across reloads
/// (a replaced job gets a new id), unlike its position in the job list.
pub type JobId = u64;

/// Everything that enters the loop.
pub enum Msg {
    Signal(i32),
    ProcessStarted {
        job: JobId,
        pid: u32,
    },
    /// Exit status (128+signal when killed; 126/127 when it could not start).
    ProcessExited {
        job: JobId,
        code: i32,
    },
    HealthChecked {
        job: JobId,
        passed: bool,
        output: String,
        duration: Duration,
    },
    /// A control request, already parsed and validated on the sender's thread.
    Control(ControlReq, Sender<Reply>),
    /// A watch's health query finished.
    Watched(WatchResult),
    /// Discovery has deregistered every service (or given up trying).
    Deregistered,
}

pub enum ControlReq {
    /// `None` unsets the variable.
    PutEnv(Vec<(String, Option<String>)>),
    /// All-or-nothing: every name is checked before any value is applied.
    PutMetric(Vec<(String, f64)>),
    /// The environment children would get now (reload renders with it).
    Environment,
    Reload(Box<Config>),
    Maintenance(bool),
    Status,
    /// The Prometheus text for `GET /metrics`, as a JSON string.
    Metrics,
}

/// `Err((status, message))` for a request that changed nothing.
pub type Reply = Result<Value, (u16, String)>;

/// How long shutdown may take beyond the configured timeouts before we stop
/// waiting for processes that survive SIGKILL (uninterruptible sleep).
const SHUTDOWN_SLACK: Duration = Duration::from_secs(5);

/// How long shutdown waits for discovery to deregister before it goes on
/// anyway (the agent worker gives up after 5s itself).
const DEREGISTER_WAIT: Duration = Duration::from_secs(6);

struct Shutdown {
    /// Deregistering from discovery before anything stops (SPEC §3.3):
    /// `shutdown` is published when done or at this deadline.
    deregistering: Option<Instant>,
    /// Past this, every remaining process group gets SIGKILL.
    kill_all_at: Instant,
    hurried: bool,
    /// Processes survived SIGKILL past the slack: exit without them.
    abandoned: bool,
}

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
    /// Service IDs are `NAME-HOSTNAME`.
    hostname: String,
    agent: Option<Agent>,
    poller: Option<Poller>,
    watches: Vec<Watch>,
    /// Where reload reads the config again.
    config_path: PathBuf,
    control: Option<Control>,
    telemetry: Option<Telemetry>,
    /// Bumped by the control server's threads (see `Control::start`).
    requests: Arc<Mutex<RequestCounter>>,
    /// Events published so far, by (code, source), for `containerpilot_events`.
    events: BTreeMap<(String, String), u64>,
    /// Length of the last `/metrics` page.
    metrics_len: usize,
    entries: Vec<Entry>,
    next_id: JobId,
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
    pub fn new(cfg: Config, config_path: &Path) -> Result<App, String> {
        let (tx, rx) = unbounded();
        let mut app = App {
            metrics: Registry::new(user_metrics(&cfg)),
            cfg,
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
            base_env: crate::config::environment().into_iter().collect(),
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
        let id = self.next_id;
        self.next_id += 1;
        let runner = match jc.exec {
            Some(_) => Some(process::start_runner(id, &jc.name, self.tx.clone())?),
            None => None,
        };
        let checker = match jc.health.as_ref().and_then(|h| h.exec.as_ref()) {
            Some(_) => Some(health::start_checker(id, &jc.name, self.tx.clone())?),
            None => None,
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
        let client = discovery::Client::new(consul)?;
        self.agent = Some(Agent::start(client.clone())?);
        let tx = self.tx.clone();
        let report = Box::new(move |r: WatchResult| {
            let _ = tx.send(Msg::Watched(r));
        });
        self.poller = Some(Poller::start(client, report)?);
        Ok(())
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
        self.control = Some(self.open_control()?);
        Ok(())
    }

    fn open_control(&self) -> Result<Control, String> {
        Control::start(
            &self.cfg.control.socket,
            &self.config_path,
            self.tx.clone(),
            self.requests.clone(),
        )
    }

    fn telemetry_addr(&self) -> Option<SocketAddr> {
        let t = self.cfg.telemetry.as_ref()?;
        Some(SocketAddr::new(t.address, t.port))
    }

    /// Listen for telemetry if configured; failing to is fatal at start-up.
    pub fn start_telemetry(&mut self) -> Result<(), String> {
        if let Some(addr) = self.telemetry_addr() {
            self.telemetry = Some(Telemetry::start(addr, self.tx.clone())?);
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
        if self.telemetry.as_ref().map(|t| t.addr) == self.telemetry_addr() {
            return;
        }
        if let Some(old) = self.telemetry.take() {
            old.stop();
        }
        match self.start_telemetry() {
            Ok(()) => self.telemetry_up(),
            Err(e) => log::error(&e),
        }
    }

    /// Reload moved the socket: listen on the new path before leaving the
    /// old one, so a failure keeps the control plane where it was.
    fn move_control(&mut self) {
        let path = &self.cfg.control.socket;
        if self.control.as_ref().is_some_and(|c| c.path == *path) {
            return;
        }
        match self.open_control() {
            Ok(c) => {
                log::info(&format!("control socket moved to {}", c.path.display()));
                // Dropping the old one stops it and removes its socket file.
                self.control = Some(c);
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
        let now = Instant::now();
        for e in &mut self.entries {
            e.job.on_subscribed(now);
        }
        for i in 0..self.entries.len() {
            self.register(i);
        }
        self.set_watches(now);
        // Every job is subscribed before `startup` goes out (SPEC §3.1).
        self.publish(Event::global(EventCode::Startup));
        self.drain();
        self.telemetry_up();
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

    /// Normal running ends when every job is done; shutdown ends when no
    /// process is left and no job is still stopping.
    fn finished(&mut self) -> bool {
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
            Some(s) => {
                s.abandoned
                    || s.deregistering.is_none()
                        && self
                            .entries
                            .iter()
                            .all(|e| !e.job.is_running() && e.job.phase != Phase::Stopping)
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let jobs = self.entries.iter().filter_map(|e| e.job.next_deadline());
        let kill_all = self.shutdown.as_ref().map(|s| {
            if s.hurried {
                s.kill_all_at + SHUTDOWN_SLACK
            } else {
                s.kill_all_at
            }
        });
        let deregistered = self.shutdown.as_ref().and_then(|s| s.deregistering);
        let watches = self
            .watches
            .iter()
            .filter(|_| self.shutdown.is_none())
            .map(|w| w.due);
        jobs.chain(kill_all)
            .chain(deregistered)
            .chain(watches)
            .min()
    }

    fn index(&self, id: JobId) -> Option<usize> {
        self.entries.iter().position(|e| e.id == id)
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Signal(sig) => self.on_signal(sig),
            Msg::ProcessStarted { job, pid } => {
                let Some(i) = self.index(job) else { return };
                log::debug(&format!(
                    "job[{}] started process {pid}",
                    self.entries[i].job.name()
                ));
                self.entries[i].job.on_started(pid, now);
                if self.shutdown.as_ref().is_some_and(|s| s.hurried) {
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
            Msg::Control(req, reply) => {
                let answer = self.control(req);
                let _ = reply.send(answer);
            }
            Msg::Watched(r) => self.on_watched(r),
            Msg::Deregistered => {
                if self
                    .shutdown
                    .as_ref()
                    .is_some_and(|s| s.deregistering.is_some())
                {
                    self.publish_shutdown();
                }
            }
        }
    }

    fn control(&mut self, req: ControlReq) -> Reply {
        let changes_jobs = matches!(req, ControlReq::Reload(_) | ControlReq::Maintenance(_));
        if changes_jobs && self.shutdown.is_some() {
            return Err((503, "containerpilot is shutting down".into()));
        }
        match req {
            ControlReq::PutEnv(pairs) => {
                for (k, v) in pairs {
                    self.env_changes.insert(k, v);
                }
                Ok(Value::Null)
            }
            ControlReq::PutMetric(pairs) => self.put_metrics(pairs),
            ControlReq::Environment => Ok(Value::Object(
                self.child_env()
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            )),
            ControlReq::Maintenance(on) => Ok(json!({ "updated": self.set_maintenance(on) })),
            ControlReq::Reload(cfg) => {
                self.reload(*cfg);
                Ok(Value::Null)
            }
            ControlReq::Status => Ok(self.status()),
            ControlReq::Metrics => Ok(Value::String(self.metrics_text())),
        }
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
                    self.hurry();
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
        let now = Instant::now();
        self.shutdown = Some(Shutdown {
            deregistering: None,
            kill_all_at: now + self.grace(),
            hurried: false,
            abandoned: false,
        });
        if let Some(agent) = &self.agent {
            let tx = self.tx.clone();
            agent.send(DiscoveryCmd::DeregisterAll {
                done: Box::new(move || {
                    let _ = tx.send(Msg::Deregistered);
                }),
            });
            if let Some(s) = self.shutdown.as_mut() {
                s.deregistering = Some(now + DEREGISTER_WAIT);
            }
            return;
        }
        self.publish_shutdown();
    }

    fn publish_shutdown(&mut self) {
        let grace = self.grace();
        if let Some(s) = self.shutdown.as_mut() {
            s.deregistering = None;
            if !s.hurried {
                s.kill_all_at = Instant::now() + grace;
            }
        }
        self.publish(Event::global(EventCode::Shutdown));
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

    fn hurry(&mut self) {
        if self
            .shutdown
            .as_ref()
            .is_some_and(|s| s.deregistering.is_some())
        {
            self.publish_shutdown();
            self.drain();
        }
        let now = Instant::now();
        if let Some(s) = self.shutdown.as_mut() {
            s.hurried = true;
            s.kill_all_at = now;
        }
        for i in 0..self.entries.len() {
            let actions = self.entries[i].job.hurry(now);
            self.apply(i, actions);
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        if self
            .shutdown
            .as_ref()
            .and_then(|s| s.deregistering)
            .is_some_and(|t| t <= now)
        {
            log::warn("discovery did not finish deregistering in time: shutting down anyway");
            self.publish_shutdown();
        }
        if self.shutdown.is_none() {
            self.poll_watches(now);
        }
        if let Some(s) = self.shutdown.as_mut() {
            if s.hurried && now >= s.kill_all_at + SHUTDOWN_SLACK {
                log::error("processes survived SIGKILL: exiting without them");
                s.abandoned = true;
                return;
            }
            if !s.hurried && now >= s.kill_all_at {
                log::warn("shutdown grace period is over: killing every job");
                self.hurry();
            }
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

    fn on_watched(&mut self, r: WatchResult) {
        let Some(w) = self.watches.iter_mut().find(|w| w.key == r.key) else {
            return;
        };
        let source = format!("watch.{}", w.cfg.name);
        for code in w.state.update(r.instances) {
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
        let Some(argv) = h.exec else {
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

    /// Our environment with every `/v3/env` change applied, plus
    /// CONTAINERPILOT_PID, each advertised job's CONTAINERPILOT_{JOB}_IP and
    /// each running job's CONTAINERPILOT_{JOB}_PID.
    fn child_env(&self) -> Vec<(String, String)> {
        let mut env = self.base_env.clone();
        for (k, v) in &self.env_changes {
            match v {
                Some(v) => env.insert(k.clone(), v.clone()),
                None => env.remove(k),
            };
        }
        env.insert("CONTAINERPILOT_PID".into(), std::process::id().to_string());
        for e in &self.entries {
            let key = env_key(e.job.name());
            if let Some(addr) = e
                .job
                .cfg
                .service
                .as_ref()
                .filter(|s| s.advertised)
                .and_then(|s| s.address)
            {
                env.insert(format!("CONTAINERPILOT_{key}_IP"), addr.to_string());
            }
            if let Some(pid) = e.job.pid {
                env.insert(format!("CONTAINERPILOT_{key}_PID"), pid.to_string());
            }
        }
        env.into_iter().collect()
    }

    /// All or nothing: every pair is checked before any is applied.
    fn put_metrics(&mut self, pairs: Vec<(String, f64)>) -> Reply {
        for (name, value) in &pairs {
            self.metrics.check(name, *value).map_err(|e| (400, e))?;
        }
        let now = Instant::now();
        for (name, value) in pairs {
            self.metrics.apply(&name, value, now);
        }
        Ok(Value::Null)
    }

    /// Returns whether anything changed (SPEC §3.6: idempotent).
    fn set_maintenance(&mut self, on: bool) -> bool {
        if self.maintenance == on {
            return false;
        }
        self.maintenance = on;
        log::info(if on {
            "entering maintenance mode"
        } else {
            "leaving maintenance mode"
        });
        let now = Instant::now();
        for i in 0..self.entries.len() {
            let actions = self.entries[i].job.set_maintenance(on, now);
            self.apply(i, actions);
        }
        if on {
            self.discover(DiscoveryCmd::DeregisterAll {
                done: Box::new(|| {}),
            });
        }
        let code = if on {
            EventCode::EnterMaintenance
        } else {
            EventCode::ExitMaintenance
        };
        self.publish(Event::global(code));
        self.drain();
        if !on {
            self.telemetry_up();
        }
        true
    }

    /// Apply a validated new config (SPEC §3.5): unchanged jobs keep running
    /// untouched, removed jobs stop as in shutdown, changed jobs stop and then
    /// start with their new definition, new jobs start as at start-up.
    fn reload(&mut self, new: Config) {
        log::info("reloading configuration");
        let old = std::mem::replace(&mut self.cfg, new);
        self.metrics.reconfigure(user_metrics(&self.cfg));
        self.move_control();
        self.move_telemetry();
        let consul_changed = old.consul != self.cfg.consul;
        if consul_changed {
            self.restart_discovery();
        }
        if old.logging != self.cfg.logging {
            if let Err(e) = log::init(&self.cfg.logging) {
                log::error(&format!("cannot switch logging: {e}"));
            }
        }
        let now = Instant::now();
        let mut order: Vec<Entry> = Vec::new();
        let mut leaving: Vec<Entry> = Vec::new();
        let mut olds: Vec<Entry> = std::mem::take(&mut self.entries);
        for jc in self.cfg.jobs.clone() {
            let same = olds.iter().position(|e| {
                e.retiring == Retiring::No && e.job.name() == jc.name && e.job.cfg == jc
            });
            if let Some(p) = same {
                let mut e = olds.remove(p);
                e.job.update_context(
                    stopping_dependants(&self.cfg, &jc.name),
                    self.cfg.stop_timeout,
                );
                order.push(e);
                continue;
            }
            let mut fresh = match self.new_entry(jc.clone()) {
                Ok(e) => e,
                Err(msg) => {
                    log::error(&msg);
                    continue;
                }
            };
            if let Some(p) = olds
                .iter()
                .position(|e| e.retiring == Retiring::No && e.job.name() == jc.name)
            {
                let mut prev = olds.remove(p);
                log::info(&format!(
                    "job[{}] changed: restarting it with the new definition",
                    jc.name
                ));
                prev.retiring = Retiring::Replaced { by: fresh.id };
                fresh.pending_start = true;
                leaving.push(prev);
            } else {
                log::info(&format!("job[{}] added", jc.name));
                fresh.pending_start = true;
            }
            order.push(fresh);
        }
        for mut e in olds {
            if e.retiring == Retiring::No {
                log::info(&format!("job[{}] removed: stopping it", e.job.name()));
                e.retiring = Retiring::Removed;
            }
            leaving.push(e);
        }
        let first_leaving = order.len();
        order.extend(leaving);
        self.entries = order;
        for i in first_leaving..self.entries.len() {
            let quiet = matches!(self.entries[i].retiring, Retiring::Replaced { .. });
            if !self.entries[i].job.is_stopped() && self.entries[i].job.phase != Phase::Stopping {
                let actions = self.entries[i].job.retire(now, quiet);
                self.apply(i, actions);
            }
        }
        // Added jobs start now; replacements wait for their predecessor (sweep).
        let waiting: Vec<JobId> = self.entries[first_leaving..]
            .iter()
            .filter_map(|e| match e.retiring {
                Retiring::Replaced { by } => Some(by),
                _ => None,
            })
            .collect();
        for i in 0..first_leaving {
            if self.entries[i].pending_start && !waiting.contains(&self.entries[i].id) {
                self.start_new(i);
            }
        }
        if consul_changed {
            for i in 0..first_leaving {
                if !self.entries[i].pending_start {
                    self.register(i);
                }
            }
        }
        self.set_watches(now);
        self.drain();
        self.sweep();
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

    /// The `GET /metrics` page (SPEC §5), but for the `process_*` families.
    fn metrics_text(&mut self) -> String {
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
        // process_* are appended by the telemetry thread (telemetry.rs).
        self.metrics_len = out.len();
        out
    }

    /// The `/status` document (SPEC §5).
    fn status(&self) -> Value {
        let services: Vec<Value> = self
            .entries
            .iter()
            .filter(|e| e.retiring == Retiring::No)
            .map(|e| self.service_status(&e.job))
            .collect();
        json!({
            "version": crate::VERSION,
            "maintenance": self.maintenance,
            "services": services,
            "watches": self.watches.iter().map(|w| json!({
                "name": w.cfg.name,
                "status": w.state.status(),
                "instances": w.state.instances().map_or(0, |s| s.len()),
            })).collect::<Vec<_>>(),
        })
    }

    fn service_status(&self, job: &Job) -> Value {
        let cfg = &job.cfg;
        let status = if self.maintenance {
            "maintenance"
        } else if cfg.health.is_some() {
            job.health.name()
        } else {
            "nonadvertised"
        };
        let depends_on: Vec<&str> = job.depends_on().into_iter().collect();
        let svc = cfg.service.as_ref();
        json!({
            "name": cfg.name,
            "address": svc.and_then(|s| s.address).map(|a| a.to_string()),
            "port": svc.map(|s| s.port),
            "status": status,
            "depends_on": depends_on,
            "state": match job.phase {
                Phase::Waiting => "waiting",
                Phase::Running => "running",
                Phase::Stopping => "stopping",
                Phase::Stopped => "stopped",
            },
            "pid": job.pid,
            "restarts": job.restarts(),
            "last_exit_code": job.last_exit,
        })
    }
}

fn user_metrics(cfg: &Config) -> &[crate::config::MetricConfig] {
    cfg.telemetry.as_ref().map_or(&[], |t| &t.metrics)
}

/// Names of the jobs that start on `name`'s `stopping` event.
fn stopping_dependants(cfg: &Config, name: &str) -> Vec<String> {
    cfg.jobs
        .iter()
        .filter(|d| matches!(&d.when, When::Event { source, code: EventCode::Stopping, .. } if source == name))
        .map(|d| d.name.clone())
        .collect()
}

/// `my-job` → `MY_JOB`.
pub fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys() {
        assert_eq!(env_key("my-job"), "MY_JOB");
        assert_eq!(env_key("app.v2"), "APP_V2");
    }
}
