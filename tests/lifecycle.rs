//! A job's life beyond 3.x, end to end (SPEC §2.3 jobs, §3.2, §3.3, §3.7;
//! issues #12 and #14): `shutdownOn` ending the container with the
//! process's exit status, `restartDelay` backoff and what cancels it,
//! `when.any` / `when.all`, duplicate job names (with the Consul double
//! for their shared service), sources that name nothing, and the example
//! config in `examples/app.json5`.
//!
//! Every job is a real process. Handshakes are marker files the jobs write
//! and the DEBUG log's `event: SOURCE.CODE` entries; "must not happen" is
//! checked after a later sentinel: a POST that would get 503 once shutdown
//! has begun, an event published after the one that must not have fired.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::consul::FakeConsul;
use crate::support::*;

fn daemon(dir: &Dir, jobs: &str) -> Daemon {
    start_with(dir, dir.cfg().stop_timeout("2s").jobs(jobs))
}

fn start_with(dir: &Dir, cfg: Cfg) -> Daemon {
    let mut d = Daemon::start(&cfg.write(), &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    d
}

fn get(dir: &Dir, path: &str) -> Response {
    uds_request(&dir.socket(), "GET", path, "")
}

fn post(dir: &Dir, path: &str) -> Response {
    uds_request(&dir.socket(), "POST", path, "")
}

/// Every job of that name, as `GET /v3/jobs/NAME` shows them.
fn jobs_named(dir: &Dir, name: &str) -> Vec<Value> {
    let r = get(dir, &format!("/v3/jobs/{name}"));
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["jobs"].as_array().cloned().unwrap_or_default()
}

/// The one job of that name.
fn job(dir: &Dir, name: &str) -> Value {
    let mut all = jobs_named(dir, name);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn wait_state(d: &mut Daemon, dir: &Dir, name: &str, state: &str) -> Value {
    wait_doc(
        d,
        &format!("job {name} in state {state}"),
        || job(dir, name),
        // A process is asked for before its pid is known.
        |j| j["state"] == state && (state != "running" || j["pid"].is_number()),
    )
}

/// The `/status` entries named `name`.
fn services_named(dir: &Dir, name: &str) -> Vec<Value> {
    status(dir)["services"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s["name"] == name)
        .collect()
}

fn expect_exit(d: &mut Daemon, want: i32) {
    let code = d.wait_exit(TIMEOUT);
    if code != want {
        d.fail(&format!("exit code {code}, want {want}"));
    }
}

/// Shutdown has not begun: a POST is still accepted (it is 503 "shutting
/// down" from the start of shutdown on, SPEC §3.7). `keeper` runs, so
/// starting it changes nothing.
fn not_shutting_down(d: &mut Daemon, dir: &Dir) {
    if std::os::unix::net::UnixStream::connect(dir.socket()).is_err() {
        d.fail("the control socket is gone: containerpilot shut down");
    }
    let r = post(dir, "/v3/jobs/keeper/start");
    if r.status != 200 {
        d.fail(&format!("containerpilot is shutting down: {r:?}"));
    }
}

/// A job that keeps the container alive and is never in the way.
const KEEPER: &str = r#"{ name: "keeper", exec: ["sleep", "1000"] }"#;

/// A script that waits for the file `go` in `dir`, then runs `then`.
fn on_go(dir: &Dir, name: &str, then: &str) -> String {
    let go = dir.p(&format!("{name}.go"));
    dir.sh(
        name,
        &format!("while [ ! -e {go} ]; do sleep 0.02; done\n{then}"),
    )
}

fn go(dir: &Dir, name: &str) {
    dir.write(&format!("{name}.go"), "");
}

// ---------------------------------------------------------------------------
// shutdownOn (SPEC §2.3, §3.3, §3.7)

#[test]
fn shutdown_on_exit_failed_shuts_down_as_on_sigterm_and_exits_with_the_status() {
    let dir = Dir::new("so-failed");
    let marks = dir.p("marks");
    let app = on_go(&dir, "app", "exit 3");
    let other = dir.sh(
        "other",
        &format!(
            "trap 'echo other-term >> {marks}; exit 0' TERM\necho other-ready >> {marks}\n\
             while true; do sleep 0.05; done"
        ),
    );
    let hook = dir.sh("hook", &format!("echo shutdown-hook >> {marks}"));
    let post_stop = dir.sh("poststop", &format!("echo other-stopped >> {marks}"));
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: {app}, shutdownOn: "exitFailed" }},
                {{ name: "other", exec: {other} }},
                {{ name: "hook", exec: {hook}, when: {{ once: "shutdown" }} }},
                {{ name: "poststop", exec: {post_stop}, when: {{ source: "other", once: "stopped" }} }}]"#
        ),
    );
    d.wait_for("other ready", || dir.lines("marks") == ["other-ready"]);
    go(&dir, "app");
    expect_exit(&mut d, 3);
    assert_eq!(
        dir.lines("marks"),
        [
            "other-ready",
            "shutdown-hook",
            "other-term",
            "other-stopped"
        ],
        "{}",
        d.evidence()
    );
    for e in [
        "app.exitFailed",
        "global.shutdown",
        "other.stopping",
        "other.exitSuccess",
        "other.stopped",
    ] {
        let want = format!("event: {e}");
        d.wait_line(&want, TIMEOUT, |l| is_msg(l, &want));
    }
    assert!(!dir.socket().exists(), "control socket removed");
}

