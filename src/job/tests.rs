//! Every rule of the job state machine, without a process.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::config::{HealthConfig, NotifyConfig, Probe, ServiceConfig, ShutdownOn};

fn cfg(name: &str, when: When, restarts: Restarts) -> JobConfig {
    JobConfig {
        when,
        restarts,
        ..JobConfig::plain(name, Some(vec!["/bin/true".into()]))
    }
}

fn job(c: JobConfig) -> Job {
    Job::new(c, vec![], Duration::from_secs(5))
}

fn startup() -> Event {
    Event::global(EventCode::Startup)
}

fn on(code: EventCode, src: &str) -> When {
    When::Event {
        sources: vec![src.into()],
        all: false,
        code,
        once: true,
        timeout: None,
    }
}

fn each(code: EventCode, src: &str) -> When {
    When::Event {
        sources: vec![src.into()],
        all: false,
        code,
        once: false,
        timeout: None,
    }
}

fn starts(a: &[Action]) -> usize {
    a.iter().filter(|a| **a == Action::Start).count()
}

fn publishes(a: &[Action]) -> Vec<EventCode> {
    a.iter()
        .filter_map(|a| match a {
            Action::Publish(c) => Some(*c),
            _ => None,
        })
        .collect()
}

/// `shutdown` is published, then the loop stops the job (no hooks here).
fn shutdown(j: &mut Job, t: Instant) -> Vec<Action> {
    let mut a = j.on_event(&Event::global(EventCode::Shutdown), t);
    a.extend(j.stop_for_shutdown(t));
    a
}

fn check(j: &mut Job, passed: bool, t: Instant) -> Vec<Action> {
    let out = if passed { "" } else { "boom" };
    j.on_checked(passed, out, Duration::from_millis(3), SystemTime::now(), t)
}

fn health(probe: Probe) -> HealthConfig {
    HealthConfig {
        probe,
        interval: Duration::from_secs(1),
        ttl: None,
        timeout: Duration::from_secs(1),
        start_period: Duration::ZERO,
        threshold: 1,
        raw_logging: false,
    }
}

/// A running job with a health check, pid 9, started at `t`.
fn checked(h: HealthConfig, t: Instant) -> Job {
    let mut c = cfg("a", When::Startup, Restarts::Unlimited);
    c.health = Some(h);
    let mut j = job(c);
    j.on_event(&startup(), t);
    j.on_started(9, t);
    j
}

#[test]
fn no_when_runs_once_at_startup_then_completes() {
    let t = Instant::now();
    let mut j = job(cfg("a", When::Startup, Restarts::Never));
    assert_eq!(starts(&j.on_event(&startup(), t)), 1);
    j.on_started(10, t);
    assert_eq!(
        starts(&j.on_event(&startup(), t)),
        0,
        "startup is not repeated"
    );
    let a = j.on_exit(0, false, t);
    assert_eq!(
        publishes(&a),
        vec![
            EventCode::ExitSuccess,
            EventCode::Stopping,
            EventCode::Stopped
        ]
    );
    assert!(j.is_stopped());
}

#[test]
fn exit_failed_on_nonzero_and_signal() {
    let t = Instant::now();
    let mut j = job(cfg("a", When::Startup, Restarts::Never));
    j.on_event(&startup(), t);
    assert_eq!(
        publishes(&j.on_exit(137, false, t))[0],
        EventCode::ExitFailed
    );
}

#[test]
fn restarts_count_limits_runs() {
    let t = Instant::now();
    let mut j = job(cfg("a", When::Startup, Restarts::Count(2)));
    assert_eq!(starts(&j.on_event(&startup(), t)), 1);
    assert_eq!(starts(&j.on_exit(1, false, t)), 1);
    assert_eq!(starts(&j.on_exit(1, false, t)), 1);
    let last = j.on_exit(1, false, t);
    assert_eq!(starts(&last), 0);
    assert!(j.is_stopped());
    assert_eq!(j.runs, 3);
    assert_eq!(j.restarts, 2);
}

#[test]
fn restarts_unlimited_never_completes() {
    let t = Instant::now();
    let mut j = job(cfg("a", When::Startup, Restarts::Unlimited));
    j.on_event(&startup(), t);
    for _ in 0..100 {
        assert_eq!(starts(&j.on_exit(0, false, t)), 1);
    }
    assert!(!j.is_stopped());
}

#[test]
fn once_fires_only_the_first_time() {
    let t = Instant::now();
    let mut j = job(cfg("b", on(EventCode::Healthy, "a"), Restarts::Never));
    let ev = Event::new(EventCode::Healthy, "a");
    assert_eq!(starts(&j.on_event(&startup(), t)), 0);
    assert_eq!(starts(&j.on_event(&ev, t)), 1);
    j.on_exit(0, false, t);
    assert!(j.is_stopped());
    assert_eq!(starts(&j.on_event(&ev, t)), 0);
}

