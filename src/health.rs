//! A job's checker thread (SPEC §2.3 `health`, §3.2): the one thread per
//! job with an `exec`, `http` or `tcp` health check. It keeps the check's
//! schedule itself while the loop has it running (`Resume`/`Pause`), so a
//! check costs the loop one message, and it reads an exec check's output
//! itself with poll(2): no thread is started per check.
//!
//! `http` and `tcp` probes are made here, with no process: a GET whose
//! status is 200-399 within the timeout passes (the status line is the
//! output), a connection accepted within the timeout passes (a failure's
//! output is the connect error). An exec check passes on exit 0 and is
//! SIGKILLed (as a group) when it outlives the timeout.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use nix::sys::signal::Signal;

use crate::config::{HttpProbe, Probe};
use crate::inbox::{self, Inbox, Mailbox};
use crate::job::next_tick;
use crate::log;
use crate::logbuf::{cut, LogBuffer, Stream};
use crate::msg::{Env, JobId, Msg, Published};
use crate::output::{LineSink, Logged, Pipe, Pipes};
use crate::process::signal_group;
use crate::reaper;
use crate::spawn::{self, CEnv, Output, Prepared, SpawnError};

/// What Consul gets to see of a check's output, at most.
const MAX_OUTPUT: usize = 4096;

/// A check that has exited waits this long at most for its pipes to close
/// (a background grandchild may hold them open).
const OUTPUT_GRACE: Duration = Duration::from_millis(50);

pub enum CheckCmd {
    /// Check every interval, the first one interval from now.
    Resume,
    /// Stop checking (a check already running still reports).
    Pause,
    /// From the reaper: the check's process exited.
    Exited { pid: u32, code: i32 },
}

pub struct CheckerSpec {
    pub job: JobId,
    /// The job's name; the check logs as `check.NAME`.
    pub name: String,
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub raw: bool,
    pub log: Arc<LogBuffer>,
    /// The environment an exec check starts with, as the loop last published it.
    pub env: Arc<Published<Env>>,
}

/// The execve environment for `env`, built by the first checker to need it
/// and shared by the others while `env` is current.
fn shared_env(env: &Arc<Env>) -> Result<Arc<CEnv>, SpawnError> {
    static LAST: SharedEnv = Mutex::new(None);
    shared_env_in(&LAST, env)
}

type SharedEnv = Mutex<Option<(Weak<Env>, Arc<CEnv>)>>;

fn shared_env_in(cache: &SharedEnv, env: &Arc<Env>) -> Result<Arc<CEnv>, SpawnError> {
    let mut last = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((seen, c_env)) = last.as_ref() {
        // The weak reference keeps the allocation: no other Env can take
        // its address while it is held.
        if std::ptr::eq(seen.as_ptr(), Arc::as_ptr(env)) {
            return Ok(c_env.clone());
        }
    }
    let c_env = Arc::new(CEnv::new(env)?);
    *last = Some((Arc::downgrade(env), c_env.clone()));
    Ok(c_env)
}

pub fn start_checker(spec: CheckerSpec, tx: Sender<Msg>) -> Result<Inbox<CheckCmd>, String> {
    let (inbox, mailbox) = inbox::pair().map_err(|e| {
        format!(
            "cannot create the health-check inbox of job[{}]: {e}",
            spec.name
        )
    })?;
    let name = spec.name.clone();
    thread::Builder::new()
        .name(format!("check-{name}"))
        .stack_size(128 * 1024)
        .spawn(move || {
            Checker {
                label: format!("check.{}", spec.name),
                spec,
                tx,
                mailbox,
                next_due: None,
                running: None,
                prepared: None,
            }
            .run()
        })
        .map_err(|e| format!("cannot start the health-check thread for job[{name}]: {e}"))?;
    Ok(inbox)
}

/// An exec check in flight.
struct Running {
    pid: u32,
    pid_text: String,
    pipes: Pipes,
    started: Instant,
    at: SystemTime,
    deadline: Instant,
    exited: Option<(i32, Instant)>,
    timed_out: bool,
    output: String,
}

struct Checker {
    spec: CheckerSpec,
    label: String,
    tx: Sender<Msg>,
    /// Commands from the loop, and exits from the reaper (through inboxes
    /// minted here, one per check run).
    mailbox: Mailbox<CheckCmd>,
    /// `None` while paused.
    next_due: Option<Instant>,
    running: Option<Running>,
    /// The exec check ready to start, for the environment it was built for.
    prepared: Option<(Arc<Env>, Prepared)>,
}

