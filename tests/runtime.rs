//! The runtime end to end (SPEC §3.1–§3.4, §7 where job output is concerned):
//! restarts, intervals, timeouts, `when` triggers, signals, shutdown order and
//! grace periods, health transitions, the child environment, output logging,
//! reaping (as a subreaper and as PID 1) and log reopening.
//!
//! Behaviour is observed through files the jobs write. Where a handshake is
//! needed (a job must have finished before the next trigger), the DEBUG log's
//! `event: SOURCE.CODE` entries are used: the loop logs each event as it
//! publishes it.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::*;

fn start(cfg: &Cfg) -> Daemon {
    Daemon::start(&cfg.write(), &[])
}

/// Shut down with SIGTERM and expect exit 0.
fn expect_exit_0(d: &mut Daemon) {
    let code = d.wait_exit(TIMEOUT);
    if code != 0 {
        d.fail(&format!("exit code {code}, want 0"));
    }
}

/// `/proc/PID/cmdline` with spaces for NULs.
fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches('\0')
                .replace('\0', " ")
        })
        .unwrap_or_default()
}

/// `pid`'s children counted by (state, command line), e.g. `{('S', "sleep 1000"): 100}`.
fn describe_children(pid: i32) -> String {
    let mut by: std::collections::BTreeMap<(char, String), usize> = Default::default();
    for (p, st, comm) in children(pid) {
        let cmd = cmdline(p);
        *by.entry((st, if cmd.is_empty() { comm } else { cmd }))
            .or_default() += 1;
    }
    format!("{by:?}")
}

fn zombie_children(pid: i32) -> Vec<i32> {
    children(pid)
        .into_iter()
        .filter(|(_, st, _)| *st == 'Z')
        .map(|(p, _, _)| p)
        .collect()
}

/// Job output entries (JSON) of `job`.
fn output_of(d: &mut Daemon, job: &str) -> Vec<Value> {
    d.lines_so_far()
        .iter()
        .filter_map(|l| json(l))
        .filter(|v| v["job"] == job && v.get("stream").is_some())
        .collect()
}

// ---------------------------------------------------------------------------
// Restarts and intervals (§3.2)

#[test]
fn restarts_n_runs_n_plus_one_times_then_completes() {
    // A number and a numeric string mean the same; failures restart too.
    for (restarts, exit) in [("2", 0), ("\"2\"", 0), ("2", 1)] {
        let dir = Dir::new("restarts");
        let exec = dir.sh(
            "count",
            &format!("echo run >> {}; exit {exit}", dir.p("runs")),
        );
        let cfg = dir.cfg().jobs(&format!(
            "[{{ name: \"count\", exec: {exec}, restarts: {restarts} }}]"
        ));
        let mut d = start(&cfg);
        expect_exit_0(&mut d);
        assert_eq!(
            dir.lines("runs").len(),
            3,
            "restarts: {restarts}\n{}",
            d.evidence()
        );
        let code = if exit == 0 {
            "exitSuccess"
        } else {
            "exitFailed"
        };
        assert_eq!(d.events(&format!("count.{code}")), 3, "{}", d.evidence());
    }
}

