//! The sd_notify readiness protocol (SPEC §2.3 `notify`, §3.7): one datagram
//! socket per `notify` job, reading what arrives on it, parsing it, and
//! telling whether a sender belongs to the job.
//!
//! This module owns no state beyond the socket: the job runner polls the
//! socket beside the job's output pipes and the event loop decides what a
//! `READY=1` or a missed watchdog means. Protocol as in sd_notify(3):
//! newline-separated `KEY=VALUE` assignments, one message per datagram.
//!
//! Nothing a sender does can cost more than a bounded amount: datagrams are
//! read into one fixed buffer and any over [`MAX_DATAGRAM`] is dropped, one
//! [`NotifySocket::drain`] reads at most [`BATCH`] datagrams, file descriptors
//! passed along are never installed, `STATUS=` is cut at [`MAX_STATUS`], and
//! [`verify`] reads at most [`MAX_ANCESTRY`] small /proc files.

use std::collections::BTreeSet;
use std::fs;
use std::io::{ErrorKind, IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixCredentials,
};

/// The largest datagram read; a longer one is dropped whole. systemd reads
/// into a buffer of the same size (PIPE_BUF).
pub const MAX_DATAGRAM: usize = 4096;
/// `STATUS=` text beyond this many bytes is cut (SPEC §3.7).
pub const MAX_STATUS: usize = 256;
/// At most this many datagrams per [`NotifySocket::drain`], so a sender that
/// floods the socket cannot keep its reader from the job's output pipes.
pub const BATCH: usize = 64;
/// Variables that must never reach a job from containerpilot's own
/// environment: a job without `notify` must not talk to whoever started
/// containerpilot, and an inherited `WATCHDOG_PID` (our pid, set by a systemd
/// above us) would make sd_watchdog_enabled(3) in a `notify` job say "not
/// for me". The caller removes these from every job's environment, then adds
/// [`env()`] for a `notify` job.
pub const INHERITED_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// sun_path holds 108 bytes with the terminating NUL.
const SUN_PATH_MAX: usize = 107;
/// Names tried per place when one is held by another live process (two
/// containers sharing a directory or a network namespace, both PID 1).
const NAME_TRIES: usize = 4;
/// Bound on the ppid chain walked by [`verify`]; job process trees are shallow.
pub const MAX_ANCESTRY: usize = 64;
/// /proc/PID/stat is about 300 bytes: a 16-byte comm and 52 numbers.
const MAX_STAT: u64 = 4096;

/// One job's notify socket: created once for the job and kept across restarts
/// of its process, so the address in a running process's environment stays valid.
#[derive(Debug)]
pub struct NotifySocket {
    sock: UnixDatagram,
    address: String,
    /// The file to remove on drop; None for an abstract name.
    path: Option<PathBuf>,
}

/// One datagram as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The sending process, from the kernel's SCM_CREDENTIALS. None when the
    /// kernel gave no usable pid: the sender lives in a pid namespace we
    /// cannot see (the kernel says 0), or it attached file descriptors, which
    /// are discarded along with the credentials that precede them.
    pub sender: Option<u32>,
    pub payload: Vec<u8>,
}

impl NotifySocket {
    /// Create and bind the socket for job `id`. Places, in order: `dir` (the
    /// control socket's directory), `/tmp`, then an abstract name. A path is
    /// preferred because every sd_notify client can reach it, even a plain
    /// `sendto(path)`; an `@` name only works with libsystemd-style clients. A
    /// place is skipped when the path would not fit sun_path, is not UTF-8 or
    /// cannot be bound. The name is unique to this process and job; a stale
    /// file of that name is replaced. The file gets mode 0666 so that a job
    /// running as another user can send: senders are checked by [`verify`].
    pub fn bind(dir: &Path, id: u64) -> Result<NotifySocket, String> {
        bind_in(&[dir, Path::new("/tmp")], id)
    }

    /// The value for the job's `NOTIFY_SOCKET`: an absolute path, or `@name`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Every datagram waiting now, at most [`BATCH`]; never blocks. A datagram
    /// over [`MAX_DATAGRAM`] bytes is dropped and counts towards the batch.
    /// Read again when poll(2) still says readable.
    pub fn drain(&self) -> Vec<Datagram> {
        self.drain_at_most(BATCH)
    }

    fn drain_at_most(&self, limit: usize) -> Vec<Datagram> {
        let mut out = Vec::new();
        let mut buf = [0u8; MAX_DATAGRAM];
        // Room for the credentials alone. The kernel writes them first; file
        // descriptors a sender attaches then find no room and are closed by
        // the kernel (unix(7)), so a sender can never make PID 1 hold fds.
        let mut cmsg = nix::cmsg_space!(UnixCredentials);
        // MSG_DONTWAIT: the socket is non-blocking already; this keeps drain
        // from blocking even if someone clears O_NONBLOCK on a shared fd.
        // MSG_CMSG_CLOEXEC: should an fd ever be installed, no child inherits it.
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
        for _ in 0..limit {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let (len, truncated, sender) = match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(cmsg.as_mut_slice()),
                flags,
            ) {
                Ok(msg) => (
                    msg.bytes,
                    msg.flags.contains(MsgFlags::MSG_TRUNC),
                    credentials(msg.cmsgs().ok()),
                ),
                Err(Errno::EINTR) => continue,
                // EAGAIN: nothing left. Anything else cannot be helped
                // here; the next readable poll tries again.
                Err(_) => break,
            };
            if truncated {
                continue;
            }
            let payload = buf.get(..len).unwrap_or_default().to_vec();
            out.push(Datagram { sender, payload });
        }
        out
    }
}

