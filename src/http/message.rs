//! What a server exchanges with its handler, and what it runs over: the
//! `Handler` it calls, the `Request` it hands over and the `Response` (with
//! a plain or streamed `Body`) it writes back, the `Limits` that keep it
//! answering under abuse (SPEC §4: "many idle or slow clients do not block
//! `/v3/ping`; every request is answered or timed out"), and the listeners
//! and streams it works over.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};

/// What the server calls for every well-formed request, on the
/// connection's own thread.
///
/// A handler may take as long as it needs, e.g. to answer only once a job's
/// process is gone (SPEC §4.1 `POST /v3/jobs/NAME/stop`): nothing in the
/// server times a handler out. `read_timeout` bounds only waiting for a
/// request and `write_timeout` only writing the response, and a connection
/// whose handler runs is never evicted. Bounding the wait is the handler's
/// business.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A response body produced piece by piece, for as long as it lasts (SPEC
/// §4.1 `GET /v3/jobs/NAME/logs?follow=1`). Called on the connection's
/// thread, one call at a time.
pub trait ChunkSource: Send {
    /// The next piece of the body, waiting at most about `wait` for one.
    fn next(&mut self, wait: Duration) -> Next;
}

/// What a `ChunkSource` has to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send this (one chunk; empty counts as `Idle`).
    Chunk(Vec<u8>),
    /// Nothing new within `wait`: the server checks whether the client is
    /// still there (and whether the server is stopping) and asks again.
    Idle,
    /// The body is complete.
    End,
}

/// What follows a response's head.
pub enum Body {
    /// The whole body, sent with `Content-Length`.
    Bytes(Vec<u8>),
    /// A whole body that others hold too (a cached page), sent as `Bytes`.
    Shared(Arc<Vec<u8>>),
    /// A body sent as it is produced, with `Transfer-Encoding: chunked`
    /// (to an HTTP/1.0 client: unframed, ending with the connection). The
    /// connection is closed afterwards; it keeps its slot meanwhile, is
    /// never evicted and is not subject to `read_timeout`. It ends when
    /// the source says `End`, when the client hangs up or stops reading
    /// (a write blocked for `write_timeout`), or when the server stops.
    Stream(Box<dyn ChunkSource>),
}

impl Body {
    /// The bytes of a whole body; `None` for a stream.
    #[cfg(test)]
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Body::Bytes(b) => Some(b),
            Body::Shared(b) => Some(b),
            Body::Stream(_) => None,
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Bytes(b) => f
                .debug_tuple("Bytes")
                .field(&String::from_utf8_lossy(b))
                .finish(),
            Body::Shared(b) => f
                .debug_tuple("Shared")
                .field(&String::from_utf8_lossy(b))
                .finish(),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::Bytes(bytes)
    }
}

impl From<Arc<Vec<u8>>> for Body {
    fn from(bytes: Arc<Vec<u8>>) -> Body {
        Body::Shared(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::Bytes(text.into_bytes())
    }
}

/// Limits applied to every connection; `Limits::default()` is what SPEC §4
/// asks of the control plane.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections held at once. Beyond that the one that has waited
    /// longest for a complete request is closed to make room, or, when
    /// every one is being served, the newcomer is answered `503`. Also
    /// bounds the server's threads (one per connection, plus a few waiting
    /// in accept()).
    pub max_connections: usize,
    /// How long an idle keep-alive connection is kept, and how long a
    /// request may take to arrive once its first byte has (`408` after).
    pub read_timeout: Duration,
    /// How long a write of a response may block.
    pub write_timeout: Duration,
    /// Largest request body; a larger declared `Content-Length` is answered
    /// `413` before the body is read.
    pub max_body: usize,
    /// Largest request line plus header section (`431` beyond).
    pub max_head: usize,
    /// Most header fields in one request (`431` beyond).
    pub max_headers: usize,
    /// Requests served on one keep-alive connection before it is closed.
    pub max_requests_per_connection: usize,
    /// How long a streaming response waits for its next piece before it
    /// checks whether the client hung up (`ChunkSource::next`'s `wait`).
    pub stream_check: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 128,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_body: 64 * 1024,
            max_head: 16 * 1024,
            max_headers: 100,
            max_requests_per_connection: 1000,
            stream_check: Duration::from_secs(1),
        }
    }
}

/// A parsed request. Header names keep the client's spelling; look them up
/// with `header`, which ignores case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The target up to `?` (origin form; an absolute-form target such as
    /// `http://host/p` is reduced to `/p`). Not percent-decoded.
    pub path: String,
    /// The raw target after `?`, empty when there is none.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name`, ignoring ASCII case.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::wire::header(&self.headers, name)
    }
}

