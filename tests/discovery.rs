//! Discovery through a Consul agent (SPEC §6, with §2.3, §3.2, §3.3, §3.6
//! and §5): the real binary, real job processes and real sockets, against
//! `support::consul::FakeConsul`, the one test double of the project.
//!
//! Every wait is for a condition in the double, the log or a file, with a
//! deadline. "Must not happen" is checked against a later sentinel: a
//! registration that must come *first*, a request log read in order, or
//! event counts read after a later event.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::consul::{FakeConsul, Recorded, State};
use crate::support::*;

const REGISTER: &str = "/v1/agent/service/register";

fn hostname() -> String {
    nix::unistd::gethostname()
        .expect("gethostname")
        .into_string()
        .expect("a UTF-8 hostname")
}

/// The ID containerpilot registers job `name` under: `NAME-HOSTNAME`.
fn sid(name: &str) -> String {
    format!("{name}-{}", hostname())
}

fn check_id(name: &str) -> String {
    format!("service:{}", sid(name))
}

fn update_path(name: &str) -> String {
    format!("/v1/agent/check/update/{}", check_id(name))
}

fn deregister_path(name: &str) -> String {
    format!("/v1/agent/service/deregister/{}", sid(name))
}

/// Whether `r` is about service `name`: its registration, a check update
/// or its deregistration.
fn is_about(r: &Recorded, name: &str) -> bool {
    (r.path == REGISTER && r.json()["ID"] == sid(name))
        || r.path == update_path(name)
        || r.path == deregister_path(name)
}

/// The requests about service `name`, in order, each as `register STATUS`,
/// `update STATUS` or `deregister`, followed by `-> CODE` (`-> none` when
/// the double dropped it).
fn ops(st: &State, name: &str) -> Vec<String> {
    st.requests
        .iter()
        .filter(|r| is_about(r, name))
        .map(|r| {
            let what = if r.path == REGISTER {
                format!(
                    "register {}",
                    r.json()["Check"]["Status"].as_str().unwrap_or("?")
                )
            } else if r.path == update_path(name) {
                format!("update {}", r.json()["Status"].as_str().unwrap_or("?"))
            } else {
                "deregister".to_string()
            };
            match r.status {
                Some(s) => format!("{what} -> {s}"),
                None => format!("{what} -> none"),
            }
        })
        .collect()
}

/// As [`ops`], for the requests from position `from` of the log on.
fn ops_since(st: &State, name: &str, from: usize) -> Vec<String> {
    let mut tail = st.clone();
    tail.requests = st.requests[from.min(st.requests.len())..].to_vec();
    ops(&tail, name)
}

/// As [`ops`], for the requests before position `to` of the log.
fn ops_until(st: &State, name: &str, to: usize) -> Vec<String> {
    let mut head = st.clone();
    head.requests.truncate(to);
    ops(&head, name)
}

fn registered(st: &State, name: &str) -> bool {
    st.services.contains_key(&sid(name))
}

/// The status and output of service `name`'s check, if it has one.
fn check(st: &State, name: &str) -> Option<(String, String)> {
    st.checks
        .get(&check_id(name))
        .map(|c| (c.status.clone(), c.output.clone()))
}

fn passing(st: &State, name: &str) -> bool {
    check(st, name).is_some_and(|(s, _)| s == "passing")
}

/// What the double knows, for failure messages.
fn consul_log(fake: &FakeConsul) -> String {
    let st = fake.state();
    let mut s = format!(
        "--- fake Consul ---\nservices: {:?}\nchecks: {:?}\nrequests:\n",
        st.services.keys().collect::<Vec<_>>(),
        st.checks
            .values()
            .map(|c| (&c.id, &c.status, &c.output))
            .collect::<Vec<_>>()
    );
    for r in &st.requests {
        s.push_str(&format!("  {} -> {:?} {}\n", r.line(), r.status, r.text()));
    }
    s
}

/// Wait until `pred` holds in the double; on timeout fail with the
/// daemon's output and the double's request log.
fn expect(d: &mut Daemon, fake: &FakeConsul, what: &str, pred: impl Fn(&State) -> bool) {
    if !fake.wait_for(TIMEOUT, pred) {
        let log = consul_log(fake);
        d.fail(&format!(
            "timed out after {TIMEOUT:?} waiting in the fake Consul for: {what}\n{log}"
        ));
    }
}

/// Assert with the daemon's output and the double's log as evidence.
macro_rules! check {
    ($d:expr, $fake:expr, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            let log = consul_log($fake);
            let why = format!($($msg)+);
            $d.fail(&format!("{why}\n{log}"));
        }
    };
}

/// An advertised job `name` whose process runs until it is stopped and
/// whose check (every 100 ms) passes while the file `NAME.ok` exists; each
/// check appends a line to `NAME.checks`, and a failing one prints
/// `NAME is not ready`. `fields`: more JSON5 fields, each ending in a comma.
fn service_job(dir: &Dir, name: &str, port: u16, ttl: &str, fields: &str) -> String {
    let check = dir.sh(
        &format!("{name}-check"),
        &format!(
            "echo x >> {checks}\nif [ -f {ok} ]; then exit 0; fi\necho '{name} is not ready'\nexit 1",
            checks = dir.p(&format!("{name}.checks")),
            ok = dir.p(&format!("{name}.ok")),
        ),
    );
    format!(
        r#"{{ name: "{name}", exec: "sleep 1000", port: {port}, {fields}
           health: {{ exec: {check}, interval: "100ms", ttl: "{ttl}" }} }}"#
    )
}

fn make_healthy(dir: &Dir, name: &str) {
    dir.write(&format!("{name}.ok"), "");
}

