//! A job's runner thread (SPEC §3.2): the one thread per job with `exec`.
//! It starts the job's process when the loop says so, reads its stdout and
//! stderr itself with poll(2) (no thread per pipe), logs and keeps each
//! line, forwards signals to the process group, and reports the start and
//! the exit, the exit only once the output is logged.
//!
//! It waits on a single poll set: its inbox (commands from the loop and the
//! exit status from the reaper, see `inbox`), and the process's pipes.

use std::fs;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::inbox::{self, Inbox, Mailbox};
use crate::log;
use crate::logbuf::{LogBuffer, Stream};
use crate::msg::{JobId, Msg};
use crate::notify::{self, NotifySocket, Verdict};
use crate::output::{Logged, Pipe, Pipes};
use crate::reaper;
use crate::spawn::{self, Spec};

const THREAD_STACK: usize = 128 * 1024;

/// How long a process's exit may wait for its output to be logged. What is
/// left to log is at most what the pipes hold, so this bound matters only
/// when a background grandchild keeps the pipes open (3.x waited forever).
const OUTPUT_GRACE: Duration = Duration::from_millis(1000);

/// Daemons that `setsid` are re-parented to us just after the job's process
/// exits; they are looked for again this long after it.
const SURVIVOR_RECHECK: Duration = Duration::from_millis(100);

/// The same failure to start is logged at most this often.
const SPAWN_ERROR_EVERY: Duration = Duration::from_secs(60);

/// What the loop (and the reaper) tell a runner.
pub enum RunnerCmd {
    /// Start the process with this environment (ignored while one runs).
    Start(Arc<Vec<(String, String)>>),
    /// Signal the process group (and any survivors of the last process).
    Signal(Signal),
    /// From the reaper: `pid` exited with `code`.
    Exited { pid: u32, code: i32 },
}

/// What a runner is for: fixed for the life of the job's definition.
pub struct RunnerSpec {
    pub job: JobId,
    pub name: String,
    pub argv: Vec<String>,
    /// Inherit our stdout/stderr instead of logging line by line.
    pub raw: bool,
    pub log: Arc<LogBuffer>,
    /// `notify`: the job gets an sd_notify socket, created in `dir` (or
    /// where `notify::NotifySocket::bind` falls back to).
    pub notify: Option<NotifySpec>,
}

pub struct NotifySpec {
    pub dir: PathBuf,
    pub watchdog: Option<Duration>,
}

/// Start the runner thread; the loop keeps the inbox.
pub fn start_runner(spec: RunnerSpec, tx: Sender<Msg>) -> Result<Inbox<RunnerCmd>, String> {
    let (inbox, mailbox) =
        inbox::pair().map_err(|e| format!("cannot create the inbox of job[{}]: {e}", spec.name))?;
    let name = spec.name.clone();
    thread::Builder::new()
        .name(format!("job-{name}"))
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let notify = spec.notify.as_ref().and_then(|n| {
                NotifySocket::bind(&n.dir, spec.job.0)
                    .map_err(|e| log::error(&format!("job[{}]: {e}", spec.name)))
                    .ok()
            });
            Runner {
                spec,
                tx,
                mailbox,
                notify,
                current: None,
                survivors: Vec::new(),
                recheck: None,
                last_error: None,
            }
            .run()
        })
        .map_err(|e| format!("cannot start the thread for job[{name}]: {e}"))?;
    Ok(inbox)
}

/// The process being run.
struct Proc {
    pid: u32,
    pid_text: String,
    pipes: Pipes,
    /// Exit status and when it arrived.
    exited: Option<(i32, Instant)>,
    /// Our re-parented children when it started (not its survivors).
    orphans_before: Vec<u32>,
}

struct Runner {
    spec: RunnerSpec,
    tx: Sender<Msg>,
    /// Commands from the loop, and exits from the reaper (through inboxes
    /// minted here, one per process).
    mailbox: Mailbox<RunnerCmd>,
    /// The job's sd_notify socket, kept across its processes.
    notify: Option<NotifySocket>,
    current: Option<Proc>,
    /// Processes the last process left behind (signalled with the group).
    survivors: Vec<u32>,
    /// Look once more for `setsid` survivors at this time: (when, the exited
    /// pid, orphans known before it started).
    recheck: Option<(Instant, Vec<u32>)>,
    /// The last failure to start, and when it was logged.
    last_error: Option<(String, Instant)>,
}

