//! The control plane on the unix socket and the client subcommands (SPEC §1,
//! §3.5, §3.6, §4), against the real binary over the real socket.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::*;

/// A daemon with one long-running job, a job that prints `$PROBE` on each
/// SIGHUP, and DEBUG JSON logging.
fn probe_daemon(dir: &Dir) -> Daemon {
    let cfg = dir
        .cfg()
        .jobs(&format!(
            r#"[
              {{ name: "app", exec: {app} }},
              {{ name: "probe", exec: {probe}, when: {{ source: "SIGHUP" }} }},
            ]"#,
            app = dir.sh("app", "echo started; exec sleep 1000"),
            probe = dir.sh("probe", "echo \"PROBE=${PROBE-unset}\""),
        ))
        .write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    d
}

/// Trigger the probe job and return what it printed.
fn probe(d: &mut Daemon) -> String {
    let runs = d.events("probe.exitSuccess");
    d.signal(Signal::SIGHUP);
    let v = d.wait_json("probe output", TIMEOUT, |v| {
        v["job"] == "probe" && v["msg"].as_str().is_some_and(|m| m.starts_with("PROBE="))
    });
    // A SIGHUP while the probe still runs would be dropped: let it finish.
    d.wait_event("probe.exitSuccess", runs + 1);
    v["msg"].as_str().unwrap_or_default().to_string()
}

fn service<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no service {name} in {status}"))
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ping_answers_ok_with_content_length() {
    let dir = Dir::new("ping");
    let _d = probe_daemon(&dir);
    let r = uds_request(&dir.socket(), "GET", "/v3/ping", "");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    assert_eq!(r.header("content-length"), Some("2"));
    let out = run(&["-config", dir.p("cp.json5").as_str(), "-ping"], &[]);
    assert_eq!((out.code, out.stdout.trim()), (0, "ok"), "{out}");
}

#[test]
fn seed_curl_commands_work_verbatim() {
    let dir = Dir::new("curl");
    let mut d = probe_daemon(&dir);
    let sock = dir.p("cp.sock");
    let sock = sock.as_str();

    let (out, err) = curl(&["--unix-socket", sock, "http:/v3/ping"]);
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("\r\n\r\nok"),
        "{out}{err}"
    );

    let (out, err) = curl(&[
        "-XPOST",
        "-d",
        r#"{"ENV1": "value1", "ENV2": "value2", "ENV_TO_CLEAR": ""}"#,
        "--unix-socket",
        sock,
        "http:/v3/env",
    ]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}{err}");
    let (out, err) = curl(&[
        "-XPOST",
        "-d",
        r#"{"my_counter_metric": 2, "my_gauge_metric": 42.42}"#,
        "--unix-socket",
        sock,
        "http:/v3/environ",
    ]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}{err}");
    let (out, err) = curl(&[
        "-XPOST",
        "--unix-socket",
        sock,
        "http:/v3/maintenance/enable",
    ]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}{err}");
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap()["updated"],
        true,
        "{out}"
    );
    let (out, err) = curl(&["-XPOST", "--unix-socket", sock, "http:/v3/reload"]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}{err}");
    // The usual spelling works too.
    let (out, err) = curl(&["--unix-socket", sock, "http://localhost/v3/ping"]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}{err}");
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}