fn make_unhealthy(dir: &Dir, name: &str) {
    std::fs::remove_file(dir.path(&format!("{name}.ok"))).expect("remove the .ok file");
}

/// `consul: "ADDR"` plus `top` entries and `jobs`, started and in its loop.
fn start(
    dir: &Dir,
    consul: Option<&str>,
    top: &[&str],
    jobs: &str,
    env: &[(&str, &str)],
) -> Daemon {
    let mut cfg = dir.cfg().jobs(jobs);
    if let Some(c) = consul {
        cfg = cfg.top(&format!("consul: {c}"));
    }
    for t in top {
        cfg = cfg.top(t);
    }
    let path = cfg.write();
    let mut d = Daemon::start(&path, env);
    d.wait_started();
    d
}

/// [`start`] with `fake` as the agent and nothing else at the top level.
fn start_consul(dir: &Dir, fake: &FakeConsul, jobs: &str) -> Daemon {
    start(dir, Some(&consul_key(fake)), &[], jobs, &[])
}

fn consul_key(fake: &FakeConsul) -> String {
    js(&fake.addr())
}

fn service_status(dir: &Dir, name: &str) -> Value {
    status(dir)["services"]
        .as_array()
        .expect("services is a list")
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no service {name} in /v3/status"))
}

// ---------------------------------------------------------------------------
// Registration (SPEC §6, §2.3)

#[test]
fn registers_at_the_first_passing_check_with_the_documented_body() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-register");
    let web = service_job(
        &dir,
        "web",
        8080,
        "1500ms",
        r#"interfaces: ["static:10.1.2.3"], tags: ["a", "b"],
           consul: { enableTagOverride: true, deregisterCriticalServiceAfter: "90s" },"#,
    );
    let mut d = start_consul(&dir, &fake, &format!("[{web}]"));
    // Failing checks first: they must register nothing.
    d.wait_event("web.unhealthy", 1);
    wait_until(TIMEOUT, "three failing checks", || {
        dir.lines("web.checks").len() >= 3
    });
    make_healthy(&dir, "web");
    expect(&mut d, &fake, "web registered", |s| registered(s, "web"));

    let st = fake.state();
    // The sentinel: the first request about the service is the registration,
    // passing, so none of the failing checks before it reached the agent.
    let first = st
        .requests
        .iter()
        .find(|r| is_about(r, "web"))
        .expect("a request about web");
    check!(
        d,
        &fake,
        first.method == "PUT" && first.path == REGISTER,
        "first request: {}",
        first.line()
    );
    let want = json!({
        "ID": sid("web"),
        "Name": "web",
        "Tags": ["a", "b"],
        "Port": 8080,
        "Address": "10.1.2.3",
        "EnableTagOverride": true,
        "Check": {
            "TTL": "1.5s",
            "Status": "passing",
            "Notes": "TTL for web set by containerpilot",
            "DeregisterCriticalServiceAfter": "1m30s",
        },
    });
    check!(
        d,
        &fake,
        first.json() == want,
        "registration body {}\nwanted {want}",
        first.text()
    );
    check!(
        d,
        &fake,
        first.status == Some(200),
        "registration answered {:?}",
        first.status
    );
    check!(
        d,
        &fake,
        first.header("X-Consul-Token").is_none(),
        "a token was sent without one configured"
    );
    // As the agent understood it.
    let svc = &st.services[&sid("web")];
    assert_eq!(
        (
            svc.name.as_str(),
            svc.address.as_str(),
            svc.port,
            &svc.tags,
            svc.enable_tag_override
        ),
        (
            "web",
            "10.1.2.3",
            8080,
            &vec!["a".to_string(), "b".to_string()],
            true
        )
    );
    let c = &st.checks[&check_id("web")];
    assert_eq!(c.ttl, Some(Duration::from_millis(1500)));
    assert_eq!(c.deregister_critical_after, Some(Duration::from_secs(90)));
    assert_eq!(c.status, "passing");
    terminate(&mut d);
}

#[test]
fn initial_status_registers_at_start_up_and_a_failing_check_marks_critical() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-initial");
    let web = service_job(
        &dir,
        "web",
        8081,
        "2s",
        r#"interfaces: "lo", initial_status: "warning","#,
    );
    let mut d = start_consul(&dir, &fake, &format!("[{web}]"));
    // The check never passes: the registration can only come from initial_status.
    expect(&mut d, &fake, "web critical with the check's output", |s| {
        check(s, "web") == Some(("critical".into(), "web is not ready".into()))
    });
    let st = fake.state();
    let reqs: Vec<&Recorded> = st.requests.iter().filter(|r| is_about(r, "web")).collect();
    check!(
        d,
        &fake,
        reqs[0].path == REGISTER,
        "first request: {}",
        reqs[0].line()
    );
    let want = json!({
        "ID": sid("web"),
        "Name": "web",
        "Tags": [],
        "Port": 8081,
        "Address": "127.0.0.1",
        "EnableTagOverride": false,
        "Check": { "TTL": "2s", "Status": "warning", "Notes": "TTL for web set by containerpilot" },
    });
    check!(
        d,
        &fake,
        reqs[0].json() == want,
        "registration body {}\nwanted {want}",
        reqs[0].text()
    );
    // Marked critical by an update carrying the output, not by the TTL running out.
    check!(
        d,
        &fake,
        reqs[1].method == "PUT"
            && reqs[1].path == update_path("web")
            && reqs[1].json() == json!({"Status": "critical", "Output": "web is not ready"}),
        "second request: {} {}",
        reqs[1].line(),
        reqs[1].text()
    );
    make_healthy(&dir, "web");
    expect(&mut d, &fake, "web passing", |s| passing(s, "web"));
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// Heartbeats (SPEC §3.2, §6)