impl Runner {
    fn run(mut self) {
        loop {
            let [inbox, notify, out, err] = {
                let notify = self.notify.as_ref().map(|n| n.as_fd());
                let [out, err] = self
                    .current
                    .as_ref()
                    .map_or([None, None], |p| p.pipes.fds());
                self.mailbox.wait([notify, out, err], self.wake_at())
            };
            if inbox && self.take_commands() {
                return;
            }
            if notify {
                self.read_notify();
            }
            if out || err {
                self.pump(false);
                if let Some(pid) = self.output_closed() {
                    // Its output ended: it has most likely exited. Reap it
                    // here rather than sleep until the signal thread has.
                    reaper::reap_exiting(pid);
                    if self.take_commands() {
                        return;
                    }
                }
            }
            self.finish_exit();
            self.recheck_survivors();
        }
    }

    /// Apply what the loop and the reaper sent; whether the loop has let go
    /// of this runner.
    fn take_commands(&mut self) -> bool {
        let (cmds, gone) = self.mailbox.take();
        for cmd in cmds {
            self.command(cmd);
        }
        gone
    }

    /// When poll must return even if nothing happens: the output grace of
    /// an exited process, or the survivor recheck.
    fn wake_at(&self) -> Option<Instant> {
        let grace = self
            .current
            .as_ref()
            .and_then(|p| p.exited.map(|(_, at)| at + OUTPUT_GRACE));
        let recheck = self.recheck.as_ref().map(|r| r.0);
        grace.into_iter().chain(recheck).min()
    }

    fn command(&mut self, cmd: RunnerCmd) {
        match cmd {
            RunnerCmd::Start(env) => self.start(&env),
            RunnerCmd::Signal(sig) => self.signal(sig),
            RunnerCmd::Exited { pid, code } => {
                if let Some(p) = self.current.as_mut().filter(|p| p.pid == pid) {
                    p.exited = Some((code, Instant::now()));
                }
            }
        }
    }

    fn start(&mut self, env: &[(String, String)]) {
        if self.current.is_some() {
            log::warn(&format!(
                "job[{}]: start requested while its process runs: ignored",
                self.spec.name
            ));
            return;
        }
        let with_notify;
        let env = match (&self.notify, &self.spec.notify) {
            (Some(sock), Some(n)) => {
                with_notify = [env, &notify::env(sock, n.watchdog)[..]].concat();
                &with_notify[..]
            }
            _ => env,
        };
        let spec = Spec {
            argv: &self.spec.argv,
            env,
            capture: !self.spec.raw,
        };
        // Listed before the spawn: a quick process can exit and leave its
        // daemons to us before spawn_child even returns.
        let orphans_before = reparented();
        match spawn_child(&spec, self.mailbox.inbox()) {
            Ok(child) => {
                self.last_error = None;
                let pid = child.pid;
                // Survivors of earlier runs still go at shutdown; drop the dead.
                self.survivors
                    .retain(|p| kill(Pid::from_raw(*p as i32), None).is_ok());
                self.current = Some(Proc {
                    pid,
                    pid_text: pid.to_string(),
                    pipes: Pipes::new(
                        child.stdout.map(|fd| Pipe::new(fd, Stream::Stdout)),
                        child.stderr.map(|fd| Pipe::new(fd, Stream::Stderr)),
                    ),
                    exited: None,
                    orphans_before,
                });
                let _ = self.tx.send(Msg::ProcessStarted {
                    job: self.spec.job,
                    pid,
                });
            }
            Err(e) => {
                let msg = format!("cannot start job[{}]: {}", self.spec.name, e.reason);
                self.log_spawn_error(msg);
                let _ = self.tx.send(Msg::ProcessExited {
                    job: self.spec.job,
                    code: e.code,
                    spawn_failed: true,
                    survivors: Vec::new(),
                });
            }
        }
    }

