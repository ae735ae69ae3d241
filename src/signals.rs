//! Signals become messages here, in one thread (SPEC §3.4): SIGCHLD reaps on
//! this thread; everything else goes to the event loop as `Msg::Signalled`.

use crossbeam_channel::Sender;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

use crate::log;
use crate::msg::Msg;
use crate::reaper;

/// Install the handlers (before any child is spawned) and start the thread.
pub fn start(tx: Sender<Msg>) -> Result<(), String> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
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
