//! The per-job API on the control socket (SPEC §4.1): listing jobs, start,
//! stop, restart, signal, and their output with `logs` and `logs?follow=1`,
//! against the real binary and real processes.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

fn daemon(dir: &Dir, jobs: &str) -> Daemon {
    let cfg = dir.cfg().stop_timeout("2s").jobs(jobs).write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    d
}

fn get(dir: &Dir, path: &str) -> Response {
    uds_request(&dir.socket(), "GET", path, "")
}

fn post(dir: &Dir, path: &str, body: &str) -> Response {
    uds_request(&dir.socket(), "POST", path, body)
}

/// The one job of that name, as `GET /v3/jobs/NAME` shows it.
fn job(dir: &Dir, name: &str) -> Value {
    let r = get(dir, &format!("/v3/jobs/{name}"));
    assert_eq!(r.status, 200, "{r:?}");
    let jobs = r.json()["jobs"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1, "{r:?}");
    jobs[0].clone()
}

/// Wait until the job is in `state` (and, for `running`, its pid is known:
/// the state changes when the process is asked for, the pid comes once it
/// runs).
fn wait_state(dir: &Dir, name: &str, state: &str) -> Value {
    let mut last = Value::Null;
    if !poll_until(TIMEOUT, || {
        last = job(dir, name);
        last["state"] == state && (state != "running" || last["pid"].is_u64())
    }) {
        panic!("job {name} never reached state {state}: {last}");
    }
    last
}

fn error_of(r: &Response) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn jobs_are_listed_with_their_state() {
    let dir = Dir::new("jobs-list");
    let _d = daemon(
        &dir,
        r#"[{ name: "app", exec: "sleep 1000" },
            { name: "once", exec: "true" },
            { name: "later", exec: "true", when: { source: "app", once: "healthy" } }]"#,
    );
    let app = wait_state(&dir, "app", "running");
    assert!(app["pid"].as_u64().is_some(), "{app}");
    assert_eq!(
        (app["runs"].as_u64(), app["restarts"].as_u64()),
        (Some(1), Some(0))
    );
    wait_state(&dir, "once", "completed");
    assert_eq!(job(&dir, "later")["state"], "idle");
    let all = get(&dir, "/v3/jobs").json();
    let names: Vec<&str> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "once", "later"]);
    let r = get(&dir, "/v3/jobs/nope");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(error_of(&r).contains("nope"), "{r:?}");
}

#[test]
fn wrong_methods_and_unknown_paths() {
    let dir = Dir::new("jobs-405");
    let _d = daemon(&dir, r#"[{ name: "app", exec: "sleep 1000" }]"#);
    let r = get(&dir, "/v3/jobs/app/stop");
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = post(&dir, "/v3/jobs", "");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(get(&dir, "/v3/jobs/app/nothing").status, 404);
    assert_eq!(post(&dir, "/v3/jobs/nope/stop", "").status, 404);
}

#[test]
fn stop_holds_a_job_until_start_and_runs_its_stop_events() {
    let dir = Dir::new("jobs-stop");
    let marks = dir.p("marks");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: "sleep 1000", restarts: "unlimited" }},
                {{ name: "pre", exec: {pre}, when: {{ source: "app", each: "stopping" }} }},
                {{ name: "keep", exec: "sleep 1000" }}]"#,
            pre = dir.sh("pre", &format!("echo pre >> {marks}")),
        ),
    );
    let pid = wait_state(&dir, "app", "running")["pid"].as_i64().unwrap() as i32;
    let r = post(&dir, "/v3/jobs/app/stop", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["updated"], true);
    // The reply comes once the process is gone.
    assert!(!alive(pid), "process {pid} still there after the reply");
    assert_eq!(job(&dir, "app")["state"], "stopped");
    assert_eq!(dir.lines("marks"), ["pre"], "the stopping hook ran");
    d.wait_event("app.stopped", 1);
    // Not restarted, although restarts are unlimited.
    assert_eq!(job(&dir, "app")["runs"], 1);
    let again = post(&dir, "/v3/jobs/app/stop", "");
    assert_eq!(again.json()["updated"], false, "{again:?}");
    let r = post(&dir, "/v3/jobs/app/start", "");
    assert_eq!((r.status, r.json()["updated"].as_bool()), (200, Some(true)));
    let app = wait_state(&dir, "app", "running");
    assert_eq!(
        (app["runs"].as_u64(), app["restarts"].as_u64()),
        (Some(2), Some(0))
    );
    let r = post(&dir, "/v3/jobs/app/start", "");
    assert_eq!(r.json()["updated"], false, "already running: {r:?}");
}

