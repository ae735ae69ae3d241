//! Node tree → typed `Config` (SPEC §2.3): every rule and default of the
//! schema, with errors that name the path (`job[app].health.ttl must be > 0`)
//! and warnings for keys this version does not know.
//!
//! One small function per section, each reading its object through
//! [`obj::Obj`], which warns about unknown and repeated keys as it is opened.
//! The first error ends validation; the warnings gathered so far are appended
//! to it as `note:` lines, because a typo warning (`health.tll`) often
//! explains the error (`health.ttl is required`).
//!
//! No input may cost more than a small multiple of its size (issue #12): the
//! did-you-mean suggestions skip long strings and share one budget, at most
//! `MAX_WARNINGS` warnings are kept, values and long names are quoted cut
//! short, and the counts that would multiply (jobs, arguments) are capped.
//!
//! Compatibility with ContainerPilot 3 (`jobs/config.go`, `watches/config.go`,
//! `telemetry/*_config.go`, `discovery/config.go`): 3.x decoded with
//! mapstructure's weak typing, so numeric strings are accepted where a number
//! is expected (durations, `restarts`, ports), Go's `strconv.ParseBool`
//! strings where a boolean is, and an empty string counts as absent, as a Go
//! zero value did. Unknown keys are warnings here (3.x refused them), so every
//! config that ran under 3.x still runs.
//!
//! This module holds the entry point, the top level (`logging`, `control`,
//! `stopTimeout`) and the refusal of the 2.x schema; each other section has
//! its own file: `consul`, `watches`, `jobs` (with `when` and `health`),
//! `telemetry`, and `obj` for reading values and the unknown-key warnings.

mod consul;
mod health;
mod jobs;
mod obj;
mod telemetry;
#[cfg(test)]
mod testutil;
mod watches;
mod when;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use self::obj::{did_you_mean, invalid, one_of, shown, Obj};
use super::interfaces::IfAddr;
use super::tree::Node;
use super::{Config, ConfigError, ControlConfig, Warning, DEFAULT_SOCKET};
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
const LOGGING_KEYS: &[&str] = &["level", "format", "output"];
const CONTROL_KEYS: &[&str] = &["socket"];

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

const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Names longer than this are not quoted in paths (`jobs[i]`, `watches[i]`
/// stand in), so that a hostile name is not repeated in every message about
/// its job or watch.
const MAX_LABELLED_NAME: usize = 64;
/// Warnings kept (and printed); the rest are counted. A real config has a
/// handful; a generated one with a million unknown keys would otherwise
/// cost memory and output in proportion.
const MAX_WARNINGS: usize = 1000;
/// What did-you-mean suggestions may cost over a whole validation, in
/// candidates looked at, their bytes and edit-distance cells filled: a few
/// tens of milliseconds at most.
const SUGGEST_BUDGET: usize = 1 << 22;

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
        left_out: 0,
        suggest_budget: SUGGEST_BUDGET,
    };
    let result = v.config(root);
    if v.left_out > 0 {
        let n = v.left_out;
        v.warnings.push(Warning(format!(
            "{n} more warning{} not shown (only the first {MAX_WARNINGS} are)",
            if n == 1 { "" } else { "s" }
        )));
    }
    match result {
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
    /// Warnings beyond `MAX_WARNINGS`, counted, not kept.
    left_out: usize,
    /// What did-you-mean suggestions may still cost (see `obj::suggest_within`).
    suggest_budget: usize,
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

    /// Whether one more warning will be kept; counts it as left out if not.
    /// Callers whose message is costly to build (a did-you-mean) ask first.
    fn room_for_warning(&mut self) -> bool {
        if self.warnings.len() < MAX_WARNINGS {
            return true;
        }
        self.left_out += 1;
        false
    }

    fn warn(&mut self, msg: String) {
        if self.room_for_warning() {
            self.warnings.push(Warning(msg));
        }
    }

    fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
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
            const LEVELS: &[&str] = &["DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC"];
            invalid(format!(
                "{} must be one of DEBUG, INFO, WARN, ERROR, FATAL or PANIC, got '{}'{}",
                o.at("level"),
                shown(level),
                did_you_mean(level, LEVELS)
            ))
        })?;
    }
    if let Some(format) = o.str("format")? {
        cfg.format = match format.to_ascii_lowercase().as_str() {
            "default" => Format::Default,
            "text" => Format::Text,
            "json" => Format::Json,
            _ => {
                return Err(one_of(
                    &o.at("format"),
                    format,
                    &["default", "text", "json"],
                ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree;
    use crate::config::validate::testutil::*;
    use crate::config::{Restarts, When};

    // -- top level ---------------------------------------------------------------

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
            "stopTimeout must be >= 0, got -1"
        );
        assert_eq!(
            err1("{stopTimeout: '-5s'}"),
            "stopTimeout must be >= 0, got \"-5s\""
        );
        assert_eq!(
            err1("{stopTimeout: -0.5}"),
            "stopTimeout must be >= 0, got -0.5"
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

    // -- old schema --------------------------------------------------------------

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

    // -- logging and control -----------------------------------------------------

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
        assert_eq!(
            err1("{logging: {level: 'eror'}}"),
            "logging.level must be one of DEBUG, INFO, WARN, ERROR, FATAL or PANIC, got \
             'eror'; did you mean 'ERROR'?"
        );
        assert_eq!(
            err1("{logging: {format: 'jsno'}}"),
            "logging.format must be one of 'default', 'text' or 'json', got 'jsno'; \
             did you mean 'json'?"
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

    // -- no panics ---------------------------------------------------------------

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
                     {exec: 'x', when: {interval: '1s'}},
                     {name: 'web', exec: 'w', restarts: 2, restartDelay: '1s', restartDelayMax: '1m',
                      shutdownOn: 'exitFailed', notify: {watchdog: '10s'}, logging: {keep: 10},
                      when: {all: ['app', 'watch.db'], once: 'healthy', timeout: 30},
                      health: {http: 'http://[::1]:8080/h?x', interval: 5, startPeriod: 3, threshold: 2}},
                     {name: 'db', exec: 'd', notify: true,
                      when: {any: ['app', 'web'], each: 'unhealthy'},
                      health: {tcp: 'db:5432', interval: 5}}],
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
