//! The loop's seam to the threads that do its work: job runners, health
//! checkers, the discovery worker and poller, and the two HTTP servers.
//!
//! The loop asks a [`Workers`] for each of them and keeps only what it
//! gets back: a channel to send commands on, or a guard whose drop stops a
//! server. [`Threads`] starts the real threads; a unit test passes its own
//! implementation that hands out channels it reads, so every rule of the
//! loop can be checked by looking at what the loop sends, without a
//! process or a socket.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;

use crate::config::ConsulConfig;
use crate::control::Control;
use crate::discovery::{self, Agent, Poller};
use crate::health::{self, CheckCmd, CheckerSpec};
use crate::inbox::Inbox;
use crate::metrics::RequestCounter;
use crate::msg::{Msg, Pages};
use crate::process::{self, RunnerCmd, RunnerSpec};
use crate::telemetry::Telemetry;

/// A server the loop holds: its address is taken when it is made (so a
/// taken one fails start-up before any job starts); it answers from
/// `serve` on; dropping it stops it.
pub trait Server: Send {
    fn serve(&mut self) -> Result<(), String>;
}

pub type Guard = Box<dyn Server>;

impl Server for Control {
    fn serve(&mut self) -> Result<(), String> {
        Control::serve(self)
    }
}

impl Server for Telemetry {
    fn serve(&mut self) -> Result<(), String> {
        Telemetry::serve(self)
    }
}

/// Where the loop gets its workers.
pub trait Workers {
    /// The runner thread of a job with `exec`.
    fn runner(&mut self, spec: RunnerSpec, tx: &Sender<Msg>) -> Result<Inbox<RunnerCmd>, String>;
    /// The checker thread of a job with an exec, http or tcp health check.
    fn checker(&mut self, spec: CheckerSpec, tx: &Sender<Msg>) -> Result<Inbox<CheckCmd>, String>;
    /// The discovery worker and the watch poller for this agent.
    fn discovery(
        &mut self,
        consul: &ConsulConfig,
        tx: &Sender<Msg>,
    ) -> Result<(Agent, Poller), String>;
    /// The control server on `socket` (fails if the socket is taken), not
    /// yet serving.
    fn control(
        &mut self,
        socket: &Path,
        config_path: &Path,
        tx: &Sender<Msg>,
        requests: &Arc<Mutex<RequestCounter>>,
        pages: &Arc<Pages>,
    ) -> Result<Guard, String>;
    /// The telemetry server on `addr`, not yet serving.
    fn telemetry(
        &mut self,
        addr: SocketAddr,
        tx: &Sender<Msg>,
        requests: &Arc<Mutex<RequestCounter>>,
        pages: &Arc<Pages>,
    ) -> Result<Guard, String>;
}

/// The real threads and servers.
pub struct Threads;

impl Workers for Threads {
    fn runner(&mut self, spec: RunnerSpec, tx: &Sender<Msg>) -> Result<Inbox<RunnerCmd>, String> {
        process::start_runner(spec, tx.clone())
    }

    fn checker(&mut self, spec: CheckerSpec, tx: &Sender<Msg>) -> Result<Inbox<CheckCmd>, String> {
        health::start_checker(spec, tx.clone())
    }

    fn discovery(
        &mut self,
        consul: &ConsulConfig,
        tx: &Sender<Msg>,
    ) -> Result<(Agent, Poller), String> {
        let client = discovery::Client::new(consul)?;
        let agent = Agent::start(client.clone())?;
        let tx = tx.clone();
        let report = Box::new(move |r: discovery::WatchResult| {
            let _ = tx.send(Msg::WatchPolled {
                watch: r.key,
                instances: r.instances,
            });
        });
        Ok((agent, Poller::start(client, report)?))
    }

    fn control(
        &mut self,
        socket: &Path,
        config_path: &Path,
        tx: &Sender<Msg>,
        requests: &Arc<Mutex<RequestCounter>>,
        pages: &Arc<Pages>,
    ) -> Result<Guard, String> {
        let c = Control::prepare(
            socket,
            config_path,
            tx.clone(),
            requests.clone(),
            pages.clone(),
        )?;
        Ok(Box::new(c))
    }

    fn telemetry(
        &mut self,
        addr: SocketAddr,
        tx: &Sender<Msg>,
        requests: &Arc<Mutex<RequestCounter>>,
        pages: &Arc<Pages>,
    ) -> Result<Guard, String> {
        let t = Telemetry::prepare(addr, tx.clone(), requests.clone(), pages.clone())?;
        Ok(Box::new(t))
    }
}
