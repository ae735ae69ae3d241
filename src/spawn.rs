//! Starting one process (SPEC §3.2): in its own process group, with exactly
//! the environment given, stdin from `/dev/null`, and stdout/stderr either
//! piped back to us (non-blocking, for the caller's poll loop) or inherited.
//! The pid is registered with the reaper in the same step.
//!
//! The program is looked up in the *child's* `PATH` here, as Go's
//! `exec.LookPath` does, rather than by the standard library: std falls back
//! from `posix_spawn` to `fork` when it must search a `PATH` that the
//! child's environment sets, and a fork costs more with every thread
//! stack the parent has mapped (one per job), which made start-up with
//! hundreds of jobs superlinear. The process itself is created by
//! [`vfork`], whose cost does not grow with the parent either.
//!
//! When a process cannot be started the error names the file that is
//! actually missing: the program, its `#!` interpreter, its dynamic
//! loader, or `/dev/null`.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::pipe2;

use crate::reaper::{self, OnExit};
use crate::vfork::{self, CArray};

/// Where a child's `PATH` points when its environment has none (Docker's
/// default for containers).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a child's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Ours (a `raw` job).
    Inherit,
    /// A pipe each, read back by the caller.
    Pipes,
    /// One pipe for both (a health check, whose lines are all `check`):
    /// a pipe fewer to create, poll and close at every check.
    Merged,
}

/// What to start.
pub struct Spec<'a> {
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    /// Pipe stdout and stderr back (else the child inherits ours).
    pub capture: bool,
}

/// A started process. The pipes are non-blocking.
pub struct Child {
    pub pid: u32,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Why a process could not be started: the exit status it counts as (127
/// when something is missing, 126 when it cannot be executed, as shells
/// do) and the reason, naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnError {
    pub code: i32,
    pub reason: String,
}

/// Start `spec`; `on_exit` is called (on the reaping thread) with its pid
/// and exit status.
pub fn spawn(spec: &Spec, on_exit: OnExit) -> Result<Child, SpawnError> {
    let prepared = Prepared::new(spec.argv, spec.env)?;
    let output = if spec.capture {
        Output::Pipes
    } else {
        Output::Inherit
    };
    start(&prepared, output, on_exit)
}

/// A command ready to start: its program found in the child's `PATH`, its
/// arguments and environment as C strings. A health check keeps one while
/// the environment is unchanged, so a check does not build them again.
pub struct Prepared {
    prog: String,
    path: CString,
    /// Pointers into `args`, which are kept for them.
    argv: CArray,
    _args: Vec<CString>,
    env: Arc<CEnv>,
}

impl Prepared {
    pub fn new(argv: &[String], env: &[(String, String)]) -> Result<Prepared, SpawnError> {
        Prepared::with_env(argv, env, Arc::new(CEnv::new(env)?))
    }

