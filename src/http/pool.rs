//! The server's threads and its bound on connections: accepting, starting
//! and retiring threads, giving each connection a slot, evicting the
//! longest-waiting idle connection when every slot is taken, refusing when
//! none can be evicted, and stopping.
//!
//! Small-stack threads accept connections and serve each one themselves
//! (see `run`), up to `Limits::max_connections` at once. When every slot is
//! taken, the connection that has waited longest without sending a complete
//! request is closed to make room (SPEC §4), so idle or half-sent clients
//! can never keep `/v3/ping` from answering. Only when every slot is busy
//! serving (a handler running, a response being written or streamed) does
//! a new connection get `503` at once.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::conn::{self, encode};
use super::message::{Addr, Handler, Limits, Listener, Response, Stream};
use super::slots::{Slot, State};
use super::wire::ConnHeader;

/// Server threads run the handler (serde_json on up to 64 KiB bodies,
/// recursion limit 128); stacks are mapped lazily, so this costs address
/// space, not resident memory.
const THREAD_STACK: usize = 256 * 1024;
/// Threads kept waiting in accept() once their connection is done. With
/// one thread per slot, `max_connections + MAX_IDLE_THREADS` bounds the
/// threads of a server.
pub(super) const MAX_IDLE_THREADS: usize = 4;
/// How long to back off when accept() fails for lack of resources.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

pub(super) struct Shared<L> {
    state: State,
    /// Taken out by `stop`; threads hold a clone only while in accept().
    listener: Mutex<Option<Arc<L>>>,
}

/// The listener-independent face of `Shared`, for `ServerHandle`.
pub(super) trait Control: Send + Sync {
    fn state(&self) -> &State;
    fn close_listener(&self);
    /// Start the first thread serving the listener.
    fn open(self: Arc<Self>) -> io::Result<()>;
}

impl<L: Listener> Control for Shared<L> {
    fn state(&self) -> &State {
        &self.state
    }
    fn open(self: Arc<Self>) -> io::Result<()> {
        spawn_acceptor(&self)
    }
    fn close_listener(&self) {
        let taken = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(l) = taken {
            l.unblock();
        }
    }
}

/// A server for `listener` that has no thread yet: `Control::open` starts
/// the first one. Until then connections wait in the backlog.
pub(super) fn prepare<L: Listener>(
    listener: L,
    handler: Handler,
    limits: Limits,
) -> Arc<dyn Control> {
    Arc::new(Shared {
        state: State::new(handler, limits),
        listener: Mutex::new(Some(Arc::new(listener))),
    })
}

/// Stops accepting and closes the listener at `addr`; idempotent.
pub(super) fn stop(shared: &dyn Control, addr: &Addr) {
    let state = shared.state();
    if state.stop.swap(true, Ordering::AcqRel) {
        return;
    }
    shared.close_listener();
    // Idle keep-alive connections would otherwise hold their threads until
    // they time out.
    state.shut_waiting();
    // Each thread blocked in accept() holds the listener open (its
    // address cannot be bound again until they let go). shutdown(2) wakes
    // them all at once; should that not work, connect to wake them one at
    // a time (tiny_http's `unblock`). Give up after a second, never hang.
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut woken_at = Instant::now();
    while state.accepting.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        if woken_at.elapsed() > Duration::from_millis(100) {
            if addr.wake().is_err() {
                return;
            }
            woken_at = Instant::now();
        }
        thread::sleep(Duration::from_micros(50));
    }
}

