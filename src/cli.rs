//! The command line (SPEC §1), parsed the way Go's `flag` package does: one or
//! two leading dashes, `-flag value` or `-flag=value`, boolean flags take no
//! value (but accept `-flag=true|false`), and parsing stops at `--` or the
//! first non-flag argument.
//!
//! lexopt is not used: it reads `-config` as the short options `-c -o -n …`,
//! and every existing Dockerfile spells the flags with one dash.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Run {
        config: PathBuf,
    },
    Version,
    Help,
    Template {
        config: PathBuf,
        out: String,
    },
    Validate {
        config: PathBuf,
    },
    Client {
        config: Option<PathBuf>,
        cmd: ClientCmd,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCmd {
    Ping,
    PutEnv(Vec<String>),
    PutMetric(Vec<String>),
    Reload,
    Maintenance(bool),
    Start(String),
    Stop(String),
    Restart(String),
    /// `-signal NAME=SIG`: the signal as given, for the server to judge.
    Signal {
        job: String,
        signal: String,
    },
    Logs {
        job: String,
        lines: usize,
        follow: bool,
    },
    Status,
    Healthcheck,
}

/// A usage error: printed as one line plus a pointer to `-help`, exit 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Flag {
    name: &'static str,
    /// Takes a value (`-flag v`); otherwise boolean.
    value: Option<&'static str>,
    help: &'static str,
}

const FLAGS: &[Flag] = &[
    Flag { name: "config", value: Some("string"), help: "File path to JSON5 configuration file. Defaults to CONTAINERPILOT env var." },
    Flag { name: "follow", value: None, help: "With '-logs': keep printing the job's output as it is written, until interrupted." },
    Flag { name: "healthcheck", value: None, help: "Check the health of a ContainerPilot process through its control socket:\nexit 0 when healthy, else 1, printing the unhealthy jobs. For Docker's HEALTHCHECK." },
    Flag { name: "help", value: None, help: "Show this usage listing and quit." },
    Flag { name: "logs", value: Some("NAME"), help: "Print the recent output of job NAME of a ContainerPilot process through its\ncontrol socket. See '-n' and '-follow'." },
    Flag { name: "maintenance", value: Some("string"), help: "Toggle maintenance mode for a ContainerPilot process through its control socket.\nOptions: '-maintenance enable' or '-maintenance disable'" },
    Flag { name: "n", value: Some("N"), help: "With '-logs': how many of the most recent lines to print (default 100)." },
    Flag { name: "out", value: Some("string"), help: "File path where to save rendered config file when '-template' is used.\nDefaults to stdout ('-')." },
    Flag { name: "ping", value: None, help: "Check that the ContainerPilot control socket is up." },
    Flag { name: "putenv", value: Some("value"), help: "Update environ of a ContainerPilot process through its control socket.\nPass environment in the format: 'key=value' ('key' alone clears it). Repeatable." },
    Flag { name: "putmetric", value: Some("value"), help: "Update metrics of a ContainerPilot process through its control socket.\nPass metrics in the format: 'key=value'. Repeatable." },
    Flag { name: "reload", value: None, help: "Reload a ContainerPilot process through its control socket." },
    Flag { name: "restart", value: Some("NAME"), help: "Stop job NAME of a ContainerPilot process, then start it again, through its\ncontrol socket." },
    Flag { name: "signal", value: Some("NAME=SIG"), help: "Send a signal to job NAME of a ContainerPilot process through its control socket.\nSIG is a name with or without 'SIG' ('HUP', 'SIGHUP') or a number." },
    Flag { name: "start", value: Some("NAME"), help: "Start job NAME of a ContainerPilot process through its control socket\n(a stopped job is resumed)." },
    Flag { name: "status", value: None, help: "Print the jobs of a ContainerPilot process and their state as a table." },
    Flag { name: "stop", value: Some("NAME"), help: "Stop job NAME of a ContainerPilot process through its control socket; it stays\nstopped until '-start' or '-restart'. A stopped job counts as completed: when\nevery job is, ContainerPilot exits." },
    Flag { name: "template", value: None, help: "Render template and quit." },
    Flag { name: "validate", value: None, help: "Load, render, parse and fully validate the config; print problems and quit\n(exit 0 only if it would run)." },
    Flag { name: "version", value: None, help: "Show version identifier and quit." },
];

