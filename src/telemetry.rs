//! The telemetry listener on TCP (SPEC §5): `GET /metrics` and `GET /status`
//! are routes in `api`; this module binds the address and serves them.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;

use crate::api::{self, Ctx, Plane};
use crate::http::server::{self, Limits, Request, ServerHandle};
use crate::metrics::RequestCounter;
use crate::msg::{Msg, Pages};

/// A running telemetry server; dropping it stops it.
pub struct Telemetry {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl Telemetry {
    /// `requests`: the control plane's request counter, which `/metrics`
    /// shows; `pages`: what the loop has rendered for `/metrics` and
    /// `/status`.
    /// Bound at once, answering from `serve` on.
    pub fn prepare(
        addr: SocketAddr,
        tx: Sender<Msg>,
        requests: Arc<Mutex<RequestCounter>>,
        pages: Arc<Pages>,
    ) -> Result<Telemetry, String> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen for telemetry on {addr}: {e}"))?;
        let ctx = Ctx {
            plane: Plane::Telemetry,
            tx,
            config_path: PathBuf::new(),
            requests,
            pages,
            followers: Default::default(),
        };
        let handler = Arc::new(move |req: &Request| api::handle(&ctx, req));
        let handle = server::prepare(listener, handler, Limits::default())
            .map_err(|e| format!("cannot serve telemetry on {addr}: {e}"))?;
        Ok(Telemetry { addr, handle })
    }

    /// Starts answering (once; later calls do nothing).
    pub fn serve(&mut self) -> Result<(), String> {
        let addr = self.addr;
        self.handle
            .open()
            .map_err(|e| format!("cannot serve telemetry on {addr}: {e}"))
    }
}
