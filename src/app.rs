//! The event loop: the one thread that owns and mutates all state (SPEC §3).
//!
//! Other threads (signals, job runners, health checks) send `Msg`s in. The
//! loop turns them into events, delivers every event to every job in one FIFO
//! order, and carries out the `Action`s the jobs return. Timers are deadlines
//! held here: the loop sleeps in `recv_deadline` until the earliest one, and
//! with no deadline it sleeps until a message arrives (no idle wake-ups).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use nix::sys::signal::Signal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

use crate::config::{Config, When};
use crate::event::{Event, EventCode};
use crate::health::{self, CheckRun};
use crate::job::{Action, Job, Phase};
use crate::log::{self, Level};
use crate::process::{self, Launch, RunnerCmd};
use crate::signals;

pub type JobId = usize;

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
    },
}

/// How long shutdown may take beyond the configured timeouts before we stop
/// waiting for processes that survive SIGKILL (uninterruptible sleep).
const SHUTDOWN_SLACK: Duration = Duration::from_secs(5);

struct Shutdown {
    /// Past this, every remaining process group gets SIGKILL.
    kill_all_at: Instant,
    hurried: bool,
    /// Processes survived SIGKILL past the slack: exit without them.
    abandoned: bool,
}

pub struct App {
    cfg: Config,
    jobs: Vec<Job>,
    runners: Vec<Option<Sender<RunnerCmd>>>,
    checkers: Vec<Option<Sender<CheckRun>>>,
    checking: Vec<bool>,
    queue: VecDeque<Event>,
    /// The environment we were started with, as children inherit it.
    base_env: BTreeMap<String, String>,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    shutdown: Option<Shutdown>,
}

impl App {
    pub fn new(cfg: Config) -> Result<App, String> {
        let (tx, rx) = unbounded();
        let mut app = App {
            cfg,
            jobs: Vec::new(),
            runners: Vec::new(),
            checkers: Vec::new(),
            checking: Vec::new(),
            queue: VecDeque::new(),
            base_env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            tx,
            rx,
            shutdown: None,
        };
        app.build_jobs()?;
        Ok(app)
    }

    fn build_jobs(&mut self) -> Result<(), String> {
        let stop = self.cfg.stop_timeout;
        for (id, jc) in self.cfg.jobs.iter().enumerate() {
            let dependants = self
                .cfg
                .jobs
                .iter()
                .filter(|d| matches!(&d.when, When::Event { source, code: EventCode::Stopping, .. } if *source == jc.name))
                .map(|d| d.name.clone())
                .collect();
            let runner = match jc.exec {
                Some(_) => Some(process::start_runner(id, &jc.name, self.tx.clone())?),
                None => None,
            };
            let checker = match jc.health.as_ref().and_then(|h| h.exec.as_ref()) {
                Some(_) => Some(health::start_checker(id, &jc.name, self.tx.clone())?),
                None => None,
            };
            self.jobs.push(Job::new(jc.clone(), dependants, stop));
            self.runners.push(runner);
            self.checkers.push(checker);
            self.checking.push(false);
        }
        Ok(())
    }

    pub fn sender(&self) -> Sender<Msg> {
        self.tx.clone()
    }

    /// Run until shutdown completes. Returns the exit code.
    pub fn run(mut self) -> i32 {
        if self.jobs.is_empty() {
            log::warn("no jobs configured: nothing to do");
            return 0;
        }
        let now = Instant::now();
        for job in &mut self.jobs {
            job.on_subscribed(now);
        }
        // Every job is subscribed before `startup` goes out (SPEC §3.1).
        self.publish(Event::global(EventCode::Startup));
        self.drain();
        loop {
            if self.finished() {
                break;
            }
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
        }
        log::info("containerpilot stopped");
        0
    }

