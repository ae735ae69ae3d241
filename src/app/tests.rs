//! The loop's rules driven over plain channels: a [`Recorder`] stands in
//! for the worker threads and keeps what the loop sends them, and the test
//! plays the workers' part by sending the facts they would report. No
//! process, socket or sleep is involved.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender};
use nix::sys::signal::Signal;

use super::*;
use crate::config::{self, ConsulConfig};
use crate::discovery::watch::PollCmd;
use crate::health::{CheckCmd, CheckerSpec};
use crate::inbox::Inbox;
use crate::msg::{JobAction, MetricsPage, StatusReport};
use crate::process::RunnerSpec;

/// Parse a JSON5 config the way start-up does (no interfaces needed).
pub(crate) fn config(json5: &str) -> Config {
    let env = HashMap::new();
    match config::parse_and_validate(json5, &env, &[]) {
        Ok((cfg, _)) => cfg,
        Err(e) => panic!("test config invalid: {e}\n{json5}"),
    }
}

/// A job definition as the config file would give it.
pub(crate) fn job(name: &str, exec: &str) -> JobConfig {
    let cfg = config(&format!(
        r#"{{jobs: [{{name: "{name}", exec: "{exec}"}}]}}"#
    ));
    cfg.jobs[0].clone()
}

/// Each worker the loop asked for: its job, the job's name, and the
/// receiving end of what the loop sends it.
type Handed<T> = Arc<Mutex<Vec<(JobId, String, Receiver<T>)>>>;

/// What the loop handed to the workers.
#[derive(Default, Clone)]
struct Seen {
    runners: Handed<RunnerCmd>,
    checkers: Handed<CheckCmd>,
    agent: Arc<Mutex<Option<Receiver<DiscoveryCmd>>>>,
    polls: Arc<Mutex<Option<Receiver<PollCmd>>>>,
}

struct Recorder(Seen);

/// What the fake workers hand out for a server.
struct NoServer;

