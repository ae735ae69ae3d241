//! Helpers for the validator's unit tests: a fake machine, configs from
//! short JSON5 snippets, and their results or first error line.

use std::collections::HashMap;
use std::time::Duration;

use super::validate;
use crate::config::interfaces::{fake_addr, IfAddr};
use crate::config::tree;
use crate::config::{Config, ConfigError, JobConfig, Warning, When};

type Result<T> = std::result::Result<T, ConfigError>;

pub fn machine() -> Vec<IfAddr> {
    vec![
        fake_addr("lo", "127.0.0.1"),
        fake_addr("eth0", "10.0.0.2"),
        fake_addr("eth1", "10.1.0.2"),
    ]
}

pub fn run_env(text: &str, env: &[(&str, &str)]) -> Result<(Config, Vec<Warning>)> {
    let root = tree::parse(text).expect("test config parses");
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    validate(&root, &env, &machine())
}

pub fn ok_env(text: &str, env: &[(&str, &str)]) -> (Config, Vec<String>) {
    match run_env(text, env) {
        Ok((cfg, w)) => (cfg, w.into_iter().map(|w| w.0).collect()),
        Err(e) => panic!("expected a valid config, got: {e}\n{text}"),
    }
}

pub fn ok(text: &str) -> (Config, Vec<String>) {
    ok_env(text, &[])
}

pub fn cfg(text: &str) -> Config {
    ok(text).0
}

pub fn warnings(text: &str) -> Vec<String> {
    ok(text).1
}

pub fn err_env(text: &str, env: &[(&str, &str)]) -> String {
    match run_env(text, env) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(ConfigError::Invalid(m) | ConfigError::OldSchema(m)) => m,
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
}

pub fn err(text: &str) -> String {
    err_env(text, &[])
}

/// The first line of an error (without the `note:` lines).
pub fn err1(text: &str) -> String {
    err(text).lines().next().unwrap_or("").to_string()
}

/// One job in a config with consul, so a `port` means advertised.
pub fn one_job(body: &str) -> String {
    format!("{{consul: 'localhost:8500', jobs: [{{{body}}}]}}")
}

pub fn job(body: &str) -> JobConfig {
    cfg(&one_job(body)).jobs.remove(0)
}

pub fn job_err(body: &str) -> String {
    err1(&one_job(body))
}

pub const SVC: &str =
    "name: 'app', exec: '/bin/app', port: 80, health: {exec: 'check', interval: 5, ttl: 10}";

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn two_jobs(when: &str) -> String {
    format!(
        "{{consul: 'c:1', watches: [{{name: 'db', interval: 5}}], jobs: [\
           {{name: 'a', exec: 'x', when: {when}}}, {{name: 'b', exec: 'y'}}]}}"
    )
}

pub fn first_when(when: &str) -> When {
    cfg(&two_jobs(when)).jobs.remove(0).when
}
