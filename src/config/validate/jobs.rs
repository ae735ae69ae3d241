//! The `jobs` section (SPEC §2.3, §3.7): names (given or taken from `exec`)
//! and duplicates, `exec`, timeouts, `restarts` and `restartDelay`,
//! `shutdownOn`, `notify`, the discovery fields of a job with a `port`, and
//! `logging`. `when` and `health` have their own modules.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::obj::{
    describe, expected, explicit_name, invalid, list_item, one_of, parse_bool, shown, Obj,
};
use super::{Result, Validator, MAX_LABELLED_NAME};
use crate::config::duration::go_string;
use crate::config::interfaces;
use crate::config::tree::Node;
use crate::config::{
    JobConfig, NotifyConfig, Restarts, ServiceConfig, ShutdownOn, WatchConfig, When,
    DEFAULT_LOG_KEEP, DEFAULT_RESTART_DELAY_MAX,
};

const JOB_KEYS: &[&str] = &[
    "name",
    "exec",
    "when",
    "timeout",
    "stopTimeout",
    "restarts",
    "restartDelay",
    "restartDelayMax",
    "shutdownOn",
    "health",
    "notify",
    "port",
    "initial_status",
    "tags",
    "interfaces",
    "consul",
    "logging",
];
const JOB_CONSUL_KEYS: &[&str] = &["enableTagOverride", "deregisterCriticalServiceAfter"];
const JOB_LOGGING_KEYS: &[&str] = &["raw", "keep"];
const NOTIFY_KEYS: &[&str] = &["watchdog"];
const SHUTDOWN_ON: &[&str] = &["exitFailed", "exitSuccess", "exit"];

/// More jobs than this are refused. Each job gets a thread (two with a health
/// check) and its validated form costs about half a kilobyte whatever its
/// size in the file, so a generated file of a hundred thousand tiny jobs
/// would cost forty times its size before failing at run time anyway.
const MAX_JOBS: usize = 10_000;
/// The most arguments an `exec` may have. The kernel refuses an argv much
/// over 2 MiB anyway, and a string of one-letter words split into arguments
/// would cost some thirty times its size.
const MAX_ARGS: usize = 10_000;
/// The shortest `when.interval` and job `timeout` (3.x `taskMinDuration`).
pub(super) const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The most output lines a job may keep (`logging.keep`): at most 1 KiB
/// each, so a job's buffer stays under about 100 MiB whatever the config says.
const MAX_LOG_KEEP: i128 = 100_000;

/// What the job section needs to know about the rest of the config.
pub(super) struct Context<'a> {
    pub(super) discovery: bool,
    pub(super) jobs: &'a HashSet<String>,
    pub(super) watches: &'a HashSet<String>,
}

/// A job's name as pass 1 finds it.
struct Named {
    name: String,
    /// Given as `name`, not taken from `exec`.
    explicit: bool,
}

