//! The HTTP/1.1 server: accepting connections on a unix or TCP listener,
//! parsing requests, framing responses, and every limit and timeout that
//! keeps it answering under abuse (SPEC §4: "many idle or slow clients do
//! not block `/v3/ping`; every request is answered or timed out").
//!
//! Small-stack threads accept connections and serve each one themselves
//! (see `run`), up to `Limits::max_connections`; beyond that a connection
//! gets `503` at once, without blocking anything. Each connection reads with a
//! timeout, and a request that has begun must be complete within
//! `read_timeout` of its first byte, so a client that trickles bytes cannot
//! hold a thread for longer than that either.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the server calls for every well-formed request, on the
/// connection's own thread.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Server threads run the handler (serde_json on up to 64 KiB bodies,
/// recursion limit 128); stacks are mapped lazily, so this costs address
/// space, not resident memory.
const THREAD_STACK: usize = 256 * 1024;
/// Threads kept waiting in accept() once their connection is done.
const MAX_IDLE_THREADS: usize = 4;
/// Bytes asked of each read(); a whole `/v3/ping` request fits in one.
const READ_CHUNK: usize = 4096;
/// A chunk-size line is a hex number plus optional extensions.
const MAX_CHUNK_LINE: usize = 1024;
/// How long to back off when accept() fails for lack of resources.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// How long a rejected connection is drained before it is closed (see
/// `linger`).
const LINGER: Duration = Duration::from_millis(500);
/// At most this much unread request is drained from a rejected connection.
const LINGER_BYTES: usize = 256 * 1024;

/// Limits applied to every connection; `Limits::default()` is what SPEC §4
/// asks of the control plane.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections handled at once; more are answered `503` and closed.
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
        super::header(&self.headers, name)
    }
}