#[test]
fn shutdown_on_a_process_killed_by_a_signal_exits_128_plus_the_signal() {
    let dir = Dir::new("so-signal");
    let app = dir.sh(
        "app",
        &format!("echo $$ > {}\nexec sleep 1000", dir.p("pid")),
    );
    let mut d = daemon(
        &dir,
        &format!(r#"[{{ name: "app", exec: {app}, shutdownOn: "exit" }}, {KEEPER}]"#),
    );
    d.wait_for("app pid", || dir.read("pid").ends_with('\n'));
    let pid: i32 = dir.read("pid").trim().parse().expect("pid");
    d.signal_pid(pid, Signal::SIGKILL);
    expect_exit(&mut d, 137);
    d.wait_event("keeper.stopped", 1);
}

#[test]
fn shutdown_on_fires_only_once_the_restarts_are_spent() {
    let dir = Dir::new("so-spent");
    let app = dir.sh("app", &format!("echo run >> {}\nexit 4", dir.p("runs")));
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: {app}, restarts: 2, shutdownOn: "exitFailed" }}, {KEEPER}]"#
        ),
    );
    expect_exit(&mut d, 4);
    assert_eq!(dir.lines("runs").len(), 3, "{}", d.evidence());
    assert_eq!(d.events("app.exitFailed"), 3, "{}", d.evidence());
}

#[test]
fn shutdown_on_fires_only_for_its_own_outcome() {
    for (on, code, other) in [
        ("exitSuccess", 1, "exitFailed"),
        ("exitFailed", 0, "exitSuccess"),
    ] {
        let dir = Dir::new(&format!("so-{on}"));
        let app = dir.sh("app", &format!("exit {code}"));
        let mut d = daemon(
            &dir,
            &format!(
                r#"[{{ name: "app", exec: {app}, shutdownOn: "{on}" }},
                    {{ name: "after", exec: "true", when: {{ source: "app", once: "stopped" }} }},
                    {KEEPER}]"#
            ),
        );
        d.wait_event(&format!("app.{other}"), 1);
        // `after` runs once the app is stopped for good: any shutdownOn
        // decision about that exit was taken before.
        d.wait_event("after.exitSuccess", 1);
        not_shutting_down(&mut d, &dir);
        terminate(&mut d);
    }
}

