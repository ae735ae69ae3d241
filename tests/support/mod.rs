//! Test helpers shared by every integration test: unique temp dirs, config
//! writing, the `Daemon` guard (real binary, output read line by line through
//! a channel, whole descendant tree killed on drop), condition waits with
//! deadlines, and an independent raw HTTP/1.1 client over unix and TCP sockets.
//!
//! Nothing here sleeps to "let things settle": every wait is for a condition
//! with a deadline, and a missed deadline panics with all the evidence.
#![allow(dead_code)]

/// The Consul agent test double (SPEC §6), the one mock of the project.
pub mod consul;
/// A stand-in HTTP server for `http` health checks.
pub mod stub;
/// A throw-away PKI and a TLS server in front of the Consul double.
#[cfg(feature = "tls")]
pub mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_containerpilot");

/// The deadline for anything that should happen "soon". Generous: it costs
/// time only when a test fails (STYLE §3 "Keeping tests non-flaky" 3).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How long to watch for something that must NOT happen, when no later
/// sentinel event can be waited for instead (STYLE §3 rule 4). Use sparingly.
pub const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------
// Temp dirs and configs

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique temp dir, removed on drop (kept when the test panicked, for a post-mortem).
pub struct Dir {
    root: PathBuf,
}

impl Dir {
    /// `name` is only a hint for humans; uniqueness comes from pid + counter.
    /// Kept short: unix socket paths must fit in 108 bytes.
    pub fn new(name: &str) -> Dir {
        let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
        let short: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        let root = std::env::temp_dir().join(format!("cpit-{}-{n}-{short}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create test dir");
        Dir { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The path as a string, for formatting into configs and scripts.
    pub fn p(&self, name: &str) -> String {
        self.path(name)
            .to_str()
            .expect("utf-8 temp path")
            .to_string()
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// A shell script, to be run as `["/bin/sh", path]` (see [`Dir::sh`]).
    /// Scripts are never exec'd directly: exec'ing a file this multi-threaded
    /// test process just wrote can fail with ETXTBSY when another thread forks
    /// while the write fd is open.
    pub fn script(&self, name: &str, body: &str) -> String {
        let p = self.write(name, &format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
        p.to_str().expect("utf-8 path").to_string()
    }

    /// A JSON5 `exec` value running `body` as a shell script file.
    pub fn sh(&self, name: &str, body: &str) -> String {
        let path = self.script(&format!("{name}.sh"), body);
        format!("[\"/bin/sh\", {}]", js(&path))
    }

    /// Contents of a file, or "" when it does not exist (yet).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Lines of a file, or none when it does not exist (yet).
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.read(name).lines().map(str::to_string).collect()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// A control socket path inside this dir (so tests never share one).
    pub fn socket(&self) -> PathBuf {
        self.path("cp.sock")
    }

    /// Write `json5` verbatim as `cp.json5`.
    pub fn config(&self, json5: &str) -> PathBuf {
        self.write("cp.json5", json5)
    }

    /// A config builder with this dir's socket and JSON DEBUG logging.
    pub fn cfg(&self) -> Cfg {
        Cfg {
            socket: self.socket(),
            logging: "{ level: \"DEBUG\", format: \"json\" }".to_string(),
            top: Vec::new(),
            jobs: "[]".into(),
            file: self.path("cp.json5"),
        }
    }

    /// Everything in the dir, for failure messages.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
            names.sort();
            for n in names {
                out.push_str(&format!("  {}\n", n.to_string_lossy()));
            }
        }
        out
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A JSON string literal (JSON5 accepts it as is).
pub fn js(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

/// Builds a config: every test gets its own control socket (the default,
/// `/var/run/containerpilot.socket`, would make parallel tests collide).
pub struct Cfg {
    socket: PathBuf,
    logging: String,
    top: Vec<String>,
    jobs: String,
    file: PathBuf,
}

impl Cfg {
    /// Replace the `logging` object (JSON5 text).
    pub fn logging(mut self, obj: &str) -> Cfg {
        self.logging = obj.to_string();
        self
    }

    /// Add top-level `key: value` text, e.g. `stopTimeout: "500ms"`.
    pub fn top(mut self, kv: &str) -> Cfg {
        self.top.push(kv.to_string());
        self
    }

    pub fn stop_timeout(self, d: &str) -> Cfg {
        let kv = format!("stopTimeout: {}", js(d));
        self.top(&kv)
    }

    /// The `jobs` array (JSON5 text).
    pub fn jobs(mut self, arr: &str) -> Cfg {
        self.jobs = arr.to_string();
        self
    }

    pub fn text(&self) -> String {
        let mut s = String::from("{\n");
        s.push_str(&format!(
            "  control: {{ socket: {} }},\n",
            js(self.socket.to_str().expect("utf-8 path"))
        ));
        s.push_str(&format!("  logging: {},\n", self.logging));
        for kv in &self.top {
            s.push_str(&format!("  {kv},\n"));
        }
        s.push_str(&format!("  jobs: {},\n}}\n", self.jobs));
        s
    }

    /// Write to `cp.json5` in the dir; returns the path.
    pub fn write(&self) -> PathBuf {
        std::fs::write(&self.file, self.text()).expect("write config");
        self.file.clone()
    }
}

// ---------------------------------------------------------------------------
// Waiting

/// Poll `cond` every 10 ms until it holds; panic naming `what` at the deadline.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    if !poll_until(timeout, &mut cond) {
        panic!("timed out after {timeout:?} waiting for: {what}");
    }
}

/// Like [`wait_until`] but reports instead of panicking.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// One-shot runs

#[derive(Debug)]
pub struct Output {
    /// Exit code, or 128+signal when killed.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn exit_code(st: ExitStatus) -> i32 {
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

/// Run the binary with `args` and a clean environment (PATH plus `env`);
/// killed and reported if it does not finish within [`TIMEOUT`].
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_in(None, args, env)
}

/// [`run`] with a working directory.
pub fn run_in(cwd: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = clean_command(BIN, args, env);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().expect("spawn containerpilot");
    let out = read_all(child.stdout.take().expect("piped stdout"));
    let err = read_all(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            kill_tree(child.id() as i32);
            let _ = child.wait();
            panic!(
                "containerpilot {args:?} did not exit within {TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                out.recv_timeout(Duration::from_secs(1)).unwrap_or_default(),
                err.recv_timeout(Duration::from_secs(1)).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        code: exit_code(status),
        stdout: out.recv_timeout(TIMEOUT).unwrap_or_default(),
        stderr: err.recv_timeout(TIMEOUT).unwrap_or_default(),
    }
}

fn read_all<R: Read + Send + 'static>(mut r: R) -> Receiver<String> {
    let (tx, rx) = unbounded();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// `program args` with only PATH plus `env`, output piped, in its own
/// process group (out of the test harness's: a terminal ^C is ours, not its).
fn clean_command<S: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &[S],
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", path_env())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

fn path_env() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into())
}

// ---------------------------------------------------------------------------
// Processes seen through /proc

/// (pid, ppid, state, comm) of every process, read from /proc/*/stat.
pub fn processes() -> Vec<(i32, i32, char, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(st) = stat(pid) {
            out.push(st);
        }
    }
    out
}

/// (pid, ppid, state, comm) of one process, if it exists.
pub fn stat(pid: i32) -> Option<(i32, i32, char, String)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: it ends at the last ')'.
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let mut rest = s[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((pid, ppid, state, comm))
}

/// A number field of /proc/PID/status (`Threads`, `VmRSS` in kB, ...).
pub fn proc_status(pid: i32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Raise this process's soft limit on open files to at least `n`, so a
/// test can hold that many sockets; panics (naming the limits) if the hard
/// limit is lower, rather than let the test fail for an unrelated reason.
pub fn raise_fd_limit(n: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= n {
        return;
    }
    assert!(
        hard >= n,
        "this test needs {n} open files; the hard limit is {hard}"
    );
    setrlimit(Resource::RLIMIT_NOFILE, n, hard).expect("setrlimit");
}

/// Every descendant of `root` (not `root` itself).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (pid, ppid, _, _) in processes() {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// Direct children of `pid`: (pid, state, comm).
pub fn children(pid: i32) -> Vec<(i32, char, String)> {
    processes()
        .into_iter()
        .filter(|(_, pp, _, _)| *pp == pid)
        .map(|(p, _, st, c)| (p, st, c))
        .collect()
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(_, _, st, _)| st != 'Z' && st != 'X')
}

/// SIGKILL `root` and all its descendants. Everything is SIGSTOPped first,
/// repeatedly until the set stops growing, so nothing can fork past us; then
/// everything is SIGKILLed. Job processes sit in their own process groups, so
/// killing one group would not be enough.
pub fn kill_tree(root: i32) {
    let mut seen: BTreeSet<i32> = BTreeSet::new();
    for _ in 0..100 {
        let mut now: BTreeSet<i32> = descendants(root).into_iter().collect();
        now.insert(root);
        let new: Vec<i32> = now.difference(&seen).copied().collect();
        if new.is_empty() {
            break;
        }
        for p in new {
            let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
            seen.insert(p);
        }
    }
    for p in &seen {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
}

// ---------------------------------------------------------------------------
// The daemon

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

enum Piped {
    Line(Stream, String),
    Closed,
}

/// A running containerpilot, killed with its whole process tree on drop.
pub struct Daemon {
    child: Child,
    rx: Receiver<Piped>,
    /// Everything read so far, in arrival order.
    transcript: Vec<(Stream, String)>,
    /// `wait_line` looks from here on, so consecutive waits assert order.
    cursor: usize,
    open_pipes: usize,
    exit: Option<i32>,
    argv: Vec<String>,
    config: Option<String>,
}

impl Daemon {
    /// `containerpilot -config PATH` with PATH plus `env` as its whole environment.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let cfg = config.to_str().expect("utf-8 path");
        Daemon::spawn(&[], &["-config", cfg], env, Some(config))
    }

    /// Run the binary behind a wrapper command, e.g. `["unshare", "--pid", "--fork"]`.
    /// [`Daemon::pid`] is then the wrapper's pid; see [`Daemon::find_pid`].
    pub fn spawn(
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        config: Option<&Path>,
    ) -> Daemon {
        let mut argv: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        argv.push(BIN.to_string());
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = clean_command(&argv[0], &argv[1..], env);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
        let (tx, rx) = unbounded();
        for (stream, r) in [
            (
                Stream::Stdout,
                Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
            ),
            (
                Stream::Stderr,
                Box::new(child.stderr.take().expect("piped")) as Box<dyn Read + Send>,
            ),
        ] {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut r = BufReader::new(r);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if buf.last() == Some(&b'\n') {
                                buf.pop();
                            }
                            let line = String::from_utf8_lossy(&buf).into_owned();
                            if tx.send(Piped::Line(stream, line)).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = tx.send(Piped::Closed);
            });
        }
        Daemon {
            child,
            rx,
            transcript: Vec::new(),
            cursor: 0,
            open_pipes: 2,
            exit: None,
            argv,
            config: config.and_then(|p| std::fs::read_to_string(p).ok()),
        }
    }