/// A response to write. `Content-Length` and `Connection` are written by
/// the server; if given here they are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// No body (`Content-Length: 0`).
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` body.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.into().into_bytes(),
        }
    }

    /// An `application/json` body serialised from `value` (a
    /// `serde_json::Value`, a `json!` literal or any `Serialize`). A value
    /// that cannot be serialised (a map with non-string keys) becomes a 500.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::json_bytes(status, body),
            Err(e) => Response::error(500, &format!("cannot serialise response: {e}")),
        }
    }

    /// An `application/json` body that is already serialised.
    pub fn json_bytes(status: u16, body: impl Into<Vec<u8>>) -> Response {
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
        super::header(&self.headers, name)
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
    fn wake(&self) -> io::Result<()> {
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
pub trait Stream: Read + Write + Send + 'static {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
    fn shutdown_write(&self) -> io::Result<()>;
    /// Transport-specific set-up of a fresh connection.
    fn tune(&self) -> io::Result<()> {
        Ok(())
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
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    fn accept(&self) -> io::Result<UnixStream> {
        UnixListener::accept(self).map(|(s, _)| s)
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
    fn addr(&self) -> io::Result<Addr> {
        self.local_addr().map(Addr::Tcp)
    }
}

/// A running server. Dropping it (or `stop`) closes the listener;
/// connections already open finish their current request and close.
pub struct ServerHandle {
    addr: Addr,
    shared: Arc<dyn Control>,
}

impl ServerHandle {
    /// Where the server listens (for TCP, with the port chosen for port 0).
    #[cfg(test)]
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Connections being handled now.
    #[cfg(test)]
    pub fn active_connections(&self) -> usize {
        self.shared.state().active.load(Ordering::Acquire)
    }

    /// Server threads started so far (they are reused, see `run`).
    #[cfg(test)]
    pub fn threads_started(&self) -> usize {
        self.shared.state().spawned.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes the listener (so that its address can be
    /// bound again at once).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let state = self.shared.state();
        if state.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.close_listener();
        // Each thread blocked in accept() holds the listener open; wake
        // them one connection at a time, the same trick as tiny_http's
        // `unblock`. Give up after a second rather than hang.
        let deadline = Instant::now() + Duration::from_secs(1);
        while state.accepting.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            let before = state.accepting.load(Ordering::Acquire);
            if self.addr.wake().is_err() {
                return;
            }
            let woken = Instant::now() + Duration::from_millis(100);
            while state.accepting.load(Ordering::Acquire) >= before && Instant::now() < woken {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What every server thread shares, whatever the listener.
struct State {
    handler: Handler,
    limits: Limits,
    stop: AtomicBool,
    /// Connections being handled (bounded by `max_connections`).
    active: AtomicUsize,
    /// Threads in, or about to enter, accept().
    accepting: AtomicUsize,
    /// Threads started so far.
    spawned: AtomicUsize,
}

struct Shared<L> {
    state: State,
    /// Taken out by `stop`; threads hold a clone only while in accept().
    listener: Mutex<Option<Arc<L>>>,
}

/// The listener-independent face of `Shared`, for `ServerHandle`.
trait Control: Send + Sync {
    fn state(&self) -> &State;
    fn close_listener(&self);
}

impl<L: Listener> Control for Shared<L> {
    fn state(&self) -> &State {
        &self.state
    }
    fn close_listener(&self) {
        self.listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// Gives back a `max_connections` slot when the connection is done.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Starts serving `listener` on new threads and returns at once.
pub fn serve<L: Listener>(
    listener: L,
    handler: Handler,
    limits: Limits,
) -> io::Result<ServerHandle> {
    let addr = listener.addr()?;
    let shared = Arc::new(Shared {
        state: State {
            handler,
            limits,
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            accepting: AtomicUsize::new(0),
            spawned: AtomicUsize::new(0),
        },
        listener: Mutex::new(Some(Arc::new(listener))),
    });
    spawn_acceptor(&shared)?;
    Ok(ServerHandle { addr, shared })
}

/// Starts a thread that accepts; it counts as accepting from now on.
fn spawn_acceptor<L: Listener>(shared: &Arc<Shared<L>>) -> io::Result<()> {
    shared.state.accepting.fetch_add(1, Ordering::AcqRel);
    shared.state.spawned.fetch_add(1, Ordering::Relaxed);
    let thread_shared = shared.clone();
    let spawned = thread::Builder::new()
        .name("http".into())
        .stack_size(THREAD_STACK)
        .spawn(move || run(&thread_shared));
    if spawned.is_err() {
        shared.state.accepting.fetch_sub(1, Ordering::AcqRel);
    }
    spawned.map(drop)
}

/// A server thread, leader/followers style: it accepts a connection and
/// serves it itself, so no hand-off between threads (and no context switch)
/// sits between a client's connect and its answer; SPEC §8's
/// `/v3/ping` rate needs that. Whenever the last accepting thread takes a
/// connection it first starts another, so idle or slow connections never
/// stop new ones from being accepted. After a connection a thread goes
/// back to accept() unless `MAX_IDLE_THREADS` already wait there; waiting
/// threads sleep in the kernel, so an idle server has no wake-ups.
fn run<L: Listener>(shared: &Arc<Shared<L>>) {
    let state = &shared.state;
    loop {
        // Counted in `accepting` here (by `spawn_acceptor` or below).
        let listener = shared
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let accepted = match listener {
            Some(listener) => listener.accept(),
            None => {
                state.accepting.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        };
        let still_accepting = state
            .accepting
            .fetch_sub(1, Ordering::AcqRel)
            .saturating_sub(1);
        if state.stop.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok(stream)
                if state.active.fetch_add(1, Ordering::AcqRel) >= state.limits.max_connections =>
            {
                state.active.fetch_sub(1, Ordering::AcqRel);
                refuse(stream);
            }
            Ok(stream) => {
                let _slot = Slot(&state.active);
                // If no thread can be started, new connections wait in the
                // backlog until this one is done: degraded, not stuck.
                if still_accepting == 0 {
                    let _ = spawn_acceptor(shared);
                }
                handle_connection(stream, state);
            }
            Err(e) => {
                // Retrying at once after EMFILE, ENOBUFS, ... would spin.
                if !matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) {
                    thread::sleep(ACCEPT_BACKOFF);
                }
            }
        }
        if state.accepting.load(Ordering::Acquire) >= MAX_IDLE_THREADS {
            return;
        }
        state.accepting.fetch_add(1, Ordering::AcqRel);
    }
}

/// Answers `503` without ever blocking the accepting thread: the socket
/// is non-blocking, so a client that does not read loses the answer, not
/// our time. What the client already sent is drained first so that the
/// close does not turn into a TCP reset that discards the 503.
fn refuse<S: Stream>(mut stream: S) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut scratch = [0u8; 1024];
    for _ in 0..16 {
        match stream.read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let mut out = Vec::with_capacity(128);
    encode(
        &Response::error(503, "too many connections"),
        false,
        ConnHeader::Close,
        &mut out,
    );
    let _ = stream.write_all(&out);
    let _ = stream.shutdown_write();
}

/// Why a request was not handed to the handler.
enum Reject {
    /// Answer with this status and `{"error": message}`, then close.
    Status(u16, &'static str),
    /// Close without answering (the peer went away or is not talking HTTP
    /// any more).
    Close,
}

struct Conn<S> {
    stream: S,
    /// Received, unconsumed bytes are `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// Whether the socket's read timeout was shortened for a deadline and
    /// must be restored before waiting for the next request.
    timeout_changed: bool,
}