#[test]
fn shutdown_on_with_unlimited_restarts_fires_only_on_a_clean_exit() {
    let dir = Dir::new("so-unlimited");
    let runs = dir.p("runs");
    // Fails twice (restarted each time), then exits 0.
    let app = dir.sh(
        "app",
        &format!("echo run >> {runs}\nif [ $(wc -l < {runs}) -lt 3 ]; then exit 1; fi\nexit 0"),
    );
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: {app}, restarts: "unlimited", shutdownOn: "exit" }}, {KEEPER}]"#
        ),
    );
    // The keeper would run for ever: only shutdownOn can end this.
    expect_exit(&mut d, 0);
    assert_eq!(dir.lines("runs").len(), 3, "{}", d.evidence());
    assert_eq!(d.events("app.exitFailed"), 2, "{}", d.evidence());
    assert_eq!(d.events("app.exitSuccess"), 1, "{}", d.evidence());
    assert_eq!(d.events("global.shutdown"), 1, "{}", d.evidence());
}

#[test]
fn shutdown_on_ignores_exits_containerpilot_caused() {
    let dir = Dir::new("so-caused");
    let jobs = |secs: u32| {
        format!(r#"[{{ name: "app", exec: ["sleep", "{secs}"], shutdownOn: "exit" }}, {KEEPER}]"#)
    };
    let mut d = daemon(&dir, &jobs(1000));
    let first = wait_state(&mut d, &dir, "app", "running")["pid"].clone();
    // An API restart: SIGTERM, 143, restarted.
    let r = post(&dir, "/v3/jobs/app/restart");
    assert_eq!(r.status, 200, "{r:?}");
    d.wait_for("a new app process", || {
        let j = job(&dir, "app");
        j["state"] == "running" && j["pid"] != first && j["pid"].is_number()
    });
    not_shutting_down(&mut d, &dir);
    // An API stop.
    let r = post(&dir, "/v3/jobs/app/stop");
    assert_eq!(r.status, 200, "{r:?}");
    not_shutting_down(&mut d, &dir);
    // A reload that changes the job stops the old process.
    assert_eq!(post(&dir, "/v3/jobs/app/start").status, 200);
    let before = wait_state(&mut d, &dir, "app", "running")["pid"].clone();
    dir.cfg().stop_timeout("2s").jobs(&jobs(999)).write();
    let r = post(&dir, "/v3/reload");
    assert_eq!(r.status, 200, "{r:?}");
    d.wait_for("the reloaded app running", || {
        let j = job(&dir, "app");
        j["state"] == "running" && j["pid"] != before && j["pid"].is_number()
    });
    not_shutting_down(&mut d, &dir);
    // The restart and the stop publish the exit (a job replaced by a reload
    // stops quietly).
    assert_eq!(d.events("app.exitFailed"), 2, "{}", d.evidence());
    // And SIGTERM: its 143 does not become containerpilot's status.
    terminate(&mut d);
}

#[test]
fn shutdown_on_counts_the_kill_of_its_own_timeout() {
    let dir = Dir::new("so-timeout");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: ["sleep", "1000"], timeout: "100ms", shutdownOn: "exitFailed" }},
                {KEEPER}]"#
        ),
    );
    expect_exit(&mut d, 137);
}

#[test]
fn shutdown_on_the_first_job_that_fires_decides_the_status() {
    let dir = Dir::new("so-first");
    let a = on_go(&dir, "a", "exit 5");
    // b ignores nothing: SIGTERM makes it exit 6 (its own exit, during
    // the shutdown that a started).
    let b = dir.sh(
        "b",
        &format!(
            "trap 'exit 6' TERM\necho ready > {}\nwhile true; do sleep 0.05; done",
            dir.p("b.ready")
        ),
    );
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "a", exec: {a}, shutdownOn: "exitFailed" }},
                {{ name: "b", exec: {b}, shutdownOn: "exitFailed" }}]"#
        ),
    );
    d.wait_for("b ready", || dir.exists("b.ready"));
    go(&dir, "a");
    expect_exit(&mut d, 5);
    d.wait_event("b.exitFailed", 1);
}

