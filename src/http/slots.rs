//! The table of connection slots: the bound on connections, which
//! connection has waited longest for a request, and evicting it when every
//! slot is taken (SPEC §4).
//!
//! Closing a connection that another thread is blocked reading: `shutdown(2)`
//! on its socket makes that read return end of stream, and the thread then
//! finishes as if the client had gone. The slot table holds each socket's fd
//! number, and a thread gives its slot back before it closes its socket
//! (see `conn::Conn`), both under the table's lock, so the fd an evictor
//! shuts down is always the one that slot's connection still has open,
//! never a number the kernel has handed out again.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use nix::sys::socket::{shutdown, Shutdown};

use super::message::{Handler, Limits};

/// What every server thread shares, whatever the listener.
pub(super) struct State {
    pub handler: Handler,
    pub limits: Limits,
    pub stop: AtomicBool,
    slots: Mutex<Slots>,
    /// Threads in, or about to enter, accept().
    pub(super) accepting: AtomicUsize,
    /// Threads running (bounded by `max_connections + MAX_IDLE_THREADS`).
    pub(super) threads: AtomicUsize,
    /// Threads started so far.
    pub(super) spawned: AtomicUsize,
    /// Connections closed to make room for another.
    evicted: AtomicUsize,
}

#[cfg(test)]
impl State {
    pub fn active(&self) -> usize {
        self.lock_slots().used
    }

    pub fn spawned(&self) -> usize {
        self.spawned.load(Ordering::Relaxed)
    }

    pub fn threads(&self) -> usize {
        self.threads.load(Ordering::Acquire)
    }

    pub fn evicted(&self) -> usize {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// The connection slots, `max_connections` of them.
struct Slots {
    entries: Vec<Entry>,
    /// Indexes of free entries.
    free: Vec<usize>,
    used: usize,
    /// Tickets are never reused, so a thread whose connection was evicted
    /// cannot touch the slot's next holder.
    next_ticket: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    /// 0 when free.
    ticket: u64,
    fd: RawFd,
    /// Since when the connection has been waiting for a complete request;
    /// `None` while it is being served (never evicted then).
    waiting_since: Option<Instant>,
}

const FREE: Entry = Entry {
    ticket: 0,
    fd: -1,
    waiting_since: None,
};

/// A connection's claim on a slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    index: usize,
    id: u64,
}

impl State {
    pub(super) fn new(handler: Handler, limits: Limits) -> State {
        let max = limits.max_connections;
        State {
            handler,
            limits,
            stop: AtomicBool::new(false),
            slots: Mutex::new(Slots {
                entries: vec![FREE; max],
                free: (0..max).rev().collect(),
                used: 0,
                next_ticket: 1,
            }),
            accepting: AtomicUsize::new(0),
            threads: AtomicUsize::new(0),
            spawned: AtomicUsize::new(0),
            evicted: AtomicUsize::new(0),
        }
    }

    fn lock_slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for the connection on `fd`, waiting for its first request:
    /// a free one, or else the one whose connection has waited longest for
    /// a complete request, which is shut down. `None` when every
    /// connection is being served.
    pub(super) fn claim(&self, fd: RawFd) -> Option<Ticket> {
        let mut slots = self.lock_slots();
        let index = match slots.free.pop() {
            Some(index) => {
                slots.used += 1;
                index
            }
            None => {
                let (index, victim) = slots
                    .entries
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| e.waiting_since.map(|since| (i, since)))
                    .min_by_key(|&(_, since)| since)
                    .map(|(i, _)| (i, slots.entries[i]))?;
                // Its thread sees end of stream and ends the connection; the
                // slot is this connection's from now on. ENOTCONN (the
                // client went already) is as good.
                let _ = shutdown(victim.fd, Shutdown::Both);
                self.evicted.fetch_add(1, Ordering::Relaxed);
                index
            }
        };
        let id = slots.next_ticket;
        slots.next_ticket += 1;
        slots.entries[index] = Entry {
            ticket: id,
            fd,
            waiting_since: Some(Instant::now()),
        };
        Some(Ticket { index, id })
    }

    /// The connection has a complete request and is being served: it may
    /// not be evicted now. `false` if it already was (its socket is shut
    /// down; the request is dropped).
    pub(super) fn serving(&self, t: Ticket) -> bool {
        let mut slots = self.lock_slots();
        match slots.entries.get_mut(t.index) {
            Some(e) if e.ticket == t.id => {
                e.waiting_since = None;
                true
            }
            _ => false,
        }
    }

    /// The connection waits for its next request from now on. `false` if
    /// it should close instead: it was evicted, or the server is stopping.
    pub(super) fn waiting(&self, t: Ticket) -> bool {
        let mut slots = self.lock_slots();
        // Read under the lock that `stop` takes after setting the flag: a
        // connection is either shut down by `stop` or sees the flag here.
        let stopping = self.stop.load(Ordering::Acquire);
        match slots.entries.get_mut(t.index) {
            Some(e) if e.ticket == t.id && !stopping => {
                e.waiting_since = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    /// Gives the slot back, unless it was taken over by an eviction. Must
    /// come before the connection's socket is closed (see the module doc).
    pub(super) fn release(&self, t: Ticket) {
        let mut slots = self.lock_slots();
        if slots.entries.get(t.index).is_some_and(|e| e.ticket == t.id) {
            slots.entries[t.index] = FREE;
            slots.free.push(t.index);
            slots.used -= 1;
        }
    }

    /// Shuts down every connection waiting for a request, for `stop`.
    pub(super) fn shut_waiting(&self) {
        let slots = self.lock_slots();
        for e in slots.entries.iter().filter(|e| e.waiting_since.is_some()) {
            let _ = shutdown(e.fd, Shutdown::Both);
        }
    }
}

/// Holds a connection's slot; dropping it gives the slot back.
pub(super) struct Slot<'a> {
    pub state: &'a State,
    pub ticket: Ticket,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.state.release(self.ticket);
    }
}
