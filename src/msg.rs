//! The event loop's vocabulary: everything that goes into the loop and
//! everything that comes back out of it to a waiting requester.
//!
//! Messages in are either *facts* that a worker thread reports (past tense:
//! `ProcessExited`, `HealthChecked`) or *requests*: a [`Command`] changes
//! state, a [`Query`] only reads it. A request carries a one-shot [`Reply`]
//! channel on which the loop sends an [`Answer`] or a [`Refusal`]. Neither
//! knows HTTP: `api` alone turns them into status codes and bodies, so the
//! loop never picks a status and nothing travels as an untyped JSON value.
//!
//! This module sits at the bottom of the house: workers, servers and the
//! loop all import it, and it imports none of them.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use serde::Serialize;

use crate::config::Config;
use crate::logbuf::LogBuffer;

/// A job's identity inside the loop. Names are not identities: two jobs may
/// share one (SPEC §2.3). A reload that keeps a job keeps its id; a changed
/// job gets a new one, so a late report from its old process is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A process environment, in the order it is given to the process.
pub type Env = Vec<(String, String)>;

/// A value only the loop sets and other threads read when they need it,
/// without asking the loop: the environment a health check starts with,
/// and the pages the servers answer `/status` and `/metrics` with. The
/// loop replaces it whole (or empties it), readers take the current one;
/// nobody waits on anybody for long.
///
/// A page is always the one the loop would render now: the loop empties
/// it before anything that may change it (see `App::stale`), and a
/// requester that finds none, or finds messages waiting for the loop (see
/// `api::cached`), asks the loop instead.
pub struct Published<T>(Mutex<Option<Arc<T>>>);

impl<T> Default for Published<T> {
    fn default() -> Published<T> {
        Published(Mutex::new(None))
    }
}

impl<T> Published<T> {
    pub fn get(&self) -> Option<Arc<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, value: Arc<T>) {
        self.replace(Some(value));
    }

    pub fn clear(&self) {
        self.replace(None);
    }

    fn replace(&self, value: Option<Arc<T>>) {
        let old = std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(|e| e.into_inner()),
            value,
        );
        // The old value is freed here, outside the lock.
        drop(old);
    }
}

/// The pages the loop renders for the servers (see [`Published`]).
#[derive(Default)]
pub struct Pages {
    /// The `/status` document, serialised.
    pub status: Published<Vec<u8>>,
    pub metrics: Published<MetricsPage>,
}

/// The `/metrics` page as the loop renders it. The server adds what it
/// reads itself: the control plane's request counter between the two
/// parts (that is its place in the page), the `process_*` families last.
#[derive(Debug)]
pub struct MetricsPage {
    /// The user's metrics.
    pub head: String,
    /// ContainerPilot's events, watches and jobs.
    pub tail: String,
    /// When a summary's window moves on: the page is stale from then on
    /// although nothing happened.
    pub valid_until: Option<Instant>,
}

impl MetricsPage {
    /// Whether it may still be served at `now`.
    pub fn fresh(&self, now: Instant) -> bool {
        self.valid_until.is_none_or(|t| now < t)
    }
}

/// One healthy instance of a watched service: (address, port).
pub type Instance = (String, u16);

/// Everything that enters the loop, on its one unbounded channel.
pub enum Msg {
    /// SIGTERM, SIGINT, SIGHUP, SIGUSR1 or SIGUSR2 arrived (SIGCHLD never
    /// comes here: the signal thread reaps).
    Signalled(i32),
    /// The job's process runs, with this pid (its process group id too).
    ProcessStarted {
        job: JobId,
        pid: u32,
    },
    /// The job's process is gone and its output logged. `code` is the exit
    /// status, 128+N when killed by signal N, 126/127 when it could not
    /// be started at all (`spawn_failed`). `survivors`: processes it
    /// started that live on (it daemonized).
    ProcessExited {
        job: JobId,
        code: i32,
        spawn_failed: bool,
        survivors: Vec<u32>,
    },
    /// Daemons re-parented to us shortly after the job's process exited.
    SurvivorsFound {
        job: JobId,
        pids: Vec<u32>,
    },
    /// The reaper reaped processes nobody had registered (orphans, the
    /// survivors of daemonizing jobs among them).
    OrphansReaped,
    /// The job's process `pid` said something on its sd_notify socket.
    Notified {
        job: JobId,
        pid: u32,
        ready: bool,
        /// `WATCHDOG=1`.
        watchdog: bool,
        /// `WATCHDOG=trigger`: treat as a missed watchdog (as systemd does).
        trigger: bool,
        status: Option<String>,
    },
    /// A health check finished.
    HealthChecked {
        job: JobId,
        passed: bool,
        output: String,
        duration: Duration,
        /// When it started.
        at: SystemTime,
    },
    /// A watch's health query finished; `None` when it failed (already
    /// logged by the poller).
    WatchPolled {
        watch: u64,
        instances: Option<BTreeSet<Instance>>,
    },
    /// Discovery has deregistered every service (or gave up trying).
    Deregistered,
    Command(Command, Reply),
    Query(Query, Reply),
}