impl Validator<'_> {
    pub(super) fn jobs(
        &mut self,
        top: &Obj,
        discovery: bool,
        watches: &[WatchConfig],
    ) -> Result<Vec<JobConfig>> {
        let Some(list) = top.array("jobs")? else {
            return Ok(Vec::new());
        };
        if list.len() > MAX_JOBS {
            return Err(invalid(format!(
                "jobs: {} jobs is more than the {MAX_JOBS} supported",
                list.len()
            )));
        }
        // Pass 1: every name first, so a `when.source` may name a job further down.
        let mut named: Vec<Named> = Vec::with_capacity(list.len());
        for (i, node) in list.iter().enumerate() {
            let index = format!("jobs[{i}]");
            if !matches!(node, Node::Object(_)) {
                return Err(expected(&index, "an object", node));
            }
            let explicit = explicit_name(&index, node)?;
            let name = match (explicit.clone(), node.get("exec")) {
                (Some(n), _) => n,
                // 3.x: `cfg.Name = cmd.Exec`, the first word as written.
                (None, Some(e)) => first_word(&format!("{index}.exec"), e)?,
                (None, None) => {
                    return Err(invalid(format!("{index} needs a 'name' or an 'exec'")))
                }
            };
            named.push(Named {
                name,
                explicit: explicit.is_some(),
            });
        }
        let shared = self.duplicates(&named);
        let names: HashSet<String> = named.iter().map(|n| n.name.clone()).collect();
        let watch_names: HashSet<String> = watches.iter().map(|w| w.name.clone()).collect();
        let ctx = Context {
            discovery,
            jobs: &names,
            watches: &watch_names,
        };
        let mut jobs = Vec::with_capacity(list.len());
        for (i, (node, n)) in list.iter().zip(named).enumerate() {
            // SPEC §3.7: `jobs[i]` whenever the name is missing or shared.
            let label =
                if n.explicit && !shared.contains(&n.name) && n.name.len() <= MAX_LABELLED_NAME {
                    format!("job[{}]", n.name)
                } else {
                    format!("jobs[{i}]")
                };
            jobs.push(self.job(node, label, n, &ctx)?);
        }
        Ok(jobs)
    }

    /// Two jobs may share a name, as in 3.x (SPEC §2.3): one warning per
    /// shared name, listing every position. Returns the shared names.
    fn duplicates(&mut self, named: &[Named]) -> HashSet<String> {
        let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        for (i, n) in named.iter().enumerate() {
            let at = positions.entry(&n.name).or_default();
            if at.is_empty() {
                order.push(&n.name);
            }
            at.push(i);
        }
        let mut shared = HashSet::new();
        for name in order {
            let at = &positions[name];
            if at.len() < 2 {
                continue;
            }
            let list: Vec<String> = at.iter().map(|i| format!("jobs[{i}]")).collect();
            let (head, last) = list.split_at(list.len() - 1);
            let both = if at.len() == 2 { "both" } else { "all" };
            let mut msg = format!(
                "{} and {} are {both} named '{}'",
                head.join(", "),
                last[0],
                shown(name)
            );
            if at.iter().any(|&i| !named[i].explicit) {
                msg.push_str(" (taken from 'exec' where 'name' is not set)");
            }
            self.warn(msg);
            shared.insert(name.to_string());
        }
        shared
    }

    fn job(
        &mut self,
        node: &Node,
        label: String,
        named: Named,
        ctx: &Context,
    ) -> Result<JobConfig> {
        let Named {
            name,
            explicit: explicit_name,
        } = named;
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
        let (restart_delay, restart_delay_max) = restart_delay(&o)?;
        let shutdown_on = self.shutdown_on(&o, exec.is_some(), restarts)?;
        let health = self.health(&o, advertised)?;
        let notify = self.notify(&o)?;
        if notify.is_some() && exec.is_none() {
            return Err(invalid(format!(
                "{} needs 'exec': only a process can send READY=1",
                o.at("notify")
            )));
        }
        if port.is_some() && health.is_none() {
            let why = if notify.is_some() {
                " (notify does not replace it: its checks heartbeat the TTL)"
            } else {
                ""
            };
            return Err(invalid(format!(
                "{} must be set if 'port' is set{why}",
                o.at("health")
            )));
        }
        let service = self.service(&o, port, advertised)?;
        let (raw_logging, log_keep) = self.job_logging(&o)?;
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
            restart_delay,
            restart_delay_max,
            shutdown_on,
            health,
            notify,
            service,
            raw_logging,
            log_keep,
        })
    }

    /// `shutdownOn` (beyond 3.x): which exit, not restarted, ends containerpilot.
    fn shutdown_on(
        &mut self,
        job: &Obj,
        has_exec: bool,
        restarts: Restarts,
    ) -> Result<Option<ShutdownOn>> {
        let path = job.at("shutdownOn");
        let on = match job.str("shutdownOn")? {
            None => return Ok(None),
            Some("exitFailed") => ShutdownOn::ExitFailed,
            Some("exitSuccess") => ShutdownOn::ExitSuccess,
            Some("exit") => ShutdownOn::Exit,
            Some(other) => return Err(one_of(&path, other, SHUTDOWN_ON)),
        };
        if !has_exec {
            return Err(invalid(format!(
                "{path} needs 'exec': a job without a process never exits"
            )));
        }
        if on == ShutdownOn::ExitFailed && restarts == Restarts::Unlimited {
            // SPEC §3.7: a failed process is always restarted, so this never fires.
            self.warn(format!(
                "{path} 'exitFailed' can never fire: with restarts \"unlimited\" \
                 a failed process is always restarted"
            ));
        }
        Ok(Some(on))
    }

    /// `notify: true | false | {watchdog: DURATION}` (beyond 3.x).
    fn notify(&mut self, job: &Obj) -> Result<Option<NotifyConfig>> {
        let path = job.at("notify");
        match job.get("notify") {
            None => Ok(None),
            Some(Node::Object(_)) => {
                let Some(n) = self.obj_opt(job, "notify", NOTIFY_KEYS)? else {
                    return Ok(None);
                };
                let watchdog = match n.duration("watchdog")? {
                    Some(Duration::ZERO) => {
                        return Err(invalid(format!("{} must be > 0", n.at("watchdog"))))
                    }
                    // WATCHDOG_USEC is whole microseconds; systemd reads 0 as "off".
                    Some(d) if d < MIN_INTERVAL => {
                        return Err(invalid(format!(
                            "{} must be at least 1ms",
                            n.at("watchdog")
                        )))
                    }
                    d => d,
                };
                Ok(Some(NotifyConfig { watchdog }))
            }
            Some(Node::Bool(b)) => Ok(b.then_some(NotifyConfig { watchdog: None })),
            Some(n @ Node::Str(s)) => match parse_bool(s) {
                Some(b) => Ok(b.then_some(NotifyConfig { watchdog: None })),
                None if s.is_empty() => Ok(None),
                None => Err(expected(&path, "true, false or {watchdog: DURATION}", n)),
            },
            Some(n) => Err(expected(&path, "true, false or {watchdog: DURATION}", n)),
        }
    }

    /// A job's `logging: {raw, keep}`: whether its process inherits our
    /// descriptors, and how many output lines it keeps (none when raw).
    fn job_logging(&mut self, job: &Obj) -> Result<(bool, usize)> {
        let Some(l) = self.obj_opt(job, "logging", JOB_LOGGING_KEYS)? else {
            return Ok((false, DEFAULT_LOG_KEEP));
        };
        let raw = l.bool("raw")?.unwrap_or(false);
        let keep = match l.integer("keep")? {
            None => DEFAULT_LOG_KEEP,
            Some(n) if n < 0 => {
                return Err(invalid(format!("{} must be >= 0, got {n}", l.at("keep"))))
            }
            Some(n) if n > MAX_LOG_KEEP => {
                return Err(invalid(format!(
                    "{} must be at most {MAX_LOG_KEEP}, got {n}",
                    l.at("keep")
                )))
            }
            Some(n) => usize::try_from(n).unwrap_or(DEFAULT_LOG_KEEP),
        };
        if raw {
            if l.get("keep").is_some() {
                self.warn(format!(
                    "{} is ignored: a raw job's output goes straight to containerpilot's own \
                     stdout and stderr, so none is kept",
                    l.at("keep")
                ));
            }
            return Ok((true, 0));
        }
        Ok((false, keep))
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
            const STATUSES: &[&str] = &["passing", "warning", "critical"];
            if !STATUSES.contains(&s) {
                return Err(one_of(&job.at("initial_status"), s, STATUSES));
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
            Err(_) => Err(invalid(format!("{path} {wanted}, got \"{}\"", shown(s)))),
        },
        Node::Int(n) => count(i128::from(*n)),
        Node::Float(f) if f.fract() == 0.0 && f.abs() < 1e18 => count(*f as i128),
        other => Err(invalid(format!("{path} {wanted}, got {}", describe(other)))),
    }
}

