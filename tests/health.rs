//! Health beyond 3.x, end to end (SPEC §2.3 `health` and `notify`, §3.2,
//! §3.7, §4 `/v3/health`, §5 `/status`; issue #14): `http` and `tcp`
//! probes against real servers, `startPeriod` and `threshold`, sd_notify
//! readiness from real senders (systemd-notify, socat, python3) and its
//! watchdog, `/v3/health` and `-healthcheck`, and the `/status` fields
//! `state`, `runs`, `last_check` and `notify_status`.
//!
//! Check results are waited for through `/status` and the DEBUG log's
//! `event: SOURCE.CODE` entries; "must not happen" is read after a later
//! result that the same channel delivered after it (a check script counts
//! its runs: run N+1 has started only once result N was sent).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::support::consul::FakeConsul;
use crate::support::stub::{HttpStub, StubBody};
use crate::support::*;

fn daemon(dir: &Dir, jobs: &str) -> Daemon {
    start_with(dir, dir.cfg().stop_timeout("2s").jobs(jobs), &[])
}

fn start_with(dir: &Dir, cfg: Cfg, env: &[(&str, &str)]) -> Daemon {
    let mut d = Daemon::start(&cfg.write(), env);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    d
}

fn post(dir: &Dir, path: &str) -> Response {
    uds_request(&dir.socket(), "POST", path, "")
}

fn health(dir: &Dir) -> Response {
    uds_request(&dir.socket(), "GET", "/v3/health", "")
}

/// The one `/status` entry named `name`.
fn service(dir: &Dir, name: &str) -> Value {
    let st = status(dir);
    let all: Vec<Value> = st["services"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s["name"] == name)
        .collect();
    assert_eq!(all.len(), 1, "{st}");
    all[0].clone()
}

/// Wait until `name`'s `/status` entry satisfies `pred`; returns it.
fn wait_service(
    d: &mut Daemon,
    dir: &Dir,
    name: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_doc(d, &format!("{name}: {what}"), || service(dir, name), pred)
}

fn wait_status(d: &mut Daemon, dir: &Dir, name: &str, status: &str) -> Value {
    wait_service(d, dir, name, &format!("status {status}"), |s| {
        s["status"] == status
    })
}

fn output_of(s: &Value) -> String {
    s["last_check"]["output"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Wait for `/v3/health` to answer `code`; returns the reply.
fn wait_health(d: &mut Daemon, dir: &Dir, code: u16) -> Value {
    let mut last = None;
    d.wait_for(&format!("/v3/health {code}"), || {
        let r = health(dir);
        let ok = r.status == code;
        last = Some(r);
        ok
    });
    last.expect("a reply").json()
}

fn unhealthy_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["unhealthy"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// A check script: counts its runs in `NAME.checks`, prints `check N`,
/// and passes while `NAME.ok` exists.
fn file_check(dir: &Dir, name: &str) -> String {
    dir.sh(
        &format!("{name}-check"),
        &format!(
            "echo x >> {checks}\necho \"check $(wc -l < {checks})\"\ntest -e {ok}",
            checks = dir.p(&format!("{name}.checks")),
            ok = dir.p(&format!("{name}.ok"))
        ),
    )
}

fn checks(dir: &Dir, name: &str) -> usize {
    dir.lines(&format!("{name}.checks")).len()
}

/// A `notify` job script: waits for `NAME.go`, then sends `payload` (one
/// datagram, commas for newlines) with python3, then sleeps.
fn notify_on_go(dir: &Dir, name: &str, payload: &str) -> String {
    let py = notify_sender(dir);
    let go = dir.p(&format!("{name}.go"));
    dir.sh(
        name,
        &format!(
            "echo $$ > {pid}\nwhile [ ! -e {go} ]; do sleep 0.02; done\npython3 {py} '{payload}'\nexec sleep 1000",
            pid = dir.p(&format!("{name}.pid"))
        ),
    )
}

fn go(dir: &Dir, name: &str) {
    dir.write(&format!("{name}.go"), "");
}

// ---------------------------------------------------------------------------
// http and tcp probes (SPEC §2.3, §3.7)

#[test]
fn http_check_passes_on_200_to_399_and_fails_otherwise_showing_the_status_line() {
    let stub = HttpStub::start();
    // A redirect is not followed.
    stub.headers("Location: /elsewhere\r\n");
    let dir = Dir::new("http");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "web", exec: ["sleep", "1000"],
                   health: {{ http: {}, interval: "50ms", timeout: "5s" }} }}]"#,
            js(&stub.url("/healthz?probe=1"))
        ),
    );
    for (line, status) in [
        ("HTTP/1.1 200 OK", "healthy"),
        ("HTTP/1.1 302 Found", "healthy"),
        ("HTTP/1.1 503 Service Unavailable", "unhealthy"),
        ("HTTP/1.1 204 No Content", "healthy"),
        ("HTTP/1.1 404 Not Found", "unhealthy"),
    ] {
        stub.answer(line);
        let s = wait_service(&mut d, &dir, "web", &format!("output {line:?}"), |s| {
            output_of(s) == line
        });
        // The result that showed this line also set the status.
        assert_eq!(s["status"], status, "{line}: {s}");
    }
    assert_eq!(d.events("web.healthy"), 2, "{}", d.evidence());
    assert_eq!(d.events("web.unhealthy"), 2, "{}", d.evidence());
    let reqs = stub.requests();
    assert!(
        reqs.iter()
            .all(|r| r.method == "GET" && r.path == "/healthz?probe=1"),
        "{reqs:?}"
    );
    terminate(&mut d);
}