    /// The pid of the process we spawned (the wrapper's, if any).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The pid of the containerpilot process itself, when started behind a
    /// wrapper: the first descendant named `containerpilot`.
    pub fn find_pid(&mut self) -> i32 {
        let root = self.pid();
        let mut found = None;
        let ok = poll_until(TIMEOUT, || {
            found = std::iter::once(root)
                .chain(descendants(root))
                .find(|p| stat(*p).is_some_and(|(_, _, _, c)| c == "containerpilot"));
            found.is_some()
        });
        if !ok {
            self.fail("no containerpilot process under the wrapper");
        }
        found.expect("found")
    }

    pub fn signal(&self, sig: Signal) {
        self.signal_pid(self.pid(), sig);
    }

    pub fn signal_pid(&self, pid: i32, sig: Signal) {
        kill(Pid::from_raw(pid), sig).unwrap_or_else(|e| panic!("kill({pid}, {sig}): {e}"));
    }

    /// Read one more line if one arrives before `deadline`. False at the deadline
    /// or when both pipes are closed and drained.
    fn pump(&mut self, deadline: Instant) -> bool {
        loop {
            if self.open_pipes == 0 {
                return false;
            }
            match self.rx.recv_deadline(deadline) {
                Ok(Piped::Line(s, l)) => {
                    self.transcript.push((s, l));
                    return true;
                }
                Ok(Piped::Closed) => self.open_pipes -= 1,
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => {
                    self.open_pipes = 0;
                    return false;
                }
            }
        }
    }