/// Starts a thread that accepts; it counts as accepting from now on. Fails
/// when the server already has all the threads it may have.
fn spawn_acceptor<L: Listener>(shared: &Arc<Shared<L>>) -> io::Result<()> {
    let state = &shared.state;
    let max_threads = state.limits.max_connections + MAX_IDLE_THREADS;
    let reserved = state
        .threads
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max_threads).then_some(n + 1)
        });
    if reserved.is_err() {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "every server thread is running",
        ));
    }
    state.accepting.fetch_add(1, Ordering::AcqRel);
    state.spawned.fetch_add(1, Ordering::Relaxed);
    let thread_shared = shared.clone();
    let spawned = thread::Builder::new()
        .name("http".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            run(&thread_shared);
            thread_shared.state.threads.fetch_sub(1, Ordering::AcqRel);
        });
    if spawned.is_err() {
        state.accepting.fetch_sub(1, Ordering::AcqRel);
        state.threads.fetch_sub(1, Ordering::AcqRel);
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
///
/// Threads are bounded too: one per slot plus those in accept(). At the
/// bound no thread is started, and new connections wait in the backlog
/// until a thread comes back to accept(); one always does soon, because a
/// thread beyond the slots' own is either accepting or serving a
/// connection that was just evicted, which ends at once.
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
            Ok(stream) => match state.claim(stream.as_raw_fd()) {
                None => refuse(stream),
                Some(ticket) => {
                    // If no thread can be started, new connections wait in
                    // the backlog until one is free: degraded, not stuck.
                    if still_accepting == 0 {
                        let _ = spawn_acceptor(shared);
                    }
                    conn::handle_connection(stream, Slot { state, ticket });
                }
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::server::tests::{
        connect, echo, exchange, read_all, read_one, unix_server, wait_for,
    };
    use crate::http::server::Request;
    use std::io::{Read, Write};
    use std::sync::Condvar;

    const PING: &[u8] = b"GET /v3/ping HTTP/1.1\r\nConnection: close\r\n\r\n";

    fn limits(max_connections: usize) -> Limits {
        Limits {
            max_connections,
            ..Limits::default()
        }
    }

    /// A handler that holds `/block` requests until `open` is called, and
    /// counts how many it holds; everything else is `echo`.
    #[derive(Clone, Default)]
    struct Gate(Arc<(Mutex<(bool, usize)>, Condvar)>);

    impl Gate {
        fn handler(&self) -> Handler {
            let gate = self.clone();
            let echo = echo();
            Arc::new(move |r: &Request| {
                if r.path != "/block" {
                    return echo(r);
                }
                let (lock, cv) = &*gate.0;
                let mut g = lock.lock().unwrap();
                g.1 += 1;
                cv.notify_all();
                while !g.0 {
                    g = cv.wait(g).unwrap();
                }
                Response::text(200, "released")
            })
        }

        fn held(&self) -> usize {
            self.0 .0.lock().unwrap().1
        }

        fn open(&self) {
            let (lock, cv) = &*self.0;
            lock.lock().unwrap().0 = true;
            cv.notify_all();
        }
    }

    #[test]
    fn when_full_the_longest_waiting_connection_is_evicted() {
        let u = unix_server(limits(3), echo());
        // Oldest: idle since accepted. Then one that sent half a request,
        // then one that was served and now waits for its next request.
        let mut idle = connect(&u.path);
        wait_for("idle accepted", || u.server.active_connections() == 1);
        let mut half = connect(&u.path);
        half.write_all(b"GET /v3/ping HTTP/1.1\r\nHo").unwrap();
        wait_for("half accepted", || u.server.active_connections() == 2);
        let mut kept = connect(&u.path);
        kept.write_all(b"GET /v3/ping HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_one(&mut kept, &mut buf).1, "ok");

        // Newcomers stay open after their answer, so each takes a slot.
        let newcomer = || {
            let mut s = connect(&u.path);
            s.write_all(b"GET /v3/ping HTTP/1.1\r\n\r\n").unwrap();
            assert_eq!(read_one(&mut s, &mut Vec::new()).1, "ok");
            s
        };
        let _first = newcomer();
        assert_eq!(read_all(&mut idle), "", "the idle one goes first, silently");
        assert_eq!(u.server.evicted(), 1);
        let _second = newcomer();
        assert_eq!(read_all(&mut half), "", "then the half-sent one");
        assert_eq!(u.server.evicted(), 2);
        // `kept` has waited least: it survives, and is served again.
        kept.write_all(PING).unwrap();
        assert_eq!(read_one(&mut kept, &mut buf).1, "ok");
    }

    #[test]
    fn connections_being_served_are_never_evicted_503_instead() {
        let gate = Gate::default();
        let u = unix_server(limits(2), gate.handler());
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = connect(&u.path);
            s.write_all(b"GET /block HTTP/1.1\r\n\r\n").unwrap();
            held.push(s);
        }
        wait_for("both handlers running", || gate.held() == 2);
        let mut refused = connect(&u.path);
        // The 503 may come, and the socket close, before the request is
        // written.
        let _ = refused.write_all(PING);
        let got = read_all(&mut refused);
        assert!(
            got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{got}"
        );
        assert!(
            got.ends_with(r#"{"error":"too many connections"}"#),
            "{got}"
        );
        assert_eq!(u.server.evicted(), 0);
        gate.open();
        for s in &mut held {
            assert_eq!(read_one(s, &mut Vec::new()).1, "released");
        }
        // Now waiting for their next request, they make room.
        assert!(exchange(&u.path, PING).ends_with("ok"));
        drop(held);
        wait_for("slots released", || u.server.active_connections() == 0);
    }

    #[test]
    fn many_idle_connections_keep_threads_and_slots_bounded() {
        let u = unix_server(limits(8), echo());
        let bound = 8 + MAX_IDLE_THREADS;
        let mut open = Vec::new();
        for i in 0..200 {
            let mut s = connect(&u.path);
            if i % 2 == 1 {
                s.write_all(b"POST /x HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc")
                    .unwrap();
            }
            open.push(s);
            assert!(
                u.server.threads() <= bound,
                "{} threads",
                u.server.threads()
            );
        }
        for _ in 0..5 {
            assert!(exchange(&u.path, PING).ends_with("ok"));
        }
        assert!(
            u.server.threads() <= bound,
            "{} threads",
            u.server.threads()
        );
        assert!(u.server.active_connections() <= 8);
        // Every connection beyond the slots is closed to make room, once
        // the server has got to it (under load some still wait in the
        // listen backlog when the pings are answered).
        let mut closed = vec![false; open.len()];
        let deadline = Instant::now() + Duration::from_secs(10);
        while closed.iter().filter(|c| **c).count() < 190 {
            assert!(
                Instant::now() < deadline,
                "only {} of 200 closed",
                closed.iter().filter(|c| **c).count()
            );
            for (s, done) in open.iter_mut().zip(closed.iter_mut()) {
                if *done {
                    continue;
                }
                s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
                let mut b = [0u8; 64];
                *done = matches!(s.read(&mut b), Ok(0));
            }
        }
    }

    #[test]
    fn stop_closes_waiting_connections_and_lets_served_ones_finish() {
        let gate = Gate::default();
        let u = unix_server(limits(4), gate.handler());
        let mut idle = connect(&u.path);
        let mut busy = connect(&u.path);
        busy.write_all(b"GET /block HTTP/1.1\r\n\r\n").unwrap();
        wait_for("handler running", || gate.held() == 1);
        wait_for("both accepted", || u.server.active_connections() == 2);
        let server = u.server;
        let stopper = thread::spawn(move || server.stop());
        assert_eq!(read_all(&mut idle), "");
        gate.open();
        let got = read_all(&mut busy);
        assert!(
            got.contains("Connection: close\r\n") && got.ends_with("released"),
            "{got}"
        );
        stopper.join().unwrap();
    }
}