#[test]
fn each_fires_every_time_and_drops_triggers_while_running() {
    let t = Instant::now();
    let mut j = job(cfg(
        "b",
        each(EventCode::Changed, "watch.db"),
        Restarts::Never,
    ));
    let ev = Event::new(EventCode::Changed, "watch.db");
    assert_eq!(starts(&j.on_event(&ev, t)), 1);
    let dropped = j.on_event(&ev, t);
    assert_eq!(starts(&dropped), 0);
    assert!(dropped
        .iter()
        .any(|a| matches!(a, Action::Log(m) if m.contains("ignored"))));
    j.on_exit(0, false, t);
    assert_eq!(j.phase, Phase::Waiting);
    assert_eq!(starts(&j.on_event(&ev, t)), 1);
    assert_eq!(j.runs, 2);
}

#[test]
fn other_sources_and_codes_do_not_trigger() {
    let t = Instant::now();
    let mut j = job(cfg("b", on(EventCode::Healthy, "a"), Restarts::Never));
    assert_eq!(
        starts(&j.on_event(&Event::new(EventCode::Healthy, "c"), t)),
        0
    );
    assert_eq!(
        starts(&j.on_event(&Event::new(EventCode::Unhealthy, "a"), t)),
        0
    );
}

#[test]
fn interval_runs_n_plus_one_times() {
    let t = Instant::now();
    let every = Duration::from_secs(1);
    let mut j = job(cfg("p", When::Interval(every), Restarts::Count(2)));
    assert_eq!(starts(&j.on_event(&startup(), t)), 1);
    j.on_exit(0, false, t);
    assert_eq!(j.next_deadline(), Some(t + every));
    let mut total = 1;
    for i in 1..10 {
        let now = t + every * i;
        let a = j.on_timer(now);
        total += starts(&a);
        if j.is_running() {
            j.on_exit(0, false, now);
        }
    }
    assert_eq!(total, 3);
    assert!(j.is_stopped());
}

#[test]
fn interval_tick_while_running_is_skipped() {
    let t = Instant::now();
    let every = Duration::from_secs(1);
    let mut j = job(cfg("p", When::Interval(every), Restarts::Unlimited));
    j.on_event(&startup(), t);
    let a = j.on_timer(t + every);
    assert_eq!(starts(&a), 0);
    assert!(a.iter().any(|a| matches!(a, Action::Log(_))));
    assert_eq!(j.next_deadline(), Some(t + every * 2));
}

#[test]
fn timeout_kills() {
    let t = Instant::now();
    let mut c = cfg("a", When::Startup, Restarts::Never);
    c.timeout = Some(Duration::from_millis(500));
    let mut j = job(c);
    j.on_event(&startup(), t);
    j.on_started(5, t);
    assert!(j.on_timer(t + Duration::from_millis(499)).is_empty());
    assert!(j
        .on_timer(t + Duration::from_millis(500))
        .contains(&Action::Kill));
}

#[test]
fn when_timeout_gives_up() {
    let t = Instant::now();
    let when = When::Event {
        sources: vec!["a".into()],
        all: false,
        code: EventCode::Healthy,
        once: true,
        timeout: Some(Duration::from_secs(2)),
    };
    let mut j = job(cfg("b", when, Restarts::Never));
    j.on_subscribed(t, BTreeSet::new());
    j.on_event(&startup(), t);
    let a = j.on_timer(t + Duration::from_secs(2));
    assert_eq!(starts(&a), 0);
    assert_eq!(publishes(&a), vec![EventCode::Stopping, EventCode::Stopped]);
    assert!(j.is_stopped());
    assert_eq!(
        starts(&j.on_event(&Event::new(EventCode::Healthy, "a"), t)),
        0
    );
}

#[test]
fn when_timeout_cancelled_by_trigger() {
    let t = Instant::now();
    let when = When::Event {
        sources: vec!["a".into()],
        all: false,
        code: EventCode::Healthy,
        once: true,
        timeout: Some(Duration::from_secs(2)),
    };
    let mut j = job(cfg("b", when, Restarts::Never));
    j.on_subscribed(t, BTreeSet::new());
    assert_eq!(
        starts(&j.on_event(&Event::new(EventCode::Healthy, "a"), t)),
        1
    );
    j.on_started(3, t);
    assert!(j.on_timer(t + Duration::from_secs(3)).is_empty());
}

