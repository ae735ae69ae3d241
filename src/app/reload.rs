//! Reload (SPEC §3.5): which running jobs a new configuration keeps,
//! replaces, removes or adds, decided by a pure [`plan`], and the loop
//! carrying that plan out.
//!
//! Jobs are paired by name, and since two jobs may share a name (SPEC
//! §2.3), the k-th job of a name in the old file goes with the k-th job of
//! that name in the new one. A pair with an identical definition is kept
//! running untouched; a pair that differs is replaced; the rest are added
//! or removed.

use std::collections::HashMap;
use std::time::Instant;

use crate::config::{Config, JobConfig};
use crate::health::CheckCmd;
use crate::log;

use super::{App, Entry, Retiring};

/// What a reload does with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `old[old]` stays as it is and is now `new[new]`.
    Keep { old: usize, new: usize },
    /// `old[old]` stops; `new[new]` starts once it is gone.
    Replace { old: usize, new: usize },
    /// `new[new]` starts as it would at start-up.
    Add { new: usize },
    /// `old[old]` stops as in shutdown.
    Remove { old: usize },
}

/// The steps, in the order of the new file, then the removals in the order
/// of the old one.
pub fn plan(old: &[&JobConfig], new: &[JobConfig]) -> Vec<Step> {
    // For each name, the positions in `old` not yet paired, in order.
    let mut unpaired: HashMap<&str, std::collections::VecDeque<usize>> = HashMap::new();
    for (i, jc) in old.iter().enumerate() {
        unpaired.entry(jc.name.as_str()).or_default().push_back(i);
    }
    let mut steps = Vec::with_capacity(new.len());
    for (n, jc) in new.iter().enumerate() {
        let paired = unpaired
            .get_mut(jc.name.as_str())
            .and_then(|q| q.pop_front());
        steps.push(match paired {
            Some(o) if *old[o] == *jc => Step::Keep { old: o, new: n },
            Some(o) => Step::Replace { old: o, new: n },
            None => Step::Add { new: n },
        });
    }
    let mut removed: Vec<usize> = unpaired.into_values().flatten().collect();
    removed.sort_unstable();
    steps.extend(removed.into_iter().map(|o| Step::Remove { old: o }));
    steps
}