#[test]
fn shutdown_on_an_interval_sensor_does_not_keep_the_container_alive() {
    let dir = Dir::new("so-sensor");
    let app = on_go(&dir, "app", "exit 2");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: {app}, shutdownOn: "exitFailed" }},
                {{ name: "sensor", exec: "true", when: {{ interval: "100ms" }} }}]"#
        ),
    );
    d.wait_event("sensor.exitSuccess", 2);
    go(&dir, "app");
    expect_exit(&mut d, 2);
    d.wait_event("sensor.stopped", 1);
}

// ---------------------------------------------------------------------------
// restartDelay / restartDelayMax (SPEC §2.3, §3.7)

#[test]
fn restart_delay_doubles_for_each_consecutive_restart() {
    let dir = Dir::new("backoff-doubles");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: ["/bin/sh", "-c", "exit 1"], restarts: 3,
                   restartDelay: "200ms", restartDelayMax: "10s" }},
                {KEEPER}]"#
        ),
    );
    d.wait_event("app.exitFailed", 4);
    d.wait_event("app.stopped", 1);
    let times = event_times(&mut d, "app.exitFailed");
    // Each gap is the wait plus a run: at least 1x, 2x, 4x the delay.
    for (i, want) in [0.2, 0.4, 0.8].iter().enumerate() {
        let gap = times[i + 1] - times[i];
        assert!(
            gap >= want - 0.005,
            "restart {} came {gap:.3}s after the exit before it, want >= {want}s: {times:?}\n{}",
            i + 1,
            d.evidence()
        );
    }
    let app = job(&dir, "app");
    assert_eq!(
        (app["restarts"].as_u64(), app["runs"].as_u64()),
        (Some(3), Some(4)),
        "{app}"
    );
    assert_eq!(app["state"], "completed", "{app}");
}

#[test]
fn restart_delay_max_caps_the_wait() {
    let dir = Dir::new("backoff-cap");
    // 9 restarts doubling from 50ms would wait 25.5s in all, far beyond the
    // deadline of the wait below; capped at 100ms they wait 0.85s.
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "app", exec: ["/bin/sh", "-c", "exit 1"], restarts: 9,
                   restartDelay: "50ms", restartDelayMax: "100ms" }},
                {KEEPER}]"#
        ),
    );
    d.wait_event("app.exitFailed", 10);
    d.wait_event("app.stopped", 1);
    assert_eq!(job(&dir, "app")["restarts"], 9);
}

/// An app that records each run and fails at once, restarted after an hour.
fn failing_app(dir: &Dir, delay: &str) -> String {
    let app = dir.sh("app", &format!("echo run >> {}\nexit 1", dir.p("runs")));
    format!(
        r#"{{ name: "app", exec: {app}, restarts: "unlimited", restartDelay: "{delay}",
             restartDelayMax: "2h" }}"#
    )
}

#[test]
fn backoff_is_shown_and_shutdown_cancels_it() {
    let dir = Dir::new("backoff-shutdown");
    let mut d = daemon(&dir, &format!("[{}, {KEEPER}]", failing_app(&dir, "1h")));
    let app = wait_state(&mut d, &dir, "app", "backoff");
    assert_eq!(
        (app["runs"].as_u64(), app["restarts"].as_u64()),
        (Some(1), Some(0)),
        "{app}"
    );
    assert_eq!(services_named(&dir, "app")[0]["state"], "backoff");
    // Shutdown does not wait out the hour, and nothing restarts.
    terminate(&mut d);
    assert_eq!(dir.lines("runs").len(), 1, "{}", d.evidence());
}

