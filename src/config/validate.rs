//! Node tree → typed `Config` (SPEC §2.3): every rule and default of the
//! schema, with errors that name the path (`job[app].health.ttl must be > 0`)
//! and warnings for keys this version does not know.
//!
//! One small function per section, each reading its object through [`Obj`],
//! which warns about unknown and repeated keys as it is opened. The first
//! error ends validation; the warnings gathered so far are appended to it as
//! `note:` lines, because a typo warning (`health.tll`) often explains the
//! error (`health.ttl is required`).
//!
//! Compatibility with ContainerPilot 3 (`jobs/config.go`, `watches/config.go`,
//! `telemetry/*_config.go`, `discovery/config.go`): 3.x decoded with
//! mapstructure's weak typing, so numeric strings are accepted where a number
//! is expected (durations, `restarts`, ports), Go's `strconv.ParseBool`
//! strings where a boolean is, and an empty string counts as absent, as a Go
//! zero value did. Unknown keys are warnings here (3.x refused them), so every
//! config that ran under 3.x still runs.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use super::duration;
use super::interfaces::{self, IfAddr};
use super::tree::{self, Node};
use super::{
    Config, ConfigError, ConsulConfig, ControlConfig, HealthConfig, JobConfig, MetricConfig,
    MetricKind, Restarts, ServiceConfig, TelemetryConfig, TlsConfig, Warning, WatchConfig, When,
    DEFAULT_SOCKET, TELEMETRY_SERVICE,
};
use crate::event::{EventCode, GLOBAL, SIGNAL_SOURCES};
use crate::log::{Format, Level, LogConfig, Output};

type Result<T> = std::result::Result<T, ConfigError>;

const TOP_KEYS: &[&str] = &[
    "consul",
    "logging",
    "jobs",
    "watches",
    "control",
    "telemetry",
    "stopTimeout",
];
const CONSUL_KEYS: &[&str] = &["address", "scheme", "token", "tls"];
const TLS_KEYS: &[&str] = &[
    "cafile",
    "capath",
    "clientcert",
    "clientkey",
    "servername",
    "verify",
];
const LOGGING_KEYS: &[&str] = &["level", "format", "output"];
const CONTROL_KEYS: &[&str] = &["socket"];
const JOB_KEYS: &[&str] = &[
    "name",
    "exec",
    "when",
    "timeout",
    "stopTimeout",
    "restarts",
    "health",
    "port",
    "initial_status",
    "tags",
    "interfaces",
    "consul",
    "logging",
];
const WHEN_KEYS: &[&str] = &["interval", "source", "once", "each", "timeout"];
const HEALTH_KEYS: &[&str] = &["exec", "interval", "ttl", "timeout", "logging"];
const JOB_CONSUL_KEYS: &[&str] = &["enableTagOverride", "deregisterCriticalServiceAfter"];
const RAW_LOGGING_KEYS: &[&str] = &["raw"];
const WATCH_KEYS: &[&str] = &["name", "interval", "tag", "dc"];
const TELEMETRY_KEYS: &[&str] = &["port", "interfaces", "tags", "metrics"];
const METRIC_KEYS: &[&str] = &[
    "namespace",
    "subsystem",
    "name",
    "help",
    "type",
    "buckets",
    "objectives",
];

/// Top-level keys that only the 2.x (and Containerbuddy 1.x) schema had.
const OLD_SCHEMA_KEYS: &[&str] = &[
    "services",
    "backends",
    "coprocesses",
    "tasks",
    "preStart",
    "preStop",
    "postStop",
    "onStart",
    "etcd",
];

/// Unknown keys with a better hint than an edit-distance guess: (path suffix, hint).
const HINTS: &[(&str, &str)] = &[
    (
        "when.event",
        "3.x names the event with 'once' or 'each', e.g. once: \"exitSuccess\"",
    ),
    (
        "telemetry.sensors",
        "sensors were removed in 3.x: run the sensor as a job with 'when: {interval}' \
         that calls 'containerpilot -putmetric name=value'",
    ),
];

const DEFAULT_CONSUL_PORT: u16 = 8500;
const DEFAULT_TELEMETRY_PORT: u16 = 9090;
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest `when.interval` and job `timeout` (3.x `taskMinDuration`).
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Metric families the binary always exports (see `metrics.rs`); a user
/// metric of the same name would make the exposition invalid.
const BUILTIN_METRICS: &[&str] = &[
    "containerpilot_control_http_requests",
    "containerpilot_watch_instances",
    "containerpilot_job_restarts_total",
    "containerpilot_job_exits_total",
    "containerpilot_job_healthy",
    "containerpilot_job_health_check_duration_seconds",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
];

/// Validate a parsed config against the environment (for `CONSUL_HTTP_*`)
/// and the machine's interface addresses (for advertised jobs and telemetry).
pub fn validate(
    root: &Node,
    env: &HashMap<String, String>,
    addrs: &[IfAddr],
) -> Result<(Config, Vec<Warning>)> {
    let mut v = Validator {
        env,
        addrs,
        warnings: Vec::new(),
    };
    match v.config(root) {
        Ok(cfg) => Ok((cfg, v.warnings)),
        Err(ConfigError::Invalid(mut msg)) => {
            for w in &v.warnings {
                msg.push_str("\nnote: ");
                msg.push_str(&w.0);
            }
            Err(ConfigError::Invalid(msg))
        }
        Err(e) => Err(e),
    }
}

struct Validator<'a> {
    env: &'a HashMap<String, String>,
    addrs: &'a [IfAddr],
    warnings: Vec<Warning>,
}

/// What the job section needs to know about the rest of the config.
struct Context<'a> {
    discovery: bool,
    jobs: &'a HashSet<String>,
    watches: &'a HashSet<String>,
}

/// How a `when.source` publishes, to catch triggers that can never fire.
#[derive(Clone, Copy)]
enum SourceKind {
    Job,
    Watch,
    Global,
}

