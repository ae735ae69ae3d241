//! HTTP/1.1 for the control plane (unix socket), the telemetry endpoint
//! (TCP), the `-ping`/`-putenv`/... subcommands and the Consul agent client.
//!
//! This module owns the wire format only: parsing requests and responses,
//! framing bodies (`Content-Length`, chunked), keep-alive, limits and
//! timeouts. Routing and what a request means live with the callers.
//!
//! Why our own instead of `tiny_http`: the spec (SPEC §4, §8) requires that
//! every connection is timed out eventually, that idle or half-sent clients
//! never stop `/v3/ping` from answering, and that a declared
//! `Content-Length` over 64 KiB is refused before the body is read.
//! tiny_http sets no read timeout on accepted streams, and putting
//! SO_RCVTIMEO on its listener makes accept() time out too, which ends its
//! accept thread.

// The control plane, telemetry and Consul client are wired to this module
// by other branches; until then parts of the API are only used by tests.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod server;

pub use client::{request, tcp_request, unix_request, ClientResponse, HttpError};
pub use server::{serve, Addr, Handler, Limits, Listener, Request, Response, ServerHandle, Stream};

/// The first header called `name`, ignoring ASCII case (requests and
/// responses alike).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One read of up to `chunk` bytes appended to `buf`; `Ok(0)` at end of
/// stream. Retries on EINTR.
fn read_append<R: std::io::Read>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    chunk: usize,
) -> std::io::Result<usize> {
    let len = buf.len();
    buf.resize(len + chunk, 0);
    loop {
        match reader.read(&mut buf[len..]) {
            Ok(n) => {
                buf.truncate(len + n);
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        }
    }
}