    /// Normal running ends when every job is done; shutdown ends when no
    /// process is left and no job is still stopping.
    fn finished(&mut self) -> bool {
        match &self.shutdown {
            None => {
                if self.jobs.iter().all(|j| j.is_stopped()) {
                    log::info("every job has completed: shutting down");
                    self.begin_shutdown();
                    return self.finished();
                }
                false
            }
            Some(s) => {
                s.abandoned
                    || self
                        .jobs
                        .iter()
                        .all(|j| !j.is_running() && j.phase != Phase::Stopping)
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let jobs = self.jobs.iter().filter_map(|j| j.next_deadline());
        let kill_all = self.shutdown.as_ref().map(|s| {
            if s.hurried {
                s.kill_all_at + SHUTDOWN_SLACK
            } else {
                s.kill_all_at
            }
        });
        jobs.chain(kill_all).min()
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Signal(sig) => self.on_signal(sig),
            Msg::ProcessStarted { job, pid } => {
                log::debug(&format!(
                    "job[{}] started process {pid}",
                    self.jobs[job].name()
                ));
                self.jobs[job].on_started(pid, now);
                if self.shutdown.as_ref().is_some_and(|s| s.hurried) {
                    self.send_signal(job, Signal::SIGKILL);
                }
            }
            Msg::ProcessExited { job, code } => {
                let actions = self.jobs[job].on_exit(code, now);
                self.apply(job, actions);
            }
            Msg::HealthChecked {
                job,
                passed,
                output,
            } => {
                self.checking[job] = false;
                let actions = self.jobs[job].on_checked(passed, &output);
                self.apply(job, actions);
            }
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

    fn begin_shutdown(&mut self) {
        let waits = self
            .cfg
            .jobs
            .iter()
            .map(|j| j.stop_timeout)
            .max()
            .unwrap_or_default();
        let wait = waits.max(self.cfg.stop_timeout);
        self.shutdown = Some(Shutdown {
            kill_all_at: Instant::now() + wait + self.cfg.stop_timeout,
            hurried: false,
            abandoned: false,
        });
        self.publish(Event::global(EventCode::Shutdown));
    }

    fn hurry(&mut self) {
        let now = Instant::now();
        if let Some(s) = self.shutdown.as_mut() {
            s.hurried = true;
            s.kill_all_at = now;
        }
        for id in 0..self.jobs.len() {
            let actions = self.jobs[id].hurry(now);
            self.apply(id, actions);
        }
    }

    fn fire_timers(&mut self, now: Instant) {
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
        for id in 0..self.jobs.len() {
            if self.jobs[id].next_deadline().is_some_and(|t| t <= now) {
                let actions = self.jobs[id].on_timer(now);
                self.apply(id, actions);
            }
        }
    }

    fn publish(&mut self, ev: Event) {
        log::debug(&format!("event: {ev}"));
        self.queue.push_back(ev);
    }

    /// Deliver queued events to every job, in order, until none are left.
    fn drain(&mut self) {
        while let Some(ev) = self.queue.pop_front() {
            let now = Instant::now();
            for id in 0..self.jobs.len() {
                let actions = self.jobs[id].on_event(&ev, now);
                self.apply(id, actions);
            }
        }
    }

    fn apply(&mut self, id: JobId, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Start => self.start_process(id),
                Action::Terminate => self.send_signal(id, Signal::SIGTERM),
                Action::Kill => self.send_signal(id, Signal::SIGKILL),
                Action::Publish(code) => {
                    let ev = Event::new(code, self.jobs[id].name());
                    self.publish(ev);
                }
                Action::Check => self.run_check(id),
                // Discovery arrives with the Consul backend; without one these are no-ops.
                Action::Pass | Action::Fail(_) | Action::Deregister => {}
                Action::Log(msg) => log::log(Level::Info, &msg, &[("job", self.jobs[id].name())]),
            }
        }
    }

    fn send_signal(&self, id: JobId, sig: Signal) {
        if let Some(r) = &self.runners[id] {
            let _ = r.send(RunnerCmd::Signal(sig));
        }
    }

    fn start_process(&mut self, id: JobId) {
        let job = &self.jobs[id];
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
        if let Some(r) = &self.runners[id] {
            let _ = r.send(RunnerCmd::Start(launch));
        }
    }

    fn run_check(&mut self, id: JobId) {
        let Some(h) = self.jobs[id].cfg.health.clone() else {
            return;
        };
        let Some(argv) = h.exec else {
            // A health block without a command always passes (heartbeat only).
            let actions = self.jobs[id].on_checked(true, "");
            self.apply(id, actions);
            return;
        };
        if self.checking[id] {
            log::debug(&format!(
                "check.{}: previous check still running, skipped",
                self.jobs[id].name()
            ));
            return;
        }
        let launch = Launch {
            argv,
            env: self.child_env(),
            raw: h.raw_logging,
            field: "check",
            name: format!("check.{}", self.jobs[id].name()),
        };
        if let Some(c) = &self.checkers[id] {
            if c.send(CheckRun {
                launch,
                timeout: h.timeout,
            })
            .is_ok()
            {
                self.checking[id] = true;
            }
        }
    }

    /// Our environment plus CONTAINERPILOT_PID, each advertised job's
    /// CONTAINERPILOT_{JOB}_IP and each running job's CONTAINERPILOT_{JOB}_PID.
    fn child_env(&self) -> Vec<(String, String)> {
        let mut env = self.base_env.clone();
        env.insert("CONTAINERPILOT_PID".into(), std::process::id().to_string());
        for job in &self.jobs {
            let key = env_key(job.name());
            if let Some(addr) = job
                .cfg
                .service
                .as_ref()
                .filter(|s| s.advertised)
                .and_then(|s| s.address)
            {
                env.insert(format!("CONTAINERPILOT_{key}_IP"), addr.to_string());
            }
            if let Some(pid) = job.pid {
                env.insert(format!("CONTAINERPILOT_{key}_PID"), pid.to_string());
            }
        }
        env.into_iter().collect()
    }
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
