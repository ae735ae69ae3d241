//! Reaping (SPEC §3.4). This module holds the program's only `waitpid`.
//!
//! Spawning and registering a pid happen under the same lock that `reap_all`
//! holds around its `waitpid(-1)` loop, so an exit status can never arrive
//! before its pid is registered, nor be handed to the wrong waiter. The lock
//! also protects std: when `exec` fails, `Command::spawn` waits on the child
//! itself and asserts that its wait succeeds; a reaper that got there first
//! would make it panic. Nothing ever calls `Child::wait`.

use std::collections::BTreeMap;
use std::io;
use std::process::{ChildStderr, ChildStdout, Command};
use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{bounded, Receiver, Sender};
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

static WAITERS: Mutex<BTreeMap<u32, Sender<i32>>> = Mutex::new(BTreeMap::new());

fn waiters() -> MutexGuard<'static, BTreeMap<u32, Sender<i32>>> {
    // panic = "abort": a poisoned lock cannot be observed, but don't make it fatal either.
    WAITERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A started process: its pid, where its exit code (128+signal when killed)
/// arrives, and its piped output if any.
pub struct Spawned {
    pub pid: u32,
    pub exit: Receiver<i32>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

/// Spawn `cmd` and register its pid for reaping, atomically with respect to `reap_all`.
pub fn spawn(cmd: &mut Command) -> io::Result<Spawned> {
    let mut waiters = waiters();
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let (tx, rx) = bounded(1);
    waiters.insert(pid, tx);
    Ok(Spawned {
        pid,
        exit: rx,
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
    })
    // Dropping `child` neither waits nor kills: the reaper owns its exit now.
}

/// Reap every child that has exited; returns how many were orphans (not ours to report).
pub fn reap_all() -> usize {
    let mut waiters = waiters();
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
        match waiters.remove(&(pid.as_raw() as u32)) {
            Some(tx) => {
                let _ = tx.send(code);
            }
            None => orphans += 1,
        }
    }
    orphans
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
