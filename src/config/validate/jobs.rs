//! The `jobs` section (SPEC §2.3): names (given or taken from `exec`),
//! `exec`, timeouts, `restarts`, the discovery fields of a job with a `port`,
//! and `logging`. `when` and `health` have their own modules.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::obj::{describe, expected, explicit_name, invalid, list_item, Obj};
use super::{Result, Validator};
use crate::config::interfaces;
use crate::config::tree::Node;
use crate::config::{JobConfig, Restarts, ServiceConfig, WatchConfig, When};

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
const JOB_CONSUL_KEYS: &[&str] = &["enableTagOverride", "deregisterCriticalServiceAfter"];
const RAW_LOGGING_KEYS: &[&str] = &["raw"];

/// The shortest `when.interval` and job `timeout` (3.x `taskMinDuration`).
pub(super) const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// What the job section needs to know about the rest of the config.
pub(super) struct Context<'a> {
    pub(super) discovery: bool,
    pub(super) jobs: &'a HashSet<String>,
    pub(super) watches: &'a HashSet<String>,
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
            restart_delay: Duration::ZERO,
            restart_delay_max: crate::config::DEFAULT_RESTART_DELAY_MAX,
            shutdown_on: None,
            health,
            notify: None,
            service,
            raw_logging,
            log_keep: crate::config::DEFAULT_LOG_KEEP,
        })
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
    pub(super) fn raw_logging(&mut self, parent: &Obj) -> Result<bool> {
        match self.obj_opt(parent, "logging", RAW_LOGGING_KEYS)? {
            Some(l) => Ok(l.bool("raw")?.unwrap_or(false)),
            None => Ok(false),
        }
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
            Err(_) => Err(invalid(format!("{path} {wanted}, got \"{s}\""))),
        },
        Node::Int(n) => count(i128::from(*n)),
        Node::Float(f) if f.fract() == 0.0 && f.abs() < 1e18 => count(*f as i128),
        other => Err(invalid(format!("{path} {wanted}, got {}", describe(other)))),
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
        "{path} '{name}'{note} is not a valid service name: it must start with a lowercase \
         letter and have only letters, digits and dashes, at least 2 characters \
         (^[a-z][a-zA-Z0-9-]+$)"
    )))
}

/// argv from a string (split on whitespace, no quoting, as 3.x) or an array of strings.
pub(super) fn exec(path: &str, node: &Node) -> Result<Vec<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::testutil::*;
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
        let (c, w) =
            ok("{jobs: [{name: 'app', exec: 'x', port: 80, health: {interval: 5, ttl: 10}}]}");
        let s = c.jobs[0].service.as_ref().expect("service");
        assert!(!s.advertised);
        assert_eq!(s.address, None);
        assert!(!c.jobs[0].is_advertised());
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("no consul backend is configured"));
    }
}