#[test]
fn every_pass_heartbeats_and_a_failure_marks_critical_at_once() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-heartbeat");
    make_healthy(&dir, "web");
    let web = service_job(&dir, "web", 8082, "1s", r#"interfaces: "lo","#);
    let mut d = start_consul(&dir, &fake, &format!("[{web}]"));
    expect(&mut d, &fake, "web registered", |s| registered(s, "web"));
    // 15 heartbeats at 100 ms outlast the 1 s TTL: it never runs out.
    expect(&mut d, &fake, "15 heartbeats", |s| {
        s.count("PUT", &update_path("web")) >= 15
    });
    let st = fake.state();
    check!(
        d,
        &fake,
        passing(&st, "web"),
        "check not passing: {:?}",
        check(&st, "web")
    );
    for r in st.requests.iter().filter(|r| r.path == update_path("web")) {
        check!(
            d,
            &fake,
            r.json() == json!({"Status": "passing", "Output": "ok"}) && r.status == Some(200),
            "heartbeat {} -> {:?}",
            r.text(),
            r.status
        );
    }
    // Each passing check heartbeats once: as many heartbeats (plus the
    // registration) as passing checks, less those still on their way (a
    // check appends its line before it runs; the worker may merge passes
    // queued behind a slow call, which only a loaded machine would see).
    let checks = dir.lines("web.checks").len();
    let calls = st.count("PUT", &update_path("web")) + 1;
    check!(
        d,
        &fake,
        calls + 5 >= checks && calls <= checks,
        "{calls} calls for {checks} checks"
    );

    make_unhealthy(&dir, "web");
    expect(&mut d, &fake, "critical with the check's output", |s| {
        check(s, "web") == Some(("critical".into(), "web is not ready".into()))
    });
    make_healthy(&dir, "web");
    expect(&mut d, &fake, "passing again", |s| passing(s, "web"));
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// Where the agent is and the token (SPEC §2.3, §6)

/// Registration and a heartbeat reach `fake`; every request carries `token`.
fn expect_registered_with_token(d: &mut Daemon, fake: &FakeConsul, token: Option<&str>) {
    expect(d, fake, "web registered and heartbeating", |s| {
        passing(s, "web") && s.count("PUT", &update_path("web")) >= 1
    });
    for r in fake.requests() {
        check!(
            d,
            fake,
            r.header("X-Consul-Token") == token && r.status == Some(200),
            "{} with token {:?} -> {:?}",
            r.line(),
            r.header("X-Consul-Token"),
            r.status
        );
    }
}

#[test]
fn the_token_from_the_config_goes_in_the_header() {
    let fake = FakeConsul::start();
    fake.require_token(Some("s3cret"));
    let dir = Dir::new("dc-token");
    make_healthy(&dir, "web");
    let web = service_job(&dir, "web", 8083, "2s", r#"interfaces: "lo","#);
    let consul = format!("{{ address: {}, token: \"s3cret\" }}", consul_key(&fake));
    let mut d = start(&dir, Some(&consul), &[], &format!("[{web}]"), &[]);
    expect_registered_with_token(&mut d, &fake, Some("s3cret"));
    terminate(&mut d);
}

#[test]
fn consul_http_token_overrides_the_config_token() {
    let fake = FakeConsul::start();
    fake.require_token(Some("from-env"));
    let dir = Dir::new("dc-envtoken");
    make_healthy(&dir, "web");
    let web = service_job(&dir, "web", 8084, "2s", r#"interfaces: "lo","#);
    let consul = format!("{{ address: {}, token: \"from-file\" }}", consul_key(&fake));
    let env = [("CONSUL_HTTP_TOKEN", "from-env")];
    let mut d = start(&dir, Some(&consul), &[], &format!("[{web}]"), &env);
    expect_registered_with_token(&mut d, &fake, Some("from-env"));
    terminate(&mut d);
}

#[test]
fn consul_http_addr_is_used_when_the_consul_key_is_absent() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-envaddr");
    make_healthy(&dir, "web");
    let web = service_job(&dir, "web", 8085, "2s", r#"interfaces: "lo","#);
    let addr = fake.addr();
    let env = [
        ("CONSUL_HTTP_ADDR", addr.as_str()),
        ("CONSUL_HTTP_TOKEN", "t0k"),
    ];
    let mut d = start(&dir, None, &[], &format!("[{web}]"), &env);
    expect_registered_with_token(&mut d, &fake, Some("t0k"));
    terminate(&mut d);
}

#[test]
fn consul_http_addr_fills_in_an_object_without_address() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-envaddr2");
    make_healthy(&dir, "web");
    let web = service_job(&dir, "web", 8086, "2s", r#"interfaces: "lo","#);
    let addr = format!("http://{}", fake.addr());
    let env = [("CONSUL_HTTP_ADDR", addr.as_str())];
    let consul = r#"{ token: "obj-token" }"#;
    let mut d = start(&dir, Some(consul), &[], &format!("[{web}]"), &env);
    expect_registered_with_token(&mut d, &fake, Some("obj-token"));
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// Agent restart and outage (SPEC §6)

fn reregisters_after_an_agent_restart(old_agent: bool) {
    let fake = FakeConsul::start();
    fake.old_agent_mode(old_agent);
    let dir = Dir::new("dc-restart");
    make_healthy(&dir, "web");
    let web = service_job(&dir, "web", 8087, "2s", r#"interfaces: "lo", tags: ["x"],"#);
    let mut d = start_consul(&dir, &fake, &format!("[{web}]"));
    expect(&mut d, &fake, "registered and heartbeating", |s| {
        passing(s, "web") && s.count("PUT", &update_path("web")) >= 1
    });
    let first_body = fake
        .requests()
        .iter()
        .find(|r| r.path == REGISTER)
        .expect("a registration")
        .json();
    let before = fake.requests().len();
    fake.restart();
    // The heartbeat that finds the agent without the service, then the
    // registration, then a heartbeat that works.
    let lost = if old_agent {
        "update passing -> 500"
    } else {
        "update passing -> 404"
    };
    let want = [lost, "register passing -> 200", "update passing -> 200"].map(String::from);
    expect(&mut d, &fake, "registered again and heartbeating", |s| {
        ops_since(s, "web", before).windows(3).any(|w| w == want)
    });
    let st = fake.state();
    check!(
        d,
        &fake,
        ops_since(&st, "web", before)
            .iter()
            .filter(|o| *o == lost)
            .count()
            == 1,
        "after the restart: {:?}",
        ops_since(&st, "web", before)
    );
    let again = st.requests[before..]
        .iter()
        .find(|r| r.path == REGISTER)
        .expect("checked")
        .json();
    check!(
        d,
        &fake,
        again == first_body,
        "registered again as {again}, first as {first_body}"
    );
    terminate(&mut d);
}

#[test]
fn an_agent_restart_reregisters_at_the_next_heartbeat() {
    reregisters_after_an_agent_restart(false);
}

#[test]
fn an_old_agent_restart_reregisters_at_the_next_heartbeat() {
    reregisters_after_an_agent_restart(true);
}

#[test]
fn an_outage_stops_nothing_warns_a_little_and_recovery_reregisters() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-outage");
    make_healthy(&dir, "web");
    let web = service_job(&dir, "web", 8088, "2s", r#"interfaces: "lo","#);
    let mut d = start(
        &dir,
        Some(&consul_key(&fake)),
        &[r#"watches: [{ name: "backend", interval: "100ms" }]"#],
        &format!("[{web}]"),
        &[],
    );
    expect(&mut d, &fake, "registered and heartbeating", |s| {
        passing(s, "web") && s.count("PUT", &update_path("web")) >= 1
    });
    let pid = service_status(&dir, "web")["pid"].clone();
    assert!(pid.is_u64(), "web has a pid: {pid}");

    fake.set_down(true);
    let checks = dir.lines("web.checks").len();
    // Heartbeats retried (with backoff) and watch polls, all unanswered.
    expect(
        &mut d,
        &fake,
        "two dropped heartbeats and ten dropped requests",
        |s| {
            s.requests.iter().filter(|r| r.status.is_none()).count() >= 10
                && s.requests
                    .iter()
                    .filter(|r| r.status.is_none() && r.path == update_path("web"))
                    .count()
                    >= 2
        },
    );
    // Jobs carry on: checks keep running, the control plane answers, the
    // job's process is the same one.
    wait_until(TIMEOUT, "ten more checks during the outage", || {
        dir.lines("web.checks").len() >= checks + 10
    });
    let web_status = service_status(&dir, "web");
    assert_eq!(
        (
            &web_status["status"],
            &web_status["state"],
            &web_status["pid"]
        ),
        (&json!("healthy"), &json!("running"), &pid)
    );
    // The agent comes back having forgotten everything.
    fake.restart();
    fake.set_down(false);
    expect(&mut d, &fake, "registered again and passing", |s| {
        passing(s, "web")
    });

    let dropped = fake
        .requests()
        .iter()
        .filter(|r| r.status.is_none())
        .count();
    let warnings = d.count(|l| {
        json(l).is_some_and(|v| {
            v["level"] == "warning"
                && v["msg"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("discovery:"))
        })
    });
    // One per failing endpoint (the heartbeat, the watch), not one per attempt.
    check!(
        d,
        &fake,
        (1..=3).contains(&warnings),
        "{warnings} discovery warnings for {dropped} failed requests"
    );
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// Deregistration (SPEC §3.3, §3.6, §6)

#[test]
fn a_job_that_stops_for_good_is_deregistered() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-oneshot");
    let once = dir.sh(
        "once",
        &format!(
            "while [ ! -f {stop} ]; do sleep 0.02; done\nexit 0",
            stop = dir.p("stop")
        ),
    );
    let jobs = format!(
        r#"[
          {{ name: "keeper", exec: "sleep 1000" }},
          {{ name: "once", exec: {once}, port: 9000, interfaces: "lo",
             health: {{ exec: "true", interval: "100ms", ttl: "2s" }} }},
        ]"#
    );
    let mut d = start_consul(&dir, &fake, &jobs);
    expect(&mut d, &fake, "once registered", |s| registered(s, "once"));
    dir.write("stop", "");
    d.wait_event("once.exitSuccess", 1);
    expect(&mut d, &fake, "once deregistered", |s| {
        !registered(s, "once") && s.count("PUT", &deregister_path("once")) == 1
    });
    // Still running: only the job went, not containerpilot.
    check!(d, &fake, !d.has_exited(), "containerpilot exited");
    let st = service_status(&dir, "once");
    assert_eq!(st["state"], "completed", "{st}");
    terminate(&mut d);
}

#[test]
fn maintenance_deregisters_and_leaving_it_registers_again_at_the_next_pass() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-maint");
    make_healthy(&dir, "web");
    make_healthy(&dir, "api");
    let web = service_job(&dir, "web", 8089, "2s", r#"interfaces: "lo","#);
    let api = service_job(
        &dir,
        "api",
        8090,
        "2s",
        r#"interfaces: "lo", initial_status: "passing","#,
    );
    let mut d = start_consul(&dir, &fake, &format!("[{web}, {api}]"));
    expect(&mut d, &fake, "both registered and heartbeating", |s| {
        ["web", "api"]
            .iter()
            .all(|n| passing(s, n) && s.count("PUT", &update_path(n)) >= 1)
    });

    let r = uds_request(&dir.socket(), "POST", "/v3/maintenance/enable", "");
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"updated": true})),
        "{r:?}"
    );
    expect(&mut d, &fake, "both deregistered", |s| {
        s.services.is_empty()
            && ["web", "api"]
                .iter()
                .all(|n| s.count("PUT", &deregister_path(n)) >= 1)
    });
    d.wait_event("global.enterMaintenance", 1);
    assert_eq!(service_status(&dir, "web")["status"], "maintenance");
    // Checks stop: nothing comes back while in maintenance. Nothing later
    // could show that it did not, so watch for a while.
    check!(
        d,
        &fake,
        !fake.wait_for(QUIET, |s| !s.services.is_empty()),
        "registered during maintenance"
    );

    let left = fake.requests().len();
    let r = uds_request(&dir.socket(), "POST", "/v3/maintenance/disable", "");
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"updated": true})),
        "{r:?}"
    );
    expect(&mut d, &fake, "both registered again and passing", |s| {
        ["web", "api"].iter().all(|n| passing(s, n))
    });
    // Each came back with a registration at its first pass after
    // maintenance (api too, although it has an initial_status).
    let st = fake.state();
    for n in ["web", "api"] {
        let before = ops_until(&st, n, left);
        let after = ops_since(&st, n, left);
        check!(
            d,
            &fake,
            before.last().is_some_and(|o| o == "deregister -> 200")
                && after
                    .first()
                    .is_some_and(|o| o == "register passing -> 200"),
            "{n}: {before:?} then {after:?}"
        );
    }
    terminate(&mut d);
}

