//! The configuration pipeline (SPEC §2): read → render the Go template over the
//! environment → parse JSON5 → validate into the typed `Config` below.
//! Start-up, `-validate`, `-template` and reload all go through `load`, so a
//! config that validates is exactly a config that runs.

pub mod agent;
pub mod duration;
pub mod interfaces;
pub mod template;
pub mod tree;
pub mod validate;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::event::EventCode;
use crate::log::LogConfig;

/// The validated configuration. Runtime code never sees the raw file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub consul: Option<ConsulConfig>,
    pub logging: LogConfig,
    pub jobs: Vec<JobConfig>,
    pub watches: Vec<WatchConfig>,
    pub control: ControlConfig,
    pub telemetry: Option<TelemetryConfig>,
    /// Global grace period between SIGTERM and SIGKILL at shutdown.
    pub stop_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsulConfig {
    /// `host:port`, without scheme.
    pub address: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The address (`http://`, `https://`) or the `scheme` key said which:
    /// then `CONSUL_HTTP_SSL` cannot change it (SPEC §3.7).
    pub scheme_explicit: bool,
    pub token: Option<String>,
    /// The `tls` block as written; the environment's `CONSUL_*` TLS
    /// variables are merged in by `agent::resolve`.
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    pub cafile: Option<String>,
    pub capath: Option<String>,
    pub clientcert: Option<String>,
    pub clientkey: Option<String>,
    pub servername: Option<String>,
    /// `None` when the block does not say (SPEC §6: then a CA decides).
    pub verify: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    pub socket: PathBuf,
}

pub const DEFAULT_SOCKET: &str = "/var/run/containerpilot.socket";

#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    pub name: String,
    /// argv; `None` for a job that only advertises a service run elsewhere.
    pub exec: Option<Vec<String>>,
    pub when: When,
    /// Kill the process group this long after start.
    pub timeout: Option<Duration>,
    /// How long, once `stopping`, to wait for the job triggered by our `stopping`.
    pub stop_timeout: Duration,
    pub restarts: Restarts,
    /// Beyond 3.x: the k-th consecutive restart waits `restart_delay × 2^(k-1)`,
    /// capped at `restart_delay_max`; zero restarts at once (as 3.x).
    pub restart_delay: Duration,
    pub restart_delay_max: Duration,
    /// Beyond 3.x: an exit of this kind that will not be restarted shuts
    /// containerpilot down with the process's exit status.
    pub shutdown_on: Option<ShutdownOn>,
    pub health: Option<HealthConfig>,
    /// Beyond 3.x: readiness through the sd_notify protocol.
    pub notify: Option<NotifyConfig>,
    /// Present when the job has a `port`; `advertised` says whether discovery is on.
    pub service: Option<ServiceConfig>,
    /// `logging.raw`: the process inherits our stdout/stderr.
    pub raw_logging: bool,
    /// `logging.keep`: output lines kept for `/v3/jobs/NAME/logs`.
    pub log_keep: usize,
}

/// Output lines a job keeps by default (`logging.keep`).
pub const DEFAULT_LOG_KEEP: usize = 100;
/// Default cap of the restart backoff (`restartDelayMax`).
pub const DEFAULT_RESTART_DELAY_MAX: Duration = Duration::from_secs(30);

impl JobConfig {
    /// A job as validation makes it from `{name, exec}` and nothing else:
    /// every default filled in (for unit tests that build configs by hand).
    #[cfg(test)]
    pub fn plain(name: &str, exec: Option<Vec<String>>) -> JobConfig {
        JobConfig {
            name: name.into(),
            exec,
            when: When::Startup,
            timeout: None,
            stop_timeout: Duration::ZERO,
            restarts: Restarts::Never,
            restart_delay: Duration::ZERO,
            restart_delay_max: DEFAULT_RESTART_DELAY_MAX,
            shutdown_on: None,
            health: None,
            notify: None,
            service: None,
            raw_logging: false,
            log_keep: DEFAULT_LOG_KEEP,
        }
    }