impl workers::Server for NoServer {
    fn serve(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl Workers for Recorder {
    fn runner(&mut self, spec: RunnerSpec, _: &Sender<Msg>) -> Result<Inbox<RunnerCmd>, String> {
        let (tx, rx) = Inbox::detached();
        self.0
            .runners
            .lock()
            .unwrap()
            .push((spec.job, spec.name, rx));
        Ok(tx)
    }

    fn checker(&mut self, spec: CheckerSpec, _: &Sender<Msg>) -> Result<Inbox<CheckCmd>, String> {
        let (tx, rx) = Inbox::detached();
        self.0
            .checkers
            .lock()
            .unwrap()
            .push((spec.job, spec.name, rx));
        Ok(tx)
    }

    fn discovery(&mut self, _: &ConsulConfig, _: &Sender<Msg>) -> Result<(Agent, Poller), String> {
        let (agent, arx) = Agent::detached();
        let (poller, prx) = Poller::detached();
        *self.0.agent.lock().unwrap() = Some(arx);
        *self.0.polls.lock().unwrap() = Some(prx);
        Ok((agent, poller))
    }

    fn control(
        &mut self,
        _: &Path,
        _: &Path,
        _: &Sender<Msg>,
        _: &Arc<Mutex<RequestCounter>>,
        _: &Arc<Pages>,
    ) -> Result<workers::Guard, String> {
        Ok(Box::new(NoServer))
    }

    fn telemetry(
        &mut self,
        _: SocketAddr,
        _: &Sender<Msg>,
        _: &Arc<Mutex<RequestCounter>>,
        _: &Arc<Pages>,
    ) -> Result<workers::Guard, String> {
        Ok(Box::new(NoServer))
    }
}

/// The loop under test, and a log of everything it sent, in order.
struct Harness {
    app: App,
    seen: Seen,
    /// `"NAME start"`, `"NAME SIGTERM"`, `"consul register NAME"`, ...
    log: Vec<String>,
}

impl Harness {
    fn new(json5: &str) -> Harness {
        let seen = Seen::default();
        let app = App::new(
            config(json5),
            Path::new("/nonexistent"),
            Box::new(Recorder(seen.clone())),
        )
        .expect("app");
        Harness {
            app,
            seen,
            log: Vec::new(),
        }
    }

    fn started(json5: &str) -> Harness {
        let mut h = Harness::new(json5);
        h.app.begin();
        h.app.end_turn();
        h
    }

    /// One turn of the loop with `msg`, as `supervise` takes it.
    fn send(&mut self, msg: Msg) {
        let due = self.app.next_deadline();
        let changed = self.app.take(msg);
        self.app.finish_turn(changed, due);
    }

    fn id(&self, name: &str) -> JobId {
        let runners = self.seen.runners.lock().unwrap();
        runners
            .iter()
            .rev()
            .find(|(_, n, _)| n == name)
            .map(|(id, _, _)| *id)
            .unwrap_or_else(|| panic!("no runner for {name}"))
    }

    fn exited(&mut self, name: &str, code: i32) {
        let job = self.id(name);
        self.send(Msg::ProcessExited {
            job,
            code,
            spawn_failed: false,
            survivors: vec![],
        });
    }

    fn running(&mut self, name: &str, pid: u32) {
        let job = self.id(name);
        self.send(Msg::ProcessStarted { job, pid });
    }

    /// Everything sent since the last call, in a readable form: in order
    /// per worker, runners before discovery.
    fn sent(&mut self) -> Vec<String> {
        for (_, name, rx) in self.seen.runners.lock().unwrap().iter() {
            for cmd in rx.try_iter() {
                self.log.push(match cmd {
                    RunnerCmd::Start(_) => format!("{name} start"),
                    RunnerCmd::Signal(sig) => format!("{name} {sig}"),
                    RunnerCmd::Exited { .. } => continue,
                });
            }
        }
        if let Some(rx) = self.seen.agent.lock().unwrap().as_ref() {
            for cmd in rx.try_iter() {
                self.log.push(match cmd {
                    DiscoveryCmd::Register(r) => format!("consul register {}", r.name),
                    DiscoveryCmd::Pass { id } => format!("consul pass {id}"),
                    DiscoveryCmd::Fail { id, .. } => format!("consul fail {id}"),
                    DiscoveryCmd::Deregister { id } => format!("consul deregister {id}"),
                    DiscoveryCmd::DeregisterAll { done } => {
                        done();
                        "consul deregister all".into()
                    }
                    DiscoveryCmd::Stop => "consul stop".into(),
                });
            }
        }
        std::mem::take(&mut self.log)
    }

    fn command(&mut self, cmd: Command) -> Result<Answer, Refusal> {
        let (tx, rx) = bounded(1);
        self.send(Msg::Command(cmd, tx));
        rx.try_recv().expect("the loop answers at once")
    }

    /// A command whose answer may come later: the channel to read it on.
    fn command_later(&mut self, cmd: Command) -> Receiver<Result<Answer, Refusal>> {
        let (tx, rx) = bounded(1);
        self.send(Msg::Command(cmd, tx));
        rx
    }

    /// The `/status` document the loop answers, as a value; checked to be
    /// byte for byte what serde_json makes of that value.
    fn status(&mut self) -> StatusReport {
        let (tx, rx) = bounded(1);
        self.send(Msg::Query(Query::Status, tx));
        let Ok(Ok(Answer::Status(json))) = rx.try_recv() else {
            panic!("no status")
        };
        let report = self.app.status();
        assert_eq!(
            String::from_utf8_lossy(&json),
            serde_json::to_string(&report).unwrap()
        );
        report
    }

    /// The loop's part of the `/metrics` page.
    fn metrics(&mut self) -> Arc<MetricsPage> {
        let (tx, rx) = bounded(1);
        self.send(Msg::Query(Query::Metrics, tx));
        let Ok(Ok(Answer::Metrics(page))) = rx.try_recv() else {
            panic!("no metrics")
        };
        page
    }

    fn events(&self, code: &str, source: &str) -> u64 {
        self.app
            .events
            .get(&(code.to_string(), source.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// What the loop's own channel holds (messages it sent itself).
    fn pending(&self) -> Vec<Msg> {
        self.app.rx.try_iter().collect()
    }
}

fn sig(name: &str, s: Signal) -> String {
    format!("{name} {s}")
}

#[test]
fn startup_runs_plain_jobs_and_exits_trigger_others() {
    let mut h = Harness::started(
        r#"{jobs: [
            {name: "setup", exec: "true"},
            {name: "app", exec: "sleep", when: {source: "setup", once: "exitSuccess"}},
        ]}"#,
    );
    assert_eq!(h.sent(), ["setup start"]);
    h.running("setup", 10);
    h.exited("setup", 0);
    assert_eq!(h.sent(), ["app start"]);
    assert_eq!(h.events("exitSuccess", "setup"), 1);
    assert_eq!(h.events("startup", "global"), 1);
}

#[test]
fn shutdown_without_discovery_terminates_every_running_job() {
    let mut h =
        Harness::started(r#"{jobs: [{name: "a", exec: "sleep"}, {name: "b", exec: "sleep"}]}"#);
    h.running("a", 10);
    h.running("b", 11);
    h.sent();
    h.send(Msg::Signalled(SIGTERM));
    assert_eq!(h.events("shutdown", "global"), 1);
    assert_eq!(
        h.sent(),
        [sig("a", Signal::SIGTERM), sig("b", Signal::SIGTERM)]
    );
    assert!(!h.app.finished());
    h.exited("a", 143);
    assert!(!h.app.finished());
    h.exited("b", 143);
    assert!(h.app.finished());
    assert_eq!(h.events("stopped", "a"), 1);
}

#[test]
fn shutdown_deregisters_before_anything_stops() {
    let mut h = Harness::started(
        r#"{consul: "127.0.0.1:8500", jobs: [
            {name: "web", exec: "sleep", port: 80, interfaces: ["static:10.0.0.1"], health: {exec: "true", interval: 1, ttl: 5}},
        ]}"#,
    );
    h.running("web", 10);
    let mut sent = h.sent();
    sent.sort();
    assert_eq!(sent, ["consul register web", "web start"]);
    h.send(Msg::Signalled(SIGTERM));
    // Discovery first; nothing is stopped and `shutdown` is not out yet.
    assert_eq!(h.sent(), ["consul deregister all"]);
    assert_eq!(h.events("shutdown", "global"), 0);
    assert!(!h.app.finished());
    // The agent reports back (what `done` sent) and only then do jobs stop.
    for m in h.pending() {
        h.send(m);
    }
    assert_eq!(h.events("shutdown", "global"), 1);
    assert_eq!(h.sent(), [sig("web", Signal::SIGTERM)]);
}

#[test]
fn a_second_sigterm_kills_at_once_even_while_deregistering() {
    let mut h =
        Harness::started(r#"{consul: "127.0.0.1:8500", jobs: [{name: "a", exec: "sleep"}]}"#);
    h.running("a", 10);
    h.sent();
    h.send(Msg::Signalled(SIGTERM));
    assert_eq!(h.sent(), ["consul deregister all"]);
    h.send(Msg::Signalled(SIGINT));
    let sent = h.sent();
    assert!(sent.contains(&sig("a", Signal::SIGKILL)), "{sent:?}");
    assert_eq!(h.events("shutdown", "global"), 1);
    // A process that starts now is killed too.
    h.running("a", 11);
    assert_eq!(h.sent(), [sig("a", Signal::SIGKILL)]);
}

#[test]
fn every_job_completed_ends_the_run() {
    let mut h = Harness::started(r#"{jobs: [{name: "once", exec: "true"}]}"#);
    h.running("once", 10);
    assert!(!h.app.finished());
    h.exited("once", 0);
    assert!(h.app.finished());
}

#[test]
fn reload_keeps_unchanged_replaces_changed_removes_and_adds() {
    let mut h = Harness::started(
        r#"{jobs: [
            {name: "same", exec: "sleep 1"},
            {name: "changed", exec: "sleep 1"},
            {name: "gone", exec: "sleep 1"},
        ]}"#,
    );
    for (name, pid) in [("same", 10), ("changed", 11), ("gone", 12)] {
        h.running(name, pid);
    }
    h.sent();
    let old_changed = h.id("changed");
    let new = config(
        r#"{jobs: [
            {name: "same", exec: "sleep 1"},
            {name: "changed", exec: "sleep 2"},
            {name: "added", exec: "sleep 1"},
        ]}"#,
    );
    assert!(matches!(
        h.command(Command::Reload(Box::new(new))),
        Ok(Answer::Done)
    ));
    let sent = h.sent();
    // The unchanged job is not touched; the added one starts at once; the
    // changed one and the removed one are asked to stop.
    assert!(!sent.iter().any(|s| s.starts_with("same")), "{sent:?}");
    assert!(sent.contains(&"added start".to_string()), "{sent:?}");
    assert!(sent.contains(&sig("changed", Signal::SIGTERM)), "{sent:?}");
    assert!(sent.contains(&sig("gone", Signal::SIGTERM)), "{sent:?}");
    // The replacement waits for its predecessor to be gone.
    assert!(!sent.contains(&"changed start".to_string()), "{sent:?}");
    h.send(Msg::ProcessExited {
        job: old_changed,
        code: 143,
        spawn_failed: false,
        survivors: vec![],
    });
    assert_eq!(h.sent(), ["changed start"]);
    // A replaced job's old process goes quietly; a removed one says so.
    assert_eq!(h.events("stopped", "changed"), 0);
    h.exited("gone", 143);
    assert_eq!(h.events("stopped", "gone"), 1);
    let names: Vec<String> = h.status().services.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["same", "changed", "added"]);
}

