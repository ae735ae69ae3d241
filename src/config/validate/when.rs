//! A job's `when` (SPEC §2.3, §3.2, §3.7): start-up, an interval, or an
//! event from a job, a watch, `global` or a signal; beyond 3.x, an event from
//! any or all of several sources.
//!
//! A source that names nothing is a warning, not an error, because 3.x ran
//! such configs (the job simply never ran): the job gets `When::Never`, or in
//! `any` the source is left out.

use std::collections::HashSet;
use std::time::Duration;

use super::jobs::{Context, MIN_INTERVAL};
use super::obj::{closest, expected, invalid, shown, suggest, suggest_within, Obj};
use super::{Result, Validator};
use crate::config::tree::Node;
use crate::config::When;
use crate::event::{EventCode, GLOBAL, SIGNAL_SOURCES};

const WHEN_KEYS: &[&str] = &[
    "interval", "source", "any", "all", "once", "each", "timeout",
];

/// How a source publishes, to catch triggers that can never fire.
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
            for key in ["source", "any", "all", "timeout"] {
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
        let lists: Vec<&str> = ["any", "all"]
            .into_iter()
            .filter(|k| w.get(k).is_some())
            .collect();
        let list_key = lists.first().copied();
        if lists.len() + usize::from(source.is_some()) > 1 {
            return Err(invalid(format!(
                "{} can have only one of 'source', 'any' or 'all'",
                w.path
            )));
        }

        let event = match (once, each) {
            (Some(e), _) => Some((parse_event(&w.at("once"), e)?, true)),
            (_, Some(e)) => Some((parse_event(&w.at("each"), e)?, false)),
            _ => None,
        };
        // 3.x treats a zero timeout as none.
        let timeout = timeout.filter(|t| !t.is_zero());
        if let Some(key) = list_key {
            let when = self.several(job, &w, key, event, timeout, ctx)?;
            return Ok((when, each.is_some()));
        }
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
                "{} needs 'once' or 'each' to name the event from '{}' \
                 (only the signal sources SIGHUP and SIGUSR2 may omit them)",
                w.path,
                shown(&source)
            )));
        };
        let Some(kind) = source_kind(&source, ctx) else {
            if self.room_for_warning() {
                let unknown = self.unknown_sources(&[&source], ctx, true);
                self.warn(never_runs(&job.path, &unknown));
            }
            return Ok((When::Never, !once));
        };
        let event_path = w.at(if once { "once" } else { "each" });
        if !publishes(kind, code) {
            self.warn(never_publishes(&event_path, &source, code, true));
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

    /// `when: {any: [...]}` or `{all: [...]}` (beyond 3.x).
    fn several(
        &mut self,
        job: &Obj,
        w: &Obj,
        key: &str,
        event: Option<(EventCode, bool)>,
        timeout: Option<Duration>,
        ctx: &Context,
    ) -> Result<When> {
        let path = w.at(key);
        let items = match w.get(key) {
            Some(Node::Array(items)) => items,
            Some(n) => return Err(expected(&path, "a list of sources", n)),
            None => &[][..],
        };
        if items.is_empty() {
            return Err(invalid(format!("{path} must not be empty")));
        }
        let mut listed: Vec<&str> = Vec::with_capacity(items.len());
        let mut seen: HashSet<&str> = HashSet::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let s = match item {
                Node::Str(s) if !s.trim().is_empty() => s.as_str(),
                Node::Str(_) => return Err(invalid(format!("{at} must name a source"))),
                other => return Err(expected(&at, "a source name (a string)", other)),
            };
            if SIGNAL_SOURCES.contains(&s) {
                return Err(invalid(format!(
                    "{at}: a signal cannot be listed in '{key}'; use source: \"{s}\""
                )));
            }
            if seen.insert(s) {
                listed.push(s);
            } else {
                self.warn(format!("{path}: '{}' is listed more than once", shown(s)));
            }
        }
        let Some((code, once)) = event else {
            return Err(invalid(format!(
                "{} needs 'once' or 'each' to name the event from its '{key}' sources",
                w.path
            )));
        };
        let mut known: Vec<(&str, SourceKind)> = Vec::with_capacity(listed.len());
        let mut unknown: Vec<&str> = Vec::new();
        for s in listed {
            match source_kind(s, ctx) {
                Some(kind) => known.push((s, kind)),
                None => unknown.push(s),
            }
        }
        let all = key == "all";
        if !unknown.is_empty() {
            let never = all || known.is_empty();
            if self.room_for_warning() {
                let names = self.unknown_sources(&unknown, ctx, false);
                let msg = if never {
                    never_runs(&job.path, &names)
                } else {
                    let (pronoun, verb) = if unknown.len() == 1 {
                        ("it", "is")
                    } else {
                        ("they", "are")
                    };
                    format!(
                        "{} waits for {names} (in when.any), which no job or watch provides; \
                         {pronoun} {verb} ignored",
                        job.path
                    )
                };
                self.warn(msg);
            }
            if never {
                return Ok(When::Never);
            }
        }
        let event_path = w.at(if once { "once" } else { "each" });
        let silent: Vec<&str> = known
            .iter()
            .filter(|(_, kind)| !publishes(*kind, code))
            .map(|(s, _)| *s)
            .collect();
        // One silent source stops `all`; `any` needs them all silent.
        let never = all || silent.len() == known.len();
        for s in silent {
            self.warn(never_publishes(&event_path, s, code, never));
        }
        Ok(When::Event {
            sources: known.into_iter().map(|(s, _)| s.to_string()).collect(),
            all,
            code,
            once,
            timeout,
        })
    }

    /// `'a' and 'b'`, each with the source probably meant when one is close;
    /// a long list is cut short.
    fn unknown_sources(&mut self, sources: &[&str], ctx: &Context, signals: bool) -> String {
        const SHOWN: usize = 10;
        let mut parts: Vec<String> = Vec::new();
        for source in sources.iter().take(SHOWN) {
            let mut part = format!("'{}'", shown(source));
            if let Some(h) = self.source_hint(source, ctx, signals) {
                part.push_str(&format!(" (did you mean '{h}'?)"));
            }
            parts.push(part);
        }
        if sources.len() > SHOWN {
            parts.push(format!("{} more", sources.len() - SHOWN));
        }
        parts.join(" and ")
    }

    /// The source probably meant instead of `source`, which names nothing.
    fn source_hint(&mut self, source: &str, ctx: &Context, signals: bool) -> Option<String> {
        let budget = &mut self.suggest_budget;
        if let Some(watch) = source.strip_prefix("watch.") {
            let watches = ctx.watches.iter().map(String::as_str);
            return suggest_within(watch, watches, budget).map(|s| format!("watch.{s}"));
        }
        if ctx.watches.contains(source) {
            // Watch events come from `watch.NAME`, not the bare watch name.
            return Some(format!("watch.{source}"));
        }
        let jobs = closest(source, ctx.jobs.iter().map(String::as_str), budget)
            .map(|(d, s)| (d, s.to_string()));
        // `watch-db` for `watch.db`: the rest against the watch names.
        let watches = source.strip_prefix("watch").and_then(|rest| {
            let rest = rest
                .strip_prefix(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest);
            closest(rest, ctx.watches.iter().map(String::as_str), budget)
                .map(|(d, w)| (d + 1, format!("watch.{w}")))
        });
        let signals: &[&str] = if signals { &SIGNAL_SOURCES } else { &[] };
        let fixed = closest(
            source,
            [GLOBAL].into_iter().chain(signals.iter().copied()),
            budget,
        )
        .map(|(d, s)| (d, s.to_string()));
        [jobs, watches, fixed]
            .into_iter()
            .flatten()
            .reduce(|best, next| if next.0 < best.0 { next } else { best })
            .map(|(_, s)| s)
    }
}