#[test]
fn source_stopped_without_firing_completes_the_job() {
    let t = Instant::now();
    let mut j = job(cfg(
        "b",
        on(EventCode::ExitSuccess, "setup"),
        Restarts::Never,
    ));
    j.on_event(&Event::new(EventCode::ExitFailed, "setup"), t);
    // A `stopped` event alone proves nothing (an API restart publishes one):
    // the loop says when the source is gone for good.
    assert!(publishes(&j.on_event(&Event::new(EventCode::Stopped, "setup"), t)).is_empty());
    assert!(j.on_source_gone("other", t).is_empty());
    let a = j.on_source_gone("setup", t);
    assert_eq!(publishes(&a), vec![EventCode::Stopping, EventCode::Stopped]);
}

#[test]
fn signal_source_fires_every_time() {
    let t = Instant::now();
    let mut j = job(cfg("h", on(EventCode::Signal, "SIGHUP"), Restarts::Never));
    let hup = Event::new(EventCode::Signal, "SIGHUP");
    assert_eq!(starts(&j.on_event(&hup, t)), 1);
    j.on_exit(0, false, t);
    assert_eq!(starts(&j.on_event(&hup, t)), 1, "signal jobs ignore once");
    j.on_exit(0, false, t);
    assert!(!j.is_stopped());
    assert_eq!(
        starts(&j.on_event(&Event::new(EventCode::Signal, "SIGUSR2"), t)),
        0
    );
}

#[test]
fn health_events_only_on_change() {
    let t = Instant::now();
    let mut c = cfg("a", When::Startup, Restarts::Never);
    c.health = Some(HealthConfig {
        probe: crate::config::Probe::Exec(vec!["true".into()]),
        interval: Duration::from_secs(1),
        ttl: Some(Duration::from_secs(2)),
        timeout: Duration::from_secs(1),
        start_period: Duration::ZERO,
        threshold: 1,
        raw_logging: false,
    });
    c.service = Some(crate::config::ServiceConfig {
        port: 80,
        advertised: true,
        address: None,
        interfaces: vec![],
        tags: vec![],
        initial_status: None,
        enable_tag_override: false,
        deregister_critical_service_after: None,
    });
    let mut j = job(c);
    j.on_event(&startup(), t);
    j.on_started(9, t);
    assert!(j.checks_active());
    assert_eq!(publishes(&check(&mut j, true, t)), vec![EventCode::Healthy]);
    assert_eq!(publishes(&check(&mut j, true, t)), vec![]);
    assert_eq!(
        publishes(&check(&mut j, false, t)),
        vec![EventCode::Unhealthy]
    );
    assert_eq!(publishes(&check(&mut j, false, t)), vec![]);
    assert_eq!(publishes(&check(&mut j, true, t)), vec![EventCode::Healthy]);
    assert_eq!(
        j.set_maintenance(true, t),
        vec![],
        "nothing to do for the job itself"
    );
    assert!(
        check(&mut j, true, t).is_empty(),
        "maintenance ignores late results"
    );
    assert!(!j.checks_active(), "no checks in maintenance");
    j.set_maintenance(false, t);
    assert_eq!(j.health.status, Status::Unknown);
    assert!(j.checks_active());
}

#[test]
fn shutdown_terminates_then_kills_after_global_timeout() {
    let t = Instant::now();
    let mut j = job(cfg("a", When::Startup, Restarts::Unlimited));
    j.on_event(&startup(), t);
    j.on_started(7, t);
    let a = shutdown(&mut j, t);
    assert_eq!(publishes(&a), vec![EventCode::Stopping]);
    assert!(a.contains(&Action::Terminate));
    assert!(j
        .on_timer(t + Duration::from_secs(5))
        .contains(&Action::Kill));
    let a = j.on_exit(137, false, t + Duration::from_secs(5));
    assert_eq!(
        publishes(&a),
        vec![EventCode::ExitFailed, EventCode::Stopped]
    );
    assert_eq!(starts(&a), 0, "no restart during shutdown");
}

#[test]
fn shutdown_waits_for_stopping_dependant() {
    let t = Instant::now();
    let mut c = cfg("app", When::Startup, Restarts::Never);
    c.stop_timeout = Duration::from_secs(3);
    let mut app = Job::new(c, vec!["prestop".into()], Duration::from_secs(5));
    let mut pre = job(cfg(
        "prestop",
        on(EventCode::Stopping, "app"),
        Restarts::Never,
    ));
    app.on_event(&startup(), t);
    app.on_started(7, t);
    let a = shutdown(&mut app, t);
    assert_eq!(publishes(&a), vec![EventCode::Stopping]);
    assert!(!a.contains(&Action::Terminate), "waits for prestop first");
    assert!(shutdown(&mut pre, t).is_empty(), "prestop stays armed");
    assert_eq!(
        starts(&pre.on_event(&Event::new(EventCode::Stopping, "app"), t)),
        1
    );
    let a = pre.on_exit(0, false, t);
    assert_eq!(
        publishes(&a),
        vec![
            EventCode::ExitSuccess,
            EventCode::Stopping,
            EventCode::Stopped
        ]
    );
    let a = app.on_event(&Event::new(EventCode::Stopped, "prestop"), t);
    assert!(a.contains(&Action::Terminate));
}

