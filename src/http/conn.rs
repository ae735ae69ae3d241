//! One connection on the server, from accept to close: reading requests
//! under the idle timeout and the per-request deadline, keep-alive,
//! answering (a whole body, or a stream as it is produced), marking the
//! connection's slot as waiting or being served, and lingering after a
//! refusal so that the refusal is read.
//!
//! Each connection reads with a timeout, and a request that has begun must
//! be complete within `read_timeout` of its first byte, so a client that
//! trickles bytes cannot hold a thread for longer than that either.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::message::{Body, ChunkSource, Limits, Next, Request, Response, Stream};
use super::slots::Slot;
use super::wire::{
    self, BodyFraming, ChunkError, ChunkRules, ConnHeader, Framing, RecvBuf, Refusal,
};

/// Bytes asked of each read(); a whole `/v3/ping` request fits in one.
const READ_CHUNK: usize = 4096;
/// A chunk-size line is a hex number plus optional extensions.
const MAX_CHUNK_LINE: usize = 1024;
/// How long a rejected connection is drained before it is closed (see
/// `linger`).
const LINGER: Duration = Duration::from_millis(500);
/// At most this much unread request is drained from a rejected connection.
const LINGER_BYTES: usize = 256 * 1024;
/// Larger buffers (a big body went through) are freed, not kept.
const MAX_SPARE: usize = 64 * 1024;

thread_local! {
    /// The read and write buffers of this thread's last connection.
    static SPARE_BUFFERS: std::cell::Cell<(Vec<u8>, Vec<u8>)> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

/// Why a request was not handed to the handler.
enum Reject {
    /// Answer with this status and `{"error": message}`, then close.
    Status(u16, &'static str),
    /// Close without answering (the peer went away or is not talking HTTP
    /// any more).
    Close,
}

impl From<Refusal> for Reject {
    fn from(r: Refusal) -> Reject {
        Reject::Status(r.status, r.message)
    }
}

/// One connection. The slot comes first so that it is given back before
/// the stream is closed (fields drop in order; see `pool`).
struct Conn<'a, S> {
    slot: Slot<'a>,
    stream: S,
    input: RecvBuf,
    /// Whether the socket's read timeout was shortened for a deadline and
    /// must be restored before waiting for the next request.
    timeout_changed: bool,
}

impl<S: Stream> Conn<'_, S> {
    /// Reads more bytes; `Ok(0)` at end of stream. With a deadline the
    /// read gives up (`TimedOut`) when it passes.
    fn fill(&mut self, deadline: Option<Instant>) -> io::Result<usize> {
        fill(
            &mut self.stream,
            &mut self.timeout_changed,
            &mut self.input,
            deadline,
        )
    }

    /// `fill` for a request already under way: end of stream or an error
    /// closes the connection, and running out of time is a 408.
    fn fill_more(
        &mut self,
        deadline: &mut Option<Instant>,
        timeout: Duration,
    ) -> Result<(), Reject> {
        fill_more(
            &mut self.stream,
            &mut self.timeout_changed,
            &mut self.input,
            deadline,
            timeout,
        )
    }
}

/// `Conn::fill` on its parts, for use while `input` is borrowed apart.
fn fill<S: Stream>(
    stream: &mut S,
    timeout_changed: &mut bool,
    input: &mut RecvBuf,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        *timeout_changed = true;
    }
    input.read_from(stream, READ_CHUNK)
}

/// `Conn::fill_more` on its parts.
fn fill_more<S: Stream>(
    stream: &mut S,
    timeout_changed: &mut bool,
    input: &mut RecvBuf,
    deadline: &mut Option<Instant>,
    timeout: Duration,
) -> Result<(), Reject> {
    // The deadline starts at the first read that finds the request
    // incomplete, so a request takes at most twice `read_timeout`.
    let d = *deadline.get_or_insert_with(|| Instant::now() + timeout);
    match fill(stream, timeout_changed, input, Some(d)) {
        Ok(0) => Err(Reject::Close),
        Ok(_) => Ok(()),
        Err(e) if super::is_timeout(&e) => Err(Reject::Status(408, "request timed out")),
        Err(_) => Err(Reject::Close),
    }
}

