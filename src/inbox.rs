//! A worker thread's inbox: a channel whose every send also wakes the
//! thread from poll(2), so one thread can wait at once for its commands,
//! its process's exit (delivered by the reaper) and its process's output
//! pipes, with no thread per pipe and no polling interval.
//!
//! The wake-up is an eventfd. The receiving side clears it before taking
//! what the channel holds, so a send that races with the take is never
//! lost: it either is taken now or leaves the eventfd readable.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{unbounded, Receiver, Sender};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

struct Waker {
    fd: EventFd,
    /// Inboxes alive: the last one to go wakes the receiver.
    senders: AtomicUsize,
}

impl Waker {
    fn new() -> io::Result<Waker> {
        let fd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Waker {
            fd,
            senders: AtomicUsize::new(1),
        })
    }

    fn wake(&self) {
        // EAGAIN only when the counter would overflow: it is readable anyway.
        let _ = self.fd.write(1);
    }

    fn clear(&self) {
        let _ = self.fd.read();
    }
}

/// The sending side; cheap to clone (the reaper keeps one per process).
pub struct Inbox<T> {
    tx: Sender<T>,
    waker: Option<Arc<Waker>>,
}

impl<T> Clone for Inbox<T> {
    fn clone(&self) -> Self {
        Inbox::counted(&self.tx, self.waker.as_ref())
    }
}

impl<T> Inbox<T> {
    /// Another inbox on `tx`, counted among the mailbox's senders.
    fn counted(tx: &Sender<T>, waker: Option<&Arc<Waker>>) -> Inbox<T> {
        if let Some(w) = waker {
            w.senders.fetch_add(1, Ordering::Relaxed);
        }
        Inbox {
            tx: tx.clone(),
            waker: waker.cloned(),
        }
    }

    /// Queue `msg` and wake the receiver. False when the receiver is gone.
    pub fn send(&self, msg: T) -> bool {
        let sent = self.tx.send(msg).is_ok();
        if let Some(w) = &self.waker {
            w.wake();
        }
        sent
    }

    /// An inbox whose messages arrive on a plain channel, without a
    /// thread to wake (for unit tests of the event loop).
    #[cfg(test)]
    pub fn detached() -> (Inbox<T>, Receiver<T>) {
        let (tx, rx) = unbounded();
        (Inbox { tx, waker: None }, rx)
    }
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        // The last inbox gone: wake the receiver so that `take` notices
        // rather than sleeping on (the mailbox keeps a sender of its own,
        // so the channel itself never disconnects). Not on every drop: the
        // reaper drops its copy after every exit.
        if let Some(w) = &self.waker {
            if w.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
                w.wake();
            }
        }
    }
}

/// The receiving side, owned by the worker thread.
pub struct Mailbox<T> {
    rx: Receiver<T>,
    /// Not an inbox (not counted): only for minting inboxes with [`Mailbox::inbox`].
    tx: Sender<T>,
    waker: Arc<Waker>,
}

/// A new inbox and its mailbox.
pub fn pair<T>() -> io::Result<(Inbox<T>, Mailbox<T>)> {
    let waker = Arc::new(Waker::new()?);
    let (tx, rx) = unbounded();
    Ok((
        Inbox {
            tx: tx.clone(),
            waker: Some(waker.clone()),
        },
        Mailbox { rx, tx, waker },
    ))
}

impl<T> Mailbox<T> {
    /// Readable (for poll) when something may have arrived.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.waker.fd.as_fd()
    }

    /// A new inbox to this mailbox, for the worker to hand out (to the
    /// reaper, for its process's exit). Being the worker's own, it does
    /// not keep the worker alive once that inbox is dropped.
    pub fn inbox(&self) -> Inbox<T> {
        Inbox::counted(&self.tx, Some(&self.waker))
    }

    /// Everything that has arrived, and whether every inbox is gone.
    pub fn take(&self) -> (Vec<T>, bool) {
        self.waker.clear();
        let got: Vec<T> = self.rx.try_iter().collect();
        // Read after the channel is empty: an inbox that sent and was then
        // dropped has had its message taken; one dropped later wakes us.
        let gone = self.waker.senders.load(Ordering::Acquire) == 0;
        (got, gone)
    }
}