    /// Registered in discovery (has a port and a `consul` backend is configured).
    #[cfg(test)]
    pub fn is_advertised(&self) -> bool {
        self.service.as_ref().is_some_and(|s| s.advertised)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// No `when`: run once on `startup`.
    Startup,
    /// Run at start-up and then every interval.
    Interval(Duration),
    /// Run when `code` is published by one of `sources` (`source` or
    /// `any`), or once every one of them has published it (`all`).
    Event {
        /// Job names, `watch.NAME`, `global`, or one signal name (the
        /// source of `EventCode::Signal`). Sources that name nothing are
        /// dropped by validation (with a warning).
        sources: Vec<String>,
        /// `all`: wait for every source, not the first.
        all: bool,
        code: EventCode,
        /// `once` (true) or `each` (false). Signal sources always fire on every signal.
        once: bool,
        /// Give up (never run, go to stopping/stopped) if the trigger has not arrived.
        timeout: Option<Duration>,
    },
    /// The trigger names nothing that exists (a warning at validation, as
    /// 3.x ran such configs): the job can never run and completes at start-up.
    Never,
}

impl When {
    /// The sources this trigger listens to (none for start-up and intervals).
    pub fn sources(&self) -> &[String] {
        match self {
            When::Event { sources, .. } => sources,
            _ => &[],
        }
    }
}

/// `shutdownOn` (beyond 3.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOn {
    ExitFailed,
    ExitSuccess,
    /// Either.
    Exit,
}

impl ShutdownOn {
    /// Whether an exit with status `code` is of this kind.
    pub fn matches(self, code: i32) -> bool {
        match self {
            ShutdownOn::ExitFailed => code != 0,
            ShutdownOn::ExitSuccess => code == 0,
            ShutdownOn::Exit => true,
        }
    }
}

/// `notify` (beyond 3.x): `true`, or `{watchdog: DURATION}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `WATCHDOG=1` pings are expected at least this often after `READY=1`.
    pub watchdog: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restarts {
    Never,
    Unlimited,
    Count(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    pub probe: Probe,
    pub interval: Duration,
    pub ttl: Option<Duration>,
    pub timeout: Duration,
    /// Failures while the process is younger than this are not counted.
    pub start_period: Duration,
    /// Consecutive failures before the status becomes `unhealthy` (≥ 1).
    pub threshold: u32,
    pub raw_logging: bool,
}

/// How a health check decides (SPEC §2.3: exactly one of exec, http, tcp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No check: every interval passes (the telemetry service's heartbeat).
    Heartbeat,
    /// Run this command; exit 0 passes.
    Exec(Vec<String>),
    /// GET this URL from inside containerpilot; 200-399 within the timeout passes.
    Http(HttpProbe),
    /// Connect to `host:port`; an accepted connection within the timeout passes.
    Tcp { host: String, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// As written, for messages.
    pub url: String,
    /// A name (resolved by the system resolver at each check) or an address.
    pub host: String,
    pub port: u16,
    /// The request target: path and query, at least `/`.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    pub port: u16,
    /// Discovery is configured, so this service is registered.
    pub advertised: bool,
    /// Resolved from `interfaces` (None only when resolution was not required).
    pub address: Option<IpAddr>,
    pub interfaces: Vec<String>,
    pub tags: Vec<String>,
    pub initial_status: Option<String>,
    pub enable_tag_override: bool,
    pub deregister_critical_service_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    pub name: String,
    pub interval: Duration,
    pub tag: Option<String>,
    pub dc: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    pub port: u16,
    pub interfaces: Vec<String>,
    pub address: IpAddr,
    pub tags: Vec<String>,
    pub metrics: Vec<MetricConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricConfig {
    /// Full name: non-empty namespace, subsystem and name joined by `_`.
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
    pub buckets: Option<Vec<f64>>,
    /// (quantile, allowed error)
    pub objectives: Option<Vec<(f64, f64)>>,
}

/// A problem that does not stop the config from running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a config cannot be used. Each variant's message is meant for the user as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    Read { path: PathBuf, reason: String },
    /// The Go template failed to render (message names the line).
    Template(String),
    /// JSON5 syntax error, already formatted with `line:col`, the line and a caret.
    Syntax(String),
    /// The 2.x/1.x schema.
    OldSchema(String),
    /// A semantic error naming the path (`job[app].health.ttl must be > 0`).
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ConfigError::Read { path, reason } => {
                write!(f, "cannot read config file {}: {}", path.display(), reason)
            }
            ConfigError::Template(m) => write!(f, "cannot render config template: {m}"),
            ConfigError::Syntax(m) => write!(f, "cannot parse config: {m}"),
            ConfigError::OldSchema(m) => f.write_str(m),
            ConfigError::Invalid(m) => write!(f, "invalid config: {m}"),
        }
    }
}