impl Checker {
    fn run(mut self) {
        loop {
            let [inbox, out, err, _] = {
                let [out, err] = self
                    .running
                    .as_ref()
                    .map_or([None, None], |r| r.pipes.fds());
                self.mailbox.wait([out, err, None], self.wake_at())
            };
            if inbox && self.take_commands() {
                return;
            }
            if out || err {
                self.read_output();
                if let Some(pid) = self.output_closed() {
                    // Its output ended: it has most likely exited. Reap it
                    // here rather than sleep until the signal thread has.
                    reaper::reap_exiting(pid);
                    if self.take_commands() {
                        return;
                    }
                }
            }
            self.progress();
            self.maybe_start();
        }
    }

    /// When poll must return even if nothing happens: the running check's
    /// timeout or output grace, else the next check.
    fn wake_at(&self) -> Option<Instant> {
        match &self.running {
            Some(r) => match r.exited {
                Some((_, at)) => Some(at + OUTPUT_GRACE),
                None if r.timed_out => None,
                None => Some(r.deadline),
            },
            None => self.next_due,
        }
    }

    /// Apply what the loop and the reaper sent; whether the loop has let go
    /// of this checker (a check still running is killed: nobody will
    /// reap it).
    fn take_commands(&mut self) -> bool {
        let (cmds, gone) = self.mailbox.take();
        for cmd in cmds {
            self.command(cmd);
        }
        if gone {
            if let Some(r) = &self.running {
                signal_group(r.pid, Signal::SIGKILL);
            }
        }
        gone
    }

    fn command(&mut self, cmd: CheckCmd) {
        match cmd {
            CheckCmd::Resume => {
                if self.next_due.is_none() {
                    self.next_due = Some(Instant::now() + self.spec.interval);
                }
            }
            CheckCmd::Pause => self.next_due = None,
            CheckCmd::Exited { pid, code } => {
                if let Some(r) = self.running.as_mut().filter(|r| r.pid == pid) {
                    r.exited = Some((code, Instant::now()));
                }
            }
        }
    }

    fn maybe_start(&mut self) {
        let now = Instant::now();
        let Some(due) = self.next_due.filter(|d| *d <= now) else {
            return;
        };
        if self.running.is_some() {
            return; // still running: this tick is skipped
        }
        self.next_due = Some(next_tick(due, self.spec.interval, now));
        let at = SystemTime::now();
        match &self.spec.probe {
            Probe::Exec(argv) => self.start_exec(argv.clone(), now, at),
            Probe::Http(h) => {
                let (passed, output) = http_probe(h, self.spec.timeout);
                self.report(passed, output, now, at);
            }
            Probe::Tcp { host, port } => {
                let (passed, output) = tcp_probe(host, *port, self.spec.timeout);
                self.report(passed, output, now, at);
            }
            Probe::Heartbeat => self.report(true, String::new(), now, at),
        }
    }

    fn start_exec(&mut self, argv: Vec<String>, now: Instant, at: SystemTime) {
        let env = self.spec.env.get().unwrap_or_default();
        let fresh = !self
            .prepared
            .as_ref()
            .is_some_and(|(seen, _)| Arc::ptr_eq(seen, &env));
        if fresh {
            match shared_env(&env).and_then(|c| Prepared::with_env(&argv, &env, c)) {
                Ok(p) => self.prepared = Some((env, p)),
                Err(e) => {
                    self.prepared = None;
                    let msg = format!("cannot start {}: {}", self.label, e.reason);
                    log::error(&msg);
                    self.report(false, msg, now, at);
                    return;
                }
            }
        }
        let Some((_, prepared)) = &self.prepared else {
            return;
        };
        let inbox = self.mailbox.inbox();
        let output = if self.spec.raw {
            Output::Inherit
        } else {
            Output::Merged
        };
        let started = spawn::start(
            prepared,
            output,
            Box::new(move |pid, code| {
                inbox.send(CheckCmd::Exited { pid, code });
            }),
        );
        match started {
            Ok(child) => {
                self.running = Some(Running {
                    pid: child.pid,
                    pid_text: child.pid.to_string(),
                    pipes: Pipes::new(
                        child.stdout.map(|fd| Pipe::new(fd, Stream::Check)),
                        child.stderr.map(|fd| Pipe::new(fd, Stream::Check)),
                    ),
                    started: now,
                    at,
                    deadline: now + self.spec.timeout,
                    exited: None,
                    timed_out: false,
                    output: String::new(),
                })
            }
            Err(e) => {
                // Look the program up again next time: it may be installed by then.
                self.prepared = None;
                let msg = format!("cannot start {}: {}", self.label, e.reason);
                log::error(&msg);
                self.report(false, msg, now, at);
            }
        }
    }

