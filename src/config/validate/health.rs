//! A job's `health` block (SPEC §2.3, §3.7): the probe (exactly one of
//! `exec`, `http`, `tcp`), its interval, TTL and timeout, the start period and
//! the failure threshold.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::jobs::exec;
use super::obj::{expected, invalid, quoted_list, shown, Obj};
use super::{Result, Validator};
use crate::config::tree::Node;
use crate::config::{HealthConfig, HttpProbe, Probe};

const HEALTH_KEYS: &[&str] = &[
    "exec",
    "http",
    "tcp",
    "interval",
    "ttl",
    "timeout",
    "startPeriod",
    "threshold",
    "logging",
];
const PROBES: [&str; 3] = ["exec", "http", "tcp"];
/// A health check's `logging` has only `raw` (its lines are kept with its job's).
const CHECK_LOGGING_KEYS: &[&str] = &["raw"];
const DEFAULT_HTTP_PORT: u16 = 80;

impl Validator<'_> {
    pub(super) fn health(&mut self, job: &Obj, advertised: bool) -> Result<Option<HealthConfig>> {
        let Some(h) = self.obj_opt(job, "health", HEALTH_KEYS)? else {
            return Ok(None);
        };
        let given: Vec<(&str, &Node)> = PROBES
            .into_iter()
            .filter_map(|k| Some((k, h.get(k)?)))
            .collect();
        let probe = match given[..] {
            [] => {
                // 3.x ran a health block without `exec`: it only heartbeat the
                // TTL of an advertised job. Kept, and said.
                self.warn(format!(
                    "{} has no exec, http or tcp: every check passes",
                    h.path
                ));
                Probe::Heartbeat
            }
            [("exec", node)] => Probe::Exec(exec(&h.at("exec"), node)?),
            [("http", node)] => Probe::Http(http_probe(&h.at("http"), node)?),
            [(_, node)] => {
                let (host, port) = tcp_probe(&h.at("tcp"), node)?;
                Probe::Tcp { host, port }
            }
            _ => {
                let keys: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
                return Err(invalid(format!(
                    "{}: only one of exec, http, tcp may be given, got {}",
                    h.path,
                    quoted_list(&keys, "and")
                )));
            }
        };
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
        let start_period = h.duration("startPeriod")?.unwrap_or(Duration::ZERO);
        let threshold = match h.integer("threshold")? {
            None => 1,
            Some(n) if n < 1 => {
                return Err(invalid(format!(
                    "{} must be an integer >= 1, got {n}",
                    h.at("threshold")
                )))
            }
            Some(n) => u32::try_from(n)
                .map_err(|_| invalid(format!("{} is too large: {n}", h.at("threshold"))))?,
        };
        let raw_logging = match self.obj_opt(&h, "logging", CHECK_LOGGING_KEYS)? {
            Some(l) => l.bool("raw")?.unwrap_or(false),
            None => false,
        };
        Ok(Some(HealthConfig {
            probe,
            interval,
            ttl,
            timeout,
            start_period,
            threshold,
            raw_logging,
        }))
    }
}

/// `http://HOST[:PORT][/PATH[?QUERY]]` (SPEC §3.7): no https, no user info,
/// no fragment; the port defaults to 80 and the path to `/`.
fn http_probe(path: &str, node: &Node) -> Result<HttpProbe> {
    let Node::Str(raw) = node else {
        return Err(expected(path, "a URL (\"http://HOST:PORT/PATH\")", node));
    };
    let url = raw.trim();
    let bad = |why: &str| invalid(format!("{path}: {why}: '{}'", shown(url)));
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(bad(
                "https is not supported for checks (use http://, or a tcp check of the port)",
            ))
        }
        Some(_) => return Err(bad("not an http:// URL")),
        None if url.is_empty() => return Err(bad("not an http:// URL")),
        None => {
            return Err(invalid(format!(
                "{path}: not an http:// URL: '{0}' (did you mean 'http://{0}'?)",
                shown(url)
            )))
        }
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    if target.contains('#') {
        return Err(bad(
            "a fragment ('#...') is not sent to the server; remove it",
        ));
    }
    if authority.contains('@') {
        return Err(bad("user info ('user@') is not supported"));
    }
    let (host, port) = host_port(authority).map_err(&bad)?;
    let port = port.unwrap_or(DEFAULT_HTTP_PORT);
    let target = match target.as_bytes().first() {
        None => "/".to_string(),
        Some(b'?') => format!("/{target}"),
        Some(_) => target.to_string(),
    };
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "the path must be printable ASCII without spaces (percent-encode other characters)",
        ));
    }
    Ok(HttpProbe {
        url: url.to_string(),
        host,
        port,
        path: target,
    })
}