#[test]
fn reload_and_maintenance_are_refused_during_shutdown() {
    let mut h = Harness::started(r#"{jobs: [{name: "a", exec: "sleep"}]}"#);
    h.running("a", 10);
    h.send(Msg::Signalled(SIGTERM));
    let cfg = config(r#"{jobs: [{name: "b", exec: "sleep"}]}"#);
    for cmd in [Command::Reload(Box::new(cfg)), Command::Maintenance(true)] {
        let r = h.command(cmd).expect_err("refused");
        assert_eq!(r.kind, RefusalKind::ShuttingDown);
    }
    // Env still applies (hooks run during shutdown may set it).
    assert!(h
        .command(Command::PutEnv(vec![("A".into(), Some("1".into()))]))
        .is_ok());
}

#[test]
fn maintenance_deregisters_everything_and_is_idempotent() {
    let mut h = Harness::started(
        r#"{consul: "127.0.0.1:8500", jobs: [
            {name: "web", exec: "sleep", port: 80, interfaces: ["static:10.0.0.1"], health: {exec: "true", interval: 1, ttl: 5}},
        ]}"#,
    );
    h.running("web", 10);
    h.sent();
    assert!(matches!(
        h.command(Command::Maintenance(true)),
        Ok(Answer::Updated(true))
    ));
    assert_eq!(h.sent(), ["consul deregister all"]);
    assert_eq!(h.events("enterMaintenance", "global"), 1);
    assert_eq!(h.status().services[0].status, "maintenance");
    assert!(matches!(
        h.command(Command::Maintenance(true)),
        Ok(Answer::Updated(false))
    ));
    assert_eq!(h.events("enterMaintenance", "global"), 1);
    assert!(matches!(
        h.command(Command::Maintenance(false)),
        Ok(Answer::Updated(true))
    ));
    assert_eq!(h.events("exitMaintenance", "global"), 1);
    assert_eq!(h.status().services[0].status, "unknown");
}