/// A boolean as Go's `strconv.ParseBool` reads it, as 3.x read its
/// boolean strings (config values and environment variables).
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The process environment as the template sees it.
pub fn environment() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Read and render the template (what `-template` prints).
pub fn render(path: &Path, env: &HashMap<String, String>) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        reason: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })?;
    template::render(&text, env).map_err(|e| ConfigError::Template(e.to_string()))
}

/// The whole pipeline: read, render, parse, validate.
pub fn load(
    path: &Path,
    env: &HashMap<String, String>,
) -> Result<(Config, Vec<Warning>), ConfigError> {
    let rendered = render(path, env)?;
    let root = tree::parse(&rendered).map_err(ConfigError::Syntax)?;
    // Validation needs only the tree: the text is not kept through it.
    drop(rendered);
    // Asking the kernel for every address costs more than the rest of
    // start-up; only a job with a port or telemetry has one to resolve.
    let addrs = if needs_addresses(&root) {
        interfaces::system_addrs()
    } else {
        Vec::new()
    };
    validate_tree(&root, env, &addrs)
}

/// Parse rendered JSON5 text and validate it against the given interface addresses.
#[cfg(test)]
pub fn parse_and_validate(
    text: &str,
    env: &HashMap<String, String>,
    addrs: &[interfaces::IfAddr],
) -> Result<(Config, Vec<Warning>), ConfigError> {
    let root = tree::parse(text).map_err(ConfigError::Syntax)?;
    validate_tree(&root, env, addrs)
}

fn validate_tree(
    root: &tree::Node,
    env: &HashMap<String, String>,
    addrs: &[interfaces::IfAddr],
) -> Result<(Config, Vec<Warning>), ConfigError> {
    let (mut cfg, warnings) = validate::validate(root, env, addrs)?;
    add_telemetry_job(&mut cfg);
    Ok((cfg, warnings))
}

/// Whether validation may resolve an interface: a `telemetry` block, or a
/// job with a `port` (only those get an address).
fn needs_addresses(root: &tree::Node) -> bool {
    let tree::Node::Object(top) = root else {
        return false;
    };
    top.iter().any(|(key, value)| {
        match (key.as_str(), value) {
        ("telemetry", _) => true,
        ("jobs", tree::Node::Array(jobs)) => jobs.iter().any(|job| {
            matches!(job, tree::Node::Object(fields) if fields.iter().any(|(k, _)| k == "port"))
        }),
        _ => false,
    }
    })
}

/// The name the telemetry endpoint is advertised under (SPEC §5).
pub const TELEMETRY_SERVICE: &str = "containerpilot";

/// The telemetry endpoint is a service like any other (as in 3.x): a job
/// without a process whose heartbeat passes every 5s with a 15s TTL, so
/// `/status`, discovery and maintenance treat it exactly like a job.
/// Validation has already refused a job of that name when telemetry is on.
fn add_telemetry_job(cfg: &mut Config) {
    let Some(t) = &cfg.telemetry else {
        return;
    };
    let mut tags = t.tags.clone();
    tags.push(crate::version::VERSION.to_string());
    cfg.jobs.push(JobConfig {
        name: TELEMETRY_SERVICE.to_string(),
        exec: None,
        when: When::Startup,
        timeout: None,
        stop_timeout: Duration::ZERO,
        restarts: Restarts::Never,
        restart_delay: Duration::ZERO,
        restart_delay_max: DEFAULT_RESTART_DELAY_MAX,
        shutdown_on: None,
        health: Some(HealthConfig {
            probe: Probe::Heartbeat,
            interval: Duration::from_secs(5),
            ttl: Some(Duration::from_secs(15)),
            timeout: Duration::from_secs(5),
            start_period: Duration::ZERO,
            threshold: 1,
            raw_logging: false,
        }),
        notify: None,
        service: Some(ServiceConfig {
            port: t.port,
            advertised: cfg.consul.is_some(),
            address: Some(t.address),
            interfaces: t.interfaces.clone(),
            tags,
            initial_status: None,
            enable_tag_override: false,
            deregister_critical_service_after: None,
        }),
        raw_logging: false,
        log_keep: 0,
    });
}