    /// Take in whatever has already arrived, without waiting.
    fn pump_ready(&mut self) {
        while self.pump(Instant::now()) {}
    }

    /// Every line read so far (stdout and stderr interleaved as they arrived).
    pub fn lines_so_far(&mut self) -> Vec<String> {
        self.pump_ready();
        self.transcript.iter().map(|(_, l)| l.clone()).collect()
    }

    /// The first line from the cursor on that satisfies `pred`; moves the cursor
    /// past it, so successive calls assert the order of lines. Panics with the
    /// whole transcript at the deadline.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            while self.cursor < self.transcript.len() {
                let i = self.cursor;
                self.cursor += 1;
                if pred(&self.transcript[i].1) {
                    return self.transcript[i].1.clone();
                }
            }
            if !self.pump(deadline) {
                self.fail(&format!(
                    "timed out after {timeout:?} waiting for a line: {what}"
                ));
            }
        }
    }

    /// [`Daemon::wait_line`] over JSON log entries.
    pub fn wait_json(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let line = self.wait_line(what, timeout, |l| json(l).is_some_and(|v| pred(&v)));
        json(&line).expect("matched as json")
    }

    /// Wait for a JSON log entry whose `msg` is exactly `msg`.
    pub fn wait_msg(&mut self, msg: &str) -> Value {
        self.wait_json(&format!("msg {msg:?}"), TIMEOUT, |v| v["msg"] == msg)
    }

    /// Wait until `n` lines in the whole transcript (cursor ignored) satisfy `pred`.
    pub fn wait_count(
        &mut self,
        what: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let have = self.transcript.iter().filter(|(_, l)| pred(l)).count();
            if have >= n {
                return;
            }
            if !self.pump(deadline) {
                self.fail(&format!(
                    "timed out after {timeout:?} waiting for {n} lines ({have} so far): {what}"
                ));
            }
        }
    }

    /// How many lines so far satisfy `pred` (cursor ignored).
    pub fn count(&mut self, pred: impl Fn(&str) -> bool) -> usize {
        self.pump_ready();
        self.transcript.iter().filter(|(_, l)| pred(l)).count()
    }

    /// Wait for the `n`th publication of event `name` (`"app.exitSuccess"`),
    /// seen in the DEBUG log as `event: app.exitSuccess`.
    pub fn wait_event(&mut self, name: &str, n: usize) {
        let want = format!("event: {name}");
        self.wait_count(&format!("{n} x {want}"), n, TIMEOUT, |l| is_msg(l, &want));
    }

    /// How many times event `name` has been published so far.
    pub fn events(&mut self, name: &str) -> usize {
        let want = format!("event: {name}");
        self.count(|l| is_msg(l, &want))
    }

    /// The daemon is in its event loop with its signal handlers installed:
    /// `startup` is published after both (needs DEBUG logging).
    pub fn wait_started(&mut self) {
        self.wait_event("global.startup", 1);
    }

    /// Wait for the daemon to exit; returns its exit code (128+signal when
    /// killed) once its output pipes are drained (bounded: a leftover
    /// grandchild could hold them open).
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        if let Some(c) = self.exit {
            return c;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                let code = exit_code(st);
                self.exit = Some(code);
                let drain = Instant::now() + Duration::from_secs(2);
                while self.pump(drain) {}
                return code;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("did not exit within {timeout:?}"));
            }
            // Take output in meanwhile so a full pipe never blocks the daemon.
            self.pump(Instant::now() + Duration::from_millis(10));
        }
    }

    /// Poll `cond` (every 10 ms, reading output meanwhile) until it holds.
    /// Fails with all the evidence at the deadline, or at once if the daemon
    /// exits while `cond` still does not hold.
    pub fn wait_for(&mut self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if cond() {
                return;
            }
            if self.has_exited() {
                self.wait_exit(TIMEOUT);
                if cond() {
                    return;
                }
                self.fail(&format!("exited while waiting for: {what}"));
            }
            if Instant::now() >= deadline {
                self.fail(&format!("timed out after {TIMEOUT:?} waiting for: {what}"));
            }
            self.pump(Instant::now() + Duration::from_millis(10));
        }
    }

    /// Whether it has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        if let Some(st) = self.child.try_wait().expect("try_wait") {
            self.exit = Some(exit_code(st));
            return true;
        }
        false
    }

    /// Everything known, for failure messages.
    pub fn evidence(&mut self) -> String {
        self.pump_ready();
        let mut s = format!("argv: {:?}\n", self.argv);
        if let Some(c) = &self.config {
            s.push_str(&format!("--- config ---\n{c}\n"));
        }
        s.push_str(&format!(
            "exit: {:?}\n--- output ({} lines) ---\n",
            self.exit,
            self.transcript.len()
        ));
        let skip = self.transcript.len().saturating_sub(400);
        if skip > 0 {
            s.push_str(&format!("[... {skip} earlier lines ...]\n"));
        }
        for (st, l) in &self.transcript[skip..] {
            let tag = match st {
                Stream::Stdout => "out",
                Stream::Stderr => "err",
            };
            s.push_str(&format!("{tag}| {l}\n"));
        }
        s
    }

    /// Panic with `why` and all the evidence.
    pub fn fail(&mut self, why: &str) -> ! {
        let ev = self.evidence();
        panic!("{why}\n{ev}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exit.is_none() && self.child.try_wait().ok().flatten().is_none() {
            kill_tree(self.pid());
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Log lines

/// A log line as JSON (format `json`), if it is one.
pub fn json(line: &str) -> Option<Value> {
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str(line).ok()
}

/// The JSON entry's `msg` is exactly `msg`.
pub fn is_msg(line: &str, msg: &str) -> bool {
    json(line).is_some_and(|v| v["msg"] == msg)
}

/// A JSON entry with `job` == `job` (job output or messages about the job).
pub fn is_job_line(line: &str, job: &str) -> bool {
    json(line).is_some_and(|v| v["job"] == job)
}

/// Split a `default`-format line (`TIME[ NAME PID] MESSAGE`) into its time
/// and the rest; None unless it starts with an RFC 3339 UTC timestamp.
pub fn default_line(line: &str) -> Option<(&str, &str)> {
    let (time, rest) = line.split_once(' ')?;
    let b = time.as_bytes();
    let ok = b.len() >= 21
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && time.ends_with('Z')
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[20..b.len() - 1].iter().all(u8::is_ascii_digit);
    ok.then_some((time, rest))
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1, written independently of the crate's own client (an oracle).

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

fn request_bytes(method: &str, path: &str, body: &str) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

/// One request over the unix socket at `socket` (`Connection: close`).
pub fn uds_request(socket: &Path, method: &str, path: &str, body: &str) -> Response {
    let raw = uds_raw(socket, &request_bytes(method, path, body));
    parse_response(&raw)
        .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}: {raw:?}", socket.display()))
}

/// Send raw bytes over the unix socket and read until the server closes.
pub fn uds_raw(socket: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s =
        UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    s.set_read_timeout(Some(TIMEOUT)).expect("set timeout");
    s.set_write_timeout(Some(TIMEOUT)).expect("set timeout");
    exchange(&mut s, bytes)
}

/// Wait until something accepts connections at `socket`.
pub fn wait_for_socket(socket: &Path, timeout: Duration) {
    wait_until(
        timeout,
        &format!("a listener at {}", socket.display()),
        || UnixStream::connect(socket).is_ok(),
    );
}

/// One request over TCP to `addr` (`127.0.0.1:9090`).
pub fn http_request(addr: &str, method: &str, path: &str, body: &str) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).expect("set timeout");
    s.set_write_timeout(Some(TIMEOUT)).expect("set timeout");
    let raw = exchange(&mut s, &request_bytes(method, path, body));
    parse_response(&raw).unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}: {raw:?}"))
}

