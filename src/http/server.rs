//! The HTTP/1.1 server: `serve` a listener and stop it. Its vocabulary is
//! in `message`, its threads and bound on connections in `pool` and
//! `slots`, one connection's life in `conn`, the bytes on the wire in
//! `wire`.

use std::io;
use std::sync::Arc;

pub use super::message::{Addr, ChunkSource, Handler, Limits, Listener, Next, Request, Response};
use super::pool::{self, Control};

/// A running server. Dropping it (or `stop`) closes the listener and the
/// connections waiting for a request; those being served finish their
/// response and close.
pub struct ServerHandle {
    addr: Addr,
    shared: Arc<dyn Control>,
    opened: bool,
}

impl ServerHandle {
    /// Starts serving (the first time; later calls do nothing).
    pub fn open(&mut self) -> io::Result<()> {
        if self.opened {
            return Ok(());
        }
        self.shared.clone().open()?;
        self.opened = true;
        Ok(())
    }

    /// Where the server listens (for TCP, with the port chosen for port 0).
    #[cfg(test)]
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Connections being handled now.
    #[cfg(test)]
    pub fn active_connections(&self) -> usize {
        self.shared.state().active()
    }

    /// Server threads started so far (they are reused, see `pool`).
    #[cfg(test)]
    pub fn threads_started(&self) -> usize {
        self.shared.state().spawned()
    }

    /// Server threads running now.
    #[cfg(test)]
    pub fn threads(&self) -> usize {
        self.shared.state().threads()
    }

    /// Connections closed so far to make room for another.
    #[cfg(test)]
    pub fn evicted(&self) -> usize {
        self.shared.state().evicted()
    }

    /// Stops accepting and closes the listener (so that its address can be
    /// bound again at once).
    pub fn stop(self) {
        // `Drop` does it.
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        pool::stop(self.shared.as_ref(), &self.addr);
    }
}

/// Starts serving `listener` on new threads and returns at once (the
/// daemon prepares and opens in two steps; tests do both at once).
#[cfg(test)]
pub fn serve<L: Listener>(
    listener: L,
    handler: Handler,
    limits: Limits,
) -> io::Result<ServerHandle> {
    let mut handle = prepare(listener, handler, limits)?;
    handle.open()?;
    Ok(handle)
}

/// Takes `listener` but serves nothing until `open`: start-up holds its
/// addresses before the first job starts and starts their threads after.
pub fn prepare<L: Listener>(
    listener: L,
    handler: Handler,
    limits: Limits,
) -> io::Result<ServerHandle> {
    let addr = listener.addr()?;
    Ok(ServerHandle {
        addr,
        shared: pool::prepare(listener, handler, limits),
        opened: false,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::http::conn::encode;
    use crate::http::wire::{find_head_end, ConnHeader};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::{Duration, Instant};

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

    pub(crate) fn connect(path: &Path) -> UnixStream {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Everything until the server closes (the test fails after 5 s).
    pub(crate) fn read_all(s: &mut impl Read) -> String {
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("no EOF: {e}; got {:?}", String::from_utf8_lossy(&out)));
        String::from_utf8_lossy(&out).into_owned()
    }

    /// One response framed by Content-Length; `buf` keeps what follows it.
    pub(crate) fn read_one(s: &mut impl Read, buf: &mut Vec<u8>) -> (String, String) {
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

    pub(crate) fn exchange(path: &Path, request: &[u8]) -> String {
        let mut s = connect(path);
        s.write_all(request).unwrap();
        read_all(&mut s)
    }

    pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
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
            (j.header("content-type"), j.body.as_bytes()),
            (Some("application/json"), Some(&br#"{"error":"x"}"#[..]))
        );
    }
}