#[test]
fn a_stopped_job_stays_stopped_across_a_reload_that_keeps_it() {
    let dir = Dir::new("jobs-reload");
    let jobs = r#"[{ name: "app", exec: "sleep 1000" }, { name: "other", exec: "sleep 1000" }]"#;
    let _d = daemon(&dir, jobs);
    wait_state(&dir, "app", "running");
    assert_eq!(post(&dir, "/v3/jobs/app/stop", "").status, 200);
    let r = post(&dir, "/v3/reload", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(job(&dir, "app")["state"], "stopped");
    // Changed: a new job, running.
    let changed = dir
        .cfg()
        .stop_timeout("2s")
        .jobs(r#"[{ name: "app", exec: "sleep 999" }, { name: "other", exec: "sleep 1000" }]"#)
        .write();
    let _ = changed;
    assert_eq!(post(&dir, "/v3/reload", "").status, 200);
    wait_state(&dir, "app", "running");
}

#[test]
fn restart_is_not_counted_as_a_restart() {
    let dir = Dir::new("jobs-restart");
    let mut d = daemon(
        &dir,
        r#"[{ name: "app", exec: "sleep 1000", restarts: 0 }]"#,
    );
    let first = wait_state(&dir, "app", "running")["pid"].as_i64().unwrap();
    let r = post(&dir, "/v3/jobs/app/restart", "");
    assert_eq!((r.status, r.json()["updated"].as_bool()), (200, Some(true)));
    let app = wait_state(&dir, "app", "running");
    assert_ne!(app["pid"].as_i64().unwrap(), first);
    assert_eq!(
        (app["runs"].as_u64(), app["restarts"].as_u64()),
        (Some(2), Some(0))
    );
    d.wait_event("app.stopping", 1);
    d.wait_event("app.stopped", 1);
    d.wait_event("app.exitFailed", 1);
}

#[test]
fn signal_reaches_the_process_group() {
    let dir = Dir::new("jobs-signal");
    let marks = dir.p("marks");
    let app = dir.sh(
        "app",
        &format!("trap 'echo hup >> {marks}' HUP\necho ready >> {marks}\nwhile true; do sleep 0.05; done"),
    );
    let _d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: {app} }},
                {{ name: "idle", exec: "true", when: {{ source: "app", once: "exitSuccess" }} }}]"#
        ),
    );
    wait_until(TIMEOUT, "app ready", || {
        dir.lines("marks").contains(&"ready".into())
    });
    for sig in [r#""HUP""#, r#""SIGHUP""#, "1"] {
        let before = dir.lines("marks").len();
        let r = post(
            &dir,
            "/v3/jobs/app/signal",
            &format!(r#"{{"signal": {sig}}}"#),
        );
        assert_eq!(
            (r.status, r.json()["updated"].as_bool()),
            (200, Some(true)),
            "{sig}"
        );
        wait_until(TIMEOUT, "the trap ran", || {
            dir.lines("marks").len() > before
        });
    }
    let r = post(&dir, "/v3/jobs/app/signal", r#"{"signal": "SIGNOPE"}"#);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(error_of(&r).contains("SIGNOPE"), "{r:?}");
    assert_eq!(post(&dir, "/v3/jobs/app/signal", "{}").status, 400);
    let r = post(&dir, "/v3/jobs/idle/signal", r#"{"signal": "HUP"}"#);
    assert_eq!(r.status, 409, "no process: {r:?}");
}

#[test]
fn logs_show_the_last_lines_with_time_and_stream() {
    let dir = Dir::new("jobs-logs");
    let app = dir.sh(
        "app",
        "for i in 1 2 3 4 5; do echo out$i; done; echo err1 >&2; exec sleep 1000",
    );
    let _d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: {app}, logging: {{ keep: 4 }},
                   health: {{ exec: "echo checked", interval: "100ms" }} }},
                {{ name: "mute", exec: "echo hidden", logging: {{ keep: 0 }} }}]"#
        ),
    );
    let mut body = String::new();
    wait_until(TIMEOUT, "the check's line is kept", || {
        body = get(&dir, "/v3/jobs/app/logs").body;
        body.contains(" check checked")
    });
    let lines: Vec<&str> = body.lines().collect();
    assert!(lines.len() <= 4, "keep: 4\n{body}");
    for l in &lines {
        let (time, rest) = default_line(l).unwrap_or_else(|| panic!("bad line {l:?}"));
        assert!(!time.is_empty());
        let stream = rest.split(' ').next().unwrap();
        assert!(["stdout", "stderr", "check"].contains(&stream), "{l}");
    }
    let r = get(&dir, "/v3/jobs/app/logs?n=1");
    assert_eq!(r.body.lines().count(), 1, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    for bad in ["n=0", "n=x", "n=-1", "follow=maybe"] {
        let r = get(&dir, &format!("/v3/jobs/app/logs?{bad}"));
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    let r = get(&dir, "/v3/jobs/mute/logs");
    assert_eq!((r.status, r.body.as_str()), (200, ""), "keep: 0");
}

#[test]
fn logs_before_the_restart_are_kept_after_it() {
    let dir = Dir::new("jobs-logs-restart");
    let app = dir.sh("app", "echo run$$; exec sleep 1000");
    let _d = daemon(&dir, &format!(r#"[{{ name: "app", exec: {app} }}]"#));
    wait_until(TIMEOUT, "first run printed", || {
        get(&dir, "/v3/jobs/app/logs").body.contains("run")
    });
    assert_eq!(post(&dir, "/v3/jobs/app/restart", "").status, 200);
    wait_until(TIMEOUT, "second run printed", || {
        get(&dir, "/v3/jobs/app/logs")
            .body
            .matches("stdout run")
            .count()
            == 2
    });
}

/// A `logs?follow=1` reader over a raw socket.
struct Follower {
    stream: UnixStream,
    seen: String,
    closed: bool,
}

impl Follower {
    fn open(dir: &Dir, name: &str) -> Follower {
        let mut stream = UnixStream::connect(dir.socket()).expect("connect");
        write!(
            stream,
            "GET /v3/jobs/{name}/logs?n=100&follow=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Follower {
            stream,
            seen: String::new(),
            closed: false,
        }
    }

    fn read_some(&mut self) {
        let mut buf = [0u8; 4096];
        match self.stream.read(&mut buf) {
            Ok(0) => self.closed = true,
            Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }

    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.seen.contains(text) {
            assert!(
                Instant::now() < deadline && !self.closed,
                "no {text:?} in the stream:\n{}",
                self.seen
            );
            self.read_some();
        }
    }

    fn wait_closed(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.closed {
            assert!(
                Instant::now() < deadline,
                "the stream stays open:\n{}",
                self.seen
            );
            self.read_some();
        }
    }
}

#[test]
fn follow_streams_new_lines_and_ends_with_the_job() {
    let dir = Dir::new("jobs-follow");
    let app = dir.sh(
        "app",
        "trap 'echo got-hup' HUP\necho first\nwhile true; do sleep 0.05; done",
    );
    let _d = daemon(
        &dir,
        &format!(r#"[{{ name: "app", exec: {app} }}, {{ name: "other", exec: "sleep 1000" }}]"#),
    );
    let mut f = Follower::open(&dir, "app");
    f.wait_for("HTTP/1.1 200");
    assert!(
        f.seen
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{}",
        f.seen
    );
    f.wait_for("stdout first");
    wait_state(&dir, "app", "running");
    assert_eq!(
        post(&dir, "/v3/jobs/app/signal", r#"{"signal": "HUP"}"#).status,
        200
    );
    f.wait_for("stdout got-hup");
    // A reload that removes the job ends the stream.
    dir.cfg()
        .stop_timeout("2s")
        .jobs(r#"[{ name: "other", exec: "sleep 1000" }]"#)
        .write();
    assert_eq!(post(&dir, "/v3/reload", "").status, 200);
    f.wait_closed();
    assert!(
        f.seen.ends_with("0\r\n\r\n"),
        "ends with the last chunk: {:?}",
        f.seen
    );
}

#[test]
fn followers_are_bounded_and_a_stuck_one_never_blocks_output() {
    let dir = Dir::new("jobs-follow-cap");
    let app = dir.sh("app", "i=0; while true; do i=$((i+1)); echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done");
    let mut d = daemon(
        &dir,
        &format!(r#"[{{ name: "app", exec: {app}, logging: {{ keep: 10 }} }}]"#),
    );
    let mut open: Vec<Follower> = (0..16).map(|_| Follower::open(&dir, "app")).collect();
    for f in &mut open {
        f.wait_for("HTTP/1.1 200");
    }
    let r = get(&dir, "/v3/jobs/app/logs?follow=1");
    assert_eq!(r.status, 503, "the 17th: {r:?}");
    // None of them reads from now on; the job keeps writing, and the
    // daemon keeps answering and logging.
    let before = d.count(|l| l.contains("line-"));
    wait_until(TIMEOUT, "output still flows", || {
        d.count(|l| l.contains("line-")) > before + 10_000
    });
    assert_eq!(get(&dir, "/v3/ping").status, 200);
    drop(open);
    // Their places come back.
    wait_until(TIMEOUT, "a follower may connect again", || {
        let mut f = Follower::open(&dir, "app");
        f.read_some();
        f.read_some();
        f.seen.starts_with("HTTP/1.1 200")
    });
}

#[test]
fn job_routes_are_counted_under_their_pattern() {
    let dir = Dir::new("jobs-metric");
    let port = free_port();
    let cfg = dir
        .cfg()
        .top(&format!(
            r#"telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"] }}"#
        ))
        .jobs(r#"[{ name: "app", exec: "sleep 1000" }]"#)
        .write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    assert_eq!(post(&dir, "/v3/jobs/nope/stop", "").status, 404);
    assert_eq!(get(&dir, "/v3/jobs/app").status, 200);
    let page = http_get(&format!("127.0.0.1:{port}"), "/metrics").body;
    assert!(
        page.contains(
            r#"containerpilot_control_http_requests{code="404",path="/v3/jobs/{name}/stop"} 1"#
        ),
        "{page}"
    );
    assert!(
        !page.contains("nope"),
        "a client cannot grow the series: {page}"
    );
    // The telemetry service cannot be stopped.
    let r = post(&dir, "/v3/jobs/containerpilot/stop", "");
    assert_eq!(r.status, 409, "{r:?}");
}

#[test]
fn posts_during_shutdown_are_refused_but_env_is_not() {
    let dir = Dir::new("jobs-shutdown");
    let app = dir.sh("app", "trap '' TERM\nwhile true; do sleep 0.05; done");
    let mut d = daemon(&dir, &format!(r#"[{{ name: "app", exec: {app} }}]"#));
    wait_state(&dir, "app", "running");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_event("app.stopping", 1);
    let r = post(&dir, "/v3/jobs/app/stop", "");
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (503, "shutting down"),
        "{r:?}"
    );
    assert_eq!(post(&dir, "/v3/reload", "").status, 503);
    assert_eq!(post(&dir, "/v3/environ", r#"{"A": "1"}"#).status, 200);
    assert_eq!(get(&dir, "/v3/jobs").status, 200);
}

#[test]
fn job_names_are_percent_decoded() {
    let dir = Dir::new("jobs-names");
    let _d = daemon(&dir, r#"[{ exec: ["/bin/sleep", "1000"] }]"#);
    let st = wait_state(&dir, "%2Fbin%2Fsleep", "running");
    assert_eq!(st["name"], "/bin/sleep");
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}