#[test]
fn backoff_start_runs_at_once_and_stop_cancels_it() {
    let dir = Dir::new("backoff-api");
    let mut d = daemon(&dir, &format!("[{}, {KEEPER}]", failing_app(&dir, "1h")));
    wait_state(&mut d, &dir, "app", "backoff");
    let r = post(&dir, "/v3/jobs/app/start");
    assert_eq!(
        (r.status, r.json()["updated"].as_bool()),
        (200, Some(true)),
        "{r:?}"
    );
    d.wait_for("the second run", || dir.lines("runs").len() == 2);
    d.wait_event("app.exitFailed", 2);
    wait_state(&mut d, &dir, "app", "backoff");
    let r = post(&dir, "/v3/jobs/app/stop");
    assert_eq!(
        (r.status, r.json()["updated"].as_bool()),
        (200, Some(true)),
        "{r:?}"
    );
    let app = job(&dir, "app");
    assert_eq!(app["state"], "stopped", "{app}");
    d.wait_event("app.stopped", 1);
    // The API's starts are runs, not restarts.
    assert_eq!(
        (app["runs"].as_u64(), app["restarts"].as_u64()),
        (Some(2), Some(0)),
        "{app}"
    );
    let r = post(&dir, "/v3/jobs/app/start");
    assert_eq!(r.status, 200, "{r:?}");
    d.wait_for("the third run", || dir.lines("runs").len() == 3);
}

#[test]
fn backoff_is_cancelled_by_a_reload_that_changes_the_job_only() {
    let dir = Dir::new("backoff-reload");
    let write = |delay: &str, other: u32| {
        dir.cfg()
            .stop_timeout("2s")
            .jobs(&format!(
                r#"[{}, {{ name: "other", exec: ["sleep", "{other}"] }}, {KEEPER}]"#,
                failing_app(&dir, delay)
            ))
            .write();
    };
    write("1h", 1000);
    let mut d = Daemon::start(&dir.path("cp.json5"), &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    wait_state(&mut d, &dir, "app", "backoff");
    // Another job changes: the app keeps its wait.
    let before = wait_state(&mut d, &dir, "other", "running")["pid"].clone();
    write("1h", 999);
    assert_eq!(post(&dir, "/v3/reload").status, 200);
    d.wait_for("other replaced", || {
        let j = job(&dir, "other");
        j["state"] == "running" && j["pid"].is_number() && j["pid"] != before
    });
    let app = job(&dir, "app");
    assert_eq!(app["state"], "backoff", "{app}");
    assert_eq!(dir.lines("runs").len(), 1);
    // The app changes: its wait is cancelled and the new definition runs.
    write("2h", 999);
    assert_eq!(post(&dir, "/v3/reload").status, 200);
    d.wait_for("the reloaded app's run", || dir.lines("runs").len() == 2);
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// when.any / when.all (SPEC §2.3, §3.7)

#[test]
fn when_any_fires_on_whichever_listed_source_publishes() {
    let dir = Dir::new("when-any");
    let marks = dir.p("marks");
    let a = on_go(&dir, "a", "exit 0");
    let b = on_go(&dir, "b", "exit 0");
    let hook = dir.sh("hook", &format!("echo hook >> {marks}"));
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "a", exec: {a} }}, {{ name: "b", exec: {b} }},
                {{ name: "hook", exec: {hook}, when: {{ any: ["a", "b"], each: "exitSuccess" }} }},
                {KEEPER}]"#
        ),
    );
    assert_eq!(
        services_named(&dir, "hook")[0]["depends_on"],
        serde_json::json!(["a", "b"])
    );
    go(&dir, "b");
    d.wait_event("hook.exitSuccess", 1);
    assert_eq!(dir.lines("marks"), ["hook"]);
    go(&dir, "a");
    d.wait_event("hook.exitSuccess", 2);
    assert_eq!(dir.lines("marks"), ["hook", "hook"]);
    // Both sources are done for good: the hook can never fire again.
    wait_state(&mut d, &dir, "hook", "completed");
    terminate(&mut d);
}

/// A job whose check passes while `NAME.ok` exists. The timeout is long:
/// a check timing out on a loaded machine would publish events of its own.
fn checked(dir: &Dir, name: &str) -> String {
    format!(
        r#"{{ name: "{name}", exec: ["sleep", "1000"],
             health: {{ exec: ["test", "-e", {ok}], interval: "50ms", timeout: "5s" }} }}"#,
        ok = js(&dir.p(&format!("{name}.ok")))
    )
}

