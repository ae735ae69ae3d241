//! The client subcommands (SPEC §1): `-ping`, `-putenv`, `-putmetric`,
//! `-reload`, `-maintenance`. Each sends one request to the control socket of
//! a running containerpilot, so shell hooks need no HTTP client of their own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cli::ClientCmd;
use crate::config::{self, tree::Node, DEFAULT_SOCKET};
use crate::http::client::unix_request;

const TIMEOUT: Duration = Duration::from_secs(30);

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

/// Run one subcommand; `Ok` carries what to print on stdout.
pub fn run(config_path: Option<&Path>, cmd: &ClientCmd) -> Result<String, String> {
    let socket = socket_path(config_path)?;
    let (path, body) = match cmd {
        ClientCmd::Ping => ("/v3/ping", None),
        ClientCmd::Reload => ("/v3/reload", None),
        ClientCmd::Maintenance(true) => ("/v3/maintenance/enable", None),
        ClientCmd::Maintenance(false) => ("/v3/maintenance/disable", None),
        ClientCmd::PutEnv(pairs) => ("/v3/env", Some(env_body(pairs))),
        ClientCmd::PutMetric(pairs) => ("/v3/metric", Some(metric_body(pairs))),
    };
    let method = if matches!(cmd, ClientCmd::Ping) {
        "GET"
    } else {
        "POST"
    };
    let body = body.map(|b| b.to_string());
    let resp = unix_request(
        &socket,
        method,
        path,
        body.as_deref().map(str::as_bytes),
        TIMEOUT,
    )
    .map_err(|e| {
        format!(
            "cannot reach the control socket at {}: {e}",
            socket.display()
        )
    })?;
    let text = String::from_utf8_lossy(&resp.body).into_owned();
    if !(200..300).contains(&resp.status) {
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(text);
        return Err(format!("{path} failed with {}: {msg}", resp.status));
    }
    Ok(match cmd {
        ClientCmd::Ping => "ok\n".to_string(),
        ClientCmd::Maintenance(_) => format!("{}\n", text.trim_end()),
        _ => String::new(),
    })
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

    #[test]
    fn bodies() {
        let b = env_body(&["A=1=2".into(), "B".into(), "C=".into()]);
        assert_eq!(b.to_string(), r#"{"A":"1=2","B":"","C":""}"#);
        let b = metric_body(&["x=2".into(), "y=1.5".into(), "z=abc".into()]);
        assert_eq!(b.to_string(), r#"{"x":2.0,"y":1.5,"z":"abc"}"#);
    }
}
