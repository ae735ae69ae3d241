//! The HTTP API of both servers (SPEC §4, §5): one route table naming each
//! endpoint's method, path pattern, server and handler; the one function
//! that turns the loop's typed answers and refusals into responses; and
//! the request counter behind `containerpilot_control_http_requests`.
//!
//! A handler parses and checks the request on the server's thread, asks the
//! loop (which only applies what it is sent), and returns what the loop
//! said. `control` and `telemetry` only bind their listeners and hand every
//! request to [`handle`].

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use serde_json::{Map, Value};

use crate::config;
use crate::http::server::{ChunkSource, Next, Request, Response};
use crate::log;
use crate::logbuf::Line;
use crate::metrics::{self, RequestCounter};
use crate::msg::{Answer, Command, JobAction, Msg, Pages, Published, Query, Refusal, RefusalKind};

/// How long a request waits for the event loop before giving up.
const LOOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a job `stop` or `restart` may take to be answered: the loop
/// answers within the job's and the global stop timeouts, whatever they are
/// (SPEC §4.1: exempt from the request timeout).
const STOP_TIMEOUT: Duration = Duration::from_secs(3600);

/// The content type of the Prometheus text exposition format 0.0.4.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `logs?follow=1` streams open at once, at most (SPEC §3.7).
const MAX_FOLLOWERS: usize = 16;

/// Lines a follower may have queued before it counts as too slow.
const FOLLOW_QUEUE: usize = 1024;

/// Which server serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// The control plane on the unix socket.
    Control,
    /// The telemetry endpoint on TCP.
    Telemetry,
}

/// What every handler of one server shares.
pub struct Ctx {
    pub plane: Plane,
    pub tx: Sender<Msg>,
    /// The config file reload reads again (control plane only).
    pub config_path: PathBuf,
    /// Answers counted by (status, route): the control plane counts its
    /// own (`containerpilot_control_http_requests`), telemetry renders them.
    pub requests: Arc<Mutex<RequestCounter>>,
    /// The pages the loop has rendered and cached, served without asking it.
    pub pages: Arc<Pages>,
    /// `logs?follow=1` streams open now.
    pub followers: Arc<AtomicUsize>,
}

/// What a handler produces: the loop's answer, or something the API
/// makes itself.
pub enum Out {
    Answer(Answer),
    /// `text/plain`.
    Text(String),
    /// The Prometheus text exposition.
    Metrics(String),
    /// A chunked `text/plain` stream (`logs?follow=1`).
    Stream(Box<dyn ChunkSource>),
}

impl From<Answer> for Out {
    fn from(a: Answer) -> Out {
        Out::Answer(a)
    }
}

/// A handler gets the request and the `{name}` segments of its pattern,
/// percent-decoded.
type Handler = fn(&Ctx, &Request, &[String]) -> Result<Out, Refusal>;

struct Route {
    method: &'static str,
    /// Literal segments, or `{name}` for one (percent-encoded) segment.
    pattern: &'static str,
    plane: Plane,
    handler: Handler,
}

const fn route(
    method: &'static str,
    pattern: &'static str,
    plane: Plane,
    handler: Handler,
) -> Route {
    Route {
        method,
        pattern,
        plane,
        handler,
    }
}

use Plane::{Control, Telemetry};

/// Every endpoint of both servers.
const ROUTES: &[Route] = &[
    route("GET", "/v3/ping", Control, ping),
    route("POST", "/v3/env", Control, put_env),
    route("POST", "/v3/environ", Control, put_env),
    route("POST", "/v3/metric", Control, put_metric),
    route("POST", "/v3/reload", Control, reload),
    route("POST", "/v3/maintenance/enable", Control, maintenance_on),
    route("POST", "/v3/maintenance/disable", Control, maintenance_off),
    route("GET", "/v3/status", Control, status),
    route("GET", "/v3/health", Control, health),
    route("GET", "/v3/jobs", Control, jobs),
    route("GET", "/v3/jobs/{name}", Control, jobs),
    route("POST", "/v3/jobs/{name}/start", Control, job_start),
    route("POST", "/v3/jobs/{name}/stop", Control, job_stop),
    route("POST", "/v3/jobs/{name}/restart", Control, job_restart),
    route("POST", "/v3/jobs/{name}/signal", Control, job_signal),
    route("GET", "/v3/jobs/{name}/logs", Control, job_logs),
    route("GET", "/metrics", Telemetry, metrics_page),
    route("GET", "/status", Telemetry, status),
];

