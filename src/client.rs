//! The client subcommands (SPEC §1): `-ping`, `-putenv`, `-putmetric`,
//! `-reload`, `-maintenance`, and beyond 3.x `-start`, `-stop`, `-restart`,
//! `-signal`, `-logs`, `-status` and `-healthcheck`. Each sends one request
//! to the control socket of a running containerpilot, so shell hooks and
//! Docker's `HEALTHCHECK` need no HTTP client of their own.

use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cli::ClientCmd;
use crate::config::{self, tree::Node, DEFAULT_SOCKET};
use crate::http::client::{unix_request, unix_request_streaming, ClientResponse, HttpError};

const TIMEOUT: Duration = Duration::from_secs(30);

/// `stop` and `restart` answer only once the process is gone, which may take
/// the job's `stopTimeout` plus the global one, however long the user made
/// them; the server exempts them from its request timeout (SPEC §3.7), so
/// the client waits as long as any sane configuration could ask.
const STOP_TIMEOUT: Duration = Duration::from_secs(3600);

/// Where the control socket is: `control.socket` of the config if one is
/// given (only that key is read, so a hook never fails on an unrelated part
/// of the config), else the default path.
fn socket_path(config_path: Option<&Path>) -> Result<PathBuf, String> {
    let Some(path) = config_path else {
        return Ok(PathBuf::from(DEFAULT_SOCKET));
    };
    let rendered = config::render(path, &config::environment()).map_err(|e| e.to_string())?;
    let root = config::tree::parse(&rendered).map_err(|e| format!("cannot parse config: {e}"))?;
    let socket = root.get("control").and_then(|c| c.get("socket"));
    Ok(match socket {
        Some(Node::Str(s)) if !s.is_empty() => PathBuf::from(s),
        _ => PathBuf::from(DEFAULT_SOCKET),
    })
}

/// One request to send, and what it does in the user's words.
struct Call {
    method: &'static str,
    path: String,
    body: Option<String>,
    timeout: Duration,
    /// Completes "cannot …" in error messages.
    what: String,
}

impl Call {
    fn get(path: String, what: String) -> Call {
        Call {
            method: "GET",
            path,
            body: None,
            timeout: TIMEOUT,
            what,
        }
    }

    fn post(path: String, body: Option<Value>, what: String) -> Call {
        Call {
            method: "POST",
            path,
            body: body.map(|b| b.to_string()),
            timeout: TIMEOUT,
            what,
        }
    }
}

fn call(cmd: &ClientCmd) -> Call {
    let job_path = |job: &str, action: &str| format!("/v3/jobs/{}/{action}", percent_encode(job));
    match cmd {
        ClientCmd::Ping => Call::get("/v3/ping".into(), "ping containerpilot".into()),
        ClientCmd::Reload => Call::post("/v3/reload".into(), None, "reload".into()),
        ClientCmd::Maintenance(on) => {
            let verb = if *on { "enable" } else { "disable" };
            Call::post(
                format!("/v3/maintenance/{verb}"),
                None,
                format!("{verb} maintenance mode"),
            )
        }
        // `/v3/environ` rather than `/v3/env`: a 3.x server routes only
        // that spelling, so hooks work against either daemon (issue #12).
        ClientCmd::PutEnv(pairs) => Call::post(
            "/v3/environ".into(),
            Some(env_body(pairs)),
            "update the environment".into(),
        ),
        ClientCmd::PutMetric(pairs) => Call::post(
            "/v3/metric".into(),
            Some(metric_body(pairs)),
            "update metrics".into(),
        ),
        ClientCmd::Start(job) => {
            Call::post(job_path(job, "start"), None, format!("start job {job:?}"))
        }
        ClientCmd::Stop(job) => Call {
            timeout: STOP_TIMEOUT,
            ..Call::post(job_path(job, "stop"), None, format!("stop job {job:?}"))
        },
        ClientCmd::Restart(job) => Call {
            timeout: STOP_TIMEOUT,
            ..Call::post(
                job_path(job, "restart"),
                None,
                format!("restart job {job:?}"),
            )
        },
        ClientCmd::Signal { job, signal } => Call::post(
            job_path(job, "signal"),
            Some(serde_json::json!({ "signal": signal })),
            format!("send signal {signal} to job {job:?}"),
        ),
        ClientCmd::Logs { job, lines, follow } => {
            let mut path = format!("{}?n={lines}", job_path(job, "logs"));
            if *follow {
                path.push_str("&follow=1");
            }
            Call::get(path, format!("read the output of job {job:?}"))
        }
        ClientCmd::Status => Call::get("/v3/status".into(), "read the status".into()),
        ClientCmd::Healthcheck => Call::get("/v3/health".into(), "check health".into()),
    }
}

