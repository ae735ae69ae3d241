//! The shutdown sequence (SPEC §3.3) as a small state machine: deregister
//! from discovery first; publish `shutdown` and wait for the jobs it
//! triggers (pre-stop hooks such as a final `redis-cli save`) while every
//! other process still runs; then stop every job in order within the grace
//! period; then SIGKILL whatever is left; then give up on processes that
//! survive even that. Pure: it says which [`Step`]s the loop must take and
//! when its next deadline is.

use std::time::{Duration, Instant};

/// How long shutdown waits for discovery to deregister before it goes on
/// anyway (the agent worker gives up after 5s itself).
pub const DEREGISTER_WAIT: Duration = Duration::from_secs(6);

/// How long after SIGKILL we keep waiting for processes that survive it
/// (uninterruptible sleep) before exiting without them.
pub const KILL_SLACK: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for discovery to take every service out (traffic drains
    /// before anything stops, while a Consul agent run as a job still lives).
    Deregistering { until: Instant },
    /// `shutdown` is out; the jobs it triggered run until they finish or `until`.
    Hooks { until: Instant },
    /// Every job is stopping, in order, until `kill_at`.
    Stopping { kill_at: Instant },
    /// Everything got SIGKILL at `since`.
    Killing { since: Instant },
    /// Processes outlived SIGKILL by `KILL_SLACK`: exit without them.
    Abandoned,
}

/// What the loop must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask discovery to deregister every service and report back.
    DeregisterAll,
    /// Publish `shutdown` from `global` (pre-stop hooks start on it).
    PublishShutdown,
    /// Stop every job as at shutdown (`stopping`, SIGTERM, ...).
    StopAll,
    /// SIGKILL every job's process group now.
    KillAll,
    Warn(&'static str),
}

/// How long each stage may take.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Pre-stop hooks on `shutdown` (the longest of their timeouts).
    pub hooks: Duration,
    /// From stopping everything to SIGKILL for everything.
    pub grace: Duration,
}

#[derive(Debug)]
pub struct Shutdown {
    stage: Stage,
    bounds: Bounds,
}

impl Shutdown {
    /// Start shutting down; `discovery` says whether there is anything to
    /// deregister first.
    pub fn begin(now: Instant, bounds: Bounds, discovery: bool) -> (Shutdown, Vec<Step>) {
        let mut s = Shutdown {
            stage: Stage::Deregistering {
                until: now + DEREGISTER_WAIT,
            },
            bounds,
        };
        if discovery {
            return (s, vec![Step::DeregisterAll]);
        }
        let steps = s.publish(now);
        (s, steps)
    }

    /// Discovery reported every service deregistered.
    pub fn deregistered(&mut self, now: Instant) -> Vec<Step> {
        match self.stage {
            Stage::Deregistering { .. } => self.publish(now),
            _ => vec![],
        }
    }

    fn publish(&mut self, now: Instant) -> Vec<Step> {
        self.stage = Stage::Hooks {
            until: now + self.bounds.hooks,
        };
        vec![Step::PublishShutdown]
    }

    /// Pre-stop hooks are running (the loop asks until none is).
    pub fn in_hooks(&self) -> bool {
        matches!(self.stage, Stage::Hooks { .. })
    }

    /// No job triggered by `shutdown` runs any more: stop everything.
    pub fn hooks_done(&mut self, now: Instant) -> Vec<Step> {
        match self.stage {
            Stage::Hooks { .. } => {
                self.stage = Stage::Stopping {
                    kill_at: now + self.bounds.grace,
                };
                vec![Step::StopAll]
            }
            _ => vec![],
        }
    }

    /// A second SIGTERM/SIGINT, or the grace period ran out: SIGKILL for
    /// everything, without waiting for discovery or hooks any longer.
    pub fn hurry(&mut self, now: Instant) -> Vec<Step> {
        let mut out = Vec::new();
        if let Stage::Deregistering { .. } = self.stage {
            out.push(Step::PublishShutdown);
        }
        if !matches!(self.stage, Stage::Killing { .. } | Stage::Abandoned) {
            self.stage = Stage::Killing { since: now };
        }
        out.push(Step::KillAll);
        out
    }

