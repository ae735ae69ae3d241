//! Logging (SPEC §7): the process-wide logger, its level filter, the
//! `default`/`text`/`json` line formats, and the output (stdout, stderr, or an
//! appended file that SIGUSR1 reopens for log rotation).
//!
//! This is the one piece of global state in the crate: every thread logs, and
//! threading a logger handle through all of them would buy nothing. The
//! logger sits behind one mutex, and each entry is formatted and written with
//! a single `write_all` while it is held, so lines from different threads
//! never interleave and appear in timestamp order. Until [`init`] is called,
//! entries go to stdout at INFO in the default format.
//!
//! Formats (times are RFC 3339 UTC with microseconds):
//! - `default`: `2026-11-23T06:50:01.123456Z app 12 message`; the name (`job`
//!   or `check`) and `pid` only when the entry has them; no level, as 3.x.
//! - `text`: logfmt, `time="..." level=info msg="..." job=app pid=12`.
//! - `json`: `{"time":"...","level":"info","msg":"...","job":"app","pid":12}`.
//!   `pid` is a JSON number, as 3.x (logrus) wrote it.
//!
//! A field named `time`, `level` or `msg` is written as `fields.time` etc.
//! so it cannot clash with the entry's own keys (logrus does the same).
//! `Fatal` and `Panic` only set the level of the entry; exiting is the
//! caller's business.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::digits::decimal;

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

/// The name written in `text` and `json` entries. (A free function rather
/// than a method so no other module's `impl Level` can clash with it.)
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warning", // as logrus wrote it in 3.x
        Level::Error => "error",
        Level::Fatal => "fatal",
        Level::Panic => "panic",
    }
}

/// Where entries go. The file keeps its path so that `reopen` can open it
/// again after rotation moved the old file away.
enum Sink {
    Stdout,
    Stderr,
    File {
        path: PathBuf,
        file: File,
    },
    /// Tests read back what was written.
    #[cfg(test)]
    Buffer(Vec<u8>),
}

struct Logger {
    level: Level,
    format: Format,
    sink: Sink,
    /// Entries formatted and not yet written: one buffer for every thread
    /// (they take turns under the lock), so that an entry costs no
    /// allocation and a long line no memory in the thread that logs it.
    pending: Vec<u8>,
}

/// `pending` is given back to the allocator when an entry or a batch grew
/// it past this; a batch is written out early when it reaches it.
const PENDING_MAX: usize = 64 * 1024;
/// What an output entry adds to its line, generously (time, level, the
/// job's name and pid, quoting), ignoring escapes.
const ENTRY_EXTRA: usize = 512;

/// Before `init`: stdout, INFO, default format (SPEC §7).
static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    level: Level::Info,
    format: Format::Default,
    sink: Sink::Stdout,
    pending: Vec::new(),
});

/// Writes that failed (full disk, closed stdout). Logging must never take the
/// supervisor down, so a failure is counted rather than reported.
static WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);

fn global() -> MutexGuard<'static, Logger> {
    // A panic elsewhere while holding the lock leaves the logger itself
    // intact (it is only replaced whole), so a poisoned lock is still usable.
    LOGGER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open log file {}: {e}", path.display()),
            )
        })
}

impl Logger {
    fn new(cfg: &LogConfig) -> io::Result<Logger> {
        let sink = match &cfg.output {
            Output::Stdout => Sink::Stdout,
            Output::Stderr => Sink::Stderr,
            Output::File(path) => Sink::File {
                path: path.clone(),
                file: open_append(path)?,
            },
        };
        Ok(Logger {
            level: cfg.level,
            format: cfg.format,
            sink,
            pending: Vec::new(),
        })
    }

    /// On failure the old file stays in use, so entries keep going somewhere.
    fn reopen(&mut self) -> io::Result<()> {
        if let Sink::File { path, file } = &mut self.sink {
            *file = open_append(path)?;
        }
        Ok(())
    }

    fn log(&mut self, now: SystemTime, level: Level, msg: &str, fields: &[(&str, &str)]) {
        if level < self.level {
            return;
        }
        let mut time = [0u8; TIME_LEN];
        let time = rfc3339_into(&mut time, now);
        format_into(&mut self.pending, self.format, time, level, msg, fields);
        self.write_out();
    }

