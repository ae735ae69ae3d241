//! A job's `health` block (SPEC §2.3): the probe, its interval, TTL and timeout.

use std::time::Duration;

use super::jobs::exec;
use super::obj::{invalid, Obj};
use super::{Result, Validator};
use crate::config::{HealthConfig, Probe};

const HEALTH_KEYS: &[&str] = &["exec", "interval", "ttl", "timeout", "logging"];

impl Validator<'_> {
    pub(super) fn health(&mut self, job: &Obj, advertised: bool) -> Result<Option<HealthConfig>> {
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
            probe: exec.map_or(Probe::Heartbeat, Probe::Exec),
            interval,
            ttl,
            timeout,
            start_period: Duration::ZERO,
            threshold: 1,
            raw_logging,
        }))
    }
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
}
