//! The per-job and health subcommands (SPEC §1, §4.1, beyond 3.x): `-start`,
//! `-stop`, `-restart`, `-signal`, `-logs` (with `-n` and `-follow`),
//! `-status` and `-healthcheck`, run as the real binary against a real
//! daemon; and `-putenv`'s path (issue #12), checked against a stand-in
//! server that records what it was sent.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::*;

/// Run the binary with `-config` of `dir` plus `args`.
fn client(dir: &Dir, args: &[&str]) -> Output {
    let cfg = dir.p("cp.json5");
    let mut all = vec!["-config", cfg.as_str()];
    all.extend_from_slice(args);
    run(&all, &[])
}

/// The reply JSON a subcommand printed, asserting it exited 0.
fn printed_json(out: &Output) -> Value {
    assert_eq!(out.code, 0, "{out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{out}"))
}

/// The subcommand failed (exit 1) with the server's error text on stderr:
/// the same request sent by hand gives the text to look for.
fn assert_refused(out: &Output, socket: &Path, method: &str, path: &str, body: &str) {
    let r = uds_request(socket, method, path, body);
    assert!(r.status >= 400, "{method} {path} should fail: {r:?}");
    let text = r.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error text in {r:?}"))
        .to_string();
    assert_eq!(out.code, 1, "{method} {path}\n{out}");
    assert!(
        out.stderr.contains(&text),
        "stderr carries the server's error {text:?}\n{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
}

/// A usage error: one line naming the problem, one pointing at -help, exit 2.
fn assert_usage_error(out: &Output, mentions: &str) {
    assert_eq!(out.code, 2, "usage errors exit 2\n{out}");
    assert!(out.stdout.is_empty(), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains(mentions), "names {mentions:?}\n{out}");
    assert!(lines[1].contains("-help"), "{out}");
}

/// The job entries of `/v3/jobs/NAME`.
fn job(dir: &Dir, name: &str) -> Value {
    let path = format!("/v3/jobs/{}", encode(name));
    let r = uds_request(&dir.socket(), "GET", &path, "");
    assert_eq!(r.status, 200, "{path}: {r:?}");
    r.json()["jobs"][0].clone()
}

/// Percent-encoding for the test's own requests (the oracle's, not the client's).
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Start a daemon on `jobs` and wait until its socket answers.
fn daemon(dir: &Dir, jobs: &str) -> Daemon {
    let cfg = dir.cfg().stop_timeout("2s").jobs(jobs).write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    d
}

fn wait_state(d: &mut Daemon, dir: &Dir, name: &str, state: &str) -> Value {
    let mut entry = Value::Null;
    d.wait_for(&format!("job {name:?} {state}"), || {
        entry = job(dir, name);
        // A process is asked for before its pid is known.
        entry["state"] == state && (state != "running" || entry["pid"].is_u64())
    });
    entry
}

#[test]
fn stop_start_restart_round_trip() {
    let dir = Dir::new("roundtrip");
    // `keep` keeps the daemon up: a job stopped through the API counts as
    // completed, and when every job is, containerpilot exits (SPEC §3.7).
    let mut d = daemon(
        &dir,
        r#"[{ name: "web", exec: "sleep 1000" }, { name: "keep", exec: "sleep 1000" }]"#,
    );
    let first = wait_state(&mut d, &dir, "web", "running");

    let out = client(&dir, &["-stop", "web"]);
    assert_eq!(printed_json(&out)["updated"], true, "{out}");
    // The reply comes once the process is gone.
    let stopped = job(&dir, "web");
    assert_eq!(
        (stopped["state"].as_str(), stopped["pid"].as_i64()),
        (Some("stopped"), None),
        "{stopped}"
    );
    let out = client(&dir, &["-stop", "web"]);
    assert_eq!(printed_json(&out)["updated"], false, "{out}");

    let out = client(&dir, &["-start", "web"]);
    assert_eq!(printed_json(&out)["updated"], true, "{out}");
    let started = wait_state(&mut d, &dir, "web", "running");
    assert_ne!(started["pid"], first["pid"], "a new process");
    let out = client(&dir, &["--start=web"]);
    assert_eq!(
        printed_json(&out)["updated"],
        false,
        "already running\n{out}"
    );

    let out = client(&dir, &["-restart", "web"]);
    assert_eq!(printed_json(&out)["updated"], true, "{out}");
    let restarted = wait_state(&mut d, &dir, "web", "running");
    assert!(
        restarted["pid"].as_i64().is_some() && restarted["pid"] != started["pid"],
        "restarted: {restarted}, before: {started}"
    );
    terminate(&mut d);
}

#[test]
fn unknown_jobs_and_refusals_print_the_server_error() {
    let dir = Dir::new("unknown");
    let mut d = daemon(
        &dir,
        r#"[{ name: "web", exec: "sleep 1000" }, { name: "hook", when: { source: "web", once: "healthy" }, exec: "true" }]"#,
    );
    wait_state(&mut d, &dir, "web", "running");
    let s = dir.socket();
    for action in ["start", "stop", "restart"] {
        let out = client(&dir, &[&format!("-{action}"), "nope"]);
        let path = format!("/v3/jobs/nope/{action}");
        assert_refused(&out, &s, "POST", &path, "");
    }
    let out = client(&dir, &["-signal", "nope=HUP"]);
    assert_refused(
        &out,
        &s,
        "POST",
        "/v3/jobs/nope/signal",
        r#"{"signal":"HUP"}"#,
    );
    let out = client(&dir, &["-logs", "nope"]);
    assert_refused(&out, &s, "GET", "/v3/jobs/nope/logs?n=100", "");
    let out = client(&dir, &["-logs", "nope", "-follow"]);
    assert_refused(&out, &s, "GET", "/v3/jobs/nope/logs?n=100", "");

    // An unknown signal (400) and a job with no process (409).
    let out = client(&dir, &["-signal", "web=SIGNOPE"]);
    assert_refused(
        &out,
        &s,
        "POST",
        "/v3/jobs/web/signal",
        r#"{"signal":"SIGNOPE"}"#,
    );
    let out = client(&dir, &["-signal", "hook=HUP"]);
    assert_refused(
        &out,
        &s,
        "POST",
        "/v3/jobs/hook/signal",
        r#"{"signal":"HUP"}"#,
    );
    terminate(&mut d);
}

#[test]
fn job_names_with_slashes_and_spaces_are_encoded() {
    let dir = Dir::new("encoded");
    let script = dir.script("app.sh", "exec sleep 1000");
    // Unnamed: the job is named after its first word, a path (SPEC §2.3).
    let jobs = format!(
        r#"[{{ exec: ["/bin/sh", {s}] }}, {{ name: "my job", exec: "sleep 1000" }}]"#,
        s = js(&script)
    );
    let mut d = daemon(&dir, &jobs);
    for name in ["/bin/sh", "my job"] {
        wait_state(&mut d, &dir, name, "running");
        let out = client(&dir, &["-stop", name]);
        assert_eq!(printed_json(&out)["updated"], true, "{name}\n{out}");
        wait_state(&mut d, &dir, name, "stopped");
        let out = client(&dir, &["-start", name]);
        assert_eq!(printed_json(&out)["updated"], true, "{name}\n{out}");
        wait_state(&mut d, &dir, name, "running");
    }
    terminate(&mut d);
}

#[test]
fn signal_reaches_a_job_that_traps_it() {
    let dir = Dir::new("signal");
    let body = format!(
        "trap 'echo hup >> {m}' HUP\ntrap 'echo usr1 >> {m}' USR1\necho ready > {r}\nwhile :; do sleep 0.1; done",
        m = dir.p("marker"),
        r = dir.p("ready"),
    );
    let jobs = format!(r#"[{{ name: "web", exec: {} }}]"#, dir.sh("web", &body));
    let mut d = daemon(&dir, &jobs);
    d.wait_for("the job's traps are set", || dir.exists("ready"));

    let out = client(&dir, &["-signal", "web=HUP"]);
    assert_eq!(printed_json(&out)["updated"], true, "{out}");
    d.wait_for("the job wrote hup", || dir.lines("marker") == ["hup"]);
    // With SIG, in any case, or by number (SIGUSR1 is 10 on Linux).
    let out = client(&dir, &["-signal=web=sigHup"]);
    assert_eq!(printed_json(&out)["updated"], true, "{out}");
    d.wait_for("the job wrote hup twice", || {
        dir.lines("marker") == ["hup", "hup"]
    });
    let out = client(&dir, &["-signal", "web=10"]);
    assert_eq!(printed_json(&out)["updated"], true, "{out}");
    d.wait_for("the job wrote usr1", || {
        dir.lines("marker") == ["hup", "hup", "usr1"]
    });
    terminate(&mut d);
}

#[test]
fn logs_prints_what_the_job_printed() {
    let dir = Dir::new("logs");
    let body = "echo one\necho two >&2\necho three\nexec sleep 1000";
    let jobs = format!(r#"[{{ name: "web", exec: {} }}]"#, dir.sh("web", body));
    let mut d = daemon(&dir, &jobs);
    let s = dir.socket();
    let mut kept = String::new();
    d.wait_for("the daemon kept all three lines", || {
        kept = uds_request(&s, "GET", "/v3/jobs/web/logs", "").body;
        kept.lines().count() == 3
    });

    let out = client(&dir, &["-logs", "web"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout, kept, "-logs prints the kept lines as served");
    for want in ["stdout one", "stderr two", "stdout three"] {
        let found = out
            .stdout
            .lines()
            .any(|l| default_line(l).is_some_and(|(_, rest)| rest == want));
        assert!(found, "a line `TIME {want}`\n{out}");
    }

    let last = kept.lines().last().expect("three lines");
    for args in [&["-logs", "web", "-n", "1"][..], &["-n=1", "-logs=web"]] {
        let out = client(&dir, args);
        assert_eq!(out.code, 0, "{args:?}\n{out}");
        assert_eq!(out.stdout, format!("{last}\n"), "{args:?}\n{out}");
    }
    terminate(&mut d);
}

/// A job that prints `ready` once its trap is set, then `got-hup` on each
/// SIGHUP.
fn hup_printer(dir: &Dir) -> String {
    let body = "trap 'echo got-hup' HUP\necho ready\nwhile :; do sleep 0.1; done";
    format!(r#"[{{ name: "web", exec: {} }}]"#, dir.sh("web", body))
}

/// `-logs web -follow` as a running process, its output read line by line.
fn follower(dir: &Dir) -> Daemon {
    let cfg = dir.p("cp.json5");
    Daemon::spawn(
        &[],
        &["-config", &cfg, "-logs", "web", "-follow"],
        &[],
        None,
    )
}

fn send_hup(dir: &Dir) {
    let r = uds_request(
        &dir.socket(),
        "POST",
        "/v3/jobs/web/signal",
        r#"{"signal": "HUP"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn logs_follow_streams_new_lines_and_exits_0_on_sigint() {
    let dir = Dir::new("follow");
    let mut d = daemon(&dir, &hup_printer(&dir));
    let s = dir.socket();
    d.wait_for("the daemon kept `ready`", || {
        uds_request(&s, "GET", "/v3/jobs/web/logs", "")
            .body
            .contains("stdout ready")
    });
    let mut f = follower(&dir);
    f.wait_line("the kept line", TIMEOUT, |l| l.ends_with(" stdout ready"));
    // Written after the follower started: it must arrive while it runs.
    send_hup(&dir);
    f.wait_line("the new line", TIMEOUT, |l| l.ends_with(" stdout got-hup"));
    send_hup(&dir);
    f.wait_line("another new line", TIMEOUT, |l| {
        l.ends_with(" stdout got-hup")
    });
    f.signal(Signal::SIGINT);
    let code = f.wait_exit(TIMEOUT);
    if code != 0 {
        f.fail(&format!("exit code {code} after SIGINT, want 0"));
    }
    terminate(&mut d);
}

#[test]
fn logs_follow_exits_0_when_the_daemon_goes_away() {
    let dir = Dir::new("followend");
    let mut d = daemon(&dir, &hup_printer(&dir));
    let mut f = follower(&dir);
    f.wait_line("the kept line", TIMEOUT, |l| l.ends_with(" stdout ready"));
    terminate(&mut d);
    let code = f.wait_exit(TIMEOUT);
    if code != 0 {
        f.fail(&format!(
            "exit code {code} after the daemon stopped, want 0"
        ));
    }
}

#[test]
fn status_prints_a_row_per_job() {
    let dir = Dir::new("status");
    let mut d = daemon(
        &dir,
        r#"[
          { name: "web", exec: "sleep 1000", health: { exec: "true", interval: "100ms" } },
          { name: "setup", exec: "true" },
          { name: "worker", exec: "sleep 1000" },
        ]"#,
    );
    d.wait_event("setup.stopped", 1);
    d.wait_event("web.healthy", 1);
    let out = client(&dir, &["-stop", "worker"]);
    assert_eq!(out.code, 0, "{out}");
    let web_pid = job(&dir, "web")["pid"].as_i64().expect("web runs");

    let out = client(&dir, &["-status"]);
    assert_eq!(out.code, 0, "{out}");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["JOB", "STATE", "STATUS", "PID", "RESTARTS", "LAST", "EXIT"],
            vec!["web", "running", "healthy", &web_pid.to_string(), "0", "-"],
            vec!["setup", "completed", "nonadvertised", "-", "0", "0"],
            vec!["worker", "stopped", "nonadvertised", "-", "0", "143"],
        ],
        "{out}"
    );
    // Aligned: every column starts at the same offset on every line.
    let lines: Vec<&str> = out.stdout.lines().collect();
    for col in ["STATE", "STATUS", "PID", "RESTARTS", "LAST EXIT"] {
        let at = lines[0].find(col).expect("header");
        for l in &lines[1..] {
            let before = &l[..at];
            assert!(
                before.ends_with("  ") && !l[at..].starts_with(' '),
                "column {col} starts at {at} in {l:?}\n{out}"
            );
        }
    }
    terminate(&mut d);
}

#[test]
fn healthcheck_exit_code_follows_the_health_report() {
    let dir = Dir::new("health");
    let mut d = daemon(
        &dir,
        r#"[
          { name: "web", exec: "sleep 1000", health: { exec: "true", interval: "100ms" } },
          { name: "sick", exec: "sleep 1000", health: { exec: "false", interval: "100ms" } },
        ]"#,
    );
    d.wait_event("web.healthy", 1);
    d.wait_event("sick.unhealthy", 1);
    let out = client(&dir, &["-healthcheck"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, "sick\n"), "{out}");

    // A job stopped through the API is not considered.
    assert_eq!(client(&dir, &["-stop", "sick"]).code, 0);
    let out = client(&dir, &["-healthcheck"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out}");

    // Validation errors in the config do not stop it: only the socket is read.
    let good = std::fs::read_to_string(dir.path("cp.json5")).unwrap();
    let broken = good.replace("sleep 1000", "sleep 1000\", restarts: \"sometimes");
    assert_ne!(broken, good);
    dir.write("cp.json5", &broken);
    assert_eq!(
        run(&["-validate", "-config", &dir.p("cp.json5")], &[]).code,
        1
    );
    let out = client(&dir, &["-healthcheck"]);
    assert_eq!(out.code, 0, "{out}");
    dir.write("cp.json5", &good);

    // Maintenance: unhealthy, naming every checked job still considered.
    assert_eq!(client(&dir, &["-maintenance", "enable"]).code, 0);
    let out = client(&dir, &["-healthcheck"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, "web\n"), "{out}");

    terminate(&mut d);
    let out = client(&dir, &["-healthcheck"]);
    assert_eq!(out.code, 1, "no socket\n{out}");
    assert!(out.stderr.contains(&dir.p("cp.sock")), "{out}");

    // A config that cannot be read: exit 1 as well (not 2: Docker
    // reserves 2), naming the file.
    let missing = dir.p("missing.json5");
    let out = run(&["-healthcheck", "-config", &missing], &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains(&missing), "{out}");
}

#[test]
fn unreachable_socket_is_named_by_every_subcommand() {
    let dir = Dir::new("nosock");
    dir.cfg().jobs(r#"[{ name: "web", exec: "true" }]"#).write();
    let sock = dir.p("cp.sock");
    for args in [
        &["-start", "web"][..],
        &["-stop", "web"],
        &["-restart", "web"],
        &["-signal", "web=HUP"],
        &["-logs", "web"],
        &["-logs", "web", "-follow"],
        &["-status"],
        &["-healthcheck"],
    ] {
        let out = client(&dir, args);
        assert_eq!(out.code, 1, "{args:?}\n{out}");
        assert!(out.stderr.contains(&sock), "{args:?} names {sock}\n{out}");
        assert!(out.stdout.is_empty(), "{args:?}\n{out}");
    }
}

#[test]
fn bad_values_of_the_new_flags_are_usage_errors() {
    for (args, mentions) in [
        (&["-signal", "web"][..], "-signal"),
        (&["-signal", "web="], "-signal"),
        (&["-signal", "=HUP"], "-signal"),
        (&["-logs", "web", "-n", "0"], "-n"),
        (&["-logs", "web", "-n", "x"], "-n"),
        (&["-logs", "web", "-n", "-3"], "-n"),
        (&["-logs", "web", "-n"], "-n"),
        (&["-n", "5"], "-logs"),
        (&["-follow"], "-logs"),
        (&["-start", ""], "-start"),
        (&["-stop="], "-stop"),
        (&["-logs", ""], "-logs"),
        (&["-start", "web", "-stop", "web"], "choose one"),
        (&["-status", "-healthcheck"], "choose one"),
        (&["-status=maybe"], "maybe"),
    ] {
        assert_usage_error(&run(args, &[]), mentions);
    }
}

/// Issue #12: `-putenv` posted to `/v3/env`, which a 3.x server does not
/// route; `/v3/environ` is routed by both.
#[test]
fn putenv_posts_to_environ() {
    let dir = Dir::new("environ");
    dir.cfg().write();
    let listener = UnixListener::bind(dir.socket()).expect("bind the stand-in socket");
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // The whole request: its head, then Content-Length bytes of body.
        loop {
            let n = s.read(&mut buf).expect("read the request");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= len || n == 0 {
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .expect("answer");
                    return (head.to_string(), body.to_string());
                }
            }
            assert!(n > 0, "the client closed mid-request: {text:?}");
        }
    });
    let out = client(&dir, &["-putenv", "A=1=2", "-putenv", "B"]);
    assert_eq!(out.code, 0, "{out}");
    let (head, body) = server.join().expect("the stand-in server");
    assert!(
        head.starts_with("POST /v3/environ HTTP/1.1\r\n"),
        "request head:\n{head}"
    );
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(body, serde_json::json!({"A": "1=2", "B": ""}));
}

/// No process can be given a value holding a NUL byte (argv cannot carry
/// one, but a hand-written request can): 400 naming the key.
#[test]
fn environ_refuses_a_nul_byte() {
    let dir = Dir::new("envnul");
    let mut d = daemon(&dir, r#"[{ name: "web", exec: "sleep 1000" }]"#);
    for path in ["/v3/environ", "/v3/env"] {
        let r = uds_request(
            &dir.socket(),
            "POST",
            path,
            r#"{"A": "x\u0000y", "B": "ok"}"#,
        );
        assert_eq!(r.status, 400, "{path}: {r:?}");
        let err = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(err.contains("\"A\""), "{path}: names the key: {err}");
    }
    terminate(&mut d);
}
