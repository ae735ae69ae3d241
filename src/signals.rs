//! Signals become messages here, in one thread (SPEC §3.4): SIGCHLD reaps on
//! this thread; everything else goes to the event loop as `Msg::Signalled`.

use crossbeam_channel::Sender;
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

use crate::log;
use crate::msg::Msg;
use crate::reaper;

const HANDLED: [i32; 6] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD];

fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for sig in HANDLED {
        if let Ok(s) = Signal::try_from(sig) {
            set.add(s);
        }
    }
    set
}

/// Block the handled signals in this thread, and so in every thread it
/// starts from now on; only the signal thread takes them. Otherwise each
/// signal (a SIGCHLD for every process that exits, every health check)
/// interrupts whichever thread the kernel picks, the event loop first,
/// for nothing. Processes start with an empty mask (see `spawn`).
pub fn leave_to_signal_thread() -> Result<(), String> {
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&handled()), None)
        .map_err(|e| format!("cannot block signals: {e}"))
}

/// Install the handlers (before any child is spawned) and start the thread.
pub fn start(tx: Sender<Msg>) -> Result<(), String> {
    let mut signals =
        Signals::new(HANDLED).map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if let Err(e) = pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&handled()), None) {
                log::error(&format!("cannot unblock signals in the signal thread: {e}"));
            }
            // Children that exited before the handler was installed.
            reaper::reap_all();
            for sig in signals.forever() {
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