impl<S: Stream> Conn<S> {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more bytes; `Ok(0)` at end of stream. With a deadline the
    /// read gives up (`TimedOut`) when it passes.
    fn fill(&mut self, deadline: Option<Instant>) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
            self.timeout_changed = true;
        }
        super::read_append(&mut self.stream, &mut self.buf, READ_CHUNK)
    }

    /// `fill` for a request already under way: end of stream or an error
    /// closes the connection, and running out of time is a 408.
    fn fill_more(
        &mut self,
        deadline: &mut Option<Instant>,
        timeout: Duration,
    ) -> Result<(), Reject> {
        // The deadline starts at the first read that finds the request
        // incomplete, so a request takes at most twice `read_timeout`.
        let d = *deadline.get_or_insert_with(|| Instant::now() + timeout);
        match self.fill(Some(d)) {
            Ok(0) => Err(Reject::Close),
            Ok(_) => Ok(()),
            Err(e) if super::is_timeout(&e) => Err(Reject::Status(408, "request timed out")),
            Err(_) => Err(Reject::Close),
        }
    }
}

fn handle_connection<S: Stream>(stream: S, shared: &State) {
    let limits = &shared.limits;
    let configured = stream
        .set_read_timeout(Some(limits.read_timeout))
        .and_then(|_| stream.set_write_timeout(Some(limits.write_timeout)))
        .and_then(|_| stream.tune());
    if configured.is_err() {
        return;
    }
    // Buffers are kept per thread: a fresh 4 KiB allocation per connection
    // is an mmap and a munmap with musl's allocator.
    let (buf, mut out) = SPARE_BUFFERS.with(|b| b.take());
    let mut conn = Conn {
        stream,
        buf,
        pos: 0,
        timeout_changed: false,
    };
    serve_connection(&mut conn, &mut out, shared);
    let mut buf = std::mem::take(&mut conn.buf);
    if buf.capacity() <= MAX_SPARE && out.capacity() <= MAX_SPARE {
        buf.clear();
        out.clear();
        SPARE_BUFFERS.with(|b| b.set((buf, out)));
    }
}

thread_local! {
    /// The read and write buffers of this thread's last connection.
    static SPARE_BUFFERS: std::cell::Cell<(Vec<u8>, Vec<u8>)> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

/// Larger buffers (a big body went through) are freed, not kept.
const MAX_SPARE: usize = 64 * 1024;

fn serve_connection<S: Stream>(conn: &mut Conn<S>, out: &mut Vec<u8>, shared: &State) {
    let limits = &shared.limits;
    for served in 1..=limits.max_requests_per_connection {
        if conn.timeout_changed {
            if conn
                .stream
                .set_read_timeout(Some(limits.read_timeout))
                .is_err()
            {
                return;
            }
            conn.timeout_changed = false;
        }
        let (request, parsed) = match read_request(conn, limits) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(Reject::Close) => return,
            Err(Reject::Status(status, message)) => {
                out.clear();
                encode(
                    &Response::error(status, message),
                    false,
                    ConnHeader::Close,
                    out,
                );
                if conn.stream.write_all(out).is_ok() {
                    linger(conn);
                }
                return;
            }
        };
        let keep = parsed.keep_alive
            && served < limits.max_requests_per_connection
            && !shared.stop.load(Ordering::Acquire);
        let response = (shared.handler)(&request);
        let connection = match (keep, parsed.http10) {
            (false, _) => ConnHeader::Close,
            (true, true) => ConnHeader::KeepAlive,
            (true, false) => ConnHeader::None,
        };
        out.clear();
        encode(&response, request.method == "HEAD", connection, out);
        if conn.stream.write_all(out).is_err() || !keep {
            return;
        }
    }
}

/// Closes a connection whose request was refused part-way. Closing a TCP
/// socket with unread input sends a reset, and a reset can make the client
/// drop our error response before reading it; so we stop writing, then
/// read and discard what is still coming for a short while.
fn linger<S: Stream>(conn: &mut Conn<S>) {
    if conn.stream.shutdown_write().is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    conn.buf.clear();
    conn.pos = 0;
    while drained < LINGER_BYTES {
        match conn.fill(Some(deadline)) {
            Ok(n) if n > 0 => {
                drained += n;
                conn.buf.clear();
            }
            _ => return,
        }
    }
}

/// What the parser learned besides the `Request` itself.
struct Parsed {
    keep_alive: bool,
    http10: bool,
}

/// How the body of a request is framed.
enum Framing {
    Length(usize),
    Chunked,
}

