//! The HTTP/1.1 client: one request per connection (`Connection: close`)
//! over any byte stream, for the `-ping`/`-putenv`/`-putmetric`/`-reload`/
//! `-maintenance` subcommands (unix socket) and the Consul agent (TCP).
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
    #[allow(dead_code)] // for callers; the tests use it
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
        }
    }
}

impl Error for HttpError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            HttpError::Connect { source, .. } | HttpError::Io { source, .. } => Some(source),
            HttpError::Timeout { .. } | HttpError::Malformed { .. } => None,
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
#[allow(dead_code)] // for `-logs NAME -follow` (SPEC §4.1) and tests
pub struct StreamingResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    stream: UnixStream,
    input: RecvBuf,
    framing: ResponseFraming,
    target: String,
}

#[allow(dead_code)] // for `-logs NAME -follow` (SPEC §4.1) and tests
impl StreamingResponse {
    /// The first header called `name`, ignoring ASCII case.
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
#[allow(dead_code)] // for `-logs NAME -follow` (SPEC §4.1) and tests
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
    let head = send_request(&mut stream, method, "localhost", url_path, &[], body)
        .and_then(|()| read_head(&mut stream, &mut input))
        .and_then(|(status, headers)| {
            let framing = wire::response_framing(status, &headers, method == "HEAD")
                .map_err(Failure::Malformed)?;
            Ok((status, headers, framing))
        });
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

/// One request to `addr` (`host:port`, sent as the `Host` header), trying
/// each address it resolves to. `timeout` bounds the connect and each read
/// and write; zero means none.
pub fn tcp_request(
    addr: &str,
    method: &str,
    url_path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<ClientResponse, HttpError> {
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
    let mut stream = match connected {
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
    exchange(&mut stream, method, addr, url_path, headers, body).map_err(|f| f.at(addr))
}

fn exchange<S: Read + Write>(
    stream: &mut S,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<ClientResponse, Failure> {
    send_request(stream, method, host, path, headers, body)?;
    read_response(stream, method == "HEAD")
}

/// Writes one request, in one write.
fn send_request<S: Write>(
    stream: &mut S,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
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
    for part in [
        method,
        " ",
        path,
        " HTTP/1.1\r\nHost: ",
        host,
        "\r\nConnection: close\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
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

/// Reads a response head, skipping interim (1xx) responses.
fn read_head<R: Read>(
    reader: &mut R,
    input: &mut RecvBuf,
) -> Result<(u16, Vec<(String, String)>), Failure> {
    loop {
        let head_len = loop {
            if let Some(end) = wire::find_head_end(input.buffered()) {
                break end;
            }
            if input.buffered().len() > MAX_HEAD {
                return Err(Failure::Malformed("response header section too large"));
            }
            if fill(reader, input)? == 0 {
                return Err(Failure::Malformed(if input.buffered().is_empty() {
                    "the server closed the connection without answering"
                } else {
                    "the connection closed in the middle of the response header"
                }));
            }
        };
        let head = std::str::from_utf8(&input.buffered()[..head_len])
            .map_err(|_| Failure::Malformed("response header is not valid UTF-8"))?;
        let (status, headers) = wire::parse_response_head(head).map_err(Failure::Malformed)?;
        input.consume(head_len);
        // An interim response (100 Continue) is followed by the real one.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok((status, headers));
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
    let (status, headers) = read_head(reader, &mut input)?;
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
}
