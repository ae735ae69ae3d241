//! The server's threads and its bound on connections: accepting, starting
//! and retiring threads, refusing connections beyond the bound, and
//! stopping.
//!
//! Small-stack threads accept connections and serve each one themselves
//! (see `run`), up to `Limits::max_connections`; beyond that a connection
//! gets `503` at once, without blocking anything.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::conn::{self, encode};
use super::server::{Addr, Handler, Limits, Listener, Response, Stream};
use super::wire::ConnHeader;

/// Server threads run the handler (serde_json on up to 64 KiB bodies,
/// recursion limit 128); stacks are mapped lazily, so this costs address
/// space, not resident memory.
const THREAD_STACK: usize = 256 * 1024;
/// Threads kept waiting in accept() once their connection is done.
const MAX_IDLE_THREADS: usize = 4;
/// How long to back off when accept() fails for lack of resources.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// What every server thread shares, whatever the listener.
pub(super) struct State {
    pub handler: Handler,
    pub limits: Limits,
    pub stop: AtomicBool,
    /// Connections being handled (bounded by `max_connections`).
    active: AtomicUsize,
    /// Threads in, or about to enter, accept().
    accepting: AtomicUsize,
    /// Threads started so far.
    spawned: AtomicUsize,
}

#[cfg(test)]
impl State {
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    pub fn spawned(&self) -> usize {
        self.spawned.load(Ordering::Relaxed)
    }
}

pub(super) struct Shared<L> {
    state: State,
    /// Taken out by `stop`; threads hold a clone only while in accept().
    listener: Mutex<Option<Arc<L>>>,
}

/// The listener-independent face of `Shared`, for `ServerHandle`.
pub(super) trait Control: Send + Sync {
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

/// Starts the first thread serving `listener`.
pub(super) fn start<L: Listener>(
    listener: L,
    handler: Handler,
    limits: Limits,
) -> io::Result<Arc<dyn Control>> {
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
    Ok(shared)
}

/// Stops accepting and closes the listener at `addr`; idempotent.
pub(super) fn stop(shared: &dyn Control, addr: &Addr) {
    let state = shared.state();
    if state.stop.swap(true, Ordering::AcqRel) {
        return;
    }
    shared.close_listener();
    // Each thread blocked in accept() holds the listener open; wake
    // them one connection at a time, the same trick as tiny_http's
    // `unblock`. Give up after a second rather than hang.
    let deadline = Instant::now() + Duration::from_secs(1);
    while state.accepting.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        let before = state.accepting.load(Ordering::Acquire);
        if addr.wake().is_err() {
            return;
        }
        let woken = Instant::now() + Duration::from_millis(100);
        while state.accepting.load(Ordering::Acquire) >= before && Instant::now() < woken {
            thread::sleep(Duration::from_millis(1));
        }
    }
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
                conn::handle_connection(stream, state);
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