#[test]
fn when_all_fires_once_every_listed_source_has_published() {
    let dir = Dir::new("when-all");
    let marks = dir.p("marks");
    // Records whether B was healthy when C started.
    let c = dir.sh(
        "c",
        &format!(
            "if [ -e {b_ok} ]; then echo after-both >> {marks}; else echo too-early >> {marks}; fi",
            b_ok = dir.p("B.ok")
        ),
    );
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{}, {},
                {{ name: "C", exec: {c}, when: {{ all: ["A", "B"], once: "healthy" }} }}]"#,
            checked(&dir, "A"),
            checked(&dir, "B")
        ),
    );
    assert_eq!(
        services_named(&dir, "C")[0]["depends_on"],
        serde_json::json!(["A", "B"])
    );
    dir.write("A.ok", "");
    d.wait_event("A.healthy", 1);
    dir.write("B.ok", "");
    d.wait_event("C.exitSuccess", 1);
    assert_eq!(dir.lines("marks"), ["after-both"], "{}", d.evidence());
    wait_state(&mut d, &dir, "C", "completed");
    terminate(&mut d);
}

#[test]
fn when_all_with_each_needs_every_source_again_after_it_fires() {
    let dir = Dir::new("when-all-each");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "A", exec: "true", when: {{ source: "SIGHUP" }} }},
                {{ name: "B", exec: "true", when: {{ source: "SIGUSR2" }} }},
                {{ name: "C", exec: "true", when: {{ all: ["A", "B"], each: "exitSuccess" }} }},
                {KEEPER}]"#
        ),
    );
    let runs_of_c = |dir: &Dir| job(dir, "C")["runs"].as_u64();
    d.signal(Signal::SIGHUP);
    d.wait_event("A.exitSuccess", 1);
    // The loop started C (or not) while delivering that event, before
    // answering any later query.
    assert_eq!(runs_of_c(&dir), Some(0));
    d.signal(Signal::SIGUSR2);
    d.wait_event("C.exitSuccess", 1);
    // A alone again, twice: the set was cleared when C fired.
    for n in [2, 3] {
        d.signal(Signal::SIGHUP);
        d.wait_event("A.exitSuccess", n);
        assert_eq!(runs_of_c(&dir), Some(1), "{}", d.evidence());
    }
    d.signal(Signal::SIGUSR2);
    d.wait_event("C.exitSuccess", 2);
    terminate(&mut d);
}

#[test]
fn when_all_added_by_a_reload_sees_sources_already_healthy() {
    let dir = Dir::new("when-all-seed");
    let jobs = format!("{}, {}", checked(&dir, "A"), checked(&dir, "B"));
    dir.write("A.ok", "");
    dir.write("B.ok", "");
    let mut d = daemon(&dir, &format!("[{jobs}]"));
    d.wait_event("A.healthy", 1);
    d.wait_event("B.healthy", 1);
    let c = dir.sh("c", &format!("echo c >> {}", dir.p("marks")));
    dir.cfg()
        .stop_timeout("2s")
        .jobs(&format!(
            r#"[{jobs}, {{ name: "C", exec: {c}, when: {{ all: ["A", "B"], once: "healthy" }} }}]"#
        ))
        .write();
    assert_eq!(post(&dir, "/v3/reload").status, 200);
    d.wait_event("C.exitSuccess", 1);
    assert_eq!(dir.lines("marks"), ["c"]);
    terminate(&mut d);
}

#[test]
fn when_all_and_any_errors_stop_start_up_naming_the_field() {
    for (when, error) in [
        (
            r#"{ all: [], once: "healthy" }"#,
            "job[c].when.all must not be empty",
        ),
        (
            r#"{ source: "a", any: ["a"], once: "healthy" }"#,
            "job[c].when can have only one of 'source', 'any' or 'all'",
        ),
    ] {
        let dir = Dir::new("when-bad");
        let cfg = dir
            .cfg()
            .jobs(&format!(
                r#"[{{ name: "a", exec: "true" }}, {{ name: "c", exec: "true", when: {when} }}]"#
            ))
            .write();
        let out = run(&["-config", cfg.to_str().expect("utf-8")], &[]);
        assert_eq!(out.code, 1, "{out}");
        assert!(out.stderr.contains(error), "{error:?} missing\n{out}");
    }
}

