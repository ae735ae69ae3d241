//! The environment every process starts with (SPEC §3.2): ours, overlaid
//! with every `/v3/env` change so far, plus `CONTAINERPILOT_PID`, each
//! advertised job's `CONTAINERPILOT_{JOB}_IP` and each running job's
//! `CONTAINERPILOT_{JOB}_PID`.

use std::collections::BTreeMap;

use super::App;

impl App {
    pub(super) fn child_env(&self) -> Vec<(String, String)> {
        let mut env = self.base_env.clone();
        for (k, v) in &self.env_changes {
            match v {
                Some(v) => env.insert(k.clone(), v.clone()),
                None => env.remove(k),
            };
        }
        env.insert("CONTAINERPILOT_PID".into(), std::process::id().to_string());
        for e in &self.entries {
            let key = env_key(e.job.name());
            if let Some(addr) = e
                .job
                .cfg
                .service
                .as_ref()
                .filter(|s| s.advertised)
                .and_then(|s| s.address)
            {
                env.insert(format!("CONTAINERPILOT_{key}_IP"), addr.to_string());
            }
            if let Some(pid) = e.job.pid {
                env.insert(format!("CONTAINERPILOT_{key}_PID"), pid.to_string());
            }
        }
        env.into_iter().collect()
    }

    /// Apply `/v3/env` changes (already validated); `None` unsets.
    pub(super) fn put_env(&mut self, pairs: Vec<(String, Option<String>)>) {
        for (k, v) in pairs {
            self.env_changes.insert(k, v);
        }
    }
}

/// The environment we were started with, as children inherit it.
pub(super) fn base_env() -> BTreeMap<String, String> {
    crate::config::environment().into_iter().collect()
}

/// A job name as it appears in a variable name: `my-job` → `MY_JOB`.
pub fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys() {
        assert_eq!(env_key("my-job"), "MY_JOB");
        assert_eq!(env_key("app.v2"), "APP_V2");
    }
}
