//! What this build is: the version and the commit it was built from. At the
//! bottom of the house so that anything may say it (`-version`, `/status`,
//! the telemetry service's tag) without importing what runs it.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Set by `build.rs` from `git rev-parse`; `unknown` when built from a
/// source tarball without git.
pub const GIT_HASH: &str = match option_env!("CONTAINERPILOT_GIT_HASH") {
    Some(h) => h,
    None => "unknown",
};