pub fn usage() -> String {
    let mut s = String::from("Usage of containerpilot:\n");
    for f in FLAGS {
        match f.value {
            Some(v) => s.push_str(&format!("  -{} {}\n", f.name, v)),
            None => s.push_str(&format!("  -{}\n", f.name)),
        }
        for line in f.help.lines() {
            s.push_str("        ");
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

#[derive(Default)]
struct Raw {
    config: Option<String>,
    out: Option<String>,
    help: bool,
    version: bool,
    template: bool,
    validate: bool,
    ping: bool,
    reload: bool,
    maintenance: Option<String>,
    putenv: Vec<String>,
    putmetric: Vec<String>,
    start: Option<String>,
    stop: Option<String>,
    restart: Option<String>,
    signal: Option<String>,
    logs: Option<String>,
    n: Option<String>,
    follow: bool,
    status: bool,
    healthcheck: bool,
}

fn parse_bool(name: &str, v: &str) -> Result<bool, UsageError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(UsageError(format!(
            "invalid boolean value {v:?} for flag -{name}"
        ))),
    }
}

/// The arguments as text. Flags and paths are taken as UTF-8, as Go's
/// `os.Args` holds them; one that is not is a usage error naming its
/// position (1 is the first after the program name), never a panic.
pub fn utf8_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Vec<String>, UsageError> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_string()
                .map_err(|a| UsageError(format!("argument {} is not valid UTF-8: {a:?}", i + 1)))
        })
        .collect()
}

/// Parse argv (without the program name). `env_config` is `$CONTAINERPILOT`.
pub fn parse<I: IntoIterator<Item = String>>(
    args: I,
    env_config: Option<String>,
) -> Result<Mode, UsageError> {
    let mut raw = Raw::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        let body = match arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
            Some(b) if !b.is_empty() && !b.starts_with('-') && !b.starts_with('=') => b,
            _ => return Err(UsageError(format!("unexpected argument {arg:?}"))),
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = match name {
            "h" => FLAGS.iter().find(|f| f.name == "help"),
            _ => FLAGS.iter().find(|f| f.name == name),
        }
        .ok_or_else(|| UsageError(format!("flag provided but not defined: -{name}")))?;
        if flag.value.is_none() {
            let on = match inline {
                Some(v) => parse_bool(flag.name, &v)?,
                None => true,
            };
            match flag.name {
                "help" => raw.help = on,
                "version" => raw.version = on,
                "template" => raw.template = on,
                "validate" => raw.validate = on,
                "ping" => raw.ping = on,
                "reload" => raw.reload = on,
                "follow" => raw.follow = on,
                "status" => raw.status = on,
                "healthcheck" => raw.healthcheck = on,
                _ => unreachable!("every boolean flag is handled"),
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| UsageError(format!("flag needs an argument: -{name}")))?,
        };
        match flag.name {
            "config" => raw.config = Some(value),
            "out" => raw.out = Some(value),
            "maintenance" => raw.maintenance = Some(value),
            "putenv" => raw.putenv.push(value),
            "putmetric" => raw.putmetric.push(value),
            "start" => raw.start = Some(value),
            "stop" => raw.stop = Some(value),
            "restart" => raw.restart = Some(value),
            "signal" => raw.signal = Some(value),
            "logs" => raw.logs = Some(value),
            "n" => raw.n = Some(value),
            _ => unreachable!("every value flag is handled"),
        }
    }
    if let Some(extra) = args.next() {
        return Err(UsageError(format!("unexpected argument {extra:?}")));
    }
    decide(raw, env_config)
}

/// The job a per-job flag names: anything but empty (names may hold
/// spaces, slashes or `=`; the server says whether such a job exists).
fn job_name(flag: &str, value: String) -> Result<String, UsageError> {
    if value.is_empty() {
        return Err(UsageError(format!("flag -{flag} needs a job name")));
    }
    Ok(value)
}