/// `restartDelay` (default 0: restart at once, as 3.x) and `restartDelayMax`
/// (default 30s), the cap of the doubling delay (beyond 3.x).
fn restart_delay(job: &Obj) -> Result<(Duration, Duration)> {
    let delay = job.duration("restartDelay")?.unwrap_or(Duration::ZERO);
    let max = job.duration("restartDelayMax")?;
    match max {
        Some(max) if max < delay => Err(invalid(format!(
            "{} must be >= restartDelay ({}), got {}",
            job.at("restartDelayMax"),
            go_string(delay),
            go_string(max)
        ))),
        None if DEFAULT_RESTART_DELAY_MAX < delay => Err(invalid(format!(
            "{} is more than restartDelayMax (default {}); set restartDelayMax too",
            job.at("restartDelay"),
            go_string(DEFAULT_RESTART_DELAY_MAX)
        ))),
        _ => Ok((delay, max.unwrap_or(DEFAULT_RESTART_DELAY_MAX))),
    }
}

/// The first word of `exec`, the name of a job without one (as 3.x), found
/// without building the whole argv.
fn first_word(path: &str, node: &Node) -> Result<String> {
    let first = match node {
        Node::Str(s) => s.split_whitespace().next().map(str::to_string),
        Node::Array(items) => items
            .first()
            .map(|n| list_item(&format!("{path}[0]"), n))
            .transpose()?,
        other => return Err(expected(path, "a string or an array of strings", other)),
    };
    match first {
        Some(cmd) if !cmd.trim().is_empty() => Ok(cmd),
        _ => Err(invalid(format!(
            "{path} must name a command, got an empty one"
        ))),
    }
}