/// Reads one request. `Ok(None)` when the connection ended or idled out
/// between requests, which is not an error.
fn read_request<S: Stream>(
    conn: &mut Conn<S>,
    limits: &Limits,
) -> Result<Option<(Request, Parsed)>, Reject> {
    let mut deadline = None;
    let head_len = loop {
        // RFC 9112 §2.2: ignore empty lines before a request line (some
        // clients send CRLF after a POST body).
        let skip = conn
            .buffered()
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        conn.consume(skip);
        if let Some(end) = find_head_end(conn.buffered()) {
            if end > limits.max_head {
                return Err(Reject::Status(431, "request header section too large"));
            }
            break end;
        }
        if conn.buffered().len() >= limits.max_head {
            return Err(Reject::Status(431, "request header section too large"));
        }
        if conn.buffered().is_empty() {
            // Between requests: waiting is governed by the idle timeout, and
            // running into it (or end of stream) simply ends the connection.
            match conn.fill(None) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(_) => return Ok(None),
            }
        } else {
            conn.fill_more(&mut deadline, limits.read_timeout)?;
        }
    };

    let head = std::str::from_utf8(&conn.buffered()[..head_len])
        .map_err(|_| Reject::Status(400, "request head is not valid UTF-8"))?;
    let (mut request, parsed, framing, expect_continue) = parse_head(head, limits)?;
    conn.consume(head_len);

    match framing {
        Framing::Length(0) => {}
        Framing::Length(n) => {
            if expect_continue && conn.buffered().len() < n {
                send_continue(conn)?;
            }
            while conn.buffered().len() < n {
                conn.fill_more(&mut deadline, limits.read_timeout)?;
            }
            request.body = conn.buffered()[..n].to_vec();
            conn.consume(n);
        }
        Framing::Chunked => {
            if expect_continue && conn.buffered().is_empty() {
                send_continue(conn)?;
            }
            request.body = read_chunked(conn, limits, &mut deadline)?;
        }
    }
    Ok(Some((request, parsed)))
}

fn send_continue<S: Stream>(conn: &mut Conn<S>) -> Result<(), Reject> {
    conn.stream
        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        .map_err(|_| Reject::Close)
}

/// The length of the head including the empty line that ends it.
pub(super) fn find_head_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'\n') {
        let nl = i + off;
        let rest = &b[nl + 1..];
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// RFC 9110 §5.6.2 token characters (method and header names).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_head(head: &str, limits: &Limits) -> Result<(Request, Parsed, Framing, bool), Reject> {
    const BAD: Reject = Reject::Status(400, "malformed request");
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(BAD)?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(Reject::Status(400, "malformed request line")),
    };
    if !is_token(method) {
        return Err(Reject::Status(400, "malformed request method"));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => {
            return Err(Reject::Status(505, "HTTP version not supported"))
        }
        _ => return Err(Reject::Status(400, "malformed request line")),
    };
    if target.is_empty() || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(Reject::Status(400, "malformed request target"));
    }
    // Absolute form (RFC 9112 §3.2.2), as sent to proxies: keep the path.
    let target = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => &rest[rest.find(['/', '?']).unwrap_or(rest.len())..],
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = if path.is_empty() { "/" } else { path };

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if headers.len() >= limits.max_headers {
            return Err(Reject::Status(431, "too many request headers"));
        }
        // Obsolete line folding (RFC 9112 §5.2) is rejected, as allowed.
        if line.starts_with([' ', '\t']) {
            return Err(Reject::Status(400, "malformed request header"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(Reject::Status(400, "malformed request header"))?;
        if !is_token(name) {
            return Err(Reject::Status(400, "malformed request header"));
        }
        headers.push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
    }

    let mut keep_alive = !http10;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut expect_continue = false;
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            // A list of equal values is allowed (RFC 9110 §8.6); anything
            // else could be read two ways, so it is refused.
            for v in value.split(',').map(str::trim) {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Reject::Status(400, "malformed Content-Length"));
                }
                let n: u64 = v
                    .parse()
                    .map_err(|_| Reject::Status(413, "request body too large"))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(Reject::Status(400, "conflicting Content-Length"));
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only plain `chunked` is supported; we do not decompress.
            let codings: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            if codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") || chunked {
                return Err(Reject::Status(501, "unsupported Transfer-Encoding"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case("100-continue") {
                return Err(Reject::Status(417, "unsupported Expect"));
            }
            expect_continue = !http10;
        }
    }
    // Both framings at once is how requests are smuggled (RFC 9112 §6.1).
    if transfer_encoding && (content_length.is_some() || http10) {
        return Err(Reject::Status(400, "malformed request framing"));
    }
    let framing = match content_length {
        _ if chunked => Framing::Chunked,
        Some(n) if n > limits.max_body as u64 => {
            return Err(Reject::Status(413, "request body too large"))
        }
        Some(n) => Framing::Length(n as usize),
        None => Framing::Length(0),
    };

    let request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: Vec::new(),
    };
    Ok((
        request,
        Parsed { keep_alive, http10 },
        framing,
        expect_continue,
    ))
}