// ---------------------------------------------------------------------------
// Duplicate names, sources that name nothing (issue #12, SPEC §2.3, §3.7)

/// `["/bin/sh", web.sh, "N"]`: says which copy it is, writes its pid to
/// `webN.pid`, then sleeps.
fn web_copy(dir: &Dir, n: u32) -> String {
    let script = dir.script(
        "web.sh",
        &format!(
            "echo \"copy $1\"\necho $$ > {}/web$1.pid\nexec sleep 1000",
            dir.p("")
        ),
    );
    format!(r#"["/bin/sh", {}, "{n}"]"#, js(&script))
}

#[test]
fn duplicate_names_both_run_and_are_addressed_together() {
    let dir = Dir::new("dup");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "web", exec: {} }}, {{ name: "web", exec: {} }}, {KEEPER}]"#,
            web_copy(&dir, 1),
            web_copy(&dir, 2)
        ),
    );
    let warning = "jobs[0] and jobs[1] are both named 'web'";
    assert!(
        d.lines_so_far()
            .iter()
            .any(|l| json(l).is_some_and(|v| v["level"] == "warning" && v["msg"] == warning)),
        "no warning {warning:?}\n{}",
        d.evidence()
    );
    d.wait_for("both copies", || {
        dir.exists("web1.pid") && dir.exists("web2.pid")
    });
    let pid = |n: u32| -> u64 {
        dir.read(&format!("web{n}.pid"))
            .trim()
            .parse()
            .expect("pid")
    };
    let (p1, p2) = (pid(1), pid(2));
    assert_eq!(services_named(&dir, "web").len(), 2, "{}", status(&dir));
    d.wait_for("both running with their pids", || {
        let mut pids: Vec<u64> = jobs_named(&dir, "web")
            .iter()
            .filter_map(|j| j["pid"].as_u64())
            .collect();
        pids.sort();
        let mut want = vec![p1, p2];
        want.sort();
        pids == want
    });
    // The logs of both, merged.
    d.wait_for("both copies' output in the logs", || {
        let r = get(&dir, "/v3/jobs/web/logs");
        r.status == 200 && r.body.contains("copy 1") && r.body.contains("copy 2")
    });
    // Stop addresses both.
    let r = post(&dir, "/v3/jobs/web/stop");
    assert_eq!(
        (r.status, r.json()["updated"].as_bool()),
        (200, Some(true)),
        "{r:?}"
    );
    for p in [p1, p2] {
        assert!(
            !alive(p as i32),
            "copy {p} still alive after the stop reply"
        );
    }
    let states: Vec<Value> = jobs_named(&dir, "web")
        .iter()
        .map(|j| j["state"].clone())
        .collect();
    assert_eq!(states, ["stopped", "stopped"]);
    // Events from either carry the name.
    d.wait_event("web.stopping", 2);
    d.wait_event("web.stopped", 2);
    terminate(&mut d);
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .expect("gethostname")
        .into_string()
        .expect("a UTF-8 hostname")
}

