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

pub mod client;
pub mod server;

pub use client::{tcp_request, ClientResponse, HttpError};

/// The first header called `name`, ignoring ASCII case (requests and
/// responses alike).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Where the first line in `data` ends: its length without the line ending
/// (`\n` or `\r\n`) and with it.
fn line_end(data: &[u8]) -> Option<(usize, usize)> {
    let nl = data.iter().position(|&b| b == b'\n')?;
    let len = if nl > 0 && data[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    Some((len, nl + 1))
}

/// Whether a read or write failed because its socket timeout ran out.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
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
