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
}

/// Before `init`: stdout, INFO, default format (SPEC §7).
static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    level: Level::Info,
    format: Format::Default,
    sink: Sink::Stdout,
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
        let line = format_entry(self.format, now, level, msg, fields);
        let written = match &mut self.sink {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line.as_bytes()).and_then(|()| out.flush())
            }
            Sink::Stderr => io::stderr().lock().write_all(line.as_bytes()),
            Sink::File { file, .. } => file.write_all(line.as_bytes()),
            #[cfg(test)]
            Sink::Buffer(buf) => buf.write_all(line.as_bytes()),
        };
        if written.is_err() {
            WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
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

/// One line of a job's or health check's output, logged at INFO (SPEC §7):
/// `kind` is `"job"` or `"check"`, `stream` is `"stdout"` or `"stderr"`.
/// In the default format this reads `TIME NAME PID LINE`.
pub fn output_line(kind: &str, name: &str, pid: &str, stream: &str, line: &str) {
    log(
        Level::Info,
        line,
        &[(kind, name), ("pid", pid), ("stream", stream)],
    )
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

/// One entry as a complete line, newline included. Pure, for the tests.
fn format_entry(
    format: Format,
    now: SystemTime,
    level: Level,
    msg: &str,
    fields: &[(&str, &str)],
) -> String {
    let time = rfc3339(now);
    let field = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|&(_, v)| v);
    let mut out = String::with_capacity(time.len() + msg.len() + 64);
    match format {
        Format::Default => {
            out.push_str(&time);
            for value in [field("job").or_else(|| field("check")), field("pid")]
                .into_iter()
                .flatten()
            {
                out.push(' ');
                out.push_str(value);
            }
            out.push(' ');
            // Go's log.Println, which 3.x used here, adds a newline only if missing.
            out.push_str(msg.strip_suffix('\n').unwrap_or(msg));
        }
        Format::Text => {
            out.push_str("time=");
            push_logfmt_value(&mut out, &time);
            out.push_str(" level=");
            out.push_str(level_name(level));
            out.push_str(" msg=");
            push_logfmt_value(&mut out, msg);
            for &(key, value) in fields {
                out.push(' ');
                push_key(&mut out, key);
                out.push('=');
                push_logfmt_value(&mut out, value);
            }
        }
        Format::Json => {
            out.push_str("{\"time\":");
            push_json_string(&mut out, &time);
            out.push_str(",\"level\":");
            push_json_string(&mut out, level_name(level));
            out.push_str(",\"msg\":");
            push_json_string(&mut out, msg);
            for &(key, value) in fields {
                let mut k = String::new();
                push_key(&mut k, key);
                out.push(',');
                push_json_string(&mut out, &k);
                out.push(':');
                match value.parse::<u64>() {
                    Ok(pid) if key == "pid" => out.push_str(&pid.to_string()),
                    _ => push_json_string(&mut out, value),
                }
            }
            out.push('}');
        }
    }
    out.push('\n');
    out
}

/// Field keys that would clash with the entry's own get a `fields.` prefix.
fn push_key(out: &mut String, key: &str) {
    if matches!(key, "time" | "level" | "msg") {
        out.push_str("fields.");
    }
    out.push_str(key);
}

fn push_json_string(out: &mut String, s: &str) {
    // Display of a JSON value cannot fail and escapes per RFC 8259.
    out.push_str(&serde_json::Value::from(s).to_string());
}

/// logfmt value: bare when made only of characters logrus leaves unquoted,
/// otherwise in double quotes with `"` `\` and control characters escaped.
fn push_logfmt_value(out: &mut String, s: &str) {
    let bare = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '@' | '^' | '+')
        });
    if bare {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `2026-11-23T06:50:01.123456Z`. Times before 1970 (a broken clock) print as
/// the epoch rather than failing.
pub fn rfc3339(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(27);
    write_rfc3339(&mut out, t);
    // Only ASCII digits and separators were written.
    String::from_utf8(out).unwrap_or_default()
}

/// [`rfc3339`] appended to `out`, digit by digit rather than through
/// `format!`: `/status` writes one per checked job.
pub fn write_rfc3339(out: &mut Vec<u8>, t: SystemTime) {
    fn digits(out: &mut Vec<u8>, n: u64, width: u32) {
        for i in (0..width).rev() {
            out.push(b'0' + (n / 10u64.pow(i) % 10) as u8);
        }
    }
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    // Four digits, or as many as a year past 9999 takes.
    let year_width = year.checked_ilog10().unwrap_or(0).max(3) + 1;
    digits(out, year, year_width);
    out.push(b'-');
    digits(out, month, 2);
    out.push(b'-');
    digits(out, day, 2);
    out.push(b'T');
    digits(out, rem / 3600, 2);
    out.push(b':');
    digits(out, rem % 3600 / 60, 2);
    out.push(b':');
    digits(out, rem % 60, 2);
    out.push(b'.');
    digits(out, u64::from(since.subsec_micros()), 6);
    out.push(b'Z');
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
            let mut s = String::new();
            push_logfmt_value(&mut s, v);
            s
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
        output_line("job", "app", "42", "stderr", "marker-filtered-output");
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
}