    /// The running check's pid, if it has closed both its pipes and its
    /// exit is not known yet.
    fn output_closed(&self) -> Option<u32> {
        self.running
            .as_ref()
            .filter(|r| r.exited.is_none() && !r.pipes.any_open())
            .map(|r| r.pid)
    }

    fn read_output(&mut self) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let mut sink = CheckLines {
            logged: Logged::new("check", &self.label, &r.pid_text, &self.spec.log),
            output: &mut r.output,
        };
        r.pipes.read(&mut sink);
    }

    /// Kill a check past its timeout; report one that has finished.
    fn progress(&mut self) {
        let now = Instant::now();
        let Some(r) = self.running.as_mut() else {
            return;
        };
        if r.exited.is_none() && !r.timed_out && now >= r.deadline {
            signal_group(r.pid, Signal::SIGKILL);
            r.timed_out = true;
            return;
        }
        let Some((code, exited_at)) = r.exited else {
            return;
        };
        if r.pipes.any_open() && now < exited_at + OUTPUT_GRACE {
            return;
        }
        let Some(mut r) = self.running.take() else {
            return;
        };
        let mut sink = CheckLines {
            logged: Logged::new("check", &self.label, &r.pid_text, &self.spec.log),
            output: &mut r.output,
        };
        r.pipes.flush(&mut sink);
        drop(sink);
        let (passed, output) = if r.timed_out {
            let msg = format!("check timed out after {:?}", self.spec.timeout);
            log::warn(&format!("{} {msg}", self.label));
            (false, msg)
        } else if code != 0 && r.output.is_empty() {
            (false, format!("check exited with status {code}"))
        } else {
            (code == 0, r.output)
        };
        self.report(passed, output, r.started, r.at);
    }

    fn report(&self, passed: bool, output: String, started: Instant, at: SystemTime) {
        let _ = self.tx.send(Msg::HealthChecked {
            job: self.spec.job,
            passed,
            output,
            duration: started.elapsed(),
            at,
        });
    }
}

/// The lines of an exec check's output: logged, kept with the job's
/// output, and collected (bounded) as the check's result.
struct CheckLines<'a> {
    logged: Logged<'a>,
    output: &'a mut String,
}

impl LineSink for CheckLines<'_> {
    fn line(&mut self, stream: Stream, text: &str) {
        self.logged.line(stream, text);
        let output = &mut *self.output;
        if output.len() + text.len() < MAX_OUTPUT {
            if !output.is_empty() {
                output.push('\n');
            }
            output.push_str(text);
        }
    }

    fn flush(&mut self) {
        self.logged.flush();
    }
}

/// A GET of the probe's URL: a status of 200-399 within `timeout` passes,
/// and the output is the status line as the server sent it. Only the head
/// is waited for: a body, however large or slow, is never read (a server
/// that hangs after its headers cannot hold the checks up).
pub fn http_probe(p: &HttpProbe, timeout: Duration) -> (bool, String) {
    let deadline = Instant::now() + timeout;
    let target = host_port(&p.host, p.port);
    let failed = |why: String| {
        (
            false,
            cut(&format!("GET {}: {why}", p.url), MAX_OUTPUT).to_string(),
        )
    };
    let mut stream = match connect(&target, deadline) {
        Ok(s) => s,
        Err(why) => return failed(why),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: containerpilot\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        p.path
    );
    let _ = stream.set_write_timeout(Some(left(deadline)));
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return failed(format!("cannot send the request: {e}"));
    }
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    let line = loop {
        if let Some(nl) = head.iter().position(|b| *b == b'\n') {
            break String::from_utf8_lossy(&head[..nl]).trim_end().to_string();
        }
        if head.len() > MAX_STATUS_LINE {
            return failed("the status line is too long".into());
        }
        if Instant::now() >= deadline {
            return failed(format!("no response within {timeout:?}"));
        }
        let _ = stream.set_read_timeout(Some(left(deadline)));
        match stream.read(&mut buf) {
            Ok(0) => return failed("the server closed the connection without answering".into()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return failed(format!("no response within {timeout:?}"))
            }
            Err(e) => return failed(format!("cannot read the response: {e}")),
        }
    };
    // `HTTP/1.1 503 Service Unavailable`: the version, the code, a reason.
    let mut parts = line.split(' ');
    let status = match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => code,
        _ => return failed(format!("not an HTTP status line: {line:?}")),
    };
    (
        (200..400).contains(&status),
        cut(&line, MAX_OUTPUT).to_string(),
    )
}