/// The sender's pid from the control messages, closing any fd that got in.
fn credentials(cmsgs: Option<nix::sys::socket::CmsgIterator<'_>>) -> Option<u32> {
    let mut pid = None;
    for cmsg in cmsgs.into_iter().flatten() {
        match cmsg {
            ControlMessageOwned::ScmCredentials(cred) => {
                pid = u32::try_from(cred.pid()).ok().filter(|&p| p > 0);
            }
            ControlMessageOwned::ScmRights(fds) => {
                for fd in fds {
                    let _ = nix::unistd::close(fd);
                }
            }
            _ => {}
        }
    }
    pid
}

impl AsFd for NotifySocket {
    /// For poll(2) beside the job's output pipes.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// The socket files bound and not yet removed: the process removes them
/// as it exits (see `remove_files`) without waking every runner to do it.
static FILES: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn files() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    FILES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remove every job's socket file: the process is about to exit.
pub fn remove_files() {
    for path in std::mem::take(&mut *files()) {
        let _ = fs::remove_file(path);
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            files().remove(path);
            let _ = fs::remove_file(path);
        }
    }
}

fn bind_in(dirs: &[&Path], id: u64) -> Result<NotifySocket, String> {
    let base = format!("cp-notify-{}-{id}", std::process::id());
    let mut failures = Vec::new();
    for dir in dirs {
        match bind_path(dir, &base) {
            Ok(s) => return Ok(s),
            Err(e) => failures.push(e),
        }
    }
    match bind_abstract(&base) {
        Ok(s) => Ok(s),
        Err(e) => {
            failures.push(e);
            Err(format!(
                "cannot create the notify socket: {}",
                failures.join("; ")
            ))
        }
    }
}

/// `base`, then `base-1`, `base-2` … for when a live process holds the name.
fn names(base: &str) -> impl Iterator<Item = String> + '_ {
    (0..NAME_TRIES).map(move |n| match n {
        0 => base.to_string(),
        n => format!("{base}-{n}"),
    })
}

/// libsystemd refuses a relative NOTIFY_SOCKET, and the job may run in
/// another working directory.
fn absolute(dir: &Path) -> Result<PathBuf, String> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .map_err(|e| {
            format!(
                "{}: cannot resolve the working directory: {e}",
                dir.display()
            )
        })
}

fn bind_path(dir: &Path, base: &str) -> Result<NotifySocket, String> {
    let dir = absolute(dir)?;
    for name in names(base) {
        let path = dir.join(format!("{name}.sock"));
        let Some(address) = path.to_str().map(str::to_string) else {
            return Err(format!("{}: not UTF-8", path.display()));
        };
        if address.len() > SUN_PATH_MAX {
            return Err(format!("{address}: longer than {SUN_PATH_MAX} bytes"));
        }
        if held_by_live_socket(&path) {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{address}: cannot remove the stale file: {e}")),
        }
        let sock = UnixDatagram::bind(&path).map_err(|e| format!("{address}: {e}"))?;
        // Safe to chmod by path: nobody else can have swapped the file since
        // bind. Our candidates are the control socket's directory (the
        // operator's) and /tmp, where the sticky bit keeps others from
        // unlinking or renaming a file we own.
        let ready = fs::set_permissions(&path, fs::Permissions::from_mode(0o666))
            .map_err(|e| format!("{address}: cannot chmod: {e}"))
            .and_then(|()| configure(&sock).map_err(|e| format!("{address}: {e}")));
        return match ready {
            Ok(()) => {
                files().insert(path.clone());
                Ok(NotifySocket {
                    sock,
                    address,
                    path: Some(path),
                })
            }
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        };
    }
    Err(format!(
        "{}/{base}.sock: in use by another live process",
        dir.display()
    ))
}

/// Whether a live socket answers on `path`. Only a refused connection (or no
/// file) proves the name free to take over; any other answer leaves it alone.
fn held_by_live_socket(path: &Path) -> bool {
    let Ok(probe) = UnixDatagram::unbound() else {
        return false;
    };
    match probe.connect(path) {
        Ok(()) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound),
    }
}

fn bind_abstract(base: &str) -> Result<NotifySocket, String> {
    let mut last = String::new();
    for name in names(base) {
        let address = format!("@{name}");
        let bound = SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| UnixDatagram::bind_addr(&a));
        match bound {
            Ok(sock) => {
                configure(&sock).map_err(|e| format!("{address}: {e}"))?;
                return Ok(NotifySocket {
                    sock,
                    address,
                    path: None,
                });
            }
            Err(e) if e.kind() == ErrorKind::AddrInUse => last = format!("{address}: {e}"),
            Err(e) => return Err(format!("{address}: {e}")),
        }
    }
    Err(last)
}

fn configure(sock: &UnixDatagram) -> Result<(), String> {
    sock.set_nonblocking(true)
        .map_err(|e| format!("cannot make it non-blocking: {e}"))?;
    // The kernel then attaches the sender's pid to every datagram, even when
    // the sender sends none (and refuses a forged one without privilege).
    setsockopt(sock, sockopt::PassCred, &true).map_err(|e| format!("cannot set SO_PASSCRED: {e}"))
}

