//! A job's `when` (SPEC §2.3, §3.2): start-up, an interval, or an event from
//! a job, a watch, `global` or a signal.

use super::jobs::{Context, MIN_INTERVAL};
use super::obj::{invalid, suggest, Obj};
use super::{Result, Validator};
use crate::config::When;
use crate::event::{EventCode, GLOBAL, SIGNAL_SOURCES};

const WHEN_KEYS: &[&str] = &["interval", "source", "once", "each", "timeout"];

/// How a `when.source` publishes, to catch triggers that can never fire.
#[derive(Clone, Copy)]
enum SourceKind {
    Job,
    Watch,
    Global,
}

impl Validator<'_> {
    /// The trigger, and whether it was given as `each` (for the `restarts` rule).
    pub(super) fn when(&mut self, job: &Obj, ctx: &Context) -> Result<(When, bool)> {
        let Some(w) = self.obj_opt(job, "when", WHEN_KEYS)? else {
            return Ok((When::Startup, false));
        };
        let interval = w.duration("interval")?;
        let source = w.str("source")?;
        let once = w.str("once")?;
        let each = w.str("each")?;
        let timeout = w.duration("timeout")?;
        if (once.is_some() && each.is_some())
            || (interval.is_some() && (once.is_some() || each.is_some()))
        {
            return Err(invalid(format!(
                "{} can have only one of 'interval', 'once' or 'each'",
                w.path
            )));
        }
        if let Some(every) = interval {
            for key in ["source", "timeout"] {
                if w.get(key).is_some() {
                    return Err(invalid(format!(
                        "{} cannot be combined with 'interval'",
                        w.at(key)
                    )));
                }
            }
            if every < MIN_INTERVAL {
                return Err(invalid(format!(
                    "{} must be at least 1ms",
                    w.at("interval")
                )));
            }
            return Ok((When::Interval(every), false));
        }

        let event = match (once, each) {
            (Some(e), _) => Some((parse_event(&w.at("once"), e)?, true)),
            (_, Some(e)) => Some((parse_event(&w.at("each"), e)?, false)),
            _ => None,
        };
        // 3.x treats a zero timeout as none.
        let timeout = timeout.filter(|t| !t.is_zero());
        let source = match (source, event) {
            (Some(s), _) => s.to_string(),
            (None, Some((code, _))) if code.is_global() => GLOBAL.to_string(),
            (None, Some((code, _))) => {
                return Err(invalid(format!(
                    "{} is required: which job or watch publishes '{}'?",
                    w.at("source"),
                    code.name()
                )))
            }
            (None, None) => {
                return Err(invalid(format!(
                    "{} needs 'interval', or 'source' with 'once' or 'each'",
                    w.path
                )))
            }
        };
        if SIGNAL_SOURCES.contains(&source.as_str()) {
            // The 3.x form: a signal fires on every delivery, whatever once/each say.
            let when = When::Event {
                sources: vec![source],
                all: false,
                code: EventCode::Signal,
                once: false,
                timeout,
            };
            return Ok((when, each.is_some()));
        }
        let Some((code, once)) = event else {
            return Err(invalid(format!(
                "{} needs 'once' or 'each' to name the event from '{source}' \
                 (only the signal sources SIGHUP and SIGUSR2 may omit them)",
                w.path
            )));
        };
        let kind = source_kind(&w.at("source"), &source, ctx)?;
        if !publishes(kind, code) {
            let event_key = if once { "once" } else { "each" };
            self.warn(format!(
                "{}: '{source}' never publishes '{}', so this job never runs",
                w.at(event_key),
                code.name()
            ));
        }
        let when = When::Event {
            sources: vec![source],
            all: false,
            code,
            once,
            timeout,
        };
        Ok((when, !once))
    }
}

/// Where a `when.source` events come from; an error when it names nothing.
fn source_kind(path: &str, source: &str, ctx: &Context) -> Result<SourceKind> {
    if source == GLOBAL {
        return Ok(SourceKind::Global);
    }
    if let Some(watch) = source.strip_prefix("watch.") {
        if ctx.watches.contains(watch) {
            return Ok(SourceKind::Watch);
        }
        let mut msg =
            format!("{path} names 'watch.{watch}', but there is no watch named '{watch}'");
        let known: Vec<&str> = ctx.watches.iter().map(String::as_str).collect();
        if let Some(s) = suggest(watch, &known) {
            msg.push_str(&format!("; did you mean 'watch.{s}'?"));
        }
        return Err(invalid(msg));
    }
    if ctx.jobs.contains(source) {
        return Ok(SourceKind::Job);
    }
    let mut msg = format!(
        "{path} '{source}' names no job, no watch ('watch.NAME'), \
         not 'global' and not a signal (SIGHUP, SIGUSR2)"
    );
    let mut candidates: Vec<String> = ctx.jobs.iter().cloned().collect();
    candidates.extend(ctx.watches.iter().map(|w| format!("watch.{w}")));
    candidates.extend([GLOBAL.to_string()]);
    candidates.extend(SIGNAL_SOURCES.iter().map(|s| s.to_string()));
    let known: Vec<&str> = candidates.iter().map(String::as_str).collect();
    if ctx.watches.contains(source) {
        // Watch events come from `watch.NAME`, not the bare watch name.
        msg.push_str(&format!("; did you mean 'watch.{source}'?"));
    } else if let Some(s) = suggest(source, &known) {
        msg.push_str(&format!("; did you mean '{s}'?"));
    }
    Err(invalid(msg))
}