    /// With `c_env`, built from `env` and shared with other starts.
    pub fn with_env(
        argv: &[String],
        env: &[(String, String)],
        c_env: Arc<CEnv>,
    ) -> Result<Prepared, SpawnError> {
        let Some(prog) = argv.first() else {
            return Err(SpawnError {
                code: 127,
                reason: "empty command".into(),
            });
        };
        let args = c_strings(argv.iter().map(String::as_str), "argument")?;
        Ok(Prepared {
            prog: prog.clone(),
            path: resolve(prog, env)?,
            argv: CArray::new(args.iter().map(CString::as_c_str)),
            _args: args,
            env: c_env,
        })
    }
}

/// An environment as `execve` takes it. It has a `CONTAINERPILOT_{JOB}_PID`
/// for every running job, so it grows with the jobs: the health checks
/// share one rather than each keep a copy (memory that grew with jobs ×
/// checks).
pub struct CEnv {
    /// Pointers into `vars`, which are kept for them.
    envp: CArray,
    _vars: Vec<CString>,
}

impl CEnv {
    pub fn new(env: &[(String, String)]) -> Result<CEnv, SpawnError> {
        let vars = c_strings(
            env.iter().map(|(k, v)| format!("{k}={v}")),
            "environment variable",
        )?;
        Ok(CEnv {
            envp: CArray::new(vars.iter().map(CString::as_c_str)),
            _vars: vars,
        })
    }
}

/// Start a prepared command, its output going where `output` says.
pub fn start(p: &Prepared, output: Output, on_exit: OnExit) -> Result<Child, SpawnError> {
    let (prog, path, argv, envp) = (&p.prog, &p.path, &p.argv, &p.env.envp);
    let null = dev_null().map_err(|e| SpawnError {
        code: code_of(&e),
        reason: format!("cannot open /dev/null: {e} (processes get their stdin from it)"),
    })?;
    let out = match output {
        Output::Inherit => None,
        Output::Pipes | Output::Merged => Some(pipe().map_err(pipe_error)?),
    };
    let err = match output {
        Output::Pipes => Some(pipe().map_err(pipe_error)?),
        Output::Inherit | Output::Merged => None,
    };
    let fds = [
        null.as_raw_fd(),
        out.as_ref().map_or(-1, |(_, w)| w.as_raw_fd()),
        // Merged: stderr into the same pipe as stdout.
        err.as_ref()
            .or(out.as_ref())
            .map_or(-1, |(_, w)| w.as_raw_fd()),
    ];
    let started = reaper::spawn(
        || {
            // SAFETY: `argv` and `envp` point into `p`, borrowed for the
            // call; the descriptors are open and above 2 (see `pipe`).
            let pid = unsafe { vfork::spawn(path, argv, envp, fds)? };
            Ok((pid, ()))
        },
        on_exit,
    );
    match started {
        Ok((pid, ())) => {
            // The write ends go with the child: the parent's copies close
            // here, so that end of file means every writer is gone.
            Ok(Child {
                pid,
                stdout: out.map(|(r, _)| r),
                stderr: err.map(|(r, _)| r),
            })
        }
        Err(e) => Err(explain(prog, Path::new(&*path.to_string_lossy()), &e)),
    }
}

/// `/dev/null`, opened once: every child's stdin is a copy of it.
fn dev_null() -> io::Result<BorrowedFd<'static>> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_fd());
    }
    let file = File::open("/dev/null")?;
    let fd = NULL.get_or_init(|| OwnedFd::from(file));
    Ok(fd.as_fd())
}

/// A pipe whose read end is non-blocking (for the poll loop) and whose
/// ends are never below fd 3: a `dup2` onto itself would keep its
/// close-on-exec flag, and the child would lose its stdout.
fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC)?;
    fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    let high = |fd: OwnedFd| -> nix::Result<OwnedFd> {
        if fd.as_raw_fd() > 2 {
            return Ok(fd);
        }
        let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that we own.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    };
    Ok((high(r)?, high(w)?))
}

fn pipe_error(e: nix::Error) -> SpawnError {
    SpawnError {
        code: 126,
        reason: format!("cannot create a pipe for its output: {e}"),
    }
}

/// Arguments or variables as C strings; one with a NUL byte cannot be
/// passed to a process at all.
fn c_strings<S: Into<Vec<u8>>>(
    items: impl Iterator<Item = S>,
    what: &str,
) -> Result<Vec<CString>, SpawnError> {
    items
        .map(|s| {
            CString::new(s).map_err(|_| SpawnError {
                code: 126,
                reason: format!("an {what} contains a NUL byte"),
            })
        })
        .collect()
}

fn code_of(e: &io::Error) -> i32 {
    if e.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// The program to execute: as written if it contains a `/`, else the first
/// executable file of that name in the child's `PATH`.
fn resolve(prog: &str, env: &[(String, String)]) -> Result<CString, SpawnError> {
    let path = find(prog, env)?;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| SpawnError {
        code: 126,
        reason: format!("exec {prog:?}: the program's name contains a NUL byte"),
    })
}

