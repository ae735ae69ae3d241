//! The static binary in an otherwise empty root file system, as PID 1 of a
//! fresh PID namespace (SPEC §8: "runs in an empty root file system"): a job,
//! a health check, the control socket used from inside the same root,
//! telemetry on loopback, then SIGTERM and a clean, zombie-free exit.
//!
//! Needs the static binary (`scripts/test` builds it with
//! `scripts/build-static` and passes it in `CONTAINERPILOT_STATIC_BIN`), a
//! static busybox (Debian `busybox-static`) for the job scripts, and root.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::Signal;

use crate::support::*;

/// Where `unshare` and `chroot` are; inside the root only /bin exists.
const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the scratch test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    if std::env::var_os("CONTAINERPILOT_STATIC_BIN").is_none() {
        return Some("CONTAINERPILOT_STATIC_BIN is not set (scripts/test builds the static binary and sets it)".into());
    }
    if !nix::unistd::Uid::effective().is_root() {
        return Some("needs root for chroot and a PID namespace".into());
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Some("no /bin/busybox (Debian package busybox-static)".into());
    }
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output();
    match probe {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "unshare --pid failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run unshare: {e}")),
    }
}

/// An empty root with only the binary, busybox, /dev/null and empty dirs.
fn scratch_root(dir: &Dir) -> PathBuf {
    let root = dir.path("root");
    for d in ["bin", "etc", "tmp", "proc", "dev", "var/run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let bin = std::env::var("CONTAINERPILOT_STATIC_BIN").unwrap();
    std::fs::copy(&bin, root.join("bin/containerpilot")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "true", "cat", "seq"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    // Every container runtime provides /dev/null; children's stdin is it.
    let null = root.join("dev/null");
    nix::sys::stat::mknod(
        &null,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    root
}

/// The supervisor, killed with its tree on drop.
struct Pid1(Child);

impl Drop for Pid1 {
    fn drop(&mut self) {
        kill_tree(self.0.id() as i32);
        let _ = self.0.wait();
    }
}

fn inside(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new("chroot")
        .arg(root)
        .arg("/bin/containerpilot")
        .args(args)
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .output()
        .unwrap()
}

#[test]
fn static_binary_runs_as_pid_1_in_an_empty_root() {
    if let Some(why) = unavailable() {
        skip(&format!(
            "static_binary_runs_as_pid_1_in_an_empty_root: {why}"
        ));
        return;
    }
    let dir = Dir::new("scratch");
    let root = scratch_root(&dir);
    let port = free_port();
    std::fs::write(
        root.join("etc/containerpilot.json5"),
        format!(
            r#"{{
  control: {{ socket: "/var/run/containerpilot.socket" }},
  logging: {{ level: "DEBUG", format: "json", output: "/tmp/cp.log" }},
  stopTimeout: "2s",
  telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"],
                metrics: [{{ name: "scratch_hits", help: "Hits.", type: "counter" }}] }},
  jobs: [
    {{ name: "app", exec: ["/bin/sh", "-c", "echo pid1=$CONTAINERPILOT_PID; exec sleep 1000"],
       health: {{ exec: "/bin/true", interval: "100ms" }} }},
    {{ name: "orphans", exec: ["/bin/sh", "-c", "for i in $(seq 50); do (sleep 0.05 &); done"],
       when: {{ source: "app", once: "healthy" }} }},
    {{ name: "probe", exec: ["/bin/sh", "-c", "echo PROBE=$PROBE"], when: {{ source: "SIGHUP" }} }},
  ]
}}"#
        ),
    )
    .unwrap();
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--root"])
        .arg(&root)
        .args([
            "/bin/containerpilot",
            "-config",
            "/etc/containerpilot.json5",
        ])
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut pid1 = Pid1(child);
    let log = || std::fs::read_to_string(root.join("tmp/cp.log")).unwrap_or_default();
    let logged = |text: &str| log().contains(text);
    wait_until(TIMEOUT, "the app job ran as a child of PID 1", || {
        logged("pid1=1")
    });
    wait_until(TIMEOUT, "the health check passed", || {
        logged("event: app.healthy")
    });
    wait_until(TIMEOUT, "the orphans job finished", || {
        logged("event: orphans.exitSuccess")
    });

    // The client subcommands from inside the same root.
    let out = inside(&root, &["-config", "/etc/containerpilot.json5", "-ping"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{out:?}\n{}",
        log()
    );
    let out = inside(
        &root,
        &[
            "-config",
            "/etc/containerpilot.json5",
            "-putenv",
            "PROBE=from-scratch",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = inside(
        &root,
        &[
            "-config",
            "/etc/containerpilot.json5",
            "-putmetric",
            "scratch_hits=3",
        ],
    );
    assert!(out.status.success(), "{out:?}");

    // Telemetry on loopback.
    let metrics = http_get(&format!("127.0.0.1:{port}"), "/metrics");
    assert!(
        metrics.body.contains("\nscratch_hits 3\n"),
        "{}",
        metrics.body
    );

    // containerpilot is the first descendant named so; PID 1 inside.
    let outer = pid1.0.id() as i32;
    let cp = std::iter::once(outer)
        .chain(descendants(outer))
        .find(|p| stat(*p).is_some_and(|(_, _, _, c)| c == "containerpilot"))
        .expect("containerpilot under unshare");
    Command::new("kill")
        .args(["-HUP", &cp.to_string()])
        .status()
        .unwrap();
    wait_until(
        TIMEOUT,
        "the probe saw the env set from inside the root",
        || logged("PROBE=from-scratch"),
    );

    wait_until(TIMEOUT, "no zombies under PID 1", || {
        descendants(cp)
            .iter()
            .all(|p| stat(*p).is_some_and(|(_, _, state, _)| state != 'Z'))
    });

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(cp), Signal::SIGTERM).unwrap();
    let status = {
        let mut st = None;
        wait_until(TIMEOUT, "PID 1 exits after SIGTERM", || {
            st = pid1.0.try_wait().unwrap();
            st.is_some()
        });
        st.unwrap()
    };
    assert_eq!(status.code(), Some(0), "{}", log());
    assert!(logged("containerpilot stopped"), "{}", log());
    assert!(
        !root.join("var/run/containerpilot.socket").exists(),
        "socket removed"
    );
}

#[test]
fn regression_without_dev_null_the_error_names_dev_null() {
    // A bare chroot made every spawn fail with `exec "sh": No such file or
    // directory`, naming the wrong file (issue #12).
    if let Some(why) = unavailable() {
        skip(&format!(
            "regression_without_dev_null_the_error_names_dev_null: {why}"
        ));
        return;
    }
    let dir = Dir::new("scratch-nonull");
    let root = scratch_root(&dir);
    std::fs::remove_file(root.join("dev/null")).unwrap();
    std::fs::write(
        root.join("etc/containerpilot.json5"),
        r#"{
  control: { socket: "/var/run/containerpilot.socket" },
  jobs: [
    { name: "app", exec: "sh -c true" },
    { name: "script", exec: "/bin/missing-interpreter.sh" },
  ]
}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("bin/missing-interpreter.sh"),
        "#!/bin/bash\necho hi\n",
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("bin/missing-interpreter.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = Command::new("chroot")
        .arg(&root)
        .args([
            "/bin/containerpilot",
            "-config",
            "/etc/containerpilot.json5",
        ])
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("cannot start job[app]: cannot open /dev/null"),
        "{text}"
    );
    assert!(
        text.contains("cannot start job[script]: cannot open /dev/null"),
        "{text}"
    );
    // With /dev/null back, the script's real problem is named: its interpreter.
    nix::sys::stat::mknod(
        &root.join("dev/null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let out = Command::new("chroot")
        .arg(&root)
        .args([
            "/bin/containerpilot",
            "-config",
            "/etc/containerpilot.json5",
        ])
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(r#"its interpreter "/bin/bash""#), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
}