/// A response to write. `Content-Length`, `Transfer-Encoding` and
/// `Connection` are written by the server; if given here they are ignored.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    /// No body (`Content-Length: 0`).
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    /// A body of type `content_type` sent as `source` produces it (see
    /// `Body::Stream`).
    pub fn stream(status: u16, content_type: &str, source: Box<dyn ChunkSource>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Stream(source),
        }
    }

    /// A `text/plain` body.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: Body::Bytes(body.into().into_bytes()),
        }
    }

    /// An `application/json` body serialised from `value` (a
    /// `serde_json::Value`, a `json!` literal or any `Serialize`). A value
    /// that cannot be serialised (a map with non-string keys) becomes a 500.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Response {
        // About as long as the last one (a /status of 1000 jobs is ~400
        // KiB): one allocation instead of a dozen doublings and copies.
        static LAST: AtomicUsize = AtomicUsize::new(256);
        let mut body = Vec::with_capacity(LAST.load(Ordering::Relaxed));
        match serde_json::to_writer(&mut body, value) {
            Ok(()) => {
                LAST.store(body.len(), Ordering::Relaxed);
                Response::json_bytes(status, body)
            }
            Err(e) => Response::error(500, &format!("cannot serialise response: {e}")),
        }
    }

    /// An `application/json` body that is already serialised (its own
    /// bytes, or a cached page's).
    pub fn json_bytes(status: u16, body: impl Into<Body>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    /// `{"error": message}`, the body of every client error (SPEC §4).
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error": message }))
    }

    /// Adds a header (e.g. `Allow` on a 405).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first header called `name`, ignoring ASCII case.
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        super::wire::header(&self.headers, name)
    }
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Addr {
    /// The TCP address, e.g. to learn the port chosen for port 0.
    #[cfg(test)]
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(a) => Some(*a),
            Addr::Unix(_) => None,
        }
    }

    /// Connects to the listener so that a blocked accept() returns, the
    /// same trick as tiny_http's `unblock`.
    pub(super) fn wake(&self) -> io::Result<()> {
        match self {
            Addr::Unix(path) => UnixStream::connect(path).map(drop),
            Addr::Tcp(addr) => {
                let mut addr = *addr;
                // A wildcard listener is reachable on loopback.
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr.ip() {
                        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    });
                }
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map(drop)
            }
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Unix(p) => write!(f, "{}", p.display()),
            Addr::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// An accepted connection: the socket options the server needs, over unix
/// and TCP streams alike.
pub trait Stream: Read + Write + AsRawFd + Send + 'static {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
    fn shutdown_write(&self) -> io::Result<()>;
    /// Transport-specific set-up of a fresh connection.
    fn tune(&self) -> io::Result<()> {
        Ok(())
    }
    /// Whether the client has hung up, without blocking: while a streaming
    /// response waits for its next piece nothing else would notice. What
    /// the client sent meanwhile is read and dropped (a streaming response
    /// is the connection's last).
    fn peer_closed(&self) -> bool {
        let mut scratch = [0u8; 512];
        for _ in 0..16 {
            match recv(self.as_raw_fd(), &mut scratch, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return true,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return false,
                Err(_) => return true,
            }
        }
        false
    }
}

impl Stream for UnixStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, t)
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        UnixStream::set_nonblocking(self, on)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl Stream for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, t)
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, on)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    /// Each response is one write; Nagle would only delay it.
    fn tune(&self) -> io::Result<()> {
        self.set_nodelay(true)
    }
}

/// A listening socket the server can accept from.
pub trait Listener: Send + Sync + 'static {
    type Stream: Stream;
    fn accept(&self) -> io::Result<Self::Stream>;
    fn addr(&self) -> io::Result<Addr>;
    /// Make every accept() blocked on it return: shutdown(2) of a listening
    /// socket does that on Linux, at once, where connecting to it to wake
    /// one thread at a time costs a round trip each.
    fn unblock(&self);
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    fn accept(&self) -> io::Result<UnixStream> {
        UnixListener::accept(self).map(|(s, _)| s)
    }
    fn unblock(&self) {
        let _ = nix::sys::socket::shutdown(self.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
    fn addr(&self) -> io::Result<Addr> {
        let addr = self.local_addr()?;
        match addr.as_pathname() {
            Some(p) => Ok(Addr::Unix(p.to_path_buf())),
            // Without a path we could not wake the accept thread to stop it.
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "unix listener has no path",
            )),
        }
    }
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    fn accept(&self) -> io::Result<TcpStream> {
        TcpListener::accept(self).map(|(s, _)| s)
    }
    fn unblock(&self) {
        let _ = nix::sys::socket::shutdown(self.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
    fn addr(&self) -> io::Result<Addr> {
        self.local_addr().map(Addr::Tcp)
    }
}