#[test]
fn a_job_added_during_maintenance_registers_only_after_it() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-maintreload");
    make_healthy(&dir, "web");
    make_healthy(&dir, "late");
    let web = service_job(&dir, "web", 8094, "2s", r#"interfaces: "lo","#);
    let late = service_job(
        &dir,
        "late",
        8095,
        "2s",
        r#"interfaces: "lo", initial_status: "passing","#,
    );
    let consul = consul_key(&fake);
    let mut d = start(&dir, Some(&consul), &[], &format!("[{web}]"), &[]);
    expect(&mut d, &fake, "web registered", |s| registered(s, "web"));
    let r = uds_request(&dir.socket(), "POST", "/v3/maintenance/enable", "");
    assert_eq!(r.status, 200, "{r:?}");
    expect(&mut d, &fake, "web deregistered", |s| s.services.is_empty());

    dir.cfg()
        .top(&format!("consul: {consul}"))
        .jobs(&format!("[{web}, {late}]"))
        .write();
    let r = uds_request(&dir.socket(), "POST", "/v3/reload", "");
    assert_eq!(r.status, 200, "{r:?}");
    d.wait_msg("job[late] added");
    // Its initial_status must not register it while in maintenance. Nothing
    // later can show that it did not, so watch for a while.
    check!(
        d,
        &fake,
        !fake.wait_for(QUIET, |s| s.services.contains_key(&sid("late"))),
        "late registered during maintenance"
    );
    let r = uds_request(&dir.socket(), "POST", "/v3/maintenance/disable", "");
    assert_eq!(r.status, 200, "{r:?}");
    expect(&mut d, &fake, "both registered and passing", |s| {
        passing(s, "web") && passing(s, "late")
    });
    let st = fake.state();
    check!(
        d,
        &fake,
        ops(&st, "late").first().map(String::as_str) == Some("register passing -> 200"),
        "late: {:?}",
        ops(&st, "late")
    );
    terminate(&mut d);
}