/// Answer one request: route it, run its handler, count it.
pub fn handle(ctx: &Ctx, req: &Request) -> Response {
    let path = match ctx.plane {
        Control => route_path(req),
        Telemetry => Cow::Borrowed(req.path.as_str()),
    };
    let (label, resp) = match find(ctx.plane, &req.method, &path) {
        Ok(r) => {
            let resp = match params(r.pattern, &path) {
                Ok(params) => respond((r.handler)(ctx, req, &params)),
                Err(e) => respond(Err(e)),
            };
            (r.pattern, resp)
        }
        Err((label, resp)) => (label, resp),
    };
    if ctx.plane == Control {
        ctx.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .inc(resp.status, label);
    }
    resp
}

/// The route for `path`, or the 404/405 (with `Allow`) to send and the
/// label to count it under: `other` for an unknown path, so that clients
/// cannot grow the metric without bound.
fn find(
    plane: Plane,
    method: &str,
    path: &str,
) -> Result<&'static Route, (&'static str, Response)> {
    let mut matched: Option<&'static Route> = None;
    for r in ROUTES
        .iter()
        .filter(|r| r.plane == plane && matches(r.pattern, path))
    {
        let allowed = method == r.method || (method == "HEAD" && r.method == "GET");
        if allowed {
            return Ok(r);
        }
        matched = matched.or(Some(r));
    }
    let Some(r) = matched else {
        return Err((
            "other",
            Response::error(404, &format!("no such endpoint: {path}")),
        ));
    };
    let allow = if r.method == "GET" {
        "GET, HEAD"
    } else {
        r.method
    };
    Err((
        r.pattern,
        Response::error(
            405,
            &format!("method {method} not allowed on {}", r.pattern),
        )
        .with_header("Allow", allow),
    ))
}

/// Whether `path` fits `pattern` segment by segment.
fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// The `{name}` segments of `path`, percent-decoded (it matched `pattern`).
fn params(pattern: &str, path: &str) -> Result<Vec<String>, Refusal> {
    pattern
        .split('/')
        .zip(path.split('/'))
        .filter(|(p, _)| p.starts_with('{'))
        .map(|(_, seg)| {
            percent_decode(seg).ok_or_else(|| {
                Refusal::new(
                    RefusalKind::NotFound,
                    format!("{seg:?} is not a valid percent-encoded name"),
                )
            })
        })
        .collect()
}

/// `%2F` and friends back to text; `None` for a bad escape or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The one place an answer or a refusal becomes a response.
pub fn respond(result: Result<Out, Refusal>) -> Response {
    let answer = match result {
        Ok(Out::Answer(a)) => a,
        Ok(Out::Text(t)) => return Response::text(200, t),
        Ok(Out::Metrics(text)) => {
            return Response {
                status: 200,
                headers: vec![("Content-Type".into(), METRICS_TYPE.into())],
                body: text.into_bytes().into(),
            }
        }
        Ok(Out::Stream(s)) => return Response::stream(200, "text/plain; charset=utf-8", s),
        Err(r) => return Response::error(status_of(r.kind), &r.message),
    };
    match answer {
        Answer::Done => Response::empty(200),
        // Pretty-printed, as in the seed document's example (`Content-Length: 21`).
        Answer::Updated(updated) => Response::json_bytes(
            200,
            serde_json::to_vec_pretty(&serde_json::json!({ "updated": updated }))
                .unwrap_or_default(),
        ),
        Answer::Status(json) => Response::json_bytes(200, json),
        // Completed into a page by `metrics_page`; never answered as is.
        Answer::Metrics(_) => Response::error(
            500,
            "cannot answer a metrics query without the process metrics",
        ),
        Answer::Environment(env) => {
            let map: Map<String, Value> = env
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            Response::json(200, &map)
        }
        Answer::Health(h) => Response::json(if h.healthy { 200 } else { 503 }, &h),
        Answer::Jobs(jobs) => Response::json(200, &serde_json::json!({ "jobs": jobs })),
        // Turned into text or a stream by `job_logs`; never answered as is.
        Answer::Logs(_) => Response::error(500, "cannot answer a log query without its options"),
    }
}

