//! The loop's two servers: the control socket and the telemetry listener,
//! started at start-up and moved by a reload whose config moves them, and
//! the telemetry service's health, which is its listener being up.

use std::net::SocketAddr;
use std::path::Path;

use crate::log;

use super::{workers, App, Retiring};

impl App {
    /// Listen on the control socket; failing to is fatal at start-up.
    pub fn start_control(&mut self) -> Result<(), String> {
        let path = self.cfg.control.socket.clone();
        let guard = self.open_control(&path)?;
        self.control = Some((path, guard));
        Ok(())
    }

    /// Start answering on the servers bound so far. Start-up binds them
    /// before the first job starts (a taken address stops it there) and
    /// calls this after: their threads are not on the way to the jobs.
    pub fn serve(&mut self) -> Result<(), String> {
        for (_, guard) in self.control.iter_mut() {
            guard.serve()?;
        }
        for (_, guard) in self.telemetry.iter_mut() {
            guard.serve()?;
        }
        Ok(())
    }

    pub(super) fn open_control(&mut self, path: &Path) -> Result<workers::Guard, String> {
        self.workers.control(
            path,
            &self.config_path,
            &self.tx,
            &self.requests,
            &self.pages,
        )
    }

    pub(super) fn telemetry_addr(&self) -> Option<SocketAddr> {
        let t = self.cfg.telemetry.as_ref()?;
        Some(SocketAddr::new(t.address, t.port))
    }

    /// Listen for telemetry if configured; failing to is fatal at start-up.
    pub fn start_telemetry(&mut self) -> Result<(), String> {
        if let Some(addr) = self.telemetry_addr() {
            let guard = self
                .workers
                .telemetry(addr, &self.tx, &self.requests, &self.pages)?;
            self.telemetry = Some((addr, guard));
        }
        Ok(())
    }

    pub(super) fn telemetry_entry(&self) -> Option<usize> {
        self.telemetry.as_ref()?;
        self.entries.iter().position(|e| {
            e.retiring == Retiring::No
                && e.job.cfg.exec.is_none()
                && e.job.name() == crate::config::TELEMETRY_SERVICE
        })
    }

    /// The telemetry service is healthy whenever its listener is up: say so
    /// at once rather than at its first heartbeat.
    pub(super) fn telemetry_up(&mut self) {
        if let Some(i) = self.telemetry_entry() {
            self.heartbeat(i);
        }
    }

    /// Reload changed the telemetry block: stop the old listener first (the
    /// new one may want the same port), then start the new one.
    pub(super) fn move_telemetry(&mut self) {
        if self.telemetry.as_ref().map(|t| t.0) == self.telemetry_addr() {
            return;
        }
        // Dropping the guard stops the old server.
        self.telemetry = None;
        match self.start_telemetry().and_then(|()| self.serve()) {
            Ok(()) => self.telemetry_up(),
            Err(e) => log::error(&e),
        }
    }

    /// Reload moved the socket: listen on the new path before leaving the
    /// old one, so a failure keeps the control plane where it was.
    pub(super) fn move_control(&mut self) {
        let path = self.cfg.control.socket.clone();
        if self.control.as_ref().is_some_and(|c| c.0 == path) {
            return;
        }
        let opened = self.open_control(&path).and_then(|mut guard| {
            guard.serve()?;
            Ok(guard)
        });
        match opened {
            Ok(guard) => {
                log::info(&format!("control socket moved to {}", path.display()));
                // Dropping the old one stops it and removes its socket file.
                self.control = Some((path, guard));
            }
            Err(e) => log::error(&format!("{e}; the control socket stays where it was")),
        }
    }
}