#[test]
fn http_check_output_is_the_status_line_the_server_sent() {
    // "The check output ... is the HTTP status line" (SPEC §2.3): the
    // server's own reason phrase tells an operator why it is failing.
    let stub = HttpStub::start();
    stub.answer("HTTP/1.1 503 Warming Up");
    let dir = Dir::new("http-reason");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "web", exec: ["sleep", "1000"], health: {{ http: {}, interval: "50ms", timeout: "5s" }} }}]"#,
            js(&stub.url("/"))
        ),
    );
    let s = wait_status(&mut d, &dir, "web", "unhealthy");
    assert_eq!(output_of(&s), "HTTP/1.1 503 Warming Up", "{s}");
    terminate(&mut d);
}

#[test]
fn http_check_does_not_wait_for_a_body_that_never_ends() {
    // The status line is all a check needs; a server that answers 200 and
    // then trickles its body byte by byte must not hold the checker beyond
    // `timeout` (the house rule: bound the time any input can cost).
    let stub = HttpStub::start();
    stub.body(StubBody::Trickle);
    let dir = Dir::new("http-trickle");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "web", exec: ["sleep", "1000"],
                   health: {{ http: {}, interval: "100ms", timeout: "300ms" }} }}]"#,
            js(&stub.url("/"))
        ),
    );
    d.wait_for("3 checks made", || stub.count() >= 3);
    terminate(&mut d);
}

#[test]
fn http_check_passes_on_its_status_whatever_the_size_of_the_body() {
    // A 200 is a pass (SPEC §2.3); the body is not the check's business,
    // and reading 100 MiB of it into memory would cost PID 1 as much.
    let stub = HttpStub::start();
    stub.body(StubBody::Size(100 * 1024 * 1024));
    let dir = Dir::new("http-big");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "web", exec: ["sleep", "1000"],
                   health: {{ http: {}, interval: "100ms", timeout: "5s" }} }}]"#,
            js(&stub.url("/"))
        ),
    );
    let s = wait_service(&mut d, &dir, "web", "a check result", |s| {
        s["last_check"].is_object()
    });
    assert_eq!(s["status"], "healthy", "{s}");
    assert_eq!(output_of(&s), "HTTP/1.1 200 OK", "{s}");
    terminate(&mut d);
}

#[test]
fn http_check_against_a_real_python_server_and_a_refused_port() {
    if !have("python3") {
        return;
    }
    let dir = Dir::new("http-python");
    dir.write("index.html", "hello\n");
    let port = free_port();
    let closed = free_port();
    let url = |path: &str| js(&format!("http://127.0.0.1:{port}{path}"));
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "web", exec: ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1",
                                        "--directory", {root}],
                   health: {{ http: {ok}, interval: "50ms", timeout: "5s" }} }},
                {{ name: "missing", exec: ["sleep", "1000"],
                   health: {{ http: {missing}, interval: "50ms", timeout: "5s" }} }},
                {{ name: "refused", exec: ["sleep", "1000"],
                   health: {{ http: "http://127.0.0.1:{closed}/", interval: "50ms", timeout: "5s" }} }}]"#,
            root = js(&dir.p("")),
            ok = url("/index.html"),
            missing = url("/missing"),
        ),
    );
    let web = wait_status(&mut d, &dir, "web", "healthy");
    assert!(output_of(&web).contains(" 200 "), "{web}");
    let missing = wait_service(&mut d, &dir, "missing", "a 404", |s| {
        output_of(s).contains(" 404 ")
    });
    assert_eq!(missing["status"], "unhealthy", "{missing}");
    let refused = wait_status(&mut d, &dir, "refused", "unhealthy");
    assert!(
        output_of(&refused).contains("refused"),
        "the connect error: {refused}"
    );
    terminate(&mut d);
}

#[test]
fn tcp_check_passes_while_a_listener_accepts_and_fails_on_a_closed_port() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let closed = free_port();
    let dir = Dir::new("tcp");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "db", exec: ["sleep", "1000"],
                   health: {{ tcp: "127.0.0.1:{port}", interval: "50ms", timeout: "5s" }} }},
                {{ name: "gone", exec: ["sleep", "1000"],
                   health: {{ tcp: "127.0.0.1:{closed}", interval: "50ms", timeout: "5s" }} }}]"#
        ),
    );
    wait_status(&mut d, &dir, "db", "healthy");
    let gone = wait_status(&mut d, &dir, "gone", "unhealthy");
    assert!(
        output_of(&gone).contains("refused"),
        "the connect error: {gone}"
    );
    drop(listener);
    let db = wait_status(&mut d, &dir, "db", "unhealthy");
    assert!(output_of(&db).contains("refused"), "{db}");
    terminate(&mut d);
}