#[test]
fn wrong_method_unknown_path_and_big_bodies() {
    let dir = Dir::new("errors");
    let _d = probe_daemon(&dir);
    let s = dir.socket();

    let r = uds_request(&s, "GET", "/v3/env", "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert!(r.json()["error"].is_string());
    let r = uds_request(&s, "POST", "/v3/ping", "");
    assert_eq!(r.status, 405);
    assert!(
        r.header("allow").is_some_and(|a| a.contains("GET")),
        "{r:?}"
    );

    let r = uds_request(&s, "GET", "/v3/nothing", "");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());

    let big = format!("{{\"A\": \"{}\"}}", "x".repeat(70 * 1024));
    let r = uds_request(&s, "POST", "/v3/env", &big);
    assert_eq!(r.status, 413, "{r:?}");

    // A declared length over the limit is refused before any body is sent.
    let raw = uds_raw(
        &s,
        b"POST /v3/env HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n",
    );
    let r = parse_response(&raw).unwrap();
    assert_eq!(r.status, 413);

    for body in ["", "[1,2]", "\"x\"", "{nope", "42"] {
        let r = uds_request(&s, "POST", "/v3/env", body);
        assert_eq!(r.status, 400, "body {body:?}: {r:?}");
        assert!(r.json()["error"].is_string());
    }
    let r = uds_request(&s, "POST", "/v3/env", r#"{"1BAD": "x"}"#);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("1BAD"));
}

#[test]
fn env_reaches_later_processes_only_and_rejections_change_nothing() {
    let dir = Dir::new("env");
    let mut d = probe_daemon(&dir);
    let s = dir.socket();
    assert_eq!(probe(&mut d), "PROBE=unset");

    // One bad key among good ones: nothing applied.
    let r = uds_request(&s, "POST", "/v3/env", r#"{"PROBE": "one", "BAD-KEY": "x"}"#);
    assert_eq!(r.status, 400);
    assert_eq!(probe(&mut d), "PROBE=unset");

    let r = uds_request(&s, "POST", "/v3/env", r#"{"PROBE": "a=b c"}"#);
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(probe(&mut d), "PROBE=a=b c");

    // The process already running never sees it.
    let mut pid = 0;
    wait_until(TIMEOUT, "app running", || {
        pid = service(&status(&dir), "app")["pid"].as_i64().unwrap_or(0);
        pid != 0
    });
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(!String::from_utf8_lossy(&environ).contains("PROBE="));

    // Numbers are taken as their text; the subcommand sets and clears.
    let r = uds_request(&s, "POST", "/v3/env", r#"{"PROBE": 1e3}"#);
    assert_eq!(r.status, 200);
    assert_eq!(probe(&mut d), "PROBE=1000");
    let cfg = dir.p("cp.json5");
    let out = run(
        &[
            "-config",
            &cfg,
            "-putenv",
            "PROBE=x=y",
            "-putenv",
            "OTHER=1",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(probe(&mut d), "PROBE=x=y");
    let out = run(&["-config", &cfg, "-putenv", "PROBE"], &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(probe(&mut d), "PROBE=unset");
    let r = uds_request(&s, "POST", "/v3/env", r#"{"PROBE": "z"}"#);
    assert_eq!(r.status, 200);
    let r = uds_request(&s, "POST", "/v3/env", r#"{"PROBE": null}"#);
    assert_eq!(r.status, 200);
    assert_eq!(probe(&mut d), "PROBE=unset");

    // A bad name through the subcommand: the server's error, exit non-zero.
    let out = run(&["-config", &cfg, "-putenv", "NO-GOOD=1"], &[]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("NO-GOOD"), "{out}");
}

#[test]
fn maintenance_is_idempotent_and_publishes_events() {
    let dir = Dir::new("maint");
    let cfg = dir
        .cfg()
        .jobs(&format!(
            r#"[
              {{ name: "app", exec: "sleep 1000",
                 health: {{ exec: "true", interval: "100ms", timeout: "1s" }} }},
              {{ name: "on-enter", exec: {enter}, when: {{ source: "global", each: "enterMaintenance" }} }},
              {{ name: "on-exit", exec: {exit}, when: {{ each: "exitMaintenance" }} }},
            ]"#,
            enter = dir.sh("enter", "echo entered"),
            exit = dir.sh("exit", "echo exited"),
        ))
        .write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    d.wait_event("app.healthy", 1);
    let s = dir.socket();
    let maintenance = |arg: &str| {
        run(
            &["-config", dir.p("cp.json5").as_str(), "-maintenance", arg],
            &[],
        )
    };

    let r = uds_request(&s, "POST", "/v3/maintenance/enable", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), serde_json::json!({"updated": true}));
    d.wait_json("on-enter ran", TIMEOUT, |v| {
        v["job"] == "on-enter" && v["msg"] == "entered"
    });
    let st = status(&dir);
    assert_eq!(st["maintenance"], true);
    assert_eq!(service(&st, "app")["status"], "maintenance");

    let r = uds_request(&s, "POST", "/v3/maintenance/enable", "");
    assert_eq!(r.json(), serde_json::json!({"updated": false}));
    assert_eq!(d.events("global.enterMaintenance"), 1);

    let out = maintenance("disable");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap()["updated"],
        true,
        "{out}"
    );
    d.wait_json("on-exit ran", TIMEOUT, |v| {
        v["job"] == "on-exit" && v["msg"] == "exited"
    });
    // Checks resume: healthy again after unknown.
    d.wait_event("app.healthy", 2);
    let out = maintenance("disable");
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap()["updated"],
        false,
        "{out}"
    );

    let out = maintenance("sideways");
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("-help"), "{out}");
}

#[test]
fn reload_keeps_unchanged_jobs_and_refuses_bad_configs() {
    let dir = Dir::new("reload");
    let jobs = |changed_cmd: &str, last: &str| {
        format!(
            r#"[
              {{ name: "keep", exec: "sleep 1001" }},
              {{ name: "change", exec: "{changed_cmd}" }},
              {last}
            ]"#
        )
    };
    let cfg = dir
        .cfg()
        .jobs(&jobs(
            "sleep 1002",
            r#"{ name: "gone", exec: "sleep 1003" }"#,
        ))
        .write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    let s = dir.socket();
    let pid_of = |st: &Value, name: &str| service(st, name)["pid"].as_i64();
    wait_until(TIMEOUT, "all three running", || {
        let st = status(&dir);
        ["keep", "change", "gone"]
            .iter()
            .all(|n| pid_of(&st, n).is_some())
    });
    let before = status(&dir);
    let r = uds_request(&s, "POST", "/v3/env", r#"{"KEPT": "yes"}"#);
    assert_eq!(r.status, 200);

    // A broken file: 422, the running config untouched.
    std::fs::write(&cfg, "{ jobs: [ { name: \"x\", exec: ").unwrap();
    let r = uds_request(&s, "POST", "/v3/reload", "");
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains(':'), "{r:?}");
    let out = run(&["-config", dir.p("cp.json5").as_str(), "-reload"], &[]);
    assert_ne!(out.code, 0, "{out}");
    assert_eq!(status(&dir)["services"], before["services"]);

    // A good one: keep is untouched, change restarts, gone stops, new starts.
    let new = dir
        .cfg()
        .jobs(&jobs(
            "sleep 1012",
            &format!(
                r#"{{ name: "new", exec: {} }}"#,
                dir.sh("new", "echo \"KEPT=$KEPT\"; exec sleep 1004")
            ),
        ))
        .write();
    assert_eq!(new, cfg);
    let r = uds_request(&s, "POST", "/v3/reload", "");
    assert_eq!((r.status, r.body.as_str()), (200, ""), "{r:?}");
    d.wait_json("new job sees env set before the reload", TIMEOUT, |v| {
        v["job"] == "new" && v["msg"] == "KEPT=yes"
    });
    wait_until(TIMEOUT, "change restarted and gone removed", || {
        let st = status(&dir);
        let names: Vec<&str> = st["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        !names.contains(&"gone")
            && pid_of(&st, "change").is_some_and(|p| Some(p) != pid_of(&before, "change"))
            && pid_of(&st, "new").is_some()
    });
    let after = status(&dir);
    assert_eq!(
        pid_of(&after, "keep"),
        pid_of(&before, "keep"),
        "unchanged job kept its process"
    );
    let gone_pid = pid_of(&before, "gone").unwrap() as i32;
    wait_until(TIMEOUT, "removed job's process gone", || !alive(gone_pid));
}

#[test]
fn socket_mode_stale_file_live_instance_and_removal() {
    let dir = Dir::new("socket");
    // A stale socket file (nobody listening) is replaced.
    drop(UnixListener::bind(dir.socket()).unwrap());
    assert!(std::fs::metadata(dir.socket())
        .unwrap()
        .file_type()
        .is_socket());
    let mut d = probe_daemon(&dir);
    let mode = std::fs::metadata(dir.socket())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // A second instance on the same socket refuses to start.
    let out = run(&["-config", dir.p("cp.json5").as_str()], &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains(dir.p("cp.sock").as_str()), "{out}");
    // ... and the first one is still served.
    assert_eq!(
        uds_request(&dir.socket(), "GET", "/v3/ping", "").status,
        200
    );

    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert!(!dir.socket().exists(), "socket file removed at exit");

    // No daemon: -ping fails and names the path it tried.
    let out = run(&["-config", dir.p("cp.json5").as_str(), "-ping"], &[]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains(dir.p("cp.sock").as_str()), "{out}");
}

#[test]
fn idle_and_stalled_clients_do_not_block_ping() {
    let dir = Dir::new("stall");
    let _d = probe_daemon(&dir);
    let s = dir.socket();
    let mut idle: Vec<UnixStream> = (0..50).map(|_| UnixStream::connect(&s).unwrap()).collect();
    let mut half = UnixStream::connect(&s).unwrap();
    half.write_all(b"POST /v3/env HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"A\":")
        .unwrap();
    for _ in 0..5 {
        let r = uds_request(&s, "GET", "/v3/ping", "");
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    }
    // The stalled request is timed out eventually: the server answers or closes.
    half.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = half.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stalled client never timed out"
    );
    idle.clear();
}

#[test]
fn putmetric_without_telemetry_is_rejected_whole() {
    let dir = Dir::new("metric-none");
    let _d = probe_daemon(&dir);
    let r = uds_request(&dir.socket(), "POST", "/v3/metric", r#"{"nope": 1}"#);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    let out = run(
        &[
            "-config",
            dir.p("cp.json5").as_str(),
            "-putmetric",
            "nope=1",
        ],
        &[],
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("nope"), "{out}");
}

#[test]
fn status_document_shape() {
    let dir = Dir::new("status");
    let cfg = dir
        .cfg()
        .jobs(
            r#"[
              { name: "db", exec: "sleep 1000", health: { exec: "true", interval: "100ms" } },
              { name: "web", exec: "sleep 1000", when: { source: "db", once: "healthy" } },
              { name: "sick", exec: "sleep 1000", health: { exec: "false", interval: "100ms" } },
              { name: "slow", exec: "sleep 1000", health: { exec: "true", interval: "1h" } },
              { name: "once", exec: "true" },
            ]"#,
        )
        .write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    d.wait_event("sick.unhealthy", 1);
    d.wait_event("db.healthy", 1);
    let st = status(&dir);
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(st["maintenance"], false);
    assert!(st["watches"].is_array());
    let db = service(&st, "db");
    assert_eq!(db["status"], "healthy");
    assert_eq!(db["depends_on"], serde_json::json!([]));
    let web = service(&st, "web");
    assert_eq!(web["status"], "nonadvertised");
    assert_eq!(web["depends_on"], serde_json::json!(["db"]));
    assert_eq!(web["address"], Value::Null);
    assert_eq!(web["port"], Value::Null);
    assert_eq!(service(&st, "sick")["status"], "unhealthy");
    // No check result yet.
    assert_eq!(service(&st, "slow")["status"], "unknown");
    // Process facts.
    assert_eq!(db["state"], "running");
    assert!(db["pid"].as_i64().is_some_and(|p| p > 1));
    assert_eq!(db["restarts"], 0);
    d.wait_event("once.stopped", 1);
    let st = status(&dir);
    let once = service(&st, "once");
    assert_eq!(
        (once["state"].as_str(), once["pid"].as_i64()),
        (Some("completed"), None)
    );
    assert_eq!(once["last_exit_code"], 0);
}

#[test]
fn reload_moves_the_socket_telemetry_and_logging() {
    let dir = Dir::new("reload-move");
    let port = free_port();
    let jobs = r#"[ { name: "app", exec: "sleep 1000" } ]"#;
    let cfg = dir
        .cfg()
        .top(&format!(
            r#"telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"] }}"#
        ))
        .jobs(jobs)
        .write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    assert_eq!(
        http_get(&format!("127.0.0.1:{port}"), "/status").status,
        200
    );
    let mut app_pid = None;
    wait_until(TIMEOUT, "app running", || {
        app_pid = service(&status(&dir), "app")["pid"].as_i64();
        app_pid.is_some()
    });

    let new_port = free_port();
    let new_socket = dir.path("moved.sock");
    let log_file = dir.path("cp.log");
    std::fs::write(
        &cfg,
        format!(
            r#"{{
  control: {{ socket: {sock} }},
  logging: {{ level: "DEBUG", format: "json", output: {log} }},
  telemetry: {{ port: {new_port}, interfaces: ["static:127.0.0.1"] }},
  jobs: {jobs},
}}"#,
            sock = js(new_socket.to_str().unwrap()),
            log = js(log_file.to_str().unwrap()),
        ),
    )
    .unwrap();
    let r = uds_request(&dir.socket(), "POST", "/v3/reload", "");
    assert_eq!(r.status, 200, "{r:?}");
    wait_for_socket(&new_socket, TIMEOUT);
    wait_until(TIMEOUT, "the old socket file is gone", || {
        !dir.socket().exists()
    });
    let st = uds_request(&new_socket, "GET", "/v3/status", "").json();
    assert_eq!(
        service(&st, "app")["pid"].as_i64(),
        app_pid,
        "the job was not touched"
    );
    assert_eq!(
        http_get(&format!("127.0.0.1:{new_port}"), "/status").status,
        200
    );
    wait_until(TIMEOUT, "the old telemetry port is closed", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    // Logging now goes to the file.
    uds_request(&new_socket, "POST", "/v3/maintenance/enable", "");
    wait_until(TIMEOUT, "log entries in the new log file", || {
        std::fs::read_to_string(&log_file)
            .is_ok_and(|l| l.contains("\"msg\":\"entering maintenance mode\""))
    });
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert!(!new_socket.exists());
}

/// A daemon with one long-running job, its control socket answering.
fn one_job_daemon(dir: &Dir) -> Daemon {
    let cfg = dir
        .cfg()
        .jobs(&format!(
            r#"[{{ name: "app", exec: {} }}]"#,
            dir.sh("app", "exec sleep 1000")
        ))
        .write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    d
}

/// Slots on the control socket (`Limits::default().max_connections`) plus
/// the threads kept waiting in accept() (`pool::MAX_IDLE_THREADS`): the most
/// threads its server may run.
const CONTROL_THREADS: u64 = 128 + 4;

/// Opens `n` connections that never send anything.
fn idle_connections(socket: &std::path::Path, n: usize) -> Vec<UnixStream> {
    (0..n)
        .map(|i| {
            UnixStream::connect(socket)
                .unwrap_or_else(|e| panic!("connection {i} to {}: {e}", socket.display()))
        })
        .collect()
}

/// Opens `n` connections that send part of a request and stall: a request
/// line cut short, or a head without its end.
fn half_sent_connections(socket: &std::path::Path, n: usize) -> Vec<UnixStream> {
    (0..n)
        .map(|i| {
            let mut s = UnixStream::connect(socket)
                .unwrap_or_else(|e| panic!("connection {i} to {}: {e}", socket.display()));
            let part: &[u8] = if i % 2 == 0 {
                b"GET /v3/pi"
            } else {
                b"POST /v3/env HTTP/1.1\r\nHost: x\r\nContent-Le"
            };
            s.write_all(part)
                .unwrap_or_else(|e| panic!("half request {i}: {e}"));
            s
        })
        .collect()
}

/// Fuzzing found that 200 idle connections on the control socket made
/// every `GET /v3/ping` answer 503 until they timed out (5 s): the bound on
/// connections refused newcomers instead of closing idle ones (SPEC §4).
#[test]
fn regression_200_idle_connections_made_ping_answer_503() {
    let dir = Dir::new("idle200");
    let d = one_job_daemon(&dir);
    let s = dir.socket();
    raise_fd_limit(1024);
    let idle = idle_connections(&s, 200);
    for i in 0..18 {
        let r = uds_request(&s, "GET", "/v3/ping", "");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "ok"),
            "ping {i} with 200 idle connections open"
        );
    }
    drop(idle);
    drop(d);
}

