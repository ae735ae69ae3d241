//! Maintenance mode (SPEC §3.6): every job's status becomes `maintenance`,
//! checks stop, every service leaves discovery, and `enterMaintenance` is
//! published; leaving it, statuses return to `unknown`, checks resume,
//! services come back at their next passing check, and `exitMaintenance`
//! is published. Asking twice for the same mode changes nothing.

use std::time::Instant;

use crate::discovery::Command as DiscoveryCmd;
use crate::event::{Event, EventCode};
use crate::log;

use super::App;

impl App {
    /// Whether anything changed.
    pub(super) fn set_maintenance(&mut self, on: bool) -> bool {
        if self.maintenance == on {
            return false;
        }
        self.maintenance = on;
        log::info(if on {
            "entering maintenance mode"
        } else {
            "leaving maintenance mode"
        });
        let now = Instant::now();
        for i in 0..self.entries.len() {
            let actions = self.entries[i].job.set_maintenance(on, now);
            self.apply(i, actions);
        }
        if on {
            // Not `Deregister` each: that forgets a service for good. These
            // come back at their first passing check after maintenance.
            self.discover(DiscoveryCmd::DeregisterAll {
                done: Box::new(|| {}),
            });
        }
        let code = if on {
            EventCode::EnterMaintenance
        } else {
            EventCode::ExitMaintenance
        };
        self.publish(Event::global(code));
        self.drain();
        if !on {
            self.telemetry_up();
        }
        true
    }
}
