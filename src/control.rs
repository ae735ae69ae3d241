//! The control plane on the unix socket (SPEC §4): socket hygiene (stale
//! file replaced, live one refused, mode 0600), the route table, and request
//! validation. Bodies are parsed and checked here, on the server's threads;
//! only the result goes to the event loop, which answers on a one-shot
//! channel. `/v3/ping` never touches the loop.

use std::borrow::Cow;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use serde_json::{Map, Value};

use crate::app::{ControlReq, Msg, Reply};
use crate::config;
use crate::http::server::{self, Limits, Request, Response, ServerHandle};
use crate::metrics::RequestCounter;

/// How long a request waits for the event loop before giving up.
const LOOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Bind the control socket: refuse if another process answers on it,
/// replace a stale file, and make it owner-only before serving.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "cannot listen on control socket {}: another process is already listening there",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale control socket {}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on control socket {}: {e}", path.display()))?;
    // umask is process-wide and other threads may be spawning: chmod after bind instead.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        format!(
            "cannot set the mode of control socket {}: {e}",
            path.display()
        )
    })?;
    Ok(listener)
}

/// A running control server; dropping it stops it and removes the socket file.
pub struct Control {
    pub path: PathBuf,
    handle: Option<ServerHandle>,
}

impl Control {
    /// `requests` counts every answer by (status, route); the loop reads it
    /// when it renders `/metrics`. A counter bumped under an uncontended
    /// lock costs the request nothing, where a message would wake the loop
    /// for every request.
    pub fn start(
        path: &Path,
        config_path: &Path,
        tx: Sender<Msg>,
        requests: Arc<Mutex<RequestCounter>>,
    ) -> Result<Control, String> {
        let listener = bind(path)?;
        let ctx = Ctx {
            tx,
            config_path: config_path.to_path_buf(),
        };
        let handler = Arc::new(move |req: &Request| {
            let (label, resp) = ctx.handle(req);
            requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .inc(resp.status, label);
            resp
        });
        let handle = server::serve(listener, handler, Limits::default())
            .map_err(|e| format!("cannot serve control socket {}: {e}", path.display()))?;
        Ok(Control {
            path: path.to_path_buf(),
            handle: Some(handle),
        })
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // The server stops when its handle drops, after this body runs:
        // stop it first so no request is accepted on a path being removed.
        if let Some(h) = self.handle.take() {
            h.stop();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Ctx {
    tx: Sender<Msg>,
    config_path: PathBuf,
}

/// One row per endpoint: path, allowed methods.
const ROUTES: &[(&str, &str)] = &[
    ("/v3/ping", "GET"),
    ("/v3/env", "POST"),
    ("/v3/environ", "POST"),
    ("/v3/metric", "POST"),
    ("/v3/reload", "POST"),
    ("/v3/maintenance/enable", "POST"),
    ("/v3/maintenance/disable", "POST"),
    ("/v3/status", "GET"),
];

impl Ctx {
    /// The response, and the path it is counted under: a route, or
    /// `other` so that unknown paths cannot grow the metric without bound.
    fn handle(&self, req: &Request) -> (&'static str, Response) {
        match route(ROUTES, &req.method, &route_path(req)) {
            Ok(name) => (name, self.dispatch(req, name)),
            Err((name, resp)) => (name, resp),
        }
    }

    fn dispatch(&self, req: &Request, path: &'static str) -> Response {
        match path {
            "/v3/ping" => Response::text(200, "ok"),
            "/v3/env" | "/v3/environ" => match parse_env(&req.body) {
                Ok(pairs) => self.ask(ControlReq::PutEnv(pairs)),
                Err(e) => Response::error(400, &e),
            },
            "/v3/metric" => match parse_metrics(&req.body) {
                Ok(pairs) => self.ask(ControlReq::PutMetric(pairs)),
                Err(e) => Response::error(400, &e),
            },
            "/v3/reload" => self.reload(),
            "/v3/maintenance/enable" => self.maintenance(true),
            "/v3/maintenance/disable" => self.maintenance(false),
            "/v3/status" => self.ask(ControlReq::Status),
            _ => Response::error(404, &format!("no such endpoint: {path}")),
        }
    }

    /// Send a request to the event loop and turn its answer into a response.
    fn ask(&self, req: ControlReq) -> Response {
        match self.call(req) {
            Ok(Value::Null) => Response::empty(200),
            Ok(v) => Response::json(200, &v),
            Err((status, msg)) => Response::error(status, &msg),
        }
    }

    fn call(&self, req: ControlReq) -> Reply {
        ask_loop(&self.tx, req)
    }

    /// Pretty-printed as in the seed document's example (`Content-Length: 21`).
    fn maintenance(&self, on: bool) -> Response {
        match self.call(ControlReq::Maintenance(on)) {
            Ok(v) => Response::json_bytes(200, serde_json::to_vec_pretty(&v).unwrap_or_default()),
            Err((status, msg)) => Response::error(status, &msg),
        }
    }

    /// Validate the new config here, off the event loop; the loop only applies it.
    fn reload(&self) -> Response {
        let env = match self.call(ControlReq::Environment) {
            Ok(Value::Object(m)) => m
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
                .collect(),
            Ok(_) => config::environment(),
            Err((status, msg)) => return Response::error(status, &msg),
        };
        match config::load(&self.config_path, &env) {
            Ok((cfg, warnings)) => {
                for w in &warnings {
                    crate::log::warn(&w.0);
                }
                self.ask(ControlReq::Reload(Box::new(cfg)))
            }
            Err(e) => Response::error(422, &e.to_string()),
        }
    }
}

/// Find the route for `path`: its name, or the 404/405 (with `Allow`) to
/// send and the name to count it under (`other` for an unknown path, so
/// that clients cannot grow the metric without bound).
pub fn route(
    routes: &[(&'static str, &'static str)],
    method: &str,
    path: &str,
) -> Result<&'static str, (&'static str, Response)> {
    let Some((name, allowed)) = routes.iter().find(|(p, _)| *p == path) else {
        return Err((
            "other",
            Response::error(404, &format!("no such endpoint: {path}")),
        ));
    };
    let method_ok = method == *allowed || (method == "HEAD" && *allowed == "GET");
    if !method_ok {
        let allow = if *allowed == "GET" {
            "GET, HEAD"
        } else {
            allowed
        };
        return Err((
            name,
            Response::error(405, &format!("method {method} not allowed on {name}"))
                .with_header("Allow", allow),
        ));
    }
    Ok(name)
}

/// Send a request to the event loop and wait for its answer (bounded).
pub fn ask_loop(tx: &Sender<Msg>, req: ControlReq) -> Reply {
    ask_loop_meanwhile(tx, req, || {})
}

/// `ask_loop`, doing `meanwhile` on this thread while the loop works.
pub fn ask_loop_meanwhile(tx: &Sender<Msg>, req: ControlReq, meanwhile: impl FnOnce()) -> Reply {
    let (reply_tx, reply_rx) = bounded(1);
    if tx.send(Msg::Control(req, reply_tx)).is_err() {
        return Err((503, "containerpilot is shutting down".into()));
    }
    meanwhile();
    reply_rx
        .recv_timeout(LOOP_TIMEOUT)
        .unwrap_or_else(|_| Err((503, "containerpilot did not answer in time".into())))
}

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
}