/// `HOST:PORT` or `[V6]:PORT` (SPEC §3.7); the port is required.
fn tcp_probe(path: &str, node: &Node) -> Result<(String, u16)> {
    let Node::Str(raw) = node else {
        return Err(expected(path, "an address (\"HOST:PORT\")", node));
    };
    let addr = raw.trim();
    let bad = |why: &str| invalid(format!("{path}: {why}: '{}'", shown(addr)));
    if addr.contains("://") {
        return Err(bad("expected HOST:PORT or [IPv6]:PORT, not a URL"));
    }
    match host_port(addr).map_err(&bad)? {
        (host, Some(port)) => Ok((host, port)),
        (_, None) => Err(bad(
            "the port is missing (expected HOST:PORT or [IPv6]:PORT)",
        )),
    }
}

/// `host[:port]` or `[v6][:port]`. The host is returned without brackets
/// (an address the resolver takes as is); the port, when given, is 1-65535.
fn host_port(authority: &str) -> std::result::Result<(String, Option<u16>), &'static str> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inner, after) = v6
            .split_once(']')
            .ok_or("missing ']' after the IPv6 address")?;
        inner
            .parse::<Ipv6Addr>()
            .map_err(|_| "not an IPv6 address between '[' and ']'")?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("expected ':PORT' after ']'")?,
            ),
        };
        (inner, port)
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("write an IPv6 address in brackets, e.g. [::1]:8080")
            }
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing");
    }
    let is_name = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !host.contains(':') && !is_name {
        return Err("the host must be a name or an IP address");
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err("the port must be a number from 1 to 65535"),
        },
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::testutil::*;

    #[test]
    fn health_defaults_and_rules() {
        let j =
            job("name: 'a', exec: 'x', health: {exec: 'check --deep', interval: 5, ttl: '10s'}");
        let h = j.health.expect("health");
        assert_eq!(
            h.probe,
            Probe::Exec(vec!["check".to_string(), "--deep".into()])
        );
        assert_eq!(h.interval, secs(5));
        assert_eq!(h.ttl, Some(secs(10)));
        // timeout defaults to the interval.
        assert_eq!(h.timeout, secs(5));
        assert!(!h.raw_logging);
        let h = job("name: 'a', exec: 'x', health: {interval: '1500ms', timeout: '1s', logging: {raw: true}}")
            .health
            .expect("health");
        assert_eq!(h.probe, Probe::Heartbeat);
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
            "name: 'app', exec: 'x', port: 80, health: {exec: 'c', interval: 5, tll: 10}",
        ));
        assert_eq!(
            e,
            "job[app].health.ttl is required for an advertised job (it has a 'port' and consul is configured)\n\
             note: job[app].health.tll: unknown key, did you mean 'ttl'?"
        );
        // Not advertised (no consul): ttl may be left out.
        let (c, w) =
            ok("{jobs: [{name: 'app', exec: 'x', port: 80, health: {exec: 'c', interval: 5}}]}");
        assert_eq!(c.jobs[0].health.as_ref().and_then(|h| h.ttl), None);
        assert_eq!(
            w,
            ["job[app] has a port but no consul backend is configured; it will not be registered"]
        );
    }

    fn health(body: &str) -> HealthConfig {
        job(&format!(
            "name: 'a', exec: 'x', health: {{interval: 5, {body}}}"
        ))
        .health
        .expect("health")
    }

    fn health_err(body: &str) -> String {
        job_err(&format!(
            "name: 'a', exec: 'x', health: {{interval: 5, {body}}}"
        ))
    }

    fn http(url: &str) -> HttpProbe {
        match health(&format!("http: '{url}'")).probe {
            Probe::Http(p) => p,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn http_parts(url: &str) -> (String, u16, String) {
        let p = http(url);
        assert_eq!(p.url, url.trim());
        (p.host, p.port, p.path)
    }

    fn parts(host: &str, port: u16, path: &str) -> (String, u16, String) {
        (host.to_string(), port, path.to_string())
    }

    #[test]
    fn exactly_one_probe() {
        assert_eq!(
            job_err("name: 'app', exec: 'x', health: {exec: 'c', http: 'http://x/', interval: 5}"),
            "job[app].health: only one of exec, http, tcp may be given, got 'exec' and 'http'"
        );
        assert_eq!(
            health_err("exec: 'c', http: 'http://x/', tcp: 'x:1'"),
            "job[a].health: only one of exec, http, tcp may be given, got 'exec', 'http' and 'tcp'"
        );
        assert_eq!(
            health_err("http: 'http://x/', tcp: 'x:1'"),
            "job[a].health: only one of exec, http, tcp may be given, got 'http' and 'tcp'"
        );
        // null is absent, as everywhere.
        assert!(matches!(
            health("exec: null, tcp: 'x:1'").probe,
            Probe::Tcp { .. }
        ));
    }

    #[test]
    fn no_probe_runs_as_3x_did_with_a_warning() {
        // 3.x accepted a health block without exec and only heartbeat the TTL.
        let (c, w) = ok("{jobs: [{name: 'a', exec: 'x', health: {interval: 5}}]}");
        assert_eq!(
            c.jobs[0].health.as_ref().map(|h| &h.probe),
            Some(&Probe::Heartbeat)
        );
        assert_eq!(
            w,
            ["job[a].health has no exec, http or tcp: every check passes"]
        );
    }

    #[test]
    fn http_probes() {
        assert_eq!(
            http_parts("http://localhost:8080/health"),
            parts("localhost", 8080, "/health")
        );
        // The port defaults to 80 and the path to `/`.
        assert_eq!(http_parts("http://db"), parts("db", 80, "/"));
        assert_eq!(http_parts("http://db/"), parts("db", 80, "/"));
        assert_eq!(http_parts("HTTP://db:81"), parts("db", 81, "/"));
        assert_eq!(
            http_parts("http://db?ready=1"),
            parts("db", 80, "/?ready=1")
        );
        assert_eq!(
            http_parts("http://10.0.0.2:9000/v1/health?x=1&y=%20"),
            parts("10.0.0.2", 9000, "/v1/health?x=1&y=%20")
        );
        assert_eq!(
            http_parts("http://my_db.local/"),
            parts("my_db.local", 80, "/")
        );
        // IPv6 in brackets; the host is kept without them.
        assert_eq!(
            http_parts("http://[::1]:8080/ping"),
            parts("::1", 8080, "/ping")
        );
        assert_eq!(http_parts("http://[fd00::2]"), parts("fd00::2", 80, "/"));
        // Surrounding spaces are trimmed.
        assert_eq!(http_parts(" http://db/ "), parts("db", 80, "/"));
    }

    #[test]
    fn http_probe_errors() {
        let e = |url: &str| health_err(&format!("http: '{url}'"));
        assert_eq!(
            job_err("name: 'db', exec: 'x', health: {interval: 5, http: 'https://db/'}"),
            "job[db].health.http: https is not supported for checks (use http://, or a tcp \
             check of the port): 'https://db/'"
        );
        assert_eq!(
            e("localhost:8080/health"),
            "job[a].health.http: not an http:// URL: 'localhost:8080/health' \
             (did you mean 'http://localhost:8080/health'?)"
        );
        assert_eq!(
            e("ftp://db/"),
            "job[a].health.http: not an http:// URL: 'ftp://db/'"
        );
        assert_eq!(e(""), "job[a].health.http: not an http:// URL: ''");
        assert_eq!(
            e("http://"),
            "job[a].health.http: the host is missing: 'http://'"
        );
        assert_eq!(
            e("http://:80/"),
            "job[a].health.http: the host is missing: 'http://:80/'"
        );
        assert_eq!(
            e("http://db:0/"),
            "job[a].health.http: the port must be a number from 1 to 65535: 'http://db:0/'"
        );
        for bad in [
            "http://db:/",
            "http://db:65536/",
            "http://db:x/",
            "http://db:-1/",
        ] {
            assert!(
                e(bad).contains("the port must be a number from 1 to 65535"),
                "{bad}"
            );
        }
        assert_eq!(
            e("http://user:pw@db/"),
            "job[a].health.http: user info ('user@') is not supported: 'http://user:pw@db/'"
        );
        assert!(e("http://db/#top").contains("a fragment ('#...') is not sent to the server"));
        assert!(e("http://db/a b").contains("the path must be printable ASCII without spaces"));
        assert!(e("http://db/é").contains("the path must be printable ASCII"));
        assert!(e("http://d b/").contains("the host must be a name or an IP address"));
        assert!(e("http://::1/").contains("write an IPv6 address in brackets"));
        assert!(e("http://[::1/").contains("missing ']'"));
        assert!(e("http://[db]/").contains("not an IPv6 address between '[' and ']'"));
        assert!(e("http://[::1]x/").contains("expected ':PORT' after ']'"));
        assert_eq!(
            health_err("http: 8080"),
            "job[a].health.http must be a URL (\"http://HOST:PORT/PATH\"), got integer 8080"
        );
        // A long value is shown cut short.
        let long = format!("ftp://{}", "x".repeat(1000));
        let msg = e(&long);
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.ends_with("...'"), "{msg}");
    }

    #[test]
    fn tcp_probes() {
        let tcp = |addr: &str| match health(&format!("tcp: '{addr}'")).probe {
            Probe::Tcp { host, port } => (host, port),
            other => panic!("{addr}: {other:?}"),
        };
        assert_eq!(tcp("db:5432"), ("db".to_string(), 5432));
        assert_eq!(tcp("127.0.0.1:6379"), ("127.0.0.1".to_string(), 6379));
        assert_eq!(tcp("[::1]:22"), ("::1".to_string(), 22));
        let e = |addr: &str| health_err(&format!("tcp: '{addr}'"));
        assert_eq!(
            e("db"),
            "job[a].health.tcp: the port is missing (expected HOST:PORT or [IPv6]:PORT): 'db'"
        );
        assert_eq!(
            e("[::1]"),
            "job[a].health.tcp: the port is missing (expected HOST:PORT or [IPv6]:PORT): '[::1]'"
        );
        assert_eq!(
            e("tcp://db:1"),
            "job[a].health.tcp: expected HOST:PORT or [IPv6]:PORT, not a URL: 'tcp://db:1'"
        );
        assert!(e("db:0").contains("the port must be a number from 1 to 65535"));
        assert!(e("db:70000").contains("the port must be a number from 1 to 65535"));
        assert!(e(":5432").contains("the host is missing"));
        assert!(e("::1:22").contains("write an IPv6 address in brackets"));
        assert_eq!(
            health_err("tcp: ['db', 1]"),
            "job[a].health.tcp must be an address (\"HOST:PORT\"), got array"
        );
    }

    #[test]
    fn start_period_and_threshold() {
        let h = health("exec: 'c'");
        assert_eq!((h.start_period, h.threshold), (Duration::ZERO, 1));
        let h = health("exec: 'c', startPeriod: '1m', threshold: 3");
        assert_eq!((h.start_period, h.threshold), (secs(60), 3));
        // Numeric strings, as other integer keys.
        let h = health("exec: 'c', startPeriod: 30, threshold: '2'");
        assert_eq!((h.start_period, h.threshold), (secs(30), 2));
        assert_eq!(health("exec: 'c', threshold: 2.0").threshold, 2);
        assert_eq!(
            health_err("exec: 'c', threshold: 0"),
            "job[a].health.threshold must be an integer >= 1, got 0"
        );
        assert_eq!(
            health_err("exec: 'c', threshold: '-3'"),
            "job[a].health.threshold must be an integer >= 1, got -3"
        );
        assert_eq!(
            health_err("exec: 'c', threshold: 1.5"),
            "job[a].health.threshold must be an integer, got number 1.5"
        );
        assert_eq!(
            health_err("exec: 'c', threshold: 'often'"),
            "job[a].health.threshold must be an integer, got string \"often\""
        );
        assert_eq!(
            health_err("exec: 'c', threshold: 5000000000"),
            "job[a].health.threshold is too large: 5000000000"
        );
        assert_eq!(
            health_err("exec: 'c', startPeriod: -1"),
            "job[a].health.startPeriod must be >= 0, got -1"
        );
        assert!(health_err("exec: 'c', startPeriod: 'soon'")
            .starts_with("job[a].health.startPeriod: invalid duration \"soon\""));
    }

    #[test]
    fn a_checks_logging_has_only_raw() {
        let w = warnings("{jobs: [{name: 'a', exec: 'x', health: {exec: 'c', interval: 5, logging: {raw: true, keep: 5}}}]}");
        assert_eq!(w, ["job[a].health.logging.keep: unknown key"]);
    }
}