impl Validator<'_> {
    fn config(&mut self, root: &Node) -> Result<Config> {
        old_schema(root)?;
        let top = self.obj(String::new(), root, TOP_KEYS)?;
        let consul = self.consul(&top)?;
        let logging = logging(&self.obj_at(&top, "logging", LOGGING_KEYS)?)?;
        let control = control(&self.obj_at(&top, "control", CONTROL_KEYS)?)?;
        let stop_timeout = match top.duration("stopTimeout")? {
            // 3.x read 0 as "not set" too.
            None | Some(Duration::ZERO) => DEFAULT_STOP_TIMEOUT,
            Some(d) => d,
        };
        let watches = self.watches(&top, consul.is_some())?;
        let jobs = self.jobs(&top, consul.is_some(), &watches)?;
        let telemetry = self.telemetry(&top, &jobs)?;
        Ok(Config {
            consul,
            logging,
            jobs,
            watches,
            control,
            telemetry,
            stop_timeout,
        })
    }

    // -- consul -------------------------------------------------------------

    fn consul(&mut self, top: &Obj) -> Result<Option<ConsulConfig>> {
        let mut cfg = match top.get("consul") {
            None => match self.env_var("CONSUL_HTTP_ADDR") {
                Some(addr) => Some(consul_uri("CONSUL_HTTP_ADDR", addr)?),
                None => None,
            },
            // `consul: ""` was how a 3.x config said "no discovery" (3.x
            // required the key); now discovery is simply off.
            Some(Node::Str(s)) if s.trim().is_empty() => None,
            Some(Node::Str(s)) => Some(consul_uri("consul", s)?),
            Some(n @ Node::Object(_)) => Some(self.consul_object(n)?),
            Some(n) => {
                return Err(expected(
                    "consul",
                    "a string (\"host:port\") or an object",
                    n,
                ))
            }
        };
        if let Some(c) = &mut cfg {
            if let Some(token) = self.env_var("CONSUL_HTTP_TOKEN") {
                c.token = Some(token.to_string());
            }
            // The TLS variables and files: resolved where they are used,
            // checked here so that start-up and -validate report them.
            for w in crate::discovery::consul::check(c, self.env).map_err(invalid)? {
                self.warn(w);
            }
        }
        Ok(cfg)
    }

    fn consul_object(&mut self, node: &Node) -> Result<ConsulConfig> {
        let o = self.obj("consul".into(), node, CONSUL_KEYS)?;
        let mut cfg = match (o.str("address")?, self.env_var("CONSUL_HTTP_ADDR")) {
            (Some(a), _) => consul_uri(&o.at("address"), a)?,
            (None, Some(a)) => consul_uri("CONSUL_HTTP_ADDR", a)?,
            (None, None) => consul_uri(&o.at("address"), "127.0.0.1")?,
        };
        if let Some(scheme) = o.str("scheme")? {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(invalid(format!(
                    "{} must be 'http' or 'https', got '{scheme}'",
                    o.at("scheme")
                )));
            }
            let prefixed = o.str("address")?.is_some_and(|a| a.contains("://"));
            if prefixed && scheme != cfg.scheme {
                return Err(invalid(format!(
                    "{} is '{scheme}' but {} says '{}'",
                    o.at("scheme"),
                    o.at("address"),
                    cfg.scheme
                )));
            }
            cfg.scheme = scheme;
            cfg.scheme_explicit = true;
        }
        cfg.token = o.str("token")?.map(str::to_string);
        if let Some(t) = self.obj_opt(&o, "tls", TLS_KEYS)? {
            cfg.tls = Some(TlsConfig {
                cafile: t.str("cafile")?.map(str::to_string),
                capath: t.str("capath")?.map(str::to_string),
                clientcert: t.str("clientcert")?.map(str::to_string),
                clientkey: t.str("clientkey")?.map(str::to_string),
                servername: t.str("servername")?.map(str::to_string),
                verify: t.bool("verify")?,
            });
        }
        Ok(cfg)
    }

    // -- watches ------------------------------------------------------------

    fn watches(&mut self, top: &Obj, discovery: bool) -> Result<Vec<WatchConfig>> {
        let Some(list) = top.array("watches")? else {
            return Ok(Vec::new());
        };
        if !list.is_empty() && !discovery {
            return Err(invalid(
                "watches need a consul backend: add a top-level 'consul' \
                 (e.g. consul: \"localhost:8500\") or set CONSUL_HTTP_ADDR",
            ));
        }
        let mut out: Vec<WatchConfig> = Vec::new();
        let mut seen = HashSet::new();
        for (i, node) in list.iter().enumerate() {
            let w = self.watch(i, node)?;
            if !seen.insert(w.name.clone()) {
                return Err(invalid(format!(
                    "watch[{}] is defined more than once; watch names must be unique",
                    w.name
                )));
            }
            out.push(w);
        }
        Ok(out)
    }

    fn watch(&mut self, i: usize, node: &Node) -> Result<WatchConfig> {
        let index = format!("watches[{i}]");
        if !matches!(node, Node::Object(_)) {
            return Err(expected(&index, "an object", node));
        }
        let name = match explicit_name(&index, node)? {
            Some(n) => n,
            None => return Err(invalid(format!("{index}.name is required"))),
        };
        let o = self.obj(format!("watch[{name}]"), node, WATCH_KEYS)?;
        check_service_name(&o.at("name"), &name, "")?;
        let interval = match o.duration("interval")? {
            None => return Err(invalid(format!("{} is required", o.at("interval")))),
            Some(Duration::ZERO) => {
                return Err(invalid(format!("{} must be > 0", o.at("interval"))))
            }
            Some(d) => d,
        };
        Ok(WatchConfig {
            name,
            interval,
            tag: o.str("tag")?.map(str::to_string),
            dc: o.str("dc")?.map(str::to_string),
        })
    }

    // -- jobs ---------------------------------------------------------------

    fn jobs(
        &mut self,
        top: &Obj,
        discovery: bool,
        watches: &[WatchConfig],
    ) -> Result<Vec<JobConfig>> {
        let Some(list) = top.array("jobs")? else {
            return Ok(Vec::new());
        };
        // Pass 1: every name first, so a `when.source` may name a job further down.
        let mut labelled: Vec<(String, String, bool)> = Vec::new(); // (label, name, explicit)
        let mut first_use: HashMap<String, usize> = HashMap::new(); // name → index in `labelled`
        for (i, node) in list.iter().enumerate() {
            let index = format!("jobs[{i}]");
            if !matches!(node, Node::Object(_)) {
                return Err(expected(&index, "an object", node));
            }
            let explicit = explicit_name(&index, node)?;
            let label = match &explicit {
                Some(n) => format!("job[{n}]"),
                None => index,
            };
            let name = match (&explicit, node.get("exec")) {
                (Some(n), _) => n.clone(),
                // 3.x: `cfg.Name = cmd.Exec`, the first word as written.
                (None, Some(e)) => exec(&format!("{label}.exec"), e)?.swap_remove(0),
                (None, None) => {
                    return Err(invalid(format!("{label} needs a 'name' or an 'exec'")))
                }
            };
            if let Some(&first) = first_use.get(&name) {
                return Err(invalid(match explicit {
                    Some(_) => format!(
                        "{label} is defined more than once (jobs[{first}] and jobs[{i}]); \
                         job names must be unique"
                    ),
                    None => format!(
                        "{label}: its name '{name}' (taken from 'exec') is already used by \
                         jobs[{first}]; job names must be unique, set 'name'"
                    ),
                }));
            }
            first_use.insert(name.clone(), i);
            labelled.push((label, name, explicit.is_some()));
        }
        let names: HashSet<String> = first_use.into_keys().collect();
        let watch_names: HashSet<String> = watches.iter().map(|w| w.name.clone()).collect();
        let ctx = Context {
            discovery,
            jobs: &names,
            watches: &watch_names,
        };
        list.iter()
            .zip(labelled)
            .map(|(node, (label, name, explicit))| self.job(node, label, name, explicit, &ctx))
            .collect()
    }

    fn job(
        &mut self,
        node: &Node,
        label: String,
        name: String,
        explicit_name: bool,
        ctx: &Context,
    ) -> Result<JobConfig> {
        let o = self.obj(label, node, JOB_KEYS)?;
        let exec = o.get("exec").map(|n| exec(&o.at("exec"), n)).transpose()?;
        let port = o.port("port")?;
        let advertised = port.is_some() && ctx.discovery;
        if advertised {
            let from_exec = if explicit_name {
                ""
            } else {
                " (taken from 'exec'; set 'name')"
            };
            check_service_name(&o.at("name"), &name, from_exec)?;
        }
        let (when, each) = self.when(&o, ctx)?;
        let interval = match when {
            When::Interval(d) => Some(d),
            _ => None,
        };
        let timeout = match o.duration("timeout")? {
            Some(d) if d < MIN_INTERVAL => {
                return Err(invalid(format!("{} must be at least 1ms", o.at("timeout"))))
            }
            Some(d) => Some(d),
            None => interval,
        };
        let stop_timeout = o.duration("stopTimeout")?.unwrap_or(Duration::ZERO);
        let restarts = restarts(&o, interval.is_some(), each)?;
        let health = self.health(&o, advertised)?;
        if port.is_some() && health.is_none() {
            return Err(invalid(format!(
                "{} must be set if 'port' is set",
                o.at("health")
            )));
        }
        let service = self.service(&o, port, advertised)?;
        let raw_logging = self.raw_logging(&o)?;
        if exec.is_none() && port.is_none() {
            self.warn(format!(
                "{} has neither 'exec' nor 'port': it does nothing",
                o.path
            ));
        }
        Ok(JobConfig {
            name,
            exec,
            when,
            timeout,
            stop_timeout,
            restarts,
            health,
            service,
            raw_logging,
        })
    }

    /// The trigger, and whether it was given as `each` (for the `restarts` rule).
    fn when(&mut self, job: &Obj, ctx: &Context) -> Result<(When, bool)> {
        let Some(w) = self.obj_opt(job, "when", WHEN_KEYS)? else {
            return Ok((When::Startup, false));
        };
        let interval = w.duration("interval")?;
        let source = w.str("source")?;
        let once = w.str("once")?;
        let each = w.str("each")?;
        let timeout = w.duration("timeout")?;
        if (once.is_some() && each.is_some())
            || (interval.is_some() && (once.is_some() || each.is_some()))
        {
            return Err(invalid(format!(
                "{} can have only one of 'interval', 'once' or 'each'",
                w.path
            )));
        }
        if let Some(every) = interval {
            for key in ["source", "timeout"] {
                if w.get(key).is_some() {
                    return Err(invalid(format!(
                        "{} cannot be combined with 'interval'",
                        w.at(key)
                    )));
                }
            }
            if every < MIN_INTERVAL {
                return Err(invalid(format!(
                    "{} must be at least 1ms",
                    w.at("interval")
                )));
            }
            return Ok((When::Interval(every), false));
        }

        let event = match (once, each) {
            (Some(e), _) => Some((parse_event(&w.at("once"), e)?, true)),
            (_, Some(e)) => Some((parse_event(&w.at("each"), e)?, false)),
            _ => None,
        };
        // 3.x treats a zero timeout as none.
        let timeout = timeout.filter(|t| !t.is_zero());
        let source = match (source, event) {
            (Some(s), _) => s.to_string(),
            (None, Some((code, _))) if code.is_global() => GLOBAL.to_string(),
            (None, Some((code, _))) => {
                return Err(invalid(format!(
                    "{} is required: which job or watch publishes '{}'?",
                    w.at("source"),
                    code.name()
                )))
            }
            (None, None) => {
                return Err(invalid(format!(
                    "{} needs 'interval', or 'source' with 'once' or 'each'",
                    w.path
                )))
            }
        };
        if SIGNAL_SOURCES.contains(&source.as_str()) {
            // The 3.x form: a signal fires on every delivery, whatever once/each say.
            let when = When::Event {
                source,
                code: EventCode::Signal,
                once: false,
                timeout,
            };
            return Ok((when, each.is_some()));
        }
        let Some((code, once)) = event else {
            return Err(invalid(format!(
                "{} needs 'once' or 'each' to name the event from '{source}' \
                 (only the signal sources SIGHUP and SIGUSR2 may omit them)",
                w.path
            )));
        };
        let kind = source_kind(&w.at("source"), &source, ctx)?;
        if !publishes(kind, code) {
            let event_key = if once { "once" } else { "each" };
            self.warn(format!(
                "{}: '{source}' never publishes '{}', so this job never runs",
                w.at(event_key),
                code.name()
            ));
        }
        let when = When::Event {
            source,
            code,
            once,
            timeout,
        };
        Ok((when, !once))
    }

    fn health(&mut self, job: &Obj, advertised: bool) -> Result<Option<HealthConfig>> {
        let Some(h) = self.obj_opt(job, "health", HEALTH_KEYS)? else {
            return Ok(None);
        };
        let exec = h.get("exec").map(|n| exec(&h.at("exec"), n)).transpose()?;
        let interval = match h.duration("interval")? {
            None => return Err(invalid(format!("{} is required", h.at("interval")))),
            Some(Duration::ZERO) => {
                return Err(invalid(format!("{} must be > 0", h.at("interval"))))
            }
            Some(d) => d,
        };
        let ttl = match h.duration("ttl")? {
            Some(Duration::ZERO) => return Err(invalid(format!("{} must be > 0", h.at("ttl")))),
            None if advertised => {
                return Err(invalid(format!(
                "{} is required for an advertised job (it has a 'port' and consul is configured)",
                h.at("ttl")
            )))
            }
            ttl => ttl,
        };
        let timeout = match h.duration("timeout")? {
            Some(Duration::ZERO) => {
                return Err(invalid(format!("{} must be > 0", h.at("timeout"))))
            }
            Some(d) => d,
            None => interval,
        };
        let raw_logging = self.raw_logging(&h)?;
        Ok(Some(HealthConfig {
            exec,
            interval,
            ttl,
            timeout,
            raw_logging,
        }))
    }

    /// The discovery fields; `None` without a `port` (they are then ignored).
    fn service(
        &mut self,
        job: &Obj,
        port: Option<u16>,
        advertised: bool,
    ) -> Result<Option<ServiceConfig>> {
        let tags = job.strings("tags")?;
        let specs = job.strings("interfaces")?;
        for spec in specs.iter().flatten() {
            interfaces::check_spec(spec)
                .map_err(|e| invalid(format!("{}: {e}", job.at("interfaces"))))?;
        }
        let initial_status = job.str("initial_status")?;
        let extras = self.obj_opt(job, "consul", JOB_CONSUL_KEYS)?;
        let Some(port) = port else {
            let given = [
                ("tags", tags.is_some()),
                ("interfaces", specs.is_some()),
                ("initial_status", initial_status.is_some()),
                ("consul", extras.is_some()),
            ];
            for (key, _) in given.iter().filter(|(_, present)| *present) {
                self.warn(format!("{} is ignored: the job has no 'port'", job.at(key)));
            }
            return Ok(None);
        };
        if let Some(s) = initial_status {
            if !["passing", "warning", "critical"].contains(&s) {
                return Err(invalid(format!(
                    "{} must be one of 'passing', 'warning' or 'critical', got '{s}'",
                    job.at("initial_status")
                )));
            }
        }
        let (enable_tag_override, deregister) = match &extras {
            Some(c) => (
                c.bool("enableTagOverride")?.unwrap_or(false),
                c.duration("deregisterCriticalServiceAfter")?,
            ),
            None => (false, None),
        };
        let interfaces = specs.unwrap_or_else(interfaces::default_specs);
        let address = if advertised {
            let ip = interfaces::resolve(&interfaces, self.addrs)
                .map_err(|e| invalid(format!("{}: {e}", job.at("interfaces"))))?;
            Some(ip)
        } else {
            self.warn(format!(
                "{} has a port but no consul backend is configured; it will not be registered",
                job.path
            ));
            None
        };
        Ok(Some(ServiceConfig {
            port,
            advertised,
            address,
            interfaces,
            tags: tags.unwrap_or_default(),
            initial_status: initial_status.map(str::to_string),
            enable_tag_override,
            deregister_critical_service_after: deregister,
        }))
    }

    /// `logging: {raw}` of a job or a health check.
    fn raw_logging(&mut self, parent: &Obj) -> Result<bool> {
        match self.obj_opt(parent, "logging", RAW_LOGGING_KEYS)? {
            Some(l) => Ok(l.bool("raw")?.unwrap_or(false)),
            None => Ok(false),
        }
    }

    // -- telemetry ----------------------------------------------------------

    fn telemetry(&mut self, top: &Obj, jobs: &[JobConfig]) -> Result<Option<TelemetryConfig>> {
        let Some(t) = self.obj_opt(top, "telemetry", TELEMETRY_KEYS)? else {
            return Ok(None);
        };
        if jobs.iter().any(|j| j.name == TELEMETRY_SERVICE) {
            return Err(invalid(format!(
                "job[{TELEMETRY_SERVICE}]: the name '{TELEMETRY_SERVICE}' belongs to the \
                 telemetry service when 'telemetry' is configured; rename the job"
            )));
        }
        let port = t.port("port")?.unwrap_or(DEFAULT_TELEMETRY_PORT);
        let interfaces = t
            .strings("interfaces")?
            .unwrap_or_else(interfaces::default_specs);
        let address = interfaces::resolve(&interfaces, self.addrs)
            .map_err(|e| invalid(format!("{}: {e}", t.at("interfaces"))))?;
        let mut metrics: Vec<MetricConfig> = Vec::new();
        let mut seen = HashSet::new();
        for (i, node) in t.array("metrics")?.unwrap_or_default().iter().enumerate() {
            let path = format!("{}[{i}]", t.at("metrics"));
            let m = self.metric(path.clone(), node)?;
            if !seen.insert(m.name.clone()) {
                return Err(invalid(format!(
                    "{path}: the metric '{}' is defined more than once; metric names must be unique",
                    m.name
                )));
            }
            metrics.push(m);
        }
        Ok(Some(TelemetryConfig {
            port,
            interfaces,
            address,
            tags: t.strings("tags")?.unwrap_or_default(),
            metrics,
        }))
    }

    /// `buckets` is a list of upper bounds, strictly increasing (`+Inf` is
    /// always added). `objectives` is an object of quantile → allowed error,
    /// as Prometheus's Go client takes them: `{"0.5": 0.05, "0.99": 0.001}`.
    fn metric(&mut self, path: String, node: &Node) -> Result<MetricConfig> {
        let m = self.obj(path, node, METRIC_KEYS)?;
        let Some(short) = m.str("name")? else {
            return Err(invalid(format!("{} is required", m.at("name"))));
        };
        let name = [m.str("namespace")?, m.str("subsystem")?, Some(short)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("_");
        if !is_prometheus_name(&name) {
            return Err(invalid(format!(
                "{}: '{name}' is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                m.path
            )));
        }
        if BUILTIN_METRICS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "{}: '{name}' is a metric containerpilot exports itself; choose another name",
                m.path
            )));
        }
        let kind = match m.str("type")? {
            Some("counter") => MetricKind::Counter,
            Some("gauge") => MetricKind::Gauge,
            Some("histogram") => MetricKind::Histogram,
            Some("summary") => MetricKind::Summary,
            Some(other) => {
                return Err(invalid(format!(
                    "{} must be one of 'counter', 'gauge', 'histogram' or 'summary', got '{other}'",
                    m.at("type")
                )))
            }
            None => return Err(invalid(format!("{} is required", m.at("type")))),
        };
        let buckets = m
            .get("buckets")
            .map(|n| buckets(&m.at("buckets"), n))
            .transpose()?;
        if buckets.is_some() && kind != MetricKind::Histogram {
            return Err(invalid(format!(
                "{} is only for histograms",
                m.at("buckets")
            )));
        }
        let objectives = m
            .get("objectives")
            .map(|n| objectives(&m.at("objectives"), n))
            .transpose()?;
        if objectives.is_some() && kind != MetricKind::Summary {
            return Err(invalid(format!(
                "{} is only for summaries",
                m.at("objectives")
            )));
        }
        Ok(MetricConfig {
            name,
            help: m.str("help")?.unwrap_or("").to_string(),
            kind,
            buckets,
            objectives,
        })
    }

    // -- helpers ------------------------------------------------------------

    fn warn(&mut self, msg: String) {
        self.warnings.push(Warning(msg));
    }

    fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Open `node` as an object at `path`, warning about unknown and repeated keys.
    fn obj<'n>(&mut self, path: String, node: &'n Node, known: &[&str]) -> Result<Obj<'n>> {
        let Node::Object(pairs) = node else {
            let at = if path.is_empty() { "the config" } else { &path };
            return Err(expected(at, "an object", node));
        };
        let o = Obj { path, pairs };
        let mut seen = HashSet::new();
        for (key, _) in pairs {
            let at = o.at(key);
            if !seen.insert(key.as_str()) {
                self.warn(format!("{at}: duplicate key; the last value is used"));
            } else if !known.contains(&key.as_str()) {
                let mut msg = format!("{at}: unknown key");
                if let Some((_, hint)) = HINTS.iter().find(|(suffix, _)| at.ends_with(suffix)) {
                    msg.push_str(&format!(" ({hint})"));
                } else if let Some(s) = suggest(key, known) {
                    msg.push_str(&format!(", did you mean '{s}'?"));
                }
                self.warn(msg);
            }
        }
        Ok(o)
    }

    /// The object under `key` of `parent`, if present.
    fn obj_opt<'n>(
        &mut self,
        parent: &Obj<'n>,
        key: &str,
        known: &[&str],
    ) -> Result<Option<Obj<'n>>> {
        match parent.get(key) {
            Some(n) => self.obj(parent.at(key), n, known).map(Some),
            None => Ok(None),
        }
    }

    /// Like `obj_opt`, with an empty object standing in for an absent key.
    fn obj_at<'n>(&mut self, parent: &Obj<'n>, key: &str, known: &[&str]) -> Result<Obj<'n>> {
        Ok(self.obj_opt(parent, key, known)?.unwrap_or(Obj {
            path: parent.at(key),
            pairs: &[],
        }))
    }
}