#[test]
fn restarts_never_and_default_run_once() {
    let dir = Dir::new("never");
    let never = dir.sh(
        "never",
        &format!("echo run >> {}; exit 1", dir.p("never-runs")),
    );
    let dflt = dir.sh(
        "dflt",
        &format!("echo run >> {}; exit 1", dir.p("default-runs")),
    );
    let cfg = dir.cfg().jobs(&format!(
        "[{{ name: \"never\", exec: {never}, restarts: \"never\" }},
          {{ name: \"dflt\", exec: {dflt} }}]"
    ));
    let mut d = start(&cfg);
    // Failed jobs complete too, and containerpilot exits 0 (it is not a server).
    expect_exit_0(&mut d);
    assert_eq!(dir.lines("never-runs"), ["run"], "{}", d.evidence());
    assert_eq!(dir.lines("default-runs"), ["run"], "{}", d.evidence());
}

#[test]
fn restarts_unlimited_keeps_restarting_until_shutdown() {
    let dir = Dir::new("unlimited");
    let exec = dir.sh("loop", &format!("echo run >> {}", dir.p("runs")));
    let cfg = dir.cfg().jobs(&format!(
        "[{{ name: \"loop\", exec: {exec}, restarts: \"unlimited\" }}]"
    ));
    let mut d = start(&cfg);
    d.wait_started();
    d.wait_for("at least 5 runs", || dir.lines("runs").len() >= 5);
    terminate(&mut d);
}

#[test]
fn interval_job_with_restarts_n_runs_n_plus_one_times() {
    let dir = Dir::new("interval");
    let exec = dir.sh("tick", &format!("echo tick >> {}", dir.p("ticks")));
    let cfg = dir.cfg().jobs(&format!(
        "[{{ name: \"tick\", exec: {exec}, when: {{ interval: \"400ms\" }}, restarts: 2 }}]"
    ));
    let mut d = start(&cfg);
    expect_exit_0(&mut d);
    assert_eq!(dir.lines("ticks").len(), 3, "{}", d.evidence());
}

#[test]
fn interval_job_restarts_unlimited_by_default() {
    let dir = Dir::new("intervalu");
    let exec = dir.sh("tick", &format!("echo tick >> {}", dir.p("ticks")));
    let cfg = dir.cfg().jobs(&format!(
        "[{{ name: \"tick\", exec: {exec}, when: {{ interval: \"200ms\" }} }}]"
    ));
    let mut d = start(&cfg);
    d.wait_started();
    d.wait_for("4 ticks", || dir.lines("ticks").len() >= 4);
    terminate(&mut d);
}

#[test]
fn interval_tick_while_running_is_skipped_never_two_copies() {
    let dir = Dir::new("skip");
    let exec = dir.sh(
        "slow",
        &format!(
            "echo start >> {runs}\nwhile [ ! -e {go} ]; do sleep 0.02; done\necho end >> {runs}",
            runs = dir.p("runs"),
            go = dir.p("go")
        ),
    );
    let cfg = dir.cfg().jobs(&format!(
        "[{{ name: \"slow\", exec: {exec}, when: {{ interval: \"100ms\" }}, timeout: \"60s\" }}]"
    ));
    let mut d = start(&cfg);
    d.wait_for("first run", || dir.lines("runs") == ["start"]);
    // Three ticks come and go while the first run is still going.
    d.wait_count("3 skipped ticks", 3, TIMEOUT, |l| {
        is_job_line(l, "slow")
            && json(l).is_some_and(|v| v["msg"].as_str().unwrap_or("").contains("skipped"))
    });
    assert_eq!(
        dir.lines("runs"),
        ["start"],
        "no second copy\n{}",
        d.evidence()
    );
    dir.write("go", "");
    d.wait_for("a later run", || dir.lines("runs").len() >= 3);
    let runs = dir.lines("runs");
    assert_eq!(&runs[..3], ["start", "end", "start"], "{}", d.evidence());
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// Timeouts (§3.2)

#[test]
fn job_timeout_kills_the_whole_process_group() {
    let dir = Dir::new("timeout");
    let slow = dir.sh(
        "slow",
        &format!("sleep 1000 &\necho $! > {}\nwait", dir.p("grandchild")),
    );
    let after = dir.sh("after", &format!("echo failed > {}", dir.p("after")));
    let cfg = dir.cfg().jobs(&format!(
        "[{{ name: \"slow\", exec: {slow}, timeout: \"1s\" }},
          {{ name: \"after\", exec: {after}, when: {{ source: \"slow\", once: \"exitFailed\" }} }}]"
    ));
    let mut d = start(&cfg);
    expect_exit_0(&mut d);
    assert!(
        dir.exists("after"),
        "killed job publishes exitFailed\n{}",
        d.evidence()
    );
    let gc: i32 = dir
        .read("grandchild")
        .trim()
        .parse()
        .unwrap_or_else(|_| d.fail("the job wrote its grandchild's pid"));
    wait_until(TIMEOUT, "the grandchild to be gone", || !alive(gc));
}

#[test]
fn when_timeout_gives_up_and_the_job_never_runs() {
    let dir = Dir::new("whentimeout");
    let waiter = dir.sh("waiter", &format!("echo ran > {}", dir.p("waiter-ran")));
    let after = dir.sh(
        "after",
        &format!("echo stopped > {}", dir.p("waiter-stopped")),
    );
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "blocker", exec: ["sleep", "1000"] }},
            {{ name: "waiter", exec: {waiter},
               when: {{ source: "blocker", once: "exitSuccess", timeout: "300ms" }} }},
            {{ name: "after", exec: {after}, when: {{ source: "waiter", once: "stopped" }} }}]"#
    ));
    let mut d = start(&cfg);
    d.wait_for("waiter to reach stopped", || dir.exists("waiter-stopped"));
    let logged = d.count(|l| {
        is_job_line(l, "waiter")
            && json(l).is_some_and(|v| v["msg"].as_str().unwrap_or("").contains("giving up"))
    });
    assert_eq!(logged, 1, "giving up is logged\n{}", d.evidence());
    terminate(&mut d);
    assert!(!dir.exists("waiter-ran"), "{}", d.evidence());
    assert_eq!(d.events("waiter.stopping"), 1, "{}", d.evidence());
}

// ---------------------------------------------------------------------------
// `when` on other jobs' events and on signals (§3.1, §3.2)

#[test]
fn once_on_exit_success_and_exit_failed() {
    let dir = Dir::new("onexit");
    let rec = |name: &str, word: &str| dir.sh(name, &format!("echo {word} >> {}", dir.p("fired")));
    let (on_failed, on_success, on_win) = (
        rec("on-failed", "failed"),
        rec("on-success", "success"),
        rec("on-win", "win"),
    );
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "failer", exec: ["sh", "-c", "exit 3"] }},
            {{ name: "winner", exec: ["sh", "-c", "exit 0"] }},
            {{ name: "on-failed", exec: {on_failed}, when: {{ source: "failer", once: "exitFailed" }} }},
            {{ name: "on-success", exec: {on_success}, when: {{ source: "failer", once: "exitSuccess" }} }},
            {{ name: "on-win", exec: {on_win}, when: {{ source: "winner", once: "exitSuccess" }} }}]"#
    ));
    let mut d = start(&cfg);
    // on-success can never fire once failer has stopped: everything completes.
    expect_exit_0(&mut d);
    let mut fired = dir.lines("fired");
    fired.sort();
    assert_eq!(fired, ["failed", "win"], "{}", d.evidence());
    assert_eq!(d.events("on-success.stopped"), 1, "{}", d.evidence());
}

