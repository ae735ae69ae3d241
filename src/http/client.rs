//! The HTTP/1.1 client: one request per connection (`Connection: close`)
//! over any byte stream, for the `-ping`/`-putenv`/`-putmetric`/`-reload`/
//! `-maintenance` subcommands (unix socket); and [`KeepAlive`], one
//! connection to a `host:port` kept open between requests, plain or TLS,
//! for the Consul agent (SPEC §6), whose heartbeats would otherwise pay a
//! connection, and over TLS a handshake, each.
//!
//! The request goes out in one write and the response is read by its
//! framing (`Content-Length`, chunked, or to end of stream), returning as
//! soon as the body is complete: `-ping` as a whole process has 1 ms
//! (SPEC §8), so there are no extra round trips and no waiting for close.
//! A response that streams (`-logs NAME -follow`) is returned after its
//! head, and its body handed over piece by piece as it arrives.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::ControlFlow;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::tls;
use super::wire::{self, ChunkError, ChunkRules, RecvBuf, ResponseFraming};

/// Largest response head we accept.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body we accept: a Consul catalog can be big, but a
/// server that sends without end must not exhaust our memory.
const MAX_BODY: u64 = 64 * 1024 * 1024;
/// A chunk-size line is a hex number plus optional extensions.
const MAX_CHUNK_LINE: usize = 1024;
/// Bytes asked of each read.
const READ_CHUNK: usize = 8192;

/// A response as received. Header names keep the server's spelling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// The first header called `name`, ignoring ASCII case.
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Why a request got no response. `target` is the socket path or
/// `host:port` as the user gave it.
#[derive(Debug)]
pub enum HttpError {
    /// The connection could not be made (no socket file, refused,
    /// unresolvable host, connect timed out).
    Connect { target: String, source: io::Error },
    /// The server accepted the connection but did not answer within the
    /// timeout.
    Timeout { target: String },
    /// Sending the request or reading the response failed (reset, broken
    /// pipe, closed before the response was complete).
    Io { target: String, source: io::Error },
    /// The server answered something that is not an HTTP/1.x response we
    /// can read.
    Malformed { target: String, reason: String },
    /// The TLS handshake failed, or the server ended TLS with an alert:
    /// `reason` says why in plain words (unknown CA, name mismatch, ...).
    Tls { target: String, reason: String },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Connect { target, source } => {
                write!(f, "cannot connect to {target}: {}", describe(source))
            }
            HttpError::Timeout { target } => {
                write!(f, "cannot get a response from {target}: timed out")
            }
            HttpError::Io { target, source } => {
                write!(f, "cannot talk to {target}: {}", describe(source))
            }
            HttpError::Malformed { target, reason } => {
                write!(f, "cannot understand the response from {target}: {reason}")
            }
            HttpError::Tls { target, reason } => {
                write!(f, "cannot talk to {target} over TLS: {reason}")
            }
        }
    }
}

impl Error for HttpError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            HttpError::Connect { source, .. } | HttpError::Io { source, .. } => Some(source),
            HttpError::Timeout { .. } | HttpError::Malformed { .. } | HttpError::Tls { .. } => None,
        }
    }
}

/// An OS error in the user's words: std appends " (os error 2)" to
/// strerror's text, which says nothing to a user.
fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}