/// Run one subcommand; `Ok` carries what is left to print on stdout (the
/// log subcommands write their output themselves, as it arrives).
pub fn run(config_path: Option<&Path>, cmd: &ClientCmd) -> Result<String, String> {
    let socket = socket_path(config_path)?;
    let call = call(cmd);
    if let ClientCmd::Logs { follow: true, .. } = cmd {
        return follow(&socket, &call).map(|()| String::new());
    }
    let resp = unix_request(
        &socket,
        call.method,
        &call.path,
        call.body.as_deref().map(str::as_bytes),
        call.timeout,
    )
    .map_err(|e| unreachable(&socket, e))?;
    if let ClientCmd::Healthcheck = cmd {
        return healthcheck(&call, &resp);
    }
    if !(200..300).contains(&resp.status) {
        return Err(refused(&call, &resp));
    }
    let text = resp.text();
    Ok(match cmd {
        ClientCmd::Ping => "ok\n".to_string(),
        ClientCmd::Maintenance(_)
        | ClientCmd::Start(_)
        | ClientCmd::Stop(_)
        | ClientCmd::Restart(_)
        | ClientCmd::Signal { .. } => format!("{}\n", text.trim_end()),
        ClientCmd::Status => {
            let doc: Value = serde_json::from_str(&text)
                .map_err(|e| format!("cannot {}: the answer is not JSON: {e}", call.what))?;
            status_table(&doc)
        }
        ClientCmd::Logs { .. } => {
            write_out(&resp.body)?;
            String::new()
        }
        ClientCmd::PutEnv(_) | ClientCmd::PutMetric(_) | ClientCmd::Reload => String::new(),
        ClientCmd::Healthcheck => String::new(),
    })
}

/// A connection that failed, naming the socket it tried.
fn unreachable(socket: &Path, e: HttpError) -> String {
    match e {
        HttpError::Connect { source, .. } => {
            let hint = match source.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    " (is containerpilot running?)"
                }
                _ => "",
            };
            format!(
                "cannot reach the control socket at {}: {}{hint}",
                socket.display(),
                os_error_text(&source)
            )
        }
        // These already name the socket.
        other => other.to_string(),
    }
}

/// strerror's words without std's " (os error N)" suffix.
fn os_error_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

/// A non-2xx answer as an error: the server's `{"error": …}` text, else
/// its body as is (a 3.x server answers some errors in plain text).
fn refused(call: &Call, resp: &ClientResponse) -> String {
    let text = resp.text();
    let msg = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string());
    format!("cannot {}: {msg} (HTTP {})", call.what, resp.status)
}

/// `-healthcheck`: 200 is healthy; a 503 health report names the unhealthy
/// jobs on stdout, one per line, and fails; anything else fails with the
/// server's error.
fn healthcheck(call: &Call, resp: &ClientResponse) -> Result<String, String> {
    if resp.status == 200 {
        return Ok(String::new());
    }
    let report: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let names = report
        .as_ref()
        .filter(|_| resp.status == 503)
        .and_then(|r| r.get("unhealthy"))
        .and_then(Value::as_array);
    let Some(names) = names else {
        return Err(refused(call, resp));
    };
    let mut out = String::new();
    for name in names {
        out.push_str(&printable(&cell(name)));
        out.push('\n');
    }
    write_out(out.as_bytes())?;
    Err("the container is not healthy".into())
}