/// The variables a `notify` job's process gets, added after [`INHERITED_ENV`]
/// is removed. `WATCHDOG_USEC` only with a watchdog of at least 1µs (0 means
/// "disabled" to sd_watchdog_enabled). No `WATCHDOG_PID`: the pid is unknown
/// before the spawn, and without it every process that inherits the
/// variables may ping, which the sender check allows anyway.
pub fn env(socket: &NotifySocket, watchdog: Option<Duration>) -> Vec<(String, String)> {
    let mut vars = vec![("NOTIFY_SOCKET".to_string(), socket.address().to_string())];
    let usec = watchdog.map_or(0, |w| u64::try_from(w.as_micros()).unwrap_or(u64::MAX));
    if usec > 0 {
        vars.push(("WATCHDOG_USEC".to_string(), usec.to_string()));
    }
    vars
}

/// What one datagram says. Fields for keys we only log are kept so the caller
/// can say what it ignored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `READY=1` (any other value is not readiness).
    pub ready: bool,
    /// `WATCHDOG=1`: a keep-alive ping.
    pub watchdog: bool,
    /// `WATCHDOG=trigger`: the process asks to be treated as if it had
    /// missed a ping. systemd does so even without WatchdogSec=; we suggest
    /// the caller does the same for any `notify` job.
    pub watchdog_trigger: bool,
    /// `STATUS=`: at most [`MAX_STATUS`] bytes, cut on a char boundary. The
    /// first one in a datagram wins (as systemd). `Some("")` clears it.
    pub status: Option<String>,
    /// `STOPPING=1`.
    pub stopping: bool,
    /// `RELOADING=1`.
    pub reloading: bool,
    /// `MAINPID=`: we supervise the process we started, so only for logs.
    pub main_pid: Option<u32>,
    /// `ERRNO=`: only for logs.
    pub errno: Option<i32>,
}

/// Parse one datagram. None for garbage: nothing in it is a `KEY=VALUE` line
/// with a key of A-Z, 0-9 and `_` (so also for non-UTF-8 and empty
/// payloads). Lines are split on `\n` and `\r` and read up to the first NUL,
/// as systemd does; a line that is not UTF-8 is skipped alone, so a
/// mis-encoded `STATUS=` does not cost the `READY=1` beside it. Values are
/// matched exactly: `READY=0` and `READY=1 ` are not readiness.
pub fn parse(payload: &[u8]) -> Option<Notice> {
    if payload.len() > MAX_DATAGRAM {
        return None;
    }
    let text = payload.split(|&b| b == 0).next().unwrap_or_default();
    let mut notice = Notice::default();
    let mut valid = false;
    for line in text.split(|&b| b == b'\n' || b == b'\r') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            continue;
        }
        valid = true;
        match (key, value) {
            ("READY", "1") => notice.ready = true,
            ("WATCHDOG", "1") => notice.watchdog = true,
            ("WATCHDOG", "trigger") => notice.watchdog_trigger = true,
            ("STOPPING", "1") => notice.stopping = true,
            ("RELOADING", "1") => notice.reloading = true,
            ("STATUS", text) if notice.status.is_none() => {
                notice.status = Some(cut(text, MAX_STATUS))
            }
            ("MAINPID", pid) => notice.main_pid = pid.parse().ok().filter(|&p| p > 0),
            ("ERRNO", errno) => notice.errno = errno.parse().ok(),
            _ => {}
        }
    }
    valid.then_some(notice)
}

/// `s` cut to at most `max` bytes, on a char boundary.
fn cut(s: &str, max: usize) -> String {
    let end = (0..=max.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    s.get(..end).unwrap_or_default().to_string()
}

/// Whose datagram it is, as far as /proc can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Part of the job: act on it.
    Ours,
    /// A live process outside the job: ignore it (debug log).
    Foreign,
    /// Cannot be looked up: it already exited and was reaped (typical of
    /// `systemd-notify --ready` in a job's script), or /proc is not mounted.
    /// Accept it: only the job's processes were given the address.
    Gone,
}

/// Whether `sender` belongs to the job whose main process is `main_pid`. Jobs
/// run in their own process group, whose id is `main_pid`. Ours: the main
/// process itself; any process in its group; any process whose ancestry (the
/// ppid chain, at most [`MAX_ANCESTRY`] steps) reaches the main process or a
/// member of its group, which covers helpers that called setsid(2). A zombie
/// still has its /proc entry and so still counts. Foreign: any other live
/// process, including one whose ancestry breaks off because a parent exited
/// while we walked. Gone: the sender itself cannot be looked up.
pub fn verify(sender: u32, main_pid: u32) -> Verdict {
    // pid 0 is "not in our pid namespace" to the kernel, never a process.
    if sender == 0 {
        return Verdict::Foreign;
    }
    if sender == main_pid {
        return Verdict::Ours;
    }
    let mut pid = sender;
    for _ in 0..MAX_ANCESTRY {
        let stat = match read_stat(pid) {
            Some(stat) => stat,
            None if pid == sender => return Verdict::Gone,
            None => return Verdict::Foreign,
        };
        if main_pid != 0 && (stat.ppid == main_pid || stat.pgrp == main_pid) {
            return Verdict::Ours;
        }
        // 0: the sender is init (or a kernel thread); 1: init's child, whose
        // ancestry cannot reach a job.
        if stat.ppid <= 1 {
            return Verdict::Foreign;
        }
        pid = stat.ppid;
    }
    Verdict::Foreign
}

#[derive(Debug, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    pgrp: u32,
}