#[test]
fn http_and_tcp_checks_fork_no_process() {
    let stub = HttpStub::start();
    let dir = Dir::new("noprocess");
    let cfg = dir.cfg().stop_timeout("2s").jobs(&format!(
        r#"[{{ name: "web", exec: ["sleep", "1000"], health: {{ http: {}, interval: "20ms", timeout: "5s" }} }},
            {{ name: "db", exec: ["sleep", "1001"], health: {{ tcp: "127.0.0.1:{}", interval: "20ms", timeout: "5s" }} }}]"#,
        js(&stub.url("/")),
        stub.port()
    ));
    let mut d = Daemon::start(&cfg.write(), &[]);
    // From now on the stub notes the daemon's descendants at each request,
    // while the check waits for the answer.
    stub.watch(d.pid());
    d.wait_started();
    d.wait_for("20 checks", || stub.count() >= 20);
    let reqs = stub.requests();
    let watched: Vec<_> = reqs.iter().filter(|r| !r.processes.is_empty()).collect();
    assert!(watched.len() >= 10, "{reqs:?}");
    for r in watched {
        let mut comms: Vec<&str> = r.processes.iter().map(|(_, c)| c.as_str()).collect();
        comms.sort();
        assert_eq!(comms, ["sleep", "sleep"], "only the jobs' processes: {r:?}");
    }
    terminate(&mut d);
}

#[test]
fn https_checks_are_refused_at_validation() {
    let dir = Dir::new("https");
    let cfg = dir
        .cfg()
        .jobs(r#"[{ name: "web", exec: "true", health: { http: "https://127.0.0.1/", interval: 1 } }]"#)
        .write();
    let cfg = cfg.to_str().expect("utf-8");
    for args in [vec!["-validate", "-config", cfg], vec!["-config", cfg]] {
        let out = run(&args, &[]);
        assert_eq!(out.code, 1, "{args:?}: {out}");
        assert!(
            out.stderr
                .contains("job[web].health.http: https is not supported"),
            "{args:?}: {out}"
        );
    }
}

// ---------------------------------------------------------------------------
// startPeriod and threshold (SPEC §2.3, §3.7)

#[test]
fn start_period_ignores_failures_of_a_young_process_and_a_pass_ends_it() {
    let dir = Dir::new("startperiod");
    let check = file_check(&dir, "svc");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "svc", exec: ["sleep", "1000"],
                   health: {{ exec: {check}, interval: "50ms", timeout: "5s", startPeriod: "1h" }} }}]"#
        ),
    );
    // Run 6 has started: results 1-5 (all failures) are in the loop's queue
    // before the query below.
    d.wait_for("6 checks", || checks(&dir, "svc") >= 6);
    let s = service(&dir, "svc");
    assert_eq!(s["status"], "unknown", "{s}");
    assert!(
        s["last_check"]["output"].is_string(),
        "the result is still shown: {s}"
    );
    assert_eq!(d.events("svc.unhealthy"), 0, "{}", d.evidence());
    // In its start period it counts as healthy.
    let r = health(&dir);
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"healthy": true, "unhealthy": []})),
        "{r:?}"
    );
    // A pass ends the period: the next failure counts at once.
    dir.write("svc.ok", "");
    d.wait_event("svc.healthy", 1);
    std::fs::remove_file(dir.path("svc.ok")).expect("rm");
    d.wait_event("svc.unhealthy", 1);
    terminate(&mut d);
}

#[test]
fn start_period_runs_out_and_then_failures_count() {
    let dir = Dir::new("startperiod-out");
    let mut d = daemon(
        &dir,
        r#"[{ name: "svc", exec: ["sleep", "1000"],
              health: { exec: "false", interval: "50ms", timeout: "5s", startPeriod: "400ms" } }]"#,
    );
    d.wait_event("svc.unhealthy", 1);
    let lines = d.lines_so_far();
    let started = lines
        .iter()
        .filter_map(|l| json(l))
        .find(|v| {
            v["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("job[svc] started process"))
        })
        .map(|v| log_seconds(&v));
    let unhealthy = event_times(&mut d, "svc.unhealthy");
    let started = started.unwrap_or_else(|| d.fail("no 'started process' entry"));
    assert!(
        unhealthy[0] - started >= 0.4 - 0.005,
        "unhealthy {:.3}s after the start, inside the 400ms start period\n{}",
        unhealthy[0] - started,
        d.evidence()
    );
    terminate(&mut d);
}