#[test]
fn a_bad_metric_update_applies_nothing() {
    let mut h = Harness::started(
        r#"{jobs: [{name: "a", exec: "sleep"}],
            telemetry: {interfaces: ["static:127.0.0.1"],
                        metrics: [{name: "hits", help: "h", type: "counter"}]}}"#,
    );
    let bad = Command::PutMetric(vec![("hits".into(), 1.0), ("nope".into(), 1.0)]);
    let r = h.command(bad).expect_err("refused");
    assert_eq!(r.kind, RefusalKind::Invalid);
    assert!(r.message.contains("nope"), "{}", r.message);
    let page = h.metrics();
    assert!(page.head.contains("\nhits 0\n"), "{}", page.head);
}

#[test]
fn children_see_env_changes_and_running_jobs_pids() {
    let mut h = Harness::started(r#"{jobs: [{name: "db-main", exec: "sleep"}]}"#);
    h.running("db-main", 4242);
    h.command(Command::PutEnv(vec![("COLOR".into(), Some("blue".into()))]))
        .unwrap();
    let env = h.app.child_env();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("COLOR"), Some("blue"));
    assert_eq!(get("CONTAINERPILOT_DB_MAIN_PID"), Some("4242"));
    h.command(Command::PutEnv(vec![("COLOR".into(), None)]))
        .unwrap();
    assert_eq!(h.app.child_env().iter().find(|(n, _)| n == "COLOR"), None);
}