#[test]
fn stopping_dependant_wait_is_bounded() {
    let t = Instant::now();
    let mut c = cfg("app", When::Startup, Restarts::Never);
    c.stop_timeout = Duration::from_secs(3);
    let mut app = Job::new(c, vec!["prestop".into()], Duration::from_secs(5));
    app.on_event(&startup(), t);
    app.on_started(7, t);
    shutdown(&mut app, t);
    assert!(app.on_timer(t + Duration::from_secs(2)).is_empty());
    assert!(app
        .on_timer(t + Duration::from_secs(3))
        .contains(&Action::Terminate));
}

#[test]
fn poststop_runs_after_stopped_during_shutdown() {
    let t = Instant::now();
    let mut post = job(cfg("post", on(EventCode::Stopped, "app"), Restarts::Never));
    assert!(shutdown(&mut post, t).is_empty());
    assert_eq!(
        starts(&post.on_event(&Event::new(EventCode::Stopped, "app"), t)),
        1
    );
    let a = post.on_exit(0, false, t);
    assert!(post.is_stopped(), "{a:?}");
}

#[test]
fn idle_job_stops_at_once_on_shutdown() {
    let t = Instant::now();
    let mut j = job(cfg(
        "b",
        each(EventCode::Changed, "watch.x"),
        Restarts::Never,
    ));
    let a = shutdown(&mut j, t);
    assert_eq!(publishes(&a), vec![EventCode::Stopping, EventCode::Stopped]);
}

#[test]
fn hurry_kills_at_once() {
    let t = Instant::now();
    let mut j = job(cfg("a", When::Startup, Restarts::Never));
    j.on_event(&startup(), t);
    j.on_started(7, t);
    shutdown(&mut j, t);
    assert!(j.hurry(t).contains(&Action::Kill));
}

#[test]
fn retire_quietly_skips_dependants() {
    let t = Instant::now();
    let mut app = Job::new(
        cfg("app", When::Startup, Restarts::Unlimited),
        vec!["pre".into()],
        Duration::from_secs(5),
    );
    app.on_event(&startup(), t);
    app.on_started(7, t);
    let a = app.retire(t, true);
    assert!(a.contains(&Action::Terminate));
    let a = app.on_exit(143, false, t);
    assert_eq!(starts(&a), 0);
    assert!(app.is_stopped());
}

#[test]
fn stale_deadlines_are_none_when_idle() {
    let j = job(cfg("a", When::Startup, Restarts::Never));
    assert_eq!(j.next_deadline(), None);
}

// --- Beyond 3.x --------------------------------------------------------------

fn has(a: &[Action], x: &Action) -> bool {
    a.contains(x)
}

#[test]
fn interval_runs_are_not_restarts() {
    let t = Instant::now();
    let every = Duration::from_secs(1);
    let mut j = job(cfg("p", When::Interval(every), Restarts::Unlimited));
    j.on_event(&startup(), t);
    for i in 1..5 {
        j.on_exit(0, false, t + every * i - Duration::from_millis(1));
        j.on_timer(t + every * i);
    }
    assert_eq!(j.runs, 5);
    assert_eq!(j.restarts, 0, "scheduled runs are not restarts");
}

#[test]
fn restart_delay_doubles_up_to_the_cap_and_resets_after_a_long_run() {
    let t = Instant::now();
    let mut c = cfg("a", When::Startup, Restarts::Unlimited);
    c.restart_delay = Duration::from_secs(1);
    c.restart_delay_max = Duration::from_secs(5);
    let mut j = job(c);
    j.on_event(&startup(), t);
    let mut now = t;
    for want in [1, 2, 4, 5, 5] {
        let a = j.on_exit(1, false, now);
        assert_eq!(starts(&a), 0);
        assert_eq!(j.phase, Phase::Backoff);
        assert_eq!(j.state(), "backoff");
        assert_eq!(j.next_deadline(), Some(now + Duration::from_secs(want)));
        now += Duration::from_secs(want);
        assert_eq!(starts(&j.on_timer(now)), 1);
    }
    assert_eq!(j.restarts, 5);
    // A run longer than the cap starts the count over.
    now += Duration::from_secs(6);
    j.on_exit(1, false, now);
    assert_eq!(j.next_deadline(), Some(now + Duration::from_secs(1)));
}