/// A connection to `host:port` accepted within `timeout` passes.
pub fn tcp_probe(host: &str, port: u16, timeout: Duration) -> (bool, String) {
    let target = host_port(host, port);
    match connect(&target, Instant::now() + timeout) {
        Ok(s) => (
            true,
            match s.peer_addr() {
                Ok(a) => format!("connected to {a}"),
                Err(_) => format!("connected to {target}"),
            },
        ),
        Err(why) => (false, why),
    }
}

/// A status line longer than this is not one.
const MAX_STATUS_LINE: usize = 8 * 1024;

fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Connect to `target` (`host:port`, the name through the system's
/// resolver), trying each address it resolves to until the deadline.
fn connect(target: &str, deadline: Instant) -> Result<TcpStream, String> {
    let addrs = target
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {target}: {e}"))?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left(deadline)) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(format!("cannot connect to {target} ({addr}): {e}")),
        }
    }
    Err(last.unwrap_or_else(|| format!("{target} resolves to no address")))
}

/// `host:port`, with an IPv6 address in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn checkers_share_one_execve_environment_per_published_one() {
        // A cache of its own: other tests' checkers use the global one.
        let cache: SharedEnv = Mutex::new(None);
        let env: Arc<Env> = Arc::new(vec![("A".into(), "1".into())]);
        let first = shared_env_in(&cache, &env).unwrap();
        let again = shared_env_in(&cache, &Arc::clone(&env)).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "built twice for one environment"
        );
        let newer: Arc<Env> = Arc::new(vec![("A".into(), "2".into())]);
        let other = shared_env_in(&cache, &newer).unwrap();
        assert!(
            !Arc::ptr_eq(&first, &other),
            "a new environment reused the old one"
        );
        let bad: Arc<Env> = Arc::new(vec![("B".into(), "x\0y".into())]);
        assert!(shared_env_in(&cache, &bad).is_err());
    }

    fn probe(port: u16, path: &str) -> HttpProbe {
        HttpProbe {
            url: format!("http://127.0.0.1:{port}{path}"),
            host: "127.0.0.1".into(),
            port,
            path: path.into(),
        }
    }

    /// A one-shot HTTP server answering `status`.
    fn serve_once(status: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok");
        });
        port
    }

    #[test]
    fn http_status_decides() {
        let t = Duration::from_secs(5);
        let (ok, out) = http_probe(&probe(serve_once("200 OK"), "/health"), t);
        assert!(ok);
        assert_eq!(out, "HTTP/1.1 200 OK");
        // A redirect is not followed and passes, as Kubernetes.
        assert!(http_probe(&probe(serve_once("302 Found"), "/"), t).0);
        let (ok, out) = http_probe(&probe(serve_once("503 Service Unavailable"), "/"), t);
        assert!(!ok);
        assert_eq!(out, "HTTP/1.1 503 Service Unavailable");
    }

    #[test]
    fn refused_connections_fail_with_the_error() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let (ok, out) = http_probe(&probe(port, "/"), Duration::from_secs(1));
        assert!(!ok);
        assert!(out.contains("refused"), "{out}");
        let (ok, out) = tcp_probe("127.0.0.1", port, Duration::from_secs(1));
        assert!(!ok);
        assert!(out.contains("refused"), "{out}");
    }

    #[test]
    fn tcp_connects() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (ok, out) = tcp_probe("127.0.0.1", port, Duration::from_secs(1));
        assert!(ok, "{out}");
        assert_eq!(host_port("::1", 80), "[::1]:80");
        assert_eq!(host_port("db", 5432), "db:5432");
    }
}