fn status_of(kind: RefusalKind) -> u16 {
    match kind {
        RefusalKind::Invalid => 400,
        RefusalKind::NotFound => 404,
        RefusalKind::Conflict => 409,
        RefusalKind::BadConfig => 422,
        RefusalKind::ShuttingDown | RefusalKind::Unavailable => 503,
    }
}

/// Send a request to the event loop and wait for its answer (bounded).
fn ask(tx: &Sender<Msg>, msg: impl FnOnce(crate::msg::Reply) -> Msg) -> Result<Answer, Refusal> {
    ask_meanwhile(tx, msg, || {}, LOOP_TIMEOUT)
}

/// `ask`, doing `meanwhile` on this thread while the loop works.
fn ask_meanwhile(
    tx: &Sender<Msg>,
    msg: impl FnOnce(crate::msg::Reply) -> Msg,
    meanwhile: impl FnOnce(),
    timeout: Duration,
) -> Result<Answer, Refusal> {
    let (reply_tx, reply_rx) = bounded(1);
    if tx.send(msg(reply_tx)).is_err() {
        return Err(Refusal::new(
            RefusalKind::ShuttingDown,
            "containerpilot is shutting down",
        ));
    }
    meanwhile();
    reply_rx.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(Refusal::new(
            RefusalKind::Unavailable,
            "containerpilot did not answer in time",
        ))
    })
}

/// The page the loop cached, unless messages wait for it: without the
/// cache a query would be answered after them, and a fact a worker has
/// reported (a check result, an exit) must not be hidden behind a page
/// from before it. A message the loop has already taken is another
/// matter: it drops the page before applying it, and a request that
/// overlaps that may see either side.
fn cached<T>(ctx: &Ctx, page: &Published<T>) -> Option<Arc<T>> {
    if !ctx.tx.is_empty() {
        return None;
    }
    page.get()
}

fn command(ctx: &Ctx, cmd: Command) -> Result<Out, Refusal> {
    ask(&ctx.tx, |reply| Msg::Command(cmd, reply)).map(Out::from)
}

fn query(ctx: &Ctx, q: Query) -> Result<Out, Refusal> {
    ask(&ctx.tx, |reply| Msg::Query(q, reply)).map(Out::from)
}

// --- Handlers, in the order of the table ---------------------------------

fn ping(_: &Ctx, _: &Request, _: &[String]) -> Result<Out, Refusal> {
    // Never touches the loop: a busy loop must not make the daemon look dead.
    Ok(Out::Text("ok".into()))
}

fn put_env(ctx: &Ctx, req: &Request, _: &[String]) -> Result<Out, Refusal> {
    let pairs = parse_env(&req.body).map_err(Refusal::invalid)?;
    command(ctx, Command::PutEnv(pairs))
}

fn put_metric(ctx: &Ctx, req: &Request, _: &[String]) -> Result<Out, Refusal> {
    let pairs = parse_metrics(&req.body).map_err(Refusal::invalid)?;
    command(ctx, Command::PutMetric(pairs))
}

/// The new config is read and validated here, off the event loop, with the
/// environment a child would get now; the loop only applies it.
fn reload(ctx: &Ctx, _: &Request, _: &[String]) -> Result<Out, Refusal> {
    let env = match ask(&ctx.tx, |reply| Msg::Query(Query::Environment, reply))? {
        Answer::Environment(env) => env.into_iter().collect(),
        _ => config::environment(),
    };
    match config::load(&ctx.config_path, &env) {
        Ok((cfg, warnings)) => {
            for w in &warnings {
                log::warn(&w.0);
            }
            command(ctx, Command::Reload(Box::new(cfg)))
        }
        Err(e) => {
            // Logged too, so that `docker logs` shows why (as 3.x did).
            let msg = format!("reload refused, the running configuration is unchanged: {e}");
            log::error(&msg);
            Err(Refusal::new(RefusalKind::BadConfig, e.to_string()))
        }
    }
}

fn maintenance_on(ctx: &Ctx, _: &Request, _: &[String]) -> Result<Out, Refusal> {
    command(ctx, Command::Maintenance(true))
}

fn maintenance_off(ctx: &Ctx, _: &Request, _: &[String]) -> Result<Out, Refusal> {
    command(ctx, Command::Maintenance(false))
}