/// Requests that change state. Bodies are parsed and validated by the
/// sender before they get here, so the loop only applies them.
pub enum Command {
    /// `None` unsets the variable.
    PutEnv(Vec<(String, Option<String>)>),
    /// All or nothing: every name is checked before any value is applied.
    PutMetric(Vec<(String, f64)>),
    /// A config already loaded and validated off the loop.
    Reload(Box<Config>),
    Maintenance(bool),
    /// The job API (SPEC §4.1), for every job of that name.
    Job {
        name: String,
        action: JobAction,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    Start,
    /// Answered once the process is gone.
    Stop,
    /// Answered once the process is gone and started again.
    Restart,
    /// Send this signal to the process group.
    Signal(i32),
}

/// Requests that only read state.
pub enum Query {
    /// The `/status` document (SPEC §5).
    Status,
    /// The `/metrics` page but for `process_*`, which the asking thread
    /// reads itself meanwhile.
    Metrics,
    /// The environment a process started now would get (reload renders
    /// the config template with it).
    Environment,
    /// Whether the container is healthy (`/v3/health`).
    Health,
    /// Every job, or the jobs of one name.
    Jobs(Option<String>),
    /// The output buffers of the jobs of this name.
    Logs(String),
}

/// Where the loop answers a request. Bounded(1): the loop never blocks on it.
pub type Reply = Sender<Result<Answer, Refusal>>;

/// What the loop answers.
#[derive(Debug)]
pub enum Answer {
    /// Applied; nothing to say.
    Done,
    /// Applied if it changed anything (idempotent requests).
    Updated(bool),
    /// The `/status` document, serialised.
    Status(Arc<Vec<u8>>),
    Metrics(Arc<MetricsPage>),
    Environment(Vec<(String, String)>),
    Health(HealthReport),
    Jobs(Vec<ServiceReport>),
    Logs(Vec<Arc<LogBuffer>>),
}

/// Why a request changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request itself is wrong (a bad value, an unknown metric).
    Invalid,
    /// A reload found the config file invalid; the running one stays.
    BadConfig,
    /// No such job.
    NotFound,
    /// Not possible in the job's state (no process to signal, a job
    /// without `exec` to start, the telemetry service).
    Conflict,
    /// The loop is shutting down and takes no new work.
    ShuttingDown,
    /// The loop did not answer in time, or is gone.
    Unavailable,
}

impl Refusal {
    pub fn new(kind: RefusalKind, message: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Refusal {
        Refusal::new(RefusalKind::Invalid, message)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The `/status` document (SPEC §5), field names as the seed design has them.
/// The loop writes it as text (`App::status_json`); this value, serialised
/// by serde_json, is what the tests hold that text against.
#[cfg(test)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusReport {
    pub version: &'static str,
    pub maintenance: bool,
    pub services: Vec<ServiceReport>,
    pub watches: Vec<WatchReport>,
}

/// One job as `/status` shows it (and `/v3/jobs`, with its keys sorted).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceReport {
    pub name: String,
    pub address: Option<String>,
    pub port: Option<u16>,
    /// `maintenance`, `unknown`, `healthy`, `unhealthy` or `nonadvertised`.
    pub status: &'static str,
    pub depends_on: Vec<String>,
    pub state: &'static str,
    pub pid: Option<u32>,
    /// Starts the restart policy made after an exit.
    pub restarts: u64,
    /// Every start of the job's process.
    pub runs: u64,
    pub last_exit_code: Option<i32>,
    pub last_check: Option<CheckReport>,
    /// The last `STATUS=` of a `notify` job.
    pub notify_status: Option<String>,
}

/// The most recent health result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckReport {
    pub output: String,
    pub duration_ms: f64,
    /// RFC 3339.
    pub at: String,
}

/// `/v3/health`: healthy, or the names of the jobs that are not.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthReport {
    pub healthy: bool,
    pub unhealthy: Vec<String>,
}

/// One watch as `/status` shows it.
#[cfg(test)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WatchReport {
    pub name: String,
    pub status: &'static str,
    pub instances: usize,
}