/// Decodes a chunked body (RFC 9112 §7.1), refusing it as soon as it grows
/// beyond `max_body`. Trailer fields are read and dropped.
fn read_chunked<S: Stream>(
    conn: &mut Conn<S>,
    limits: &Limits,
    deadline: &mut Option<Instant>,
) -> Result<Vec<u8>, Reject> {
    const BAD: Reject = Reject::Status(400, "malformed chunked body");
    let mut body = Vec::new();
    loop {
        let (len, total) = read_line(conn, limits, deadline, MAX_CHUNK_LINE)?;
        let line = &conn.buffered()[..len];
        let digits = line.split(|&b| b == b';').next().unwrap_or_default();
        let digits = std::str::from_utf8(digits)
            .map_err(|_| BAD)?
            .trim_matches([' ', '\t']);
        if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(BAD);
        }
        let size = u64::from_str_radix(digits, 16).map_err(|_| BAD)?;
        conn.consume(total);
        if size == 0 {
            break;
        }
        if size > (limits.max_body - body.len()) as u64 {
            return Err(Reject::Status(413, "request body too large"));
        }
        let size = size as usize;
        while conn.buffered().len() < size + 2 {
            conn.fill_more(deadline, limits.read_timeout)?;
        }
        let data = conn.buffered();
        let crlf = match &data[size..size + 2] {
            b"\r\n" => 2,
            [b'\n', _] => 1,
            _ => return Err(BAD),
        };
        body.extend_from_slice(&data[..size]);
        conn.consume(size + crlf);
    }
    let mut trailers = 0;
    loop {
        let (len, total) = read_line(conn, limits, deadline, limits.max_head)?;
        conn.consume(total);
        if len == 0 {
            return Ok(body);
        }
        trailers += total;
        if trailers > limits.max_head {
            return Err(Reject::Status(431, "request header section too large"));
        }
    }
}

/// Waits for a whole line; returns its length without the line ending and
/// with it.
fn read_line<S: Stream>(
    conn: &mut Conn<S>,
    limits: &Limits,
    deadline: &mut Option<Instant>,
    max: usize,
) -> Result<(usize, usize), Reject> {
    loop {
        let data = conn.buffered();
        if let Some(line) = super::line_end(data) {
            return Ok(line);
        }
        if data.len() > max {
            return Err(Reject::Status(400, "malformed chunked body"));
        }
        conn.fill_more(deadline, limits.read_timeout)?;
    }
}

/// Which `Connection` header a response carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ConnHeader {
    /// HTTP/1.1 keep-alive, the default: nothing to say.
    None,
    /// The server closes after this response.
    Close,
    /// An HTTP/1.0 client asked to keep the connection.
    KeepAlive,
}

/// Serialises a whole response into `out`, so that it goes out in one
/// write (one syscall per response matters for SPEC §8's throughput).
fn encode(response: &Response, head_only: bool, connection: ConnHeader, out: &mut Vec<u8>) {
    let status = response.status;
    out.reserve(128 + response.body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status.clamp(100, 999)));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &response.headers {
        let framing = ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h));
        // A CR or LF would let a value inject headers; such a header is
        // dropped rather than sent broken.
        let unsafe_bytes = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        if framing || !is_token(name) || unsafe_bytes(value) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // RFC 9110 §6.4.1: 1xx, 204 and 304 have no body; 1xx and 204 must not
    // carry Content-Length either.
    let bodiless = status < 200 || status == 204 || status == 304;
    if !(status < 200 || status == 204) {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(
            out,
            if bodiless {
                0
            } else {
                response.body.len() as u64
            },
        );
        out.extend_from_slice(b"\r\n");
    }
    match connection {
        ConnHeader::None => {}
        ConnHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
        ConnHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !bodiless {
        out.extend_from_slice(&response.body);
    }
}

