//! HTTP/1.1 for the control plane (unix socket), the telemetry endpoint
//! (TCP), the `-ping`/`-putenv`/... subcommands and the Consul agent client.
//!
//! This module owns the wire format only: parsing requests and responses,
//! framing bodies (`Content-Length`, chunked), keep-alive, limits and
//! timeouts. Routing and what a request means live with the callers.
//! `server` is the server's API, `pool` its threads and bound on
//! connections, `conn` one connection, `wire` the format both sides share,
//! `client` the client, `tls` the TLS under it for the Consul agent.
//!
//! Why our own instead of `tiny_http`: the spec (SPEC §4, §8) requires that
//! every connection is timed out eventually, that idle or half-sent clients
//! never stop `/v3/ping` from answering, and that a declared
//! `Content-Length` over 64 KiB is refused before the body is read.
//! tiny_http sets no read timeout on accepted streams, and putting
//! SO_RCVTIMEO on its listener makes accept() time out too, which ends its
//! accept thread.

pub mod client;
mod conn;
mod message;
mod pool;
pub mod server;
mod slots;
pub mod tls;
mod wire;

#[cfg(all(test, feature = "tls"))]
#[path = "../../tests/support/tls.rs"]
pub(crate) mod tls_double;

#[cfg(test)]
pub use client::tcp_request;
pub use client::{ClientResponse, HttpError, KeepAlive};

/// Whether a read or write failed because its socket timeout ran out.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
