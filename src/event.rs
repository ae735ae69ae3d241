//! Events: `(code, source)` pairs that the event loop delivers to every job in
//! one total order (SPEC §3.1).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventCode {
    ExitSuccess,
    ExitFailed,
    Stopping,
    Stopped,
    Healthy,
    Unhealthy,
    Changed,
    Startup,
    Shutdown,
    EnterMaintenance,
    ExitMaintenance,
    /// A signal (SIGHUP/SIGUSR2) was received; the source names the signal.
    Signal,
}

impl EventCode {
    pub const NAMES: [(&'static str, EventCode); 11] = [
        ("exitSuccess", EventCode::ExitSuccess),
        ("exitFailed", EventCode::ExitFailed),
        ("stopping", EventCode::Stopping),
        ("stopped", EventCode::Stopped),
        ("healthy", EventCode::Healthy),
        ("unhealthy", EventCode::Unhealthy),
        ("changed", EventCode::Changed),
        ("startup", EventCode::Startup),
        ("shutdown", EventCode::Shutdown),
        ("enterMaintenance", EventCode::EnterMaintenance),
        ("exitMaintenance", EventCode::ExitMaintenance),
    ];

    /// The config spelling of an event name (exact, case-sensitive as in 3.x).
    pub fn parse(name: &str) -> Option<EventCode> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }

    pub fn name(self) -> &'static str {
        match self {
            EventCode::Signal => "signal",
            code => Self::NAMES
                .iter()
                .find(|(_, c)| *c == code)
                .map(|(n, _)| *n)
                .expect("every non-signal code is in NAMES"),
        }
    }

    /// Events whose only source is `global`.
    pub fn is_global(self) -> bool {
        matches!(
            self,
            EventCode::Startup
                | EventCode::Shutdown
                | EventCode::EnterMaintenance
                | EventCode::ExitMaintenance
        )
    }
}

pub const GLOBAL: &str = "global";
pub const SIGNAL_SOURCES: [&str; 2] = ["SIGHUP", "SIGUSR2"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub code: EventCode,
    pub source: String,
}

impl Event {
    pub fn new(code: EventCode, source: &str) -> Event {
        Event {
            code,
            source: source.to_string(),
        }
    }

    pub fn global(code: EventCode) -> Event {
        Event::new(code, GLOBAL)
    }

    /// Whether this is `global.CODE`, without building one to compare with
    /// (every event goes to every job: this runs jobs × events times).
    pub fn is_global(&self, code: EventCode) -> bool {
        self.code == code && self.source == GLOBAL
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}.{}", self.source, self.code.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (name, code) in EventCode::NAMES {
            assert_eq!(EventCode::parse(name), Some(code));
            assert_eq!(code.name(), name);
        }
        assert_eq!(EventCode::parse("healthy "), None);
        assert_eq!(EventCode::parse("Healthy"), None);
    }
}