// ---------------------------------------------------------------------------
// Sections without warnings of their own.

fn old_schema(root: &Node) -> Result<()> {
    let Node::Object(pairs) = root else {
        return Ok(());
    };
    let mut found: Vec<&str> = Vec::new();
    for (key, _) in pairs {
        if OLD_SCHEMA_KEYS.contains(&key.as_str()) && !found.contains(&key.as_str()) {
            found.push(key);
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    let era = if found.contains(&"onStart") {
        "Containerbuddy / ContainerPilot 1.x"
    } else {
        "ContainerPilot 2.x"
    };
    let keys = found
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ConfigError::OldSchema(format!(
        "this config uses the {era} schema (top-level {keys}), which is not supported: \
         ContainerPilot 3 configs have the top-level keys 'jobs', 'watches', 'telemetry', \
         'control', 'consul', 'logging' and 'stopTimeout'. To migrate:\n\
         - each service becomes a job with 'exec', 'port' and 'health: {{exec, interval, ttl}}' \
         (its 'poll' is now 'health.interval')\n\
         - 'preStart' becomes a job, and the main job waits for it with \
         'when: {{source: \"preStart\", once: \"exitSuccess\"}}'\n\
         - 'preStop' and 'postStop' become jobs with \
         'when: {{source: \"<job>\", once: \"stopping\"}}' and 'once: \"stopped\"'\n\
         - 'coprocesses' become jobs with 'restarts'; 'tasks' become jobs with \
         'when: {{interval: \"...\"}}'\n\
         - 'backends' become 'watches' ({{name, interval}}), and each 'onChange' a job with \
         'when: {{source: \"watch.<name>\", each: \"changed\"}}'\n\
         - telemetry 'sensors' become jobs that run 'containerpilot -putmetric'; \
         'etcd' is not supported (use consul)"
    )))
}

fn logging(o: &Obj) -> Result<LogConfig> {
    let mut cfg = LogConfig::default();
    if let Some(level) = o.str("level")? {
        cfg.level = Level::parse(level).ok_or_else(|| {
            invalid(format!(
                "{} must be one of DEBUG, INFO, WARN, ERROR, FATAL or PANIC, got '{level}'",
                o.at("level")
            ))
        })?;
    }
    if let Some(format) = o.str("format")? {
        cfg.format = match format.to_ascii_lowercase().as_str() {
            "default" => Format::Default,
            "text" => Format::Text,
            "json" => Format::Json,
            _ => {
                return Err(invalid(format!(
                    "{} must be one of 'default', 'text' or 'json', got '{format}'",
                    o.at("format")
                )))
            }
        };
    }
    cfg.output = match o.str("output")? {
        None | Some("stdout") => Output::Stdout,
        Some("stderr") => Output::Stderr,
        Some(path) => Output::File(PathBuf::from(path)),
    };
    Ok(cfg)
}

fn control(o: &Obj) -> Result<ControlConfig> {
    Ok(ControlConfig {
        socket: PathBuf::from(o.str("socket")?.unwrap_or(DEFAULT_SOCKET)),
    })
}

/// `host:port`, `http://host:port` or `https://host:port`. A missing port is
/// Consul's 8500 and an empty host the local agent (Go dials `:8500` locally).
fn consul_uri(path: &str, raw: &str) -> Result<ConsulConfig> {
    let raw = raw.trim();
    let (scheme, rest) = match raw.split_once("://") {
        None => ("http", raw),
        Some((s, rest)) if s.eq_ignore_ascii_case("http") => ("http", rest),
        Some((s, rest)) if s.eq_ignore_ascii_case("https") => ("https", rest),
        Some((s, _)) => {
            return Err(invalid(format!(
                "{path}: the scheme must be http or https, got '{s}' in '{raw}'"
            )))
        }
    };
    let rest = rest.trim_end_matches('/');
    let bad = |why: &str| invalid(format!("{path}: invalid address '{raw}': {why}"));
    if rest.contains('/') {
        return Err(bad("expected host:port"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        (format!("[{h}]"), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            // A bare IPv6 address has several colons and no port.
            Some((h, _)) if h.contains(':') => (format!("[{rest}]"), None),
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    let port = match port {
        None | Some("") => DEFAULT_CONSUL_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        },
    };
    let host = if host.is_empty() {
        "127.0.0.1".to_string()
    } else {
        host
    };
    Ok(ConsulConfig {
        address: format!("{host}:{port}"),
        scheme: scheme.to_string(),
        scheme_explicit: raw.contains("://"),
        token: None,
        tls: None,
    })
}

/// `restarts`: "never" (default; "unlimited" for interval jobs), "unlimited",
/// or a count as a number or numeric string (as 3.x).
fn restarts(job: &Obj, periodic: bool, each: bool) -> Result<Restarts> {
    let path = job.at("restarts");
    let Some(node) = job.get("restarts") else {
        return Ok(if periodic {
            Restarts::Unlimited
        } else {
            Restarts::Never
        });
    };
    let wanted = "must be \"never\", \"unlimited\" or a non-negative integer";
    let count = |n: i128| -> Result<Restarts> {
        if n < 0 {
            return Err(invalid(format!("{path} must not be negative, got {n}")));
        }
        u32::try_from(n)
            .map(Restarts::Count)
            .map_err(|_| invalid(format!("{path} is too large: {n}")))
    };
    match node {
        Node::Str(s) if s == "unlimited" => {
            if each {
                return Err(invalid(format!(
                    "{path} 'unlimited' may not be used with 'when.each', \
                     because it could start an unlimited number of processes"
                )));
            }
            Ok(Restarts::Unlimited)
        }
        Node::Str(s) if s == "never" => Ok(Restarts::Never),
        Node::Str(s) => match s.trim().parse::<i128>() {
            Ok(n) => count(n),
            Err(_) => Err(invalid(format!("{path} {wanted}, got \"{s}\""))),
        },
        Node::Int(n) => count(i128::from(*n)),
        Node::Float(f) if f.fract() == 0.0 && f.abs() < 1e18 => count(*f as i128),
        other => Err(invalid(format!("{path} {wanted}, got {}", describe(other)))),
    }
}

/// Where a `when.source` events come from; an error when it names nothing.
fn source_kind(path: &str, source: &str, ctx: &Context) -> Result<SourceKind> {
    if source == GLOBAL {
        return Ok(SourceKind::Global);
    }
    if let Some(watch) = source.strip_prefix("watch.") {
        if ctx.watches.contains(watch) {
            return Ok(SourceKind::Watch);
        }
        let mut msg =
            format!("{path} names 'watch.{watch}', but there is no watch named '{watch}'");
        let known: Vec<&str> = ctx.watches.iter().map(String::as_str).collect();
        if let Some(s) = suggest(watch, &known) {
            msg.push_str(&format!("; did you mean 'watch.{s}'?"));
        }
        return Err(invalid(msg));
    }
    if ctx.jobs.contains(source) {
        return Ok(SourceKind::Job);
    }
    let mut msg = format!(
        "{path} '{source}' names no job, no watch ('watch.NAME'), \
         not 'global' and not a signal (SIGHUP, SIGUSR2)"
    );
    let mut candidates: Vec<String> = ctx.jobs.iter().cloned().collect();
    candidates.extend(ctx.watches.iter().map(|w| format!("watch.{w}")));
    candidates.extend([GLOBAL.to_string()]);
    candidates.extend(SIGNAL_SOURCES.iter().map(|s| s.to_string()));
    let known: Vec<&str> = candidates.iter().map(String::as_str).collect();
    if ctx.watches.contains(source) {
        // Watch events come from `watch.NAME`, not the bare watch name.
        msg.push_str(&format!("; did you mean 'watch.{source}'?"));
    } else if let Some(s) = suggest(source, &known) {
        msg.push_str(&format!("; did you mean '{s}'?"));
    }
    Err(invalid(msg))
}

/// Whether a source of this kind ever publishes the event (SPEC §3.1, §6).
fn publishes(kind: SourceKind, code: EventCode) -> bool {
    use EventCode::*;
    match kind {
        SourceKind::Global => code.is_global(),
        SourceKind::Watch => matches!(code, Changed | Healthy | Unhealthy),
        SourceKind::Job => matches!(
            code,
            ExitSuccess | ExitFailed | Stopping | Stopped | Healthy | Unhealthy
        ),
    }
}

fn parse_event(path: &str, name: &str) -> Result<EventCode> {
    EventCode::parse(name).ok_or_else(|| {
        let names: Vec<&str> = EventCode::NAMES.iter().map(|(n, _)| *n).collect();
        let mut msg = format!("{path}: unknown event '{name}'");
        match suggest(name, &names) {
            Some(s) => msg.push_str(&format!(", did you mean '{s}'?")),
            None => msg.push_str(&format!("; events are {}", names.join(", "))),
        }
        invalid(msg)
    })
}

/// `^[a-z][a-zA-Z0-9-]+$`, as 3.x's `services.ValidateName` (DNS and Consul safe).
fn check_service_name(path: &str, name: &str, note: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        return Ok(());
    }
    Err(invalid(format!(
        "{path} '{name}'{note} is not a valid service name: it must start with a lowercase \
         letter and have only letters, digits and dashes, at least 2 characters \
         (^[a-z][a-zA-Z0-9-]+$)"
    )))
}

fn is_prometheus_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn buckets(path: &str, node: &Node) -> Result<Vec<f64>> {
    let Node::Array(items) = node else {
        return Err(expected(path, "an array of numbers", node));
    };
    if items.is_empty() {
        return Err(invalid(format!("{path} must not be empty")));
    }
    let mut out: Vec<f64> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let b = number(&format!("{path}[{i}]"), item)?;
        if out.last().is_some_and(|prev| *prev >= b) {
            return Err(invalid(format!("{path} must be strictly increasing")));
        }
        out.push(b);
    }
    Ok(out)
}

fn objectives(path: &str, node: &Node) -> Result<Vec<(f64, f64)>> {
    let Node::Object(pairs) = node else {
        return Err(expected(
            path,
            "an object of quantile to allowed error, e.g. {\"0.5\": 0.05, \"0.99\": 0.001}",
            node,
        ));
    };
    if pairs.is_empty() {
        return Err(invalid(format!("{path} must not be empty")));
    }
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let at = format!("{path}.{key}");
        let q = match key.trim().parse::<f64>() {
            Ok(q) if (0.0..=1.0).contains(&q) => q,
            _ => {
                return Err(invalid(format!(
                    "{at}: the quantile must be a number from 0 to 1"
                )))
            }
        };
        let e = number(&at, value)?;
        if !(0.0..=1.0).contains(&e) {
            return Err(invalid(format!(
                "{at}: the allowed error must be from 0 to 1, got {e}"
            )));
        }
        if out.iter().any(|(other, _)| *other == q) {
            return Err(invalid(format!(
                "{at}: the quantile {q} is given more than once"
            )));
        }
        out.push((q, e));
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

// ---------------------------------------------------------------------------
// Reading typed values.

/// An object being read; knows its path for messages.
struct Obj<'n> {
    /// `""` for the top level, else e.g. `job[app].health`.
    path: String,
    pairs: &'n [(String, Node)],
}

impl<'n> Obj<'n> {
    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The last value given for `key`; `null` counts as absent (a Go zero value).
    fn get(&self, key: &str) -> Option<&'n Node> {
        tree::lookup(self.pairs, key)
    }

    /// A string; empty counts as absent.
    fn str(&self, key: &str) -> Result<Option<&'n str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Node::Str(s)) if s.is_empty() => Ok(None),
            Some(Node::Str(s)) => Ok(Some(s)),
            Some(n) => Err(expected(&self.at(key), "a string", n)),
        }
    }

    /// `true`/`false`, or a string Go's `strconv.ParseBool` accepts.
    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Node::Bool(b)) => Ok(Some(*b)),
            Some(Node::Str(s)) => match s.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
                _ => Err(invalid(format!(
                    "{} must be true or false, got \"{s}\"",
                    self.at(key)
                ))),
            },
            Some(n) => Err(expected(&self.at(key), "true or false", n)),
        }
    }

    /// SPEC §2.2: a whole number (or numeric string) of seconds, or Go
    /// duration syntax. A JSON fraction (`1.5`) is taken as seconds too.
    fn duration(&self, key: &str) -> Result<Option<Duration>> {
        let path = self.at(key);
        let d = match self.get(key) {
            None => return Ok(None),
            Some(Node::Str(s)) if s.is_empty() => return Ok(None),
            Some(Node::Str(s)) => {
                duration::parse(s.trim()).map_err(|e| invalid(format!("{path}: {e}")))?
            }
            Some(Node::Int(n)) if *n < 0 => {
                return Err(invalid(format!("{path} must not be negative, got {n}")))
            }
            Some(Node::Int(n)) => Duration::from_secs(n.unsigned_abs()),
            Some(Node::Float(f)) if *f < 0.0 => {
                return Err(invalid(format!("{path} must not be negative, got {f}")))
            }
            Some(Node::Float(f)) => Duration::try_from_secs_f64(*f)
                .map_err(|_| invalid(format!("{path}: invalid duration {f}")))?,
            Some(n) => {
                return Err(expected(
                    &path,
                    "a duration (seconds, or a string such as \"1500ms\" or \"1m30s\")",
                    n,
                ))
            }
        };
        if d > duration::MAX {
            return Err(invalid(format!("{path}: duration too large")));
        }
        Ok(Some(d))
    }

    /// A TCP port, 1 to 65535 (a numeric string too, as 3.x's weak decoding).
    fn port(&self, key: &str) -> Result<Option<u16>> {
        let path = self.at(key);
        let n: i128 = match self.get(key) {
            None => return Ok(None),
            Some(Node::Str(s)) if s.is_empty() => return Ok(None),
            Some(Node::Str(s)) => s
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{path} must be an integer, got string \"{s}\"")))?,
            Some(Node::Int(n)) => i128::from(*n),
            Some(Node::Float(f)) if f.fract() == 0.0 && f.abs() < 1e9 => *f as i128,
            Some(n) => return Err(expected(&path, "an integer", n)),
        };
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(invalid(format!("{path} must be from 1 to 65535, got {n}"))),
        }
    }

    /// A string or an array of strings (a single string is a list of one, as 3.x).
    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let path = self.at(key);
        match self.get(key) {
            None => Ok(None),
            Some(Node::Str(s)) => Ok(Some(vec![s.clone()])),
            Some(Node::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, n)| list_item(&format!("{path}[{i}]"), n))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(n) => Err(expected(&path, "a string or an array of strings", n)),
        }
    }

    fn array(&self, key: &str) -> Result<Option<&'n [Node]>> {
        match self.get(key) {
            None => Ok(None),
            Some(Node::Array(items)) => Ok(Some(items)),
            Some(n) => Err(expected(&self.at(key), "an array", n)),
        }
    }
}