#[test]
fn pre_stop_hooks_on_shutdown_run_before_anything_is_stopped() {
    let mut h = Harness::started(
        r#"{jobs: [
            {name: "redis", exec: "redis-server"},
            {name: "save", exec: "redis-cli save", when: {once: "shutdown"}},
        ]}"#,
    );
    h.running("redis", 10);
    h.sent();
    h.send(Msg::Signalled(SIGTERM));
    // The hook starts; redis is left running meanwhile.
    assert_eq!(h.sent(), ["save start"]);
    assert!(!h.app.finished());
    h.running("save", 11);
    h.exited("save", 0);
    // Only now does redis get SIGTERM.
    assert_eq!(h.sent(), [sig("redis", Signal::SIGTERM)]);
    h.exited("redis", 0);
    assert!(h.app.finished());
}

#[test]
fn a_hook_alone_does_not_keep_the_container_running() {
    let mut h = Harness::started(
        r#"{jobs: [
            {name: "once", exec: "true"},
            {name: "bye", exec: "true", when: {once: "shutdown"}},
        ]}"#,
    );
    h.running("once", 10);
    h.exited("once", 0);
    // Every job but the hook completed: shutdown begins and runs the hook.
    assert_eq!(h.events("shutdown", "global"), 1);
    assert_eq!(h.sent(), ["once start", "bye start"]);
}

#[test]
fn shutdown_on_ends_the_run_with_the_process_status() {
    let mut h = Harness::started(
        r#"{jobs: [
            {name: "app", exec: "app", shutdownOn: "exitFailed"},
            {name: "sensor", exec: "sensor", when: {interval: "10s"}},
        ]}"#,
    );
    h.running("app", 10);
    h.running("sensor", 11);
    h.exited("app", 3);
    assert_eq!(h.events("shutdown", "global"), 1);
    let report = h.app.health_report(Instant::now());
    assert!(
        !report.healthy,
        "a fired shutdownOn makes the container unhealthy"
    );
    h.exited("sensor", 143);
    assert!(h.app.finished());
    assert_eq!(h.app.exit_code, Some(3));
}

#[test]
fn job_stop_answers_once_the_process_is_gone_and_start_resumes_it() {
    let mut h =
        Harness::started(r#"{jobs: [{name: "web", exec: "nginx"}, {name: "other", exec: "x"}]}"#);
    h.running("web", 10);
    h.running("other", 11);
    h.sent();
    let stop = |name: &str| Command::Job {
        name: name.into(),
        action: JobAction::Stop,
    };
    let rx = h.command_later(stop("web"));
    assert_eq!(h.sent(), [sig("web", Signal::SIGTERM)]);
    assert!(rx.try_recv().is_err(), "not before the process is gone");
    h.exited("web", 143);
    assert!(matches!(rx.try_recv(), Ok(Ok(Answer::Updated(true)))));
    assert_eq!(h.events("stopping", "web"), 1);
    assert_eq!(h.events("stopped", "web"), 1);
    // Stopped, not restarted, and counted as completed while it stays so:
    // with `other` still running nothing ends.
    assert!(h.sent().is_empty());
    assert!(!h.app.finished());
    assert!(matches!(h.command(stop("web")), Ok(Answer::Updated(false))));
    let start = Command::Job {
        name: "web".into(),
        action: JobAction::Start,
    };
    assert!(matches!(h.command(start), Ok(Answer::Updated(true))));
    assert_eq!(h.sent(), ["web start"]);
    let unknown = h.command(stop("nope")).expect_err("404");
    assert_eq!(unknown.kind, RefusalKind::NotFound);
}

#[test]
fn job_signal_needs_a_process_and_a_real_signal() {
    let mut h = Harness::started(
        r#"{jobs: [{name: "web", exec: "nginx"}, {name: "later", exec: "x", when: {source: "web", once: "healthy"}}]}"#,
    );
    h.running("web", 10);
    h.sent();
    let signal = |name: &str, n: i32| Command::Job {
        name: name.into(),
        action: JobAction::Signal(n),
    };
    assert!(matches!(
        h.command(signal("web", 1)),
        Ok(Answer::Updated(true))
    ));
    assert_eq!(h.sent(), [sig("web", Signal::SIGHUP)]);
    let idle = h.command(signal("later", 1)).expect_err("409");
    assert_eq!(idle.kind, RefusalKind::Conflict);
    let bad = h.command(signal("web", 999)).expect_err("400");
    assert_eq!(bad.kind, RefusalKind::Invalid);
}

#[test]
fn job_posts_are_refused_during_shutdown_but_env_is_not() {
    let mut h = Harness::started(r#"{jobs: [{name: "web", exec: "nginx"}]}"#);
    h.running("web", 10);
    h.send(Msg::Signalled(SIGTERM));
    let r = h
        .command(Command::Job {
            name: "web".into(),
            action: JobAction::Start,
        })
        .expect_err("503");
    assert_eq!(
        (r.kind, r.message.as_str()),
        (RefusalKind::ShuttingDown, "shutting down")
    );
}

#[test]
fn duplicate_names_both_run_and_share_their_name_in_events() {
    let mut h =
        Harness::started(r#"{jobs: [{name: "twin", exec: "a"}, {name: "twin", exec: "b"}]}"#);
    assert_eq!(h.sent(), ["twin start", "twin start"]);
    let names: Vec<String> = h.status().services.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["twin", "twin"]);
    h.exited("twin", 0);
    assert_eq!(h.events("exitSuccess", "twin"), 1);
}

#[test]
fn health_counts_checked_jobs_only_and_maintenance_is_unhealthy() {
    let mut h = Harness::started(
        r#"{jobs: [
            {name: "web", exec: "nginx", health: {exec: "check", interval: 1}},
            {name: "plain", exec: "sleep"},
        ]}"#,
    );
    h.running("web", 10);
    let now = Instant::now();
    assert_eq!(
        h.app.health_report(now).unhealthy,
        ["web"],
        "unknown is not healthy"
    );
    let job = h.id("web");
    h.send(Msg::HealthChecked {
        job,
        passed: true,
        output: "ok".into(),
        duration: Duration::from_millis(2),
        at: std::time::SystemTime::now(),
    });
    assert!(h.app.health_report(now).healthy);
    h.command(Command::Maintenance(true)).unwrap();
    assert!(!h.app.health_report(now).healthy);
}