fn find(prog: &str, env: &[(String, String)]) -> Result<PathBuf, SpawnError> {
    if prog.contains('/') {
        return Ok(PathBuf::from(prog));
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let mut denied = None;
    for dir in path.split(':') {
        // An empty entry means the current directory, as in every shell.
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(prog);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(m) if m.is_file() => denied = denied.or(Some(candidate)),
            _ => {}
        }
    }
    match denied {
        Some(file) => Err(SpawnError {
            code: 126,
            reason: format!("exec {prog:?}: {} is not executable", file.display()),
        }),
        None => Err(SpawnError {
            code: 127,
            reason: format!("exec {prog:?}: executable file not found in $PATH"),
        }),
    }
}

/// Turn a failed exec into a reason that names what is really wrong.
fn explain(prog: &str, path: &Path, e: &io::Error) -> SpawnError {
    let code = code_of(e);
    let reason = match e.kind() {
        io::ErrorKind::NotFound if path.exists() => match missing_interpreter(path) {
            Some(Interp::Script(i)) => {
                format!("exec {prog:?}: its interpreter {i:?} (from its #! line) does not exist")
            }
            Some(Interp::Loader(i)) => format!(
                "exec {prog:?}: its program interpreter (dynamic loader) {i:?} does not exist"
            ),
            None => format!("exec {prog:?}: {e}"),
        },
        io::ErrorKind::NotFound => format!("exec {prog:?}: no such file or directory"),
        io::ErrorKind::PermissionDenied => format!("exec {prog:?}: permission denied"),
        _ if path.is_dir() => format!("exec {prog:?}: is a directory"),
        _ => format!("exec {prog:?}: {e}"),
    };
    SpawnError { code, reason }
}

enum Interp {
    Script(String),
    Loader(String),
}

/// The `#!` interpreter or ELF dynamic loader of `path`, when that file is
/// what is missing (the kernel reports ENOENT for the program then).
fn missing_interpreter(path: &Path) -> Option<Interp> {
    let mut head = Vec::with_capacity(4096);
    File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|b| *b == b'\n').next()?;
        let text = String::from_utf8_lossy(line);
        let interp = text.split_whitespace().next()?.to_string();
        return (!Path::new(&interp).exists()).then_some(Interp::Script(interp));
    }
    let interp = elf_interpreter(path)?;
    (!Path::new(&interp).exists()).then_some(Interp::Loader(interp))
}

