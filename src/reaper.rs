//! Reaping (SPEC §3.4). This module holds the program's only `waitpid`.
//!
//! A process's exit status must reach whoever started it, never anyone
//! else, even when the process exits before its pid is registered (a
//! `true` can be gone before `posix_spawn` has returned). Reaping never
//! waits for a spawn: while any spawn is in progress, an exit whose pid is
//! not registered yet is kept aside, and the spawner claims it when it
//! registers. An exit kept aside that nobody claims was an orphan; it is
//! forgotten after a while. Neither side ever holds the lock across a
//! system call, so a storm of spawns cannot starve the reaping (and with
//! it the signal thread) nor the other way round.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Called with the pid and its exit status (128+N when killed by signal N).
pub type OnExit = Box<dyn FnOnce(u32, i32) + Send>;

/// An exit nobody claimed within this long was an orphan's.
const UNCLAIMED: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Registry {
    waiters: HashMap<u32, OnExit>,
    /// Exits reaped while a spawn was in progress, before their pid was
    /// registered (or of orphans): pid → (status, when).
    early: HashMap<u32, (i32, Instant)>,
    /// Spawns between their start and their registration.
    spawning: usize,
}

impl Registry {
    /// A spawn registers `pid`: the exit to deliver now if it was reaped
    /// already, else it waits for one.
    fn register(&mut self, pid: u32, on_exit: OnExit) -> Option<(i32, OnExit)> {
        match self.early.remove(&pid) {
            Some((code, _)) => Some((code, on_exit)),
            None => {
                self.waiters.insert(pid, on_exit);
                None
            }
        }
    }

    /// `pid` was reaped: its waiter, or it is kept aside while a spawn is
    /// in progress (it may be that spawn's), or it was an orphan.
    fn reaped(&mut self, pid: u32, code: i32, now: Instant) -> Option<OnExit> {
        if let Some(w) = self.waiters.remove(&pid) {
            return Some(w);
        }
        self.early
            .retain(|_, (_, at)| now.duration_since(*at) < UNCLAIMED);
        if self.spawning > 0 {
            self.early.insert(pid, (code, now));
        }
        None
    }
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    // panic = "abort": a poisoned lock cannot be observed, but don't make it fatal either.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    f(registry().get_or_insert_with(Registry::default))
}

/// Run `spawn` (which starts one process and returns its pid) and register
/// `on_exit` for that pid; an exit that was reaped in between is delivered.
pub fn spawn<T>(
    spawn: impl FnOnce() -> io::Result<(u32, T)>,
    on_exit: OnExit,
) -> io::Result<(u32, T)> {
    with(|r| r.spawning += 1);
    let started = spawn();
    let early = with(|r| {
        r.spawning -= 1;
        match &started {
            Ok((pid, _)) => r.register(*pid, on_exit).map(|e| (*pid, e)),
            Err(_) => None,
        }
    });
    if let Some((pid, (code, on_exit))) = early {
        on_exit(pid, code);
    }
    started
}

/// Reap every child that has exited, calling the registered callbacks;
/// returns how many were not ours to report (orphans).
pub fn reap_all() -> usize {
    let mut orphans = 0;
    while let Reaped::Exit(pid, code) = reap(-1) {
        if !deliver(pid, code) {
            orphans += 1;
        }
    }
    orphans
}

enum Reaped {
    /// This pid exited with this status (128+N when killed by signal N).
    Exit(u32, i32),
    /// Nothing (more) has exited.
    Nothing,
    /// No such child (any more): another thread reaped it.
    NoChild,
}

/// One non-blocking waitpid for `pid` (-1: any child).
fn reap(pid: i32) -> Reaped {
    loop {
        return match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => Reaped::Exit(pid.as_raw() as u32, code),
            // Shell convention: killed by signal N reports 128+N.
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                Reaped::Exit(pid.as_raw() as u32, 128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) => Reaped::Nothing,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => Reaped::NoChild,
        };
    }
}

/// Hand a reaped exit to its waiter; false if it had none (an orphan's).
fn deliver(pid: u32, code: i32) -> bool {
    let now = Instant::now();
    let waiter = with(|r| r.reaped(pid, code, now));
    match waiter {
        Some(on_exit) => {
            on_exit(pid, code);
            true
        }
        None => false,
    }
}

/// Reap `pid`, which has just closed its output and is most likely
/// exiting: its exit follows its closing the pipes by microseconds, so
/// poll for it briefly (yielding the CPU) rather than sleep until the
/// signal thread has reaped it and woken the caller: that is two context
/// switches per check run saved. Gives up after 200 µs (a process may close
/// its output and keep running). It waits for this pid alone: the kernel
/// finds one pid at once, where waitpid(-1) walks every child of every
/// thread, and with a thread per job that cost grows with the jobs.
pub fn reap_exiting(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let until = Instant::now() + Duration::from_micros(200);
    loop {
        match reap(raw) {
            Reaped::Exit(pid, code) => {
                deliver(pid, code);
                return;
            }
            Reaped::NoChild => return,
            Reaped::Nothing if Instant::now() >= until => return,
            Reaped::Nothing => std::thread::yield_now(),
        }
    }
}

/// Whether `pid` is a process we started and have not reaped yet.
pub fn is_registered(pid: u32) -> bool {
    with(|r| r.waiters.contains_key(&pid))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn recorder() -> (OnExit, std::sync::mpsc::Receiver<(u32, i32)>) {
        let (tx, rx) = channel();
        (
            Box::new(move |pid, code| {
                let _ = tx.send((pid, code));
            }),
            rx,
        )
    }

    #[test]
    fn a_registered_pid_gets_its_exit() {
        let mut r = Registry::default();
        let (cb, rx) = recorder();
        assert!(r.register(7, cb).is_none());
        let w = r.reaped(7, 3, Instant::now()).expect("waiter");
        w(7, 3);
        assert_eq!(rx.try_recv(), Ok((7, 3)));
        assert!(r.waiters.is_empty());
    }

    #[test]
    fn an_exit_reaped_during_its_spawn_is_claimed_at_registration() {
        let mut r = Registry {
            spawning: 1,
            ..Registry::default()
        };
        assert!(r.reaped(9, 137, Instant::now()).is_none());
        let (cb, rx) = recorder();
        let (code, cb) = r.register(9, cb).expect("delivered at once");
        cb(9, code);
        assert_eq!(rx.try_recv(), Ok((9, 137)));
        assert!(r.early.is_empty() && r.waiters.is_empty());
    }

    #[test]
    fn orphans_are_not_kept_and_unclaimed_exits_are_forgotten() {
        let mut r = Registry::default();
        assert!(r.reaped(11, 0, Instant::now()).is_none());
        assert!(r.early.is_empty(), "no spawn in progress: an orphan");
        r.spawning = 1;
        let t0 = Instant::now();
        r.reaped(12, 0, t0);
        assert_eq!(r.early.len(), 1);
        r.reaped(13, 0, t0 + UNCLAIMED);
        assert!(!r.early.contains_key(&12), "too old");
    }
}