#[test]
fn status_text_is_what_serde_writes_of_every_field() {
    // Addresses, ports, dependencies, a check's odd output, a notify
    // status, a watch, maintenance: `status()` compares the written text
    // with serde_json's at each step.
    let mut h = Harness::started(
        r#"{consul: "127.0.0.1:8500", watches: [{name: "db", interval: 5}], jobs: [
            {name: "web", exec: "sleep", port: 80, interfaces: ["static:10.0.0.1"],
             health: {exec: "true", interval: 1, ttl: 5}},
            {name: "v6", exec: "sleep", port: 8080, interfaces: ["static:::1"],
             health: {exec: "true", interval: 1, ttl: 5}},
            {name: "after \"web\"", exec: "sleep", when: {source: "web", once: "healthy"}},
            {name: "sd", exec: "sleep", notify: true},
            {name: "either", exec: "sleep", when: {any: ["web", "watch.db"], each: "healthy"}},
        ]}"#,
    );
    h.status();
    h.running("web", 10);
    h.running("sd", 11);
    let job = h.id("web");
    h.send(Msg::HealthChecked {
        job,
        passed: true,
        output: "quote \" slash \\ newline \n ctl \u{1} tab \t é ☃ 𝄞".into(),
        duration: Duration::from_micros(1500),
        at: std::time::SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_417_801_123_456),
    });
    let job = h.id("sd");
    h.send(Msg::Notified {
        job,
        pid: 11,
        ready: true,
        watchdog: false,
        trigger: false,
        status: Some("serving </script> \u{7f}".into()),
    });
    let watch = h.app.watches[0].key;
    h.send(Msg::WatchPolled {
        watch,
        instances: Some([("10.0.0.9".to_string(), 5432)].into_iter().collect()),
    });
    h.exited("sd", 3);
    let s = h.status();
    let web = &s.services[0];
    assert_eq!(web.address.as_deref(), Some("10.0.0.1"));
    assert!(web.last_check.is_some());
    assert_eq!(s.services[3].last_exit_code, Some(3));
    assert_eq!(s.services[4].depends_on, ["web", "watch.db"]);
    assert_eq!(s.watches[0].instances, 1);
    h.command(Command::Maintenance(true)).unwrap();
    assert_eq!(h.status().services[1].status, "maintenance");
}