#[test]
fn zero_restart_delay_restarts_at_once_as_3x() {
    let t = Instant::now();
    let mut j = job(cfg("a", When::Startup, Restarts::Count(1)));
    j.on_event(&startup(), t);
    assert_eq!(starts(&j.on_exit(1, false, t)), 1);
    assert_eq!(j.restarts, 1);
}

#[test]
fn spawn_failures_back_off_and_the_longer_wait_wins() {
    let t = Instant::now();
    let mut c = cfg("a", When::Startup, Restarts::Unlimited);
    c.restart_delay = Duration::from_millis(150);
    let mut j = job(c);
    j.on_event(&startup(), t);
    let mut now = t;
    // restartDelay 150, 300, 600 vs spawn backoff 100, 200, 400.
    for want in [150, 300, 600] {
        let a = j.on_exit(127, true, now);
        assert_eq!(publishes(&a)[0], EventCode::ExitFailed);
        assert_eq!(j.next_deadline(), Some(now + Duration::from_millis(want)));
        now += Duration::from_millis(want);
        j.on_timer(now);
    }
    // Without restartDelay, only the spawn backoff.
    let mut j = job(cfg("b", When::Startup, Restarts::Unlimited));
    j.on_event(&startup(), t);
    j.on_exit(127, true, t);
    assert_eq!(j.next_deadline(), Some(t + Duration::from_millis(100)));
    j.on_timer(t + Duration::from_millis(100));
    j.on_exit(127, true, t + Duration::from_millis(100));
    assert_eq!(j.next_deadline(), Some(t + Duration::from_millis(300)));
    // A successful exec resets it.
    j.on_timer(t + Duration::from_millis(300));
    j.on_started(5, t + Duration::from_millis(300));
    j.on_exit(127, true, t + Duration::from_millis(400));
    assert_eq!(j.next_deadline(), Some(t + Duration::from_millis(500)));
}

#[test]
fn shutdown_cancels_a_backoff_wait() {
    let t = Instant::now();
    let mut c = cfg("a", When::Startup, Restarts::Unlimited);
    c.restart_delay = Duration::from_secs(10);
    let mut j = job(c);
    j.on_event(&startup(), t);
    j.on_exit(1, false, t);
    assert_eq!(j.phase, Phase::Backoff);
    let a = shutdown(&mut j, t);
    assert_eq!(publishes(&a), vec![EventCode::Stopping, EventCode::Stopped]);
    assert_eq!(j.next_deadline(), None);
}

#[test]
fn shutdown_on_fires_when_the_exit_is_not_restarted() {
    let t = Instant::now();
    let mut c = cfg("app", When::Startup, Restarts::Count(1));
    c.shutdown_on = Some(ShutdownOn::ExitFailed);
    let mut j = job(c);
    j.on_event(&startup(), t);
    // The first failure is restarted: nothing yet.
    let a = j.on_exit(3, false, t);
    assert_eq!(starts(&a), 1);
    assert!(!a.iter().any(|x| matches!(x, Action::ShutDown(_))));
    let a = j.on_exit(3, false, t);
    assert!(has(&a, &Action::ShutDown(3)), "{a:?}");
    // A clean exit does not match exitFailed.
    let mut c = cfg("b", When::Startup, Restarts::Never);
    c.shutdown_on = Some(ShutdownOn::ExitFailed);
    let mut j = job(c);
    j.on_event(&startup(), t);
    assert!(!j
        .on_exit(0, false, t)
        .iter()
        .any(|x| matches!(x, Action::ShutDown(_))));
    // Killed by a signal: 128+N.
    let mut c = cfg("c", When::Startup, Restarts::Never);
    c.shutdown_on = Some(ShutdownOn::Exit);
    let mut j = job(c);
    j.on_event(&startup(), t);
    assert!(has(&j.on_exit(137, false, t), &Action::ShutDown(137)));
}

#[test]
fn shutdown_on_with_unlimited_restarts_ends_on_a_clean_exit_only() {
    let t = Instant::now();
    let mut c = cfg("app", When::Startup, Restarts::Unlimited);
    c.shutdown_on = Some(ShutdownOn::Exit);
    let mut j = job(c);
    j.on_event(&startup(), t);
    let a = j.on_exit(1, false, t);
    assert_eq!(starts(&a), 1, "a failure is restarted");
    assert!(has(&j.on_exit(0, false, t), &Action::ShutDown(0)));
}