#[test]
fn once_fires_the_first_time_each_fires_every_time() {
    let dir = Dir::new("onceeach");
    let each = dir.sh("each", &format!("echo each >> {}", dir.p("each-runs")));
    let once = dir.sh("once", &format!("echo once >> {}", dir.p("once-runs")));
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "src", exec: ["sh", "-c", "exit 0"], when: {{ source: "SIGHUP" }} }},
            {{ name: "each", exec: {each}, when: {{ source: "src", each: "exitSuccess" }} }},
            {{ name: "once", exec: {once}, when: {{ source: "src", once: "exitSuccess" }} }}]"#
    ));
    let mut d = start(&cfg);
    d.wait_started();
    for k in 1..=3 {
        d.signal(Signal::SIGHUP);
        // `each` has finished before the next trigger, so none is dropped.
        d.wait_event("each.exitSuccess", k);
        if k == 1 {
            d.wait_event("once.exitSuccess", 1);
        }
    }
    terminate(&mut d);
    assert_eq!(dir.lines("each-runs").len(), 3, "{}", d.evidence());
    assert_eq!(dir.lines("once-runs").len(), 1, "{}", d.evidence());
    // Shutdown waited for every process, so any extra run shows up here.
    let once_exits = d.events("once.exitSuccess") + d.events("once.exitFailed");
    assert_eq!(once_exits, 1, "{}", d.evidence());
}

#[test]
fn once_on_healthy() {
    let dir = Dir::new("onhealthy");
    let on = dir.sh("on-healthy", &format!("echo up > {}", dir.p("healthy")));
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "svc", exec: ["sleep", "1000"], health: {{ exec: "true", interval: "100ms" }} }},
            {{ name: "on-healthy", exec: {on}, when: {{ source: "svc", once: "healthy" }} }}]"#
    ));
    let mut d = start(&cfg);
    d.wait_for("on-healthy to run", || dir.exists("healthy"));
    terminate(&mut d);
}

#[test]
fn sighup_and_sigusr2_trigger_jobs_on_every_signal() {
    let dir = Dir::new("signals");
    let hup = dir.sh("hup", &format!("echo hup >> {}", dir.p("sig")));
    let usr2 = dir.sh("usr2", &format!("echo usr2 >> {}", dir.p("sig")));
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "hup", exec: {hup}, when: {{ source: "SIGHUP" }} }},
            {{ name: "usr2", exec: {usr2}, when: {{ source: "SIGUSR2" }} }}]"#
    ));
    let mut d = start(&cfg);
    d.wait_started();
    assert!(!dir.exists("sig"), "signal jobs do not run at start-up");
    for k in 1..=2 {
        d.signal(Signal::SIGHUP);
        d.wait_event("hup.exitSuccess", k);
        d.signal(Signal::SIGUSR2);
        d.wait_event("usr2.exitSuccess", k);
    }
    terminate(&mut d);
    assert_eq!(
        dir.lines("sig"),
        ["hup", "usr2", "hup", "usr2"],
        "{}",
        d.evidence()
    );
}

#[test]
fn trigger_while_running_is_logged_and_dropped() {
    let dir = Dir::new("dropped");
    let slow = dir.sh(
        "slow",
        &format!(
            "echo run >> {runs}\nwhile [ ! -e {go} ]; do sleep 0.02; done",
            runs = dir.p("runs"),
            go = dir.p("go")
        ),
    );
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "slow", exec: {slow}, when: {{ source: "SIGHUP" }} }}]"#
    ));
    let mut d = start(&cfg);
    d.wait_started();
    d.signal(Signal::SIGHUP);
    d.wait_for("the first run", || dir.lines("runs").len() == 1);
    d.signal(Signal::SIGHUP);
    d.wait_json("the second SIGHUP is dropped", TIMEOUT, |v| {
        v["job"] == "slow" && v["msg"].as_str().unwrap_or("").contains("ignored")
    });
    dir.write("go", "");
    d.wait_event("slow.exitSuccess", 1);
    d.signal(Signal::SIGHUP);
    d.wait_event("slow.exitSuccess", 2);
    terminate(&mut d);
    assert_eq!(dir.lines("runs").len(), 2, "{}", d.evidence());
}

// ---------------------------------------------------------------------------
// Completion and exit codes (§3.2, §3.3)

#[test]
fn all_jobs_complete_then_exit_0() {
    let dir = Dir::new("complete");
    let cfg = dir.cfg().jobs(
        r#"[{ name: "ok", exec: ["sh", "-c", "exit 0"] },
            { name: "bad", exec: ["sh", "-c", "exit 5"] }]"#,
    );
    let mut d = start(&cfg);
    expect_exit_0(&mut d);
    for e in [
        "ok.exitSuccess",
        "bad.exitFailed",
        "ok.stopped",
        "bad.stopped",
    ] {
        assert_eq!(d.events(e), 1, "{e}\n{}", d.evidence());
    }
}