pub fn http_get(addr: &str, path: &str) -> Response {
    http_request(addr, "GET", path, "")
}

fn exchange<S: Read + Write>(s: &mut S, bytes: &[u8]) -> Vec<u8> {
    s.write_all(bytes).expect("write request");
    let mut out = Vec::new();
    // A reset after a complete reply (server closed without reading all we sent) is fine.
    let _ = s.read_to_end(&mut out);
    out
}

/// Parse a complete HTTP/1.1 response: status line, headers, and a body
/// delimited by Content-Length, chunked encoding, or the end of the stream.
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header {l:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let rest = &raw[end + 4..];
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body: Vec<u8> =
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            dechunk(rest)?
        } else if let Some(len) = get("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| format!("bad Content-Length {len:?}"))?;
            if rest.len() < len {
                return Err(format!(
                    "body shorter ({}) than Content-Length {len}",
                    rest.len()
                ));
            }
            if rest.len() > len {
                return Err(format!("{} bytes after the body", rest.len() - len));
            }
            rest.to_vec()
        } else {
            rest.to_vec()
        };
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_s = std::str::from_utf8(&b[..nl]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_s.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_s:?}"))?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// A loopback TCP port nobody listens on, for a daemon to bind.
///
/// Binding `:0` and releasing the port races: the kernel hands the same
/// ephemeral port to the next `connect` or `bind(0)` of any test running in
/// parallel before the daemon gets to bind it. So ports come from below the
/// ephemeral range (`ip_local_port_range` starts at 32768), from a counter
/// shared by every test of this process and offset by the pid, and a port
/// that cannot be bound (in use) is skipped for the next one.
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    const FIRST: usize = 20_000;
    const SPAN: usize = 12_000;
    let base = (std::process::id() as usize * 97) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (base + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + SPAN);
}

