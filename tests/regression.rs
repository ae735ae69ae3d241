//! Regression tests for faults found in real use and under fuzzing (issue
//! #12), each named after what went wrong, with the exact inputs.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::*;

fn daemon(dir: &Dir, jobs: &str) -> Daemon {
    let cfg = dir.cfg().stop_timeout("2s").jobs(jobs).write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    d
}

fn job(dir: &Dir, name: &str) -> Value {
    let r = uds_request(&dir.socket(), "GET", &format!("/v3/jobs/{name}"), "");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["jobs"][0].clone()
}

/// The time of a JSON log entry, in seconds since the epoch (for spacing).
fn seconds(v: &Value) -> f64 {
    let t = v["time"].as_str().unwrap_or_default();
    // 2026-12-04T20:58:09.206084Z: only the time of day matters here.
    let hms = t.get(11..t.len() - 1).unwrap_or("0:0:0");
    let mut parts = hms.split(':');
    let h: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    let m: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    let s: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    h * 3600.0 + m * 60.0 + s
}

#[test]
fn regression_a_nul_byte_in_an_env_value_is_refused_and_spawns_go_on() {
    // Fuzzing: `{"A": "x\u0000y"}` was answered 200 and every later spawn
    // failed ("nul byte found"), a job with unlimited restarts spun.
    let dir = Dir::new("reg-nul");
    let marks = dir.p("marks");
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "tick", exec: {tick}, when: {{ source: "SIGHUP" }} }}]"#,
            tick = dir.sh("tick", &format!("echo \"A=${{A-unset}}\" >> {marks}")),
        ),
    );
    for path in ["/v3/env", "/v3/environ"] {
        let r = uds_request(
            &dir.socket(),
            "POST",
            path,
            r#"{"A": "x\u0000y", "B": "ok"}"#,
        );
        assert_eq!(r.status, 400, "{r:?}");
        assert!(
            r.json()["error"].as_str().unwrap_or("").contains("NUL"),
            "{r:?}"
        );
    }
    // Nothing applied (all or nothing), and processes still start.
    d.signal(Signal::SIGHUP);
    wait_until(TIMEOUT, "the job ran", || dir.exists("marks"));
    assert_eq!(dir.lines("marks"), ["A=unset"]);
    d.wait_event("tick.exitSuccess", 1);
}

#[test]
fn regression_a_program_that_cannot_start_backs_off_instead_of_spinning() {
    // With `restarts: "unlimited"` a missing program restarted ~7,500 times
    // a second and logged ~700 KB/s.
    let dir = Dir::new("reg-spin");
    let mut d = daemon(
        &dir,
        r#"[{ name: "ghost", exec: "/nonexistent/program", restarts: "unlimited" },
            { name: "keep", exec: "sleep 1000" }]"#,
    );
    d.wait_event("ghost.exitFailed", 4);
    let times: Vec<f64> = d
        .lines_so_far()
        .iter()
        .filter(|l| is_msg(l, "event: ghost.exitFailed"))
        .filter_map(|l| json(l))
        .map(|v| seconds(&v))
        .collect();
    // 100 ms, then 200 ms, then 400 ms between attempts (at least: a loaded
    // machine only makes the waits longer).
    for (i, want) in [0.1, 0.2, 0.4].iter().enumerate() {
        let gap = times[i + 1] - times[i];
        assert!(
            gap >= want - 0.01,
            "attempt {} came {gap:.3}s after the last: {times:?}",
            i + 2
        );
    }
    assert_eq!(job(&dir, "ghost")["last_exit_code"], 127);
    // The repeated error is logged once, not at every attempt.
    let errors = d.count(|l| {
        json(l).is_some_and(|v| {
            v["level"] == "error"
                && v["msg"]
                    .as_str()
                    .unwrap_or("")
                    .contains("/nonexistent/program")
        })
    });
    assert_eq!(errors, 1, "{}", d.evidence());
}

#[test]
fn regression_interval_runs_are_not_counted_as_restarts() {
    // An interval job showed `restarts: 4` after four ticks, so an alert on
    // containerpilot_job_restarts_total fired for every sensor job.
    let dir = Dir::new("reg-runs");
    let mut d = daemon(
        &dir,
        r#"[{ name: "sensor", exec: "true", when: { interval: "50ms" } }]"#,
    );
    d.wait_event("sensor.exitSuccess", 4);
    let st = job(&dir, "sensor");
    assert!(st["runs"].as_u64().unwrap() >= 4, "{st}");
    assert_eq!(st["restarts"], 0, "{st}");
}