impl App {
    /// Apply a validated new config: unchanged jobs keep running untouched,
    /// removed jobs stop as in shutdown, changed jobs stop and then start
    /// with their new definition, new jobs start as at start-up.
    pub(super) fn reload(&mut self, new: Config) {
        log::info("reloading configuration");
        let old = std::mem::replace(&mut self.cfg, new);
        self.metrics.reconfigure(super::user_metrics(&self.cfg));
        self.move_control();
        self.move_telemetry();
        let consul_changed = old.consul != self.cfg.consul;
        if consul_changed {
            self.restart_discovery();
        }
        if old.logging != self.cfg.logging {
            if let Err(e) = log::init(&self.cfg.logging) {
                log::error(&format!("cannot switch logging: {e}"));
            }
        }
        let now = Instant::now();

        // Jobs already on their way out (retiring from an earlier reload)
        // take no part in the pairing.
        let (live, mut leaving): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| e.retiring == Retiring::No);
        let steps = {
            let old_cfgs: Vec<&JobConfig> = live.iter().map(|e| &e.job.cfg).collect();
            plan(&old_cfgs, &self.cfg.jobs)
        };
        let mut live: Vec<Option<Entry>> = live.into_iter().map(Some).collect();
        let mut order: Vec<Entry> = Vec::with_capacity(self.cfg.jobs.len());
        for step in steps {
            match step {
                Step::Keep { old, new } => {
                    let Some(mut e) = live[old].take() else {
                        continue;
                    };
                    let dependants =
                        super::stopping_dependants(&self.cfg, &self.cfg.jobs[new].name);
                    e.job.update_context(dependants, self.cfg.stop_timeout);
                    // Pollables restart: its checks run an interval from
                    // now, its status untouched.
                    if let (true, Some(c)) = (e.checking, &e.checker) {
                        c.send(CheckCmd::Pause);
                        c.send(CheckCmd::Resume);
                    }
                    order.push(e);
                }
                Step::Replace { old, new } => {
                    let jc = self.cfg.jobs[new].clone();
                    let Some(mut prev) = live[old].take() else {
                        continue;
                    };
                    match self.new_entry(jc) {
                        Ok(mut fresh) => {
                            log::info(&format!(
                                "job[{}] changed: restarting it with the new definition",
                                fresh.job.name()
                            ));
                            prev.retiring = Retiring::Replaced { by: fresh.id };
                            fresh.pending_start = true;
                            order.push(fresh);
                        }
                        Err(msg) => {
                            log::error(&msg);
                            prev.retiring = Retiring::Removed;
                        }
                    }
                    leaving.push(prev);
                }
                Step::Add { new } => match self.new_entry(self.cfg.jobs[new].clone()) {
                    Ok(mut fresh) => {
                        log::info(&format!("job[{}] added", fresh.job.name()));
                        fresh.pending_start = true;
                        order.push(fresh);
                    }
                    Err(msg) => log::error(&msg),
                },
                Step::Remove { old } => {
                    let Some(mut e) = live[old].take() else {
                        continue;
                    };
                    log::info(&format!("job[{}] removed: stopping it", e.job.name()));
                    e.retiring = Retiring::Removed;
                    leaving.push(e);
                }
            }
        }
        let first_leaving = order.len();
        order.extend(leaving);
        self.entries = order;
        for i in first_leaving..self.entries.len() {
            let quiet = matches!(self.entries[i].retiring, Retiring::Replaced { .. });
            if !self.entries[i].job.is_stopped() && !self.entries[i].job.is_stopping() {
                let actions = self.entries[i].job.retire(now, quiet);
                self.apply(i, actions);
            }
        }
        // Added jobs start now; replacements wait for their predecessor (sweep).
        let waiting: Vec<_> = self.entries[first_leaving..]
            .iter()
            .filter_map(|e| match e.retiring {
                Retiring::Replaced { by } => Some(by),
                _ => None,
            })
            .collect();
        for i in 0..first_leaving {
            if self.entries[i].pending_start && !waiting.contains(&self.entries[i].id) {
                self.start_new(i);
            }
        }
        if consul_changed {
            for i in 0..first_leaving {
                if !self.entries[i].pending_start {
                    self.register(i);
                }
            }
        }
        let names: Vec<String> = self.cfg.jobs.iter().map(|j| j.name.clone()).collect();
        self.stats.retain(|name, _| names.contains(name));
        self.env_changed();
        self.set_watches(now);
        self.drain();
        self.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::job;

    fn names(v: &[JobConfig]) -> Vec<&JobConfig> {
        v.iter().collect()
    }

    #[test]
    fn identical_jobs_are_kept_changed_ones_replaced() {
        let old = vec![job("a", "true"), job("b", "true")];
        let new = vec![job("b", "false"), job("a", "true"), job("c", "true")];
        assert_eq!(
            plan(&names(&old), &new),
            [
                Step::Replace { old: 1, new: 0 },
                Step::Keep { old: 0, new: 1 },
                Step::Add { new: 2 },
            ]
        );
    }

    #[test]
    fn jobs_missing_from_the_new_file_are_removed_in_old_order() {
        let old = vec![job("a", "true"), job("b", "true"), job("c", "true")];
        let new = vec![job("b", "true")];
        assert_eq!(
            plan(&names(&old), &new),
            [
                Step::Keep { old: 1, new: 0 },
                Step::Remove { old: 0 },
                Step::Remove { old: 2 },
            ]
        );
    }

    #[test]
    fn duplicates_pair_kth_with_kth() {
        // Two jobs named `web` (SPEC §2.3): the k-th of the old file goes with
        // the k-th of the new one, whatever the others look like.
        let old = vec![job("web", "one"), job("web", "two")];
        let new = vec![job("web", "two"), job("web", "two"), job("web", "three")];
        assert_eq!(
            plan(&names(&old), &new),
            [
                Step::Replace { old: 0, new: 0 },
                Step::Keep { old: 1, new: 1 },
                Step::Add { new: 2 },
            ]
        );
        let fewer = vec![job("web", "one")];
        assert_eq!(
            plan(&names(&old), &fewer),
            [Step::Keep { old: 0, new: 0 }, Step::Remove { old: 1 }]
        );
    }

    #[test]
    fn an_empty_new_file_removes_everything() {
        let old = vec![job("a", "true")];
        assert_eq!(plan(&names(&old), &[]), [Step::Remove { old: 0 }]);
        assert_eq!(plan(&[], &[job("a", "true")]), [Step::Add { new: 0 }]);
    }
}
