//! Service discovery through a Consul agent (SPEC §6): what we register and
//! how it is named, the agent HTTP client, the agent worker thread that
//! registers, heartbeats and deregisters, and the watch poller.
//!
//! - [`consul`]: the HTTP calls, one function per agent endpoint.
//! - [`agent`]: one thread that owns every registration and applies the
//!   event loop's commands in order, retrying with capped backoff while the
//!   agent is unreachable. The loop never waits for Consul.
//! - [`watch`]: one thread that runs health queries when the loop asks (the
//!   loop holds each watch's interval deadline), and the pure rule that
//!   turns two successive polls into `changed`/`healthy`/`unhealthy`.
//!
//! `https` goes through TLS (`http::tls`, the cargo feature `tls`; a build
//! without it refuses https): [`crate::config::agent::resolve`] merges the config with
//! the 3.x `CONSUL_*` variables, and the validator calls [`crate::config::agent::check`]
//! so that bad CA, certificate and key files stop start-up.
//!
//! How the event loop drives it (only when `consul` is configured):
//! - Start-up: `Client::new(&cfg.consul)`, `Agent::start(client.clone())`,
//!   and, if there are watches, `Poller::start(client, report)` where
//!   `report` sends the `WatchResult` to the loop as a message.
//! - For each advertised job, `Register(Registration::for_job(..))` once
//!   when the job is set up (again only for a new or changed job after a
//!   reload). The telemetry service is a job like any other
//!   (`config::add_telemetry_job`), so it is registered the same way.
//! - `Action::Pass` → `Pass{id}`, `Action::Fail(out)` → `Fail{id, output}`,
//!   `Action::Deregister` → `Deregister{id}` (the job stopped for good).
//! - Shutdown, first thing: `DeregisterAll{done}` with `done` sending a
//!   message to the loop; carry on when it arrives (it is bounded by
//!   `Tuning::deregister_all_bound`, 5 s; keep a slightly later deadline as
//!   a safety net). Maintenance on: `DeregisterAll` with a no-op `done`.
//! - Watches: at each watch's interval deadline `poller.poll(key, &watch)`;
//!   on its result, `WatchState::update(result.instances)` gives the
//!   events to publish from `watch.NAME`.

pub mod agent;
pub mod consul;
pub mod watch;

#[cfg(test)]
#[path = "../../tests/support/consul.rs"]
pub(crate) mod double;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::JobConfig;

pub use agent::{Agent, Command};
pub use consul::Client;
pub use watch::{Poller, WatchResult, WatchState};

pub use crate::msg::Instance;

/// Everything Consul needs to register one service with its TTL check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// `NAME-HOSTNAME` (3.x), unique per node.
    pub id: String,
    pub name: String,
    /// The advertised IP; `None` lets Consul use the node's address.
    pub address: Option<String>,
    pub port: u16,
    pub tags: Vec<String>,
    pub ttl: Duration,
    /// `passing`, `warning` or `critical`: register at start-up with this
    /// status. `None`: register at the first passing check.
    pub initial_status: Option<String>,
    pub enable_tag_override: bool,
    pub deregister_critical_service_after: Option<Duration>,
}

impl Registration {
    /// The registration of an advertised job; `None` when the job is not
    /// advertised (no port, or discovery off) or has no TTL.
    pub fn for_job(job: &JobConfig, hostname: &str) -> Option<Registration> {
        let svc = job.service.as_ref().filter(|s| s.advertised)?;
        let ttl = job.health.as_ref()?.ttl?;
        Some(Registration {
            id: service_id(&job.name, hostname),
            name: job.name.clone(),
            address: svc.address.map(|a| a.to_string()),
            port: svc.port,
            tags: svc.tags.clone(),
            ttl,
            initial_status: svc.initial_status.clone(),
            enable_tag_override: svc.enable_tag_override,
            deregister_critical_service_after: svc.deregister_critical_service_after,
        })
    }
}

/// `NAME-HOSTNAME`, the service ID 3.x registered (its check is `service:ID`).
pub fn service_id(name: &str, hostname: &str) -> String {
    format!("{name}-{hostname}")
}

/// This machine's hostname (the container ID under Docker), as 3.x used it
/// in service IDs. Empty if the kernel will not say.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Warnings about a failing endpoint, at most one per key per period, so an
/// agent that is down for an hour does not flood the log.
pub(crate) struct Warnings {
    every: Duration,
    last: HashMap<String, Instant>,
}

impl Warnings {
    pub(crate) fn new(every: Duration) -> Warnings {
        Warnings {
            every,
            last: HashMap::new(),
        }
    }

    /// Logs `msg` unless `key` was warned about less than a period ago.
    /// Returns whether it was logged.
    pub(crate) fn warn(&mut self, key: &str, msg: &str) -> bool {
        let now = Instant::now();
        match self.last.get(key) {
            Some(at) if now.duration_since(*at) < self.every => false,
            _ => {
                self.last.insert(key.to_string(), now);
                crate::log::warn(msg);
                true
            }
        }
    }