#[test]
fn shutdown_on_ignores_exits_containerpilot_caused() {
    let t = Instant::now();
    let mut c = cfg("app", When::Startup, Restarts::Never);
    c.shutdown_on = Some(ShutdownOn::Exit);
    let mut j = job(c);
    j.on_event(&startup(), t);
    j.on_started(4, t);
    shutdown(&mut j, t);
    let a = j.on_exit(143, false, t);
    assert!(!a.iter().any(|x| matches!(x, Action::ShutDown(_))), "{a:?}");
    // Stopped through the API: not on its own either.
    let mut c = cfg("api", When::Startup, Restarts::Never);
    c.shutdown_on = Some(ShutdownOn::Exit);
    let mut j = job(c);
    j.on_event(&startup(), t);
    j.on_started(4, t);
    j.api_stop(t);
    assert!(!j
        .on_exit(143, false, t)
        .iter()
        .any(|x| matches!(x, Action::ShutDown(_))));
    // Its own timeout kill counts.
    let mut c = cfg("slow", When::Startup, Restarts::Never);
    c.shutdown_on = Some(ShutdownOn::ExitFailed);
    c.timeout = Some(Duration::from_secs(1));
    let mut j = job(c);
    j.on_event(&startup(), t);
    j.on_started(4, t);
    assert!(has(&j.on_timer(t + Duration::from_secs(1)), &Action::Kill));
    assert!(has(&j.on_exit(137, false, t), &Action::ShutDown(137)));
}

fn many(all: bool, code: EventCode, sources: &[&str], once: bool) -> When {
    When::Event {
        sources: sources.iter().map(|s| s.to_string()).collect(),
        all,
        code,
        once,
        timeout: None,
    }
}

#[test]
fn any_fires_on_the_first_listed_source() {
    let t = Instant::now();
    let mut j = job(cfg(
        "reload",
        many(false, EventCode::Changed, &["watch.a", "watch.b"], false),
        Restarts::Never,
    ));
    assert_eq!(
        starts(&j.on_event(&Event::new(EventCode::Changed, "watch.b"), t)),
        1
    );
    j.on_exit(0, false, t);
    assert_eq!(
        starts(&j.on_event(&Event::new(EventCode::Changed, "watch.a"), t)),
        1
    );
    assert_eq!(j.depends_on(), ["watch.a", "watch.b"]);
}

#[test]
fn all_fires_once_every_source_has_published_since_the_last_firing() {
    let t = Instant::now();
    let mut j = job(cfg(
        "c",
        many(true, EventCode::Healthy, &["a", "b"], false),
        Restarts::Never,
    ));
    j.on_subscribed(t, BTreeSet::new());
    let a_healthy = Event::new(EventCode::Healthy, "a");
    let b_healthy = Event::new(EventCode::Healthy, "b");
    assert_eq!(starts(&j.on_event(&a_healthy, t)), 0);
    assert_eq!(starts(&j.on_event(&a_healthy, t)), 0);
    assert_eq!(starts(&j.on_event(&b_healthy, t)), 1);
    j.on_exit(0, false, t);
    // The set was cleared when it fired.
    assert_eq!(starts(&j.on_event(&b_healthy, t)), 0);
    assert_eq!(starts(&j.on_event(&a_healthy, t)), 1);
}

#[test]
fn all_is_seeded_with_sources_already_in_the_awaited_state() {
    let t = Instant::now();
    let mut j = job(cfg(
        "c",
        many(true, EventCode::Healthy, &["a", "b"], true),
        Restarts::Never,
    ));
    j.on_subscribed(t, ["a".to_string()].into_iter().collect());
    assert_eq!(
        starts(&j.on_event(&Event::new(EventCode::Healthy, "b"), t)),
        1
    );
}

#[test]
fn all_gives_up_when_an_unseen_source_is_gone() {
    let t = Instant::now();
    let mut j = job(cfg(
        "c",
        many(true, EventCode::ExitSuccess, &["a", "b"], true),
        Restarts::Never,
    ));
    j.on_event(&Event::new(EventCode::ExitSuccess, "a"), t);
    // `a` has done its part; its going away changes nothing.
    assert!(j.on_source_gone("a", t).is_empty());
    let a = j.on_source_gone("b", t);
    assert_eq!(publishes(&a), vec![EventCode::Stopping, EventCode::Stopped]);
}

#[test]
fn a_trigger_naming_nothing_completes_at_startup() {
    let t = Instant::now();
    let mut j = job(cfg("x", When::Never, Restarts::Never));
    let a = j.on_event(&startup(), t);
    assert_eq!(publishes(&a), vec![EventCode::Stopping, EventCode::Stopped]);
    assert_eq!(j.state(), "completed");
    assert_eq!(j.runs, 0);
}

#[test]
fn shutdown_hooks_are_triggered_by_shutdown_and_others_wait_for_the_loop() {
    let t = Instant::now();
    let mut hook = job(cfg(
        "save",
        many(false, EventCode::Shutdown, &[GLOBAL], true),
        Restarts::Never,
    ));
    let mut app = job(cfg("app", When::Startup, Restarts::Unlimited));
    app.on_event(&startup(), t);
    app.on_started(3, t);
    assert!(hook.is_shutdown_hook());
    assert!(!app.is_shutdown_hook());
    let ev = Event::global(EventCode::Shutdown);
    assert_eq!(starts(&hook.on_event(&ev, t)), 1);
    // The app is not stopped by the event itself...
    assert!(publishes(&app.on_event(&ev, t)).is_empty());
    // ...and is not restarted meanwhile.
    assert_eq!(starts(&app.on_exit(1, false, t)), 0);
}