/// The `name` a job or watch gives itself, if any (`""` counts as none).
fn explicit_name(index: &str, node: &Node) -> Result<Option<String>> {
    match node.get("name") {
        None => Ok(None),
        Some(Node::Str(s)) if s.is_empty() => Ok(None),
        Some(Node::Str(s)) => Ok(Some(s.clone())),
        Some(n) => Err(expected(&format!("{index}.name"), "a string", n)),
    }
}

/// argv from a string (split on whitespace, no quoting, as 3.x) or an array of strings.
fn exec(path: &str, node: &Node) -> Result<Vec<String>> {
    let argv: Vec<String> = match node {
        Node::Str(s) => s.split_whitespace().map(str::to_string).collect(),
        Node::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| list_item(&format!("{path}[{i}]"), n))
            .collect::<Result<_>>()?,
        other => return Err(expected(path, "a string or an array of strings", other)),
    };
    match argv.first() {
        Some(cmd) if !cmd.trim().is_empty() => Ok(argv),
        _ => Err(invalid(format!(
            "{path} must name a command, got an empty one"
        ))),
    }
}

/// An element of a list of strings (`exec`, `tags`, `interfaces`). Numbers
/// and booleans are taken as their text, as 3.x's `fmt.Sprintf("%v")` did
/// (`"-bootstrap-expect", 3` is common in templated configs).
fn list_item(path: &str, node: &Node) -> Result<String> {
    match node {
        Node::Str(s) => Ok(s.clone()),
        Node::Int(n) => Ok(n.to_string()),
        Node::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e21 => {
            Ok(format!("{f:.0}"))
        }
        Node::Float(f) if f.is_finite() => Ok(f.to_string()),
        Node::Bool(b) => Ok(b.to_string()),
        other => Err(expected(path, "a string", other)),
    }
}

fn number(path: &str, node: &Node) -> Result<f64> {
    let f = match node {
        Node::Int(n) => *n as f64,
        Node::Float(f) => *f,
        other => return Err(expected(path, "a number", other)),
    };
    if f.is_finite() {
        Ok(f)
    } else {
        Err(invalid(format!("{path} must be a finite number")))
    }
}

// ---------------------------------------------------------------------------
// Messages.

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// `{path} must be {what}, got {kind}`.
fn expected(path: &str, what: &str, got: &Node) -> ConfigError {
    invalid(format!("{path} must be {what}, got {}", describe(got)))
}

/// The type, with the value when it is short enough to help.
fn describe(node: &Node) -> String {
    match node {
        Node::Str(s) if s.chars().count() <= 40 => format!("string \"{s}\""),
        Node::Int(n) => format!("integer {n}"),
        Node::Float(f) => format!("number {f}"),
        Node::Bool(b) => format!("boolean {b}"),
        other => other.kind().to_string(),
    }
}