#[test]
fn threshold_needs_consecutive_failures_and_a_pass_resets_the_count() {
    let dir = Dir::new("threshold");
    let count = dir.p("count");
    // Results 1..: F F P F F P F F F P P P ...
    let check = dir.sh(
        "check",
        &format!(
            "n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 ))\necho $n > {count}\necho \"check $n\"\n\
             case $n in 1|2|4|5|7|8|9) exit 1;; *) exit 0;; esac"
        ),
    );
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "svc", exec: ["sleep", "1000"],
                   health: {{ exec: {check}, interval: "50ms", timeout: "5s", threshold: 3 }} }}]"#
        ),
    );
    let runs = |dir: &Dir| dir.read("count").trim().parse::<u32>().unwrap_or(0);
    // Run 12 has started: results 1-11 are delivered before the query.
    d.wait_for("12 checks", || runs(&dir) >= 12);
    assert_eq!(service(&dir, "svc")["status"], "healthy");
    assert_eq!(
        (d.events("svc.healthy"), d.events("svc.unhealthy")),
        (2, 1),
        "{}",
        d.evidence()
    );
    let want_check = |n: u32| {
        let msg = format!("check {n}");
        move |l: &str| json(l).is_some_and(|v| v["msg"] == msg.as_str())
    };
    let event = |e: &'static str| move |l: &str| is_msg(l, e);
    // In order: nothing before the first pass; unhealthy only after the
    // third failure in a row; healthy again at the next pass.
    d.wait_line("check 3", TIMEOUT, want_check(3));
    d.wait_line(
        "healthy after check 3",
        TIMEOUT,
        event("event: svc.healthy"),
    );
    d.wait_line("check 9", TIMEOUT, want_check(9));
    d.wait_line(
        "unhealthy after check 9",
        TIMEOUT,
        event("event: svc.unhealthy"),
    );
    d.wait_line("check 10", TIMEOUT, want_check(10));
    d.wait_line(
        "healthy after check 10",
        TIMEOUT,
        event("event: svc.healthy"),
    );
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// notify (SPEC §2.3, §3.7)

#[test]
fn notify_ready_from_systemd_notify_socat_and_python_makes_the_job_healthy() {
    if !(have("systemd-notify") && have("socat") && have("python3")) {
        return;
    }
    let dir = Dir::new("notify-ready");
    let py = notify_sender(&dir);
    let env = |name: &str| {
        format!(
            "env > {f}.tmp && mv {f}.tmp {f}",
            f = dir.p(&format!("{name}.env"))
        )
    };
    let sd = dir.sh(
        "sd",
        &format!(
            "{}\nsystemd-notify --ready --status='up via systemd-notify'\nexec sleep 1000",
            env("sd")
        ),
    );
    let so = dir.sh(
        "so",
        "printf 'READY=1\\nSTATUS=up via socat' | socat - UNIX-SENDTO:\"$NOTIFY_SOCKET\"\nexec sleep 1000",
    );
    let pyjob = dir.sh(
        "py",
        &format!("python3 {py} 'READY=1,STATUS=up via python'\nexec sleep 1000"),
    );
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "sd", exec: {sd}, notify: true }},
                {{ name: "so", exec: {so}, notify: true }},
                {{ name: "py", exec: {pyjob}, notify: true }}]"#
        ),
    );
    for (name, text) in [
        ("sd", "up via systemd-notify"),
        ("so", "up via socat"),
        ("py", "up via python"),
    ] {
        let s = wait_status(&mut d, &dir, name, "healthy");
        assert_eq!(s["notify_status"], text, "{s}");
        d.wait_event(&format!("{name}.healthy"), 1);
    }
    // The job got an absolute socket path and no watchdog.
    d.wait_for("sd's environment", || dir.exists("sd.env"));
    let env = dir.read("sd.env");
    let sock = env
        .lines()
        .find_map(|l| l.strip_prefix("NOTIFY_SOCKET="))
        .unwrap_or_else(|| panic!("no NOTIFY_SOCKET: {env}"));
    assert!(sock.starts_with('/') || sock.starts_with('@'), "{sock}");
    assert!(!env.contains("WATCHDOG_USEC="), "{env}");
    terminate(&mut d);
}

#[test]
fn an_inherited_notify_socket_reaches_only_notify_jobs_and_as_their_own() {
    if !have("python3") {
        return;
    }
    let dir = Dir::new("notify-env");
    let py = notify_sender(&dir);
    let dump = |name: &str| {
        format!(
            "env > {f}.tmp && mv {f}.tmp {f}",
            f = dir.p(&format!("{name}.env"))
        )
    };
    let plain = dir.sh("plain", &format!("{}\nexec sleep 1000", dump("plain")));
    let own = dir.sh(
        "own",
        &format!("{}\npython3 {py} READY=1\nexec sleep 1000", dump("own")),
    );
    let cfg = dir.cfg().stop_timeout("2s").jobs(&format!(
        r#"[{{ name: "plain", exec: {plain} }},
            {{ name: "own", exec: {own}, notify: {{ watchdog: "1h" }} }}]"#
    ));
    let inherited = dir.p("systemd-notify.sock");
    let mut d = start_with(
        &dir,
        cfg,
        &[
            ("NOTIFY_SOCKET", inherited.as_str()),
            ("WATCHDOG_USEC", "1000000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    d.wait_for("both environments", || {
        dir.exists("plain.env") && dir.exists("own.env")
    });
    let plain = dir.read("plain.env");
    for var in ["NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="] {
        assert!(
            !plain.lines().any(|l| l.starts_with(var)),
            "{var} in a job without notify:\n{plain}"
        );
    }
    let own = dir.read("own.env");
    let sock = own
        .lines()
        .find_map(|l| l.strip_prefix("NOTIFY_SOCKET="))
        .unwrap_or_default();
    assert!(!sock.is_empty() && sock != inherited, "{own}");
    assert!(
        own.lines().any(|l| l == "WATCHDOG_USEC=3600000000"),
        "{own}"
    );
    assert!(
        !own.lines().any(|l| l.starts_with("WATCHDOG_PID=")),
        "{own}"
    );
    wait_status(&mut d, &dir, "own", "healthy");
    terminate(&mut d);
}