#[test]
fn no_jobs_exits_0_with_a_warning() {
    let dir = Dir::new("nojobs");
    let cfg = dir.cfg().jobs("[]");
    let mut d = start(&cfg);
    expect_exit_0(&mut d);
    let warned = d.count(|l| {
        json(l).is_some_and(|v| {
            v["level"] == "warning" && v["msg"].as_str().unwrap_or("").contains("nothing to do")
        })
    });
    assert_eq!(warned, 1, "{}", d.evidence());
}

#[test]
fn missing_executable_fails_clearly_and_restarts_still_apply() {
    let dir = Dir::new("noexec");
    let cfg = dir
        .cfg()
        .jobs(r#"[{ name: "ghost", exec: "/nonexistent/prog --flag", restarts: 2 }]"#);
    let mut d = start(&cfg);
    expect_exit_0(&mut d);
    assert_eq!(d.events("ghost.exitFailed"), 3, "{}", d.evidence());
    assert_eq!(d.events("ghost.exitSuccess"), 0, "{}", d.evidence());
    let errors = d.count(|l| {
        json(l).is_some_and(|v| {
            let m = v["msg"].as_str().unwrap_or("");
            v["level"] == "error" && m.contains("ghost") && m.contains("/nonexistent/prog")
        })
    });
    // The same failure is logged once a minute at most (SPEC §3.2); the
    // repeats go to DEBUG.
    assert_eq!(
        errors,
        1,
        "a failed start is logged as an error, its repeats are not\n{}",
        d.evidence()
    );
}

// ---------------------------------------------------------------------------
// Shutdown (§3.3)

#[test]
fn prestop_and_poststop_run_in_order_at_shutdown() {
    let dir = Dir::new("prepost");
    let order = dir.p("order");
    let app = dir.sh(
        "app",
        &format!(
            "trap 'echo app-term >> {order}; exit 0' TERM\necho app-ready >> {order}\nsleep 1000 &\nwait"
        ),
    );
    let pre = dir.sh("prestop", &format!("echo prestop >> {order}"));
    let post = dir.sh("poststop", &format!("echo poststop >> {order}"));
    let cfg = dir.cfg().stop_timeout("10s").jobs(&format!(
        r#"[{{ name: "app", exec: {app}, stopTimeout: "10s" }},
            {{ name: "prestop", exec: {pre}, when: {{ source: "app", once: "stopping" }} }},
            {{ name: "poststop", exec: {post}, when: {{ source: "app", once: "stopped" }} }}]"#
    ));
    let mut d = start(&cfg);
    d.wait_started();
    d.wait_for("app ready", || dir.lines("order") == ["app-ready"]);
    d.signal(Signal::SIGTERM);
    expect_exit_0(&mut d);
    assert_eq!(
        dir.lines("order"),
        ["app-ready", "prestop", "app-term", "poststop"],
        "{}",
        d.evidence()
    );
    // The events, in the order SPEC §3.3 gives.
    for e in [
        "global.shutdown",
        "app.stopping",
        "prestop.exitSuccess",
        "prestop.stopped",
        "app.exitSuccess",
        "app.stopped",
        "poststop.exitSuccess",
    ] {
        let want = format!("event: {e}");
        d.wait_line(&want, TIMEOUT, |l| is_msg(l, &want));
    }
    assert!(!dir.socket().exists(), "control socket removed");
}