#[test]
fn threshold_counts_consecutive_failures() {
    let t = Instant::now();
    let mut h = health(Probe::Exec(vec!["check".into()]));
    h.threshold = 3;
    let mut j = checked(h, t);
    assert!(check(&mut j, false, t).is_empty());
    assert!(check(&mut j, false, t).is_empty());
    assert_eq!(j.health.status, Status::Unknown);
    let a = check(&mut j, false, t);
    assert_eq!(publishes(&a), vec![EventCode::Unhealthy]);
    assert!(has(&a, &Action::Fail("boom".into())));
    // A pass resets the count.
    check(&mut j, true, t);
    assert!(check(&mut j, false, t).is_empty());
    assert_eq!(j.health.status, Status::Healthy);
}

#[test]
fn failures_in_the_start_period_do_not_count_and_a_pass_ends_it() {
    let t = Instant::now();
    let mut h = health(Probe::Tcp {
        host: "127.0.0.1".into(),
        port: 1,
    });
    h.start_period = Duration::from_secs(10);
    let mut j = checked(h, t);
    assert!(check(&mut j, false, t + Duration::from_secs(9)).is_empty());
    assert_eq!(j.health.status, Status::Unknown);
    assert_eq!(
        publishes(&check(&mut j, false, t + Duration::from_secs(10))),
        vec![EventCode::Unhealthy]
    );
    // Restarted: a new period; a pass ends it early.
    let mut j = checked(
        HealthConfig {
            start_period: Duration::from_secs(10),
            ..health(Probe::Exec(vec!["x".into()]))
        },
        t,
    );
    check(&mut j, true, t + Duration::from_secs(1));
    assert_eq!(
        publishes(&check(&mut j, false, t + Duration::from_secs(2))),
        vec![EventCode::Unhealthy]
    );
}

fn notify_job(watchdog: Option<Duration>, t: Instant) -> Job {
    let mut c = cfg("n", When::Startup, Restarts::Unlimited);
    c.notify = Some(NotifyConfig { watchdog });
    let mut j = job(c);
    j.on_event(&startup(), t);
    j.on_started(12, t);
    j
}

#[test]
fn ready_makes_a_notify_job_healthy_and_status_is_kept() {
    let t = Instant::now();
    let mut j = notify_job(None, t);
    assert!(j
        .on_notified(false, false, false, Some("warming up"), t)
        .is_empty());
    assert_eq!(j.health.notify_status.as_deref(), Some("warming up"));
    let a = j.on_notified(true, false, false, None, t);
    assert_eq!(publishes(&a), vec![EventCode::Healthy]);
    assert!(has(&a, &Action::Pass));
    // A restart makes it unknown until the new process is ready.
    j.on_exit(1, false, t);
    assert_eq!(j.health.status, Status::Unknown);
    let long = "x".repeat(1000);
    j.on_started(13, t);
    j.on_notified(false, false, false, Some(&long), t);
    assert_eq!(j.health.notify_status.as_ref().map(|s| s.len()), Some(256));
}

#[test]
fn a_missed_watchdog_aborts_then_kills() {
    let t = Instant::now();
    let wd = Duration::from_secs(2);
    let mut j = notify_job(Some(wd), t);
    // The clock starts at READY=1 only.
    assert_eq!(j.next_deadline(), None);
    j.on_notified(true, false, false, None, t);
    assert_eq!(j.next_deadline(), Some(t + wd));
    j.on_notified(false, true, false, None, t + Duration::from_secs(1));
    assert_eq!(j.next_deadline(), Some(t + Duration::from_secs(3)));
    let a = j.on_timer(t + Duration::from_secs(3));
    assert!(has(&a, &Action::Abort));
    assert_eq!(publishes(&a), vec![EventCode::Unhealthy]);
    let a = j.on_timer(t + Duration::from_secs(8));
    assert!(has(&a, &Action::Kill), "it ignored SIGABRT: {a:?}");
    // Then the restart policy applies.
    assert_eq!(
        starts(&j.on_exit(134, false, t + Duration::from_secs(8))),
        1
    );
}

