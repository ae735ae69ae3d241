//! Reaping (SPEC §3.4). This module holds the program's only `waitpid`.
//!
//! A process is spawned and its pid registered with a callback in one step
//! that `reap_all` cannot interleave with (spawns share a read lock that
//! `reap_all` takes for writing), so an exit status can never arrive before
//! its pid is registered, nor be handed to the wrong waiter. The lock also
//! protects std: when `exec` fails, std's fork-based `Command::spawn` waits
//! on the child itself and asserts that its wait succeeds; a reaper that got
//! there first would make it panic. Spawns do not exclude each other, so
//! 300 jobs starting at once are not serialised behind one lock.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, MutexGuard, RwLock};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Called with the pid and its exit status (128+N when killed by signal N).
pub type OnExit = Box<dyn FnOnce(u32, i32) + Send>;

static GATE: RwLock<()> = RwLock::new(());
static WAITERS: Mutex<Option<HashMap<u32, OnExit>>> = Mutex::new(None);

fn waiters() -> MutexGuard<'static, Option<HashMap<u32, OnExit>>> {
    // panic = "abort": a poisoned lock cannot be observed, but don't make it fatal either.
    WAITERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run `spawn` (which starts one process and returns its pid) and register
/// `on_exit` for that pid, atomically with respect to `reap_all`.
pub fn spawn<T>(
    spawn: impl FnOnce() -> io::Result<(u32, T)>,
    on_exit: OnExit,
) -> io::Result<(u32, T)> {
    let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
    let (pid, extra) = spawn()?;
    waiters()
        .get_or_insert_with(HashMap::new)
        .insert(pid, on_exit);
    Ok((pid, extra))
}

/// Reap every child that has exited, calling the registered callbacks;
/// returns how many were orphans (not ours to report).
pub fn reap_all() -> usize {
    let _gate = GATE.write().unwrap_or_else(|e| e.into_inner());
    let mut orphans = 0;
    loop {
        let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code),
            // Shell convention: killed by signal N reports 128+N.
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
            Ok(WaitStatus::StillAlive) => break,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => break, // ECHILD: no children left
        };
        let pid = pid.as_raw() as u32;
        let waiter = waiters().as_mut().and_then(|w| w.remove(&pid));
        match waiter {
            Some(on_exit) => on_exit(pid, code),
            None => orphans += 1,
        }
    }
    orphans
}

/// Whether `pid` is a process we started and have not reaped yet.
pub fn is_registered(pid: u32) -> bool {
    waiters().as_ref().is_some_and(|w| w.contains_key(&pid))
}

/// Become the reaper for orphaned descendants when we are not PID 1
/// (prctl(2) PR_SET_CHILD_SUBREAPER), so grandchildren are reaped here too.
pub fn become_subreaper() -> Result<(), String> {
    if std::process::id() == 1 {
        return Ok(());
    }
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("cannot become a child subreaper: {e}"))
}