/// Serves the connection on `stream` until it closes, then gives `slot`
/// back and closes the stream, in that order.
pub(super) fn handle_connection<S: Stream>(stream: S, slot: Slot<'_>) {
    // Buffers are kept per thread: a fresh 4 KiB allocation per connection
    // is an mmap and a munmap with musl's allocator.
    let (buf, mut out) = SPARE_BUFFERS.with(|b| b.take());
    let mut conn = Conn {
        slot,
        stream,
        input: RecvBuf::with_vec(buf),
        timeout_changed: false,
    };
    let limits = &conn.slot.state.limits;
    let configured = conn
        .stream
        .set_read_timeout(Some(limits.read_timeout))
        .and_then(|_| conn.stream.set_write_timeout(Some(limits.write_timeout)))
        .and_then(|_| conn.stream.tune());
    if configured.is_ok() {
        serve_connection(&mut conn, &mut out);
    }
    let buf = std::mem::take(&mut conn.input).into_vec();
    if buf.capacity() <= MAX_SPARE && out.capacity() <= MAX_SPARE {
        // `buf` keeps its length: its bytes stay initialised for the next
        // connection's reads (see `RecvBuf`).
        out.clear();
        SPARE_BUFFERS.with(|b| b.set((buf, out)));
    }
}

fn serve_connection<S: Stream>(conn: &mut Conn<'_, S>, out: &mut Vec<u8>) {
    let shared = conn.slot.state;
    let ticket = conn.slot.ticket;
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
        let (request, keep_alive, http10) = match read_request(conn, limits) {
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
        if !shared.serving(ticket) {
            // Evicted just as its request completed: the socket is shut.
            return;
        }
        let response = (shared.handler)(&request);
        // Read after the handler, which may take long: a server stopped
        // meanwhile says it closes.
        let keep = keep_alive
            && served < limits.max_requests_per_connection
            && !shared.stop.load(Ordering::Acquire);
        let connection = match (keep, http10) {
            (false, _) => ConnHeader::Close,
            (true, true) => ConnHeader::KeepAlive,
            (true, false) => ConnHeader::None,
        };
        let head_only = request.method == "HEAD";
        if let Body::Stream(source) = response.body {
            let head = (response.status, response.headers.as_slice());
            return stream_body(conn, out, head, source, head_only, http10);
        }
        out.clear();
        encode(&response, head_only, connection, out);
        if conn.stream.write_all(out).is_err() || !keep || !shared.waiting(ticket) {
            return;
        }
    }
}

/// Sends a streaming response (see `Body::Stream`): the head, then a chunk
/// per piece until the source ends, the client hangs up or stops reading,
/// or the server stops. The connection closes afterwards. Its slot stays
/// marked as being served throughout, so it is never evicted, and nothing
/// is read but the check for a hang-up, so `read_timeout` does not apply.
fn stream_body<S: Stream>(
    conn: &mut Conn<'_, S>,
    out: &mut Vec<u8>,
    (status, headers): (u16, &[(String, String)]),
    mut source: Box<dyn ChunkSource>,
    head_only: bool,
    http10: bool,
) {
    let state = conn.slot.state;
    // HTTP/1.0 has no chunks: the body ends where the connection does.
    let framing = if http10 {
        BodyFraming::Close
    } else {
        BodyFraming::Chunked
    };
    out.clear();
    wire::encode_head(status, headers, framing, ConnHeader::Close, out);
    if conn.stream.write_all(out).is_err() || head_only || !wire::has_body(status) {
        return;
    }
    while !state.stop.load(Ordering::Acquire) {
        match source.next(state.limits.stream_check) {
            Next::Chunk(data) if !data.is_empty() => {
                out.clear();
                if http10 {
                    out.extend_from_slice(&data);
                } else {
                    wire::encode_chunk(&data, out);
                }
                if conn.stream.write_all(out).is_err() {
                    return;
                }
            }
            Next::Chunk(_) | Next::Idle => {
                if conn.stream.peer_closed() {
                    return;
                }
            }
            Next::End => break,
        }
    }
    if !http10 {
        let _ = conn.stream.write_all(wire::LAST_CHUNK);
    }
}

