//! The shutdown sequence (SPEC §3.3) as a small state machine: deregister
//! from discovery first, then publish `shutdown` and let the jobs stop in
//! order within the grace period, then SIGKILL whatever is left, then give
//! up on processes that survive even that. Pure: it says which [`Step`]s
//! the loop must take and when its next deadline is.

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
    /// `shutdown` is out; jobs stop in order until `kill_at`.
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
    /// Publish `shutdown` from `global`.
    PublishShutdown,
    /// SIGKILL every job's process group now.
    KillAll,
    Warn(&'static str),
}

#[derive(Debug)]
pub struct Shutdown {
    stage: Stage,
    /// From `shutdown` to SIGKILL for everything.
    grace: Duration,
}

impl Shutdown {
    /// Start shutting down; `discovery` says whether there is anything to
    /// deregister first.
    pub fn begin(now: Instant, grace: Duration, discovery: bool) -> (Shutdown, Vec<Step>) {
        if discovery {
            let s = Shutdown {
                stage: Stage::Deregistering {
                    until: now + DEREGISTER_WAIT,
                },
                grace,
            };
            return (s, vec![Step::DeregisterAll]);
        }
        let s = Shutdown {
            stage: Stage::Stopping {
                kill_at: now + grace,
            },
            grace,
        };
        (s, vec![Step::PublishShutdown])
    }

    /// Discovery reported every service deregistered.
    pub fn deregistered(&mut self, now: Instant) -> Vec<Step> {
        match self.stage {
            Stage::Deregistering { .. } => self.publish(now),
            _ => vec![],
        }
    }

    fn publish(&mut self, now: Instant) -> Vec<Step> {
        self.stage = Stage::Stopping {
            kill_at: now + self.grace,
        };
        vec![Step::PublishShutdown]
    }

    /// A second SIGTERM/SIGINT, or the grace period ran out: SIGKILL for
    /// everything, without waiting for discovery any longer.
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
            Stage::Deregistering { until } => Some(until),
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
            Stage::Deregistering { .. } => false,
            _ => idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(5);

    #[test]
    fn without_discovery_shutdown_is_published_at_once() {
        let t0 = Instant::now();
        let (s, steps) = Shutdown::begin(t0, GRACE, false);
        assert_eq!(steps, [Step::PublishShutdown]);
        assert_eq!(s.deadline(), Some(t0 + GRACE));
        assert!(s.finished(true));
        assert!(!s.finished(false));
    }

    #[test]
    fn discovery_deregisters_before_anything_stops() {
        let t0 = Instant::now();
        let (mut s, steps) = Shutdown::begin(t0, GRACE, true);
        assert_eq!(steps, [Step::DeregisterAll]);
        // Nothing may finish while services are still registered.
        assert!(!s.finished(true));
        assert_eq!(s.deadline(), Some(t0 + DEREGISTER_WAIT));
        let t1 = t0 + Duration::from_millis(30);
        assert_eq!(s.deregistered(t1), [Step::PublishShutdown]);
        // The grace period counts from `shutdown`, not from the signal.
        assert_eq!(s.deadline(), Some(t1 + GRACE));
        assert_eq!(s.deregistered(t1), []);
        assert!(s.finished(true));
    }

    #[test]
    fn a_silent_discovery_is_waited_for_only_so_long() {
        let t0 = Instant::now();
        let (mut s, _) = Shutdown::begin(t0, GRACE, true);
        assert_eq!(s.on_timer(t0 + Duration::from_secs(1)), []);
        let late = t0 + DEREGISTER_WAIT;
        let steps = s.on_timer(late);
        assert!(matches!(steps[0], Step::Warn(_)));
        assert_eq!(steps[1..], [Step::PublishShutdown]);
        assert_eq!(s.deadline(), Some(late + GRACE));
    }

    #[test]
    fn grace_runs_out_then_everything_is_killed_then_abandoned() {
        let t0 = Instant::now();
        let (mut s, _) = Shutdown::begin(t0, GRACE, false);
        assert_eq!(s.on_timer(t0 + GRACE - Duration::from_millis(1)), []);
        let steps = s.on_timer(t0 + GRACE);
        assert_eq!(steps[1..], [Step::KillAll]);
        assert!(s.hurried());
        assert!(!s.finished(false));
        assert_eq!(s.deadline(), Some(t0 + GRACE + KILL_SLACK));
        let steps = s.on_timer(t0 + GRACE + KILL_SLACK);
        assert!(matches!(steps[..], [Step::Warn(_)]));
        assert!(s.finished(false));
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn a_second_signal_kills_at_once_even_while_deregistering() {
        let t0 = Instant::now();
        let (mut s, _) = Shutdown::begin(t0, GRACE, true);
        let t1 = t0 + Duration::from_millis(5);
        assert_eq!(s.hurry(t1), [Step::PublishShutdown, Step::KillAll]);
        assert!(s.hurried());
        // A late report from discovery changes nothing now.
        assert_eq!(s.deregistered(t1), []);
        // A third signal kills again but does not restart the slack.
        assert_eq!(s.hurry(t1 + Duration::from_secs(1)), [Step::KillAll]);
        assert_eq!(s.deadline(), Some(t1 + KILL_SLACK));
    }
}