/// A daemon with one advertised job, `web`, that on SIGTERM asks the agent
/// what it has registered (`GET /v1/agent/services`) and writes the answer
/// to `services-at-term.json`; running, with `web` registered.
fn start_asking_at_term(dir: &Dir, fake: &FakeConsul) -> Daemon {
    let web = dir.sh(
        "web",
        &format!(
            "trap 'curl -sS http://{addr}/v1/agent/services > {out}.tmp; mv {out}.tmp {out}; exit 0' TERM\n\
             sleep 1000 &\nwait",
            addr = fake.addr(),
            out = dir.p("services-at-term.json"),
        ),
    );
    let jobs = format!(
        r#"[{{ name: "web", exec: {web}, port: 8091, interfaces: "lo",
              health: {{ exec: "true", interval: "100ms", ttl: "2s" }} }}]"#
    );
    let mut d = start(
        dir,
        Some(&consul_key(fake)),
        &["stopTimeout: \"5s\""],
        &jobs,
        &[],
    );
    expect(&mut d, fake, "web registered", |s| registered(s, "web"));
    d
}

/// Positions in the request log of the deregistrations of `web` and of
/// the job's question at SIGTERM.
fn shutdown_order(st: &State) -> (Vec<usize>, Option<usize>) {
    let dereg = (0..st.requests.len())
        .filter(|&i| st.requests[i].path == deregister_path("web"))
        .collect();
    let asked = st
        .requests
        .iter()
        .position(|r| r.method == "GET" && r.path == "/v1/agent/services");
    (dereg, asked)
}