#[test]
fn advertised_duplicates_share_one_service_until_the_last_copy_stops() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dup-consul");
    let port = free_port();
    let sid = format!("web-{}", hostname());
    let deregister = format!("/v1/agent/service/deregister/{sid}");
    let update = format!("/v1/agent/check/update/service:{sid}");
    let health = r#"health: { exec: "true", interval: "100ms", ttl: "10s", timeout: "5s" }"#;
    let short = on_go(&dir, "short", "exit 0");
    let cfg = dir
        .cfg()
        .stop_timeout("2s")
        .top(&format!("consul: {}", js(&fake.addr())))
        .jobs(&format!(
            r#"[{{ name: "web", exec: ["sleep", "1000"], port: {port}, {health} }},
                {{ name: "web", exec: {short}, port: {port}, {health} }},
                {KEEPER}]"#
        ));
    let mut d = start_with(&dir, cfg);
    let registered = |sid: &str| fake.wait_for(TIMEOUT, |st| st.services.contains_key(sid));
    if !registered(&sid) {
        d.fail(&format!("{sid} never registered: {:?}", fake.requests()));
    }
    let services = fake.services();
    assert_eq!(
        services.len(),
        1,
        "one service ID for both copies: {services:?}"
    );
    // The short copy stops for good; the other still runs.
    go(&dir, "short");
    d.wait_event("web.stopped", 1);
    let seen = fake.requests().len();
    // A heartbeat after that stop: the service stayed.
    let heartbeat = fake.wait_for(TIMEOUT, |st| {
        st.requests[seen.min(st.requests.len())..]
            .iter()
            .any(|r| r.path == update)
    });
    if !heartbeat {
        d.fail(&format!(
            "no heartbeat after one copy stopped: {:?}",
            fake.requests()
        ));
    }
    let early: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == deregister)
        .collect();
    assert!(
        early.is_empty(),
        "deregistered while a copy runs: {early:?}"
    );
    assert!(fake.services().contains_key(&sid));
    // The last copy stops: now it goes.
    let r = post(&dir, "/v3/jobs/web/stop");
    assert_eq!(r.status, 200, "{r:?}");
    if !fake.wait_for(TIMEOUT, |st| !st.services.contains_key(&sid)) {
        d.fail(&format!(
            "not deregistered after the last copy: {:?}",
            fake.requests()
        ));
    }
    terminate(&mut d);
}

#[test]
fn a_source_naming_nothing_is_a_warning_and_its_job_completes() {
    let dir = Dir::new("nosource");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "hook", exec: "true", when: {{ source: "nothing", once: "exitSuccess" }} }},
                {KEEPER}]"#
        ),
    );
    let warning =
        "job[hook] waits for 'nothing', which no job or watch provides; it will never run";
    assert!(
        d.lines_so_far()
            .iter()
            .any(|l| json(l).is_some_and(|v| v["level"] == "warning" && v["msg"] == warning)),
        "no warning {warning:?}\n{}",
        d.evidence()
    );
    d.wait_event("hook.stopped", 1);
    assert_eq!(job(&dir, "hook")["state"], "completed");
    assert_eq!(job(&dir, "hook")["runs"], 0);
    assert_eq!(job(&dir, "keeper")["state"], "running");
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// examples/app.json5

fn example() -> String {
    format!("{}/examples/app.json5", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_app_example_validates() {
    let out = run(&["-validate", "-config", &example()], &[]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stderr.contains("warning"), "{out}");
}

#[test]
fn the_app_example_runs_becomes_healthy_and_stops_on_sigterm() {
    if !have("python3") {
        return;
    }
    let dir = Dir::new("example");
    let port = free_port().to_string();
    let sock = dir.p("cp.sock");
    let env = [
        ("APP_PORT", port.as_str()),
        ("CONTAINERPILOT_SOCKET", sock.as_str()),
    ];
    let mut d = Daemon::start(std::path::Path::new(&example()), &env);
    wait_for_socket(&dir.socket(), TIMEOUT);
    let svc = |st: &Value, name: &str| -> Value {
        st["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    // The app passes its http check, the worker says READY=1, and then the
    // hook waiting for both runs.
    d.wait_for("app and worker healthy, announce done", || {
        let st = status(&dir);
        svc(&st, "app")["status"] == "healthy"
            && svc(&st, "worker")["status"] == "healthy"
            && svc(&st, "announce")["state"] == "completed"
    });
    let st = status(&dir);
    assert!(svc(&st, "worker")["notify_status"].is_string(), "{st}");
    assert_eq!(
        svc(&st, "app")["last_check"]["output"],
        "HTTP/1.0 200 OK",
        "{st}"
    );
    let r = get(&dir, "/v3/health");
    assert_eq!(r.status, 200, "{r:?}");
    terminate(&mut d);
}