/// Say why a test could not run here. Written to the real stderr, past the
/// test harness's capture, so that a skipped check is seen, not hidden.
///
/// Under CI (`CI=true`) nothing may be skipped silently: the test fails
/// instead, saying what is missing (`.ci/run` installs what tests need).
pub fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("cannot run under CI: {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIP: {why}");
}

/// The `/v3/status` document, asserting it is served.
pub fn status(dir: &Dir) -> Value {
    let r = uds_request(&dir.socket(), "GET", "/v3/status", "");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

/// SIGTERM, then the daemon must exit 0.
pub fn terminate(d: &mut Daemon) {
    d.signal(Signal::SIGTERM);
    let code = d.wait_exit(TIMEOUT);
    if code != 0 {
        d.fail(&format!("exit code {code} after SIGTERM, want 0"));
    }
}

// ---------------------------------------------------------------------------
// Tools the jobs of some tests run

/// Whether `tool` is on PATH. When it is not, says so through [`skip`]
/// (which fails the test under CI, where `.ci/run` installs it).
pub fn have(tool: &str) -> bool {
    let found = std::env::split_paths(&path_env()).any(|d| {
        std::fs::metadata(d.join(tool))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    if !found {
        skip(&format!("`{tool}` is not installed"));
    }
    found
}

/// An sd_notify sender in python3 (no libsystemd), written into `dir`;
/// returns its path. Run as `python3 PATH ARG...` from a job whose
/// environment has `NOTIFY_SOCKET`. Each ARG is one datagram:
/// `READY=1,STATUS=up` sends `READY=1\nSTATUS=up` (commas become
/// newlines), `hex:FFFE00` sends those bytes, `size:N:TEXT` sends TEXT
/// padded with `x` to N bytes. With `--wait`, it then blocks until its
/// stdin closes (a sender that stays alive).
pub fn notify_sender(dir: &Dir) -> String {
    let p = dir.write(
        "sd_notify.py",
        r#"import os, socket, sys
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
wait = False
for arg in sys.argv[1:]:
    if arg == "--wait":
        wait = True
    elif arg.startswith("hex:"):
        s.sendto(bytes.fromhex(arg[4:]), addr)
    elif arg.startswith("size:"):
        _, n, text = arg.split(":", 2)
        s.sendto(text.encode().ljust(int(n), b"x"), addr)
    else:
        s.sendto(arg.replace(",", "\n").encode(), addr)
print("sent", flush=True)
if wait:
    sys.stdin.read()
"#,
    );
    p.to_str().expect("utf-8 path").to_string()
}

/// The time of a JSON log entry in seconds since midnight UTC, for the
/// spacing of events (lower bounds only: a loaded machine only adds).
pub fn log_seconds(v: &Value) -> f64 {
    let t = v["time"].as_str().unwrap_or_default();
    // 2026-12-04T20:58:09.206084Z: only the time of day matters here.
    let hms = t.get(11..t.len().saturating_sub(1)).unwrap_or("0:0:0");
    let mut parts = hms.split(':');
    let mut next = || {
        parts
            .next()
            .and_then(|p| p.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (h, m, s) = (next(), next(), next());
    h * 3600.0 + m * 60.0 + s
}

/// The log times of every publication of event `name` so far, in order.
pub fn event_times(d: &mut Daemon, name: &str) -> Vec<f64> {
    let want = format!("event: {name}");
    d.lines_so_far()
        .iter()
        .filter(|l| is_msg(l, &want))
        .filter_map(|l| json(l))
        .map(|v| log_seconds(&v))
        .collect()
}

/// Poll `get` (a document read from the daemon: a `/status` entry, a job)
/// every 10 ms until `pred` holds for it, and return it. Fails with the
/// last value seen and all the evidence at the deadline, or at once when
/// the daemon exits.
pub fn wait_doc(
    d: &mut Daemon,
    what: &str,
    mut get: impl FnMut() -> Value,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if d.has_exited() {
            d.fail(&format!("exited while waiting for: {what}"));
        }
        let last = get();
        if pred(&last) {
            return last;
        }
        if Instant::now() >= deadline {
            d.fail(&format!(
                "timed out after {TIMEOUT:?} waiting for: {what}\nlast seen: {last}"
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}