    /// Write what is pending with one `write_all`.
    fn write_out(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = &self.pending[..];
        let written = match &mut self.sink {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Sink::Stderr => io::stderr().lock().write_all(bytes),
            Sink::File { file, .. } => file.write_all(bytes),
            #[cfg(test)]
            Sink::Buffer(buf) => buf.write_all(bytes),
        };
        if written.is_err() {
            WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        self.pending.clear();
        if self.pending.capacity() > PENDING_MAX {
            self.pending = Vec::new();
        }
    }
}

/// Install (or replace, on reload) the global logger.
///
/// The output is opened before anything is replaced: if a file cannot be
/// opened the error names the path and the previous logger stays in place.
pub fn init(cfg: &LogConfig) -> std::io::Result<()> {
    let logger = Logger::new(cfg)?;
    *global() = logger;
    Ok(())
}

/// Reopen the output file (SIGUSR1); a no-op for stdout/stderr.
///
/// After rotation renamed the file, entries go to a new file at the
/// configured path. On error the old file is kept and the error names the path.
pub fn reopen() -> std::io::Result<()> {
    global().reopen()
}

/// Whether an entry at `level` would be written; lets callers skip building
/// expensive debug messages.
pub fn enabled(level: Level) -> bool {
    level >= global().level
}

/// Write one entry if `level` passes the configured level.
/// `fields` are `job`, `pid`, `check`, `stream` as they apply.
pub fn log(level: Level, msg: &str, fields: &[(&str, &str)]) {
    global().log(SystemTime::now(), level, msg, fields)
}

/// Lines of process output logged together: formatted one after the other
/// while the logger stays locked, all with the time the batch began, and
/// written with one `write_all` when the batch is dropped. Keep a batch
/// only while handing on lines that are already read: nothing else on this
/// thread may log while it lives (that would wait for the batch's own lock).
pub struct Batch<'a> {
    logger: MutexGuard<'a, Logger>,
    now: SystemTime,
    time: [u8; TIME_LEN],
    time_len: usize,
}

/// Start a batch of output lines (see [`Batch`]).
pub fn batch() -> Batch<'static> {
    Batch::begin(global())
}