#[test]
fn shutdown_deregisters_before_any_job_is_signalled() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-shutdown");
    let mut d = start_asking_at_term(&dir, &fake);
    terminate(&mut d);

    // When the job got SIGTERM the agent had nothing registered any more.
    let seen = dir.read("services-at-term.json");
    let seen: Value = serde_json::from_str(&seen).unwrap_or_else(|e| {
        panic!(
            "the job's TERM trap wrote {seen:?} ({e})\n{}",
            consul_log(&fake)
        )
    });
    check!(
        d,
        &fake,
        seen == json!({}),
        "at SIGTERM the agent still had {seen}"
    );
    let st = fake.state();
    let (dereg, asked) = shutdown_order(&st);
    check!(
        d,
        &fake,
        dereg.len() == 1 && asked.is_some_and(|a| dereg[0] < a),
        "deregistration at {dereg:?}, the job's question at {asked:?}"
    );
    check!(d, &fake, st.services.is_empty(), "left registered");
}

#[test]
fn shutdown_tries_to_deregister_before_signalling_even_when_the_agent_is_down() {
    // The agent takes every request and never answers: each attempt fails,
    // so several attempts spread over time. All of them must come before
    // the job's question at SIGTERM; a shutdown that signalled jobs while
    // still deregistering would interleave them. It still ends, bounded.
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-shutdown2");
    let mut d = start_asking_at_term(&dir, &fake);
    fake.set_down(true);
    terminate(&mut d);
    let st = fake.state();
    let (dereg, asked) = shutdown_order(&st);
    check!(
        d,
        &fake,
        dereg.len() >= 2 && asked.is_some_and(|a| dereg.iter().all(|&i| i < a)),
        "deregistration attempts at {dereg:?}, the job's question at {asked:?}"
    );
    check!(
        d,
        &fake,
        registered(&st, "web"),
        "the down agent dropped the service"
    );
}

// ---------------------------------------------------------------------------
// The telemetry service (SPEC §5)

