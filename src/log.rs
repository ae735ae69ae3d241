//! Logging (SPEC §7): levels, the `default`/`text`/`json` formats, output to
//! stdout, stderr or an appended file that SIGUSR1 reopens.
//!
//! STUB: the interface below is fixed; the implementation is being written.

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
    Panic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Default,
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub level: Level,
    pub format: Format,
    pub output: Output,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: Level::Info,
            format: Format::Default,
            output: Output::Stdout,
        }
    }
}

impl Level {
    /// Any case: `info`, `INFO`, `Info`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARN" | "WARNING" => Some(Level::Warn),
            "ERROR" => Some(Level::Error),
            "FATAL" => Some(Level::Fatal),
            "PANIC" => Some(Level::Panic),
            _ => None,
        }
    }
}

/// Install (or replace, on reload) the global logger.
pub fn init(_cfg: &LogConfig) -> std::io::Result<()> {
    Ok(())
}

/// Reopen the output file (SIGUSR1); a no-op for stdout/stderr.
pub fn reopen() -> std::io::Result<()> {
    Ok(())
}

/// Write one entry if `level` passes the configured level.
/// `fields` are `job`, `pid`, `check`, `stream` as they apply.
pub fn log(level: Level, msg: &str, fields: &[(&str, &str)]) {
    if level >= Level::Info {
        let _ = fields;
        println!("{msg}");
    }
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg, &[])
}
pub fn info(msg: &str) {
    log(Level::Info, msg, &[])
}
pub fn warn(msg: &str) {
    log(Level::Warn, msg, &[])
}
pub fn error(msg: &str) {
    log(Level::Error, msg, &[])
}