fn decide(raw: Raw, env_config: Option<String>) -> Result<Mode, UsageError> {
    if raw.help {
        return Ok(Mode::Help);
    }
    if raw.version {
        return Ok(Mode::Version);
    }
    let config = raw
        .config
        .filter(|c| !c.is_empty())
        .or(env_config.filter(|c| !c.is_empty()))
        .map(PathBuf::from);

    let mut client = Vec::new();
    if raw.ping {
        client.push(ClientCmd::Ping);
    }
    if raw.reload {
        client.push(ClientCmd::Reload);
    }
    if let Some(m) = raw.maintenance {
        match m.as_str() {
            "enable" => client.push(ClientCmd::Maintenance(true)),
            "disable" => client.push(ClientCmd::Maintenance(false)),
            _ => {
                return Err(UsageError(format!(
                    "invalid value {m:?} for flag -maintenance: use 'enable' or 'disable'"
                )))
            }
        }
    }
    if !raw.putenv.is_empty() {
        client.push(ClientCmd::PutEnv(raw.putenv));
    }
    if !raw.putmetric.is_empty() {
        for kv in &raw.putmetric {
            if !kv.contains('=') {
                return Err(UsageError(format!(
                    "invalid value {kv:?} for flag -putmetric: use the format 'key=value'"
                )));
            }
        }
        client.push(ClientCmd::PutMetric(raw.putmetric));
    }
    for (flag, value) in [
        ("start", raw.start),
        ("stop", raw.stop),
        ("restart", raw.restart),
    ] {
        let Some(value) = value else { continue };
        let job = job_name(flag, value)?;
        client.push(match flag {
            "start" => ClientCmd::Start(job),
            "stop" => ClientCmd::Stop(job),
            _ => ClientCmd::Restart(job),
        });
    }
    if let Some(v) = raw.signal {
        // Split at the last `=`: a signal never holds one, a job name might.
        let (job, signal) = v
            .rsplit_once('=')
            .filter(|(job, signal)| !job.is_empty() && !signal.trim().is_empty())
            .ok_or_else(|| {
                UsageError(format!(
                    "invalid value {v:?} for flag -signal: use the format 'NAME=SIG', e.g. 'web=HUP'"
                ))
            })?;
        client.push(ClientCmd::Signal {
            job: job.to_string(),
            signal: signal.trim().to_string(),
        });
    }
    let lines = match &raw.n {
        None => 100,
        Some(n) => n.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            UsageError(format!(
                "invalid value {n:?} for flag -n: use a whole number of lines, at least 1"
            ))
        })?,
    };
    match raw.logs {
        Some(job) => client.push(ClientCmd::Logs {
            job: job_name("logs", job)?,
            lines,
            follow: raw.follow,
        }),
        None if raw.n.is_some() || raw.follow => {
            return Err(UsageError("flags -n and -follow go with -logs NAME".into()))
        }
        None => {}
    }
    if raw.status {
        client.push(ClientCmd::Status);
    }
    if raw.healthcheck {
        client.push(ClientCmd::Healthcheck);
    }
    let modes = client.len() + raw.template as usize + raw.validate as usize;
    if modes > 1 {
        return Err(UsageError(
            "choose one of -template, -validate, -ping, -putenv, -putmetric, -reload, \
             -maintenance, -start, -stop, -restart, -signal, -logs, -status, -healthcheck"
                .into(),
        ));
    }
    if let Some(cmd) = client.pop() {
        return Ok(Mode::Client { config, cmd });
    }
    let config = config.ok_or_else(|| {
        UsageError(
            "-config flag is required (or set the CONTAINERPILOT environment variable)".into(),
        )
    })?;
    if raw.template {
        return Ok(Mode::Template {
            config,
            out: raw.out.unwrap_or_else(|| "-".into()),
        });
    }
    if raw.validate {
        return Ok(Mode::Validate { config });
    }
    Ok(Mode::Run { config })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Mode, UsageError> {
        parse(args.iter().map(|s| s.to_string()), None)
    }

    #[test]
    fn go_style_spellings() {
        let want = Mode::Run {
            config: "/etc/cp.json5".into(),
        };
        assert_eq!(p(&["-config", "/etc/cp.json5"]), Ok(want.clone()));
        assert_eq!(p(&["--config", "/etc/cp.json5"]), Ok(want.clone()));
        assert_eq!(p(&["-config=/etc/cp.json5"]), Ok(want.clone()));
        assert_eq!(p(&["--config=/etc/cp.json5"]), Ok(want));
    }

    #[test]
    fn config_from_env() {
        let m = parse(Vec::<String>::new(), Some("/x.json5".into()));
        assert_eq!(
            m,
            Ok(Mode::Run {
                config: "/x.json5".into()
            })
        );
        let m = parse(vec!["-config".into(), "/y".into()], Some("/x".into()));
        assert_eq!(
            m,
            Ok(Mode::Run {
                config: "/y".into()
            })
        );
    }

    #[test]
    fn missing_config_is_usage_error() {
        assert!(p(&[]).unwrap_err().0.contains("-config"));
        assert!(p(&["-validate"]).is_err());
    }

    #[test]
    fn bool_flags() {
        assert_eq!(p(&["-version"]), Ok(Mode::Version));
        assert_eq!(p(&["-h"]), Ok(Mode::Help));
        assert_eq!(p(&["--help"]), Ok(Mode::Help));
        assert_eq!(
            p(&["-validate=true", "-config", "c"]),
            Ok(Mode::Validate { config: "c".into() })
        );
        assert_eq!(
            p(&["-validate=false", "-config", "c"]),
            Ok(Mode::Run { config: "c".into() })
        );
        assert!(p(&["-validate=maybe", "-config", "c"])
            .unwrap_err()
            .0
            .contains("-validate"));
    }

    #[test]
    fn template_out() {
        assert_eq!(
            p(&["-template", "-config", "c"]),
            Ok(Mode::Template {
                config: "c".into(),
                out: "-".into()
            })
        );
        assert_eq!(
            p(&["-template", "-config", "c", "-out", "/tmp/x"]),
            Ok(Mode::Template {
                config: "c".into(),
                out: "/tmp/x".into()
            })
        );
    }

    #[test]
    fn client_commands() {
        assert_eq!(
            p(&["-ping"]),
            Ok(Mode::Client {
                config: None,
                cmd: ClientCmd::Ping
            })
        );
        assert_eq!(
            p(&["-putenv", "A=1", "-putenv", "B", "-config", "c"]),
            Ok(Mode::Client {
                config: Some("c".into()),
                cmd: ClientCmd::PutEnv(vec!["A=1".into(), "B".into()])
            })
        );
        assert_eq!(
            p(&["-maintenance=enable"]),
            Ok(Mode::Client {
                config: None,
                cmd: ClientCmd::Maintenance(true)
            })
        );
        assert!(p(&["-maintenance", "sideways"])
            .unwrap_err()
            .0
            .contains("sideways"));
        assert!(p(&["-putmetric", "novalue"]).is_err());
    }

    #[test]
    fn job_commands() {
        let client = |cmd| Ok(Mode::Client { config: None, cmd });
        assert_eq!(p(&["-stop", "web"]), client(ClientCmd::Stop("web".into())));
        assert_eq!(
            p(&["-restart=/usr/bin/env"]),
            client(ClientCmd::Restart("/usr/bin/env".into()))
        );
        assert_eq!(
            p(&["-signal", "a=b=SIGHUP"]),
            client(ClientCmd::Signal {
                job: "a=b".into(),
                signal: "SIGHUP".into()
            })
        );
        assert_eq!(
            p(&["-logs", "web"]),
            client(ClientCmd::Logs {
                job: "web".into(),
                lines: 100,
                follow: false
            })
        );
        assert_eq!(
            p(&["-follow", "-n", "7", "-logs", "web"]),
            client(ClientCmd::Logs {
                job: "web".into(),
                lines: 7,
                follow: true
            })
        );
        assert_eq!(p(&["-status"]), client(ClientCmd::Status));
        assert_eq!(p(&["-healthcheck"]), client(ClientCmd::Healthcheck));
        for bad in [
            &["-signal", "web"][..],
            &["-signal", "=HUP"],
            &["-signal", "web= "],
            &["-logs", "web", "-n", "0"],
            &["-logs", "web", "-n", "1.5"],
            &["-n", "3"],
            &["-follow"],
            &["-start", ""],
            &["-stop", "a", "-start", "b"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_and_stray() {
        assert!(p(&["-bogus"]).unwrap_err().0.contains("-bogus"));
        assert!(p(&["-config"]).unwrap_err().0.contains("argument"));
        assert!(p(&["-config", "c", "extra"]).is_err());
        assert!(p(&["-"]).is_err());
        assert!(p(&["---config", "c"]).is_err());
    }

    #[test]
    fn usage_lists_every_flag() {
        let u = usage();
        for f in FLAGS {
            assert!(u.contains(&format!("-{}", f.name)));
        }
    }
}
