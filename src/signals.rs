//! Signals become messages here, in one thread (SPEC §3.4): SIGCHLD reaps on
//! this thread; everything else goes to the event loop as `Msg::Signalled`.
//!
//! No handler is installed: the signals stay blocked in every thread and
//! this one reads them from a signalfd, one read(2) per signal (a handler
//! would interrupt the thread, write to a pipe and return through the
//! kernel first). Blocked, they are queued even for PID 1, which the kernel
//! otherwise spares signals it has no handler for.

use crossbeam_channel::Sender;
use nix::errno::Errno;
use nix::libc::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::log;
use crate::msg::Msg;
use crate::reaper;

const HANDLED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCHLD,
];

fn handled() -> SigSet {
    HANDLED.into_iter().collect()
}

/// Block the handled signals in this thread, and so in every thread it
/// starts from now on: they wait, queued, for the signal thread's signalfd.
/// Processes start with an empty mask (see `spawn`).
pub fn leave_to_signal_thread() -> Result<(), String> {
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&handled()), None)
        .map_err(|e| format!("cannot block signals: {e}"))
}

/// Start the signal thread (before any child is spawned).
pub fn start(tx: Sender<Msg>) -> Result<(), String> {
    let fd = SignalFd::with_flags(&handled(), SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("cannot read signals from a signalfd: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            // Children that exited before the thread started.
            reaper::reap_all();
            loop {
                let sig = match fd.read_signal() {
                    Ok(Some(info)) => info.ssi_signo as i32,
                    Ok(None) | Err(Errno::EINTR) => continue,
                    Err(e) => {
                        log::error(&format!("cannot read signals: {e}"));
                        return;
                    }
                };
                if sig == SIGCHLD {
                    let orphans = reaper::reap_all();
                    if orphans > 0 {
                        log::debug(&format!("reaped {orphans} orphaned process(es)"));
                        // Shutdown may be waiting for daemons a job left behind.
                        if tx.send(Msg::OrphansReaped).is_err() {
                            return;
                        }
                    }
                } else if tx.send(Msg::Signalled(sig)).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGHUP => "SIGHUP",
        SIGUSR1 => "SIGUSR1",
        SIGUSR2 => "SIGUSR2",
        SIGCHLD => "SIGCHLD",
        _ => "signal",
    }
}
