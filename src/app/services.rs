//! The loop's side of discovery (SPEC §6): starting the Consul agent
//! worker and the watch poller, registering services, sending them what
//! the jobs say, and turning watch polls into events.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::discovery::{self, Command as DiscoveryCmd, Registration, WatchState};
use crate::event::Event;
use crate::job::next_tick;
use crate::log;

use super::{App, Watch};

impl App {
    /// The Consul agent worker and the watch poller, when `consul` is set.
    pub(super) fn start_discovery(&mut self) -> Result<(), String> {
        let Some(consul) = &self.cfg.consul else {
            return Ok(());
        };
        let (agent, poller) = self.workers.discovery(consul, &self.tx)?;
        self.agent = Some(agent);
        self.poller = Some(poller);
        Ok(())
    }

    /// Reload pointed discovery elsewhere (or turned it on or off): leave
    /// the old agent cleanly and start over with the new one.
    pub(super) fn restart_discovery(&mut self) {
        if let Some(old) = self.agent.take() {
            old.send(DiscoveryCmd::DeregisterAll {
                done: Box::new(|| {}),
            });
            // Dropping detaches: the worker finishes deregistering on its own.
        }
        self.poller = None;
        if let Err(e) = self.start_discovery() {
            log::error(&format!("cannot start discovery with the new config: {e}"));
        }
    }

    /// (Re)build the watch list. After a reload every watch's next poll
    /// counts as its first (SPEC §3.5: 3.x rebuilt its discovery state, and
    /// `changed` hooks run again), and it is polled at once.
    pub(super) fn set_watches(&mut self, now: Instant) {
        let mut old = std::mem::take(&mut self.watches);
        for cfg in self.cfg.watches.clone() {
            let mut state = match old.iter().position(|w| w.cfg == cfg) {
                Some(p) => old.remove(p).state,
                None => WatchState::default(),
            };
            state.rearm();
            self.next_id += 1;
            self.watches.push(Watch {
                key: self.next_id,
                cfg,
                state,
                due: now,
            });
        }
    }

    pub(super) fn register(&self, i: usize) {
        let e = &self.entries[i];
        if let (Some(agent), Some(mut reg)) = (
            &self.agent,
            Registration::for_job(&e.job.cfg, &self.hostname),
        ) {
            if self.maintenance {
                // Added by a reload during maintenance: nothing may be
                // registered now; it comes in at its first passing check
                // after maintenance, as every other service does.
                reg.initial_status = None;
            }
            agent.send(DiscoveryCmd::Register(reg));
        }
    }

    pub(super) fn service_id(&self, i: usize) -> String {
        discovery::service_id(self.entries[i].job.name(), &self.hostname)
    }

    pub(super) fn discover(&self, cmd: DiscoveryCmd) {
        if let Some(agent) = &self.agent {
            agent.send(cmd);
        }
    }

    pub(super) fn poll_watches(&mut self, now: Instant) {
        for w in &mut self.watches {
            if w.due > now {
                continue;
            }
            if let Some(p) = &self.poller {
                p.poll(w.key, &w.cfg);
            }
            w.due = next_tick(w.due, w.cfg.interval, now);
        }
    }

    pub(super) fn on_watched(
        &mut self,
        key: u64,
        instances: Option<BTreeSet<discovery::Instance>>,
    ) {
        let Some(w) = self.watches.iter_mut().find(|w| w.key == key) else {
            return;
        };
        let source = format!("watch.{}", w.cfg.name);
        for code in w.state.update(instances) {
            self.publish(Event::new(code, &source));
        }
    }
}