    /// A broken path must not flood the log: the same error at most once a minute.
    fn log_spawn_error(&mut self, msg: String) {
        let now = Instant::now();
        let repeat = self
            .last_error
            .as_ref()
            .is_some_and(|(last, at)| *last == msg && now < *at + SPAWN_ERROR_EVERY);
        if repeat {
            log::debug(&msg);
        } else {
            log::error(&msg);
            self.last_error = Some((msg, now));
        }
    }

    /// What the job's processes said on its notify socket. Only its own
    /// processes count (SPEC §3.7): a live sender outside the job is
    /// ignored; one already gone could only have learnt the address from
    /// the job, so it is believed.
    fn read_notify(&mut self) {
        let Some(sock) = &self.notify else {
            return;
        };
        for d in sock.drain() {
            let Some(p) = self.current.as_ref().filter(|p| p.exited.is_none()) else {
                continue;
            };
            if let Some(sender) = d.sender {
                if notify::verify(sender, p.pid) == Verdict::Foreign {
                    log::debug(&format!(
                        "job[{}]: ignored a notify message from process {sender}, which is not the job's",
                        self.spec.name
                    ));
                    continue;
                }
            }
            let Some(n) = notify::parse(&d.payload) else {
                continue;
            };
            if n.ready || n.watchdog || n.watchdog_trigger || n.status.is_some() {
                let _ = self.tx.send(Msg::Notified {
                    job: self.spec.job,
                    pid: p.pid,
                    ready: n.ready,
                    watchdog: n.watchdog,
                    trigger: n.watchdog_trigger,
                    status: n.status,
                });
            }
        }
    }

    fn signal(&mut self, sig: Signal) {
        if let Some(p) = &self.current {
            signal_group(p.pid, sig);
        }
        for pid in &self.survivors {
            signal_group(*pid, sig);
            let _ = kill(Pid::from_raw(*pid as i32), sig);
        }
    }

    /// The process's pid, if it has closed both its pipes and its exit is
    /// not known yet.
    fn output_closed(&self) -> Option<u32> {
        self.current
            .as_ref()
            .filter(|p| p.exited.is_none() && !p.pipes.any_open())
            .map(|p| p.pid)
    }

    /// Log and keep what the pipes hold now; with `flush`, the partial
    /// last lines too (the process is gone).
    fn pump(&mut self, flush: bool) {
        let Some(p) = self.current.as_mut() else {
            return;
        };
        let mut sink = Logged::new("job", &self.spec.name, &p.pid_text, &self.spec.log);
        if flush {
            p.pipes.flush(&mut sink);
        } else {
            p.pipes.read(&mut sink);
        }
    }

    /// Report an exit once the output is all logged, or the grace is over.
    fn finish_exit(&mut self) {
        let Some(p) = self.current.as_mut() else {
            return;
        };
        let Some((code, at)) = p.exited else {
            return;
        };
        let pipes_open = p.pipes.any_open();
        if pipes_open && Instant::now() < at + OUTPUT_GRACE {
            return;
        }
        if pipes_open {
            log::debug(&format!(
                "job[{}]: process {} exited but its output is still open after {OUTPUT_GRACE:?}: reporting the exit anyway",
                self.spec.name, p.pid
            ));
        }
        self.pump(true);
        let Some(p) = self.current.take() else {
            return;
        };
        let mut survivors = group_members(p.pid);
        let known: Vec<u32> = p.orphans_before.clone();
        survivors.extend(reparented().into_iter().filter(|o| !known.contains(o)));
        survivors.sort_unstable();
        survivors.dedup();
        if !survivors.is_empty() {
            self.warn_survivors(p.pid, &survivors);
        }
        self.survivors = survivors.clone();
        let mut known = known;
        known.extend(&survivors);
        self.recheck = Some((Instant::now() + SURVIVOR_RECHECK, known));
        let _ = self.tx.send(Msg::ProcessExited {
            job: self.spec.job,
            code,
            spawn_failed: false,
            survivors,
        });
    }