#[test]
fn sigint_shuts_down_like_sigterm() {
    let dir = Dir::new("sigint");
    let app = dir.sh(
        "app",
        &format!("echo $$ > {}\nexec sleep 1000", dir.p("pid")),
    );
    let cfg = dir
        .cfg()
        .jobs(&format!(r#"[{{ name: "app", exec: {app} }}]"#));
    let mut d = start(&cfg);
    d.wait_started();
    d.wait_for("app pid", || !dir.read("pid").is_empty());
    let pid: i32 = dir.read("pid").trim().parse().expect("pid");
    d.signal(Signal::SIGINT);
    expect_exit_0(&mut d);
    wait_until(TIMEOUT, "the job to be gone", || !alive(pid));
    assert_eq!(
        d.events("app.exitFailed"),
        1,
        "killed by SIGTERM\n{}",
        d.evidence()
    );
}

/// A job that ignores SIGTERM (the trap is inherited by its `sleep`, and
/// signals go to the whole group); writes the sleep's pid, then "ready".
fn stubborn(dir: &Dir) -> String {
    dir.sh(
        "stubborn",
        &format!(
            "trap '' TERM\nsleep 1000 &\necho $! > {}\necho ready > {}\nwait",
            dir.p("pid"),
            dir.p("ready")
        ),
    )
}

#[test]
fn job_ignoring_sigterm_is_killed_after_the_global_stop_timeout() {
    let dir = Dir::new("stubborn");
    let exec = stubborn(&dir);
    let cfg = dir
        .cfg()
        .stop_timeout("500ms")
        .jobs(&format!(r#"[{{ name: "stubborn", exec: {exec} }}]"#));
    let mut d = start(&cfg);
    d.wait_started();
    d.wait_for("job ready", || dir.exists("ready"));
    let pid: i32 = dir.read("pid").trim().parse().expect("pid");
    d.signal(Signal::SIGTERM);
    expect_exit_0(&mut d);
    wait_until(TIMEOUT, "the job's sleep to be gone", || !alive(pid));
    assert_eq!(d.events("stubborn.exitFailed"), 1, "{}", d.evidence());
    assert_eq!(d.events("stubborn.stopped"), 1, "{}", d.evidence());
}

#[test]
fn second_sigterm_kills_at_once() {
    let dir = Dir::new("twice");
    let exec = stubborn(&dir);
    // A grace period far beyond TIMEOUT: only the second SIGTERM can end this in time.
    let cfg = dir
        .cfg()
        .stop_timeout("1h")
        .jobs(&format!(r#"[{{ name: "stubborn", exec: {exec} }}]"#));
    let mut d = start(&cfg);
    d.wait_started();
    d.wait_for("job ready", || dir.exists("ready"));
    let pid: i32 = dir.read("pid").trim().parse().expect("pid");
    d.signal(Signal::SIGTERM);
    d.wait_event("global.shutdown", 1);
    d.wait_event("stubborn.stopping", 1);
    d.signal(Signal::SIGTERM);
    expect_exit_0(&mut d);
    wait_until(TIMEOUT, "the job's sleep to be gone", || !alive(pid));
}

// ---------------------------------------------------------------------------
// Health checks (§3.2)

#[test]
fn health_events_only_on_transitions() {
    let dir = Dir::new("health");
    let check = dir.sh("check", &format!("echo checked\ntest -e {}", dir.p("ok")));
    let up = dir.sh(
        "on-up",
        &format!("echo healthy >> {}", dir.p("transitions")),
    );
    let down = dir.sh(
        "on-down",
        &format!("echo unhealthy >> {}", dir.p("transitions")),
    );
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "svc", exec: ["sleep", "1000"],
               health: {{ exec: {check}, interval: "100ms", timeout: "5s" }} }},
            {{ name: "on-up", exec: {up}, when: {{ source: "svc", each: "healthy" }} }},
            {{ name: "on-down", exec: {down}, when: {{ source: "svc", each: "unhealthy" }} }}]"#
    ));
    let is_check = |l: &str| {
        json(l).is_some_and(|v| {
            v["msg"] == "checked" && v["check"].as_str().is_some_and(|c| c.contains("svc"))
        })
    };
    let mut d = start(&cfg);
    // The first result counts as a change.
    let mut want = vec!["unhealthy"];
    d.wait_for("first transition", || dir.lines("transitions") == want);
    d.wait_event("on-down.exitSuccess", 1);
    let (mut ups, mut downs) = (0, 1);
    for (touch, word) in [(true, "healthy"), (false, "unhealthy"), (true, "healthy")] {
        // Several checks with an unchanged result publish nothing.
        let seen = d.count(is_check);
        d.wait_count("3 more checks", seen + 3, TIMEOUT, is_check);
        assert_eq!(dir.lines("transitions"), want, "{}", d.evidence());
        if touch {
            dir.write("ok", "");
        } else {
            std::fs::remove_file(dir.path("ok")).expect("remove ok");
        }
        want.push(word);
        d.wait_for(&format!("transition to {word}"), || {
            dir.lines("transitions") == want
        });
        // The observer has finished before its next trigger can come.
        if touch {
            ups += 1;
            d.wait_event("on-up.exitSuccess", ups);
        } else {
            downs += 1;
            d.wait_event("on-down.exitSuccess", downs);
        }
    }
    let seen = d.count(is_check);
    d.wait_count("3 more checks", seen + 3, TIMEOUT, is_check);
    assert_eq!(d.events("svc.healthy"), 2, "{}", d.evidence());
    assert_eq!(d.events("svc.unhealthy"), 2, "{}", d.evidence());
    terminate(&mut d);
    assert_eq!(dir.lines("transitions"), want, "{}", d.evidence());
}

#[test]
fn health_check_timeout_kills_the_check_and_counts_as_failure() {
    let dir = Dir::new("hctimeout");
    let check = dir.sh(
        "check",
        &format!("sleep 1000 &\necho $! >> {}\nwait", dir.p("check-pids")),
    );
    let down = dir.sh("on-down", &format!("echo down > {}", dir.p("down")));
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "svc", exec: ["sleep", "1000"],
               health: {{ exec: {check}, interval: "500ms", timeout: "200ms" }} }},
            {{ name: "on-down", exec: {down}, when: {{ source: "svc", once: "unhealthy" }} }}]"#
    ));
    let mut d = start(&cfg);
    d.wait_for("the unhealthy event", || dir.exists("down"));
    let first: i32 = dir.lines("check-pids")[0].parse().expect("pid");
    d.wait_for("the timed-out check's sleep to be gone", || !alive(first));
    assert_eq!(d.events("svc.healthy"), 0, "{}", d.evidence());
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// Child environment (§3.2, §3.4)

/// `env` written atomically (a reader never sees half a file).
fn dump_env(dir: &Dir, file: &str) -> String {
    format!("env > {f}.tmp && mv {f}.tmp {f}", f = dir.p(file))
}