/// `-logs NAME -follow`: each piece of the stream goes to stdout as it
/// arrives, until the stream ends, the socket closes or we are interrupted.
fn follow(socket: &Path, call: &Call) -> Result<(), String> {
    exit_on_interrupt()?;
    let resp = unix_request_streaming(socket, call.method, &call.path, None, call.timeout)
        .map_err(|e| unreachable(socket, e))?;
    if !(200..300).contains(&resp.status) {
        let whole = resp.into_response().map_err(|e| e.to_string())?;
        return Err(refused(call, &whole));
    }
    let mut out = io::stdout().lock();
    let mut failed = None;
    // Zero idle timeout: a quiet job may print nothing for hours. The
    // server ends the stream when the job is removed or containerpilot
    // shuts down (SPEC §3.7); a daemon killed outright closes the socket
    // mid-stream. Either way there is nothing more to follow, so how the
    // stream ended is not an error.
    let _ended = resp.read_pieces(Duration::ZERO, |piece| {
        match out.write_all(piece).and_then(|()| out.flush()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    });
    if let Some(e) = failed {
        return stdout_error(e);
    }
    Ok(())
}

/// SIGINT (^C) and SIGTERM end `-logs -follow` with exit 0: being told to
/// stop is how following is meant to end. They are blocked here and taken
/// by a thread of their own, as the daemon does (STYLE rule 9);
/// `process::exit` flushes stdout without waiting for the lock a blocked
/// write may hold. Called before any other thread is started.
fn exit_on_interrupt() -> Result<(), String> {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| format!("cannot block signals: {e}"))?;
    std::thread::Builder::new()
        .name("interrupt".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if set.wait().is_ok() {
                std::process::exit(0);
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

fn write_out(bytes: &[u8]) -> Result<(), String> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) => stdout_error(e),
    }
}

/// A reader that went away (`-logs web | head`) wanted no more: exit 0, as
/// Unix tools do; any other write failure is an error.
fn stdout_error(e: io::Error) -> Result<(), String> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Ok(());
    }
    Err(format!("cannot write to stdout: {}", os_error_text(&e)))
}