/// Appends `n` in decimal without going through `fmt`.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The reason phrase for a status code (RFC 9110 §15).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::path::Path;

    /// A unique directory for a test's socket, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("cp-http-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn echo() -> Handler {
        Arc::new(|r: &Request| {
            if r.path == "/v3/ping" {
                return Response::text(200, "ok");
            }
            Response::text(
                200,
                format!(
                    "{} {} q={} x={} body={}",
                    r.method,
                    r.path,
                    r.query,
                    r.header("x-test").unwrap_or("-"),
                    String::from_utf8_lossy(&r.body)
                ),
            )
        })
    }

    pub(crate) struct UnixServer {
        pub server: ServerHandle,
        pub path: PathBuf,
        _dir: TempDir,
    }

    pub(crate) fn unix_server(limits: Limits, handler: Handler) -> UnixServer {
        let dir = TempDir::new();
        let path = dir.0.join("control.socket");
        let listener = UnixListener::bind(&path).unwrap();
        let server = serve(listener, handler, limits).unwrap();
        UnixServer {
            server,
            path,
            _dir: dir,
        }
    }

    fn connect(path: &Path) -> UnixStream {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Everything until the server closes (the test fails after 5 s).
    fn read_all(s: &mut impl Read) -> String {
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("no EOF: {e}; got {:?}", String::from_utf8_lossy(&out)));
        String::from_utf8_lossy(&out).into_owned()
    }

    /// One response framed by Content-Length; `buf` keeps what follows it.
    fn read_one(s: &mut impl Read, buf: &mut Vec<u8>) -> (String, String) {
        let end = loop {
            if let Some(end) = find_head_end(buf) {
                break end;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap();
            assert!(
                n > 0,
                "closed before a response; got {:?}",
                String::from_utf8_lossy(buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..end].to_vec()).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < end + length {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed in the body; head {head:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8(buf[end..end + length].to_vec()).unwrap();
        buf.drain(..end + length);
        (head, body)
    }

    fn exchange(path: &Path, request: &[u8]) -> String {
        let mut s = connect(path);
        s.write_all(request).unwrap();
        read_all(&mut s)
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn get_ping_with_connection_close() {
        let u = unix_server(Limits::default(), echo());
        let got = exchange(
            &u.path,
            b"GET /v3/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(
            got,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
    }

    #[test]
    fn post_with_content_length_and_query() {
        let u = unix_server(Limits::default(), echo());
        let got = exchange(
            &u.path,
            b"POST /v3/env?a=1&b HTTP/1.1\r\nHost: x\r\nx-TEST: yes\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        );
        assert!(
            got.ends_with("\r\n\r\nPOST /v3/env q=a=1&b x=yes body=hello"),
            "{got}"
        );
    }

    #[test]
    fn chunked_post_arriving_in_pieces() {
        let u = unix_server(Limits::default(), echo());
        let mut s = connect(&u.path);
        s.write_all(
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhel",
        )
        .unwrap();
        s.flush().unwrap();
        thread::sleep(Duration::from_millis(20)); // so the server reads twice
        s.write_all(b"lo\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
            .unwrap();
        let got = read_all(&mut s);
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.ends_with("body=hello world"), "{got}");
    }

    #[test]
    fn expect_100_continue_is_answered_before_the_body() {
        let u = unix_server(Limits::default(), echo());
        let mut s = connect(&u.path);
        s.write_all(
            b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        let mut buf = Vec::new();
        let (head, body) = read_one(&mut s, &mut buf);
        assert_eq!(
            (head.as_str(), body.as_str()),
            ("HTTP/1.1 100 Continue\r\n\r\n", "")
        );
        s.write_all(b"hello").unwrap();
        let (head, body) = read_one(&mut s, &mut buf);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, "POST /e q= x=- body=hello");
    }

    #[test]
    fn keep_alive_serves_two_requests_on_one_connection() {
        let u = unix_server(Limits::default(), echo());
        let mut s = connect(&u.path);
        let mut buf = Vec::new();
        // Both requests in one write: pipelining must work too.
        s.write_all(b"GET /v3/ping HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\n")
            .unwrap();
        let (head, body) = read_one(&mut s, &mut buf);
        assert!(!head.contains("Connection"), "{head}");
        assert_eq!(body, "ok");
        let (_, body) = read_one(&mut s, &mut buf);
        assert_eq!(body, "GET /two q= x=- body=");
        s.write_all(b"GET /v3/ping HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let rest = read_all(&mut s);
        assert!(
            rest.contains("Connection: close\r\n") && rest.ends_with("ok"),
            "{rest}"
        );
    }

    #[test]
    fn http10_closes_unless_keep_alive_is_asked() {
        let u = unix_server(Limits::default(), echo());
        let got = exchange(&u.path, b"GET /v3/ping HTTP/1.0\r\n\r\n");
        assert!(
            got.contains("Connection: close\r\n") && got.ends_with("ok"),
            "{got}"
        );

        let mut s = connect(&u.path);
        let mut buf = Vec::new();
        s.write_all(b"GET /v3/ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let (head, _) = read_one(&mut s, &mut buf);
        assert!(head.contains("Connection: keep-alive\r\n"), "{head}");
        s.write_all(b"GET /v3/ping HTTP/1.0\r\n\r\n").unwrap();
        assert!(read_all(&mut s).ends_with("ok"));
    }

    #[test]
    fn declared_oversize_body_is_refused_before_it_is_sent() {
        let u = unix_server(Limits::default(), echo());
        // The body is never sent: the 413 must come anyway.
        let got = exchange(
            &u.path,
            b"POST /v3/env HTTP/1.1\r\nContent-Length: 65537\r\n\r\n",
        );
        assert!(
            got.starts_with("HTTP/1.1 413 Content Too Large\r\n"),
            "{got}"
        );
        assert!(got.contains("Content-Type: application/json\r\n"), "{got}");
        assert!(
            got.ends_with(r#"{"error":"request body too large"}"#),
            "{got}"
        );
        // Exactly the limit is fine.
        let mut req =
            b"POST /big HTTP/1.1\r\nConnection: close\r\nContent-Length: 65536\r\n\r\n".to_vec();
        req.resize(req.len() + 65536, b'a');
        let got = exchange(&u.path, &req);
        assert!(
            got.starts_with("HTTP/1.1 200 OK\r\n"),
            "{}",
            &got[..40.min(got.len())]
        );
    }

    #[test]
    fn oversize_body_over_tcp_still_gets_its_413() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = serve(listener, echo(), Limits::default()).unwrap();
        let mut s = TcpStream::connect(server.addr().tcp().unwrap()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Head and part of an oversize body: the unread rest must not turn
        // the close into a reset that loses the 413.
        let mut req = b"POST /x HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".to_vec();
        req.resize(req.len() + 30000, b'a');
        s.write_all(&req).unwrap();
        let got = read_all(&mut s);
        assert!(got.starts_with("HTTP/1.1 413 "), "{got}");
    }

    #[test]
    fn chunked_body_over_the_limit_is_413() {
        let u = unix_server(Limits::default(), echo());
        let got = exchange(
            &u.path,
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\n",
        );
        assert!(got.starts_with("HTTP/1.1 413 "), "{got}");
    }

    #[test]
    fn garbage_and_bad_framing_are_400() {
        let u = unix_server(Limits::default(), echo());
        for request in [
            &b"HELLO\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            let got = exchange(&u.path, request);
            assert!(
                got.starts_with("HTTP/1.1 400 Bad Request\r\n") && got.contains(r#"{"error":"#),
                "{:?} -> {got}",
                String::from_utf8_lossy(request)
            );
        }
        let got = exchange(&u.path, b"GET / HTTP/2.0\r\n\r\n");
        assert!(got.starts_with("HTTP/1.1 505 "), "{got}");
        let got = exchange(
            &u.path,
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        );
        assert!(got.starts_with("HTTP/1.1 501 "), "{got}");
    }

    #[test]
    fn oversize_head_and_too_many_headers_are_431() {
        let u = unix_server(Limits::default(), echo());
        let mut req = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        req.resize(req.len() + 17 * 1024, b'a');
        req.extend_from_slice(b"\r\n\r\n");
        let got = exchange(&u.path, &req);
        assert!(got.starts_with("HTTP/1.1 431 "), "{got}");

        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..101 {
            req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let got = exchange(&u.path, &req);
        assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
    }

    #[test]
    fn fifty_idle_connections_do_not_block_ping() {
        let u = unix_server(Limits::default(), echo());
        let idle: Vec<UnixStream> = (0..50).map(|_| connect(&u.path)).collect();
        wait_for("50 connections accepted", || {
            u.server.active_connections() == 50
        });
        let start = Instant::now();
        let got = exchange(
            &u.path,
            b"GET /v3/ping HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(got.ends_with("ok"), "{got}");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "ping took {:?}",
            start.elapsed()
        );
        drop(idle);
    }

    #[test]
    fn half_sent_request_and_idle_connection_are_timed_out() {
        let limits = Limits {
            read_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let u = unix_server(limits, echo());
        let mut half = connect(&u.path);
        half.write_all(b"GET /v3/ping HTTP/1.1\r\nHo").unwrap();
        let mut idle = connect(&u.path);
        let got = read_all(&mut half);
        assert!(got.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{got}");
        assert_eq!(
            read_all(&mut idle),
            "",
            "an idle connection is closed silently"
        );
        wait_for("all connections closed", || {
            u.server.active_connections() == 0
        });
    }

    #[test]
    fn trickling_client_is_timed_out_by_the_request_deadline() {
        let limits = Limits {
            read_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let u = unix_server(limits, echo());
        let mut s = connect(&u.path);
        let mut writer = s.try_clone().unwrap();
        // One byte every 50 ms never trips the per-read timeout.
        let trickle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if writer.write_all(b"X-A: b\r\n").is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let got = read_all(&mut s);
        assert!(got.starts_with("HTTP/1.1 408 "), "{got}");
        drop(s);
        trickle.join().unwrap();
    }

    #[test]
    fn connections_over_the_cap_get_503() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let u = unix_server(limits, echo());
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = connect(&u.path);
            s.write_all(b"GET /v3/ping HTTP/1.1\r\n\r\n").unwrap();
            let (_, body) = read_one(&mut s, &mut Vec::new());
            assert_eq!(body, "ok");
            held.push(s);
        }
        let got = exchange(&u.path, b"GET /v3/ping HTTP/1.1\r\n\r\n");
        assert!(
            got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{got}"
        );
        assert!(
            got.ends_with(r#"{"error":"too many connections"}"#),
            "{got}"
        );
        drop(held);
        wait_for("slots released", || u.server.active_connections() == 0);
        let got = exchange(
            &u.path,
            b"GET /v3/ping HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(got.ends_with("ok"), "{got}");
    }

    #[test]
    fn head_gets_headers_only() {
        let u = unix_server(Limits::default(), echo());
        let got = exchange(
            &u.path,
            b"HEAD /v3/ping HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(got.contains("Content-Length: 2\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\n"), "{got}");
    }

    #[test]
    fn absolute_form_target_is_reduced_to_its_path() {
        let u = unix_server(Limits::default(), echo());
        let got = exchange(
            &u.path,
            b"GET http://localhost/a/b?c=d HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(got.ends_with("GET /a/b q=c=d x=- body="), "{got}");
        let got = exchange(
            &u.path,
            b"GET http://localhost?c HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(got.ends_with("GET / q=c x=- body="), "{got}");
    }

    #[test]
    fn requests_per_connection_are_capped() {
        let limits = Limits {
            max_requests_per_connection: 2,
            ..Limits::default()
        };
        let u = unix_server(limits, echo());
        let mut s = connect(&u.path);
        s.write_all(b"GET /v3/ping HTTP/1.1\r\n\r\nGET /v3/ping HTTP/1.1\r\n\r\n")
            .unwrap();
        let got = read_all(&mut s);
        assert_eq!(got.matches("200 OK").count(), 2, "{got}");
        assert_eq!(got.matches("Connection: close").count(), 1, "{got}");
    }

    #[test]
    fn tcp_get_and_stop() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = serve(listener, echo(), Limits::default()).unwrap();
        let addr = server.addr().tcp().unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /v3/ping HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert!(read_all(&mut s).ends_with("\r\n\r\nok"));
        // A connection still open must not keep the listener open: a reload
        // binds the same address again at once.
        let _idle = TcpStream::connect(addr).unwrap();
        wait_for("idle connection accepted", || {
            server.active_connections() == 1
        });
        server.stop();
        assert!(
            TcpStream::connect(addr).is_err(),
            "still listening after stop"
        );
        TcpListener::bind(addr).expect("address free again after stop");
    }

    #[test]
    fn unix_stop_closes_the_listener() {
        let u = unix_server(Limits::default(), echo());
        let UnixServer { server, path, _dir } = u;
        server.stop();
        assert!(
            UnixStream::connect(&path).is_err(),
            "still listening after stop"
        );
    }

    /// SPEC §8's bar: sequential `GET /v3/ping`, one connection per
    /// request. Run with `cargo test --release --bin containerpilot
    /// throughput -- --ignored --nocapture`; debug numbers mean nothing.
    #[test]
    #[ignore]
    fn throughput_ping_one_connection_per_request() {
        let u = unix_server(Limits::default(), echo());
        let mut latencies = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            let t = Instant::now();
            let mut s = UnixStream::connect(&u.path).unwrap();
            s.write_all(b"GET /v3/ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 256];
            let mut got = 0;
            while !buf[..got].ends_with(b"\r\n\r\nok") {
                let n = s.read(&mut buf[got..]).unwrap();
                assert!(n > 0);
                got += n;
            }
            drop(s);
            latencies.push(t.elapsed());
        }
        let elapsed = start.elapsed();
        latencies.sort();
        let p =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        eprintln!(
            "{} requests in {elapsed:?} on {} threads: {:.0} req/s, p50 {:?}, p99 {:?}",
            latencies.len(),
            u.server.threads_started(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            p(0.5),
            p(0.99)
        );
    }

    #[test]
    fn encode_frames_every_response_itself() {
        let mut out = Vec::new();
        let r = Response::text(200, "hi")
            .with_header("Content-Length", "99")
            .with_header("X-Evil", "a\r\nSet-Cookie: x")
            .with_header("Allow", "GET");
        encode(&r, false, ConnHeader::None, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nAllow: GET\r\nContent-Length: 2\r\n\r\nhi"
        );
        out.clear();
        encode(
            &Response::empty(204).with_header("X", "y"),
            false,
            ConnHeader::Close,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "HTTP/1.1 204 No Content\r\nX: y\r\nConnection: close\r\n\r\n"
        );
        out.clear();
        encode(&Response::empty(200), false, ConnHeader::None, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        );
        let j = Response::json(422, &serde_json::json!({"error": "x"}));
        assert_eq!(
            (j.header("content-type"), j.body.as_slice()),
            (Some("application/json"), &br#"{"error":"x"}"#[..])
        );
    }
}