fn env_map(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn child_environment_has_containerpilot_and_job_pids() {
    let dir = Dir::new("env");
    let app = dir.sh(
        "app",
        &format!(
            "echo $$ > {}\n{}\nexec sleep 1000",
            dir.p("app-pid"),
            dump_env(&dir, "app-env")
        ),
    );
    let check = dir.sh("check", &dump_env(&dir, "check-env"));
    let reader = dir.sh("reader", &dump_env(&dir, "reader-env"));
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "my-app", exec: {app}, health: {{ exec: {check}, interval: "100ms" }} }},
            {{ name: "reader", exec: {reader}, when: {{ source: "my-app", once: "healthy" }} }}]"#
    ));
    let mut d = Daemon::start(&cfg.write(), &[("FOO", "bar=baz")]);
    d.wait_for("reader to run", || dir.exists("reader-env"));
    let cp_pid = d.pid().to_string();
    let app_pid = dir.read("app-pid").trim().to_string();
    let app_env = env_map(&dir.read("app-env"));
    let check_env = env_map(&dir.read("check-env"));
    let reader_env = env_map(&dir.read("reader-env"));
    let ev = d.evidence();
    for (who, env) in [
        ("app", &app_env),
        ("check", &check_env),
        ("reader", &reader_env),
    ] {
        assert_eq!(
            env.get("CONTAINERPILOT_PID"),
            Some(&cp_pid),
            "{who}\n{env:?}\n{ev}"
        );
        assert_eq!(
            env.get("FOO").map(String::as_str),
            Some("bar=baz"),
            "{who}: our env is inherited\n{ev}"
        );
    }
    // JOB upper-cased, `-` as `_`; not visible to the process itself.
    assert_eq!(
        app_env.get("CONTAINERPILOT_MY_APP_PID"),
        None,
        "{app_env:?}"
    );
    assert_eq!(
        check_env.get("CONTAINERPILOT_MY_APP_PID"),
        Some(&app_pid),
        "{check_env:?}"
    );
    assert_eq!(
        reader_env.get("CONTAINERPILOT_MY_APP_PID"),
        Some(&app_pid),
        "{reader_env:?}"
    );
    terminate(&mut d);
}

#[test]
fn child_environment_has_advertised_job_ips() {
    let dir = Dir::new("envip");
    let reader = dir.sh("reader", &dump_env(&dir, "reader-env"));
    // Consul is configured (so `web` is advertised) but nothing listens there:
    // an unreachable agent never stops jobs (SPEC §6).
    let consul = format!("consul: \"127.0.0.1:{}\"", free_port());
    let cfg = dir.cfg().top(&consul).jobs(&format!(
        r#"[{{ name: "web-front", port: 8080, interfaces: ["static:10.11.12.13"],
               health: {{ exec: "true", interval: "100ms", ttl: "10s" }} }},
            {{ name: "reader", exec: {reader} }}]"#
    ));
    let mut d = start(&cfg);
    d.wait_for("reader to run", || dir.exists("reader-env"));
    let env = env_map(&dir.read("reader-env"));
    assert_eq!(
        env.get("CONTAINERPILOT_WEB_FRONT_IP").map(String::as_str),
        Some("10.11.12.13"),
        "{env:?}\n{}",
        d.evidence()
    );
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// Job output (§3.2, §7)

#[test]
fn job_output_is_logged_with_job_and_pid() {
    let dir = Dir::new("output");
    let talker = dir.sh(
        "talker",
        "echo \"pid=$$\"\necho to-stderr >&2\nprintf partial-no-newline",
    );
    let long = dir.sh("long", "head -c 40000 /dev/zero | tr '\\0' a\necho");
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "talker", exec: {talker} }}, {{ name: "long", exec: {long} }}]"#
    ));
    let mut d = start(&cfg);
    expect_exit_0(&mut d);
    let out = output_of(&mut d, "talker");
    let ev = d.evidence();
    let msgs: Vec<&str> = out
        .iter()
        .map(|v| v["msg"].as_str().unwrap_or(""))
        .collect();
    let pid_line = msgs
        .iter()
        .find(|m| m.starts_with("pid="))
        .unwrap_or_else(|| panic!("{ev}"));
    let pid: u64 = pid_line["pid=".len()..].parse().expect("pid");
    let mut sorted = msgs.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["partial-no-newline", *pid_line, "to-stderr"],
        "{ev}"
    );
    for v in &out {
        assert_eq!(
            v["pid"], pid,
            "pid field is the process's pid (a number)\n{ev}"
        );
        assert_eq!(v["level"], "info", "{ev}");
        let want = if v["msg"] == "to-stderr" {
            "stderr"
        } else {
            "stdout"
        };
        assert_eq!(v["stream"], want, "{ev}");
    }
    // A very long line is split, never dropped.
    let long_out = output_of(&mut d, "long");
    let total: usize = long_out
        .iter()
        .map(|v| v["msg"].as_str().unwrap_or("").len())
        .sum();
    assert!(long_out.len() >= 2, "split into several entries\n{ev}");
    assert!(
        long_out
            .iter()
            .all(|v| v["msg"].as_str().unwrap_or("x").bytes().all(|b| b == b'a')),
        "{ev}"
    );
    assert_eq!(total, 40000, "{ev}");
}