impl<'a> Batch<'a> {
    fn begin(logger: MutexGuard<'a, Logger>) -> Batch<'a> {
        let now = SystemTime::now();
        let mut time = [0u8; TIME_LEN];
        let time_len = rfc3339_into(&mut time, now).len();
        Batch {
            logger,
            now,
            time,
            time_len,
        }
    }

    /// The time of every entry of the batch.
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// One line of a job's or health check's output, logged at INFO (SPEC
    /// §7): `kind` is `"job"` or `"check"`, `stream` is `"stdout"` or
    /// `"stderr"`. In the default format this reads `TIME NAME PID LINE`.
    pub fn output_line(&mut self, kind: &str, name: &str, pid: &str, stream: &str, line: &str) {
        let logger = &mut *self.logger;
        if Level::Info < logger.level {
            return;
        }
        // Written out before it would outgrow PENDING_MAX rather than after:
        // growing past it would free the buffer, and every batch would
        // allocate its way up again.
        if logger.pending.len() + line.len() + ENTRY_EXTRA > PENDING_MAX {
            logger.write_out();
        }
        let time = std::str::from_utf8(&self.time[..self.time_len]).unwrap_or_default();
        let fields = [(kind, name), ("pid", pid), ("stream", stream)];
        format_into(
            &mut logger.pending,
            logger.format,
            time,
            Level::Info,
            line,
            &fields,
        );
        if logger.pending.len() >= PENDING_MAX {
            logger.write_out();
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.logger.write_out();
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

/// One entry as a complete line, newline included. For the tests.
#[cfg(test)]
fn format_entry(
    format: Format,
    now: SystemTime,
    level: Level,
    msg: &str,
    fields: &[(&str, &str)],
) -> String {
    let mut out = Vec::new();
    format_into(&mut out, format, &rfc3339(now), level, msg, fields);
    String::from_utf8(out).expect("entries are UTF-8")
}

/// Append one entry, newline included, to `out`; `time` is the entry's
/// time as [`rfc3339`] writes it.
fn format_into(
    out: &mut Vec<u8>,
    format: Format,
    time: &str,
    level: Level,
    msg: &str,
    fields: &[(&str, &str)],
) {
    let field = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|&(_, v)| v);
    match format {
        Format::Default => {
            out.extend_from_slice(time.as_bytes());
            for value in [field("job").or_else(|| field("check")), field("pid")]
                .into_iter()
                .flatten()
            {
                out.push(b' ');
                out.extend_from_slice(value.as_bytes());
            }
            out.push(b' ');
            // Go's log.Println, which 3.x used here, adds a newline only if missing.
            out.extend_from_slice(msg.strip_suffix('\n').unwrap_or(msg).as_bytes());
        }
        Format::Text => {
            out.extend_from_slice(b"time=");
            push_logfmt_value(out, time);
            out.extend_from_slice(b" level=");
            out.extend_from_slice(level_name(level).as_bytes());
            out.extend_from_slice(b" msg=");
            push_logfmt_value(out, msg);
            for &(key, value) in fields {
                out.push(b' ');
                push_key(out, key);
                out.push(b'=');
                push_logfmt_value(out, value);
            }
        }
        Format::Json => {
            out.extend_from_slice(b"{\"time\":");
            push_json_string(out, time);
            out.extend_from_slice(b",\"level\":");
            push_json_string(out, level_name(level));
            out.extend_from_slice(b",\"msg\":");
            push_json_string(out, msg);
            for &(key, value) in fields {
                out.push(b',');
                if is_reserved(key) {
                    push_json_string(out, &format!("fields.{key}"));
                } else {
                    push_json_string(out, key);
                }
                out.push(b':');
                match value.parse::<u64>() {
                    Ok(pid) if key == "pid" => {
                        let mut digits = [0u8; 20];
                        out.extend_from_slice(decimal(&mut digits, pid, 1));
                    }
                    _ => push_json_string(out, value),
                }
            }
            out.push(b'}');
        }
    }
    out.push(b'\n');
}

/// A field key that would clash with the entry's own.
fn is_reserved(key: &str) -> bool {
    matches!(key, "time" | "level" | "msg")
}

/// Field keys that would clash with the entry's own get a `fields.` prefix.
fn push_key(out: &mut Vec<u8>, key: &str) {
    if is_reserved(key) {
        out.extend_from_slice(b"fields.");
    }
    out.extend_from_slice(key.as_bytes());
}

fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Escapes per RFC 8259; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// logfmt value: bare when made only of characters logrus leaves unquoted,
/// otherwise in double quotes with `"` `\` and control characters escaped.
fn push_logfmt_value(out: &mut Vec<u8>, s: &str) {
    let bare = !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'/' | b'@' | b'^' | b'+')
        });
    if bare {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    // Copied in runs: only ASCII needs escaping (C1 controls aside).
    let mut run = 0;
    for (i, c) in s.char_indices() {
        let escape: &[u8] = match c {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            c if c.is_control() => b"",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[run..i]);
        run = i + c.len_utf8();
        if escape.is_empty() {
            out.extend_from_slice(b"\\u");
            let mut hex = [b'0'; 4];
            let mut v = u32::from(c);
            for h in hex.iter_mut().rev() {
                *h = b"0123456789abcdef"[(v & 0xf) as usize];
                v >>= 4;
            }
            out.extend_from_slice(&hex);
        } else {
            out.extend_from_slice(escape);
        }
    }
    out.extend_from_slice(&s.as_bytes()[run..]);
    out.push(b'"');
}

/// The length of `2026-11-23T06:50:01.123456Z` (longer only past year 9999).
const TIME_LEN: usize = 40;

/// `2026-11-23T06:50:01.123456Z`. Times before 1970 (a broken clock) print as
/// the epoch rather than failing.
pub fn rfc3339(t: SystemTime) -> String {
    let mut buf = [0u8; TIME_LEN];
    rfc3339_into(&mut buf, t).to_string()
}

/// [`rfc3339`] appended to `out`: `/status` writes one per checked job.
pub fn write_rfc3339(out: &mut Vec<u8>, t: SystemTime) {
    let mut buf = [0u8; TIME_LEN];
    out.extend_from_slice(rfc3339_into(&mut buf, t).as_bytes());
}

/// [`rfc3339`] written into `buf`, without an allocation.
fn rfc3339_into(buf: &mut [u8; TIME_LEN], t: SystemTime) -> &str {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let parts: [(u64, usize, &[u8]); 7] = [
        (year, 4, b"-"),
        (month, 2, b"-"),
        (day, 2, b"T"),
        (rem / 3600, 2, b":"),
        (rem % 3600 / 60, 2, b":"),
        (rem % 60, 2, b"."),
        (u64::from(since.subsec_micros()), 6, b"Z"),
    ];
    let mut len = 0;
    for (value, width, sep) in parts {
        let mut digits = [0u8; 20];
        for &b in decimal(&mut digits, value, width).iter().chain(sep) {
            if let Some(slot) = buf.get_mut(len) {
                *slot = b;
                len += 1;
            }
        }
    }
    std::str::from_utf8(&buf[..len]).unwrap_or_default()
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar: Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html>), for days >= 0,
/// where eras are 400-year cycles starting on 0000-03-01.
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, micros * 1000)
    }
    /// 2026-11-23T07:10:01.123456Z
    fn t0() -> SystemTime {
        at(1_795_417_801, 123_456)
    }
    const JOB: &[(&str, &str)] = &[("job", "app"), ("pid", "12"), ("stream", "stdout")];

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(at(951_782_400, 0)), "2000-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339(at(1_709_164_800, 1)), "2024-02-29T00:00:00.000001Z");
        assert_eq!(
            rfc3339(at(4_102_444_799, 999_999)),
            "2099-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            rfc3339(at(253_402_300_799, 0)),
            "9999-12-31T23:59:59.000000Z"
        );
        assert_eq!(rfc3339(t0()), "2026-11-23T07:10:01.123456Z");
        assert_eq!(
            rfc3339(at(253_402_300_800, 5)),
            "10000-01-01T00:00:00.000005Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn civil_from_days_agrees_with_a_day_by_day_walk() {
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..200_000 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][(m - 1) as usize];
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn default_format() {
        let f = |msg, fields| format_entry(Format::Default, t0(), Level::Info, msg, fields);
        assert_eq!(f("hello", &[]), "2026-11-23T07:10:01.123456Z hello\n");
        assert_eq!(
            f("listening", JOB),
            "2026-11-23T07:10:01.123456Z app 12 listening\n"
        );
        assert_eq!(
            f("ok", &[("check", "app"), ("pid", "7")]),
            "2026-11-23T07:10:01.123456Z app 7 ok\n"
        );
        assert_eq!(
            f("no pid yet", &[("job", "app")]),
            "2026-11-23T07:10:01.123456Z app no pid yet\n"
        );
        // No level, whatever the level.
        assert_eq!(
            format_entry(Format::Default, t0(), Level::Error, "bad", &[]),
            "2026-11-23T07:10:01.123456Z bad\n"
        );
        // One trailing newline is not doubled; inner ones are kept.
        assert_eq!(f("a\nb\n", &[]), "2026-11-23T07:10:01.123456Z a\nb\n");
    }

    #[test]
    fn text_format() {
        assert_eq!(
            format_entry(Format::Text, t0(), Level::Info, "listening on :80", JOB),
            "time=\"2026-11-23T07:10:01.123456Z\" level=info msg=\"listening on :80\" job=app pid=12 stream=stdout\n"
        );
        assert_eq!(
            format_entry(Format::Text, t0(), Level::Warn, "x", &[]),
            "time=\"2026-11-23T07:10:01.123456Z\" level=warning msg=x\n"
        );
    }

    #[test]
    fn text_format_quoting_and_escaping() {
        let value = |v: &str| {
            let mut s = Vec::new();
            push_logfmt_value(&mut s, v);
            String::from_utf8(s).unwrap()
        };
        assert_eq!(value("app-1.0_a/b@c^d+e"), "app-1.0_a/b@c^d+e");
        assert_eq!(value(""), "\"\"");
        assert_eq!(value("a b"), "\"a b\"");
        assert_eq!(value("a=b"), "\"a=b\"");
        assert_eq!(value("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(value("C:\\dir"), "\"C:\\\\dir\"");
        assert_eq!(value("one\ntwo\r\tthree"), "\"one\\ntwo\\r\\tthree\"");
        assert_eq!(value("bell\u{7}"), "\"bell\\u0007\"");
        assert_eq!(value("héllo"), "\"héllo\"");
    }

    #[test]
    fn json_format() {
        assert_eq!(
            format_entry(Format::Json, t0(), Level::Info, "listening", JOB),
            "{\"time\":\"2026-11-23T07:10:01.123456Z\",\"level\":\"info\",\"msg\":\"listening\",\
             \"job\":\"app\",\"pid\":12,\"stream\":\"stdout\"}\n"
        );
        // A non-numeric pid stays a string rather than producing bad JSON.
        let line = format_entry(Format::Json, t0(), Level::Debug, "m", &[("pid", "n/a")]);
        assert!(line.ends_with(",\"pid\":\"n/a\"}\n"), "{line}");
    }

    #[test]
    fn json_format_escapes_and_parses_back() {
        let msg = "quote \" backslash \\ newline \n tab \t nul \u{0} é 😀";
        let line = format_entry(
            Format::Json,
            t0(),
            Level::Error,
            msg,
            &[("check", "a\"b"), ("msg", "clash")],
        );
        assert!(
            line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'),
            "{line:?}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["msg"], msg);
        assert_eq!(v["level"], "error");
        assert_eq!(v["check"], "a\"b");
        assert_eq!(v["fields.msg"], "clash");
    }

    #[test]
    fn level_names_and_parse() {
        let all = [
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
            Level::Fatal,
            Level::Panic,
        ];
        let names: Vec<_> = all.iter().map(|&l| level_name(l)).collect();
        assert_eq!(
            names,
            ["debug", "info", "warning", "error", "fatal", "panic"]
        );
        for l in all {
            assert_eq!(Level::parse(level_name(l)), Some(l));
            assert_eq!(Level::parse(&level_name(l).to_uppercase()), Some(l));
        }
        assert_eq!(Level::parse("Warning"), Some(Level::Warn));
        assert_eq!(Level::parse("verbose"), None);
    }

    fn buffer_logger(level: Level, format: Format) -> Logger {
        Logger {
            level,
            format,
            sink: Sink::Buffer(Vec::new()),
            pending: Vec::new(),
        }
    }
    fn written(l: &Logger) -> String {
        match &l.sink {
            Sink::Buffer(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        }
    }

    #[test]
    fn level_filters_everything_including_job_output() {
        let mut l = buffer_logger(Level::Warn, Format::Text);
        l.log(t0(), Level::Debug, "d", &[]);
        l.log(t0(), Level::Info, "job output", JOB);
        l.log(t0(), Level::Warn, "w", &[]);
        l.log(t0(), Level::Error, "e", &[]);
        l.log(t0(), Level::Panic, "p", &[]);
        let out = written(&l);
        let levels: Vec<_> = out
            .lines()
            .map(|line| line.split(' ').nth(1).unwrap_or(""))
            .collect();
        assert_eq!(
            levels,
            ["level=warning", "level=error", "level=panic"],
            "{out}"
        );

        let mut l = buffer_logger(Level::Debug, Format::Default);
        l.log(t0(), Level::Debug, "d", &[]);
        assert_eq!(written(&l), "2026-11-23T07:10:01.123456Z d\n");
    }

    /// A unique scratch directory, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            let p =
                std::env::temp_dir().join(format!("cp-log-{tag}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    #[test]
    fn file_output_appends_and_reopens_after_rename() {
        let dir = TempDir::new("reopen");
        let path = dir.0.join("cp.log");
        let rotated = dir.0.join("cp.log.1");
        std::fs::write(&path, "existing\n").expect("seed file");
        let cfg = LogConfig {
            level: Level::Info,
            format: Format::Default,
            output: Output::File(path.clone()),
        };
        let mut l = Logger::new(&cfg).expect("open log file");
        l.log(t0(), Level::Info, "before", &[]);
        std::fs::rename(&path, &rotated).expect("rotate");
        // Until reopened, the renamed file still receives entries (as with logrotate's move).
        l.log(t0(), Level::Info, "between", &[]);
        l.reopen().expect("reopen");
        l.log(t0(), Level::Info, "after", &[]);
        let ts = "2026-11-23T07:10:01.123456Z";
        assert_eq!(
            read(&rotated),
            format!("existing\n{ts} before\n{ts} between\n")
        );
        assert_eq!(read(&path), format!("{ts} after\n"));
    }

    #[test]
    fn unopenable_file_names_the_path() {
        let dir = TempDir::new("bad");
        let path = dir.0.join("no-such-dir").join("cp.log");
        let cfg = LogConfig {
            output: Output::File(path.clone()),
            ..LogConfig::default()
        };
        let e = init(&cfg).expect_err("init must fail");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn reopen_failure_keeps_the_old_file() {
        let dir = TempDir::new("keep");
        let sub = dir.0.join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        let path = sub.join("cp.log");
        let cfg = LogConfig {
            output: Output::File(path.clone()),
            ..LogConfig::default()
        };
        let mut l = Logger::new(&cfg).expect("open");
        let moved = dir.0.join("moved");
        std::fs::rename(&sub, &moved).expect("move dir away");
        let e = l.reopen().expect_err("reopen must fail: directory is gone");
        assert!(e.to_string().contains("cannot open log file"), "{e}");
        l.log(t0(), Level::Info, "still here", &[]);
        assert!(read(&moved.join("cp.log")).contains("still here"));
    }

    /// The global logger end to end. Other tests in this process may log at
    /// the same time, so this only checks for its own markers.
    #[test]
    fn global_init_reopen_and_restore() {
        let dir = TempDir::new("global");
        let path = dir.0.join("cp.log");
        let rotated = dir.0.join("cp.log.1");
        let cfg = LogConfig {
            level: Level::Warn,
            format: Format::Json,
            output: Output::File(path.clone()),
        };
        init(&cfg).expect("init");
        assert!(!enabled(Level::Info) && enabled(Level::Warn));
        info("marker-filtered");
        warn("marker-one");
        std::fs::rename(&path, &rotated).expect("rotate");
        reopen().expect("reopen");
        batch().output_line("job", "app", "42", "stderr", "marker-filtered-output");
        log(Level::Error, "marker-two", &[("job", "app"), ("pid", "42")]);
        init(&LogConfig::default()).expect("restore default");
        reopen().expect("reopen of stdout is a no-op");

        let first = read(&rotated);
        let second = read(&path);
        assert!(
            first.contains("\"level\":\"warning\",\"msg\":\"marker-one\"}"),
            "{first}"
        );
        assert!(
            second
                .contains("\"level\":\"error\",\"msg\":\"marker-two\",\"job\":\"app\",\"pid\":42}"),
            "{second}"
        );
        assert!(!first.contains("marker-filtered") && !second.contains("marker-filtered"));
        for line in first.lines().chain(second.lines()) {
            serde_json::from_str::<serde_json::Value>(line).expect("each line is one JSON object");
        }
    }

    #[test]
    fn concurrent_lines_never_interleave() {
        let dir = TempDir::new("threads");
        let path = dir.0.join("cp.log");
        let cfg = LogConfig {
            level: Level::Info,
            format: Format::Text,
            output: Output::File(path.clone()),
        };
        let logger = Mutex::new(Logger::new(&cfg).expect("open"));
        let long = "x".repeat(5000);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (logger, long) = (&logger, &long);
                s.spawn(move || {
                    for i in 0..200 {
                        let msg = format!("t{t} i{i} {long}");
                        logger
                            .lock()
                            .expect("lock")
                            .log(t0(), Level::Info, &msg, &[]);
                    }
                });
            }
        });
        let out = read(&path);
        assert_eq!(out.lines().count(), 800);
        for line in out.lines() {
            assert!(
                line.starts_with("time=") && line.ends_with(&format!("{long}\"")),
                "torn line"
            );
        }
    }

    #[test]
    fn rfc3339_agrees_with_format() {
        let mut seed = 88_172_645_463_325_252u64;
        for i in 0..20_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Up to the year 10000 and a little past it.
            let secs = if i < 10 {
                i * 86_399
            } else {
                seed % 254_000_000_000
            };
            let t = at(secs, (seed >> 40) as u32 % 1_000_000);
            let since = t.duration_since(UNIX_EPOCH).unwrap();
            let (y, m, d) = civil_from_days(secs / 86_400);
            let rem = secs % 86_400;
            let want = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60,
                since.subsec_micros()
            );
            assert_eq!(rfc3339(t), want);
        }
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_does() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        for s in [all.as_str(), "", "plain", "\u{7f}\u{80}\u{9f}\u{2028}😀"] {
            let mut out = Vec::new();
            push_json_string(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::Value::from(s).to_string()
            );
        }
    }

    #[test]
    fn a_batch_is_written_at_once_with_one_time() {
        let logger = Mutex::new(buffer_logger(Level::Info, Format::Default));
        let mut b = Batch::begin(logger.lock().unwrap());
        b.output_line("job", "app", "12", "stdout", "one");
        b.output_line("job", "app", "12", "stderr", "two");
        assert_eq!(written(&b.logger), "", "nothing written before the end");
        let time = rfc3339(b.now());
        drop(b);
        assert_eq!(
            written(&logger.lock().unwrap()),
            format!("{time} app 12 one\n{time} app 12 two\n")
        );
        // Filtered like any entry.
        let logger = Mutex::new(buffer_logger(Level::Warn, Format::Default));
        Batch::begin(logger.lock().unwrap()).output_line("job", "app", "12", "stdout", "x");
        assert_eq!(written(&logger.lock().unwrap()), "");
    }
}