    /// Daemons that `setsid` reach us as orphans only once their parent is
    /// gone: look again a little after the exit.
    fn recheck_survivors(&mut self) {
        let Some((at, known)) = &self.recheck else {
            return;
        };
        if Instant::now() < *at {
            return;
        }
        let late: Vec<u32> = reparented()
            .into_iter()
            .filter(|o| !known.contains(o) && !self.survivors.contains(o))
            .collect();
        self.recheck = None;
        if late.is_empty() || self.current.is_some() {
            return;
        }
        self.warn_survivors(0, &late);
        self.survivors.extend(&late);
        let _ = self.tx.send(Msg::SurvivorsFound {
            job: self.spec.job,
            pids: late,
        });
    }

    fn warn_survivors(&self, pid: u32, survivors: &[u32]) {
        let list: Vec<String> = survivors.iter().map(u32::to_string).collect();
        let what = if pid == 0 {
            "its last process".to_string()
        } else {
            format!("process {pid}")
        };
        log::log(
            log::Level::Warn,
            &format!(
                "{what} exited but processes it started live on (pids {}): it daemonized; \
                 jobs must run in the foreground (e.g. nginx 'daemon off;'). They are treated \
                 as exited and are stopped at shutdown",
                list.join(", ")
            ),
            &[("job", &self.spec.name)],
        );
    }
}

/// Spawn, with the exit delivered to this runner's inbox.
fn spawn_child(spec: &Spec, inbox: Inbox<RunnerCmd>) -> Result<spawn::Child, spawn::SpawnError> {
    spawn::spawn(
        spec,
        Box::new(move |pid, code| {
            inbox.send(RunnerCmd::Exited { pid, code });
        }),
    )
}

/// Signal a whole process group; a group that is already gone is not an error.
pub fn signal_group(pid: u32, sig: Signal) {
    match killpg(Pid::from_raw(pid as i32), sig) {
        Ok(()) | Err(Errno::ESRCH) | Err(Errno::EPERM) => {}
        Err(e) => log::warn(&format!("cannot send {sig} to process group {pid}: {e}")),
    }
}

/// Live processes of the group `pgid` (after its leader exited).
fn group_members(pgid: u32) -> Vec<u32> {
    if killpg(Pid::from_raw(pgid as i32), None).is_err() {
        return Vec::new(); // ESRCH: nobody left
    }
    proc_stats()
        .filter(|s| s.pgid == pgid && s.state != 'Z')
        .map(|s| s.pid)
        .collect()
}

/// Our children that we did not start: orphans re-parented to us (we are
/// PID 1 or a subreaper). They are listed as children of our main thread.
fn reparented() -> Vec<u32> {
    let me = std::process::id();
    let listed = fs::read_to_string(format!("/proc/{me}/task/{me}/children"));
    let pids: Vec<u32> = match listed {
        Ok(text) => text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        // Kernels without CONFIG_PROC_CHILDREN: the long way round.
        Err(_) => proc_stats()
            .filter(|s| s.ppid == me && s.state != 'Z')
            .map(|s| s.pid)
            .collect(),
    };
    pids.into_iter()
        .filter(|p| !reaper::is_registered(*p))
        .collect()
}

struct Stat {
    pid: u32,
    ppid: u32,
    pgid: u32,
    state: char,
}

/// Every process's /proc/PID/stat that can be read.
fn proc_stats() -> impl Iterator<Item = Stat> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| parse_stat(pid, &fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
}

/// `pid (comm) S ppid pgid ...`; comm may hold spaces and parentheses.
fn parse_stat(pid: u32, text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgid = f.next()?.parse().ok()?;
    Some(Stat {
        pid,
        ppid,
        pgid,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names() {
        let s = parse_stat(7, "7 (a) b (c)) S 1 7 7 0 -1").unwrap();
        assert_eq!((s.state, s.ppid, s.pgid), ('S', 1, 7));
        assert!(parse_stat(7, "garbage").is_none());
    }
}