#[test]
fn job_output_in_default_and_text_formats() {
    for format in ["default", "text"] {
        let dir = Dir::new("fmt");
        let exec = dir.sh("talker", "echo \"hello $$\"");
        let cfg = dir
            .cfg()
            .logging(&format!("{{ format: \"{format}\" }}"))
            .jobs(&format!(r#"[{{ name: "talker", exec: {exec} }}]"#));
        let mut d = start(&cfg);
        expect_exit_0(&mut d);
        let lines = d.lines_so_far();
        let ev = d.evidence();
        let line = lines
            .iter()
            .find(|l| l.contains("hello "))
            .unwrap_or_else(|| panic!("{format}: job output logged\n{ev}"));
        // The job prints its own pid last: `hello PID`.
        let pid = line
            .split("hello ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap_or_else(|| panic!("pid after 'hello ': {line}"));
        if format == "default" {
            // TIME NAME PID MESSAGE, no level (as 3.x).
            let (_, rest) =
                default_line(line).unwrap_or_else(|| panic!("RFC 3339 time first: {line}"));
            assert_eq!(rest, format!("talker {pid} hello {pid}"), "{ev}");
        } else {
            assert!(line.starts_with("time=\""), "{line}");
            assert!(
                line.contains(&format!(
                    " level=info msg=\"hello {pid}\" job=talker pid={pid} stream=stdout"
                )),
                "{line}"
            );
        }
    }
}

#[test]
fn job_output_is_filtered_by_level() {
    let dir = Dir::new("level");
    let exec = dir.sh(
        "talker",
        &format!("echo should-not-appear\necho ran > {}", dir.p("ran")),
    );
    let cfg = dir
        .cfg()
        .logging("{ level: \"WARN\", format: \"json\" }")
        .jobs(&format!(r#"[{{ name: "talker", exec: {exec} }}]"#));
    let mut d = start(&cfg);
    expect_exit_0(&mut d);
    assert!(dir.exists("ran"), "{}", d.evidence());
    assert_eq!(
        d.count(|l| l.contains("should-not-appear")),
        0,
        "{}",
        d.evidence()
    );
}

#[test]
fn raw_logging_passes_output_untouched() {
    let dir = Dir::new("raw");
    let exec = dir.sh("raw", "echo '  raw out {\"not\": json}'\necho raw-err >&2");
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "raw", exec: {exec}, logging: {{ raw: true }} }}]"#
    ));
    let mut d = start(&cfg);
    expect_exit_0(&mut d);
    d.wait_line("raw stdout", TIMEOUT, |l| l == "  raw out {\"not\": json}");
    assert_eq!(d.count(|l| l == "raw-err"), 1, "{}", d.evidence());
    assert_eq!(
        output_of(&mut d, "raw").len(),
        0,
        "not logged as entries\n{}",
        d.evidence()
    );
}

// ---------------------------------------------------------------------------
// Reaping (§3.4)

/// A job leaving `n` orphans `sleep 1000` and `n` orphans `sleep 0.1`, then
/// writing `done`.
fn orphan_maker(dir: &Dir, n: usize) -> String {
    dir.sh(
        "orphans",
        &format!(
            "for i in $(seq {n}); do (sleep 1000 &); (sleep 0.1 &); done\necho done > {}",
            dir.p("done")
        ),
    )
}

/// Wait until `cp` has adopted exactly `n` live `sleep 1000` orphans, has no
/// `sleep 0.1` left and no zombie; SIGKILL the orphans; wait until they are
/// all reaped.
fn check_orphans_reaped(d: &mut Daemon, cp: i32, n: usize) {
    let long = |cp: i32| -> Vec<i32> {
        children(cp)
            .into_iter()
            .filter(|(p, st, _)| *st != 'Z' && cmdline(*p) == "sleep 1000")
            .map(|(p, _, _)| p)
            .collect()
    };
    let settled = poll_until(TIMEOUT, || {
        let kids = children(cp);
        long(cp).len() == n
            && !kids.iter().any(|(p, _, _)| cmdline(*p) == "sleep 0.1")
            && !kids.iter().any(|(_, st, _)| *st == 'Z')
    });
    if !settled {
        let kids = describe_children(cp);
        d.fail(&format!(
            "want {n} adopted `sleep 1000` and no zombies; children now: {kids}"
        ));
    }
    for p in long(cp) {
        d.signal_pid(p, Signal::SIGKILL);
    }
    let reaped = poll_until(TIMEOUT, || {
        children(cp)
            .iter()
            .all(|(p, _, _)| !cmdline(*p).starts_with("sleep"))
            && zombie_children(cp).is_empty()
    });
    if !reaped {
        let kids = describe_children(cp);
        d.fail(&format!("orphans not reaped; children now: {kids}"));
    }
}

#[test]
fn orphans_are_reaped_as_a_subreaper() {
    let dir = Dir::new("orphans");
    let exec = orphan_maker(&dir, 100);
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "keep", exec: ["tail", "-f", "/dev/null"] }}, {{ name: "orphans", exec: {exec} }}]"#
    ));
    let mut d = start(&cfg);
    d.wait_event("orphans.exitSuccess", 1);
    assert!(dir.exists("done"), "{}", d.evidence());
    let cp = d.pid();
    check_orphans_reaped(&mut d, cp, 100);
    terminate(&mut d);
}