/// A python3 job that says READY=1, pings the watchdog three times, then
/// goes quiet; SIGABRT is recorded in `marks` and ends it with 134.
fn hanging_worker(dir: &Dir) -> String {
    let script = dir.write(
        "worker.py",
        r#"import os, signal, socket, sys, time
marks = sys.argv[1]
def note(word):
    with open(marks, "a") as f:
        f.write(word + "\n")
def abort(sig, frame):
    note("abrt")
    os._exit(134)
signal.signal(signal.SIGABRT, abort)
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", addr)
for _ in range(3):
    time.sleep(0.1)
    s.sendto(b"WATCHDOG=1", addr)
note("silent")
while True:
    time.sleep(1)
"#,
    );
    format!(
        r#"["python3", {}, {}]"#,
        js(script.to_str().expect("utf-8")),
        js(&dir.p("marks"))
    )
}

#[test]
fn a_missed_watchdog_makes_the_job_unhealthy_aborts_it_and_the_restart_policy_applies() {
    if !have("python3") {
        return;
    }
    let dir = Dir::new("watchdog");
    let worker = hanging_worker(&dir);
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "worker", exec: {worker}, notify: {{ watchdog: "300ms" }},
                   restarts: 1, shutdownOn: "exitFailed" }},
                {{ name: "keeper", exec: ["sleep", "1000"] }}]"#
        ),
    );
    // Restarted once; the second abort (restarts spent) ends the container
    // with the abort's status: a watchdog abort counts for shutdownOn.
    let code = d.wait_exit(TIMEOUT);
    assert_eq!(code, 134, "{}", d.evidence());
    assert_eq!(
        dir.lines("marks"),
        ["silent", "abrt", "silent", "abrt"],
        "{}",
        d.evidence()
    );
    for (e, n) in [
        ("worker.healthy", 2),
        ("worker.unhealthy", 2),
        ("worker.exitFailed", 2),
    ] {
        assert_eq!(d.events(e), n, "{e}\n{}", d.evidence());
    }
    // Unhealthy first, then the abort's exit.
    for e in ["worker.healthy", "worker.unhealthy", "worker.exitFailed"] {
        let want = format!("event: {e}");
        d.wait_line(&want, TIMEOUT, |l| is_msg(l, &want));
    }
}

#[test]
fn a_process_ignoring_sigabrt_is_killed_after_the_stop_timeout() {
    if !have("python3") {
        return;
    }
    let dir = Dir::new("watchdog-kill");
    let py = notify_sender(&dir);
    // An ignored signal stays ignored across exec: the sleep ignores it too.
    let app = dir.sh(
        "app",
        &format!("trap '' ABRT\npython3 {py} READY=1\nexec sleep 1000"),
    );
    let mut d = start_with(
        &dir,
        dir.cfg().stop_timeout("500ms").jobs(&format!(
            r#"[{{ name: "app", exec: {app}, notify: {{ watchdog: "200ms" }} }},
                {{ name: "keeper", exec: ["sleep", "1000"] }}]"#
        )),
        &[],
    );
    d.wait_event("app.unhealthy", 1);
    d.wait_event("app.exitFailed", 1);
    let s = service(&dir, "app");
    assert_eq!(s["last_exit_code"], 137, "SIGKILL: {s}");
    let aborted = event_times(&mut d, "app.unhealthy")[0];
    let exited = event_times(&mut d, "app.exitFailed")[0];
    assert!(
        exited - aborted >= 0.5 - 0.005,
        "killed {:.3}s after the abort, before the 500ms stopTimeout\n{}",
        exited - aborted,
        d.evidence()
    );
    terminate(&mut d);
}