/// How many descriptors a worker thread waits on at most: its mailbox,
/// a notify socket and a process's two pipes.
/// What a worker polls beside its mailbox: its process's pipes and the
/// like.
pub const MAX_OTHERS: usize = 3;

impl<T> Mailbox<T> {
    /// Sleep until the mailbox or one of `others` is readable (or hung up)
    /// or `until` passes; which are, by position: the mailbox first, then
    /// `others` (`None` never is). The timeout is rounded up to the
    /// millisecond, so a deadline is never woken for early (that would
    /// spin). Nothing is allocated: this runs once per wake-up of every
    /// worker.
    pub fn wait(
        &self,
        others: [Option<BorrowedFd<'_>>; MAX_OTHERS],
        until: Option<Instant>,
    ) -> [bool; 1 + MAX_OTHERS] {
        let timeout = match until {
            None => PollTimeout::NONE,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                PollTimeout::from(left.as_micros().div_ceil(1000).min(60_000) as u16)
            }
        };
        // The descriptors present, packed at the front; `slot` maps them back.
        let mut polled: [PollFd; 1 + MAX_OTHERS] =
            std::array::from_fn(|_| PollFd::new(self.fd(), PollFlags::POLLIN));
        let mut slot = [0; 1 + MAX_OTHERS];
        let mut n = 1;
        for (i, fd) in others.iter().enumerate() {
            if let Some(fd) = fd {
                polled[n] = PollFd::new(*fd, PollFlags::POLLIN);
                slot[n] = i + 1;
                n += 1;
            }
        }
        match poll(&mut polled[..n], timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            // EINVAL/ENOMEM: nothing to be done but try again next time round.
            Err(e) => crate::log::error(&format!("cannot poll: {e}")),
        }
        let mut ready = [false; 1 + MAX_OTHERS];
        for (fd, i) in polled[..n].iter().zip(slot) {
            ready[i] = fd.any().unwrap_or(false);
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(m: &Mailbox<u32>) -> bool {
        let mut fds = [PollFd::new(m.fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    }

    #[test]
    fn a_send_wakes_and_take_clears() {
        let (inbox, mailbox) = pair::<u32>().unwrap();
        assert!(!readable(&mailbox));
        assert!(inbox.send(1));
        assert!(inbox.send(2));
        assert!(readable(&mailbox));
        assert_eq!(mailbox.take(), (vec![1, 2], false));
        assert!(!readable(&mailbox));
        assert_eq!(mailbox.take(), (vec![], false));
    }

    #[test]
    fn the_last_sender_gone_wakes_and_disconnects() {
        let (inbox, mailbox) = pair::<u32>().unwrap();
        let other = inbox.clone();
        drop(inbox);
        other.send(7);
        drop(other);
        assert!(readable(&mailbox));
        assert_eq!(mailbox.take(), (vec![7], true));
    }

    #[test]
    fn an_inbox_minted_by_the_worker_counts_only_while_it_lives() {
        let (inbox, mailbox) = pair::<u32>().unwrap();
        let own = mailbox.inbox();
        drop(inbox);
        assert_eq!(mailbox.take(), (vec![], false), "its own is still out");
        own.send(3);
        drop(own);
        assert!(readable(&mailbox));
        assert_eq!(mailbox.take(), (vec![3], true));
    }

    #[test]
    fn sends_from_another_thread_are_never_lost() {
        let (inbox, mailbox) = pair::<u32>().unwrap();
        let t = std::thread::spawn(move || {
            for i in 0..10_000 {
                inbox.send(i);
            }
        });
        let mut n = 0;
        loop {
            let mut fds = [PollFd::new(mailbox.fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::NONE).unwrap();
            let (got, gone) = mailbox.take();
            n += got.len();
            if gone {
                break;
            }
        }
        t.join().unwrap();
        assert_eq!(n, 10_000);
    }
}