#[test]
fn regression_a_job_that_daemonizes_is_named_with_its_survivors() {
    // Debian's stock nginx.conf daemonizes: the job "completed" in 13 ms and
    // containerpilot exited 0 with no hint.
    let dir = Dir::new("reg-daemon");
    let pids = dir.p("pids");
    let app = dir.sh(
        "app",
        &format!("sleep 1000 &\necho $! >> {pids}\nsetsid sleep 1001 &\necho $! >> {pids}\nexit 0"),
    );
    let mut d = daemon(
        &dir,
        &format!(r#"[{{ name: "app", exec: {app} }}, {{ name: "keep", exec: "sleep 1000" }}]"#),
    );
    d.wait_event("app.exitSuccess", 1);
    wait_until(TIMEOUT, "both pids written", || {
        dir.lines("pids").len() == 2
    });
    let survivors: Vec<String> = dir.lines("pids");
    // The one left in the job's group is named at once; the one that
    // called setsid as soon as it is re-parented to us.
    for pid in &survivors {
        let names_it = |l: &str| {
            json(l).is_some_and(|v| {
                v["level"] == "warning"
                    && v["job"] == "app"
                    && v["msg"].as_str().is_some_and(|m| {
                        m.contains(pid.as_str())
                            && m.contains("foreground")
                            && m.contains("daemonized")
                    })
            })
        };
        d.wait_count(&format!("a warning naming {pid}"), 1, TIMEOUT, names_it);
    }
    // They are stopped at shutdown like job processes.
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", d.evidence());
    for pid in &survivors {
        let pid: i32 = pid.parse().unwrap();
        wait_until(TIMEOUT, "the survivor is gone", || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                })
        });
    }
}

#[test]
fn regression_pre_stop_hooks_on_shutdown_run_while_the_others_still_run() {
    // `when: {once: "shutdown"}` (geek/redis's final save) never ran, in 3.x
    // either (SPEC §3.3).
    let dir = Dir::new("reg-prestop");
    let order = dir.p("order");
    let app = dir.sh(
        "app",
        &format!("trap 'echo app-term >> {order}; exit 0' TERM\necho app-up >> {order}\nwhile true; do sleep 0.05; done"),
    );
    let save = dir.sh(
        "save",
        &format!("echo save-start >> {order}\nsleep 0.3\necho save-done >> {order}"),
    );
    let mut d = daemon(
        &dir,
        &format!(
            r#"[{{ name: "redis", exec: {app} }},
                {{ name: "save", exec: {save}, when: {{ once: "shutdown" }} }}]"#
        ),
    );
    wait_until(TIMEOUT, "app up", || dir.lines("order") == ["app-up"]);
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", d.evidence());
    assert_eq!(
        dir.lines("order"),
        ["app-up", "save-start", "save-done", "app-term"],
        "{}",
        d.evidence()
    );
}