#[test]
fn notify_messages_from_processes_outside_the_job_are_ignored() {
    if !have("python3") {
        return;
    }
    let dir = Dir::new("notify-foreign");
    let py = notify_sender(&dir);
    let app = notify_on_go(&dir, "app", "STATUS=own");
    let mut d = daemon(
        &dir,
        &format!(r#"[{{ name: "app", exec: {app}, notify: true }}]"#),
    );
    d.wait_for("the app's pid", || dir.read("app.pid").ends_with('\n'));
    let pid: i32 = dir.read("app.pid").trim().parse().expect("pid");
    // The address, read where any process on the machine could read it.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    let addr = environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"NOTIFY_SOCKET="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_else(|| d.fail("no NOTIFY_SOCKET in the job's environment"));
    // From this test process, alive and outside the job.
    let sock = UnixDatagram::unbound().expect("socket");
    if let Some(name) = addr.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let a = std::os::unix::net::SocketAddr::from_abstract_name(name).expect("abstract");
        sock.send_to_addr(b"READY=1\nSTATUS=foreign", &a)
            .expect("send");
    } else {
        sock.send_to(b"READY=1\nSTATUS=foreign", &addr)
            .expect("send");
    }
    // From a python3 started outside the job, still alive when read.
    let mut outsider = Command::new("python3")
        .args([py.as_str(), "READY=1,STATUS=outsider", "--wait"])
        .env("NOTIFY_SOCKET", &addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut line = String::new();
    BufReader::new(outsider.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "sent");
    // The job's own message comes after both on the same socket.
    go(&dir, "app");
    let s = wait_service(&mut d, &dir, "app", "STATUS=own", |s| {
        s["notify_status"] == "own"
    });
    assert_eq!(s["status"], "unknown", "{s}");
    assert_eq!(d.events("app.healthy"), 0, "{}", d.evidence());
    drop(outsider.stdin.take());
    let _ = outsider.wait();
    terminate(&mut d);
}

#[test]
fn garbage_and_oversized_notify_datagrams_are_ignored() {
    if !have("python3") {
        return;
    }
    let dir = Dir::new("notify-garbage");
    let py = notify_sender(&dir);
    let long = "y".repeat(300);
    let app = dir.sh(
        "app",
        &format!(
            "python3 {py} hex:fffe00ff hex: READY =1 READY=0 'size:5000:READY=1,STATUS=big' 'STATUS=after garbage'\n\
             while [ ! -e {go} ]; do sleep 0.02; done\n\
             python3 {py} 'STATUS={long}' READY=1\nexec sleep 1000",
            go = dir.p("app.go")
        ),
    );
    let mut d = daemon(
        &dir,
        &format!(r#"[{{ name: "app", exec: {app}, notify: true }}]"#),
    );
    let s = wait_service(&mut d, &dir, "app", "STATUS=after garbage", |s| {
        s["notify_status"] == "after garbage"
    });
    // The READY=1 inside the 5000-byte datagram was dropped with it.
    assert_eq!(s["status"], "unknown", "{s}");
    go(&dir, "app");
    let s = wait_status(&mut d, &dir, "app", "healthy");
    // STATUS= text is cut at 256 bytes.
    assert_eq!(s["notify_status"], "y".repeat(256), "{s}");
    assert_eq!(
        uds_request(&dir.socket(), "GET", "/v3/ping", "").status,
        200
    );
    terminate(&mut d);
}

#[test]
fn notify_and_health_the_most_recent_report_wins() {
    if !have("python3") {
        return;
    }
    let dir = Dir::new("notify-health");
    let app = notify_on_go(&dir, "app", "READY=1");
    let check = file_check(&dir, "app");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: {app}, notify: true,
                   health: {{ exec: {check}, interval: "100ms", timeout: "5s" }} }}]"#
        ),
    );
    d.wait_event("app.unhealthy", 1);
    // READY=1 while the check still fails: healthy.
    go(&dir, "app");
    d.wait_event("app.healthy", 1);
    // The next failing check: unhealthy again.
    d.wait_event("app.unhealthy", 2);
    dir.write("app.ok", "");
    d.wait_event("app.healthy", 2);
    terminate(&mut d);
}

#[test]
fn an_advertised_notify_job_registers_at_ready() {
    if !have("python3") {
        return;
    }
    let fake = FakeConsul::start();
    let dir = Dir::new("notify-consul");
    let port = free_port();
    let app = notify_on_go(&dir, "app", "READY=1");
    let hostname = nix::unistd::gethostname()
        .expect("hostname")
        .into_string()
        .expect("utf-8");
    let sid = format!("app-{hostname}");
    // Its check runs once an hour: only READY=1 can register it in time.
    let cfg = dir
        .cfg()
        .stop_timeout("2s")
        .top(&format!("consul: {}", js(&fake.addr())))
        .jobs(&format!(
            r#"[{{ name: "app", exec: {app}, notify: true, port: {port},
                   health: {{ exec: "false", interval: "1h", ttl: "1h" }} }}]"#
        ));
    let mut d = start_with(&dir, cfg, &[]);
    d.wait_for("the app started", || dir.read("app.pid").ends_with('\n'));
    assert!(
        !fake.services().contains_key(&sid),
        "registered before READY=1: {:?}",
        fake.requests()
    );
    go(&dir, "app");
    if !fake.wait_for(TIMEOUT, |st| {
        st.checks
            .get(&format!("service:{sid}"))
            .is_some_and(|c| c.status == "passing")
    }) {
        d.fail(&format!(
            "not registered passing after READY=1: {:?}",
            fake.requests()
        ));
    }
    assert_eq!(service(&dir, "app")["status"], "healthy");
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// /v3/health and -healthcheck (SPEC §1, §4, §3.7)