/// SPEC §2.3: `job[X] waits for 'watch.influxdb', which no job or watch
/// provides; it will never run`.
fn never_runs(job: &str, unknown: &str) -> String {
    format!("{job} waits for {unknown}, which no job or watch provides; it will never run")
}

fn never_publishes(path: &str, source: &str, code: EventCode, never: bool) -> String {
    let mut msg = format!(
        "{path}: '{}' never publishes '{}'",
        shown(source),
        code.name()
    );
    if never {
        msg.push_str(", so this job never runs");
    }
    msg
}

/// Where a source's events come from; `None` when it names nothing.
fn source_kind(source: &str, ctx: &Context) -> Option<SourceKind> {
    if source == GLOBAL {
        Some(SourceKind::Global)
    } else if let Some(watch) = source.strip_prefix("watch.") {
        ctx.watches.contains(watch).then_some(SourceKind::Watch)
    } else {
        ctx.jobs.contains(source).then_some(SourceKind::Job)
    }
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
        let mut msg = format!("{path}: unknown event '{}'", shown(name));
        match suggest(name, names.iter().copied()) {
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
    fn a_source_that_names_nothing_is_a_warning_and_the_job_never_runs() {
        // Issue #12: 3.x ran such configs; the job simply never ran.
        let (c, w) = ok(&two_jobs("{source: 'watch.influxdb', each: 'changed'}"));
        assert_eq!(c.jobs[0].when, When::Never);
        assert_eq!(
            w,
            ["job[a] waits for 'watch.influxdb', which no job or watch provides; it will never run"]
        );
        let never = |when: &str| {
            let (c, w) = ok(&two_jobs(when));
            assert_eq!(c.jobs[0].when, When::Never, "{when}");
            assert_eq!(w.len(), 1, "{w:?}");
            w[0].clone()
        };
        assert_eq!(
            never("{source: 'c', once: 'exitSuccess'}"),
            "job[a] waits for 'c', which no job or watch provides; it will never run"
        );
        assert_eq!(
            never("{source: 'sighup', each: 'changed'}"),
            "job[a] waits for 'sighup' (did you mean 'SIGHUP'?), which no job or watch provides; \
             it will never run"
        );
        assert_eq!(
            never("{source: 'watch.dbs', each: 'changed'}"),
            "job[a] waits for 'watch.dbs' (did you mean 'watch.db'?), which no job or watch \
             provides; it will never run"
        );
        // Watch events come from `watch.NAME`.
        assert!(never("{source: 'db', each: 'changed'}").contains("(did you mean 'watch.db'?)"));
        // An unnamed job is named by its position; a timeout changes nothing.
        let (c, w) =
            ok("{jobs: [{exec: 'x', when: {source: 'nope', once: 'healthy', timeout: 5}}]}");
        assert_eq!(c.jobs[0].when, When::Never);
        assert_eq!(
            w,
            ["jobs[0] waits for 'nope', which no job or watch provides; it will never run"]
        );
        // The rest of the job is still validated.
        assert_eq!(
            err1(&two_jobs("{source: 'nope', once: 'healthy'}").replace("exec: 'x'", "exec: 5")),
            "job[a].exec must be a string or an array of strings, got integer 5"
        );
    }

    fn event(sources: &[&str], all: bool, code: EventCode, once: bool) -> When {
        When::Event {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            all,
            code,
            once,
            timeout: None,
        }
    }

    #[test]
    fn any_and_all_list_several_sources() {
        assert_eq!(
            first_when("{any: ['watch.db', 'b'], each: 'changed'}"),
            event(&["watch.db", "b"], false, EventCode::Changed, false)
        );
        assert_eq!(
            first_when("{all: ['b', 'watch.db'], once: 'healthy'}"),
            event(&["b", "watch.db"], true, EventCode::Healthy, true)
        );
        assert_eq!(
            first_when("{all: ['global'], once: 'startup'}"),
            event(&["global"], true, EventCode::Startup, true)
        );
        // timeout is allowed with both.
        let When::Event { timeout, .. } =
            first_when("{all: ['b'], once: 'healthy', timeout: '5s'}")
        else {
            panic!("event")
        };
        assert_eq!(timeout, Some(secs(5)));
        // A source listed twice counts once.
        let (c, w) = ok(&two_jobs("{any: ['b', 'b'], once: 'healthy'}"));
        assert_eq!(c.jobs[0].when.sources(), ["b"]);
        assert_eq!(w, ["job[a].when.any: 'b' is listed more than once"]);
    }

    #[test]
    fn source_any_and_all_exclude_each_other() {
        for when in [
            "{source: 'b', any: ['b'], once: 'healthy'}",
            "{source: 'b', all: ['b'], once: 'healthy'}",
            "{any: ['b'], all: ['b'], once: 'healthy'}",
        ] {
            assert_eq!(
                err1(&two_jobs(when)),
                "job[a].when can have only one of 'source', 'any' or 'all'",
                "{when}"
            );
        }
        for key in ["any", "all"] {
            assert_eq!(
                err1(&two_jobs(&format!("{{interval: 5, {key}: ['b']}}"))),
                format!("job[a].when.{key} cannot be combined with 'interval'")
            );
        }
    }

    #[test]
    fn any_and_all_rules() {
        let e = |when: &str| err1(&two_jobs(when));
        assert_eq!(
            e("{all: [], once: 'healthy'}"),
            "job[a].when.all must not be empty"
        );
        assert_eq!(
            e("{any: [], each: 'changed'}"),
            "job[a].when.any must not be empty"
        );
        assert_eq!(
            e("{any: 'b', once: 'healthy'}"),
            "job[a].when.any must be a list of sources, got string \"b\""
        );
        assert_eq!(
            e("{any: ['b', 3], once: 'healthy'}"),
            "job[a].when.any[1] must be a source name (a string), got integer 3"
        );
        assert_eq!(
            e("{all: ['b', ' '], once: 'healthy'}"),
            "job[a].when.all[1] must name a source"
        );
        assert_eq!(
            e("{any: ['b', 'SIGHUP'], once: 'healthy'}"),
            "job[a].when.any[1]: a signal cannot be listed in 'any'; use source: \"SIGHUP\""
        );
        assert_eq!(
            e("{all: ['SIGUSR2'], each: 'healthy'}"),
            "job[a].when.all[0]: a signal cannot be listed in 'all'; use source: \"SIGUSR2\""
        );
        assert_eq!(
            e("{all: ['b', 'watch.db']}"),
            "job[a].when needs 'once' or 'each' to name the event from its 'all' sources"
        );
        assert!(e("{any: ['b'], once: 'ready'}")
            .starts_with("job[a].when.once: unknown event 'ready'; events are exitSuccess"));
    }

    #[test]
    fn unknown_sources_in_any_are_dropped_and_in_all_stop_the_job() {
        let (c, w) = ok(&two_jobs(
            "{any: ['watch.nope', 'b', 'c'], each: 'healthy'}",
        ));
        assert_eq!(c.jobs[0].when.sources(), ["b"]);
        assert_eq!(
            w,
            [
                "job[a] waits for 'watch.nope' and 'c' (in when.any), which no job or watch \
              provides; they are ignored"
            ]
        );
        let (c, w) = ok(&two_jobs("{any: ['b', 'watch.dbs'], each: 'healthy'}"));
        assert_eq!(c.jobs[0].when.sources(), ["b"]);
        assert_eq!(
            w,
            [
                "job[a] waits for 'watch.dbs' (did you mean 'watch.db'?) (in when.any), which no \
              job or watch provides; it is ignored"
            ]
        );
        // None left: the job never runs.
        let (c, w) = ok(&two_jobs("{any: ['x', 'y'], each: 'healthy'}"));
        assert_eq!(c.jobs[0].when, When::Never);
        assert_eq!(
            w,
            ["job[a] waits for 'x' and 'y', which no job or watch provides; it will never run"]
        );
        // In `all`, one is enough.
        let (c, w) = ok(&two_jobs("{all: ['b', 'watch.db', 'x'], once: 'healthy'}"));
        assert_eq!(c.jobs[0].when, When::Never);
        assert_eq!(
            w,
            ["job[a] waits for 'x', which no job or watch provides; it will never run"]
        );
    }

    #[test]
    fn listed_sources_that_never_publish_the_event_are_warned_about() {
        // In `all`, one silent source means the job never runs.
        let w = ok(&two_jobs("{all: ['b', 'watch.db'], once: 'exitSuccess'}")).1;
        assert_eq!(
            w,
            ["job[a].when.once: 'watch.db' never publishes 'exitSuccess', so this job never runs"]
        );
        // In `any`, only when none of them publishes it.
        let w = ok(&two_jobs("{any: ['b', 'watch.db'], each: 'exitFailed'}")).1;
        assert_eq!(
            w,
            ["job[a].when.each: 'watch.db' never publishes 'exitFailed'"]
        );
        let w = ok(&two_jobs(
            "{any: ['global', 'watch.db'], each: 'exitFailed'}",
        ))
        .1;
        assert_eq!(
            w,
            [
                "job[a].when.each: 'global' never publishes 'exitFailed', so this job never runs",
                "job[a].when.each: 'watch.db' never publishes 'exitFailed', so this job never runs",
            ]
        );
    }

    #[test]
    fn restarts_unlimited_with_each_applies_to_lists_too() {
        assert_eq!(
            err1(
                &two_jobs("{any: ['b'], each: 'healthy'}")
                    .replace("exec: 'x',", "exec: 'x', restarts: 'unlimited',")
            ),
            "job[a].restarts 'unlimited' may not be used with 'when.each', \
             because it could start an unlimited number of processes"
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

    #[test]
    fn a_long_list_of_unknown_sources_is_cut_short() {
        let list: Vec<String> = (0..12).map(|i| format!("'u{i}'")).collect();
        let (c, w) = ok(&two_jobs(&format!(
            "{{all: [{}], once: 'healthy'}}",
            list.join(", ")
        )));
        assert_eq!(c.jobs[0].when, When::Never);
        assert_eq!(
            w,
            [
                "job[a] waits for 'u0' and 'u1' and 'u2' and 'u3' and 'u4' and 'u5' and 'u6' and \
              'u7' and 'u8' and 'u9' and 2 more, which no job or watch provides; it will never run"
            ]
        );
    }
}