fn status(ctx: &Ctx, _: &Request, _: &[String]) -> Result<Out, Refusal> {
    match cached(ctx, &ctx.pages.status) {
        Some(json) => Ok(Out::Answer(Answer::Status(json))),
        None => query(ctx, Query::Status),
    }
}

fn health(ctx: &Ctx, _: &Request, _: &[String]) -> Result<Out, Refusal> {
    query(ctx, Query::Health)
}

fn jobs(ctx: &Ctx, _: &Request, name: &[String]) -> Result<Out, Refusal> {
    query(ctx, Query::Jobs(name.first().cloned()))
}

fn job(ctx: &Ctx, name: &[String], action: JobAction, timeout: Duration) -> Result<Out, Refusal> {
    let name = name.first().cloned().unwrap_or_default();
    let cmd = Command::Job { name, action };
    ask_meanwhile(&ctx.tx, |reply| Msg::Command(cmd, reply), || {}, timeout).map(Out::from)
}

fn job_start(ctx: &Ctx, _: &Request, name: &[String]) -> Result<Out, Refusal> {
    job(ctx, name, JobAction::Start, LOOP_TIMEOUT)
}

fn job_stop(ctx: &Ctx, _: &Request, name: &[String]) -> Result<Out, Refusal> {
    job(ctx, name, JobAction::Stop, STOP_TIMEOUT)
}

fn job_restart(ctx: &Ctx, _: &Request, name: &[String]) -> Result<Out, Refusal> {
    job(ctx, name, JobAction::Restart, STOP_TIMEOUT)
}

fn job_signal(ctx: &Ctx, req: &Request, name: &[String]) -> Result<Out, Refusal> {
    let sig = parse_signal_body(&req.body).map_err(Refusal::invalid)?;
    job(ctx, name, JobAction::Signal(sig), LOOP_TIMEOUT)
}

/// `GET /v3/jobs/NAME/logs?n=N[&follow=1]`: the last N kept lines of every
/// job of that name, merged in time order, each `TIME STREAM LINE`; with
/// `follow`, then every new line until the jobs are gone.
fn job_logs(ctx: &Ctx, req: &Request, name: &[String]) -> Result<Out, Refusal> {
    let (n, follow) = parse_logs_query(&req.query).map_err(Refusal::invalid)?;
    let name = name.first().cloned().unwrap_or_default();
    let buffers = match ask(&ctx.tx, |reply| Msg::Query(Query::Logs(name), reply))? {
        Answer::Logs(b) => b,
        other => return Ok(Out::Answer(other)),
    };
    if !follow {
        let lines = merge(buffers.iter().map(|b| b.last(n)).collect(), n);
        return Ok(Out::Text(lines.iter().map(|l| format_line(l)).collect()));
    }
    let Some(slot) = FollowSlot::take(&ctx.followers) else {
        return Err(Refusal::new(
            RefusalKind::Unavailable,
            format!("too many log followers (at most {MAX_FOLLOWERS} at once)"),
        ));
    };
    let (tx, rx) = bounded(FOLLOW_QUEUE);
    let past = buffers.iter().map(|b| b.follow(n, tx.clone()).0).collect();
    // Only the buffers hold senders now: when every one lets go (its job
    // is gone, or we read too slowly), the stream ends.
    drop(tx);
    let pending = merge(past, n).iter().map(|l| format_line(l)).collect();
    Ok(Out::Stream(Box::new(LogStream {
        pending,
        rx,
        _slot: slot,
    })))
}

/// The newest `n` of several time-ordered lists, in time order.
fn merge(lists: Vec<Vec<Arc<Line>>>, n: usize) -> Vec<Arc<Line>> {
    let mut all: Vec<Arc<Line>> = lists.into_iter().flatten().collect();
    all.sort_by_key(|l| l.at);
    let skip = all.len().saturating_sub(n);
    all.split_off(skip)
}

/// `TIME STREAM LINE`, TIME as the `default` log format writes it.
fn format_line(l: &Line) -> String {
    format!("{} {} {}\n", log::rfc3339(l.at), l.stream.name(), l.text)
}

/// `n` (default 100; an integer ≥ 1) and `follow` (`1` or `true`).
fn parse_logs_query(query: &str) -> Result<(usize, bool), String> {
    let mut n = 100;
    let mut follow = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "n" => {
                n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("n must be an integer >= 1, got {value:?}"))?
            }
            "follow" => {
                follow = match value {
                    "1" | "true" => true,
                    "0" | "false" | "" => false,
                    _ => return Err(format!("follow must be 1 or true, got {value:?}")),
                }
            }
            _ => {}
        }
    }
    Ok((n, follow))
}