/// None when the process is gone or its entry cannot be read or parsed.
fn read_stat(pid: u32) -> Option<Stat> {
    let mut bytes = Vec::new();
    fs::File::open(format!("/proc/{pid}/stat"))
        .and_then(|f| f.take(MAX_STAT).read_to_end(&mut bytes))
        .ok()?;
    parse_stat(&bytes)
}

/// proc(5): `pid (comm) state ppid pgrp …`. comm is any bytes up to 16 long,
/// spaces and parentheses included, so the fields start after the last ')'.
fn parse_stat(bytes: &[u8]) -> Option<Stat> {
    let close = bytes.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(bytes.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(Stat { ppid, pgrp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, IoSlice};
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, ChildStdout, Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::thread;
    use std::time::Instant;

    use nix::sys::signal::{kill, killpg, Signal};
    use nix::sys::socket::{sendmsg, ControlMessage, UnixAddr};
    use nix::unistd::Pid;

    const WAIT: Duration = Duration::from_secs(10);

    static NEXT: AtomicU64 = AtomicU64::new(1);

    /// A job id no other test in this process uses, so /tmp fallbacks never meet.
    fn fresh_id() -> u64 {
        1000 + NEXT.fetch_add(1, Ordering::Relaxed)
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("cp-nt-{}-{n}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A child in a process group of its own (or one it joins); on drop the
    /// group and any other pids it names are killed, and the child reaped.
    struct Kid {
        child: Child,
        also: Vec<u32>,
    }

    impl Kid {
        fn spawn(cmd: &mut Command) -> Kid {
            let child = cmd
                .stdin(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
            Kid {
                child,
                also: Vec::new(),
            }
        }

        fn pid(&self) -> u32 {
            self.child.id()
        }
    }

    impl Drop for Kid {
        fn drop(&mut self) {
            for &pid in &self.also {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A group leader that just waits.
    fn leader() -> Kid {
        Kid::spawn(Command::new("sleep").arg("60").process_group(0))
    }

    /// Under CI nothing is skipped: a missing tool fails the test by name.
    fn have(tool: &str) -> bool {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool} >/dev/null")])
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("cannot run under CI: {tool} is not installed");
            }
            eprintln!("SKIP: {tool} is not installed");
        }
        found
    }

    /// Drain until `done` says so, or fail with everything received.
    fn receive_until(sock: &NotifySocket, done: impl Fn(&[Datagram]) -> bool) -> Vec<Datagram> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        loop {
            got.extend(sock.drain());
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out on {}; received {got:?}",
                sock.address()
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn receive(sock: &NotifySocket, n: usize) -> Vec<Datagram> {
        receive_until(sock, |got| got.len() >= n)
    }

    fn send(sock: &NotifySocket, payload: &[u8]) {
        let tx = UnixDatagram::unbound().unwrap();
        match sock.address().strip_prefix('@') {
            Some(name) => {
                let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
                tx.send_to_addr(payload, &addr).unwrap();
            }
            None => {
                tx.send_to(payload, sock.address()).unwrap();
            }
        }
    }

    fn lines(out: ChildStdout) -> impl Iterator<Item = String> {
        BufReader::new(out).lines().map_while(Result::ok)
    }

    fn proc_state(pid: u32) -> Option<char> {
        let stat = fs::read(format!("/proc/{pid}/stat")).ok()?;
        let close = stat.iter().rposition(|&b| b == b')')?;
        stat.get(close + 2).map(|&b| b as char)
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(2));
        }
    }

    // ---- bind ----

    #[test]
    fn binds_in_the_given_directory_with_mode_0666_and_drop_removes_the_file() {
        let dir = TempDir::new();
        let id = fresh_id();
        let sock = NotifySocket::bind(&dir.0, id).unwrap();
        let path = dir
            .0
            .join(format!("cp-notify-{}-{id}.sock", std::process::id()));
        assert_eq!(sock.address(), path.to_str().unwrap());
        let meta = fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o666);
        send(&sock, b"READY=1");
        let got = receive(&sock, 1);
        assert_eq!(got[0].payload, b"READY=1");
        drop(sock);
        assert!(!path.exists(), "{} left behind", path.display());
    }

    #[test]
    fn a_directory_too_long_for_sun_path_falls_back_to_tmp() {
        let long = PathBuf::from(format!("/{}", "d".repeat(120)));
        let sock = NotifySocket::bind(&long, fresh_id()).unwrap();
        assert!(
            sock.address().starts_with("/tmp/cp-notify-"),
            "{}",
            sock.address()
        );
        send(&sock, b"WATCHDOG=1");
        assert_eq!(receive(&sock, 1)[0].payload, b"WATCHDOG=1");
        let path = PathBuf::from(sock.address());
        drop(sock);
        assert!(!path.exists());
    }

    #[test]
    fn no_usable_directory_falls_back_to_an_abstract_name() {
        let dir = TempDir::new();
        let long = PathBuf::from(format!("/{}", "d".repeat(120)));
        let missing = dir.0.join("missing");
        let sock = bind_in(&[&long, &missing], fresh_id()).unwrap();
        assert!(
            sock.address().starts_with("@cp-notify-"),
            "{}",
            sock.address()
        );
        assert!(fs::read_dir(&dir.0).unwrap().next().is_none());
        send(&sock, b"READY=1");
        let got = receive(&sock, 1);
        assert_eq!(got[0].sender, Some(std::process::id()));
        if have("python3") {
            let kid = python_sender(&sock, "READY=1\nSTATUS=abstract");
            let got = receive(&sock, 1);
            assert_eq!(got[0].sender, Some(kid.pid()));
            assert_eq!(
                parse(&got[0].payload).unwrap().status.as_deref(),
                Some("abstract")
            );
        }
    }

    #[test]
    fn a_relative_directory_is_taken_from_the_working_directory() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("run")).unwrap(), cwd.join("run"));
        assert_eq!(absolute(Path::new("")).unwrap(), cwd.join(""));
        assert_eq!(
            absolute(Path::new("/var/run")).unwrap(),
            PathBuf::from("/var/run")
        );
    }

    #[test]
    fn a_stale_file_is_replaced_and_a_live_name_is_left_alone() {
        let dir = TempDir::new();
        let id = fresh_id();
        let path = dir
            .0
            .join(format!("cp-notify-{}-{id}.sock", std::process::id()));
        fs::write(&path, "stale").unwrap();
        let first = NotifySocket::bind(&dir.0, id).unwrap();
        assert_eq!(first.address(), path.to_str().unwrap());
        assert!(fs::metadata(&path).unwrap().file_type().is_socket());
        // The same name again (another live containerpilot with our pid
        // sharing the directory): the live socket keeps its file.
        let second = NotifySocket::bind(&dir.0, id).unwrap();
        assert_ne!(second.address(), first.address());
        assert!(
            second.address().starts_with(dir.0.to_str().unwrap()),
            "{}",
            second.address()
        );
        send(&first, b"READY=1");
        send(&second, b"WATCHDOG=1");
        assert_eq!(receive(&first, 1)[0].payload, b"READY=1");
        assert_eq!(receive(&second, 1)[0].payload, b"WATCHDOG=1");
    }

    #[test]
    fn a_taken_abstract_name_moves_to_the_next() {
        let id = fresh_id();
        let first = bind_abstract(&format!("cp-notify-test-{}-{id}", std::process::id())).unwrap();
        let second = bind_abstract(&format!("cp-notify-test-{}-{id}", std::process::id())).unwrap();
        assert_ne!(first.address(), second.address());
    }

    #[test]
    fn the_socket_is_close_on_exec() {
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        let flags = nix::fcntl::fcntl(sock.as_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & nix::libc::FD_CLOEXEC, 0);
    }

    // ---- drain ----

    #[test]
    fn a_datagram_from_this_process_carries_our_pid() {
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        assert!(sock.drain().is_empty());
        send(&sock, b"READY=1\nSTATUS=up");
        let got = receive(&sock, 1);
        assert_eq!(
            got,
            vec![Datagram {
                sender: Some(std::process::id()),
                payload: b"READY=1\nSTATUS=up".to_vec()
            }]
        );
    }

    #[test]
    fn an_oversized_datagram_is_dropped_and_later_ones_still_read() {
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        let mut big = b"STATUS=".to_vec();
        big.resize(5000, b'x');
        let mut exact = b"STATUS=".to_vec();
        exact.resize(MAX_DATAGRAM, b'y');
        send(&sock, &big);
        send(&sock, &exact);
        send(&sock, b"READY=1");
        let got = receive(&sock, 2);
        let payloads: Vec<&[u8]> = got.iter().map(|d| d.payload.as_slice()).collect();
        assert_eq!(payloads, [exact.as_slice(), b"READY=1"]);
    }

    #[test]
    fn empty_datagrams_are_returned_and_parse_as_garbage() {
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        send(&sock, b"");
        let got = receive(&sock, 1);
        assert!(got[0].payload.is_empty());
        assert_eq!(parse(&got[0].payload), None);
    }

    #[test]
    fn file_descriptors_sent_along_are_never_installed() {
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        let marker = dir.0.join("passed-fd-marker");
        let file = fs::File::create(&marker).unwrap();
        let tx = UnixDatagram::unbound().unwrap();
        let to = UnixAddr::new(sock.address()).unwrap();
        let fds = [file.as_raw_fd(), file.as_raw_fd(), file.as_raw_fd()];
        sendmsg(
            tx.as_raw_fd(),
            &[IoSlice::new(b"READY=1\nFDSTORE=1")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&to),
        )
        .unwrap();
        drop(file);
        let got = receive(&sock, 1);
        assert_eq!(got[0].payload, b"READY=1\nFDSTORE=1");
        // The credentials came first and were cut off with the fds.
        assert_eq!(got[0].sender, None);
        let leaked: Vec<PathBuf> = fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target == &marker)
            .collect();
        assert!(leaked.is_empty(), "passed fds still open: {leaked:?}");
    }

    #[test]
    fn one_drain_reads_at_most_its_batch() {
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        // The kernel queues few datagrams per socket (net.unix.max_dgram_qlen,
        // 10 here), so a small limit shows the bound at work.
        for n in 0..6 {
            send(&sock, format!("STATUS={n}").as_bytes());
        }
        assert_eq!(sock.drain_at_most(4).len(), 4);
        assert_eq!(sock.drain_at_most(4).len(), 2);
        assert!(sock.drain_at_most(4).is_empty());
    }

    #[test]
    fn a_flood_is_drained_in_bounded_batches_in_order() {
        const FLOOD: usize = 10_000;
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        let address = sock.address().to_string();
        let sender = thread::spawn(move || {
            let tx = UnixDatagram::unbound().unwrap();
            for n in 0..FLOOD {
                // Blocks while the receive queue is full.
                tx.send_to(format!("STATUS={n}").as_bytes(), &address)
                    .unwrap();
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut received = 0;
        let mut largest = 0;
        while received < FLOOD {
            let batch = sock.drain();
            largest = largest.max(batch.len());
            assert!(batch.len() <= BATCH, "a drain returned {}", batch.len());
            for d in &batch {
                assert_eq!(d.payload, format!("STATUS={received}").as_bytes());
                received += 1;
            }
            assert!(Instant::now() < deadline, "received {received} of {FLOOD}");
            if batch.is_empty() {
                thread::yield_now();
            }
        }
        sender.join().unwrap();
        assert!(sock.drain().is_empty());
        assert!(largest >= 1);
    }

    // ---- senders in other processes ----

    const PY_SEND: &str = "import os, socket, sys, time\n\
        a = os.environ['NOTIFY_SOCKET']\n\
        a = '\\0' + a[1:] if a.startswith('@') else a\n\
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
        s.sendto(sys.argv[1].encode(), a)\n\
        time.sleep(60)\n";

    /// python3 sends `payload` and then lingers, so it is alive when verified.
    fn python_sender(sock: &NotifySocket, payload: &str) -> Kid {
        Kid::spawn(
            Command::new("python3")
                .args(["-c", PY_SEND, payload])
                .env("NOTIFY_SOCKET", sock.address())
                .process_group(0),
        )
    }

    #[test]
    fn python_sendto_reaches_the_socket_with_its_pid() {
        if !have("python3") {
            return;
        }
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        let kid = python_sender(&sock, "READY=1\nSTATUS=python here\n");
        let got = receive(&sock, 1);
        assert_eq!(got[0].sender, Some(kid.pid()));
        let notice = parse(&got[0].payload).unwrap();
        assert!(notice.ready);
        assert_eq!(notice.status.as_deref(), Some("python here"));
        assert_eq!(verify(kid.pid(), kid.pid()), Verdict::Ours);
    }

    #[test]
    fn a_python_helper_in_the_jobs_group_is_ours() {
        if !have("python3") {
            return;
        }
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        let job = Kid::spawn(
            Command::new("sh")
                .args(["-c", "python3 -c \"$PY\" WATCHDOG=1 & exec sleep 60"])
                .env("PY", PY_SEND)
                .env("NOTIFY_SOCKET", sock.address())
                .process_group(0),
        );
        let got = receive(&sock, 1);
        let sender = got[0].sender.unwrap();
        assert_ne!(sender, job.pid());
        assert_eq!(verify(sender, job.pid()), Verdict::Ours);
        assert!(parse(&got[0].payload).unwrap().watchdog);
    }

    #[test]
    fn socat_unix_sendto_reaches_the_socket() {
        if !have("socat") {
            return;
        }
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        let job = Kid::spawn(
            Command::new("sh")
                .args([
                    "-c",
                    "printf 'READY=1\\nSTATUS=from socat' | socat - UNIX-SENDTO:\"$NOTIFY_SOCKET\"; exec sleep 60",
                ])
                .env("NOTIFY_SOCKET", sock.address())
                .process_group(0),
        );
        let got = receive(&sock, 1);
        let notice = parse(&got[0].payload).unwrap();
        assert!(notice.ready);
        assert_eq!(notice.status.as_deref(), Some("from socat"));
        let sender = got[0].sender.unwrap();
        assert_ne!(sender, job.pid());
        // socat has usually exited and been reaped by the time we look.
        let verdict = verify(sender, job.pid());
        assert!(
            matches!(verdict, Verdict::Ours | Verdict::Gone),
            "{verdict:?}"
        );
    }

    #[test]
    fn systemd_notify_reaches_the_socket() {
        if !have("systemd-notify") {
            return;
        }
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "systemd-notify --ready --status='ready, sort of: ü' && echo done; exec sleep 60",
        ])
        .env("NOTIFY_SOCKET", sock.address())
        .stdout(Stdio::piped())
        .process_group(0);
        let mut job = Kid::spawn(&mut cmd);
        let got = receive_until(&sock, |got| {
            got.iter()
                .any(|d| parse(&d.payload).is_some_and(|n| n.ready))
        });
        let ready = got
            .iter()
            .find(|d| parse(&d.payload).is_some_and(|n| n.ready))
            .unwrap();
        let notice = parse(&ready.payload).unwrap();
        assert_eq!(notice.status.as_deref(), Some("ready, sort of: ü"));
        let sender = ready.sender.unwrap();
        let verdict = verify(sender, job.pid());
        assert!(
            matches!(verdict, Verdict::Ours | Verdict::Gone),
            "{verdict:?}"
        );
        // systemd-notify may wait on a barrier (an fd sent along, which the
        // kernel closes for us); it must finish while we keep draining.
        let out = job.child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        thread::spawn(move || {
            let _ = tx.send(lines(out).next());
        });
        let deadline = Instant::now() + WAIT;
        loop {
            let _ = sock.drain();
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(line) => {
                    assert_eq!(line.as_deref(), Some("done"));
                    break;
                }
                Err(_) => assert!(Instant::now() < deadline, "systemd-notify did not finish"),
            }
        }
    }

    // ---- verify ----

    #[test]
    fn verify_knows_the_main_process_and_its_group() {
        let job = leader();
        let member = Kid::spawn(
            Command::new("sleep")
                .arg("60")
                .process_group(job.pid() as i32),
        );
        assert_eq!(verify(job.pid(), job.pid()), Verdict::Ours);
        assert_eq!(verify(member.pid(), job.pid()), Verdict::Ours);
    }

    #[test]
    fn verify_follows_ancestry_past_setsid() {
        if !have("setsid") {
            return;
        }
        // The job starts a helper in a new session, which starts a worker:
        // neither is in the job's group; the worker's grandparent is the job.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "setsid sh -c 'echo $$; sleep 60 & echo $!; wait' & exec sleep 60",
        ])
        .stdout(Stdio::piped())
        .process_group(0);
        let mut job = Kid::spawn(&mut cmd);
        let mut out = lines(job.child.stdout.take().unwrap());
        let helper: u32 = out.next().unwrap().parse().unwrap();
        let worker: u32 = out.next().unwrap().parse().unwrap();
        job.also = vec![worker, helper];
        assert_eq!(read_stat(helper).unwrap().pgrp, helper);
        assert_eq!(verify(helper, job.pid()), Verdict::Ours);
        assert_eq!(verify(worker, job.pid()), Verdict::Ours);
        // The same processes are nobody else's.
        let other = leader();
        assert_eq!(verify(worker, other.pid()), Verdict::Foreign);
    }

    #[test]
    fn verify_counts_a_zombie_by_its_group() {
        let job = leader();
        let mut zombie = Kid::spawn(Command::new("true").process_group(job.pid() as i32));
        wait_for("a zombie", || proc_state(zombie.pid()) == Some('Z'));
        assert_eq!(verify(zombie.pid(), job.pid()), Verdict::Ours);
        zombie.child.wait().unwrap();
        assert_eq!(verify(zombie.pid(), job.pid()), Verdict::Gone);
    }

    #[test]
    fn verify_rejects_live_strangers() {
        let job = leader();
        let stranger = leader();
        assert_eq!(verify(std::process::id(), job.pid()), Verdict::Foreign);
        assert_eq!(verify(stranger.pid(), job.pid()), Verdict::Foreign);
        assert_eq!(verify(1, job.pid()), Verdict::Foreign);
        assert_eq!(verify(0, job.pid()), Verdict::Foreign);
        // No main process: nothing can be ours.
        assert_eq!(verify(stranger.pid(), 0), Verdict::Foreign);
    }

    #[test]
    fn verify_says_gone_for_an_exited_and_reaped_sender() {
        let job = leader();
        let mut gone = Kid::spawn(&mut Command::new("true"));
        gone.child.wait().unwrap();
        assert_eq!(verify(gone.pid(), job.pid()), Verdict::Gone);
    }

    #[test]
    fn stat_lines_with_awkward_names_parse() {
        let cases: [(&[u8], Option<Stat>); 8] = [
            (
                b"42 (sleep) S 7 42 42 0 -1 4194304 94 0",
                Some(Stat { ppid: 7, pgrp: 42 }),
            ),
            (b"42 (a b) (c)) S 7 9 42 0", Some(Stat { ppid: 7, pgrp: 9 })),
            (b"42 () Z 1 1 1", Some(Stat { ppid: 1, pgrp: 1 })),
            (b"42 (\xff\xfe)) R 3 4", Some(Stat { ppid: 3, pgrp: 4 })),
            (b"42 (x) S 7", None),
            (b"42 (x) S -1 4", None),
            (b"42 (x", None),
            (b"", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_stat(line), want, "{}", String::from_utf8_lossy(line));
        }
        let me = read_stat(std::process::id()).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
    }

    // ---- parse ----

    fn notice(f: impl FnOnce(&mut Notice)) -> Option<Notice> {
        let mut n = Notice::default();
        f(&mut n);
        Some(n)
    }

    #[test]
    fn every_key_parses() {
        assert_eq!(parse(b"READY=1"), notice(|n| n.ready = true));
        assert_eq!(parse(b"WATCHDOG=1"), notice(|n| n.watchdog = true));
        assert_eq!(
            parse(b"WATCHDOG=trigger"),
            notice(|n| n.watchdog_trigger = true)
        );
        assert_eq!(parse(b"STOPPING=1"), notice(|n| n.stopping = true));
        assert_eq!(parse(b"RELOADING=1"), notice(|n| n.reloading = true));
        assert_eq!(
            parse(b"STATUS=Serving 3 clients"),
            notice(|n| n.status = Some("Serving 3 clients".into()))
        );
        assert_eq!(
            parse(b"STATUS="),
            notice(|n| n.status = Some(String::new()))
        );
        assert_eq!(
            parse(b"STATUS=a=b=c"),
            notice(|n| n.status = Some("a=b=c".into()))
        );
        assert_eq!(parse(b"MAINPID=4711"), notice(|n| n.main_pid = Some(4711)));
        assert_eq!(parse(b"MAINPID=0"), notice(|_| {}));
        assert_eq!(parse(b"MAINPID=x"), notice(|_| {}));
        assert_eq!(parse(b"ERRNO=2"), notice(|n| n.errno = Some(2)));
        assert_eq!(parse(b"ERRNO=-x"), notice(|_| {}));
        // Known to sd_notify, nothing for us.
        assert_eq!(parse(b"FDSTORE=1"), notice(|_| {}));
        assert_eq!(parse(b"BARRIER=1"), notice(|_| {}));
        assert_eq!(parse(b"X_MY_APP=ok"), notice(|_| {}));
    }

    #[test]
    fn several_lines_in_one_datagram() {
        let want = notice(|n| {
            n.ready = true;
            n.watchdog = true;
            n.status = Some("up".into());
            n.main_pid = Some(9);
        });
        assert_eq!(parse(b"READY=1\nSTATUS=up\nMAINPID=9\nWATCHDOG=1"), want);
        assert_eq!(parse(b"READY=1\nSTATUS=up\nMAINPID=9\nWATCHDOG=1\n"), want);
        assert_eq!(
            parse(b"READY=1\r\nSTATUS=up\r\nMAINPID=9\r\nWATCHDOG=1\r\n"),
            want
        );
        assert_eq!(
            parse(b"\n\nREADY=1\n\nSTATUS=up\nMAINPID=9\nWATCHDOG=1"),
            want
        );
        // The first STATUS wins, as in systemd.
        assert_eq!(
            parse(b"STATUS=one\nSTATUS=two"),
            notice(|n| n.status = Some("one".into()))
        );
    }

    #[test]
    fn values_other_than_the_documented_ones_mean_nothing() {
        for payload in [
            "READY=0",
            "READY=yes",
            "READY=1 ",
            "READY=",
            "WATCHDOG=0",
            "STOPPING=true",
        ] {
            assert_eq!(parse(payload.as_bytes()), notice(|_| {}), "{payload:?}");
        }
    }

    #[test]
    fn garbage_is_none() {
        for payload in [
            &b""[..],
            b"\n\n",
            b"READY",
            b"hello world",
            b"=1",
            b"READY 1",
            b"\xff\xfe\xfd",
            b"READY=1\xff",
            b"\0READY=1",
            b"ready=1",
            b" READY=1",
            b"K EY=1",
        ] {
            assert_eq!(parse(payload), None, "{}", String::from_utf8_lossy(payload));
        }
    }

    #[test]
    fn a_bad_line_costs_only_itself() {
        assert_eq!(
            parse(b"STATUS=caf\xe9\nREADY=1"),
            notice(|n| n.ready = true)
        );
        assert_eq!(
            parse(b"garbage\nREADY=1\nmore garbage"),
            notice(|n| n.ready = true)
        );
        // Read as a C string, as systemd does.
        assert_eq!(parse(b"READY=1\0STATUS=hidden"), notice(|n| n.ready = true));
    }

    #[test]
    fn the_size_limit_is_4096_bytes() {
        let mut exact = b"READY=1\nSTATUS=".to_vec();
        exact.resize(MAX_DATAGRAM, b'a');
        let parsed = parse(&exact).unwrap();
        assert!(parsed.ready);
        assert_eq!(parsed.status.map(|s| s.len()), Some(MAX_STATUS));
        exact.push(b'a');
        assert_eq!(parse(&exact), None);
        assert_eq!(parse(&vec![0xff; 1 << 20]), None);
    }

    #[test]
    fn status_is_cut_at_256_bytes_on_a_char_boundary() {
        let ascii = "x".repeat(300);
        let got = parse(format!("STATUS={ascii}").as_bytes())
            .unwrap()
            .status
            .unwrap();
        assert_eq!(got, "x".repeat(256));
        // 'é' is 2 bytes, '€' 3, '😀' 4: every cut position lands mid-char
        // for one of these.
        for (prefix, ch) in [(255, 'é'), (254, '€'), (255, '€'), (253, '😀'), (255, '😀')]
        {
            let text = format!("{}{}", "y".repeat(prefix), ch.to_string().repeat(10));
            let got = parse(format!("STATUS={text}").as_bytes())
                .unwrap()
                .status
                .unwrap();
            assert!(got.len() <= MAX_STATUS);
            assert!(
                MAX_STATUS - got.len() < ch.len_utf8(),
                "{prefix} {ch}: {} bytes",
                got.len()
            );
            assert!(text.starts_with(&got));
        }
        let exactly = "z".repeat(256);
        assert_eq!(
            parse(format!("STATUS={exactly}").as_bytes())
                .unwrap()
                .status
                .unwrap(),
            exactly
        );
        assert_eq!(cut("ab", 0), "");
        assert_eq!(cut("", 256), "");
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes() {
        // A cheap deterministic fuzz: xorshift bytes biased towards the
        // separators and key characters the parser looks at.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"=\n\r\0READYSTUWCHOG_1trige\xc3\xa9\xff ";
        for len in 0..600 {
            let payload: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            if let Some(n) = parse(&payload) {
                assert!(n.status.is_none_or(|s| s.len() <= MAX_STATUS));
            }
        }
    }

    // ---- env ----

    #[test]
    fn env_names_the_socket_and_the_watchdog_in_microseconds() {
        let dir = TempDir::new();
        let sock = NotifySocket::bind(&dir.0, fresh_id()).unwrap();
        let socket_var = ("NOTIFY_SOCKET".to_string(), sock.address().to_string());
        assert_eq!(env(&sock, None), vec![socket_var.clone()]);
        assert_eq!(
            env(&sock, Some(Duration::from_millis(1500))),
            vec![
                socket_var.clone(),
                ("WATCHDOG_USEC".to_string(), "1500000".to_string())
            ]
        );
        assert_eq!(env(&sock, Some(Duration::ZERO)), vec![socket_var.clone()]);
        assert_eq!(
            env(&sock, Some(Duration::from_nanos(999))),
            vec![socket_var]
        );
        assert!(INHERITED_ENV.contains(&"NOTIFY_SOCKET"));
    }
}