#[test]
fn cached_pages_never_outlive_a_change() {
    let mut h = Harness::started(
        r#"{jobs: [{name: "a", exec: "sleep"}],
            telemetry: {interfaces: ["static:127.0.0.1"],
                        metrics: [{name: "hits", help: "h", type: "counter"}]}}"#,
    );
    let pages = h.app.pages.clone();
    // A query caches what it rendered, and a query-only turn keeps it.
    let status = h.status();
    let page = h.metrics();
    assert!(Arc::ptr_eq(&page, &pages.metrics.get().expect("cached")));
    assert!(pages.status.get().is_some());
    assert_eq!(h.status(), status);
    // A command's answer comes after the pages are dropped.
    let (tx, rx) = bounded(1);
    let due = h.app.next_deadline();
    h.app.take(Msg::Command(
        Command::PutMetric(vec![("hits".into(), 2.0)]),
        tx,
    ));
    assert!(rx.try_recv().is_ok());
    assert!(pages.metrics.get().is_none() && pages.status.get().is_none());
    h.app.finish_turn(true, due);
    assert!(h.metrics().head.contains("\nhits 2\n"));
    // So does a fact a worker reports.
    h.running("a", 10);
    assert!(pages.metrics.get().is_none() && pages.status.get().is_none());
    assert_eq!(h.status().services[0].pid, Some(10));
    // A turn whose deadline has come may fire timers: dropped too.
    h.metrics();
    h.app.finish_turn(false, Some(Instant::now()));
    assert!(pages.metrics.get().is_none() && pages.status.get().is_none());
    // A query in a turn that changed something is dropped at its end.
    h.metrics();
    h.app.finish_turn(true, None);
    assert!(pages.metrics.get().is_none());
}

#[test]
fn a_command_is_answered_only_after_the_pages_it_changes_are_dropped() {
    let mut h = Harness::started(
        r#"{jobs: [{name: "a", exec: "sleep"}],
            telemetry: {interfaces: ["static:127.0.0.1"],
                        metrics: [{name: "lat", help: "l", type: "summary"}]}}"#,
    );
    h.running("a", 10);
    let pages = h.app.pages.clone();
    // Caches both pages, takes `cmd` as the loop does and returns its
    // answer as it stood when the answer was sent.
    let answer_of = |h: &mut Harness, cmd: Command| {
        h.status();
        h.metrics();
        assert!(pages.status.get().is_some() && pages.metrics.get().is_some());
        let (tx, rx) = bounded(1);
        let due = h.app.next_deadline();
        h.app.take(Msg::Command(cmd, tx));
        let answer = rx.try_recv();
        assert!(pages.status.get().is_none() && pages.metrics.get().is_none());
        h.app.finish_turn(true, due);
        answer
    };
    let on = answer_of(&mut h, Command::Maintenance(true));
    assert!(matches!(on, Ok(Ok(Answer::Updated(true)))));
    assert!(h.status().maintenance);
    let page = h.metrics();
    assert!(
        page.tail
            .contains("containerpilot_events{code=\"enterMaintenance\",source=\"global\"} 1\n"),
        "{}",
        page.tail
    );
    let off = answer_of(&mut h, Command::Maintenance(false));
    assert!(matches!(off, Ok(Ok(Answer::Updated(true)))));
    assert_eq!(h.status().services[0].status, "nonadvertised");

    // A summary's page says when its window moves on.
    let put = answer_of(&mut h, Command::PutMetric(vec![("lat".into(), 0.5)]));
    assert!(matches!(put, Ok(Ok(Answer::Done))));
    let page = h.metrics();
    assert!(page.head.contains("\nlat_count 1\n"), "{}", page.head);
    let until = page.valid_until.expect("a window");
    assert!(until > Instant::now() && until <= Instant::now() + Duration::from_secs(120));

    // A stop is answered once the process is gone: by then the pages that
    // showed it running are gone too.
    h.status();
    h.metrics();
    let rx = h.command_later(Command::Job {
        name: "a".into(),
        action: JobAction::Stop,
    });
    assert!(rx.try_recv().is_err());
    h.status();
    h.metrics();
    let job = h.id("a");
    let due = h.app.next_deadline();
    h.app.take(Msg::ProcessExited {
        job,
        code: 143,
        spawn_failed: false,
        survivors: vec![],
    });
    h.app.finish_turn(true, due);
    assert!(matches!(rx.try_recv(), Ok(Ok(Answer::Updated(true)))));
    assert!(pages.status.get().is_none() && pages.metrics.get().is_none());
    assert_eq!(h.status().services[0].state, "stopped");
}