/// Every byte outside the unreserved set (RFC 3986 §2.3) as `%XX`, so that
/// a job named `/usr/bin/env` or `my job` is one path segment.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `/v3/status` document as an aligned table, one row per job.
fn status_table(doc: &Value) -> String {
    const HEAD: [&str; 6] = ["JOB", "STATE", "STATUS", "PID", "RESTARTS", "LAST EXIT"];
    const KEYS: [&str; 6] = [
        "name",
        "state",
        "status",
        "pid",
        "restarts",
        "last_exit_code",
    ];
    let mut rows: Vec<[String; 6]> = vec![HEAD.map(str::to_string)];
    let services = doc.get("services").and_then(Value::as_array);
    for s in services.into_iter().flatten() {
        rows.push(KEYS.map(|k| printable(&s.get(k).map_or_else(|| "-".into(), cell))));
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            line.push_str(c);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A JSON value as a table cell: text as is, `-` for null.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Control characters would break the table (or the terminal): shown as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `K=V` sets (everything after the first `=` is the value); `K` alone clears.
fn env_body(pairs: &[String]) -> Value {
    let mut m = Map::new();
    for p in pairs {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Value::Object(m)
}

/// Numbers go as JSON numbers; anything else as a string the server will judge.
fn metric_body(pairs: &[String]) -> Value {
    let mut m = Map::new();
    for p in pairs {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let value = match v.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => {
                serde_json::Number::from_f64(f).map_or(Value::String(v.into()), Value::Number)
            }
            _ => Value::String(v.to_string()),
        };
        m.insert(k.to_string(), value);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies() {
        let b = env_body(&["A=1=2".into(), "B".into(), "C=".into()]);
        assert_eq!(b.to_string(), r#"{"A":"1=2","B":"","C":""}"#);
        let b = metric_body(&["x=2".into(), "y=1.5".into(), "z=abc".into()]);
        assert_eq!(b.to_string(), r#"{"x":2.0,"y":1.5,"z":"abc"}"#);
    }

    #[test]
    fn names_are_one_encoded_segment() {
        assert_eq!(percent_encode("web-1.a_b~"), "web-1.a_b~");
        assert_eq!(percent_encode("/usr/bin/env"), "%2Fusr%2Fbin%2Fenv");
        assert_eq!(percent_encode("my job?#%"), "my%20job%3F%23%25");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn requests_for_each_subcommand() {
        let c = call(&ClientCmd::PutEnv(vec!["A=1".into()]));
        assert_eq!((c.method, c.path.as_str()), ("POST", "/v3/environ"));
        let c = call(&ClientCmd::Stop("/usr/bin/env".into()));
        assert_eq!(
            (c.method, c.path.as_str(), c.timeout),
            ("POST", "/v3/jobs/%2Fusr%2Fbin%2Fenv/stop", STOP_TIMEOUT)
        );
        let c = call(&ClientCmd::Restart("a".into()));
        assert_eq!(c.timeout, STOP_TIMEOUT);
        let c = call(&ClientCmd::Start("a".into()));
        assert_eq!((c.path.as_str(), c.timeout), ("/v3/jobs/a/start", TIMEOUT));
        let c = call(&ClientCmd::Signal {
            job: "web".into(),
            signal: "HUP".into(),
        });
        assert_eq!(
            (c.path.as_str(), c.body.as_deref()),
            ("/v3/jobs/web/signal", Some(r#"{"signal":"HUP"}"#))
        );
        let c = call(&ClientCmd::Logs {
            job: "my job".into(),
            lines: 5,
            follow: true,
        });
        assert_eq!(
            (c.method, c.path.as_str()),
            ("GET", "/v3/jobs/my%20job/logs?n=5&follow=1")
        );
        let c = call(&ClientCmd::Logs {
            job: "w".into(),
            lines: 100,
            follow: false,
        });
        assert_eq!(c.path, "/v3/jobs/w/logs?n=100");
        assert_eq!(call(&ClientCmd::Healthcheck).path, "/v3/health");
    }

    #[test]
    fn status_table_is_aligned_with_dashes_for_null() {
        let doc = json!({"services": [
            {"name": "web", "state": "running", "status": "healthy", "pid": 4242,
             "restarts": 3, "last_exit_code": null},
            {"name": "setup-db", "state": "completed", "status": "nonadvertised",
             "pid": null, "restarts": 0, "last_exit_code": 0},
            {"name": "odd\nname"},
        ]});
        assert_eq!(
            status_table(&doc),
            "\
JOB       STATE      STATUS         PID   RESTARTS  LAST EXIT
web       running    healthy        4242  3         -
setup-db  completed  nonadvertised  -     0         0
odd?name  -          -              -     -         -
"
        );
        assert_eq!(
            status_table(&json!({})),
            "JOB  STATE  STATUS  PID  RESTARTS  LAST EXIT\n"
        );
    }

    #[test]
    fn refusals_carry_the_server_text() {
        let c = call(&ClientCmd::Stop("nope".into()));
        let r = ClientResponse {
            status: 404,
            headers: vec![],
            body: br#"{"error":"no job named \"nope\""}"#.to_vec(),
        };
        assert_eq!(
            refused(&c, &r),
            r#"cannot stop job "nope": no job named "nope" (HTTP 404)"#
        );
        let r = ClientResponse {
            status: 404,
            headers: vec![],
            body: b"404 page not found\n".to_vec(),
        };
        assert_eq!(
            refused(&c, &r),
            r#"cannot stop job "nope": 404 page not found (HTTP 404)"#
        );
    }
}