/// Whether a source of this kind ever publishes the event (SPEC §3.1, §6).
fn publishes(kind: SourceKind, code: EventCode) -> bool {
    use EventCode::*;
    match kind {
        SourceKind::Global => code.is_global(),
        SourceKind::Watch => matches!(code, Changed | Healthy | Unhealthy),
        SourceKind::Job => matches!(
            code,
            ExitSuccess | ExitFailed | Stopping | Stopped | Healthy | Unhealthy
        ),
    }
}

fn parse_event(path: &str, name: &str) -> Result<EventCode> {
    EventCode::parse(name).ok_or_else(|| {
        let names: Vec<&str> = EventCode::NAMES.iter().map(|(n, _)| *n).collect();
        let mut msg = format!("{path}: unknown event '{name}'");
        match suggest(name, &names) {
            Some(s) => msg.push_str(&format!(", did you mean '{s}'?")),
            None => msg.push_str(&format!("; events are {}", names.join(", "))),
        }
        invalid(msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::testutil::*;
    use crate::config::Restarts;
    use std::time::Duration;

    #[test]
    fn no_when_runs_at_startup() {
        let j = job("name: 'a', exec: 'x'");
        assert_eq!(j.when, When::Startup);
        assert_eq!(j.timeout, None);
        assert_eq!(j.restarts, Restarts::Never);
        assert_eq!(j.stop_timeout, Duration::ZERO);
    }

    #[test]
    fn interval_jobs() {
        let j = job("name: 'a', exec: 'x', when: {interval: '1s'}");
        assert_eq!(j.when, When::Interval(secs(1)));
        // Periodic: timeout defaults to the interval, restarts to unlimited.
        assert_eq!(j.timeout, Some(secs(1)));
        assert_eq!(j.restarts, Restarts::Unlimited);
        let j = job("name: 'a', exec: 'x', when: {interval: 10}, timeout: '2s', restarts: 'never'");
        assert_eq!(j.when, When::Interval(secs(10)));
        assert_eq!(j.timeout, Some(secs(2)));
        assert_eq!(j.restarts, Restarts::Never);
        assert_eq!(
            job("name: 'a', exec: 'x', when: {interval: '1ms'}").when,
            When::Interval(Duration::from_millis(1))
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', when: {interval: '999us'}"),
            "job[a].when.interval must be at least 1ms"
        );
        assert_eq!(
            job_err("name: 'a', exec: 'x', when: {interval: 0}"),
            "job[a].when.interval must be at least 1ms"
        );
    }

    #[test]
    fn interval_excludes_everything_else() {
        for (extra, msg) in [
            (
                "once: 'startup'",
                "job[a].when can have only one of 'interval', 'once' or 'each'",
            ),
            (
                "each: 'startup'",
                "job[a].when can have only one of 'interval', 'once' or 'each'",
            ),
            (
                "source: 'b'",
                "job[a].when.source cannot be combined with 'interval'",
            ),
            (
                "timeout: '5s'",
                "job[a].when.timeout cannot be combined with 'interval'",
            ),
        ] {
            let body = format!("name: 'a', exec: 'x', when: {{interval: '1s', {extra}}}");
            assert_eq!(job_err(&body), msg, "{extra}");
        }
    }

    #[test]
    fn once_and_each_exclude_each_other() {
        assert_eq!(
            err1(
                "{jobs: [{name: 'b', exec: 'y'}, {name: 'a', exec: 'x', \
                  when: {source: 'b', once: 'exitSuccess', each: 'exitFailed'}}]}"
            ),
            "job[a].when can have only one of 'interval', 'once' or 'each'"
        );
    }

    #[test]
    fn event_triggers() {
        // A source defined further down the list is fine.
        assert_eq!(
            first_when("{source: 'b', once: 'exitSuccess'}"),
            When::Event {
                sources: vec!["b".into()],
                all: false,
                code: EventCode::ExitSuccess,
                once: true,
                timeout: None
            }
        );
        assert_eq!(
            first_when("{source: 'watch.db', each: 'changed', timeout: '30s'}"),
            When::Event {
                sources: vec!["watch.db".into()],
                all: false,
                code: EventCode::Changed,
                once: false,
                timeout: Some(secs(30))
            }
        );
        // 3.x: a zero timeout is none.
        let When::Event { timeout, .. } = first_when("{source: 'b', once: 'healthy', timeout: 0}")
        else {
            panic!("event")
        };
        assert_eq!(timeout, None);
        // Every event name.
        for (name, code) in EventCode::NAMES {
            let source = if code.is_global() { "global" } else { "b" };
            let When::Event { code: c, .. } =
                first_when(&format!("{{source: '{source}', once: '{name}'}}"))
            else {
                panic!("event")
            };
            assert_eq!(c, code);
        }
    }

    #[test]
    fn global_events_imply_the_global_source() {
        for name in ["startup", "shutdown", "enterMaintenance", "exitMaintenance"] {
            let When::Event { sources, code, .. } = first_when(&format!("{{once: '{name}'}}"))
            else {
                panic!("event")
            };
            assert_eq!(sources, [GLOBAL]);
            assert_eq!(code.name(), name);
        }
        assert_eq!(
            err1(&two_jobs("{once: 'healthy'}")),
            "job[a].when.source is required: which job or watch publishes 'healthy'?"
        );
    }

    #[test]
    fn a_source_needs_once_or_each() {
        assert_eq!(
            err1(&two_jobs("{source: 'b'}")),
            "job[a].when needs 'once' or 'each' to name the event from 'b' \
             (only the signal sources SIGHUP and SIGUSR2 may omit them)"
        );
        assert_eq!(
            err1(&two_jobs("{}")),
            "job[a].when needs 'interval', or 'source' with 'once' or 'each'"
        );
    }

    #[test]
    fn signal_sources() {
        for sig in ["SIGHUP", "SIGUSR2"] {
            let expected = When::Event {
                sources: vec![sig.into()],
                all: false,
                code: EventCode::Signal,
                once: false,
                timeout: None,
            };
            assert_eq!(first_when(&format!("{{source: '{sig}'}}")), expected);
            // Fires on every signal, whatever once/each say.
            assert_eq!(
                first_when(&format!("{{source: '{sig}', once: 'exitSuccess'}}")),
                expected
            );
        }
        assert!(
            err1(&two_jobs("{source: 'SIGHUP', once: 'nope'}")).contains("unknown event 'nope'")
        );
    }

    #[test]
    fn a_source_must_name_something() {
        assert_eq!(
            err1(&two_jobs("{source: 'c', once: 'exitSuccess'}")),
            "job[a].when.source 'c' names no job, no watch ('watch.NAME'), not 'global' and \
             not a signal (SIGHUP, SIGUSR2)"
        );
        assert_eq!(
            err1(&two_jobs("{source: 'sighup', each: 'changed'}")),
            "job[a].when.source 'sighup' names no job, no watch ('watch.NAME'), not 'global' and \
             not a signal (SIGHUP, SIGUSR2); did you mean 'SIGHUP'?"
        );
        assert_eq!(
            err1(&two_jobs("{source: 'watch.dbs', each: 'changed'}")),
            "job[a].when.source names 'watch.dbs', but there is no watch named 'dbs'; did you mean 'watch.db'?"
        );
        assert!(
            err1(&two_jobs("{source: 'db', each: 'changed'}")).contains("did you mean 'watch.db'?")
        );
    }

    #[test]
    fn unknown_event_names() {
        assert_eq!(
            err1(&two_jobs("{source: 'b', once: 'exitsuccess'}")),
            "job[a].when.once: unknown event 'exitsuccess', did you mean 'exitSuccess'?"
        );
        assert!(
            err1(&two_jobs("{source: 'b', each: 'finished'}")).starts_with(
                "job[a].when.each: unknown event 'finished'; events are exitSuccess, exitFailed"
            )
        );
        assert_eq!(
            err1(&two_jobs("{source: 'b', once: 3}")),
            "job[a].when.once must be a string, got integer 3"
        );
    }

    #[test]
    fn triggers_that_can_never_fire_are_warned_about() {
        for (when, note) in [
            (
                "{source: 'global', once: 'healthy'}",
                "'global' never publishes 'healthy'",
            ),
            (
                "{source: 'watch.db', once: 'exitSuccess'}",
                "'watch.db' never publishes 'exitSuccess'",
            ),
            (
                "{source: 'b', each: 'changed'}",
                "'b' never publishes 'changed'",
            ),
            (
                "{source: 'b', once: 'startup'}",
                "'b' never publishes 'startup'",
            ),
        ] {
            let w = ok(&two_jobs(when)).1;
            assert!(w.iter().any(|w| w.contains(note)), "{when}: {w:?}");
        }
        assert!(ok(&two_jobs("{source: 'b', once: 'healthy'}")).1.is_empty());
    }
}