#[test]
fn telemetry_is_advertised_as_containerpilot_and_heartbeats() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-telemetry");
    let port = free_port();
    let telemetry =
        format!(r#"telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"], tags: ["t1"] }}"#);
    let mut d = start(
        &dir,
        Some(&consul_key(&fake)),
        &[&telemetry],
        r#"[{ name: "app", exec: "sleep 1000" }]"#,
        &[],
    );
    expect(&mut d, &fake, "containerpilot registered", |s| {
        registered(s, "containerpilot")
    });
    let st = fake.state();
    let reg = st
        .requests
        .iter()
        .find(|r| r.path == REGISTER)
        .expect("a registration");
    let want = json!({
        "ID": sid("containerpilot"),
        "Name": "containerpilot",
        "Tags": ["t1", env!("CARGO_PKG_VERSION")],
        "Port": port,
        "Address": "127.0.0.1",
        "EnableTagOverride": false,
        "Check": { "TTL": "15s", "Status": "passing", "Notes": "TTL for containerpilot set by containerpilot" },
    });
    check!(
        d,
        &fake,
        reg.json() == want,
        "registration {}\nwanted {want}",
        reg.text()
    );
    let registered_at = reg.at;
    // The first heartbeat, about 5 s later (the TTL is 15 s).
    expect(&mut d, &fake, "a heartbeat", |s| {
        s.count("PUT", &update_path("containerpilot")) >= 1
    });
    let st = fake.state();
    let beat = st
        .requests
        .iter()
        .find(|r| r.path == update_path("containerpilot"))
        .expect("checked");
    let gap = beat.at - registered_at;
    check!(
        d,
        &fake,
        gap >= Duration::from_secs(4),
        "heartbeat {gap:?} after registering"
    );
    check!(d, &fake, passing(&st, "containerpilot"), "not passing");
    assert_eq!(service_status(&dir, "containerpilot")["status"], "healthy");
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// Watches (SPEC §6)

/// Instances of `backend` in `/v3/status` and in telemetry `/metrics`.
fn watch_seen(dir: &Dir, metrics: &str) -> (Value, Option<f64>) {
    let st = status(dir);
    let w = st["watches"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["name"] == "backend"))
        .cloned()
        .unwrap_or(Value::Null);
    let r = http_get(metrics, "/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    let fams =
        crate::prom::parse(&r.body).unwrap_or_else(|e| panic!("bad exposition: {e}\n{}", r.body));
    let n = crate::prom::value(
        &fams,
        "containerpilot_watch_instances",
        &[("service", "backend")],
    );
    (w, n)
}

#[test]
fn watches_publish_changes_and_nothing_else() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-watch");
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let mut jobs = Vec::new();
    for code in ["changed", "healthy", "unhealthy"] {
        let exec = dir.sh(code, &format!("echo {code} >> {}", dir.p("events")));
        jobs.push(format!(
            r#"{{ name: "on-{code}", exec: {exec}, when: {{ source: "watch.backend", each: "{code}" }} }}"#
        ));
    }
    let mut d = start(
        &dir,
        Some(&consul_key(&fake)),
        &[
            r#"watches: [{ name: "backend", interval: "200ms" }]"#,
            &format!(r#"telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"] }}"#),
        ],
        &format!("[{}]", jobs.join(", ")),
        &[],
    );
    let polls = |fake: &FakeConsul| {
        fake.requests()
            .iter()
            .filter(|r| r.path == "/v1/health/service/backend")
            .count()
    };
    let events = |d: &mut Daemon| {
        [
            d.events("watch.backend.changed"),
            d.events("watch.backend.healthy"),
            d.events("watch.backend.unhealthy"),
        ]
    };

    // First poll, nothing there: `unhealthy` alone.
    d.wait_event("watch.backend.unhealthy", 1);
    check!(
        d,
        &fake,
        events(&mut d) == [0, 0, 1],
        "after the first poll: {:?}",
        events(&mut d)
    );
    wait_until(TIMEOUT, "the unhealthy job ran", || {
        dir.lines("events") == ["unhealthy"]
    });
    assert_eq!(
        watch_seen(&dir, &metrics),
        (
            json!({"name": "backend", "status": "unhealthy", "instances": 0}),
            Some(0.0)
        )
    );
    // Unchanged polls publish nothing (checked at the next change).
    let n = polls(&fake);
    expect(&mut d, &fake, "three more polls", |s| {
        s.requests
            .iter()
            .filter(|r| r.path == "/v1/health/service/backend")
            .count()
            >= n + 3
    });

    fake.set_instances("backend", "dc1", vec![("10.0.0.1", 80, vec![])]);
    d.wait_event("watch.backend.healthy", 1);
    check!(
        d,
        &fake,
        events(&mut d) == [1, 1, 1],
        "after one instance came: {:?}",
        events(&mut d)
    );
    assert_eq!(
        watch_seen(&dir, &metrics),
        (
            json!({"name": "backend", "status": "healthy", "instances": 1}),
            Some(1.0)
        )
    );

    fake.set_instances(
        "backend",
        "dc1",
        vec![("10.0.0.1", 80, vec![]), ("10.0.0.2", 80, vec![])],
    );
    d.wait_event("watch.backend.healthy", 2);
    check!(
        d,
        &fake,
        events(&mut d) == [2, 2, 1],
        "after a second instance came: {:?}",
        events(&mut d)
    );
    assert_eq!(watch_seen(&dir, &metrics).1, Some(2.0));

    // Failed polls, answered with an error or not at all, change nothing.
    for failure in ["error", "down"] {
        let n = fake.requests().len();
        match failure {
            "error" => fake.set_error(Some(500)),
            _ => fake.set_down(true),
        }
        expect(&mut d, &fake, "three failed polls", |s| {
            s.requests[n..]
                .iter()
                .filter(|r| r.path == "/v1/health/service/backend" && r.status != Some(200))
                .count()
                >= 3
        });
        fake.set_error(None);
        fake.set_down(false);
        assert_eq!(
            watch_seen(&dir, &metrics),
            (
                json!({"name": "backend", "status": "healthy", "instances": 2}),
                Some(2.0)
            ),
            "after failed polls ({failure})"
        );
    }

    // The sentinel: the last instance goes, and the counts show that
    // nothing was published for the unchanged and the failed polls.
    fake.set_instances("backend", "dc1", vec![]);
    d.wait_event("watch.backend.unhealthy", 2);
    check!(
        d,
        &fake,
        events(&mut d) == [3, 2, 2],
        "after every instance went: {:?}",
        events(&mut d)
    );
    assert_eq!(
        watch_seen(&dir, &metrics),
        (
            json!({"name": "backend", "status": "unhealthy", "instances": 0}),
            Some(0.0)
        )
    );
    // The jobs ran once on each event.
    wait_until(TIMEOUT, "seven job runs", || dir.lines("events").len() == 7);
    let mut lines = dir.lines("events");
    lines.sort();
    assert_eq!(
        lines,
        [
            "changed",
            "changed",
            "changed",
            "healthy",
            "healthy",
            "unhealthy",
            "unhealthy"
        ]
    );
    // Every poll asked for passing instances only, without tag or dc.
    for r in fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/health/service/backend")
    {
        assert_eq!(r.query, "passing=1", "{}", r.line());
    }
    terminate(&mut d);
}

#[test]
fn watch_tag_and_dc_are_sent_only_when_configured() {
    let fake = FakeConsul::start();
    fake.set_instances(
        "tagged",
        "dc2",
        vec![
            ("10.0.0.9", 81, vec!["blue"]),
            ("10.0.0.8", 82, vec!["green"]),
        ],
    );
    fake.set_instances("plain", "dc1", vec![("10.0.0.7", 83, vec!["blue"])]);
    let dir = Dir::new("dc-watchtag");
    let mut d = start(
        &dir,
        Some(&consul_key(&fake)),
        &[r#"watches: [
            { name: "plain", interval: "200ms" },
            { name: "tagged", interval: "200ms", tag: "blue", dc: "dc2" },
            { name: "tagonly", interval: "200ms", tag: "blue" },
        ]"#],
        r#"[{ name: "app", exec: "sleep 1000" }]"#,
        &[],
    );
    for w in ["plain", "tagged"] {
        d.wait_event(&format!("watch.{w}.healthy"), 1);
    }
    d.wait_event("watch.tagonly.unhealthy", 1);
    let ws = status(&dir)["watches"].clone();
    assert_eq!(
        ws,
        json!([
            {"name": "plain", "status": "healthy", "instances": 1},
            {"name": "tagged", "status": "healthy", "instances": 1},
            {"name": "tagonly", "status": "unhealthy", "instances": 0},
        ])
    );
    let reqs = fake.requests();
    let query = |name: &str| {
        let r = reqs
            .iter()
            .find(|r| r.path == format!("/v1/health/service/{name}"))
            .unwrap_or_else(|| panic!("no poll of {name}"));
        let mut keys: Vec<(String, Vec<String>)> = ["passing", "tag", "dc"]
            .iter()
            .map(|k| (k.to_string(), r.query_values(k)))
            .collect();
        keys.retain(|(_, v)| !v.is_empty());
        (r.method.clone(), keys)
    };
    let kv = |pairs: &[(&str, &str)]| -> (String, Vec<(String, Vec<String>)>) {
        (
            "GET".into(),
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect(),
        )
    };
    assert_eq!(query("plain"), kv(&[("passing", "1")]));
    assert_eq!(
        query("tagged"),
        kv(&[("passing", "1"), ("tag", "blue"), ("dc", "dc2")])
    );
    assert_eq!(query("tagonly"), kv(&[("passing", "1"), ("tag", "blue")]));
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// The child environment (SPEC §3.2)

#[test]
fn later_jobs_see_the_ip_of_each_advertised_job() {
    let fake = FakeConsul::start();
    let dir = Dir::new("dc-ip");
    make_healthy(&dir, "web");
    let web = service_job(
        &dir,
        "web",
        8092,
        "2s",
        r#"interfaces: ["static:10.1.2.3"],"#,
    );
    let db = service_job(&dir, "my-db", 5432, "2s", r#"interfaces: "lo","#);
    let show = dir.sh(
        "show",
        &format!(
            "echo \"web=$CONTAINERPILOT_WEB_IP db=$CONTAINERPILOT_MY_DB_IP plain=${{CONTAINERPILOT_PLAIN_IP-unset}}\" > {}",
            dir.p("env")
        ),
    );
    let jobs = format!(
        r#"[{web}, {db},
           {{ name: "plain", exec: "sleep 1000" }},
           {{ name: "later", exec: {show}, when: {{ source: "web", once: "healthy" }} }}]"#
    );
    let mut d = start_consul(&dir, &fake, &jobs);
    d.wait_event("later.exitSuccess", 1);
    assert_eq!(
        dir.lines("env"),
        ["web=10.1.2.3 db=127.0.0.1 plain=unset"],
        "{}",
        d.evidence()
    );
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// Without a consul backend (SPEC §2.3)

#[test]
fn watches_without_consul_do_not_validate() {
    let dir = Dir::new("dc-noconsul");
    let cfg = dir
        .cfg()
        .top(r#"watches: [{ name: "backend", interval: "1s" }]"#)
        .jobs(r#"[{ name: "app", exec: "true", when: { source: "watch.backend", each: "changed" } }]"#)
        .write();
    let out = run(&["-validate", "-config", cfg.to_str().expect("utf-8")], &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("watches need a consul backend"),
        "{out}"
    );
}

#[test]
fn without_consul_a_job_with_a_port_runs_unregistered_with_one_warning() {
    let dir = Dir::new("dc-noconsul2");
    make_healthy(&dir, "web");
    let web = service_job(
        &dir,
        "web",
        8093,
        "2s",
        r#"interfaces: ["static:10.1.2.3"],"#,
    );
    let show = dir.sh(
        "show",
        &format!(
            "echo \"web=${{CONTAINERPILOT_WEB_IP-unset}}\" > {}",
            dir.p("env")
        ),
    );
    let jobs = format!(
        r#"[{web}, {{ name: "later", exec: {show}, when: {{ source: "web", once: "healthy" }} }}]"#
    );
    let mut d = start(&dir, None, &[], &jobs, &[]);
    // Health-checked as usual.
    d.wait_event("later.exitSuccess", 1);
    let web = service_status(&dir, "web");
    assert_eq!(
        (&web["status"], &web["port"]),
        (&json!("healthy"), &json!(8093)),
        "{web}"
    );
    // Not advertised: no IP for later jobs.
    assert_eq!(dir.lines("env"), ["web=unset"], "{}", d.evidence());
    let warned = |l: &str| {
        json(l).is_some_and(|v| {
            v["level"] == "warning"
                && v["msg"]
                    .as_str()
                    .is_some_and(|m| m.contains("no consul backend"))
        })
    };
    terminate(&mut d);
    let n = d.count(warned);
    assert_eq!(n, 1, "warnings about the missing backend\n{}", d.evidence());
    let discovery = d.count(|l| {
        json(l).is_some_and(|v| {
            v["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("discovery"))
        })
    });
    assert_eq!(discovery, 0, "{}", d.evidence());
}

#[test]
fn after_a_reload_changed_hooks_run_again_and_added_jobs_see_the_state_at_once() {
    // SPEC §3.5: 3.x rebuilt its discovery state on reload, so every
    // `changed` hook ran again; users fix an onChange hook and reload
    // expecting a re-render.
    let fake = FakeConsul::start();
    fake.set_instances("backend", "dc1", vec![("10.0.0.1", 80, vec![])]);
    let dir = Dir::new("dc-watch-reload");
    let render = dir.sh("render", &format!("echo render >> {}", dir.p("renders")));
    let jobs = format!(
        r#"[{{ name: "render", exec: {render}, when: {{ source: "watch.backend", each: "changed" }} }}]"#
    );
    let watches = r#"watches: [{ name: "backend", interval: "1h" }]"#;
    let consul = format!("consul: {}", consul_key(&fake));
    let mut d = start(&dir, Some(&consul_key(&fake)), &[watches], &jobs, &[]);
    d.wait_event("render.exitSuccess", 1);
    assert_eq!(dir.lines("renders"), ["render"]);
    // An unchanged reload: the next poll (at once) counts as the first.
    let r = uds_request(&dir.socket(), "POST", "/v3/reload", "");
    assert_eq!(r.status, 200, "{r:?}");
    d.wait_event("render.exitSuccess", 2);
    // A hook added by a reload sees the current state at once.
    let added = dir.sh("added", &format!("echo added >> {}", dir.p("added")));
    dir.cfg()
        .top(&consul)
        .top(watches)
        .jobs(&format!(
            r#"[{{ name: "render", exec: {render}, when: {{ source: "watch.backend", each: "changed" }} }},
                {{ name: "added", exec: {added}, when: {{ source: "watch.backend", each: "changed" }} }}]"#
        ))
        .write();
    let r = uds_request(&dir.socket(), "POST", "/v3/reload", "");
    assert_eq!(r.status, 200, "{r:?}");
    wait_until(TIMEOUT, "the added hook ran", || dir.exists("added"));
    d.wait_event("render.exitSuccess", 3);
}