#[test]
fn v3_health_names_the_unhealthy_jobs_and_ignores_the_rest() {
    if !have("python3") {
        return;
    }
    let dir = Dir::new("v3health");
    let a_check = file_check(&dir, "a");
    let b = notify_on_go(&dir, "b", "READY=1");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "a", exec: ["sleep", "1000"], health: {{ exec: {a_check}, interval: "50ms", timeout: "5s" }} }},
                {{ name: "b", exec: {b}, notify: true }},
                {{ name: "plain", exec: ["sleep", "1000"] }},
                {{ name: "done", exec: "true", health: {{ exec: "true", interval: "1h" }} }}]"#
        ),
    );
    d.wait_event("a.unhealthy", 1);
    d.wait_event("done.stopped", 1);
    // `b` has not said READY=1 (unknown), `a` fails; `plain` has no check
    // and `done` has completed: neither is considered.
    let v = wait_health(&mut d, &dir, 503);
    assert_eq!(v["healthy"], false, "{v}");
    assert_eq!(unhealthy_names(&v), ["a", "b"], "{v}");
    dir.write("a.ok", "");
    go(&dir, "b");
    let v = wait_health(&mut d, &dir, 200);
    assert_eq!(v, json!({"healthy": true, "unhealthy": []}));
    // Maintenance: 503 until it ends.
    assert_eq!(post(&dir, "/v3/maintenance/enable").status, 200);
    let r = health(&dir);
    assert_eq!(
        (r.status, r.json()["healthy"].clone()),
        (503, json!(false)),
        "{r:?}"
    );
    assert_eq!(post(&dir, "/v3/maintenance/disable").status, 200);
    wait_health(&mut d, &dir, 200);
    // One job fails: named alone.
    std::fs::remove_file(dir.path("a.ok")).expect("rm");
    d.wait_event("a.unhealthy", 2);
    let v = wait_health(&mut d, &dir, 503);
    assert_eq!(unhealthy_names(&v), ["a"], "{v}");
    // Stopped through the API: no longer considered.
    assert_eq!(post(&dir, "/v3/jobs/a/stop").status, 200);
    let r = health(&dir);
    assert_eq!(r.status, 200, "{r:?}");
    terminate(&mut d);
}

#[test]
fn v3_health_counts_backoff_as_unhealthy_and_a_start_period_as_healthy() {
    let dir = Dir::new("v3health-backoff");
    let crash = dir.sh(
        "crash",
        &format!(
            "while [ ! -e {} ]; do sleep 0.02; done\nexit 1",
            dir.p("crash.go")
        ),
    );
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "crash", exec: {crash}, restarts: "unlimited", restartDelay: "1h", restartDelayMax: "2h",
                   health: {{ exec: "true", interval: "50ms", timeout: "5s" }} }},
                {{ name: "young", exec: ["sleep", "1000"],
                   health: {{ exec: "false", interval: "50ms", timeout: "5s", startPeriod: "1h" }} }}]"#
        ),
    );
    d.wait_event("crash.healthy", 1);
    let v = wait_health(&mut d, &dir, 200);
    assert_eq!(v, json!({"healthy": true, "unhealthy": []}));
    go(&dir, "crash");
    d.wait_for("crash in backoff", || {
        service(&dir, "crash")["state"] == "backoff"
    });
    let r = health(&dir);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(unhealthy_names(&r.json()), ["crash"], "{r:?}");
    terminate(&mut d);
}

#[test]
fn v3_health_is_503_once_a_shutdown_on_job_has_fired() {
    let dir = Dir::new("v3health-shutdownon");
    let app = dir.sh(
        "app",
        &format!(
            "while [ ! -e {} ]; do sleep 0.02; done\nexit 3",
            dir.p("app.go")
        ),
    );
    // Keeps the shutdown going until the test releases it.
    let hook = dir.sh(
        "hook",
        &format!(
            "echo started > {}\nwhile [ ! -e {} ]; do sleep 0.02; done",
            dir.p("hook.started"),
            dir.p("release")
        ),
    );
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: {app}, shutdownOn: "exitFailed" }},
                {{ name: "svc", exec: ["sleep", "1000"], health: {{ exec: "true", interval: "50ms", timeout: "5s" }} }},
                {{ name: "hook", exec: {hook}, when: {{ once: "shutdown" }}, timeout: "8s" }}]"#
        ),
    );
    wait_health(&mut d, &dir, 200);
    go(&dir, "app");
    d.wait_for("the shutdown hook running", || dir.exists("hook.started"));
    let r = health(&dir);
    assert_eq!(
        (r.status, r.json()["healthy"].clone()),
        (503, json!(false)),
        "{r:?}"
    );
    dir.write("release", "");
    let code = d.wait_exit(TIMEOUT);
    assert_eq!(code, 3, "{}", d.evidence());
}

