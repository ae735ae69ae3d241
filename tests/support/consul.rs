//! A Consul agent test double: the part of Consul's documented agent and
//! health HTTP API that containerpilot uses, served on 127.0.0.1 (an
//! ephemeral port) by std only, with serde_json for bodies. It is the one
//! mock of the project and shares no code with `src/` (the crate's unit
//! tests include this file by path; the integration tests use it as
//! `support::consul`).
//!
//! Endpoints (answers and error texts as Consul's agent gives them):
//! - `PUT /v1/agent/service/register`: JSON body, keys matched
//!   case-insensitively as Go's decoder does; `Check`/`Checks` become
//!   checks `service:ID` (one) or `service:ID:N` (several), status
//!   `critical` unless given. 400 for a missing name or a bad check.
//! - `PUT /v1/agent/service/deregister/:id`: 404 `Unknown service ID ...`.
//! - `PUT /v1/agent/check/update/:check_id` (`{"Status","Output"}`) and
//!   `PUT /v1/agent/check/{pass,warn,fail}/:check_id?note=`: 404 `Unknown
//!   check ID "..."` (or, in old-agent mode, 500 `CheckID "..." does not
//!   have associated TTL`), 500 for a check without TTL.
//! - `GET /v1/agent/services`, `GET /v1/agent/checks`.
//! - `GET /v1/health/service/:name?passing&tag=&dc=`: instances set by the
//!   test (`set_instances`) plus services registered through the agent
//!   (datacenter `dc1`). An unknown datacenter is a 500.
//!
//! TTLs run: a check not updated within its TTL reads as critical ("TTL
//! expired"), and `DeregisterCriticalServiceAfter` removes its service.
//!
//! Knobs: `restart` (forget every registration), `set_down` (read each
//! request, then close without answering), `set_hang` (read each request
//! and never answer), `set_error` (answer every request with that status),
//! `old_agent_mode`, `require_token`. Every request is recorded
//! (`requests`); wait for conditions with `wait_for`, never by sleeping.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// The agent's own node, where services registered through it live.
pub const NODE: &str = "fake-node";
pub const NODE_ADDRESS: &str = "127.0.0.1";
pub const DATACENTER: &str = "dc1";
/// Consul keeps at most this much of a check's output.
const CHECK_BUF_SIZE: usize = 4 * 1024;

/// One request as received. `path` is as sent (not percent-decoded) and
/// without the query; `query` is the raw query string.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status answered; `None` when the request was dropped (down, hang).
    pub status: Option<u16>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Every value of query parameter `name`, percent-decoded.
    pub fn query_values(&self, name: &str) -> Vec<String> {
        query_pairs(&self.query)
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect()
    }

    /// `METHOD /path` or `METHOD /path?query`.
    pub fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// A service registered through the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub id: String,
    pub name: String,
    /// `""` when registered without one.
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub enable_tag_override: bool,
    /// The registration body as received.
    pub registration: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub service_id: String,
    pub service_name: String,
    /// `passing`, `warning` or `critical`.
    pub status: String,
    pub output: String,
    pub notes: String,
    /// `None`: not a TTL check.
    pub ttl: Option<Duration>,
    pub deregister_critical_after: Option<Duration>,
    /// Last registration or update (when the TTL restarted).
    pub updated: Instant,
    pub critical_since: Option<Instant>,
}

/// An instance of a service elsewhere in the cluster, set by the test.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
}

/// Everything the double knows. Tests read it through `state`, `wait_for`
/// and the shortcuts.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub services: BTreeMap<String, Service>,
    pub checks: BTreeMap<String, Check>,
    /// (service name, datacenter) → instances on other nodes.
    pub catalog: BTreeMap<(String, String), Vec<Instance>>,
    pub requests: Vec<Recorded>,
    pub down: bool,
    pub hang: bool,
    pub old_agent: bool,
    pub error: Option<u16>,
    pub token: Option<String>,
    index: u64,
}

impl State {
    /// Runs the TTLs up to `now`: expired checks turn critical, and
    /// services critical for longer than their DeregisterCriticalServiceAfter go.
    fn expire(&mut self, now: Instant) {
        let mut reap = vec![];
        for c in self.checks.values_mut() {
            if let Some(ttl) = c.ttl {
                if c.status != "critical" && now.duration_since(c.updated) > ttl {
                    c.status = "critical".into();
                    c.output = "TTL expired".into();
                    c.critical_since = Some(c.updated + ttl);
                }
            }
            if let (Some(after), Some(since)) = (c.deregister_critical_after, c.critical_since) {
                if now.duration_since(since) > after {
                    reap.push(c.service_id.clone());
                }
            }
        }
        for id in reap {
            self.remove_service(&id);
        }
    }

