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
//! hundreds of jobs superlinear. With an absolute path std uses
//! `posix_spawn` (a vfork), whose cost does not grow with the parent.
//!
//! When a process cannot be started the error names the file that is
//! actually missing: the program, its `#!` interpreter, its dynamic
//! loader, or `/dev/null`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::reaper::{self, OnExit};

/// Where a child's `PATH` points when its environment has none (Docker's
/// default for containers).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
    let Some((prog, args)) = spec.argv.split_first() else {
        return Err(SpawnError {
            code: 127,
            reason: "empty command".into(),
        });
    };
    let path = resolve(prog, spec.env)?;
    // std opens /dev/null itself and would report only "No such file or
    // directory", as if the program were missing (a bare chroot lacks it).
    let null = File::open("/dev/null").map_err(|e| SpawnError {
        code: code_of(&e),
        reason: format!("cannot open /dev/null: {e} (processes get their stdin from it)"),
    })?;
    let mut cmd = Command::new(&path);
    cmd.arg0(prog)
        .args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .process_group(0)
        .stdin(Stdio::from(null));
    if spec.capture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    }
    let started = reaper::spawn(
        || {
            let mut child = cmd.spawn()?;
            let out = child.stdout.take().map(OwnedFd::from);
            let err = child.stderr.take().map(OwnedFd::from);
            // Dropping `child` neither waits nor kills: the reaper owns its exit.
            Ok((child.id(), (out, err)))
        },
        on_exit,
    );
    match started {
        Ok((pid, (stdout, stderr))) => {
            for fd in stdout.iter().chain(stderr.iter()) {
                let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
            }
            Ok(Child {
                pid,
                stdout,
                stderr,
            })
        }
        Err(e) => Err(explain(prog, &path, &e)),
    }
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
fn resolve(prog: &str, env: &[(String, String)]) -> Result<PathBuf, SpawnError> {
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

    #[test]
    fn programs_are_found_in_the_childs_path() {
        let d = tmp("path");
        let prog = d.join("hello");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("/nonexistent:{}", d.display());
        assert_eq!(resolve("hello", &env(&path)).unwrap(), prog);
        assert_eq!(resolve("./x", &env(&path)).unwrap(), PathBuf::from("./x"));
        let e = resolve("nope", &env(&path)).unwrap_err();
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
        let e = resolve("data", &env(&d.display().to_string())).unwrap_err();
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
