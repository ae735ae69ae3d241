//! The telemetry endpoint on TCP (SPEC §5): `GET /metrics` in the Prometheus
//! text format and `GET /status`. Both documents are built by the event loop,
//! which owns every value they show; this module only routes and answers.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use crossbeam_channel::Sender;
use serde_json::Value;

use crate::app::{ControlReq, Msg};
use crate::control::{ask_loop, ask_loop_meanwhile, route};
use crate::http::server::{self, Limits, Request, Response, ServerHandle};
use crate::metrics;

const ROUTES: &[(&str, &str)] = &[("/metrics", "GET"), ("/status", "GET")];

/// The content type of the text exposition format 0.0.4.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct Telemetry {
    pub addr: SocketAddr,
    handle: ServerHandle,
}

impl Telemetry {
    pub fn start(addr: SocketAddr, tx: Sender<Msg>) -> Result<Telemetry, String> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen for telemetry on {addr}: {e}"))?;
        let handler = Arc::new(move |req: &Request| handle(&tx, req));
        let handle = server::serve(listener, handler, Limits::default())
            .map_err(|e| format!("cannot serve telemetry on {addr}: {e}"))?;
        Ok(Telemetry { addr, handle })
    }

    pub fn stop(self) {
        self.handle.stop();
    }
}

fn handle(tx: &Sender<Msg>, req: &Request) -> Response {
    let path = match route(ROUTES, &req.method, &req.path) {
        Ok(p) => p,
        Err((_, resp)) => return resp,
    };
    if path == "/status" {
        return match ask_loop(tx, ControlReq::Status) {
            Ok(v) => Response::json(200, &v),
            Err((status, msg)) => Response::error(status, &msg),
        };
    }
    // The process_* families need nothing from the loop: read them here
    // while the loop renders the rest.
    let mut process = String::with_capacity(1024);
    let reply = ask_loop_meanwhile(tx, ControlReq::Metrics, || {
        metrics::render_process(&mut process)
    });
    match reply {
        Ok(Value::String(mut text)) => {
            text.push_str(&process);
            Response {
                status: 200,
                headers: vec![("Content-Type".into(), METRICS_TYPE.into())],
                body: text.into_bytes().into(),
            }
        }
        Ok(v) => Response::json(200, &v),
        Err((status, msg)) => Response::error(status, &msg),
    }
}
