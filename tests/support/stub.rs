//! A stand-in HTTP server for `http` health checks (SPEC §2.3, §3.7): it
//! listens on 127.0.0.1 (an ephemeral port), answers every request with the
//! status line and body the test has set (no body by default; a large one;
//! or one that trickles for ever), with `Connection: close`, and records
//! what it was asked. Written with std only and sharing no code with `src/`.
//!
//! It can also say who was alive while a request was being answered: set
//! [`HttpStub::watch`] to the daemon's pid and each recorded request carries
//! the daemon's descendants at that moment, so a test can show that no
//! process was forked to make the request (the client waits for the reply,
//! so a forked `curl` would still be alive then).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{descendants, stat};

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct StubRequest {
    pub method: String,
    pub path: String,
    /// Header lines as sent (`Name: value`).
    pub headers: Vec<String>,
    /// `(pid, comm)` of every descendant of the watched pid while this
    /// request was answered; empty when no pid is watched.
    pub processes: Vec<(i32, String)>,
}

/// What follows the head of every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubBody {
    /// `Content-Length: 0`.
    Empty,
    /// This many bytes, written at once.
    Size(usize),
    /// `Content-Length: 1000000` (under any sane body limit), then one byte
    /// every 20ms (5.5 hours for all of it) until the client goes away or
    /// the stub is dropped.
    Trickle,
}

struct Shared {
    status_line: Mutex<String>,
    body: Mutex<StubBody>,
    extra_headers: Mutex<String>,
    requests: Mutex<Vec<StubRequest>>,
    watch: AtomicI32,
    stop: AtomicBool,
}

pub struct HttpStub {
    port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl HttpStub {
    /// Listening, answering `HTTP/1.1 200 OK` until told otherwise.
    pub fn start() -> HttpStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the HTTP stub");
        let port = listener.local_addr().expect("stub address").port();
        let shared = Arc::new(Shared {
            status_line: Mutex::new("HTTP/1.1 200 OK".into()),
            body: Mutex::new(StubBody::Empty),
            extra_headers: Mutex::new(String::new()),
            requests: Mutex::new(Vec::new()),
            watch: AtomicI32::new(0),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(s) = conn {
                    serve(&sh, s);
                }
            }
        });
        HttpStub {
            port,
            shared,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The status line of every later answer, e.g. `HTTP/1.1 503 Service Unavailable`.
    pub fn answer(&self, status_line: &str) {
        *self.shared.status_line.lock().expect("stub lock") = status_line.to_string();
    }

    /// More header lines for every later answer, each ending in `\r\n`.
    pub fn headers(&self, lines: &str) {
        *self.shared.extra_headers.lock().expect("stub lock") = lines.to_string();
    }

    /// The body of every later answer.
    pub fn body(&self, body: StubBody) {
        *self.shared.body.lock().expect("stub lock") = body;
    }

    /// Record the descendants of `pid` with every request from now on.
    pub fn watch(&self, pid: i32) {
        self.shared.watch.store(pid, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<StubRequest> {
        self.shared.requests.lock().expect("stub lock").clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().expect("stub lock").len()
    }
}

fn serve(sh: &Shared, mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(clone) = s.try_clone() else { return };
    let mut r = BufReader::new(clone);
    let mut first = String::new();
    if r.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            break;
        }
        let l = l.trim_end().to_string();
        if l.is_empty() {
            break;
        }
        headers.push(l);
    }
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let watch = sh.watch.load(Ordering::SeqCst);
    let processes = if watch > 0 {
        descendants(watch)
            .into_iter()
            .filter_map(stat)
            .map(|(p, _, _, comm)| (p, comm))
            .collect()
    } else {
        Vec::new()
    };
    sh.requests.lock().expect("stub lock").push(StubRequest {
        method,
        path,
        headers,
        processes,
    });
    let status = sh.status_line.lock().expect("stub lock").clone();
    let extra = sh.extra_headers.lock().expect("stub lock").clone();
    let body = *sh.body.lock().expect("stub lock");
    let length = match body {
        StubBody::Empty => 0,
        StubBody::Size(n) => n,
        StubBody::Trickle => 1_000_000,
    };
    let head = format!("{status}\r\n{extra}Content-Length: {length}\r\nConnection: close\r\n\r\n");
    if s.write_all(head.as_bytes()).is_err() {
        return;
    }
    match body {
        StubBody::Empty => {}
        StubBody::Size(n) => {
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len());
                if s.write_all(&chunk[..k]).is_err() {
                    return;
                }
                left -= k;
            }
        }
        StubBody::Trickle => {
            while !sh.stop.load(Ordering::SeqCst) {
                if s.write_all(b"x").is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for HttpStub {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let deadline = Instant::now() + Duration::from_secs(1);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
