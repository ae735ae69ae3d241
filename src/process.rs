//! Running one job's processes: the per-job runner thread, spawning in a new
//! process group with the right environment, pumping output lines into the
//! log, and signalling the whole group (SPEC §3.2).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{after, bounded, select, unbounded, Receiver, Sender};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::log;
use crate::msg::{JobId, Msg};
use crate::reaper;

/// Lines longer than this are split into several log entries, never dropped.
const MAX_LINE: u64 = 16 * 1024;
const THREAD_STACK: usize = 128 * 1024;

/// How long a process's exit may wait for its output to be logged. What is
/// left to log is at most what the pipes hold, so this bound matters only
/// when a background grandchild keeps the pipes open (3.x waited forever).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Everything needed to start one process.
#[derive(Debug, Clone)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Inherit our stdout/stderr instead of logging line by line.
    pub raw: bool,
    /// Log field naming the source: `job` or `check`.
    pub field: &'static str,
    /// Value of that field.
    pub name: String,
}

pub enum RunnerCmd {
    Start(Launch),
    Signal(Signal),
}

/// A started process.
pub struct Running {
    pub pid: u32,
    /// Its exit code (128+signal when killed).
    pub exit: Receiver<i32>,
    /// Disconnects once every output pump has reached the end of its pipe
    /// and logged everything (at once for `raw` output). Nothing is ever sent.
    pub output_done: Receiver<()>,
}

/// Spawn in a new process group, register with the reaper, and pump output.
/// `sink` also receives each output line (health checks keep their output).
pub fn launch(l: &Launch, sink: Option<Sender<String>>) -> Result<Running, (i32, String)> {
    let (prog, args) = l
        .argv
        .split_first()
        .ok_or((127, "empty command".to_string()))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .process_group(0);
    cmd.stdin(Stdio::null());
    if l.raw {
        cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut sp = reaper::spawn(&mut cmd).map_err(|e| {
        // Shell convention (tini): 127 for not found, 126 for not executable.
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        };
        (
            code,
            format!("cannot start {}[{}]: exec {prog:?}: {e}", l.field, l.name),
        )
    })?;
    let (done_tx, output_done) = bounded(0);
    if let Some(out) = sp.stdout.take() {
        pump(out, l, sp.pid, "stdout", sink.clone(), done_tx.clone());
    }
    if let Some(err) = sp.stderr.take() {
        pump(err, l, sp.pid, "stderr", sink, done_tx);
    }
    Ok(Running {
        pid: sp.pid,
        exit: sp.exit,
        output_done,
    })
}

fn pump<R: Read + Send + 'static>(
    r: R,
    l: &Launch,
    pid: u32,
    stream: &'static str,
    sink: Option<Sender<String>>,
    done: Sender<()>,
) {
    let field = l.field;
    let name = l.name.clone();
    let spawned = thread::Builder::new()
        .name("pump".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            // Dropped when this thread ends: `output_done` disconnects after the last pump.
            let _done = done;
            let pid = pid.to_string();
            let mut r = BufReader::with_capacity(8192, r);
            let mut buf = Vec::with_capacity(256);
            loop {
                buf.clear();
                match r.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
                    Ok(0) => return,
                    Ok(_) => {
                        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            buf.pop();
                        }
                        let line = String::from_utf8_lossy(&buf);
                        log::output_line(field, &name, &pid, stream, &line);
                        if let Some(s) = &sink {
                            let _ = s.send(line.into_owned());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        });
    if let Err(e) = spawned {
        log::error(&format!(
            "cannot start an output thread for {}[{}]: {e}",
            l.field, l.name
        ));
    }
}

/// Signal a whole process group; a group that is already gone is not an error.
pub fn signal_group(pid: u32, sig: Signal) {
    match killpg(Pid::from_raw(pid as i32), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => log::warn(&format!("cannot send {sig} to process group {pid}: {e}")),
    }
}

/// The runner thread of one job: starts its process on request, forwards
/// signals to its group, and reports start and exit to the event loop.
pub fn start_runner(job: JobId, name: &str, tx: Sender<Msg>) -> Result<Sender<RunnerCmd>, String> {
    let (cmd_tx, cmd_rx) = unbounded();
    thread::Builder::new()
        .name(format!("job-{name}"))
        .stack_size(THREAD_STACK)
        .spawn(move || runner(job, cmd_rx, tx))
        .map_err(|e| format!("cannot start the thread for job[{name}]: {e}"))?;
    Ok(cmd_tx)
}

fn runner(job: JobId, rx: Receiver<RunnerCmd>, tx: Sender<Msg>) {
    while let Ok(cmd) = rx.recv() {
        let launch_req = match cmd {
            RunnerCmd::Start(l) => l,
            RunnerCmd::Signal(_) => continue, // nothing running
        };
        let sp = match launch(&launch_req, None) {
            Ok(sp) => sp,
            Err((code, msg)) => {
                log::error(&msg);
                if tx.send(Msg::ProcessExited { job, code }).is_err() {
                    return;
                }
                continue;
            }
        };
        if tx.send(Msg::ProcessStarted { job, pid: sp.pid }).is_err() {
            return;
        }
        loop {
            select! {
                recv(sp.exit) -> code => {
                    let code = code.unwrap_or(128 + Signal::SIGKILL as i32);
                    // Report the exit only once the output is logged: the
                    // exit may end the whole run, and what the process wrote
                    // last (a partial line included) must not be lost.
                    if !drain_output(&sp, &rx) {
                        return;
                    }
                    if tx.send(Msg::ProcessExited { job, code }).is_err() {
                        return;
                    }
                    break;
                }
                recv(rx) -> cmd => if !forward(cmd.ok(), sp.pid) {
                    return;
                },
            }
        }
    }
}

/// Wait (at most `OUTPUT_GRACE`) for the exited process's output to be
/// logged, still forwarding signals to its group meanwhile: a grandchild
/// holding the pipes open goes when the group is killed. False when the
/// event loop is gone.
fn drain_output(p: &Running, rx: &Receiver<RunnerCmd>) -> bool {
    let deadline = after(OUTPUT_GRACE);
    loop {
        select! {
            recv(p.output_done) -> _ => return true,
            recv(deadline) -> _ => {
                log::debug(&format!(
                    "process {} exited but its output is still open after {OUTPUT_GRACE:?}: reporting the exit anyway",
                    p.pid
                ));
                return true;
            }
            recv(rx) -> cmd => if !forward(cmd.ok(), p.pid) {
                return false;
            },
        }
    }
}

/// A command for the job while its process `pid` exists. False when the
/// event loop is gone (`None`).
fn forward(cmd: Option<RunnerCmd>, pid: u32) -> bool {
    match cmd {
        Some(RunnerCmd::Signal(sig)) => signal_group(pid, sig),
        Some(RunnerCmd::Start(_)) => log::warn("start requested while the job is running: ignored"),
        None => return false,
    }
    true
}