    /// `key` works again: say so once if it had been failing, and let its
    /// next failure be reported at once.
    pub(crate) fn ok(&mut self, key: &str) {
        if self.last.remove(key).is_some() {
            crate::log::info(&format!("discovery: {key} succeeded again"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HealthConfig, ServiceConfig};

    fn job(port: Option<u16>, advertised: bool) -> JobConfig {
        JobConfig {
            health: Some(HealthConfig {
                probe: crate::config::Probe::Heartbeat,
                interval: Duration::from_secs(1),
                ttl: Some(Duration::from_millis(1500)),
                timeout: Duration::from_secs(1),
                start_period: Duration::ZERO,
                threshold: 1,
                raw_logging: false,
            }),
            service: port.map(|port| ServiceConfig {
                port,
                advertised,
                address: Some("10.0.0.5".parse().unwrap()),
                interfaces: vec![],
                tags: vec!["a".into()],
                initial_status: Some("warning".into()),
                enable_tag_override: true,
                deregister_critical_service_after: Some(Duration::from_secs(600)),
            }),
            ..JobConfig::plain("web", Some(vec!["true".into()]))
        }
    }

    #[test]
    fn registration_of_an_advertised_job() {
        let r = Registration::for_job(&job(Some(80), true), "host1").unwrap();
        assert_eq!(r.id, "web-host1");
        assert_eq!(
            (r.name.as_str(), r.address.as_deref(), r.port),
            ("web", Some("10.0.0.5"), 80)
        );
        assert_eq!(
            (r.ttl, r.initial_status.as_deref()),
            (Duration::from_millis(1500), Some("warning"))
        );
        assert!(r.enable_tag_override);
        assert_eq!(
            r.deregister_critical_service_after,
            Some(Duration::from_secs(600))
        );
        assert_eq!(Registration::for_job(&job(Some(80), false), "h"), None);
        assert_eq!(Registration::for_job(&job(None, true), "h"), None);
    }

    #[test]
    fn telemetry_registration() {
        let text = r#"{ consul: "127.0.0.1:8500",
            telemetry: { port: 9090, interfaces: ["static:10.0.0.9"], tags: ["prod"] } }"#;
        let env = std::collections::HashMap::new();
        let (cfg, _) = crate::config::parse_and_validate(text, &env, &[]).unwrap();
        let job = cfg
            .jobs
            .iter()
            .find(|j| j.name == "containerpilot")
            .unwrap();
        let r = Registration::for_job(job, "h").unwrap();
        assert_eq!(r.id, "containerpilot-h");
        assert_eq!(
            r.tags,
            vec!["prod".to_string(), crate::version::VERSION.to_string()]
        );
        assert_eq!(
            (r.ttl, r.initial_status.clone()),
            (Duration::from_secs(15), None)
        );
        assert_eq!((r.address.as_deref(), r.port), (Some("10.0.0.9"), 9090));
        assert_eq!(
            job.health.as_ref().unwrap().interval,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn warnings_are_rate_limited_per_key() {
        let mut w = Warnings::new(Duration::from_secs(60));
        assert!(w.warn("a", "discovery test: a failed"));
        assert!(!w.warn("a", "discovery test: a failed"));
        assert!(w.warn("b", "discovery test: b failed"));
        w.ok("a");
        assert!(w.warn("a", "discovery test: a failed"));
    }
}

/// The test double itself, so integration tests can trust it.
#[cfg(test)]
mod double_tests {
    use super::double::FakeConsul;
    use crate::http::tcp_request;
    use serde_json::{json, Value};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    const T: Duration = Duration::from_secs(10);

    fn call(fake: &FakeConsul, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let body = body.map(|b| b.to_string());
        let r = tcp_request(
            &fake.addr(),
            method,
            path,
            &[],
            body.as_deref().map(str::as_bytes),
            T,
        )
        .unwrap();
        (r.status, r.text().into_owned())
    }

    fn register(fake: &FakeConsul, body: Value) {
        assert_eq!(
            call(fake, "PUT", "/v1/agent/service/register", Some(body)),
            (200, String::new())
        );
    }

    #[test]
    fn keep_alive_serves_several_requests_on_one_connection() {
        let fake = FakeConsul::start();
        let mut s = TcpStream::connect(fake.addr()).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let body = r#"{"Name":"web","Port":80}"#;
        write!(s, "PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .unwrap();
        write!(s, "GET /v1/agent/services HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut r = BufReader::new(s);
        let mut statuses = vec![];
        let mut last_body = String::new();
        for _ in 0..2 {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            statuses.push(line.trim_end().to_string());
            let mut len = 0;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim_end().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut b = vec![0; len];
            r.read_exact(&mut b).unwrap();
            last_body = String::from_utf8(b).unwrap();
        }
        assert_eq!(statuses, ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]);
        let services: Value = serde_json::from_str(&last_body).unwrap();
        assert_eq!(services["web"]["Port"], 80);
        assert_eq!(services["web"]["Address"], "");
    }

    #[test]
    fn agent_endpoints_answer_as_consul() {
        let fake = FakeConsul::start();
        register(
            &fake,
            json!({"id": "web-1", "name": "web", "port": 80, "tags": ["x"], "check": {"ttl": "5s"}}),
        );
        let checks = fake.checks();
        let c = &checks["service:web-1"];
        assert_eq!(
            (c.status.as_str(), c.name.as_str(), c.ttl),
            (
                "critical",
                "Service 'web' check",
                Some(Duration::from_secs(5))
            )
        );
        assert_eq!(
            call(
                &fake,
                "PUT",
                "/v1/agent/check/pass/service:web-1?note=fine",
                None
            )
            .0,
            200
        );
        let (status, body) = call(&fake, "GET", "/v1/agent/checks", None);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status, 200);
        assert_eq!(v["service:web-1"]["Status"], "passing");
        assert_eq!(v["service:web-1"]["Output"], "fine");
        assert_eq!(v["service:web-1"]["ServiceTags"], json!(["x"]));
        assert_eq!(
            call(&fake, "GET", "/v1/agent/service/register", None).0,
            405
        );
        assert_eq!(call(&fake, "GET", "/v1/nope", None).0, 404);
        assert_eq!(
            call(
                &fake,
                "PUT",
                "/v1/agent/check/update/service:web-1",
                Some(json!({"Status": "ok"}))
            ),
            (400, "Invalid check status: 'ok'".to_string())
        );
        assert_eq!(
            call(&fake, "PUT", "/v1/agent/service/deregister/nope", None),
            (404, r#"Unknown service ID "nope". Ensure that the service ID is passed, not the service name."#.into())
        );
        assert_eq!(
            call(
                &fake,
                "PUT",
                "/v1/agent/service/register",
                Some(json!({"Port": 1}))
            )
            .0,
            400
        );
        assert_eq!(
            call(
                &fake,
                "PUT",
                "/v1/agent/service/register",
                Some(json!({"Name": "a", "Check": {}}))
            )
            .0,
            400
        );
        let (status, _) = call(
            &fake,
            "PUT",
            "/v1/agent/service/register",
            Some(json!({"Name": "a", "Address": "0.0.0.0"})),
        );
        assert_eq!(status, 400);
        fake.set_error(Some(503));
        assert_eq!(call(&fake, "GET", "/v1/agent/services", None).0, 503);
    }

    #[test]
    fn ttls_run_out_and_critical_services_are_reaped() {
        let fake = FakeConsul::start();
        register(
            &fake,
            json!({"ID": "web-1", "Name": "web", "Check": {"TTL": "200ms", "Status": "passing",
                   "DeregisterCriticalServiceAfter": "300ms"}}),
        );
        assert!(fake.wait_for(T, |s| s
            .checks
            .get("service:web-1")
            .is_some_and(|c| c.status == "critical" && c.output == "TTL expired")));
        assert!(fake.wait_for(T, |s| s.services.is_empty() && s.checks.is_empty()));
    }

    #[test]
    fn token_is_required_when_set() {
        let fake = FakeConsul::start();
        fake.require_token(Some("t"));
        assert_eq!(
            call(&fake, "GET", "/v1/agent/services", None),
            (403, "Permission denied".into())
        );
        assert_eq!(
            call(&fake, "GET", "/v1/agent/services?token=t", None).0,
            200
        );
        let r = tcp_request(
            &fake.addr(),
            "GET",
            "/v1/agent/services",
            &[("X-Consul-Token", "t")],
            None,
            T,
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }

    #[test]
    fn health_combines_the_catalog_and_the_agent() {
        let fake = FakeConsul::start();
        fake.set_instances("web", "dc1", vec![("10.0.0.1", 80, vec!["a"])]);
        register(
            &fake,
            json!({"ID": "web-2", "Name": "web", "Port": 81, "Tags": ["b"], "Check": {"TTL": "1m", "Status": "passing"}}),
        );
        register(
            &fake,
            json!({"ID": "web-3", "Name": "web", "Port": 82, "Check": {"TTL": "1m"}}),
        );
        let ports = |q: &str| {
            let (status, body) = call(&fake, "GET", &format!("/v1/health/service/web{q}"), None);
            assert_eq!(status, 200, "{body}");
            let v: Vec<Value> = serde_json::from_str(&body).unwrap();
            v.iter()
                .map(|e| e["Service"]["Port"].as_u64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(ports(""), [80, 81, 82]);
        assert_eq!(ports("?passing"), [80, 81]);
        assert_eq!(ports("?passing=1&tag=b"), [81]);
        assert_eq!(ports("?passing=false&tag=a&tag=b"), Vec::<u64>::new());
        assert_eq!(ports("?tag="), Vec::<u64>::new());
        fake.restart();
        assert_eq!(ports("?passing=1"), [80]);
    }
}