/// The PT_INTERP of an ELF file (32 or 64 bit, either byte order).
fn elf_interpreter(path: &Path) -> Option<String> {
    let data = std::fs::read(path).ok()?;
    if data.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = *data.get(4)? == 2;
    let little = *data.get(5)? == 1;
    let num = |at: usize, len: usize| -> Option<u64> {
        let b = data.get(at..at.checked_add(len)?)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if little { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | byte as u64;
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?)
    } else {
        (num(0x1c, 4)?, num(0x2a, 2)?, num(0x2c, 2)?)
    };
    for i in 0..phnum.min(256) {
        let ph = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if num(ph, 4)? != 3 {
            continue; // not PT_INTERP
        }
        let (offset, size) = if wide {
            (num(ph + 0x08, 8)?, num(ph + 0x20, 8)?)
        } else {
            (num(ph + 0x04, 4)?, num(ph + 0x10, 4)?)
        };
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size.min(4096)).ok()?)?;
        let raw = data.get(start..end)?;
        let raw = raw.split(|b| *b == 0).next()?;
        return Some(String::from_utf8_lossy(raw).into_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env(path: &str) -> Vec<(String, String)> {
        vec![("PATH".into(), path.into())]
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cp-spawn-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// What a child sees of its start: stdin, signal state, process
    /// group, environment. The vfork child sets these up on our memory
    /// before execve, so each is checked from inside the child.
    #[test]
    fn a_child_starts_clean_in_its_own_group() {
        let argv: Vec<String> = [
            "/bin/sh",
            "-c",
            "grep -E '^(SigBlk|SigIgn)' /proc/self/status; \
             echo pgid=$(cut -d' ' -f5 /proc/$$/stat) pid=$$; \
             echo only=$ONLY; cat; echo err >&2",
        ]
        .map(String::from)
        .to_vec();
        let vars = vec![("ONLY".to_string(), "this".to_string())];
        let spec = Spec {
            argv: &argv,
            env: &vars,
            capture: true,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let child = spawn(
            &spec,
            Box::new(move |pid, code| {
                let _ = tx.send((pid, code));
            }),
        )
        .expect("starts");
        let read_all = |fd: Option<OwnedFd>| {
            let mut f = File::from(fd.expect("piped"));
            fcntl(&f, FcntlArg::F_SETFL(OFlag::empty())).unwrap();
            let mut text = String::new();
            f.read_to_string(&mut text).unwrap();
            text
        };
        let out = read_all(child.stdout);
        let err = read_all(child.stderr);
        reaper::reap_exiting(child.pid);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let exit = loop {
            reaper::reap_all();
            if let Ok(e) = rx.try_recv() {
                break e;
            }
            assert!(std::time::Instant::now() < deadline, "no exit reported");
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert_eq!(exit, (child.pid, 0));
        assert!(out.contains("SigBlk:\t0000000000000000"), "{out}");
        // SIGPIPE (13) at its default though the Rust runtime ignores it
        // here; what our own parent ignored stays ignored, as with
        // posix_spawn.
        let ignored = out
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:\t"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .expect("SigIgn line");
        assert_eq!(ignored & (1 << (13 - 1)), 0, "{out}");
        let pid = child.pid;
        assert!(out.contains(&format!("pgid={pid} pid={pid}")), "{out}");
        assert!(out.contains("only=this"), "{out}");
        assert_eq!(err, "err\n");
    }

    #[test]
    fn programs_are_found_in_the_childs_path() {
        let d = tmp("path");
        let prog = d.join("hello");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("/nonexistent:{}", d.display());
        assert_eq!(find("hello", &env(&path)).unwrap(), prog);
        assert_eq!(find("./x", &env(&path)).unwrap(), PathBuf::from("./x"));
        let e = find("nope", &env(&path)).unwrap_err();
        assert_eq!(e.code, 127);
        assert_eq!(
            e.reason,
            r#"exec "nope": executable file not found in $PATH"#
        );
    }

    #[test]
    fn a_file_without_exec_permission_is_126_naming_it() {
        let d = tmp("noexec");
        std::fs::write(d.join("data"), "x").unwrap();
        let e = find("data", &env(&d.display().to_string())).unwrap_err();
        assert_eq!(e.code, 126);
        assert!(e.reason.contains("is not executable"), "{}", e.reason);
    }

    #[test]
    fn a_missing_script_interpreter_is_named() {
        let d = tmp("interp");
        let prog = d.join("run.sh");
        std::fs::write(&prog, "#!/no/such/shell -e\necho hi\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let argv = vec![prog.display().to_string()];
        let spec = Spec {
            argv: &argv,
            env: &env("/bin"),
            capture: true,
        };
        let e = spawn(&spec, Box::new(|_, _| {})).err().expect("fails");
        assert_eq!(e.code, 127);
        assert!(e.reason.contains("\"/no/such/shell\""), "{}", e.reason);
    }

    #[test]
    fn the_loader_of_a_real_binary_is_read() {
        // Whatever this machine's /bin/sh is, a dynamic one names a loader
        // that exists; a static one has none.
        if let Some(i) = elf_interpreter(Path::new("/bin/sh")) {
            assert!(Path::new(&i).exists(), "{i}");
        }
        assert_eq!(elf_interpreter(Path::new("/etc/hostname")), None);
    }

    #[test]
    fn a_missing_program_with_a_slash_says_so() {
        let argv = vec!["/no/such/program".to_string()];
        let spec = Spec {
            argv: &argv,
            env: &[],
            capture: false,
        };
        let e = spawn(&spec, Box::new(|_, _| {})).err().expect("fails");
        assert_eq!(e.code, 127);
        assert_eq!(
            e.reason,
            r#"exec "/no/such/program": no such file or directory"#
        );
        let empty: Vec<String> = vec![];
        let spec = Spec {
            argv: &empty,
            env: &[],
            capture: false,
        };
        assert_eq!(spawn(&spec, Box::new(|_, _| {})).err().unwrap().code, 127);
    }
}