/// One of the `MAX_FOLLOWERS` places; given back when the stream ends.
struct FollowSlot(Arc<AtomicUsize>);

impl FollowSlot {
    fn take(count: &Arc<AtomicUsize>) -> Option<FollowSlot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_FOLLOWERS).then_some(n + 1)
            })
            .ok()?;
        Some(FollowSlot(count.clone()))
    }
}

impl Drop for FollowSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The lines kept so far, then each new one as it is written.
struct LogStream {
    pending: VecDeque<String>,
    rx: Receiver<Arc<Line>>,
    _slot: FollowSlot,
}

impl ChunkSource for LogStream {
    fn next(&mut self, wait: Duration) -> Next {
        if !self.pending.is_empty() {
            let chunk: String = self.pending.drain(..).collect();
            return Next::Chunk(chunk.into_bytes());
        }
        match self.rx.recv_timeout(wait) {
            Ok(line) => {
                let mut chunk = format_line(&line);
                // Whatever else is queued goes in the same chunk.
                for more in self.rx.try_iter().take(255) {
                    chunk.push_str(&format_line(&more));
                }
                Next::Chunk(chunk.into_bytes())
            }
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => Next::End,
        }
    }
}

/// `{"signal": "HUP" | "SIGHUP" | 1}`.
fn parse_signal_body(body: &[u8]) -> Result<i32, String> {
    let obj = parse_object(body)?;
    match obj.get("signal") {
        Some(Value::String(s)) => signal_number(s).ok_or_else(|| format!("unknown signal {s:?}")),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .filter(|n| nix::sys::signal::Signal::try_from(*n).is_ok())
            .ok_or_else(|| format!("unknown signal {n}")),
        Some(other) => Err(format!("signal must be a name or a number, got {other}")),
        None => Err("the body must name a signal: {\"signal\": \"HUP\"}".into()),
    }
}

/// `HUP`, `SIGHUP`, `hup` or `15` to a signal number.
fn signal_number(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .ok()
            .map(|sig| sig as i32);
    }
    let upper = s.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|sig| sig as i32)
}

/// The loop's part of the page as it cached it, or else as it renders it
/// now; the request counter (the control threads keep it) and the
/// `process_*` families need nothing from the loop and are read here, the
/// latter while the loop renders.
fn metrics_page(ctx: &Ctx, _: &Request, _: &[String]) -> Result<Out, Refusal> {
    let mut process = String::with_capacity(1024);
    let page = match cached(ctx, &ctx.pages.metrics).filter(|p| p.fresh(Instant::now())) {
        Some(page) => {
            metrics::render_process(&mut process);
            page
        }
        None => match ask_meanwhile(
            &ctx.tx,
            |reply| Msg::Query(Query::Metrics, reply),
            || metrics::render_process(&mut process),
            LOOP_TIMEOUT,
        )? {
            Answer::Metrics(page) => page,
            other => return Ok(Out::Answer(other)),
        },
    };
    let mut text = String::with_capacity(page.head.len() + page.tail.len() + process.len() + 512);
    text.push_str(&page.head);
    ctx.requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .render(&mut text);
    text.push_str(&page.tail);
    text.push_str(&process);
    Ok(Out::Metrics(text))
}

// --- Request bodies --------------------------------------------------------

/// Requests to `http:/v3/env` arrive as `POST /env` with `Host: v3` (that is
/// how curl reads the seeds' URLs): route them as if the path began with /v3.
fn route_path(req: &Request) -> Cow<'_, str> {
    let host_v3 = req
        .header("host")
        .is_some_and(|h| h.eq_ignore_ascii_case("v3"));
    if host_v3 && !req.path.starts_with("/v3/") {
        Cow::Owned(format!("/v3{}", req.path))
    } else {
        Cow::Borrowed(&req.path)
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("the body must be a JSON object".into()),
        Err(e) => Err(format!("the body must be a JSON object: {e}")),
    }
}

fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `{"K": "v", "GONE": "" | null, "N": 42}` → pairs; `None` unsets.
pub fn parse_env(body: &[u8]) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    for (k, v) in parse_object(body)? {
        if !valid_env_name(&k) {
            return Err(format!("{k:?} is not a valid environment variable name"));
        }
        let value = match v {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            // No process could be given it: every later spawn would fail.
            Value::String(s) if s.contains('\0') => {
                return Err(format!(
                    "the value of {k:?} contains a NUL byte, which no environment can hold"
                ))
            }
            Value::String(s) => Some(s),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(number_text(&n)),
            Value::Array(_) | Value::Object(_) => {
                return Err(format!(
                    "the value of {k:?} must be a string, number, boolean or null"
                ))
            }
        };
        out.push((k, value));
    }
    Ok(out)
}

/// Integers without a fraction, others in shortest round-trip form (`1e3` → `1000`).
fn number_text(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        format!("{}", f as i64)
    } else {
        format!("{f:?}")
    }
}

/// `{"name": 2, "other": "1.5"}` → pairs; names are checked by the loop, which owns the metrics.
pub fn parse_metrics(body: &[u8]) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for (k, v) in parse_object(body)? {
        let value = match &v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match value {
            Some(f) if f.is_finite() => out.push((k, f)),
            _ => {
                return Err(format!(
                    "the value of metric {k:?} must be a number, got {v}"
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::MetricsPage;

    #[test]
    fn env_values() {
        let got = parse_env(
            br#"{"A": "x=y", "B": "", "C": null, "D": 42, "E": 1.5, "F": 1e3, "G": true}"#,
        )
        .unwrap();
        let want: Vec<(String, Option<String>)> = vec![
            ("A".into(), Some("x=y".into())),
            ("B".into(), None),
            ("C".into(), None),
            ("D".into(), Some("42".into())),
            ("E".into(), Some("1.5".into())),
            ("F".into(), Some("1000".into())),
            ("G".into(), Some("true".into())),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn env_rejects() {
        assert!(parse_env(br#"{"1A": "x"}"#).unwrap_err().contains("1A"));
        assert!(parse_env(br#"{"A-B": "x"}"#).is_err());
        assert!(parse_env(br#"{"": "x"}"#).is_err());
        assert!(parse_env(br#"{"A": [1]}"#).unwrap_err().contains("\"A\""));
        assert!(parse_env(br#"{"A": {}}"#).is_err());
        assert!(parse_env(br#"[1]"#).is_err());
        assert!(parse_env(b"").is_err());
        assert!(parse_env(b"{nope").is_err());
    }

    #[test]
    fn metric_values() {
        let got = parse_metrics(br#"{"a": 2, "b": "1.5", "c": -3}"#).unwrap();
        assert_eq!(
            got,
            vec![("a".into(), 2.0), ("b".into(), 1.5), ("c".into(), -3.0)]
        );
        assert!(parse_metrics(br#"{"a": "x"}"#).is_err());
        assert!(parse_metrics(br#"{"a": true}"#).is_err());
        assert!(parse_metrics(br#"{"a": null}"#).is_err());
        assert!(parse_metrics(br#"{"a": "NaN"}"#).is_err());
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("_A1"));
        assert!(valid_env_name("a"));
        assert!(!valid_env_name("A B"));
        assert!(!valid_env_name("Ä"));
    }

    #[test]
    fn patterns_match_whole_segments() {
        assert!(matches("/v3/ping", "/v3/ping"));
        assert!(!matches("/v3/ping", "/v3/ping/"));
        assert!(!matches("/v3/ping", "/v3"));
        assert!(matches("/v3/jobs/{name}/stop", "/v3/jobs/web/stop"));
        assert!(!matches("/v3/jobs/{name}/stop", "/v3/jobs//stop"));
        assert!(!matches("/v3/jobs/{name}/stop", "/v3/jobs/a/b/stop"));
    }

    #[test]
    fn every_route_is_found_and_wrong_methods_name_the_allowed_one() {
        for r in ROUTES {
            let path = r.pattern.replace("{name}", "x");
            let found = find(r.plane, r.method, &path).map(|f| f.pattern);
            assert_eq!(found.ok(), Some(r.pattern), "{}", r.pattern);
            let other = if r.method == "GET" { "POST" } else { "GET" };
            let (label, resp) = find(r.plane, other, &path).err().expect("405");
            assert_eq!(resp.status, 405);
            assert_eq!(label, r.pattern);
            assert!(resp.header("Allow").unwrap().contains(r.method));
        }
        let (label, resp) = find(Plane::Control, "GET", "/metrics").err().expect("404");
        assert_eq!((label, resp.status), ("other", 404));
    }

    /// A telemetry context whose loop is `rx`, with `page` cached.
    fn telemetry_with(page: MetricsPage) -> (Ctx, crossbeam_channel::Receiver<Msg>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let ctx = Ctx {
            plane: Plane::Telemetry,
            tx,
            config_path: PathBuf::new(),
            requests: Arc::default(),
            pages: Arc::default(),
            followers: Arc::default(),
        };
        ctx.pages.metrics.set(Arc::new(page));
        (ctx, rx)
    }

    fn page(head: &str, valid_until: Option<Instant>) -> MetricsPage {
        MetricsPage {
            head: head.into(),
            tail: String::new(),
            valid_until,
        }
    }

    /// Serves `/metrics` while a stand-in loop answers a query, if one
    /// comes, with a page saying `loop` (and skips other messages); the
    /// body and whether the loop was asked.
    fn scrape(ctx: &Ctx, rx: &crossbeam_channel::Receiver<Msg>) -> (String, bool) {
        std::thread::scope(|s| {
            let stand_in = s.spawn(|| {
                while let Ok(msg) = rx.recv_timeout(Duration::from_secs(5)) {
                    match msg {
                        Msg::Query(Query::Metrics, reply) => {
                            let page = Arc::new(page("loop\n", None));
                            let _ = reply.send(Ok(Answer::Metrics(page)));
                            return true;
                        }
                        // The scrape is over without asking.
                        Msg::Deregistered => return false,
                        _ => {}
                    }
                }
                false
            });
            let out = metrics_page(ctx, &Request::default(), &[]);
            let _ = ctx.tx.send(Msg::Deregistered);
            let asked = stand_in.join().unwrap_or(false);
            while rx.try_recv().is_ok() {}
            match out {
                Ok(Out::Metrics(text)) => (text, asked),
                _ => panic!("no page"),
            }
        })
    }

    #[test]
    fn a_cached_page_is_served_only_while_it_holds() {
        let later = Instant::now() + Duration::from_secs(60);
        let (ctx, rx) = telemetry_with(page("cached\n", Some(later)));
        let (text, asked) = scrape(&ctx, &rx);
        assert!(text.starts_with("cached\n") && !asked, "{text}");
        assert!(text.contains("process_open_fds"), "{text}");

        // A summary's window has moved on since it was rendered.
        let (ctx, rx) = telemetry_with(page("cached\n", Some(Instant::now())));
        let (text, asked) = scrape(&ctx, &rx);
        assert!(text.starts_with("loop\n") && asked, "{text}");

        // A fact waits for the loop: the loop answers, after it.
        let (ctx, rx) = telemetry_with(page("cached\n", None));
        ctx.pages.status.set(Arc::new(b"{}".to_vec()));
        assert!(cached(&ctx, &ctx.pages.status).is_some());
        ctx.tx.send(Msg::OrphansReaped).unwrap();
        assert!(cached(&ctx, &ctx.pages.status).is_none());
        let (text, asked) = scrape(&ctx, &rx);
        assert!(text.starts_with("loop\n") && asked, "{text}");
        // Once it is taken (the loop drops the pages before applying it).
        let (text, asked) = scrape(&ctx, &rx);
        assert!(text.starts_with("cached\n") && !asked, "{text}");
    }

    #[test]
    fn refusals_become_their_status_with_an_error_body() {
        for (kind, code) in [
            (RefusalKind::Invalid, 400),
            (RefusalKind::BadConfig, 422),
            (RefusalKind::ShuttingDown, 503),
            (RefusalKind::Unavailable, 503),
        ] {
            let r = respond(Err(Refusal::new(kind, "why")));
            assert_eq!(r.status, code);
            assert_eq!(r.body.as_bytes(), Some(&br#"{"error":"why"}"#[..]));
        }
        let r = respond(Ok(Out::Answer(Answer::Updated(true))));
        assert_eq!(
            r.body.as_bytes().map(<[u8]>::len),
            Some(21),
            "the seed's Content-Length: 21"
        );
        let done = respond(Ok(Out::Answer(Answer::Done)));
        assert_eq!(done.body.as_bytes(), Some(&b""[..]));
    }
}