/// Closes a connection whose request was refused part-way. Closing a TCP
/// socket with unread input sends a reset, and a reset can make the client
/// drop our error response before reading it; so we stop writing, then
/// read and discard what is still coming for a short while.
fn linger<S: Stream>(conn: &mut Conn<'_, S>) {
    if conn.stream.shutdown_write().is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    conn.input.clear();
    while drained < LINGER_BYTES {
        match conn.fill(Some(deadline)) {
            Ok(n) if n > 0 => {
                drained += n;
                conn.input.clear();
            }
            _ => return,
        }
    }
}

/// Reads one request, with whether the connection may be kept and whether
/// the client speaks HTTP/1.0. `Ok(None)` when the connection ended or
/// idled out between requests, which is not an error.
fn read_request<S: Stream>(
    conn: &mut Conn<'_, S>,
    limits: &Limits,
) -> Result<Option<(Request, bool, bool)>, Reject> {
    let mut deadline = None;
    let head_len = loop {
        // RFC 9112 §2.2: ignore empty lines before a request line (some
        // clients send CRLF after a POST body).
        let skip = conn
            .input
            .buffered()
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        conn.input.consume(skip);
        if let Some(end) = wire::find_head_end(conn.input.buffered()) {
            if end > limits.max_head {
                return Err(Reject::Status(431, "request header section too large"));
            }
            break end;
        }
        if conn.input.buffered().len() >= limits.max_head {
            return Err(Reject::Status(431, "request header section too large"));
        }
        if conn.input.buffered().is_empty() {
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

    let head = std::str::from_utf8(&conn.input.buffered()[..head_len])
        .map_err(|_| Reject::Status(400, "request head is not valid UTF-8"))?;
    let rules = wire::RequestRules {
        max_headers: limits.max_headers,
        max_body: limits.max_body,
    };
    let head = wire::parse_request_head(head, rules)?;
    conn.input.consume(head_len);

    let mut body = Vec::new();
    match head.framing {
        Framing::Length(0) => {}
        Framing::Length(n) => {
            if head.expect_continue && conn.input.buffered().len() < n {
                send_continue(conn)?;
            }
            while conn.input.buffered().len() < n {
                conn.fill_more(&mut deadline, limits.read_timeout)?;
            }
            body = conn.input.buffered()[..n].to_vec();
            conn.input.consume(n);
        }
        Framing::Chunked => {
            if head.expect_continue && conn.input.buffered().is_empty() {
                send_continue(conn)?;
            }
            body = read_chunked(conn, limits, &mut deadline)?;
        }
    }
    let request = Request {
        method: head.method,
        path: head.path,
        query: head.query,
        headers: head.headers,
        body,
    };
    Ok(Some((request, head.keep_alive, head.http10)))
}

fn send_continue<S: Stream>(conn: &mut Conn<'_, S>) -> Result<(), Reject> {
    conn.stream
        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        .map_err(|_| Reject::Close)
}

/// Decodes a chunked body (RFC 9112 §7.1), refusing it as soon as it grows
/// beyond `max_body`. Trailer fields are read and dropped.
fn read_chunked<S: Stream>(
    conn: &mut Conn<'_, S>,
    limits: &Limits,
    deadline: &mut Option<Instant>,
) -> Result<Vec<u8>, Reject> {
    let Conn {
        stream,
        input,
        timeout_changed,
        ..
    } = conn;
    // Failures of `fill` are already worded; the decoder passes them on.
    let mut fill_input = |input: &mut RecvBuf| {
        fill_more(
            stream,
            timeout_changed,
            input,
            deadline,
            limits.read_timeout,
        )
        .map(|()| 1)
    };
    let rules = ChunkRules {
        max_line: MAX_CHUNK_LINE,
        max_body: limits.max_body as u64,
        strict: true,
    };
    let mut body = Vec::new();
    let _ = wire::read_chunks(input, &mut fill_input, rules, &mut |data| {
        body.extend_from_slice(data);
        std::ops::ControlFlow::Continue(())
    })
    .map_err(|e| chunk_reject(e, Reject::Status(413, "request body too large")))?;
    wire::skip_trailers(input, &mut fill_input, limits.max_head, limits.max_head)
        .map_err(|e| chunk_reject(e, Reject::Status(431, "request header section too large")))?;
    Ok(body)
}

fn chunk_reject(e: ChunkError<Reject>, too_large: Reject) -> Reject {
    match e {
        ChunkError::Fill(reject) => reject,
        ChunkError::Malformed | ChunkError::LineTooLong => {
            Reject::Status(400, "malformed chunked body")
        }
        ChunkError::TooLarge => too_large,
        // `fill_more` reports end of stream as `Reject::Close` itself.
        ChunkError::Closed => Reject::Close,
    }
}

/// Serialises a whole response into `out`, so that it goes out in one
/// write (one syscall per response matters for SPEC §8's throughput); of a
/// streaming response, the head.
pub(super) fn encode(
    response: &Response,
    head_only: bool,
    connection: ConnHeader,
    out: &mut Vec<u8>,
) {
    let status = response.status;
    let body = match &response.body {
        Body::Bytes(body) => body,
        Body::Shared(body) => body.as_slice(),
        // Only the head: `stream_body` writes the rest.
        Body::Stream(_) => {
            return wire::encode_head(
                status,
                &response.headers,
                BodyFraming::Chunked,
                connection,
                out,
            )
        }
    };
    out.reserve(128 + body.len());
    let framing = BodyFraming::Length(body.len() as u64);
    wire::encode_head(status, &response.headers, framing, connection, out);
    if !head_only && wire::has_body(status) {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::http::server::tests::{connect, echo, read_all, unix_server, wait_for};
    use crate::http::server::Handler;
    use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread;

    /// A stream fed by the test: `Some(piece)` is sent, `None` ends it.
    /// `dropped` is set once the server lets go of it.
    struct Feed {
        rx: Receiver<Option<Vec<u8>>>,
        dropped: Arc<AtomicBool>,
    }

    impl ChunkSource for Feed {
        fn next(&mut self, wait: Duration) -> Next {
            match self.rx.recv_timeout(wait) {
                Ok(Some(piece)) => Next::Chunk(piece),
                Ok(None) | Err(RecvTimeoutError::Disconnected) => Next::End,
                Err(RecvTimeoutError::Timeout) => Next::Idle,
            }
        }
    }

    impl Drop for Feed {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::Release);
        }
    }

    /// The test's end of a stream: where to send its pieces, and whether
    /// the server has let go of it.
    pub(crate) type FeedEnd = (Sender<Option<Vec<u8>>>, Arc<AtomicBool>);

    /// The test's end of each stream the handler starts, in order.
    pub(crate) struct Feeds {
        started: Receiver<FeedEnd>,
    }

    impl Feeds {
        pub(crate) fn next(&self) -> FeedEnd {
            self.started
                .recv_timeout(Duration::from_secs(5))
                .expect("the handler started a stream")
        }
    }

    /// `/follow` streams a `Feed`; other paths are `echo`.
    pub(crate) fn streaming() -> (Handler, Feeds) {
        let (started_tx, started) = unbounded();
        let started_tx = Mutex::new(started_tx);
        let echo = echo();
        let handler: Handler = Arc::new(move |r: &Request| {
            if r.path != "/follow" {
                return echo(r);
            }
            let (tx, rx) = unbounded();
            let dropped = Arc::new(AtomicBool::new(false));
            let _ = started_tx.lock().unwrap().send((tx, dropped.clone()));
            Response::stream(200, "text/plain", Box::new(Feed { rx, dropped }))
        });
        (handler, Feeds { started })
    }

    /// Reads until `want` has arrived, failing (after 5 s) otherwise.
    fn read_until(s: &mut UnixStream, got: &mut Vec<u8>, want: &[u8]) {
        while !got.windows(want.len()).any(|w| w == want) {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or_else(|e| {
                panic!(
                    "{e} waiting for {:?}; got {:?}",
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(got)
                )
            });
            assert!(
                n > 0,
                "closed before {:?}; got {:?}",
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn streamed_pieces_go_out_as_chunks_as_they_come() {
        let (handler, feeds) = streaming();
        let u = unix_server(Limits::default(), handler);
        let mut s = connect(&u.path);
        s.write_all(b"GET /follow HTTP/1.1\r\n\r\n").unwrap();
        let (tx, dropped) = feeds.next();
        let mut got = Vec::new();
        read_until(&mut s, &mut got, b"\r\n\r\n");
        assert_eq!(
            String::from_utf8_lossy(&got),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        // Each piece arrives before the next is produced.
        for (piece, chunk) in [
            (&b"line one\n"[..], &b"9\r\nline one\n\r\n"[..]),
            (&[b'x'; 300][..], &b"12c\r\nxxx"[..]),
        ] {
            got.clear();
            tx.send(Some(piece.to_vec())).unwrap();
            read_until(&mut s, &mut got, chunk);
        }
        tx.send(None).unwrap();
        let all = String::from_utf8_lossy(&got).into_owned() + &read_all(&mut s);
        assert!(all.ends_with("xxx\r\n0\r\n\r\n"), "{all:?}");
        wait_for("source dropped", || dropped.load(Ordering::Acquire));
        wait_for("slot released", || u.server.active_connections() == 0);
    }

    #[test]
    fn a_client_hanging_up_ends_an_idle_stream() {
        let (handler, feeds) = streaming();
        let limits = Limits {
            stream_check: Duration::from_millis(20),
            ..Limits::default()
        };
        let u = unix_server(limits, handler);
        let mut s = connect(&u.path);
        s.write_all(b"GET /follow HTTP/1.1\r\n\r\n").unwrap();
        let (_tx, dropped) = feeds.next();
        read_until(&mut s, &mut Vec::new(), b"\r\n\r\n");
        drop(s);
        // Nothing is ever written again: only the idle check can notice.
        wait_for("source dropped", || dropped.load(Ordering::Acquire));
        wait_for("slot released", || u.server.active_connections() == 0);
    }

    #[test]
    fn a_client_that_stops_reading_ends_the_stream_after_the_write_timeout() {
        /// Always has more to send.
        struct Endless(Arc<AtomicBool>);
        impl ChunkSource for Endless {
            fn next(&mut self, _: Duration) -> Next {
                Next::Chunk(vec![b'x'; 64 * 1024])
            }
        }
        impl Drop for Endless {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let source_dropped = dropped.clone();
        let handler: Handler = Arc::new(move |_: &Request| {
            let source = Box::new(Endless(source_dropped.clone()));
            Response::stream(200, "text/plain", source)
        });
        let limits = Limits {
            write_timeout: Duration::from_millis(100),
            ..Limits::default()
        };
        let u = unix_server(limits, handler);
        let mut s = connect(&u.path);
        s.write_all(b"GET /follow HTTP/1.1\r\n\r\n").unwrap();
        // Never read: the socket buffers fill and the write times out.
        wait_for("source dropped", || dropped.load(Ordering::Acquire));
        wait_for("slot released", || u.server.active_connections() == 0);
        drop(s);
    }

    #[test]
    fn a_stream_keeps_its_slot_past_the_read_timeout_and_is_never_evicted() {
        let (handler, feeds) = streaming();
        let limits = Limits {
            max_connections: 1,
            read_timeout: Duration::from_millis(50),
            ..Limits::default()
        };
        let u = unix_server(limits, handler);
        let mut s = connect(&u.path);
        s.write_all(b"GET /follow HTTP/1.1\r\n\r\n").unwrap();
        let (tx, _dropped) = feeds.next();
        let mut got = Vec::new();
        read_until(&mut s, &mut got, b"\r\n\r\n");
        // The only slot is streaming: a newcomer is refused, not let in.
        let mut other = connect(&u.path);
        let _ = other.write_all(b"GET /v3/ping HTTP/1.1\r\n\r\n");
        let refused = read_all(&mut other);
        assert!(refused.starts_with("HTTP/1.1 503 "), "{refused}");
        assert_eq!(u.server.evicted(), 0);
        // Well past the read timeout, the stream still flows.
        thread::sleep(Duration::from_millis(200));
        tx.send(Some(b"late".to_vec())).unwrap();
        read_until(&mut s, &mut got, b"4\r\nlate\r\n");
        tx.send(None).unwrap();
        assert!(read_all(&mut s).ends_with("0\r\n\r\n"));
    }

    #[test]
    fn head_and_http10_streams() {
        let (handler, feeds) = streaming();
        let u = unix_server(Limits::default(), handler);
        let mut s = connect(&u.path);
        s.write_all(b"HEAD /follow HTTP/1.1\r\n\r\n").unwrap();
        let (_tx, dropped) = feeds.next();
        let got = read_all(&mut s);
        assert!(
            got.ends_with("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
            "{got:?}"
        );
        wait_for("source dropped", || dropped.load(Ordering::Acquire));

        // HTTP/1.0 has no chunks: the body is unframed and ends with the
        // connection.
        let mut s = connect(&u.path);
        s.write_all(b"GET /follow HTTP/1.0\r\n\r\n").unwrap();
        let (tx, _) = feeds.next();
        tx.send(Some(b"a\n".to_vec())).unwrap();
        tx.send(Some(b"b\n".to_vec())).unwrap();
        tx.send(None).unwrap();
        let got = read_all(&mut s);
        assert!(!got.contains("Transfer-Encoding"), "{got:?}");
        assert!(got.ends_with("Connection: close\r\n\r\na\nb\n"), "{got:?}");
    }

    #[test]
    fn stopping_the_server_ends_its_streams() {
        let (handler, feeds) = streaming();
        let limits = Limits {
            stream_check: Duration::from_millis(20),
            ..Limits::default()
        };
        let u = unix_server(limits, handler);
        let mut s = connect(&u.path);
        s.write_all(b"GET /follow HTTP/1.1\r\n\r\n").unwrap();
        let (_tx, _) = feeds.next();
        u.server.stop();
        assert!(read_all(&mut s).ends_with("\r\n\r\n0\r\n\r\n"));
    }

    #[test]
    fn a_slow_handler_is_answered_whatever_the_read_timeout() {
        let (release, released) = bounded::<()>(1);
        let released = Mutex::new(released);
        let handler: Handler = Arc::new(move |_: &Request| {
            let _ = released.lock().unwrap().recv();
            Response::text(200, "done")
        });
        let limits = Limits {
            read_timeout: Duration::from_millis(50),
            ..Limits::default()
        };
        let u = unix_server(limits, handler);
        let mut s = connect(&u.path);
        s.write_all(b"POST /v3/jobs/app/stop HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        // Several read timeouts pass while the handler waits.
        thread::sleep(Duration::from_millis(250));
        release.send(()).unwrap();
        let got = read_all(&mut s);
        assert!(
            got.starts_with("HTTP/1.1 200 OK\r\n") && got.ends_with("done"),
            "{got}"
        );
    }
}
