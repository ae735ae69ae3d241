//! Durations (SPEC §2.2). STUB: interface fixed, implementation pending.

use std::time::Duration;

/// `"10"` → 10 s; otherwise Go syntax (`1500ms`, `1m30s`, `1.5h`). Negative or bad: Err.
pub fn parse(_s: &str) -> Result<Duration, String> {
    Err("not implemented".into())
}

/// Go's `time.Duration.String()` form, as Consul expects a TTL (`10s`, `1.5s`, `1m30s`, `1500ms`→`1.5s`).
pub fn go_string(_d: Duration) -> String {
    String::new()
}