/// The known key `key` was probably meant to be: the same but for case, or
/// within two edits (and fewer edits than the key has letters).
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return Some(k);
    }
    let key_lower = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key_lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= 2 && *d < key.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::interfaces::fake_addr;
    use crate::config::tree;
    use std::net::IpAddr;

    fn machine() -> Vec<IfAddr> {
        vec![
            fake_addr("lo", "127.0.0.1"),
            fake_addr("eth0", "10.0.0.2"),
            fake_addr("eth1", "10.1.0.2"),
        ]
    }

    fn run_env(text: &str, env: &[(&str, &str)]) -> Result<(Config, Vec<Warning>)> {
        let root = tree::parse(text).expect("test config parses");
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        validate(&root, &env, &machine())
    }

    fn ok_env(text: &str, env: &[(&str, &str)]) -> (Config, Vec<String>) {
        match run_env(text, env) {
            Ok((cfg, w)) => (cfg, w.into_iter().map(|w| w.0).collect()),
            Err(e) => panic!("expected a valid config, got: {e}\n{text}"),
        }
    }

    fn ok(text: &str) -> (Config, Vec<String>) {
        ok_env(text, &[])
    }

    fn cfg(text: &str) -> Config {
        ok(text).0
    }

    fn warnings(text: &str) -> Vec<String> {
        ok(text).1
    }

    fn err_env(text: &str, env: &[(&str, &str)]) -> String {
        match run_env(text, env) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(ConfigError::Invalid(m) | ConfigError::OldSchema(m)) => m,
            Err(e) => panic!("unexpected error kind: {e:?}"),
        }
    }

    fn err(text: &str) -> String {
        err_env(text, &[])
    }

    /// The first line of an error (without the `note:` lines).
    fn err1(text: &str) -> String {
        err(text).lines().next().unwrap_or("").to_string()
    }

    /// One job in a config with consul, so a `port` means advertised.
    fn one_job(body: &str) -> String {
        format!("{{consul: 'localhost:8500', jobs: [{{{body}}}]}}")
    }

    fn job(body: &str) -> JobConfig {
        cfg(&one_job(body)).jobs.remove(0)
    }

    fn job_err(body: &str) -> String {
        err1(&one_job(body))
    }

    const SVC: &str = "name: 'app', exec: '/bin/app', port: 80, health: {interval: 5, ttl: 10}";

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    // -- top level ----------------------------------------------------------

    #[test]
    fn empty_config_has_every_default() {
        let (c, w) = ok("{}");
        assert_eq!(c.consul, None);
        assert_eq!(c.logging, LogConfig::default());
        assert!(c.jobs.is_empty() && c.watches.is_empty());
        assert_eq!(c.control.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.telemetry, None);
        assert_eq!(c.stop_timeout, secs(5));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn global_stop_timeout() {
        assert_eq!(cfg("{stopTimeout: '10s'}").stop_timeout, secs(10));
        assert_eq!(cfg("{stopTimeout: 3}").stop_timeout, secs(3));
        assert_eq!(cfg("{stopTimeout: '3'}").stop_timeout, secs(3));
        assert_eq!(
            cfg("{stopTimeout: '1500ms'}").stop_timeout,
            Duration::from_millis(1500)
        );
        // 0 was "unset" in 3.x.
        assert_eq!(cfg("{stopTimeout: 0}").stop_timeout, secs(5));
        assert_eq!(
            err1("{stopTimeout: -1}"),
            "stopTimeout must not be negative, got -1"
        );
        assert!(err1("{stopTimeout: '5x'}").starts_with("stopTimeout: invalid duration \"5x\""));
        assert_eq!(
            err1("{stopTimeout: true}"),
            "stopTimeout must be a duration (seconds, or a string such as \"1500ms\" or \"1m30s\"), got boolean true"
        );
    }

    #[test]
    fn the_root_must_be_an_object() {
        let root = Node::Array(vec![]);
        let e = validate(&root, &HashMap::new(), &[]).expect_err("array root");
        assert_eq!(e, invalid("the config must be an object, got array"));
    }

    #[test]
    fn null_values_count_as_absent() {
        let c =
            cfg("{consul: null, jobs: null, logging: null, telemetry: null, stopTimeout: null}");
        assert_eq!(c.consul, None);
        assert!(c.jobs.is_empty());
        let j = job("name: 'a', exec: 'x', when: null, restarts: null, health: null");
        assert_eq!(j.when, When::Startup);
        assert_eq!(j.restarts, Restarts::Never);
    }

    #[test]
    fn sections_must_have_the_right_type() {
        assert_eq!(err1("{jobs: {}}"), "jobs must be an array, got object");
        assert_eq!(
            err1("{watches: 'x'}"),
            "watches must be an array, got string \"x\""
        );
        assert_eq!(
            err1("{logging: []}"),
            "logging must be an object, got array"
        );
        assert_eq!(
            err1("{control: 1}"),
            "control must be an object, got integer 1"
        );
        assert_eq!(
            err1("{telemetry: true}"),
            "telemetry must be an object, got boolean true"
        );
        assert_eq!(
            err1("{jobs: [{name: 'a', exec: 'x'}, 'b']}"),
            "jobs[1] must be an object, got string \"b\""
        );
        assert_eq!(
            err1(&one_job("name: 'a', exec: 'x', when: 'startup'")),
            "job[a].when must be an object, got string \"startup\""
        );
    }

    // -- old schema -----------------------------------------------------------

    #[test]
    fn old_2x_schema_is_rejected_with_a_migration_hint() {
        let text = "{consul: 'consul:8500', services: [{name: 'app', port: 80}], \
                    backends: [{name: 'db', poll: 5}], preStart: '/bin/setup'}";
        let root = tree::parse(text).expect("parses");
        let e = validate(&root, &HashMap::new(), &[]).expect_err("old schema");
        let ConfigError::OldSchema(m) = e else {
            panic!("not OldSchema: {e:?}")
        };
        assert!(m.contains("ContainerPilot 2.x schema"), "{m}");
        assert!(m.contains("'services', 'backends', 'preStart'"), "{m}");
        assert!(m.contains("not supported"), "{m}");
        for key in ["'jobs'", "'watches'", "'telemetry'", "'control'"] {
            assert!(m.contains(key), "{key} missing: {m}");
        }
        assert!(m.contains("once: \"exitSuccess\""), "{m}");
        assert!(m.contains("watch.<name>"), "{m}");
    }

    #[test]
    fn every_old_signature_key_is_detected() {
        for key in OLD_SCHEMA_KEYS {
            let text = format!("{{{key}: []}}");
            let root = tree::parse(&text).expect("parses");
            let e = validate(&root, &HashMap::new(), &[]);
            assert!(matches!(e, Err(ConfigError::OldSchema(_))), "{key}: {e:?}");
        }
        // Also next to 3.x keys: 3.x refused such a file too.
        assert!(err("{jobs: [], tasks: []}").contains("2.x schema"));
        assert!(err("{onStart: 'x', services: []}").contains("Containerbuddy"));
    }

    // -- consul ---------------------------------------------------------------

    fn consul(text: &str) -> ConsulConfig {
        cfg(text).consul.expect("consul configured")
    }

    #[test]
    fn consul_string_forms() {
        let c = consul("{consul: 'consul:8500'}");
        assert_eq!(
            (c.address.as_str(), c.scheme.as_str()),
            ("consul:8500", "http")
        );
        assert_eq!(c.token, None);
        assert_eq!(c.tls, None);
        let c = consul("{consul: 'http://10.0.0.1:8501'}");
        assert_eq!(
            (c.address.as_str(), c.scheme.as_str()),
            ("10.0.0.1:8501", "http")
        );
        let c = consul("{consul: 'https://consul.example:8543/'}");
        assert_eq!(
            (c.address.as_str(), c.scheme.as_str()),
            ("consul.example:8543", "https")
        );
        // Beyond 3.x: a missing port is Consul's, an empty host the local agent.
        assert_eq!(consul("{consul: 'consul'}").address, "consul:8500");
        assert_eq!(consul("{consul: ':8500'}").address, "127.0.0.1:8500");
        assert_eq!(consul("{consul: '[::1]:8500'}").address, "[::1]:8500");
        assert_eq!(consul("{consul: '[::1]'}").address, "[::1]:8500");
        assert_eq!(consul("{consul: 'fd00::1'}").address, "[fd00::1]:8500");
        assert_eq!(
            err1("{consul: 'tcp://consul:8500'}"),
            "consul: the scheme must be http or https, got 'tcp' in 'tcp://consul:8500'"
        );
        assert!(err1("{consul: 'consul:http'}").contains("the port must be a number"));
        assert!(err1("{consul: 'consul:0'}").contains("the port must be a number"));
        assert!(err1("{consul: 'http://consul:8500/v1'}").contains("expected host:port"));
        assert_eq!(
            err1("{consul: 8500}"),
            "consul must be a string (\"host:port\") or an object, got integer 8500"
        );
    }

    #[test]
    fn empty_consul_string_means_no_discovery() {
        assert_eq!(cfg("{consul: ''}").consul, None);
    }

    #[test]
    fn consul_object_form() {
        // Over http the tls block is kept but unused (a warning), and its
        // files are not read.
        let c = consul(
            "{consul: {address: 'consul:8501', scheme: 'http', token: 'secret', \
              tls: {cafile: '/ca.pem', capath: '/cas', clientcert: '/c.pem', \
                    clientkey: '/k.pem', servername: 'consul.local'}}}",
        );
        assert_eq!(c.address, "consul:8501");
        assert_eq!((c.scheme.as_str(), c.scheme_explicit), ("http", true));
        assert_eq!(c.token.as_deref(), Some("secret"));
        assert_eq!(
            c.tls,
            Some(TlsConfig {
                cafile: Some("/ca.pem".into()),
                capath: Some("/cas".into()),
                clientcert: Some("/c.pem".into()),
                clientkey: Some("/k.pem".into()),
                servername: Some("consul.local".into()),
                verify: None,
            })
        );
        let c = consul("{consul: {address: 'consul:8501', tls: {verify: false}}}");
        assert_eq!(c.tls.expect("tls").verify, Some(false));
        assert!(!consul("{consul: {address: 'consul:8501'}}").scheme_explicit);
        let c = consul("{consul: {address: 'https://c:1'}}");
        assert_eq!((c.scheme.as_str(), c.scheme_explicit), ("https", true));
        let c = consul("{consul: {address: 'c:1', scheme: 'https'}}");
        assert_eq!((c.scheme.as_str(), c.scheme_explicit), ("https", true));
        assert_eq!(consul("{consul: {}}").address, "127.0.0.1:8500");
        assert_eq!(
            err1("{consul: {address: 'c:1', scheme: 'ftp'}}"),
            "consul.scheme must be 'http' or 'https', got 'ftp'"
        );
        assert_eq!(
            err1("{consul: {address: 'https://c:1', scheme: 'http'}}"),
            "consul.scheme is 'http' but consul.address says 'https'"
        );
        assert_eq!(
            err1("{consul: {address: 'c:1', tls: {verify: 'maybe'}}}"),
            "consul.tls.verify must be true or false, got \"maybe\""
        );
        assert_eq!(
            err1("{consul: {address: 7}}"),
            "consul.address must be a string, got integer 7"
        );
    }

    #[test]
    fn consul_environment() {
        let c = ok_env("{consul: 'c:1'}", &[("CONSUL_HTTP_TOKEN", "t0k")])
            .0
            .consul;
        assert_eq!(c.expect("consul").token.as_deref(), Some("t0k"));
        let c = ok_env(
            "{consul: {address: 'c:1', token: 'file'}}",
            &[("CONSUL_HTTP_TOKEN", "env")],
        )
        .0
        .consul;
        assert_eq!(c.expect("consul").token.as_deref(), Some("env"));
        // CONSUL_HTTP_ADDR only when the key is absent.
        let c = ok_env("{}", &[("CONSUL_HTTP_ADDR", "https://agent:8501")])
            .0
            .consul;
        let c = c.expect("consul from env");
        assert_eq!(
            (c.address.as_str(), c.scheme.as_str()),
            ("agent:8501", "https")
        );
        let c = ok_env("{consul: 'c:1'}", &[("CONSUL_HTTP_ADDR", "agent:8501")])
            .0
            .consul;
        assert_eq!(c.expect("consul").address, "c:1");
        let c = ok_env(
            "{consul: {token: 'x'}}",
            &[("CONSUL_HTTP_ADDR", "agent:8501")],
        )
        .0
        .consul;
        assert_eq!(c.expect("consul").address, "agent:8501");
        // Empty variables count as unset.
        assert_eq!(ok_env("{}", &[("CONSUL_HTTP_ADDR", "")]).0.consul, None);
        assert!(
            err_env("{}", &[("CONSUL_HTTP_ADDR", "gopher://x")]).starts_with("CONSUL_HTTP_ADDR:")
        );
        // The TLS variables are resolved by discovery::consul, but their
        // files are checked here, so that -validate reports them.
        let c = ok_env("{consul: 'https://c:1'}", &[("CONSUL_HTTP_SSL", "1")])
            .0
            .consul
            .expect("consul");
        assert_eq!(c.tls, None);
        let e = err_env(
            "{consul: 'https://c:1'}",
            &[("CONSUL_CACERT", "/nonexistent/ca.pem")],
        );
        assert!(
            e.starts_with("CONSUL_CACERT: cannot read /nonexistent/ca.pem"),
            "{e}"
        );
    }

    // -- logging and control ------------------------------------------------------

    #[test]
    fn logging_section() {
        let c = cfg("{logging: {level: 'debug', format: 'JSON', output: 'stderr'}}");
        assert_eq!(
            c.logging,
            LogConfig {
                level: Level::Debug,
                format: Format::Json,
                output: Output::Stderr
            }
        );
        let c = cfg("{logging: {level: 'WARN', format: 'text', output: '/var/log/cp.log'}}");
        assert_eq!(c.logging.level, Level::Warn);
        assert_eq!(c.logging.format, Format::Text);
        assert_eq!(c.logging.output, Output::File("/var/log/cp.log".into()));
        assert_eq!(
            cfg("{logging: {output: 'stdout'}}").logging.output,
            Output::Stdout
        );
        assert_eq!(
            err1("{logging: {level: 'loud'}}"),
            "logging.level must be one of DEBUG, INFO, WARN, ERROR, FATAL or PANIC, got 'loud'"
        );
        assert_eq!(
            err1("{logging: {format: 'xml'}}"),
            "logging.format must be one of 'default', 'text' or 'json', got 'xml'"
        );
    }

    #[test]
    fn control_socket() {
        assert_eq!(
            cfg("{control: {socket: '/tmp/cp.sock'}}").control.socket,
            PathBuf::from("/tmp/cp.sock")
        );
        assert_eq!(
            cfg("{control: {}}").control.socket,
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert_eq!(
            cfg("{control: {socket: ''}}").control.socket,
            PathBuf::from(DEFAULT_SOCKET)
        );
    }

    // -- job names and exec ---------------------------------------------------------

    #[test]
    fn name_defaults_to_the_first_word_of_exec() {
        assert_eq!(job("exec: '/bin/app  -x   y'").name, "/bin/app");
        assert_eq!(job("exec: ['/usr/bin/env', 'a b']").name, "/usr/bin/env");
        assert_eq!(job("name: '', exec: 'sleep 1'").name, "sleep");
    }

    #[test]
    fn a_job_needs_a_name_or_an_exec() {
        assert_eq!(
            err1("{jobs: [{name: 'a', exec: 'x'}, {name: 'b', exec: 'y'}, {port: 80}]}"),
            "jobs[2] needs a 'name' or an 'exec'"
        );
        assert_eq!(
            err1("{jobs: [{name: 5}]}"),
            "jobs[0].name must be a string, got integer 5"
        );
    }

    #[test]
    fn names_are_unique() {
        assert_eq!(
            err1(
                "{jobs: [{name: 'a', exec: 'x'}, {name: 'b', exec: 'y'}, {name: 'a', exec: 'y'}]}"
            ),
            "job[a] is defined more than once (jobs[0] and jobs[2]); job names must be unique"
        );
        // A default name counts too.
        assert_eq!(
            err1("{jobs: [{name: 'sleep', exec: 'x'}, {exec: 'sleep 5'}]}"),
            "jobs[1]: its name 'sleep' (taken from 'exec') is already used by jobs[0]; \
             job names must be unique, set 'name'"
        );
    }

    #[test]
    fn exec_forms() {
        let j = job("name: 'a', exec: '  /bin/app   --flag \"two words\"  '");
        // Split on runs of whitespace; quotes are not interpreted (as 3.x).
        assert_eq!(
            j.exec,
            Some(vec![
                "/bin/app".to_string(),
                "--flag".into(),
                "\"two".into(),
                "words\"".into()
            ])
        );
        let j = job("name: 'a', exec: ['/bin/app', 'two words', '']");
        assert_eq!(
            j.exec,
            Some(vec!["/bin/app".to_string(), "two words".into(), "".into()])
        );
        assert_eq!(
            job("name: 'ab', port: 80, health: {interval: 1, ttl: 2}").exec,
            None
        );
        assert_eq!(
            job_err("name: 'a', exec: '   '"),
            "job[a].exec must name a command, got an empty one"
        );
        assert_eq!(
            job_err("name: 'a', exec: []"),
            "job[a].exec must name a command, got an empty one"
        );
        // Numbers and booleans are their text, as 3.x.
        assert_eq!(
            job("name: 'a', exec: ['x', 3, 2.0, 1.5, true]").exec,
            Some(vec![
                "x".to_string(),
                "3".into(),
                "2".into(),
                "1.5".into(),
                "true".into()
            ])
        );
        assert_eq!(
            job_err("name: 'a', exec: ['x', null]"),
            "job[a].exec[1] must be a string, got null"
        );
        assert_eq!(
            job_err("name: 'a', exec: ['x', {}]"),
            "job[a].exec[1] must be a string, got object"
        );
        assert_eq!(
            job_err("name: 'a', exec: {cmd: 'x'}"),
            "job[a].exec must be a string or an array of strings, got object"
        );
        // Without a name the path is the index.
        assert_eq!(
            err1("{jobs: [{name: 'a', exec: 'x'}, {exec: 42}]}"),
            "jobs[1].exec must be a string or an array of strings, got integer 42"
        );
    }

    #[test]
    fn advertised_names_follow_the_service_name_rule() {
        assert_eq!(job(SVC).name, "app");
        assert_eq!(job(&SVC.replace("'app'", "'my-App2'")).name, "my-App2");
        for bad in ["App", "a", "1app", "my_app", "my.app"] {
            let e = job_err(&SVC.replace("'app'", &format!("'{bad}'")));
            assert!(
                e.starts_with(&format!(
                    "job[{bad}].name '{bad}' is not a valid service name"
                )),
                "{e}"
            );
            assert!(e.contains("^[a-z][a-zA-Z0-9-]+$"), "{e}");
        }
        // A default name taken from exec says where it came from.
        let e = job_err("exec: '/bin/app', port: 80, health: {interval: 5, ttl: 10}");
        assert!(
            e.starts_with("jobs[0].name '/bin/app' (taken from 'exec'; set 'name') is not a valid service name"),
            "{e}"
        );
        // Not advertised: any name.
        let j = cfg("{jobs: [{name: 'My_App', exec: 'x', port: 80, health: {interval: 1}}]}").jobs;
        assert_eq!(j[0].name, "My_App");
        assert_eq!(job("name: 'My_App', exec: 'x'").name, "My_App");
    }

    // -- when -----------------------------------------------------------------

    #[test]
    fn no_when_runs_at_startup() {
        let j = job("name: 'a', exec: 'x'");
        assert_eq!(j.when, When::Startup);
        assert_eq!(j.timeout, None);
        assert_eq!(j.restarts, Restarts::Never);
        assert_eq!(j.stop_timeout, Duration::ZERO);
    }

    #[test]
    fn interval_jobs() {
        let j = job("name: 'a', exec: 'x', when: {interval: '1s'}");
        assert_eq!(j.when, When::Interval(secs(1)));
        // Periodic: timeout defaults to the interval, restarts to unlimited.
        assert_eq!(j.timeout, Some(secs(1)));
        assert_eq!(j.restarts, Restarts::Unlimited);
        let j = job("name: 'a', exec: 'x', when: {interval: 10}, timeout: '2s', restarts: 'never'");
        assert_eq!(j.when, When::Interval(secs(10)));
        assert_eq!(j.timeout, Some(secs(2)));
        assert_eq!(j.restarts, Restarts::Never);
        assert_eq!(
            job("name: 'a', exec: 'x', when: {interval: '1ms'}").when,
            When::Interval(Duration::from_millis(1))
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', when: {interval: '999us'}"),
            "job[a].when.interval must be at least 1ms"
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', when: {interval: 0}"),
            "job[a].when.interval must be at least 1ms"
        );
    }

    #[test]
    fn interval_excludes_everything_else() {
        for (extra, msg) in [
            (
                "once: 'startup'",
                "job[a].when can have only one of 'interval', 'once' or 'each'",
            ),
            (
                "each: 'startup'",
                "job[a].when can have only one of 'interval', 'once' or 'each'",
            ),
            (
                "source: 'b'",
                "job[a].when.source cannot be combined with 'interval'",
            ),
            (
                "timeout: '5s'",
                "job[a].when.timeout cannot be combined with 'interval'",
            ),
        ] {
            let body = format!("name: 'a', exec: 'x', when: {{interval: '1s', {extra}}}");
            assert_eq!(job_err(&body), msg, "{extra}");
        }
    }

    #[test]
    fn once_and_each_exclude_each_other() {
        assert_eq!(
            err1(
                "{jobs: [{name: 'b', exec: 'y'}, {name: 'a', exec: 'x', \
                  when: {source: 'b', once: 'exitSuccess', each: 'exitFailed'}}]}"
            ),
            "job[a].when can have only one of 'interval', 'once' or 'each'"
        );
    }

    fn two_jobs(when: &str) -> String {
        format!(
            "{{consul: 'c:1', watches: [{{name: 'db', interval: 5}}], jobs: [\
               {{name: 'a', exec: 'x', when: {when}}}, {{name: 'b', exec: 'y'}}]}}"
        )
    }

    fn first_when(when: &str) -> When {
        cfg(&two_jobs(when)).jobs.remove(0).when
    }

    #[test]
    fn event_triggers() {
        // A source defined further down the list is fine.
        assert_eq!(
            first_when("{source: 'b', once: 'exitSuccess'}"),
            When::Event {
                source: "b".into(),
                code: EventCode::ExitSuccess,
                once: true,
                timeout: None
            }
        );
        assert_eq!(
            first_when("{source: 'watch.db', each: 'changed', timeout: '30s'}"),
            When::Event {
                source: "watch.db".into(),
                code: EventCode::Changed,
                once: false,
                timeout: Some(secs(30))
            }
        );
        // 3.x: a zero timeout is none.
        let When::Event { timeout, .. } = first_when("{source: 'b', once: 'healthy', timeout: 0}")
        else {
            panic!("event")
        };
        assert_eq!(timeout, None);
        // Every event name.
        for (name, code) in EventCode::NAMES {
            let source = if code.is_global() { "global" } else { "b" };
            let When::Event { code: c, .. } =
                first_when(&format!("{{source: '{source}', once: '{name}'}}"))
            else {
                panic!("event")
            };
            assert_eq!(c, code);
        }
    }

    #[test]
    fn global_events_imply_the_global_source() {
        for name in ["startup", "shutdown", "enterMaintenance", "exitMaintenance"] {
            let When::Event { source, code, .. } = first_when(&format!("{{once: '{name}'}}"))
            else {
                panic!("event")
            };
            assert_eq!(source, GLOBAL);
            assert_eq!(code.name(), name);
        }
        assert_eq!(
            err1(&two_jobs("{once: 'healthy'}")),
            "job[a].when.source is required: which job or watch publishes 'healthy'?"
        );
    }

    #[test]
    fn a_source_needs_once_or_each() {
        assert_eq!(
            err1(&two_jobs("{source: 'b'}")),
            "job[a].when needs 'once' or 'each' to name the event from 'b' \
             (only the signal sources SIGHUP and SIGUSR2 may omit them)"
        );
        assert_eq!(
            err1(&two_jobs("{}")),
            "job[a].when needs 'interval', or 'source' with 'once' or 'each'"
        );
    }

    #[test]
    fn signal_sources() {
        for sig in ["SIGHUP", "SIGUSR2"] {
            let expected = When::Event {
                source: sig.into(),
                code: EventCode::Signal,
                once: false,
                timeout: None,
            };
            assert_eq!(first_when(&format!("{{source: '{sig}'}}")), expected);
            // Fires on every signal, whatever once/each say.
            assert_eq!(
                first_when(&format!("{{source: '{sig}', once: 'exitSuccess'}}")),
                expected
            );
        }
        assert!(
            err1(&two_jobs("{source: 'SIGHUP', once: 'nope'}")).contains("unknown event 'nope'")
        );
    }

    #[test]
    fn a_source_must_name_something() {
        assert_eq!(
            err1(&two_jobs("{source: 'c', once: 'exitSuccess'}")),
            "job[a].when.source 'c' names no job, no watch ('watch.NAME'), not 'global' and \
             not a signal (SIGHUP, SIGUSR2)"
        );
        assert_eq!(
            err1(&two_jobs("{source: 'sighup', each: 'changed'}")),
            "job[a].when.source 'sighup' names no job, no watch ('watch.NAME'), not 'global' and \
             not a signal (SIGHUP, SIGUSR2); did you mean 'SIGHUP'?"
        );
        assert_eq!(
            err1(&two_jobs("{source: 'watch.dbs', each: 'changed'}")),
            "job[a].when.source names 'watch.dbs', but there is no watch named 'dbs'; did you mean 'watch.db'?"
        );
        assert!(
            err1(&two_jobs("{source: 'db', each: 'changed'}")).contains("did you mean 'watch.db'?")
        );
    }

    #[test]
    fn unknown_event_names() {
        assert_eq!(
            err1(&two_jobs("{source: 'b', once: 'exitsuccess'}")),
            "job[a].when.once: unknown event 'exitsuccess', did you mean 'exitSuccess'?"
        );
        assert!(
            err1(&two_jobs("{source: 'b', each: 'finished'}")).starts_with(
                "job[a].when.each: unknown event 'finished'; events are exitSuccess, exitFailed"
            )
        );
        assert_eq!(
            err1(&two_jobs("{source: 'b', once: 3}")),
            "job[a].when.once must be a string, got integer 3"
        );
    }

    #[test]
    fn triggers_that_can_never_fire_are_warned_about() {
        for (when, note) in [
            (
                "{source: 'global', once: 'healthy'}",
                "'global' never publishes 'healthy'",
            ),
            (
                "{source: 'watch.db', once: 'exitSuccess'}",
                "'watch.db' never publishes 'exitSuccess'",
            ),
            (
                "{source: 'b', each: 'changed'}",
                "'b' never publishes 'changed'",
            ),
            (
                "{source: 'b', once: 'startup'}",
                "'b' never publishes 'startup'",
            ),
        ] {
            let w = ok(&two_jobs(when)).1;
            assert!(w.iter().any(|w| w.contains(note)), "{when}: {w:?}");
        }
        assert!(ok(&two_jobs("{source: 'b', once: 'healthy'}")).1.is_empty());
    }

    // -- timeouts and restarts ----------------------------------------------------

    #[test]
    fn job_timeouts() {
        let j = job("name: 'a', exec: 'x', timeout: '500ms', stopTimeout: '10s'");
        assert_eq!(j.timeout, Some(Duration::from_millis(500)));
        assert_eq!(j.stop_timeout, secs(10));
        assert_eq!(
            job("name: 'a', exec: 'x', timeout: 2").timeout,
            Some(secs(2))
        );
        assert_eq!(job("name: 'a', exec: 'x', timeout: ''").timeout, None);
        assert_eq!(
            job_err("name: 'a', exec: 'x', timeout: '0'"),
            "job[a].timeout must be at least 1ms"
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', timeout: '10us'"),
            "job[a].timeout must be at least 1ms"
        );
        assert!(job_err("name: 'a', exec: 'x', stopTimeout: 'soon'")
            .starts_with("job[a].stopTimeout: invalid duration \"soon\""));
        assert_eq!(
            job_err("name: 'a', exec: 'x', stopTimeout: -5"),
            "job[a].stopTimeout must not be negative, got -5"
        );
        // A JSON fraction is seconds.
        assert_eq!(
            job("name: 'a', exec: 'x', timeout: 1.5").timeout,
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn restarts_values() {
        let r = |v: &str| job(&format!("name: 'a', exec: 'x', restarts: {v}")).restarts;
        assert_eq!(r("'never'"), Restarts::Never);
        assert_eq!(r("'unlimited'"), Restarts::Unlimited);
        assert_eq!(r("3"), Restarts::Count(3));
        assert_eq!(r("0"), Restarts::Count(0));
        assert_eq!(r("'3'"), Restarts::Count(3));
        assert_eq!(r("2.0"), Restarts::Count(2));
        let e = |v: &str| job_err(&format!("name: 'a', exec: 'x', restarts: {v}"));
        assert_eq!(e("-1"), "job[a].restarts must not be negative, got -1");
        assert_eq!(e("'-2'"), "job[a].restarts must not be negative, got -2");
        assert_eq!(
            e("'sometimes'"),
            "job[a].restarts must be \"never\", \"unlimited\" or a non-negative integer, got \"sometimes\""
        );
        assert_eq!(
            e("1.5"),
            "job[a].restarts must be \"never\", \"unlimited\" or a non-negative integer, got number 1.5"
        );
        assert_eq!(
            e("true"),
            "job[a].restarts must be \"never\", \"unlimited\" or a non-negative integer, got boolean true"
        );
        assert_eq!(e("5000000000"), "job[a].restarts is too large: 5000000000");
    }

    #[test]
    fn unlimited_restarts_with_each_is_an_error() {
        assert_eq!(
            err1(
                "{jobs: [{name: 'a', exec: 'x', restarts: 'unlimited', when: {source: 'b', each: 'exitSuccess'}}, \
                 {name: 'b', exec: 'y'}]}"
            ),
            "job[a].restarts 'unlimited' may not be used with 'when.each', \
             because it could start an unlimited number of processes"
        );
        // With once it is fine, and so is a count with each.
        let c = cfg("{jobs: [{name: 'a', exec: 'x', restarts: 'unlimited', when: {source: 'b', once: 'exitSuccess'}}, \
                     {name: 'c', exec: 'x', restarts: 2, when: {source: 'b', each: 'exitSuccess'}}, \
                     {name: 'b', exec: 'y'}]}");
        assert_eq!(c.jobs[0].restarts, Restarts::Unlimited);
        assert_eq!(c.jobs[1].restarts, Restarts::Count(2));
    }

    // -- health -------------------------------------------------------------------

    #[test]
    fn health_defaults_and_rules() {
        let j =
            job("name: 'a', exec: 'x', health: {exec: 'check --deep', interval: 5, ttl: '10s'}");
        let h = j.health.expect("health");
        assert_eq!(h.exec, Some(vec!["check".to_string(), "--deep".into()]));
        assert_eq!(h.interval, secs(5));
        assert_eq!(h.ttl, Some(secs(10)));
        // timeout defaults to the interval.
        assert_eq!(h.timeout, secs(5));
        assert!(!h.raw_logging);
        let h = job("name: 'a', exec: 'x', health: {interval: '1500ms', timeout: '1s', logging: {raw: true}}")
            .health
            .expect("health");
        assert_eq!(h.exec, None);
        assert_eq!(h.ttl, None);
        assert_eq!(h.interval, Duration::from_millis(1500));
        assert_eq!(h.timeout, secs(1));
        assert!(h.raw_logging);
        assert_eq!(
            job_err("name: 'a', exec: 'x', health: {exec: 'c', ttl: 5}"),
            "job[a].health.interval is required"
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', health: {exec: 'c', interval: 0}"),
            "job[a].health.interval must be > 0"
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', health: {interval: 1, ttl: 0}"),
            "job[a].health.ttl must be > 0"
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', health: {interval: 1, timeout: '0s'}"),
            "job[a].health.timeout must be > 0"
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', health: {interval: 1, exec: ''}"),
            "job[a].health.exec must name a command, got an empty one"
        );
    }

    #[test]
    fn ttl_is_required_when_advertised() {
        let e = err(&one_job(
            "name: 'app', exec: 'x', port: 80, health: {interval: 5, tll: 10}",
        ));
        assert_eq!(
            e,
            "job[app].health.ttl is required for an advertised job (it has a 'port' and consul is configured)\n\
             note: job[app].health.tll: unknown key, did you mean 'ttl'?"
        );
        // Not advertised (no consul): ttl may be left out.
        let (c, w) = ok("{jobs: [{name: 'app', exec: 'x', port: 80, health: {interval: 5}}]}");
        assert_eq!(c.jobs[0].health.as_ref().and_then(|h| h.ttl), None);
        assert_eq!(
            w,
            ["job[app] has a port but no consul backend is configured; it will not be registered"]
        );
    }

    // -- service fields -----------------------------------------------------------

    #[test]
    fn advertised_service() {
        let j = job(
            "name: 'app', exec: 'x', port: 8080, health: {interval: 5, ttl: 10}, \
             interfaces: ['eth9', 'eth1'], tags: ['a', 'b'], initial_status: 'warning', \
             consul: {enableTagOverride: true, deregisterCriticalServiceAfter: '10m'}",
        );
        assert!(j.is_advertised());
        let s = j.service.expect("service");
        assert_eq!(s.port, 8080);
        assert!(s.advertised);
        assert_eq!(s.address, Some("10.1.0.2".parse::<IpAddr>().expect("ip")));
        assert_eq!(s.interfaces, ["eth9", "eth1"]);
        assert_eq!(s.tags, ["a", "b"]);
        assert_eq!(s.initial_status.as_deref(), Some("warning"));
        assert!(s.enable_tag_override);
        assert_eq!(s.deregister_critical_service_after, Some(secs(600)));
    }

    #[test]
    fn service_defaults() {
        let s = job(SVC).service.expect("service");
        assert_eq!(s.interfaces, ["eth0:inet", "inet"]);
        assert_eq!(s.address, Some("10.0.0.2".parse::<IpAddr>().expect("ip")));
        assert!(s.tags.is_empty());
        assert_eq!(s.initial_status, None);
        assert!(!s.enable_tag_override);
        assert_eq!(s.deregister_critical_service_after, None);
        // A single string is a list of one.
        let s = job(&format!("{SVC}, interfaces: 'eth1', tags: 'solo'"))
            .service
            .expect("service");
        assert_eq!(s.interfaces, ["eth1"]);
        assert_eq!(s.tags, ["solo"]);
    }

    #[test]
    fn port_rules() {
        assert_eq!(
            job_err("name: 'app', exec: 'x', port: 80"),
            "job[app].health must be set if 'port' is set"
        );
        assert_eq!(
            job_err(&SVC.replace("port: 80", "port: 'http'")),
            "job[app].port must be an integer, got string \"http\""
        );
        // 3.x decoded numeric strings into ints.
        assert_eq!(
            job(&SVC.replace("port: 80", "port: '8080'"))
                .service
                .expect("svc")
                .port,
            8080
        );
        assert_eq!(
            job_err(&SVC.replace("port: 80", "port: 0")),
            "job[app].port must be from 1 to 65535, got 0"
        );
        assert_eq!(
            job_err(&SVC.replace("port: 80", "port: 70000")),
            "job[app].port must be from 1 to 65535, got 70000"
        );
        assert_eq!(
            job(&SVC.replace("port: 80", "port: 80.0"))
                .service
                .expect("svc")
                .port,
            80
        );
        assert_eq!(
            job_err(&SVC.replace("port: 80", "port: 80.5")),
            "job[app].port must be an integer, got number 80.5"
        );
    }

    #[test]
    fn initial_status_values() {
        for s in ["passing", "warning", "critical"] {
            let j = job(&format!("{SVC}, initial_status: '{s}'"));
            assert_eq!(j.service.and_then(|s| s.initial_status).as_deref(), Some(s));
        }
        assert_eq!(
            job_err(&format!("{SVC}, initial_status: 'ok'")),
            "job[app].initial_status must be one of 'passing', 'warning' or 'critical', got 'ok'"
        );
        // Without a port it is ignored (3.x accepted any value there).
        let (c, w) = ok(&one_job(
            "name: 'b', exec: 'x', initial_status: 'invalid-value'",
        ));
        assert_eq!(c.jobs[0].service, None);
        assert_eq!(
            w,
            ["job[b].initial_status is ignored: the job has no 'port'"]
        );
    }

    #[test]
    fn interfaces_are_resolved_only_when_needed() {
        let e = job_err(&format!("{SVC}, interfaces: ['eth7', 'eth8']"));
        assert_eq!(
            e,
            "job[app].interfaces: none of the interfaces [\"eth7\", \"eth8\"] matches an address on this \
             machine; interfaces present: eth0 (10.0.0.2), eth1 (10.1.0.2), lo (127.0.0.1)"
        );
        // Not advertised: not resolved, so a missing interface is fine...
        let j = cfg("{jobs: [{name: 'app', exec: 'x', port: 80, health: {interval: 1}, interfaces: 'eth7'}]}").jobs;
        assert_eq!(j[0].service.as_ref().and_then(|s| s.address), None);
        // ...but a malformed spec is still an error.
        let e = err1("{jobs: [{name: 'app', exec: 'x', port: 80, health: {interval: 1}, interfaces: 'eth0[x]'}]}");
        assert!(
            e.starts_with("job[app].interfaces: invalid interface spec \"eth0[x]\""),
            "{e}"
        );
        assert_eq!(
            job_err(&format!("{SVC}, interfaces: ['eth0', []]")),
            "job[app].interfaces[1] must be a string, got array"
        );
    }

    #[test]
    fn job_consul_extras() {
        assert_eq!(
            job_err(&format!("{SVC}, consul: {{enableTagOverride: 'nope'}}")),
            "job[app].consul.enableTagOverride must be true or false, got \"nope\""
        );
        assert!(job_err(&format!(
            "{SVC}, consul: {{deregisterCriticalServiceAfter: 'nope'}}"
        ))
        .starts_with("job[app].consul.deregisterCriticalServiceAfter: invalid duration \"nope\""));
        let s = job(&format!(
            "{SVC}, consul: {{enableTagOverride: 'true', deregisterCriticalServiceAfter: 90}}"
        ))
        .service
        .expect("svc");
        assert!(s.enable_tag_override);
        assert_eq!(s.deregister_critical_service_after, Some(secs(90)));
    }

    #[test]
    fn service_fields_without_a_port_are_ignored() {
        let w = ok(&one_job(
            "name: 'a', exec: 'x', tags: ['t'], interfaces: 'eth0', consul: {}",
        ))
        .1;
        assert_eq!(
            w,
            [
                "job[a].tags is ignored: the job has no 'port'",
                "job[a].interfaces is ignored: the job has no 'port'",
                "job[a].consul is ignored: the job has no 'port'",
            ]
        );
    }

    #[test]
    fn raw_logging() {
        assert!(job("name: 'a', exec: 'x', logging: {raw: true}").raw_logging);
        assert!(!job("name: 'a', exec: 'x', logging: {}").raw_logging);
        assert_eq!(
            job_err("name: 'a', exec: 'x', logging: {raw: 2}"),
            "job[a].logging.raw must be true or false, got integer 2"
        );
    }

    #[test]
    fn a_job_with_nothing_to_do_is_warned_about() {
        let w = ok(&one_job("name: 'idle'")).1;
        assert_eq!(
            w,
            ["job[idle] has neither 'exec' nor 'port': it does nothing"]
        );
    }

    #[test]
    fn port_without_consul_warns_once() {
        let (c, w) =
            ok("{jobs: [{name: 'app', exec: 'x', port: 80, health: {interval: 5, ttl: 10}}]}");
        let s = c.jobs[0].service.as_ref().expect("service");
        assert!(!s.advertised);
        assert_eq!(s.address, None);
        assert!(!c.jobs[0].is_advertised());
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("no consul backend is configured"));
    }

    // -- watches ------------------------------------------------------------------

    #[test]
    fn watches_section() {
        let c = cfg(
            "{consul: 'c:1', watches: [{name: 'db', interval: 5, tag: 'primary', dc: 'east'}, \
                     {name: 'cache', interval: '500ms'}]}",
        );
        assert_eq!(
            c.watches,
            [
                WatchConfig {
                    name: "db".into(),
                    interval: secs(5),
                    tag: Some("primary".into()),
                    dc: Some("east".into())
                },
                WatchConfig {
                    name: "cache".into(),
                    interval: Duration::from_millis(500),
                    tag: None,
                    dc: None
                },
            ]
        );
        let e = |w: &str| err1(&format!("{{consul: 'c:1', watches: [{w}]}}"));
        assert_eq!(e("{interval: 5}"), "watches[0].name is required");
        assert_eq!(e("'db'"), "watches[0] must be an object, got string \"db\"");
        assert_eq!(e("{name: 'db'}"), "watch[db].interval is required");
        assert_eq!(
            e("{name: 'db', interval: 0}"),
            "watch[db].interval must be > 0"
        );
        assert!(e("{name: 'Db', interval: 1}")
            .starts_with("watch[Db].name 'Db' is not a valid service name"));
        assert_eq!(
            e("{name: 'db', interval: 1}, {name: 'db', interval: 2}"),
            "watch[db] is defined more than once; watch names must be unique"
        );
        assert_eq!(
            e("{name: 'db', interval: 1, tag: 3}"),
            "watch[db].tag must be a string, got integer 3"
        );
    }

    #[test]
    fn watches_need_consul() {
        assert_eq!(
            err1("{watches: [{name: 'db', interval: 5}]}"),
            "watches need a consul backend: add a top-level 'consul' (e.g. consul: \"localhost:8500\") \
             or set CONSUL_HTTP_ADDR"
        );
        // An empty list is fine.
        assert!(cfg("{watches: []}").watches.is_empty());
    }

    // -- telemetry ----------------------------------------------------------------

    #[test]
    fn telemetry_defaults() {
        let t = cfg("{telemetry: {}}").telemetry.expect("telemetry");
        assert_eq!(t.port, 9090);
        assert_eq!(t.interfaces, ["eth0:inet", "inet"]);
        assert_eq!(t.address, "10.0.0.2".parse::<IpAddr>().expect("ip"));
        assert!(t.tags.is_empty() && t.metrics.is_empty());
        let t = cfg("{telemetry: {port: 8000, interfaces: ['eth9', 'eth1'], tags: ['x']}}")
            .telemetry
            .expect("telemetry");
        assert_eq!(t.port, 8000);
        assert_eq!(t.address, "10.1.0.2".parse::<IpAddr>().expect("ip"));
        assert_eq!(t.tags, ["x"]);
        // Resolution is always needed: the listener binds there.
        assert!(err1("{telemetry: {interfaces: 'en0'}}")
            .starts_with("telemetry.interfaces: none of the interfaces [\"en0\"] matches"));
        assert_eq!(
            err1("{telemetry: {port: -1}}"),
            "telemetry.port must be from 1 to 65535, got -1"
        );
    }

    #[test]
    fn the_telemetry_service_name_is_reserved() {
        assert_eq!(
            err1("{telemetry: {}, jobs: [{name: 'containerpilot', exec: 'x'}]}"),
            "job[containerpilot]: the name 'containerpilot' belongs to the telemetry service when \
             'telemetry' is configured; rename the job"
        );
        assert_eq!(
            cfg("{jobs: [{name: 'containerpilot', exec: 'x'}]}").jobs[0].name,
            "containerpilot"
        );
    }

    fn metric(body: &str) -> MetricConfig {
        cfg(&format!("{{telemetry: {{metrics: [{{{body}}}]}}}}"))
            .telemetry
            .expect("telemetry")
            .metrics
            .remove(0)
    }

    fn metric_err(body: &str) -> String {
        err1(&format!("{{telemetry: {{metrics: [{{{body}}}]}}}}"))
    }

    #[test]
    fn metric_names_and_types() {
        let m = metric(
            "namespace: 'app', subsystem: 'http', name: 'requests', help: 'count', type: 'counter'",
        );
        assert_eq!(m.name, "app_http_requests");
        assert_eq!(m.help, "count");
        assert_eq!(m.kind, MetricKind::Counter);
        assert_eq!((m.buckets, m.objectives), (None, None));
        // Empty parts are left out.
        assert_eq!(
            metric("namespace: 'app', name: 'up', type: 'gauge'").name,
            "app_up"
        );
        assert_eq!(
            metric("subsystem: 's', name: 'up', type: 'gauge'").name,
            "s_up"
        );
        let m = metric("name: 'up', type: 'gauge'");
        assert_eq!((m.name.as_str(), m.help.as_str()), ("up", ""));
        assert_eq!(
            metric("name: 'h', type: 'histogram'").kind,
            MetricKind::Histogram
        );
        assert_eq!(
            metric("name: 's', type: 'summary'").kind,
            MetricKind::Summary
        );
        assert_eq!(
            metric_err("type: 'gauge'"),
            "telemetry.metrics[0].name is required"
        );
        assert_eq!(
            metric_err("name: 'x'"),
            "telemetry.metrics[0].type is required"
        );
        assert_eq!(
            metric_err("name: 'x', type: 'meter'"),
            "telemetry.metrics[0].type must be one of 'counter', 'gauge', 'histogram' or 'summary', got 'meter'"
        );
        assert_eq!(
            metric_err("namespace: 'my-app', name: 'x', type: 'gauge'"),
            "telemetry.metrics[0]: 'my-app_x' is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
        );
        assert!(metric_err("name: '9lives', type: 'gauge'")
            .contains("not a valid Prometheus metric name"));
        assert_eq!(
            metric_err("name: 'process_open_fds', type: 'gauge'"),
            "telemetry.metrics[0]: 'process_open_fds' is a metric containerpilot exports itself; choose another name"
        );
        assert_eq!(
            err1("{telemetry: {metrics: [{name: 'a_b', type: 'gauge'}, {namespace: 'a', name: 'b', type: 'counter'}]}}"),
            "telemetry.metrics[1]: the metric 'a_b' is defined more than once; metric names must be unique"
        );
    }

    #[test]
    fn histogram_buckets() {
        let m = metric("name: 'h', type: 'histogram', buckets: [0.1, 1, 10]");
        assert_eq!(m.buckets, Some(vec![0.1, 1.0, 10.0]));
        assert_eq!(
            metric_err("name: 'h', type: 'histogram', buckets: [1, 1]"),
            "telemetry.metrics[0].buckets must be strictly increasing"
        );
        assert_eq!(
            metric_err("name: 'h', type: 'histogram', buckets: []"),
            "telemetry.metrics[0].buckets must not be empty"
        );
        assert_eq!(
            metric_err("name: 'h', type: 'histogram', buckets: [1, 'x']"),
            "telemetry.metrics[0].buckets[1] must be a number, got string \"x\""
        );
        assert_eq!(
            metric_err("name: 'h', type: 'histogram', buckets: [1, Infinity]"),
            "telemetry.metrics[0].buckets[1] must be a finite number"
        );
        assert_eq!(
            metric_err("name: 'g', type: 'gauge', buckets: [1]"),
            "telemetry.metrics[0].buckets is only for histograms"
        );
    }

    #[test]
    fn summary_objectives() {
        let m = metric("name: 's', type: 'summary', objectives: {'0.99': 0.001, '0.5': 0.05}");
        assert_eq!(m.objectives, Some(vec![(0.5, 0.05), (0.99, 0.001)]));
        assert_eq!(
            metric_err("name: 's', type: 'summary', objectives: {'1.5': 0.1}"),
            "telemetry.metrics[0].objectives.1.5: the quantile must be a number from 0 to 1"
        );
        assert_eq!(
            metric_err("name: 's', type: 'summary', objectives: {'0.5': 2}"),
            "telemetry.metrics[0].objectives.0.5: the allowed error must be from 0 to 1, got 2"
        );
        assert_eq!(
            metric_err("name: 's', type: 'summary', objectives: {'0.5': 0.1, '0.50': 0.2}"),
            "telemetry.metrics[0].objectives.0.50: the quantile 0.5 is given more than once"
        );
        assert!(
            metric_err("name: 's', type: 'summary', objectives: [[0.5, 0.05]]").starts_with(
                "telemetry.metrics[0].objectives must be an object of quantile to allowed error"
            )
        );
        assert_eq!(
            metric_err("name: 'c', type: 'counter', objectives: {'0.5': 0.05}"),
            "telemetry.metrics[0].objectives is only for summaries"
        );
    }

    // -- unknown and duplicate keys ----------------------------------------------------

    #[test]
    fn unknown_keys_everywhere_are_warnings_with_suggestions() {
        let (_, w) = ok(
            "{ consul: {address: 'c:1', tokn: 'x', tls: {verfy: true}}, \
               logging: {levl: 'INFO'}, control: {sockt: '/s'}, stoptimeout: 5, job: [], \
               jobs: [{name: 'app', exec: 'x', port: 80, restart: 'never', \
                       when: {once: 'startup', tiemout: 1}, \
                       health: {interval: 5, ttl: 10, tll: 1, logging: {rwa: true}}, \
                       consul: {enableTagOverides: true}, logging: {Raw: true}}], \
               watches: [{name: 'db', interval: 5, datacenter: 'x'}], \
               telemetry: {prot: 1, metrics: [{name: 'm', type: 'gauge', hepl: 'x'}]}, \
               extra: {} }",
        );
        let expected = [
            "consul.tokn: unknown key, did you mean 'token'?",
            "consul.tls.verfy: unknown key, did you mean 'verify'?",
            "consul.tls is set, but the Consul agent's address c:1 is http: the tls settings \
             are not used (give an https:// address or scheme: \"https\")",
            "logging.levl: unknown key, did you mean 'level'?",
            "control.sockt: unknown key, did you mean 'socket'?",
            "stoptimeout: unknown key, did you mean 'stopTimeout'?",
            "job: unknown key, did you mean 'jobs'?",
            "extra: unknown key",
            "job[app].restart: unknown key, did you mean 'restarts'?",
            "job[app].when.tiemout: unknown key, did you mean 'timeout'?",
            "job[app].health.tll: unknown key, did you mean 'ttl'?",
            "job[app].health.logging.rwa: unknown key, did you mean 'raw'?",
            "job[app].consul.enableTagOverides: unknown key, did you mean 'enableTagOverride'?",
            "job[app].logging.Raw: unknown key, did you mean 'raw'?",
            "watch[db].datacenter: unknown key",
            "telemetry.prot: unknown key, did you mean 'port'?",
            "telemetry.metrics[0].hepl: unknown key, did you mean 'help'?",
        ];
        for e in expected {
            assert!(w.iter().any(|w| w == e), "missing {e:?} in {w:#?}");
        }
        assert_eq!(w.len(), expected.len(), "{w:#?}");
    }

    #[test]
    fn unknown_key_hints_and_index_paths() {
        let w = warnings("{jobs: [{name: 'a', exec: 'x'}, {exec: 'y', nmae: 'b'}]}");
        assert_eq!(w, ["jobs[1].nmae: unknown key, did you mean 'name'?"]);
        let w = warnings("{telemetry: {sensors: []}}");
        assert!(
            w[0].starts_with("telemetry.sensors: unknown key (sensors were removed in 3.x"),
            "{w:?}"
        );
        let e = err(&two_jobs("{source: 'b', event: 'exitSuccess'}"));
        assert!(e.starts_with("job[a].when needs 'once' or 'each'"), "{e}");
        assert!(
            e.contains(
                "\nnote: job[a].when.event: unknown key (3.x names the event with 'once' or 'each'"
            ),
            "{e}"
        );
    }

    #[test]
    fn duplicate_keys_warn_and_the_last_wins() {
        let (c, w) = ok("{stopTimeout: 1, jobs: [{name: 'a', exec: 'x', when: {interval: 1}, when: {interval: 2}}], stopTimeout: 2}");
        assert_eq!(c.stop_timeout, secs(2));
        assert_eq!(c.jobs[0].when, When::Interval(secs(2)));
        assert_eq!(
            w,
            [
                "stopTimeout: duplicate key; the last value is used",
                "job[a].when: duplicate key; the last value is used",
            ]
        );
        // The name that wins is the last one too.
        assert_eq!(job("name: 'a', name: 'b', exec: 'x'").name, "b");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("tll", &["ttl", "timeout"]), Some("ttl"));
        assert_eq!(suggest("INTERVAL", &["interval"]), Some("interval"));
        assert_eq!(suggest("tlt", &["ttl"]), Some("ttl"));
        assert_eq!(suggest("xyz", &["ttl"]), None);
        // Two edits on a two-letter key would match anything.
        assert_eq!(suggest("ab", &["dc"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }

    // -- no panics --------------------------------------------------------------------

    /// Replace every value in a full config, one at a time, with values of every
    /// type: validation may fail but must never panic.
    #[test]
    fn no_panics_on_any_value_anywhere() {
        let full = tree::parse(
            "{consul: {address: 'c:1', scheme: 'http', token: 't', tls: {verify: true, cafile: 'x'}},
              logging: {level: 'info', format: 'json', output: 'stderr'},
              control: {socket: '/s'}, stopTimeout: '5s',
              watches: [{name: 'db', interval: 5, tag: 't', dc: 'd'}],
              jobs: [{name: 'app', exec: ['/bin/app', 'x'], port: 80, tags: ['t'], interfaces: ['eth0'],
                      initial_status: 'passing', restarts: 3, timeout: '1s', stopTimeout: 2,
                      when: {source: 'watch.db', each: 'changed', timeout: 5},
                      health: {exec: 'check', interval: 5, ttl: 10, timeout: 1, logging: {raw: false}},
                      consul: {enableTagOverride: true, deregisterCriticalServiceAfter: '1m'},
                      logging: {raw: true}},
                     {exec: 'x', when: {interval: '1s'}}],
              telemetry: {port: 9090, interfaces: 'eth0', tags: ['x'],
                          metrics: [{namespace: 'a', subsystem: 'b', name: 'c', help: 'h', type: 'histogram', buckets: [1, 2]},
                                    {name: 's', type: 'summary', objectives: {'0.5': 0.05}}]}}",
        )
        .expect("parses");
        assert!(validate(&full, &HashMap::new(), &machine()).is_ok());
        let junk = [
            Node::Null,
            Node::Bool(true),
            Node::Int(-1),
            Node::Int(i64::MAX),
            Node::Float(f64::NAN),
            Node::Float(-0.5),
            Node::Float(1e300),
            Node::Str(String::new()),
            Node::Str("-".into()),
            Node::Str("\u{0}".into()),
            Node::Array(vec![]),
            Node::Array(vec![Node::Null]),
            Node::Object(vec![]),
        ];
        let mut count = 0;
        for path in paths(&full) {
            for j in &junk {
                let mut mutated = full.clone();
                *node_at(&mut mutated, &path) = j.clone();
                let _ = validate(&mutated, &HashMap::new(), &machine());
                let _ = validate(&mutated, &HashMap::new(), &[]);
                count += 1;
            }
        }
        assert!(count > 500, "{count}");
    }

    /// Every node's path as indices into arrays and object pairs.
    fn paths(node: &Node) -> Vec<Vec<usize>> {
        let children: Vec<&Node> = match node {
            Node::Array(items) => items.iter().collect(),
            Node::Object(pairs) => pairs.iter().map(|(_, v)| v).collect(),
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for (i, child) in children.into_iter().enumerate() {
            out.push(vec![i]);
            for mut p in paths(child) {
                p.insert(0, i);
                out.push(p);
            }
        }
        out
    }

    fn node_at<'n>(node: &'n mut Node, path: &[usize]) -> &'n mut Node {
        match path.split_first() {
            None => node,
            Some((&i, rest)) => match node {
                Node::Array(items) => node_at(&mut items[i], rest),
                Node::Object(pairs) => node_at(&mut pairs[i].1, rest),
                _ => unreachable!("paths only lead through containers"),
            },
        }
    }
}