#[test]
fn orphans_are_reaped_as_pid_1() {
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            skip(&format!(
                "orphans_are_reaped_as_pid_1: unshare --pid failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return;
        }
        Err(e) => {
            skip(&format!(
                "orphans_are_reaped_as_pid_1: cannot run unshare: {e}"
            ));
            return;
        }
    }
    let dir = Dir::new("pid1");
    let exec = orphan_maker(&dir, 100);
    let keep = dir.sh(
        "keep",
        &format!(
            "echo $CONTAINERPILOT_PID > {}\nexec tail -f /dev/null",
            dir.p("cp-pid")
        ),
    );
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "keep", exec: {keep} }}, {{ name: "orphans", exec: {exec} }}]"#
    ));
    let path = cfg.write();
    let mut d = Daemon::spawn(
        &["unshare", "--pid", "--fork", "--mount-proc"],
        &["-config", path.to_str().unwrap()],
        &[],
        Some(&path),
    );
    d.wait_event("orphans.exitSuccess", 1);
    d.wait_for("keep wrote CONTAINERPILOT_PID", || {
        !dir.read("cp-pid").is_empty()
    });
    assert_eq!(
        dir.read("cp-pid").trim(),
        "1",
        "CONTAINERPILOT_PID is 1 as PID 1"
    );
    // Seen from here, containerpilot has its outer pid.
    let cp = d.find_pid();
    check_orphans_reaped(&mut d, cp, 100);
    d.signal_pid(cp, Signal::SIGTERM);
    let code = d.wait_exit(TIMEOUT);
    if code != 0 {
        d.fail(&format!("exit code {code} after SIGTERM"));
    }
}

#[test]
fn exit_codes_stay_right_while_orphans_are_reaped() {
    let dir = Dir::new("exitcodes");
    let maker = |name: &str, code: i32| {
        dir.sh(
            name,
            &format!("for i in $(seq 30); do (true &); (sleep 0.01 &); done\nexit {code}"),
        )
    };
    let (bad, good) = (maker("bad", 3), maker("good", 0));
    let cfg = dir.cfg().jobs(&format!(
        r#"[{{ name: "bad", exec: {bad}, restarts: 4 }}, {{ name: "good", exec: {good}, restarts: 4 }}]"#
    ));
    let mut d = start(&cfg);
    expect_exit_0(&mut d);
    let ev = d.evidence();
    assert_eq!(d.events("bad.exitFailed"), 5, "{ev}");
    assert_eq!(d.events("bad.exitSuccess"), 0, "{ev}");
    assert_eq!(d.events("good.exitSuccess"), 5, "{ev}");
    assert_eq!(d.events("good.exitFailed"), 0, "{ev}");
}

// ---------------------------------------------------------------------------
// Log file reopening (§3.4, §7)

#[test]
fn sigusr1_reopens_the_log_file() {
    let dir = Dir::new("usr1");
    let log = dir.p("cp.log");
    let hup = dir.sh("hup", "echo after-rotate");
    let cfg = dir
        .cfg()
        .logging(&format!(
            "{{ level: \"DEBUG\", format: \"json\", output: {} }}",
            js(&log)
        ))
        .jobs(&format!(
            r#"[{{ name: "hup", exec: {hup}, when: {{ source: "SIGHUP" }} }}]"#
        ));
    let mut d = start(&cfg);
    d.wait_for("startup in the log file", || {
        dir.lines("cp.log")
            .iter()
            .any(|l| is_msg(l, "event: global.startup"))
    });
    std::fs::rename(dir.path("cp.log"), dir.path("cp.log.1")).expect("rotate");
    d.signal(Signal::SIGUSR1);
    d.wait_for("a fresh cp.log", || dir.exists("cp.log"));
    d.signal(Signal::SIGHUP);
    let is_after =
        |l: &String| json(l).is_some_and(|v| v["job"] == "hup" && v["msg"] == "after-rotate");
    d.wait_for("job output in the new file", || {
        dir.lines("cp.log").iter().any(is_after)
    });
    assert!(
        !dir.lines("cp.log.1").iter().any(is_after),
        "the old file is left alone"
    );
    terminate(&mut d);
    assert_eq!(
        d.lines_so_far().len(),
        0,
        "nothing on stdout/stderr\n{}",
        d.evidence()
    );
}

// ---------------------------------------------------------------------------
// Regressions

/// Regression: when the last job exited, containerpilot could exit before
/// the output threads had logged what the job wrote last (up to a pipe's
/// worth), and that output was lost. A process's exit is now reported only
/// once its output is logged, so every line precedes its exit event.
#[test]
fn regression_output_written_just_before_the_last_exit_is_all_logged() {
    let dir = Dir::new("lastout");
    // ~110 KB in 20 000 short lines: the last pipe-full is still unread at exit.
    let exec = dir.sh("burst", "seq 20000\nprintf end");
    let cfg = dir
        .cfg()
        .jobs(&format!(r#"[{{ name: "burst", exec: {exec} }}]"#));
    let mut d = start(&cfg);
    expect_exit_0(&mut d);
    let lines = d.lines_so_far();
    let out: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            is_job_line(l, "burst") && json(l).is_some_and(|v| v.get("stream").is_some())
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(out.len(), 20001, "every line logged\n{}", d.evidence());
    let last = json(&lines[*out.last().unwrap()]).unwrap();
    assert_eq!(last["msg"], "end", "{}", d.evidence());
    let exit = lines
        .iter()
        .position(|l| is_msg(l, "event: burst.exitSuccess"))
        .unwrap_or_else(|| d.fail("no exit event"));
    assert!(
        out.iter().all(|&i| i < exit),
        "output is logged before the exit event\n{}",
        d.evidence()
    );
}