/// `^[a-z][a-zA-Z0-9-]+$`, as 3.x's `services.ValidateName` (DNS and Consul safe).
pub(super) fn check_service_name(path: &str, name: &str, note: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        return Ok(());
    }
    Err(invalid(format!(
        "{path} '{}'{note} is not a valid service name: it must start with a lowercase \
         letter and have only letters, digits and dashes, at least 2 characters \
         (^[a-z][a-zA-Z0-9-]+$)",
        shown(name)
    )))
}

/// argv from a string (split on whitespace, no quoting, as 3.x) or an array of strings.
pub(super) fn exec(path: &str, node: &Node) -> Result<Vec<String>> {
    let too_many = || {
        invalid(format!(
            "{path} has more than the {MAX_ARGS} arguments supported"
        ))
    };
    let argv: Vec<String> = match node {
        Node::Str(s) => {
            let argv: Vec<String> = s
                .split_whitespace()
                .take(MAX_ARGS + 1)
                .map(str::to_string)
                .collect();
            if argv.len() > MAX_ARGS {
                return Err(too_many());
            }
            argv
        }
        Node::Array(items) if items.len() > MAX_ARGS => return Err(too_many()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::testutil::*;
    use crate::config::DEFAULT_LOG_KEEP;
    use std::net::IpAddr;

    // -- job names and exec ------------------------------------------------------

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
    fn shared_names_are_a_warning_and_both_jobs_run() {
        // Issue #12: 3.x ran both (8 copies of the official nginx config do this).
        let (c, w) =
            ok("{jobs: [{name: 'a', exec: 'x'}, {name: 'b', exec: 'y'}, {name: 'a', exec: 'z'}]}");
        assert_eq!(w, ["jobs[0] and jobs[2] are both named 'a'"]);
        let names: Vec<&str> = c.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "a"]);
        assert_eq!(c.jobs[2].exec, Some(vec!["z".to_string()]));
        // One warning per shared name, listing every position, in file order.
        let w = warnings(
            "{jobs: [{name: 'x', exec: '1'}, {name: 'y', exec: '2'}, {name: 'x', exec: '3'}, \
                     {name: 'y', exec: '4'}, {name: 'x', exec: '5'}]}",
        );
        assert_eq!(
            w,
            [
                "jobs[0], jobs[2] and jobs[4] are all named 'x'",
                "jobs[1] and jobs[3] are both named 'y'",
            ]
        );
        // A default name counts too (two unnamed jobs running one interpreter).
        let w = warnings("{jobs: [{name: 'sleep', exec: 'x'}, {exec: 'sleep 5'}]}");
        assert_eq!(
            w,
            ["jobs[0] and jobs[1] are both named 'sleep' (taken from 'exec' where 'name' is not set)"]
        );
    }

    #[test]
    fn messages_about_a_shared_name_use_the_position() {
        // SPEC §3.7: `jobs[i]` whenever the name is missing or shared.
        let w = warnings("{jobs: [{name: 'a', exec: 'x'}, {name: 'a', exec: 'y', restart: 2}]}");
        assert_eq!(
            w,
            [
                "jobs[0] and jobs[1] are both named 'a'",
                "jobs[1].restart: unknown key, did you mean 'restarts'?",
            ]
        );
        assert_eq!(
            err1("{jobs: [{name: 'a', exec: 'x'}, {name: 'a', exec: 'y', restarts: -1}]}"),
            "jobs[1].restarts must not be negative, got -1"
        );
        // Advertised copies both follow the service name rule.
        assert!(err1(&format!(
            "{{consul: 'c:1', jobs: [{{{}}}, {{{}}}]}}",
            SVC.replace("'app'", "'Web'"),
            SVC.replace("'app'", "'Web'")
        ))
        .starts_with("jobs[0].name 'Web' is not a valid service name"));
        let c = cfg(&format!("{{consul: 'c:1', jobs: [{{{SVC}}}, {{{SVC}}}]}}"));
        assert!(c.jobs.iter().all(|j| j.is_advertised() && j.name == "app"));
        // A trigger may name a shared name.
        let c = cfg("{jobs: [{name: 'a', exec: 'x'}, {name: 'a', exec: 'y'}, \
                     {name: 'b', exec: 'z', when: {source: 'a', once: 'exitSuccess'}}]}");
        assert_eq!(c.jobs[2].when.sources(), ["a"]);
    }

    #[test]
    fn a_very_long_name_is_not_repeated_in_messages() {
        let long = "n".repeat(65);
        let w = warnings(&format!(
            "{{jobs: [{{name: '{long}', exec: 'x', nmae: 1}}]}}"
        ));
        assert_eq!(w, ["jobs[0].nmae: unknown key, did you mean 'name'?"]);
        let at_limit = "n".repeat(64);
        let w = warnings(&format!(
            "{{jobs: [{{name: '{at_limit}', exec: 'x', nmae: 1}}]}}"
        ));
        assert_eq!(
            w,
            [format!(
                "job[{at_limit}].nmae: unknown key, did you mean 'name'?"
            )]
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

    // -- timeouts and restarts ---------------------------------------------------

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
            "job[a].stopTimeout must be >= 0, got -5"
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

    // -- service fields ----------------------------------------------------------

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
        let (c, w) = ok(
            "{jobs: [{name: 'app', exec: 'x', port: 80, health: {exec: 'c', interval: 5, ttl: 10}}]}",
        );
        let s = c.jobs[0].service.as_ref().expect("service");
        assert!(!s.advertised);
        assert_eq!(s.address, None);
        assert!(!c.jobs[0].is_advertised());
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("no consul backend is configured"));
    }

    // -- beyond 3.x: restartDelay, shutdownOn, notify, logging.keep ---------------

    #[test]
    fn restart_delay() {
        let j = job("name: 'a', exec: 'x'");
        assert_eq!(
            (j.restart_delay, j.restart_delay_max),
            (Duration::ZERO, secs(30))
        );
        let j = job("name: 'a', exec: 'x', restartDelay: '500ms', restartDelayMax: '1m'");
        assert_eq!(
            (j.restart_delay, j.restart_delay_max),
            (Duration::from_millis(500), secs(60))
        );
        let j = job("name: 'a', exec: 'x', restartDelay: 2, restartDelayMax: '10'");
        assert_eq!((j.restart_delay, j.restart_delay_max), (secs(2), secs(10)));
        assert_eq!(
            job_err("name: 'app', exec: 'x', restartDelay: -1"),
            "job[app].restartDelay must be >= 0, got -1"
        );
        assert_eq!(
            job_err("name: 'app', exec: 'x', restartDelay: '-1s'"),
            "job[app].restartDelay must be >= 0, got \"-1s\""
        );
        assert!(job_err("name: 'app', exec: 'x', restartDelayMax: '1x'")
            .starts_with("job[app].restartDelayMax: invalid duration \"1x\""));
        assert_eq!(
            job_err("name: 'a', exec: 'x', restartDelay: '5s', restartDelayMax: '1s'"),
            "job[a].restartDelayMax must be >= restartDelay (5s), got 1s"
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', restartDelay: '1m'"),
            "job[a].restartDelay is more than restartDelayMax (default 30s); set restartDelayMax too"
        );
        // Interval jobs take it (it does not delay ticks).
        let j = job("name: 'a', exec: 'x', when: {interval: '1s'}, restartDelay: '1s'");
        assert_eq!(j.restart_delay, secs(1));
    }

    #[test]
    fn shutdown_on() {
        let on = |v: &str| job(&format!("name: 'a', exec: 'x', shutdownOn: '{v}'")).shutdown_on;
        assert_eq!(on("exitFailed"), Some(ShutdownOn::ExitFailed));
        assert_eq!(on("exitSuccess"), Some(ShutdownOn::ExitSuccess));
        assert_eq!(on("exit"), Some(ShutdownOn::Exit));
        assert_eq!(job("name: 'a', exec: 'x'").shutdown_on, None);
        assert_eq!(
            job_err("name: 'a', exec: 'x', shutdownOn: 'exitFail'"),
            "job[a].shutdownOn must be one of 'exitFailed', 'exitSuccess' or 'exit', got \
             'exitFail'; did you mean 'exitFailed'?"
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', shutdownOn: 'crash'"),
            "job[a].shutdownOn must be one of 'exitFailed', 'exitSuccess' or 'exit', got 'crash'"
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', shutdownOn: true"),
            "job[a].shutdownOn must be a string, got boolean true"
        );
        assert_eq!(
            job_err("name: 'ab', port: 80, health: {exec: 'c', interval: 1, ttl: 2}, shutdownOn: 'exit'"),
            "job[ab].shutdownOn needs 'exec': a job without a process never exits"
        );
    }

    #[test]
    fn shutdown_on_exit_failed_with_unlimited_restarts_is_warned_about() {
        let (c, w) = ok(&one_job(
            "name: 'a', exec: 'x', restarts: 'unlimited', shutdownOn: 'exitFailed'",
        ));
        assert_eq!(c.jobs[0].shutdown_on, Some(ShutdownOn::ExitFailed));
        assert_eq!(
            w,
            [
                "job[a].shutdownOn 'exitFailed' can never fire: with restarts \"unlimited\" a \
              failed process is always restarted"
            ]
        );
        for ok_body in [
            "name: 'a', exec: 'x', restarts: 'unlimited', shutdownOn: 'exitSuccess'",
            "name: 'a', exec: 'x', restarts: 'unlimited', shutdownOn: 'exit'",
            "name: 'a', exec: 'x', restarts: 3, shutdownOn: 'exitFailed'",
        ] {
            assert!(ok(&one_job(ok_body)).1.is_empty(), "{ok_body}");
        }
    }

    #[test]
    fn notify() {
        let n = |v: &str| job(&format!("name: 'a', exec: 'x', notify: {v}")).notify;
        let plain = Some(NotifyConfig { watchdog: None });
        assert_eq!(n("true"), plain);
        assert_eq!(n("'true'"), plain);
        assert_eq!(n("{}"), plain);
        assert_eq!(n("false"), None);
        assert_eq!(n("'0'"), None);
        assert_eq!(n("''"), None);
        assert_eq!(job("name: 'a', exec: 'x'").notify, None);
        assert_eq!(
            n("{watchdog: '30s'}"),
            Some(NotifyConfig {
                watchdog: Some(secs(30))
            })
        );
        assert_eq!(
            n("{watchdog: 10}"),
            Some(NotifyConfig {
                watchdog: Some(secs(10))
            })
        );
        let e = |v: &str| job_err(&format!("name: 'a', exec: 'x', notify: {v}"));
        assert_eq!(e("{watchdog: 0}"), "job[a].notify.watchdog must be > 0");
        assert_eq!(
            e("{watchdog: '500us'}"),
            "job[a].notify.watchdog must be at least 1ms"
        );
        assert_eq!(
            e("{watchdog: -1}"),
            "job[a].notify.watchdog must be >= 0, got -1"
        );
        assert_eq!(
            e("'yes'"),
            "job[a].notify must be true, false or {watchdog: DURATION}, got string \"yes\""
        );
        assert_eq!(
            e("5"),
            "job[a].notify must be true, false or {watchdog: DURATION}, got integer 5"
        );
    }

    #[test]
    fn notify_needs_exec_and_does_not_replace_health() {
        assert_eq!(
            job_err("name: 'ab', notify: true, port: 80, health: {exec: 'c', interval: 1, ttl: 2}"),
            "job[ab].notify needs 'exec': only a process can send READY=1"
        );
        assert_eq!(
            job_err("name: 'app', exec: 'x', port: 80, notify: true"),
            "job[app].health must be set if 'port' is set (notify does not replace it: its \
             checks heartbeat the TTL)"
        );
        let j = job(&format!("{SVC}, notify: {{watchdog: '5s'}}"));
        assert!(j.is_advertised() && j.notify.is_some() && j.health.is_some());
    }

    #[test]
    fn logging_keep() {
        assert_eq!(job("name: 'a', exec: 'x'").log_keep, DEFAULT_LOG_KEEP);
        assert_eq!(job("name: 'a', exec: 'x', logging: {}").log_keep, 100);
        assert_eq!(job("name: 'a', exec: 'x', logging: {keep: 5}").log_keep, 5);
        assert_eq!(
            job("name: 'a', exec: 'x', logging: {keep: '0'}").log_keep,
            0
        );
        assert_eq!(
            job("name: 'a', exec: 'x', logging: {keep: 100000}").log_keep,
            100_000
        );
        let e = |v: &str| job_err(&format!("name: 'a', exec: 'x', logging: {{keep: {v}}}"));
        assert_eq!(e("-1"), "job[a].logging.keep must be >= 0, got -1");
        assert_eq!(
            e("100001"),
            "job[a].logging.keep must be at most 100000, got 100001"
        );
        assert_eq!(
            e("'many'"),
            "job[a].logging.keep must be an integer, got string \"many\""
        );
        assert_eq!(
            e("1.5"),
            "job[a].logging.keep must be an integer, got number 1.5"
        );
        // A raw job keeps nothing.
        let j = job("name: 'a', exec: 'x', logging: {raw: true}");
        assert!(j.raw_logging);
        assert_eq!(j.log_keep, 0);
        let (c, w) = ok(&one_job(
            "name: 'a', exec: 'x', logging: {raw: true, keep: 50}",
        ));
        assert_eq!(c.jobs[0].log_keep, 0);
        assert_eq!(
            w,
            [
                "job[a].logging.keep is ignored: a raw job's output goes straight to \
              containerpilot's own stdout and stderr, so none is kept"
            ]
        );
    }

    #[test]
    fn enumerated_values_suggest_what_was_meant() {
        assert_eq!(
            job_err(&format!("{SVC}, initial_status: 'pasing'")),
            "job[app].initial_status must be one of 'passing', 'warning' or 'critical', got \
             'pasing'; did you mean 'passing'?"
        );
    }

    #[test]
    fn at_most_ten_thousand_jobs() {
        let jobs = |n: usize| {
            let list: Vec<String> = (0..n)
                .map(|i| format!("{{name: 'j{i}', exec: 'x'}}"))
                .collect();
            format!("{{jobs: [{}]}}", list.join(","))
        };
        assert_eq!(cfg(&jobs(10_000)).jobs.len(), 10_000);
        assert_eq!(
            err1(&jobs(10_001)),
            "jobs: 10001 jobs is more than the 10000 supported"
        );
    }

    #[test]
    fn at_most_ten_thousand_arguments() {
        let words = vec!["a"; 10_000];
        let j = job(&format!("name: 'a', exec: '{}'", words.join(" ")));
        assert_eq!(j.exec.map(|e| e.len()), Some(10_000));
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let j = job(&format!("name: 'a', exec: [{}]", quoted.join(",")));
        assert_eq!(j.exec.map(|e| e.len()), Some(10_000));
        assert_eq!(
            job_err(&format!("name: 'a', exec: '{} a'", words.join(" "))),
            "job[a].exec has more than the 10000 arguments supported"
        );
        assert_eq!(
            job_err(&format!("name: 'a', exec: [{}, 'a']", quoted.join(","))),
            "job[a].exec has more than the 10000 arguments supported"
        );
        assert_eq!(
            job_err(&format!(
                "name: 'a', exec: 'x', health: {{interval: 1, exec: '{} a'}}",
                words.join(" ")
            )),
            "job[a].health.exec has more than the 10000 arguments supported"
        );
    }
}
