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
//! `https` is refused by [`consul::Client::new`]: the project has no TLS
//! implementation yet (SPEC §6 allows it to be a cargo feature).

pub mod agent;
pub mod consul;
pub mod watch;

#[cfg(test)]
#[path = "../../tests/support/consul.rs"]
pub(crate) mod double;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::{JobConfig, TelemetryConfig};

pub use agent::{Agent, Command, Tuning};
pub use consul::{Client, ConsulError};
pub use watch::{watch_events, Poller, WatchResult, WatchState};

/// One healthy instance of a watched service: (address, port).
pub type Instance = (String, u16);

/// The service the telemetry endpoint is advertised as (SPEC §5).
pub const TELEMETRY_SERVICE: &str = "containerpilot";
/// The telemetry service's check TTL, as 3.x hard-coded it.
pub const TELEMETRY_TTL: Duration = Duration::from_secs(15);
/// How often the loop heartbeats the telemetry service while its listener is up.
pub const TELEMETRY_HEARTBEAT: Duration = Duration::from_secs(5);

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

    /// The telemetry endpoint as service `containerpilot`: the configured
    /// tags plus the version, a 15 s TTL (SPEC §5). Registered at its first
    /// heartbeat, as 3.x.
    pub fn for_telemetry(t: &TelemetryConfig, hostname: &str) -> Registration {
        let mut tags = t.tags.clone();
        tags.push(crate::VERSION.to_string());
        Registration {
            id: service_id(TELEMETRY_SERVICE, hostname),
            name: TELEMETRY_SERVICE.to_string(),
            address: Some(t.address.to_string()),
            port: t.port,
            tags,
            ttl: TELEMETRY_TTL,
            initial_status: None,
            enable_tag_override: false,
            deregister_critical_service_after: None,
        }
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
    use crate::config::{HealthConfig, Restarts, ServiceConfig, When};

    fn job(port: Option<u16>, advertised: bool) -> JobConfig {
        JobConfig {
            name: "web".into(),
            exec: Some(vec!["true".into()]),
            when: When::Startup,
            timeout: None,
            stop_timeout: Duration::ZERO,
            restarts: Restarts::Never,
            health: Some(HealthConfig {
                exec: None,
                interval: Duration::from_secs(1),
                ttl: Some(Duration::from_millis(1500)),
                timeout: Duration::from_secs(1),
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
            raw_logging: false,
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
        let t = TelemetryConfig {
            port: 9090,
            interfaces: vec![],
            address: "10.0.0.9".parse().unwrap(),
            tags: vec!["prod".into()],
            metrics: vec![],
        };
        let r = Registration::for_telemetry(&t, "h");
        assert_eq!(r.id, "containerpilot-h");
        assert_eq!(r.tags, vec!["prod".to_string(), crate::VERSION.to_string()]);
        assert_eq!((r.ttl, r.initial_status.clone()), (TELEMETRY_TTL, None));
        assert_eq!((r.address.as_deref(), r.port), (Some("10.0.0.9"), 9090));
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