/// SPEC §8: `/v3/ping` is "still answered with 500 idle or half-sent
/// connections open", and the server's threads stay within its bound.
#[test]
fn ping_answers_with_500_idle_and_500_half_sent_connections_open() {
    let dir = Dir::new("idle1000");
    let d = one_job_daemon(&dir);
    let s = dir.socket();
    let pid = d.pid();
    raise_fd_limit(2048);
    let before = proc_status(pid, "Threads").expect("Threads in /proc/PID/status");
    let rss_before = proc_status(pid, "VmRSS").expect("VmRSS in /proc/PID/status");
    let idle = idle_connections(&s, 500);
    let half = half_sent_connections(&s, 500);
    for i in 0..10 {
        let r = uds_request(&s, "GET", "/v3/ping", "");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "ok"),
            "ping {i} with 500 idle and 500 half-sent connections open"
        );
    }
    let threads = proc_status(pid, "Threads").expect("Threads");
    let rss = proc_status(pid, "VmRSS").expect("VmRSS");
    assert!(
        threads <= before + CONTROL_THREADS,
        "{threads} threads with 1000 connections open, {before} before; \
         the control server may add at most {CONTROL_THREADS}"
    );
    // A thread per slot costs its touched stack and buffers, not the
    // connections beyond the slots: generous, but far below what a thread
    // or a buffer per connection would cost.
    assert!(
        rss <= rss_before + 8 * 1024,
        "VmRSS {rss} kB with 1000 connections open, {rss_before} kB before"
    );
    drop((idle, half));
    drop(d);
}