    fn remove_service(&mut self, id: &str) {
        self.services.remove(id);
        self.checks.retain(|_, c| c.service_id != id);
        self.index += 1;
    }

    /// The checks of service `id`.
    pub fn checks_of(&self, id: &str) -> Vec<&Check> {
        self.checks
            .values()
            .filter(|c| c.service_id == id)
            .collect()
    }

    /// Requests whose method and path (as sent) are these.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    /// Open connections by number, to shut them down when the double goes.
    conns: Mutex<BTreeMap<u64, TcpStream>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct FakeConsul {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FakeConsul {
    pub fn start() -> FakeConsul {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Consul agent");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(BTreeMap::new()),
        });
        let s = shared.clone();
        let accept = thread::spawn(move || {
            for (n, stream) in (0u64..).zip(listener.incoming()) {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(c) = stream.try_clone() {
                    s.conns
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(n, c);
                }
                let s = s.clone();
                thread::spawn(move || {
                    serve(&s, stream);
                    s.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
                });
            }
        });
        FakeConsul {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT`, as the `consul` config key takes it.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// A copy of the whole state, TTLs run up to now.
    pub fn state(&self) -> State {
        let mut st = self.shared.lock();
        st.expire(Instant::now());
        st.clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    pub fn services(&self) -> BTreeMap<String, Service> {
        self.state().services
    }

    pub fn checks(&self) -> BTreeMap<String, Check> {
        self.state().checks
    }

    /// Instances of `name` in datacenter `dc` on other nodes, all passing:
    /// `(address, port, tags)`. Replaces what was set before; an empty list
    /// still makes `dc` a known datacenter.
    pub fn set_instances(&self, name: &str, dc: &str, instances: Vec<(&str, u16, Vec<&str>)>) {
        let list = instances
            .into_iter()
            .map(|(a, p, t)| Instance {
                address: a.to_string(),
                port: p,
                tags: t.into_iter().map(String::from).collect(),
            })
            .collect();
        self.change(|st| {
            st.catalog.insert((name.to_string(), dc.to_string()), list);
        });
    }

    /// As an agent restart: every registration and check is forgotten.
    pub fn restart(&self) {
        self.change(|st| {
            st.services.clear();
            st.checks.clear();
        });
    }

    /// Down: each request is read and recorded, then the connection is
    /// closed without an answer.
    pub fn set_down(&self, down: bool) {
        self.change(|st| st.down = down);
    }

    /// Hang: each request is read and recorded and never answered (the
    /// connection stays open until the client gives up).
    pub fn set_hang(&self, hang: bool) {
        self.change(|st| st.hang = hang);
    }

    /// Answer every request with this status (as an agent without a leader).
    pub fn set_error(&self, status: Option<u16>) {
        self.change(|st| st.error = status);
    }

    /// Before Consul 1.x: an unknown check in an update is a 500 `CheckID
    /// "..." does not have associated TTL` rather than a 404.
    pub fn old_agent_mode(&self, old: bool) {
        self.change(|st| st.old_agent = old);
    }

    /// ACLs: requests without this token (`X-Consul-Token` or `?token=`)
    /// get 403.
    pub fn require_token(&self, token: Option<&str>) {
        self.change(|st| st.token = token.map(String::from));
    }

    /// Waits until `pred` holds (checked on every change, and every 10 ms
    /// for the TTLs), at most `timeout`. Returns whether it held.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            let now = Instant::now();
            st.expire(now);
            if pred(&st) {
                return true;
            }
            if now >= deadline {
                return false;
            }
            let slice = (deadline - now).min(Duration::from_millis(10));
            st = self
                .shared
                .changed
                .wait_timeout(st, slice)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// As `wait_for`, panicking with `what` and the request log on timeout.
    pub fn expect(&self, timeout: Duration, what: &str, pred: impl Fn(&State) -> bool) {
        if !self.wait_for(timeout, pred) {
            let st = self.state();
            let log: Vec<String> = st
                .requests
                .iter()
                .map(|r| format!("{} -> {:?} {}", r.line(), r.status, r.text()))
                .collect();
            panic!(
                "fake Consul: timed out after {timeout:?} waiting for {what}\nservices: {:?}\nchecks: {:?}\nrequests:\n  {}",
                st.services.keys().collect::<Vec<_>>(),
                st.checks.values().map(|c| (&c.id, &c.status, &c.output)).collect::<Vec<_>>(),
                log.join("\n  ")
            );
        }
    }

    fn change(&self, f: impl FnOnce(&mut State)) {
        let mut st = self.shared.lock();
        f(&mut st);
        st.index += 1;
        self.shared.changed.notify_all();
    }
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        let conns =
            std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for c in conns.into_values() {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

/// One connection: requests in turn (keep-alive) until the client closes.
fn serve(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let req = match read_request(&mut reader) {
            Ok(Some(r)) => r,
            _ => return,
        };
        let mut rec = Recorded {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            at: Instant::now(),
            status: None,
        };
        let (status, body) = {
            let mut st = shared.lock();
            if st.down || st.hang {
                let hang = st.hang;
                st.requests.push(rec);
                shared.changed.notify_all();
                drop(st);
                if hang {
                    // Hold the connection until the client gives up.
                    let mut sink = [0u8; 512];
                    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                }
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            st.expire(rec.at);
            let (status, body) = handle(&mut st, &req);
            rec.status = Some(status);
            st.requests.push(rec);
            shared.changed.notify_all();
            (status, body)
        };
        let index = shared.lock().index;
        let ctype = if body.starts_with('{') || body.starts_with('[') {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nX-Consul-Index: {index}\r\n\
             X-Consul-Knownleader: true\r\nX-Consul-Lastcontact: 0\r\n",
            reason(status),
            body.len()
        );
        if req.close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body.as_bytes());
        if writer.write_all(&out).and_then(|_| writer.flush()).is_err() || req.close {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// `Ok(None)` when the client closed between requests.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.trim_end().split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let length: usize = get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let connection = get("connection").unwrap_or_default().to_ascii_lowercase();
    let close = connection == "close" || (version == "HTTP/1.0" && connection != "keep-alive");
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body,
        close,
    }))
}

/// The agent's answer: (status, body).
fn handle(st: &mut State, req: &Request) -> (u16, String) {
    if let Some(status) = st.error {
        return (status, "rpc error making call: No cluster leader".into());
    }
    let params = query_pairs(&req.query);
    if let Some(token) = &st.token {
        let header = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-consul-token"))
            .map(|(_, v)| v.clone());
        let given = header.or_else(|| {
            params
                .iter()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.clone())
        });
        if given.as_deref() != Some(token) {
            return (403, "Permission denied".into());
        }
    }
    let path = percent_decode(&req.path);
    let m = req.method.as_str();
    let only = |allowed: &str, f: &mut dyn FnMut() -> (u16, String)| {
        if m == allowed {
            f()
        } else {
            (405, String::new())
        }
    };
    if path == "/v1/agent/service/register" {
        return only("PUT", &mut || register(st, &req.body));
    }
    if let Some(id) = path.strip_prefix("/v1/agent/service/deregister/") {
        return only("PUT", &mut || deregister(st, id));
    }
    if let Some(id) = path.strip_prefix("/v1/agent/check/update/") {
        return only("PUT", &mut || {
            let v: Value = match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => return (400, format!("Request decode failed: {e}")),
            };
            let field = |k: &str| {
                get_ci(&v, k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            update_check(st, id, &field("Status"), &field("Output"))
        });
    }
    for (verb, status) in [
        ("pass", "passing"),
        ("warn", "warning"),
        ("fail", "critical"),
    ] {
        if let Some(id) = path.strip_prefix(&format!("/v1/agent/check/{verb}/")) {
            let note = params
                .iter()
                .find(|(k, _)| k == "note")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            return only("PUT", &mut || update_check(st, id, status, &note));
        }
    }
    if path == "/v1/agent/services" {
        return only("GET", &mut || (200, agent_services(st).to_string()));
    }
    if path == "/v1/agent/checks" {
        return only("GET", &mut || (200, agent_checks(st).to_string()));
    }
    if let Some(name) = path.strip_prefix("/v1/health/service/") {
        return only("GET", &mut || health_service(st, name, &params));
    }
    (404, "404 page not found\n".into())
}

fn register(st: &mut State, body: &[u8]) -> (u16, String) {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return (400, "Request decode failed: not a JSON object".into()),
        Err(e) => return (400, format!("Request decode failed: {e}")),
    };
    let s = |k: &str| {
        get_ci(&v, k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = s("Name");
    if name.is_empty() {
        return (400, "Missing service name".into());
    }
    let id = Some(s("ID"))
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| name.clone());
    let address = s("Address");
    if address == "0.0.0.0" || address == "::" || address == "[::]" {
        return (400, "Invalid service address".into());
    }
    let port = match get_ci(&v, "Port").map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok())) {
        None => 0,
        Some(Some(p)) => p,
        Some(None) => return (400, "Request decode failed: invalid Port".into()),
    };
    let tags: Vec<String> = get_ci(&v, "Tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut defs: Vec<&Value> = get_ci(&v, "Check")
        .filter(|c| c.is_object())
        .into_iter()
        .collect();
    if let Some(list) = get_ci(&v, "Checks").and_then(Value::as_array) {
        defs.extend(list.iter());
    }
    let now = Instant::now();
    let mut checks = vec![];
    for (i, def) in defs.iter().enumerate() {
        let cs = |k: &str| {
            get_ci(def, k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let ttl = match optional_duration(&cs("TTL")) {
            Ok(d) => d,
            Err(e) => return e,
        };
        if ttl.is_none() && cs("Interval").is_empty() {
            return (
                400,
                "Must provide TTL or Script/DockerContainerID/HTTP/TCP and Interval".into(),
            );
        }
        let status = Some(cs("Status"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "critical".into());
        if !matches!(status.as_str(), "passing" | "warning" | "critical") {
            return (
                400,
                "Status for checks must 'passing', 'warning', 'critical'".into(),
            );
        }
        let after = match optional_duration(&cs("DeregisterCriticalServiceAfter")) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let check_id = Some(cs("CheckID"))
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| {
                if defs.len() == 1 {
                    format!("service:{id}")
                } else {
                    format!("service:{id}:{}", i + 1)
                }
            });
        checks.push(Check {
            id: check_id,
            name: Some(cs("Name"))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("Service '{name}' check")),
            service_id: id.clone(),
            service_name: name.clone(),
            critical_since: (status == "critical").then_some(now),
            status,
            output: String::new(),
            notes: cs("Notes"),
            ttl,
            deregister_critical_after: after,
            updated: now,
        });
    }
    st.checks.retain(|_, c| c.service_id != id);
    for c in checks {
        st.checks.insert(c.id.clone(), c);
    }
    st.services.insert(
        id.clone(),
        Service {
            id,
            name,
            address,
            port,
            tags,
            enable_tag_override: get_ci(&v, "EnableTagOverride")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            registration: v.clone(),
        },
    );
    st.index += 1;
    (200, String::new())
}

fn deregister(st: &mut State, id: &str) -> (u16, String) {
    if !st.services.contains_key(id) {
        return (404, format!("Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."));
    }
    st.remove_service(id);
    (200, String::new())
}

fn update_check(st: &mut State, id: &str, status: &str, output: &str) -> (u16, String) {
    if !matches!(status, "passing" | "warning" | "critical") {
        return (400, format!("Invalid check status: '{status}'"));
    }
    let old_agent = st.old_agent;
    let Some(check) = st.checks.get_mut(id) else {
        return if old_agent {
            (500, format!("CheckID {id:?} does not have associated TTL"))
        } else {
            (404, format!("Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."))
        };
    };
    if check.ttl.is_none() {
        return (500, format!("CheckID {id:?} does not have associated TTL"));
    }
    let now = Instant::now();
    check.output = if output.len() > CHECK_BUF_SIZE {
        let mut cut = CHECK_BUF_SIZE;
        while !output.is_char_boundary(cut) {
            cut -= 1;
        }
        format!(
            "{} ... (captured {cut} of {} bytes)",
            &output[..cut],
            output.len()
        )
    } else {
        output.to_string()
    };
    if status == "critical" {
        if check.status != "critical" {
            check.critical_since = Some(now);
        }
    } else {
        check.critical_since = None;
    }
    check.status = status.to_string();
    check.updated = now;
    st.index += 1;
    (200, String::new())
}

fn agent_services(st: &State) -> Value {
    let mut out = Map::new();
    for s in st.services.values() {
        out.insert(
            s.id.clone(),
            json!({
                "ID": s.id, "Service": s.name, "Tags": s.tags, "Meta": {}, "Port": s.port,
                "Address": s.address, "EnableTagOverride": s.enable_tag_override,
                "Weights": {"Passing": 1, "Warning": 1}, "Datacenter": DATACENTER,
            }),
        );
    }
    Value::Object(out)
}

fn check_json(st: &State, c: &Check) -> Value {
    let tags = st
        .services
        .get(&c.service_id)
        .map(|s| s.tags.clone())
        .unwrap_or_default();
    json!({
        "Node": NODE, "CheckID": c.id, "Name": c.name, "Status": c.status, "Notes": c.notes,
        "Output": c.output, "ServiceID": c.service_id, "ServiceName": c.service_name,
        "ServiceTags": tags, "Type": if c.ttl.is_some() { "ttl" } else { "" },
    })
}

fn agent_checks(st: &State) -> Value {
    let mut out = Map::new();
    for c in st.checks.values() {
        out.insert(c.id.clone(), check_json(st, c));
    }
    Value::Object(out)
}

fn serf_check(node: &str) -> Value {
    json!({
        "Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing",
        "Notes": "", "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": "",
        "ServiceTags": [], "Type": "",
    })
}

fn health_service(st: &State, name: &str, params: &[(String, String)]) -> (u16, String) {
    let value = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
    let passing = match value("passing") {
        None => false,
        Some(v) => !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "f"),
    };
    let tags: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.as_str())
        .collect();
    let dc = value("dc").filter(|d| !d.is_empty()).unwrap_or(DATACENTER);
    if dc != DATACENTER && !st.catalog.keys().any(|(_, d)| d == dc) {
        return (500, "No path to datacenter".into());
    }
    let tagged = |have: &[String]| tags.iter().all(|t| have.iter().any(|h| h == t));
    let mut out = vec![];
    if let Some(list) = st.catalog.get(&(name.to_string(), dc.to_string())) {
        for (i, inst) in list.iter().enumerate() {
            if !tagged(&inst.tags) {
                continue;
            }
            let node = format!("node-{}", i + 1);
            out.push(json!({
                "Node": {"ID": "", "Node": node, "Address": inst.address, "Datacenter": dc,
                         "TaggedAddresses": {"lan": inst.address, "wan": inst.address}, "Meta": {}},
                "Service": {"ID": format!("{name}-{}", i + 1), "Service": name, "Tags": inst.tags,
                            "Address": inst.address, "Meta": {}, "Port": inst.port,
                            "EnableTagOverride": false},
                "Checks": [serf_check(&node)],
            }));
        }
    }
    if dc == DATACENTER {
        for s in st.services.values().filter(|s| s.name == name) {
            let checks = st.checks_of(&s.id);
            if !tagged(&s.tags) || (passing && checks.iter().any(|c| c.status != "passing")) {
                continue;
            }
            let mut cj = vec![serf_check(NODE)];
            cj.extend(checks.iter().map(|c| check_json(st, c)));
            out.push(json!({
                "Node": {"ID": "", "Node": NODE, "Address": NODE_ADDRESS, "Datacenter": DATACENTER,
                         "TaggedAddresses": {"lan": NODE_ADDRESS, "wan": NODE_ADDRESS}, "Meta": {}},
                "Service": {"ID": s.id, "Service": s.name, "Tags": s.tags, "Address": s.address,
                            "Meta": {}, "Port": s.port, "EnableTagOverride": s.enable_tag_override},
                "Checks": cj,
            }));
        }
    }
    (200, Value::Array(out).to_string())
}

/// Go's JSON decoder matches keys case-insensitively; so does Consul.
fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An optional duration field of a check definition: `None` when empty,
/// Consul's 400 when it does not parse.
fn optional_duration(t: &str) -> Result<Option<Duration>, (u16, String)> {
    if t.is_empty() {
        return Ok(None);
    }
    parse_go_duration(t).map(Some).ok_or_else(|| {
        (
            400,
            format!("Request decode failed: time: invalid duration \"{t}\""),
        )
    })
}

/// Go's `time.ParseDuration`, enough for TTLs: `10s`, `1.5s`, `1m30s`, `500ms`.
fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * scale;
    }
    Some(Duration::from_secs_f64(total))
}