    /// The deadline has passed (or not: then nothing happens).
    pub fn on_timer(&mut self, now: Instant) -> Vec<Step> {
        match self.stage {
            Stage::Deregistering { until } if now >= until => {
                let mut out = vec![Step::Warn(
                    "discovery did not finish deregistering in time: shutting down anyway",
                )];
                out.extend(self.publish(now));
                out
            }
            Stage::Hooks { until } if now >= until => {
                let mut out = Vec::new();
                if !self.bounds.hooks.is_zero() {
                    out.push(Step::Warn(
                        "the jobs run on shutdown did not finish in time: stopping everything",
                    ));
                }
                out.extend(self.hooks_done(now));
                out
            }
            Stage::Stopping { kill_at } if now >= kill_at => {
                let mut out = vec![Step::Warn(
                    "shutdown grace period is over: killing every job",
                )];
                out.extend(self.hurry(now));
                out
            }
            Stage::Killing { since } if now >= since + KILL_SLACK => {
                self.stage = Stage::Abandoned;
                vec![Step::Warn(
                    "processes survived SIGKILL: exiting without them",
                )]
            }
            _ => vec![],
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self.stage {
            Stage::Deregistering { until } | Stage::Hooks { until } => Some(until),
            Stage::Stopping { kill_at } => Some(kill_at),
            Stage::Killing { since } => Some(since + KILL_SLACK),
            Stage::Abandoned => None,
        }
    }

    /// Everything has been sent SIGKILL: a process that starts now gets it too.
    pub fn hurried(&self) -> bool {
        matches!(self.stage, Stage::Killing { .. } | Stage::Abandoned)
    }

    /// Done once nothing is left to wait for (`idle`: no process runs and
    /// no job is still stopping), or when waiting is pointless.
    pub fn finished(&self, idle: bool) -> bool {
        match self.stage {
            Stage::Abandoned => true,
            Stage::Deregistering { .. } | Stage::Hooks { .. } => false,
            Stage::Stopping { .. } | Stage::Killing { .. } => idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        hooks: Duration::from_secs(3),
        grace: Duration::from_secs(5),
    };

    #[test]
    fn without_discovery_shutdown_is_published_at_once_then_hooks_run() {
        let t0 = Instant::now();
        let (mut s, steps) = Shutdown::begin(t0, BOUNDS, false);
        assert_eq!(steps, [Step::PublishShutdown]);
        assert!(s.in_hooks());
        assert_eq!(s.deadline(), Some(t0 + BOUNDS.hooks));
        // Nothing finishes while hooks may still run.
        assert!(!s.finished(true));
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(s.hooks_done(t1), [Step::StopAll]);
        assert!(!s.in_hooks());
        assert_eq!(s.deadline(), Some(t1 + BOUNDS.grace));
        assert!(s.finished(true));
        assert!(!s.finished(false));
        assert_eq!(s.hooks_done(t1), [], "only once");
    }

    #[test]
    fn discovery_deregisters_before_anything_stops() {
        let t0 = Instant::now();
        let (mut s, steps) = Shutdown::begin(t0, BOUNDS, true);
        assert_eq!(steps, [Step::DeregisterAll]);
        assert!(!s.finished(true));
        assert_eq!(s.deadline(), Some(t0 + DEREGISTER_WAIT));
        let t1 = t0 + Duration::from_millis(30);
        assert_eq!(s.deregistered(t1), [Step::PublishShutdown]);
        assert_eq!(s.deregistered(t1), []);
        assert_eq!(s.hooks_done(t1), [Step::StopAll]);
        // The grace period counts from stopping everything.
        assert_eq!(s.deadline(), Some(t1 + BOUNDS.grace));
    }

    #[test]
    fn a_silent_discovery_is_waited_for_only_so_long() {
        let t0 = Instant::now();
        let (mut s, _) = Shutdown::begin(t0, BOUNDS, true);
        assert_eq!(s.on_timer(t0 + Duration::from_secs(1)), []);
        let late = t0 + DEREGISTER_WAIT;
        let steps = s.on_timer(late);
        assert!(matches!(steps[0], Step::Warn(_)));
        assert_eq!(steps[1..], [Step::PublishShutdown]);
        assert_eq!(s.deadline(), Some(late + BOUNDS.hooks));
    }

    #[test]
    fn slow_hooks_are_waited_for_only_so_long() {
        let t0 = Instant::now();
        let (mut s, _) = Shutdown::begin(t0, BOUNDS, false);
        assert_eq!(s.on_timer(t0 + Duration::from_secs(2)), []);
        let steps = s.on_timer(t0 + BOUNDS.hooks);
        assert!(matches!(steps[0], Step::Warn(_)));
        assert_eq!(steps[1..], [Step::StopAll]);
    }

    #[test]
    fn grace_runs_out_then_everything_is_killed_then_abandoned() {
        let t0 = Instant::now();
        let (mut s, _) = Shutdown::begin(t0, BOUNDS, false);
        s.hooks_done(t0);
        assert_eq!(s.on_timer(t0 + BOUNDS.grace - Duration::from_millis(1)), []);
        let steps = s.on_timer(t0 + BOUNDS.grace);
        assert_eq!(steps[1..], [Step::KillAll]);
        assert!(s.hurried());
        assert!(!s.finished(false));
        assert_eq!(s.deadline(), Some(t0 + BOUNDS.grace + KILL_SLACK));
        let steps = s.on_timer(t0 + BOUNDS.grace + KILL_SLACK);
        assert!(matches!(steps[..], [Step::Warn(_)]));
        assert!(s.finished(false));
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn a_second_signal_kills_at_once_even_while_deregistering() {
        let t0 = Instant::now();
        let (mut s, _) = Shutdown::begin(t0, BOUNDS, true);
        let t1 = t0 + Duration::from_millis(5);
        assert_eq!(s.hurry(t1), [Step::PublishShutdown, Step::KillAll]);
        assert!(s.hurried());
        // A late report from discovery changes nothing now.
        assert_eq!(s.deregistered(t1), []);
        assert_eq!(s.hooks_done(t1), []);
        // A third signal kills again but does not restart the slack.
        assert_eq!(s.hurry(t1 + Duration::from_secs(1)), [Step::KillAll]);
        assert_eq!(s.deadline(), Some(t1 + KILL_SLACK));
    }

    #[test]
    fn a_second_signal_during_hooks_kills_them_too() {
        let t0 = Instant::now();
        let (mut s, _) = Shutdown::begin(t0, BOUNDS, false);
        assert_eq!(s.hurry(t0), [Step::KillAll]);
        assert!(s.finished(true));
    }
}