#[test]
fn healthcheck_flag_exits_0_when_healthy_and_1_otherwise_naming_the_jobs() {
    let dir = Dir::new("healthcheck");
    let check = file_check(&dir, "web");
    let cfg = dir.cfg().stop_timeout("2s").jobs(&format!(
        r#"[{{ name: "web", exec: ["sleep", "1000"], health: {{ exec: {check}, interval: "50ms", timeout: "5s" }} }}]"#
    ));
    let mut d = start_with(&dir, cfg, &[]);
    let path = dir.p("cp.json5");
    let healthcheck = || run(&["-config", &path, "-healthcheck"], &[]);
    d.wait_event("web.unhealthy", 1);
    let out = healthcheck();
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), ["web"], "{out}");
    dir.write("web.ok", "");
    d.wait_event("web.healthy", 1);
    let out = healthcheck();
    assert_eq!(out.code, 0, "{out}");
    terminate(&mut d);
    // The socket is gone: not healthy either.
    let out = healthcheck();
    assert_eq!(out.code, 1, "{out}");
}

// ---------------------------------------------------------------------------
// /status (SPEC §5)

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
}

#[test]
fn status_entries_carry_state_runs_last_check_and_notify_status() {
    if !have("python3") {
        return;
    }
    let dir = Dir::new("status-fields");
    let py = notify_sender(&dir);
    let notified = dir.sh(
        "notified",
        &format!("python3 {py} 'STATUS=serving 3 clients,READY=1'\nexec sleep 1000"),
    );
    let backoff = dir.sh("backoff", "exit 7");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "idle", exec: "true", when: {{ source: "SIGHUP" }} }},
                {{ name: "running", exec: ["sleep", "1000"],
                   health: {{ exec: ["echo", "all good"], interval: "50ms", timeout: "5s" }} }},
                {{ name: "fresh", exec: ["sleep", "1000"], health: {{ exec: "true", interval: "1h" }} }},
                {{ name: "backoff", exec: {backoff}, restarts: "unlimited", restartDelay: "1h", restartDelayMax: "2h" }},
                {{ name: "stopped", exec: ["sleep", "1000"] }},
                {{ name: "completed", exec: "true" }},
                {{ name: "notified", exec: {notified}, notify: true }}]"#
        ),
    );
    assert_eq!(post(&dir, "/v3/jobs/stopped/stop").status, 200);
    wait_status(&mut d, &dir, "running", "healthy");
    wait_status(&mut d, &dir, "notified", "healthy");
    wait_service(&mut d, &dir, "backoff", "backoff", |s| {
        s["state"] == "backoff"
    });
    wait_service(&mut d, &dir, "completed", "completed", |s| {
        s["state"] == "completed"
    });
    let st = status(&dir);
    let by = |name: &str| -> Value {
        st["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no {name} in {st}"))
    };
    for (name, state, runs, exit) in [
        ("idle", "idle", 0, Value::Null),
        ("running", "running", 1, Value::Null),
        ("fresh", "running", 1, Value::Null),
        ("backoff", "backoff", 1, json!(7)),
        ("stopped", "stopped", 1, json!(143)),
        ("completed", "completed", 1, json!(0)),
        ("notified", "running", 1, Value::Null),
    ] {
        let s = by(name);
        assert_eq!(s["state"], state, "{s}");
        assert_eq!(s["runs"], runs, "{s}");
        assert_eq!(s["restarts"], 0, "{s}");
        assert_eq!(s["last_exit_code"], exit, "{s}");
        assert_eq!(s["pid"].is_u64(), state == "running", "{s}");
        if name != "notified" {
            assert_eq!(s["notify_status"], Value::Null, "{s}");
        }
        if name != "running" {
            assert_eq!(s["last_check"], Value::Null, "{s}");
        }
    }
    let running = by("running");
    let check = &running["last_check"];
    assert_eq!(check["output"], "all good", "{running}");
    assert!(
        check["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{running}"
    );
    let at = check["at"].as_str().unwrap_or_default();
    assert!(is_rfc3339(at), "{running}");
    assert_eq!(by("fresh")["status"], "unknown");
    assert_eq!(by("notified")["notify_status"], "serving 3 clients");
    terminate(&mut d);
}

#[test]
fn a_notify_socket_file_is_removed_when_containerpilot_exits() {
    // The exit does not wait for the runners (which removed their own
    // socket files when let go): the files are removed by the exit itself.
    let dir = Dir::new("notify-exit");
    let env = dir.p("job.env");
    let job = dir.sh(
        "job",
        &format!("env > {env}.tmp && mv {env}.tmp {env}\nexec sleep 1000"),
    );
    let cfg = dir.cfg().stop_timeout("2s").jobs(&format!(
        r#"[{{ name: "job", exec: {job}, notify: true }}]"#
    ));
    let mut d = start_with(&dir, cfg, &[]);
    d.wait_for("the job's environment", || dir.exists("job.env"));
    let text = dir.read("job.env");
    let sock = text
        .lines()
        .find_map(|l| l.strip_prefix("NOTIFY_SOCKET="))
        .unwrap_or_default()
        .to_string();
    assert!(
        std::path::Path::new(&sock).exists(),
        "no socket file: {text}"
    );
    terminate(&mut d);
    assert!(
        !std::path::Path::new(&sock).exists(),
        "{sock} left behind after the exit"
    );
}