#[test]
fn the_watchdog_stops_in_maintenance_and_a_ready_job_is_healthy_after() {
    let t = Instant::now();
    let wd = Duration::from_secs(2);
    let mut j = notify_job(Some(wd), t);
    j.on_notified(true, false, false, None, t);
    j.set_maintenance(true, t);
    assert!(j.on_timer(t + Duration::from_secs(60)).is_empty());
    let later = t + Duration::from_secs(61);
    let a = j.set_maintenance(false, later);
    assert_eq!(publishes(&a), vec![EventCode::Healthy]);
    assert_eq!(j.next_deadline(), Some(later + wd));
}

#[test]
fn api_stop_holds_the_job_until_start() {
    let t = Instant::now();
    let mut j = job(cfg("a", When::Startup, Restarts::Unlimited));
    j.on_event(&startup(), t);
    j.on_started(5, t);
    let (updated, a) = j.api_stop(t);
    assert!(updated);
    assert_eq!(publishes(&a), vec![EventCode::Stopping]);
    assert!(has(&a, &Action::Terminate));
    assert!(j.api_busy());
    let a = j.on_exit(143, false, t);
    assert_eq!(
        publishes(&a),
        vec![EventCode::ExitFailed, EventCode::Stopped]
    );
    assert_eq!(starts(&a), 0, "not restarted");
    assert!(!j.api_busy());
    assert_eq!(j.state(), "stopped");
    assert!(!j.api_stop(t).0, "already stopped");
    let (updated, a) = j.api_start(t).expect("has exec");
    assert!(updated);
    assert_eq!(starts(&a), 1);
    assert_eq!(j.restarts, 0);
    assert_eq!(j.runs, 2);
    assert!(!j.api_start(t).unwrap().0, "already running");
}

#[test]
fn a_stopped_job_ignores_its_triggers() {
    let t = Instant::now();
    let mut j = job(cfg(
        "b",
        each(EventCode::Changed, "watch.w"),
        Restarts::Never,
    ));
    j.api_stop(t);
    assert_eq!(j.state(), "stopped");
    let ev = Event::new(EventCode::Changed, "watch.w");
    assert_eq!(starts(&j.on_event(&ev, t)), 0);
    j.api_start(t);
    j.on_exit(0, false, t);
    assert_eq!(starts(&j.on_event(&ev, t)), 1);
}

#[test]
fn api_restart_stops_with_events_then_starts_uncounted() {
    let t = Instant::now();
    let mut c = cfg("a", When::Startup, Restarts::Never);
    c.restart_delay = Duration::from_secs(5);
    let mut j = job(c);
    j.on_event(&startup(), t);
    j.on_started(5, t);
    let a = j.api_restart(t).expect("has exec");
    assert_eq!(publishes(&a), vec![EventCode::Stopping]);
    assert!(j.api_busy());
    let a = j.on_exit(143, false, t);
    assert_eq!(
        publishes(&a),
        vec![EventCode::ExitFailed, EventCode::Stopped]
    );
    assert_eq!(starts(&a), 1, "started again at once, no backoff");
    assert_eq!((j.restarts, j.runs), (0, 2));
    assert!(!j.api_busy());
    // Without a process it is a start.
    j.on_exit(0, false, t);
    assert_eq!(starts(&j.api_restart(t).unwrap()), 1);
}

#[test]
fn api_start_cancels_a_backoff_and_refuses_a_job_without_exec() {
    let t = Instant::now();
    let mut c = cfg("a", When::Startup, Restarts::Unlimited);
    c.restart_delay = Duration::from_secs(30);
    let mut j = job(c);
    j.on_event(&startup(), t);
    j.on_exit(1, false, t);
    assert_eq!(j.phase, Phase::Backoff);
    assert_eq!(starts(&j.api_start(t).unwrap().1), 1);
    assert_eq!(j.next_deadline(), None);
    let mut c = JobConfig::plain("svc", None);
    c.service = Some(ServiceConfig {
        port: 80,
        advertised: false,
        address: None,
        interfaces: vec![],
        tags: vec![],
        initial_status: None,
        enable_tag_override: false,
        deregister_critical_service_after: None,
    });
    let mut j = job(c);
    assert!(j.api_start(t).is_none());
    assert!(j.api_restart(t).is_none());
}

#[test]
fn a_stopped_interval_job_keeps_its_phase() {
    let t = Instant::now();
    let every = Duration::from_secs(10);
    let mut j = job(cfg("p", When::Interval(every), Restarts::Unlimited));
    j.on_event(&startup(), t);
    j.on_exit(0, false, t);
    j.api_stop(t);
    assert_eq!(starts(&j.on_timer(t + every)), 0);
    assert_eq!(j.next_deadline(), Some(t + every * 2));
    j.api_start(t + every + Duration::from_secs(1));
    j.on_exit(0, false, t + every + Duration::from_secs(2));
    assert_eq!(starts(&j.on_timer(t + every * 2)), 1, "on the old grid");
}