/// A failure before we know what to call the other end.
enum Failure {
    Io(io::Error),
    /// The connection ended before any of the response arrived.
    Closed,
    Malformed(&'static str),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

impl Failure {
    fn at(self, target: &str) -> HttpError {
        let target = target.to_owned();
        match self {
            Failure::Io(e) if super::is_timeout(&e) => HttpError::Timeout { target },
            Failure::Io(source) => HttpError::Io { target, source },
            Failure::Closed => HttpError::Malformed {
                target,
                reason: "the server closed the connection without answering".to_owned(),
            },
            Failure::Malformed(reason) => HttpError::Malformed {
                target,
                reason: reason.to_owned(),
            },
        }
    }
}

/// One request to the server listening on the unix socket at `path` (the
/// control plane). `timeout` bounds each read and write; zero means none.
pub fn unix_request(
    path: &Path,
    method: &str,
    url_path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<ClientResponse, HttpError> {
    let target = path.display().to_string();
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(source) => return Err(HttpError::Connect { target, source }),
    };
    let timeout = (!timeout.is_zero()).then_some(timeout);
    let configured = stream
        .set_read_timeout(timeout)
        .and_then(|_| stream.set_write_timeout(timeout));
    if let Err(source) = configured {
        return Err(HttpError::Io { target, source });
    }
    exchange(&mut stream, method, "localhost", url_path, &[], body).map_err(|f| f.at(&target))
}

/// A response read as far as its head: the status and headers are known,
/// the body is still to come, piece by piece as the server sends it (SPEC
/// §4.1 `GET /v3/jobs/NAME/logs?follow=1`).
pub struct StreamingResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    stream: UnixStream,
    input: RecvBuf,
    framing: ResponseFraming,
    target: String,
}

impl StreamingResponse {
    /// The first header called `name`, ignoring ASCII case.
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    /// Reads the body, handing each piece to `on_piece` as it arrives (a
    /// piece is whatever one read brought, not necessarily a whole chunk or
    /// line), until the body ends or `on_piece` says stop. `idle` bounds
    /// each wait for the next piece; zero waits for as long as the server
    /// keeps the stream open. The body's size is not limited: nothing is
    /// kept.
    pub fn read_pieces(
        mut self,
        idle: Duration,
        mut on_piece: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<(), HttpError> {
        let target = std::mem::take(&mut self.target);
        if let Err(source) = self
            .stream
            .set_read_timeout((!idle.is_zero()).then_some(idle))
        {
            return Err(HttpError::Io { target, source });
        }
        read_body(
            &mut self.stream,
            &mut self.input,
            self.framing,
            u64::MAX,
            &mut on_piece,
        )
        .map_err(|f| f.at(&target))
    }

    /// The whole response, its body at most 64 MiB: for one that turned out
    /// not to be a stream (an error's `{"error": ...}`). Reads with the
    /// timeout the request was made with.
    pub fn into_response(mut self) -> Result<ClientResponse, HttpError> {
        let mut body = Vec::new();
        read_body(
            &mut self.stream,
            &mut self.input,
            self.framing,
            MAX_BODY,
            &mut |data| {
                body.extend_from_slice(data);
                ControlFlow::Continue(())
            },
        )
        .map_err(|f| f.at(&self.target))?;
        Ok(ClientResponse {
            status: self.status,
            headers: self.headers,
            body,
        })
    }
}

/// One request to the server on the unix socket at `path`, returning as
/// soon as the response's head has arrived; see `StreamingResponse` for
/// the body. `timeout` bounds each read and write until then; zero means
/// none.
pub fn unix_request_streaming(
    path: &Path,
    method: &str,
    url_path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<StreamingResponse, HttpError> {
    let target = path.display().to_string();
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(source) => return Err(HttpError::Connect { target, source }),
    };
    let timeout = (!timeout.is_zero()).then_some(timeout);
    let configured = stream
        .set_read_timeout(timeout)
        .and_then(|_| stream.set_write_timeout(timeout));
    if let Err(source) = configured {
        return Err(HttpError::Io { target, source });
    }
    let mut input = RecvBuf::with_vec(Vec::with_capacity(READ_CHUNK));
    let head = send_request(&mut stream, method, "localhost", url_path, &[], body, true)
        .and_then(|()| read_head(&mut stream, &mut input))
        .and_then(
            |Head {
                 status, headers, ..
             }| {
                let framing = wire::response_framing(status, &headers, method == "HEAD")
                    .map_err(Failure::Malformed)?;
                Ok((status, headers, framing))
            },
        );
    let (status, headers, framing) = head.map_err(|f| f.at(&target))?;
    Ok(StreamingResponse {
        status,
        headers,
        stream,
        input,
        framing,
        target,
    })
}

/// One request to `addr` (`host:port`, sent as the `Host` header) on a
/// connection of its own (the tests' one-shot client), trying
/// each address it resolves to. `timeout` bounds the connect and each read
/// and write; zero means none.
#[cfg(test)]
pub fn tcp_request(
    addr: &str,
    method: &str,
    url_path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<ClientResponse, HttpError> {
    let mut stream = tcp_connect(addr, timeout)?;
    exchange(&mut stream, method, addr, url_path, headers, body).map_err(|f| f.at(addr))
}

/// A connection to `addr`, trying each address it resolves to, with its
/// timeouts set. `timeout` bounds the connect; zero means none.
fn tcp_connect(addr: &str, timeout: Duration) -> Result<TcpStream, HttpError> {
    let connect_error = |source| HttpError::Connect {
        target: addr.to_owned(),
        source,
    };
    let mut last_error = None;
    let mut connected = None;
    for candidate in addr.to_socket_addrs().map_err(connect_error)? {
        let attempt = if timeout.is_zero() {
            TcpStream::connect(candidate)
        } else {
            TcpStream::connect_timeout(&candidate, timeout)
        };
        match attempt {
            Ok(s) => {
                connected = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let stream = match connected {
        Some(s) => s,
        None => {
            let e = last_error.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address")
            });
            return Err(connect_error(e));
        }
    };
    let timeout = (!timeout.is_zero()).then_some(timeout);
    // The request goes out in one write; Nagle would only delay it.
    let configured = stream
        .set_nodelay(true)
        .and_then(|_| stream.set_read_timeout(timeout))
        .and_then(|_| stream.set_write_timeout(timeout));
    if let Err(source) = configured {
        return Err(HttpError::Io {
            target: addr.to_owned(),
            source,
        });
    }
    Ok(stream)
}

/// Requests to one `host:port` over one connection kept open between them
/// (HTTP/1.1 keep-alive), in plain TCP or TLS. A new connection (and
/// handshake) is made only when there is none or the last one ended. Not
/// shared: each user (thread) has its own.
pub struct KeepAlive {
    /// `host:port`, also sent as `Host`.
    addr: String,
    tls: Option<tls::Connector>,
    conn: Option<Conn>,
}

impl fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepAlive")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

struct Conn {
    stream: Transport,
    /// Bytes read past the last response: none between requests, unless
    /// the server is confused (then the connection is not reused).
    input: RecvBuf,
}

enum Transport {
    Plain(TcpStream),
    Tls(Box<tls::Stream>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => s.tcp(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// Methods whose request may be sent twice with the effect of once
/// (RFC 9110 §9.2.2): Consul's agent calls are all PUTs and GETs.
fn idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS")
}

impl KeepAlive {
    /// Requests to `addr` (`host:port`), over TLS when `tls` is given.
    pub fn new(addr: &str, tls: Option<tls::Connector>) -> KeepAlive {
        KeepAlive {
            addr: addr.to_owned(),
            tls,
            conn: None,
        }
    }

    /// One request. `timeout` bounds the connect (and handshake) when one
    /// is needed, and each read and write; zero means none.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ClientResponse, HttpError> {
        if let Some(mut conn) = self.conn.take() {
            match self.exchange(&mut conn, method, path, headers, body, timeout) {
                Ok((response, reusable)) => {
                    if reusable {
                        self.conn = Some(conn);
                    }
                    return Ok(response);
                }
                // The server closed the connection while it sat idle (an
                // idle timeout, a restart) and never saw this request: send
                // it once more on a new connection, if twice is harmless.
                Err(f) if is_stale(&f, &conn) && idempotent(method) => {}
                Err(f) => return Err(self.error(f)),
            }
        }
        let mut conn = self.connect(timeout)?;
        let (response, reusable) = self
            .exchange(&mut conn, method, path, headers, body, timeout)
            .map_err(|f| self.error(f))?;
        if reusable {
            self.conn = Some(conn);
        }
        Ok(response)
    }

    fn connect(&self, timeout: Duration) -> Result<Conn, HttpError> {
        let tcp = tcp_connect(&self.addr, timeout)?;
        let stream = match &self.tls {
            None => Transport::Plain(tcp),
            Some(connector) => match connector.connect(tcp) {
                Ok(s) => Transport::Tls(Box::new(s)),
                Err(tls::HandshakeError::Tls(reason)) => {
                    return Err(HttpError::Tls {
                        target: self.addr.clone(),
                        reason,
                    })
                }
                Err(tls::HandshakeError::Io(e)) => return Err(Failure::Io(e).at(&self.addr)),
            },
        };
        Ok(Conn {
            stream,
            input: RecvBuf::with_vec(Vec::with_capacity(READ_CHUNK)),
        })
    }

    /// One request and its response on `conn`; also whether the
    /// connection can carry the next request.
    fn exchange(
        &self,
        conn: &mut Conn,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<(ClientResponse, bool), Failure> {
        let timeout = (!timeout.is_zero()).then_some(timeout);
        let tcp = conn.stream.tcp();
        tcp.set_read_timeout(timeout)?;
        tcp.set_write_timeout(timeout)?;
        send_request(
            &mut conn.stream,
            method,
            &self.addr,
            path,
            headers,
            body,
            false,
        )?;
        let Head {
            status,
            headers,
            persistent,
        } = read_head(&mut conn.stream, &mut conn.input)?;
        let framing = wire::response_framing(status, &headers, method == "HEAD")
            .map_err(Failure::Malformed)?;
        let mut body = Vec::new();
        read_body(
            &mut conn.stream,
            &mut conn.input,
            framing,
            MAX_BODY,
            &mut |data| {
                body.extend_from_slice(data);
                ControlFlow::Continue(())
            },
        )?;
        let reusable = persistent
            && framing != ResponseFraming::UntilClose
            && conn.input.buffered().is_empty();
        Ok((
            ClientResponse {
                status,
                headers,
                body,
            },
            reusable,
        ))
    }

    fn error(&self, f: Failure) -> HttpError {
        if let (Failure::Io(e), Some(connector)) = (&f, &self.tls) {
            if let Some(reason) = connector.explain(e) {
                return HttpError::Tls {
                    target: self.addr.clone(),
                    reason,
                };
            }
        }
        f.at(&self.addr)
    }
}

/// Whether `f` on a kept connection means the server had closed it before
/// our request: nothing of a response arrived and the connection ended
/// (a TLS connection closed without `close_notify` ends in UnexpectedEof).
fn is_stale(f: &Failure, conn: &Conn) -> bool {
    use io::ErrorKind as K;
    conn.input.buffered().is_empty()
        && match f {
            Failure::Closed => true,
            Failure::Io(e) => matches!(
                e.kind(),
                K::BrokenPipe | K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof
            ),
            Failure::Malformed(_) => false,
        }
}

fn exchange<S: Read + Write>(
    stream: &mut S,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<ClientResponse, Failure> {
    send_request(stream, method, host, path, headers, body, true)?;
    read_response(stream, method == "HEAD")
}

/// Writes one request, in one write; with `Connection: close` if `close`.
fn send_request<S: Write>(
    stream: &mut S,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    close: bool,
) -> Result<(), Failure> {
    let line_break = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
    if [method, host, path]
        .iter()
        .any(|s| line_break(s) || s.contains(' '))
    {
        return Err(Failure::Malformed(
            "the request itself has a space or line break in its method, host or path",
        ));
    }
    let mut out = Vec::with_capacity(128 + body.map_or(0, <[u8]>::len));
    for part in [method, " ", path, " HTTP/1.1\r\nHost: ", host, "\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    for (name, value) in headers {
        let ours = ["host", "connection", "content-length"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h));
        if ours || line_break(name) || line_break(value) {
            continue;
        }
        for part in [name, ": ", value, "\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
    }
    // A POST or PUT without a body still says so: some servers answer 411
    // when the length is missing.
    let length = match body {
        Some(b) => Some(b.len()),
        None if matches!(method, "POST" | "PUT" | "PATCH") => Some(0),
        None => None,
    };
    if let Some(length) = length {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(length.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    stream.write_all(&out)?;
    stream.flush()?;
    Ok(())
}

/// One read from `reader` into `input`; `Ok(0)` at end of stream.
fn fill<R: Read>(reader: &mut R, input: &mut RecvBuf) -> Result<usize, Failure> {
    Ok(input.read_from(reader, READ_CHUNK)?)
}

/// A response head as read.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    /// The server keeps the connection open after this response (RFC 9112
    /// §9.3: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`).
    persistent: bool,
}

/// Reads a response head, skipping interim (1xx) responses.
fn read_head<R: Read>(reader: &mut R, input: &mut RecvBuf) -> Result<Head, Failure> {
    loop {
        let head_len = loop {
            if let Some(end) = wire::find_head_end(input.buffered()) {
                break end;
            }
            if input.buffered().len() > MAX_HEAD {
                return Err(Failure::Malformed("response header section too large"));
            }
            if fill(reader, input)? == 0 {
                return Err(if input.buffered().is_empty() {
                    Failure::Closed
                } else {
                    Failure::Malformed("the connection closed in the middle of the response header")
                });
            }
        };
        let head = std::str::from_utf8(&input.buffered()[..head_len])
            .map_err(|_| Failure::Malformed("response header is not valid UTF-8"))?;
        let (status, headers) = wire::parse_response_head(head).map_err(Failure::Malformed)?;
        let http10 = head.starts_with("HTTP/1.0");
        input.consume(head_len);
        // An interim response (100 Continue) is followed by the real one.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let says = |token: &str| {
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
                .flat_map(|(_, v)| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        let persistent = if http10 {
            says("keep-alive")
        } else {
            !says("close")
        };
        return Ok(Head {
            status,
            headers,
            persistent,
        });
    }
}

/// Reads a body framed as `framing`, handing it to `sink` piece by piece as
/// it arrives, until it ends or `sink` says stop. More than `max_body`
/// bytes is an error.
fn read_body<R: Read>(
    reader: &mut R,
    input: &mut RecvBuf,
    framing: ResponseFraming,
    max_body: u64,
    sink: &mut impl FnMut(&[u8]) -> ControlFlow<()>,
) -> Result<(), Failure> {
    const TOO_LARGE: Failure = Failure::Malformed("response body too large");
    match framing {
        ResponseFraming::None => Ok(()),
        ResponseFraming::Length(length) => {
            if length > max_body {
                return Err(TOO_LARGE);
            }
            let mut left = length;
            while left > 0 {
                if input.buffered().is_empty() && fill(reader, input)? == 0 {
                    return Err(Failure::Malformed(
                        "the connection closed before the end of the body",
                    ));
                }
                let data = input.buffered();
                let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let flow = sink(&data[..n]);
                input.consume(n);
                left -= n as u64;
                if flow.is_break() {
                    break;
                }
            }
            Ok(())
        }
        ResponseFraming::UntilClose => {
            // No framing: the body ends with the connection (RFC 9112 §6.3).
            let mut total = 0u64;
            loop {
                let data = input.buffered();
                total += data.len() as u64;
                if total > max_body {
                    return Err(TOO_LARGE);
                }
                let flow = sink(data);
                input.clear();
                if flow.is_break() || fill(reader, input)? == 0 {
                    return Ok(());
                }
            }
        }
        ResponseFraming::Chunked => {
            const CLOSED: &str = "the connection closed in the middle of a chunked body";
            let rules = ChunkRules {
                max_line: MAX_CHUNK_LINE,
                max_body,
                strict: false,
            };
            let mut fill_input = |input: &mut RecvBuf| fill(reader, input);
            let flow =
                wire::read_chunks(input, &mut fill_input, rules, sink).map_err(|e| match e {
                    ChunkError::Fill(f) => f,
                    ChunkError::Malformed => Failure::Malformed("malformed chunked body"),
                    ChunkError::LineTooLong => Failure::Malformed("line too long in chunked body"),
                    ChunkError::TooLarge => TOO_LARGE,
                    ChunkError::Closed => Failure::Malformed(CLOSED),
                })?;
            // Trailer fields are read and dropped; a server that closes
            // right after the last chunk has still sent the whole body.
            if flow.is_continue() {
                let _ = wire::skip_trailers(input, &mut fill_input, MAX_HEAD, usize::MAX);
            }
            Ok(())
        }
    }
}

fn read_response<R: Read>(reader: &mut R, head_only: bool) -> Result<ClientResponse, Failure> {
    let mut input = RecvBuf::with_vec(Vec::with_capacity(READ_CHUNK));
    let Head {
        status, headers, ..
    } = read_head(reader, &mut input)?;
    let framing =
        wire::response_framing(status, &headers, head_only).map_err(Failure::Malformed)?;
    let mut body = Vec::new();
    read_body(reader, &mut input, framing, MAX_BODY, &mut |data| {
        body.extend_from_slice(data);
        ControlFlow::Continue(())
    })?;
    Ok(ClientResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::server::tests::{echo, unix_server, TempDir};
    use crate::http::server::{serve, Limits};
    use std::net::TcpListener;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::thread;

    const T: Duration = Duration::from_secs(5);

    /// Sends one request on `stream` (headers as given, except that `Host`,
    /// `Connection` and `Content-Length` are always ours) and reads the
    /// response. Errors name `host`.
    fn request<S: Read + Write>(
        stream: &mut S,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<ClientResponse, HttpError> {
        exchange(stream, method, host, path, headers, body).map_err(|f| f.at(host))
    }

    /// A hand-written server: answers one connection with `parts` (written
    /// one by one), then closes at once if `close`, else only once the test
    /// says so, proving the client does not wait for end of stream.
    struct Raw {
        path: PathBuf,
        release: mpsc::Sender<()>,
        thread: thread::JoinHandle<Vec<u8>>,
        _dir: TempDir,
    }

    fn raw_server(parts: Vec<&'static [u8]>, close: bool) -> Raw {
        let dir = TempDir::new();
        let path = dir.0.join("raw.socket");
        let listener = UnixListener::bind(&path).unwrap();
        let (release, released) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            let mut request = Vec::new();
            while wire::find_head_end(&request).is_none() {
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&chunk[..n]);
            }
            for part in parts {
                s.write_all(part).unwrap();
                s.flush().unwrap();
                thread::sleep(Duration::from_millis(5)); // separate reads
            }
            if !close {
                let _ = released.recv_timeout(T);
            }
            request
        });
        Raw {
            path,
            release,
            thread,
            _dir: dir,
        }
    }

    #[test]
    fn unix_get_and_post() {
        let u = unix_server(Limits::default(), echo());
        let r = unix_request(&u.path, "GET", "/v3/ping", None, T).unwrap();
        assert_eq!(
            (r.status, r.text().as_ref(), r.header("content-length")),
            (200, "ok", Some("2"))
        );
        let r = unix_request(&u.path, "POST", "/v3/env?x=1", Some(br#"{"A":"b"}"#), T).unwrap();
        assert_eq!(r.text(), r#"POST /v3/env q=x=1 x=- body={"A":"b"}"#);
        let r = unix_request(&u.path, "HEAD", "/v3/ping", None, T).unwrap();
        assert_eq!((r.status, r.body.len()), (200, 0));
    }

    #[test]
    fn tcp_request_with_headers_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = serve(listener, echo(), Limits::default()).unwrap();
        let addr = server.addr().to_string();
        let r = tcp_request(
            &addr,
            "PUT",
            "/v1/agent/service/register",
            &[("X-Test", "tok")],
            Some(b"{}"),
            T,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.text().as_ref()),
            (200, "PUT /v1/agent/service/register q= x=tok body={}")
        );
    }

    #[test]
    fn request_sends_one_well_formed_message() {
        let raw = raw_server(vec![b"HTTP/1.1 204 No Content\r\n\r\n"], true);
        let mut s = UnixStream::connect(&raw.path).unwrap();
        let r = request(
            &mut s,
            "POST",
            "v3",
            "/reload",
            &[("Content-Length", "9"), ("X-A", "b")],
            None,
        )
        .unwrap();
        assert_eq!(r.status, 204);
        let sent = String::from_utf8(raw.thread.join().unwrap()).unwrap();
        assert_eq!(sent, "POST /reload HTTP/1.1\r\nHost: v3\r\nConnection: close\r\nX-A: b\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn chunked_response_is_decoded_without_waiting_for_close() {
        let raw = raw_server(
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                b"lo\r\n7;ext\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
            ],
            false,
        );
        let r = unix_request(&raw.path, "GET", "/", None, T).unwrap();
        assert_eq!((r.status, r.text().as_ref()), (200, "hello, world"));
        raw.release.send(()).unwrap();
        raw.thread.join().unwrap();
    }

    #[test]
    fn body_without_length_is_read_to_end_of_stream() {
        let raw = raw_server(
            vec![b"HTTP/1.0 200 OK\r\nServer: raw\r\n\r\nuntil ", b"close"],
            true,
        );
        let r = unix_request(&raw.path, "GET", "/", None, T).unwrap();
        assert_eq!(
            (r.status, r.text().as_ref(), r.header("SERVER")),
            (200, "until close", Some("raw"))
        );
    }

    #[test]
    fn interim_100_continue_is_skipped() {
        let raw = raw_server(
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
            ],
            false,
        );
        let r = unix_request(&raw.path, "POST", "/", Some(b"abc"), T).unwrap();
        assert_eq!((r.status, r.text().as_ref()), (201, "x"));
        raw.release.send(()).unwrap();
    }

    #[test]
    fn connect_failure_names_the_socket() {
        let dir = TempDir::new();
        let path = dir.0.join("containerpilot.socket");
        let e = unix_request(&path, "GET", "/v3/ping", None, T).unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot connect to {}: No such file or directory",
                path.display()
            )
        );

        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let e = tcp_request(&addr, "GET", "/", &[], None, T).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot connect to {addr}: Connection refused")
        );
    }

    #[test]
    fn silent_server_times_out() {
        let raw = raw_server(vec![], false);
        let e = unix_request(
            &raw.path,
            "GET",
            "/v3/ping",
            None,
            Duration::from_millis(100),
        )
        .unwrap_err();
        assert!(matches!(e, HttpError::Timeout { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot get a response from {}: timed out",
                raw.path.display()
            )
        );
        raw.release.send(()).unwrap();
    }

    #[test]
    fn malformed_and_truncated_responses_are_errors() {
        for (parts, reason) in [
            (vec![&b"garbage\r\n\r\n"[..]], "not an HTTP/1.x status line"),
            (vec![], "the server closed the connection without answering"),
            (
                vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
                "the connection closed before the end of the body",
            ),
            (
                vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
                "malformed chunked body",
            ),
        ] {
            let raw = raw_server(parts, true);
            let e = unix_request(&raw.path, "GET", "/", None, T).unwrap_err();
            match &e {
                HttpError::Malformed { reason: got, .. } => assert_eq!(got, reason),
                other => panic!("expected Malformed({reason}), got {other:?}"),
            }
            assert!(
                e.to_string()
                    .starts_with("cannot understand the response from "),
                "{e}"
            );
        }
    }

    #[test]
    fn streaming_request_hands_over_pieces_as_they_arrive() {
        let (handler, feeds) = crate::http::conn::tests::streaming();
        let u = unix_server(Limits::default(), handler);
        let r = unix_request_streaming(&u.path, "GET", "/follow", None, T).unwrap();
        assert_eq!(
            (r.status, r.header("content-type")),
            (200, Some("text/plain"))
        );
        let (tx, dropped) = feeds.next();
        tx.send(Some(b"one\n".to_vec())).unwrap();
        let mut got = Vec::new();
        // The next piece is only produced once the first was handed over:
        // a client that waited for the whole body would wait for ever.
        r.read_pieces(T, |piece| {
            got.extend_from_slice(piece);
            match got.as_slice() {
                b"one\n" => tx.send(Some(b"two\n".to_vec())).unwrap(),
                b"one\ntwo\n" => tx.send(None).unwrap(),
                _ => {}
            }
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(got, b"one\ntwo\n");
        crate::http::server::tests::wait_for("the server to let go of the stream", || {
            dropped.load(std::sync::atomic::Ordering::Acquire)
        });
    }

    #[test]
    fn streaming_stops_when_the_callback_says_so_and_the_server_notices() {
        let (handler, feeds) = crate::http::conn::tests::streaming();
        let limits = Limits {
            stream_check: Duration::from_millis(20),
            ..Limits::default()
        };
        let u = unix_server(limits, handler);
        let r = unix_request_streaming(&u.path, "GET", "/follow", None, T).unwrap();
        let (tx, dropped) = feeds.next();
        tx.send(Some(b"first".to_vec())).unwrap();
        let mut pieces = 0;
        r.read_pieces(Duration::ZERO, |_| {
            pieces += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(pieces, 1);
        crate::http::server::tests::wait_for("the server to let go of the stream", || {
            dropped.load(std::sync::atomic::Ordering::Acquire)
        });
    }

    #[test]
    fn streaming_request_reads_any_framing_and_times_out_when_idle() {
        let u = unix_server(Limits::default(), echo());
        let r = unix_request_streaming(&u.path, "GET", "/v3/ping", None, T).unwrap();
        let whole = r.into_response().unwrap();
        assert_eq!((whole.status, whole.text().as_ref()), (200, "ok"));

        let raw = raw_server(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil ", b"close"], true);
        let r = unix_request_streaming(&raw.path, "GET", "/", None, T).unwrap();
        let mut got = Vec::new();
        r.read_pieces(T, |p| {
            got.extend_from_slice(p);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(got, b"until close");

        let raw = raw_server(
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n"],
            false,
        );
        let r = unix_request_streaming(&raw.path, "GET", "/", None, T).unwrap();
        let e = r
            .read_pieces(Duration::from_millis(100), |_| ControlFlow::Continue(()))
            .unwrap_err();
        assert!(matches!(e, HttpError::Timeout { .. }), "{e:?}");
        raw.release.send(()).unwrap();
    }

    /// A hand-written keep-alive server on TCP: answers each connection's
    /// requests with `body` N (counting all requests), and after the
    /// `per_conn`-th request of a connection closes it, telling the test.
    struct KeptServer {
        addr: String,
        requests: Arc<Mutex<Vec<String>>>,
        accepted: Arc<AtomicUsize>,
        closed: mpsc::Receiver<()>,
    }

    fn kept_server(per_conn: usize) -> KeptServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (closed_tx, closed) = mpsc::channel();
        let (reqs, acc) = (requests.clone(), accepted.clone());
        thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                acc.fetch_add(1, Ordering::SeqCst);
                s.set_read_timeout(Some(T)).unwrap();
                for _ in 0..per_conn {
                    let mut request = Vec::new();
                    while wire::find_head_end(&request).is_none() {
                        let mut chunk = [0u8; 1024];
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if request.is_empty() {
                        break;
                    }
                    let n = {
                        let mut r = reqs.lock().unwrap();
                        r.push(String::from_utf8_lossy(&request).into_owned());
                        r.len()
                    };
                    let body = n.to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    s.write_all(answer.as_bytes()).unwrap();
                }
                drop(s);
                let _ = closed_tx.send(());
            }
        });
        KeptServer {
            addr,
            requests,
            accepted,
            closed,
        }
    }

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[test]
    fn keep_alive_reuses_the_connection_and_resends_once_when_it_was_closed() {
        let server = kept_server(2);
        let mut c = KeepAlive::new(&server.addr, None);
        let get = |c: &mut KeepAlive, method: &str| {
            c.request(method, "/v1/agent/services", &[], None, T)
                .map(|r| r.text().into_owned())
        };
        assert_eq!(get(&mut c, "GET").unwrap(), "1");
        assert_eq!(get(&mut c, "GET").unwrap(), "2");
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        // The server closed the connection after its second answer: the
        // next request finds it closed and goes again on a new one.
        server.closed.recv_timeout(T).unwrap();
        assert_eq!(get(&mut c, "PUT").unwrap(), "3");
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
        assert_eq!(get(&mut c, "GET").unwrap(), "4");
        server.closed.recv_timeout(T).unwrap();
        // A POST is not sent twice: the closed connection is an error.
        let e = get(&mut c, "POST").unwrap_err();
        assert!(
            matches!(e, HttpError::Malformed { .. } | HttpError::Io { .. }),
            "{e:?}"
        );
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
        let requests = server.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 4, "{requests:?}");
        assert!(
            requests.iter().all(|r| !r.contains("Connection")),
            "{requests:?}"
        );
        assert!(requests[0].starts_with(&format!(
            "GET /v1/agent/services HTTP/1.1\r\nHost: {}\r\n",
            server.addr
        )));
    }

    #[test]
    fn keep_alive_closes_what_the_server_will_not_keep() {
        for (answer, kept) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..], true),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                false,
            ),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
            (
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                true,
            ),
        ] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let server = thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                let mut request = [0u8; 1024];
                let _ = s.read(&mut request).unwrap();
                s.write_all(answer).unwrap();
                s
            });
            let mut c = KeepAlive::new(&addr, None);
            let r = c.request("GET", "/", &[], None, T).unwrap();
            assert_eq!(r.text(), "ok");
            assert_eq!(
                c.conn.is_some(),
                kept,
                "{}",
                String::from_utf8_lossy(answer)
            );
            drop(server.join().unwrap());
        }
    }

    #[cfg(feature = "tls")]
    mod over_tls {
        use super::*;
        use crate::discovery::double::FakeConsul;
        use crate::http::tls::{self, Named, Settings, SystemRoots, Verify};
        use crate::http::tls_double::{FrontOptions, Key, Pki, Spec, TlsFront};

        fn settings(name: &str, ca: Option<&Path>, verify: Verify) -> Settings {
            let named = |p: &Path| Named {
                value: p.display().to_string(),
                from: "consul.tls.cafile",
            };
            Settings {
                server_name: Named {
                    value: name.into(),
                    from: "consul address",
                },
                ca_file: ca.map(named),
                ca_path: None,
                client_cert: None,
                client_key: None,
                verify,
                system_roots: SystemRoots::default(),
            }
        }

        fn client(addr: &str, s: &Settings) -> KeepAlive {
            KeepAlive::new(addr, Some(tls::Connector::new(s).unwrap()))
        }

        fn get(c: &mut KeepAlive) -> Result<ClientResponse, HttpError> {
            c.request("GET", "/v1/agent/services", &[], None, T)
        }

        fn tls_reason(r: Result<ClientResponse, HttpError>) -> String {
            match r {
                Err(HttpError::Tls { reason, .. }) => reason,
                other => panic!("expected a TLS error, got {other:?}"),
            }
        }

        #[test]
        fn one_handshake_for_a_hundred_requests() {
            let dir = TempDir::new();
            let pki = Pki::new(&dir.0, "ca");
            let (crt, key) = pki.issue("agent", &Spec::server(&["127.0.0.1"]));
            let fake = FakeConsul::start();
            let front = TlsFront::start(&fake.addr(), &FrontOptions::new(&crt, &key));
            let mut c = client(
                &front.addr(),
                &settings("127.0.0.1", Some(&pki.ca_file()), Verify::Ca),
            );
            for _ in 0..100 {
                let r = get(&mut c).unwrap();
                assert_eq!((r.status, r.text().as_ref()), (200, "{}"));
            }
            let seen = front.seen();
            assert_eq!(
                (seen.connections, seen.handshakes.len()),
                (1, 1),
                "{seen:?}"
            );
            assert_eq!(fake.requests().len(), 100);
            // A clone of the connector shares its session cache: a new
            // connection resumes (still one handshake each, but short).
            let mut other = client(
                &front.addr(),
                &settings("127.0.0.1", Some(&pki.ca_file()), Verify::Ca),
            );
            get(&mut other).unwrap();
            assert_eq!(front.handshakes(), 2);
        }

        #[test]
        fn a_closed_tls_connection_is_replaced_transparently() {
            let dir = TempDir::new();
            let pki = Pki::new(&dir.0, "ca");
            let (crt, key) = pki.issue("agent", &Spec::server(&["127.0.0.1"]));
            // Two requests per connection, then the server hangs up (the
            // front ends TLS with close_notify).
            let server = kept_server(2);
            let front = TlsFront::start(&server.addr, &FrontOptions::new(&crt, &key));
            let mut c = client(
                &front.addr(),
                &settings("127.0.0.1", Some(&pki.ca_file()), Verify::Ca),
            );
            for want in ["1", "2"] {
                assert_eq!(get(&mut c).unwrap().text(), want);
            }
            server.closed.recv_timeout(T).unwrap();
            assert_eq!(get(&mut c).unwrap().text(), "3");
            assert_eq!(front.handshakes(), 2);
        }

        #[test]
        fn failures_in_plain_words() {
            let dir = TempDir::new();
            let pki = Pki::new(&dir.0, "ca");
            let stranger = Pki::new(&dir.0, "stranger");
            let fake = FakeConsul::start();
            let front = |spec: &Spec, client_ca: Option<&Path>, tls12_only: bool| {
                let (crt, key) = pki.issue("agent", spec);
                let mut opts = FrontOptions::new(&crt, &key);
                opts.client_ca = client_ca.map(Path::to_path_buf);
                opts.tls12_only = tls12_only;
                TlsFront::start(&fake.addr(), &opts)
            };
            let ours = settings("127.0.0.1", Some(&pki.ca_file()), Verify::Ca);
            let ip = Spec::server(&["127.0.0.1"]);

            let f = front(&ip, None, false);
            let theirs = settings("127.0.0.1", Some(&stranger.ca_file()), Verify::Ca);
            assert_eq!(
                tls_reason(get(&mut client(&f.addr(), &theirs))),
                "the agent's certificate is signed by an unknown authority"
            );
            // Not verified: anything goes.
            let off = settings("127.0.0.1", Some(&stranger.ca_file()), Verify::Off);
            assert_eq!(get(&mut client(&f.addr(), &off)).unwrap().status, 200);

            let f = front(&Spec::server(&["consul.example"]), None, false);
            let e = get(&mut client(&f.addr(), &ours)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "cannot talk to {} over TLS: the agent's certificate is for consul.example, \
                     not 127.0.0.1",
                    f.addr()
                )
            );
            let named = settings("consul.example", Some(&pki.ca_file()), Verify::Ca);
            assert_eq!(get(&mut client(&f.addr(), &named)).unwrap().status, 200);

            let f = front(&ip.clone().expired(), None, false);
            assert_eq!(
                tls_reason(get(&mut client(&f.addr(), &ours))),
                "the agent's certificate expired on 2001-01-01 00:00:00 UTC"
            );

            for tls12_only in [false, true] {
                let f = front(&ip, Some(&pki.ca_file()), tls12_only);
                assert_eq!(
                    tls_reason(get(&mut client(&f.addr(), &ours))),
                    "the agent requires a client certificate (set tls.clientcert and \
                     tls.clientkey, or CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY)",
                    "TLS 1.2 only: {tls12_only}"
                );
                let (crt, key) = pki.issue("client", &Spec::client(Key::EcdsaPkcs8));
                let mut mutual = ours.clone();
                mutual.client_cert = Some(Named {
                    value: crt.display().to_string(),
                    from: "CONSUL_CLIENT_CERT",
                });
                mutual.client_key = Some(Named {
                    value: key.display().to_string(),
                    from: "CONSUL_CLIENT_KEY",
                });
                assert_eq!(get(&mut client(&f.addr(), &mutual)).unwrap().status, 200);
                let want = if tls12_only { "TLSv1_2" } else { "TLSv1_3" };
                assert_eq!(f.seen().handshakes, [want]);
            }

            // TLS to a plain HTTP port: Consul's answers 400, the double
            // hangs up.
            let plain = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = plain.local_addr().unwrap().to_string();
            let server = thread::spawn(move || {
                let (mut s, _) = plain.accept().unwrap();
                let mut hello = [0u8; 1024];
                let _ = s.read(&mut hello).unwrap();
                s.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                    .unwrap();
            });
            assert_eq!(
                tls_reason(get(&mut client(&addr, &ours))),
                "the agent did not answer in TLS (is this its plain HTTP port?)"
            );
            server.join().unwrap();
            assert_eq!(
                tls_reason(get(&mut client(&fake.addr(), &ours))),
                "the agent closed the connection during the TLS handshake"
            );
        }
    }
}
