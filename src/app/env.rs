//! The environment every process starts with (SPEC §3.2): ours, overlaid
//! with every `/v3/env` change so far, plus `CONTAINERPILOT_PID`, each
//! advertised job's `CONTAINERPILOT_{JOB}_IP` and each running job's
//! `CONTAINERPILOT_{JOB}_PID` (with duplicate names, the copy started
//! last). Built once and shared until something in it changes, so 300 jobs
//! starting together do not build it 300 times.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::msg::Env;

use super::App;

impl App {
    pub(super) fn child_env(&mut self) -> Arc<Env> {
        if let Some(env) = &self.env_cache {
            return env.clone();
        }
        let mut env = self.base_env.clone();
        for (k, v) in &self.env_changes {
            match v {
                Some(v) => env.insert(k.clone(), v.clone()),
                None => env.remove(k),
            };
        }
        env.insert("CONTAINERPILOT_PID".into(), std::process::id().to_string());
        let mut latest: BTreeMap<String, u64> = BTreeMap::new();
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
                let newest = latest.get(&key).is_none_or(|seq| e.started_seq >= *seq);
                if newest {
                    latest.insert(key.clone(), e.started_seq);
                    env.insert(format!("CONTAINERPILOT_{key}_PID"), pid.to_string());
                }
            }
        }
        let env: Arc<Env> = Arc::new(env.into_iter().collect());
        self.env_cache = Some(env.clone());
        env
    }

    /// Something the child environment shows changed.
    pub(super) fn env_changed(&mut self) {
        self.env_cache = None;
        self.check_env_stale = true;
    }

    /// Apply `/v3/env` changes (already validated); `None` unsets.
    pub(super) fn put_env(&mut self, pairs: Vec<(String, Option<String>)>) {
        for (k, v) in pairs {
            self.env_changes.insert(k, v);
        }
        self.env_changed();
    }
}

/// The environment we were started with, as children inherit it.
pub(super) fn base_env() -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = crate::config::environment().into_iter().collect();
    // Inherited sd_notify variables (run under systemd or podman): no job
    // may see them but through its own `notify`.
    for var in crate::notify::INHERITED_ENV {
        env.remove(var);
    }
    env
}

/// A job name as it appears in a variable name: every character outside
/// `[A-Za-z0-9_]` becomes `_`, letters are upper-cased (`my-job` → `MY_JOB`).
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
        assert_eq!(env_key("/usr/bin/env"), "_USR_BIN_ENV");
    }
}