#[test]
fn regression_a_rejected_reload_is_logged_with_its_reason() {
    // Only the client saw the 422; `docker logs` showed nothing.
    let dir = Dir::new("reg-reload-log");
    let mut d = daemon(&dir, r#"[{ name: "app", exec: "sleep 1000" }]"#);
    std::fs::write(
        dir.path("cp.json5"),
        "{ jobs: [ { name: 'app', exec: 'x', restarts: 'sometimes' } ] }",
    )
    .unwrap();
    let r = uds_request(&dir.socket(), "POST", "/v3/reload", "");
    assert_eq!(r.status, 422, "{r:?}");
    let logged = d.wait_json("the reload error", TIMEOUT, |v| {
        v["level"] == "error"
            && v["msg"]
                .as_str()
                .is_some_and(|m| m.contains("restarts") && m.contains("reload"))
    });
    assert!(
        logged["msg"].as_str().unwrap().contains("unchanged"),
        "{logged}"
    );
    // The running config is untouched.
    assert_eq!(job(&dir, "app")["state"], "running");
}

#[test]
fn a_job_that_leaves_nothing_behind_completes_without_a_warning() {
    // The survivor check must not cry wolf.
    let dir = Dir::new("reg-clean");
    let cfg = dir
        .cfg()
        .jobs(r#"[{ name: "once", exec: "true" }]"#)
        .write();
    let mut d = Daemon::start(&cfg, &[]);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", d.evidence());
    assert_eq!(
        d.count(|l| json(l).is_some_and(|v| v["level"] == "warning")),
        0,
        "{}",
        d.evidence()
    );
}

fn threads(pid: i32) -> usize {
    proc_status(pid, "Threads").map_or(usize::MAX, |n| n as usize)
}

#[test]
fn threads_are_one_per_job_and_one_per_checked_job() {
    // Issue #16: each job held three threads (a runner and one per output
    // pipe) and every exec check run started two more.
    let dir = Dir::new("reg-threads");
    let ticker = dir.sh(
        "ticker",
        "while true; do echo tick; echo tock >&2; sleep 0.02; done",
    );
    let check = dir.sh("check", "echo ok; echo err >&2");
    let mut jobs = Vec::new();
    for i in 0..12 {
        jobs.push(format!(r#"{{ name: "plain-{i}", exec: {ticker} }}"#));
    }
    for i in 0..4 {
        jobs.push(format!(
            r#"{{ name: "checked-{i}", exec: "sleep 1000", health: {{ exec: {check}, interval: "50ms" }} }}"#
        ));
    }
    let d = daemon(&dir, &format!("[{}]", jobs.join(",\n")));
    // Several rounds of checks, and output flowing all along.
    wait_until(TIMEOUT, "checks ran", || {
        let r = uds_request(&dir.socket(), "GET", "/v3/jobs/checked-3", "");
        let out = r.json()["jobs"][0]["last_check"]["output"].clone();
        out.as_str()
            .is_some_and(|o| o.contains("ok") && o.contains("err"))
    });
    // 16 runners + 4 checkers, plus the loop, the signal thread and the
    // control server's few; never one per pipe or per check run.
    let bound = 16 + 4 + 8;
    for _ in 0..20 {
        let n = threads(d.pid());
        assert!(
            n <= bound,
            "{n} threads for 16 jobs and 4 checks (bound {bound})"
        );
        let r = uds_request(&dir.socket(), "GET", "/v3/ping", "");
        assert_eq!(r.status, 200);
    }
}

#[test]
fn regression_jobs_replaced_by_reloads_leave_no_threads_behind() {
    // A runner and a checker each kept a handle to their own inbox, so they
    // never saw the loop let go of them: every reload that replaced a job
    // left two idle threads (and their descriptors) for good.
    let dir = Dir::new("reg-reload-threads");
    let jobs = |n: u32| {
        format!(
            r#"[{{ name: "app", exec: "sleep {n}", health: {{ exec: "true", interval: "50ms", ttl: 10 }} }}]"#
        )
    };
    let cfg = dir.cfg().stop_timeout("2s").jobs(&jobs(1000)).write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    // Workers are named after their job: `job-app`, `check-app`.
    let workers = |pid: i32| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/task")).map_or(vec![], |d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path().join("comm")).unwrap_or_default())
                .map(|n| n.trim().to_string())
                .filter(|n| n.starts_with("job-") || n.starts_with("check-"))
                .collect()
        })
    };
    let pid_of_app = || {
        status(&dir)["services"]
            .as_array()
            .and_then(|s| s.iter().find(|j| j["name"] == "app"))
            .and_then(|j| j["pid"].as_i64())
    };
    wait_until(TIMEOUT, "the first app running", || pid_of_app().is_some());
    let mut last = pid_of_app();
    for n in 1001..1006 {
        dir.cfg().stop_timeout("2s").jobs(&jobs(n)).write();
        let r = uds_request(&dir.socket(), "POST", "/v3/reload", "");
        assert_eq!(r.status, 200, "{r:?}");
        wait_until(TIMEOUT, "the replaced app running", || {
            let now = pid_of_app();
            now.is_some() && now != last
        });
        last = pid_of_app();
    }
    let pid = d.pid();
    wait_until(TIMEOUT, "one runner and one checker left", || {
        let mut w = workers(pid);
        w.sort();
        w == ["check-app", "job-app"]
    });
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", d.evidence());
}
