//! The Consul agent HTTP API, one function per endpoint we use, at the
//! endpoint `config::agent` resolves. Each call is one request with a timeout, on a connection
//! the client keeps open between calls (plain or TLS); retrying is the
//! caller's business.
//!
//! Bodies and paths follow Consul's agent API as the Go client that 3.x used
//! sends them: `PUT /v1/agent/service/register` (no `CheckID`: Consul names
//! the one check `service:ID`), `PUT /v1/agent/check/update/service:ID` with
//! `{"Status","Output"}`, `PUT /v1/agent/service/deregister/ID`, and
//! `GET /v1/health/service/NAME?passing=1[&tag=T][&dc=D]`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Instance, Registration};
use crate::config::agent::resolve;
use crate::config::duration::go_string;
use crate::config::ConsulConfig;
use crate::http::tls;
use crate::http::{ClientResponse, HttpError, KeepAlive};

/// Bounds every call: connect, and each read and write.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A TTL check's status as Consul spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Passing,
    Warning,
    Critical,
}

impl CheckStatus {
    pub fn parse(s: &str) -> Option<CheckStatus> {
        match s {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }
}

/// Why a call did not succeed.
#[derive(Debug)]
pub enum ConsulError {
    /// No answer: the connection failed, was dropped, or timed out.
    Unreachable(HttpError),
    /// The agent does not know the check or service: it restarted, or
    /// reaped a service critical for too long. Consul answers 404 `Unknown
    /// check ID "..."` today and 500 `CheckID "..." does not have associated
    /// TTL` in older agents.
    Unknown { status: u16, body: String },
    /// Any other error status.
    Status { status: u16, body: String },
    /// A 2xx answer we cannot read.
    Malformed(String),
}

impl ConsulError {
    /// Worth retrying later (the agent may come back); a 4xx will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            ConsulError::Unreachable(_) | ConsulError::Malformed(_) => true,
            ConsulError::Status { status, .. } => *status >= 500 || *status == 429,
            ConsulError::Unknown { .. } => false,
        }
    }

    /// The agent may have acted on the request although we got no answer.
    /// A TLS failure is a refusal: the agent never read the request.
    pub fn maybe_applied(&self) -> bool {
        matches!(self, ConsulError::Unreachable(e)
            if !matches!(e, HttpError::Connect { .. } | HttpError::Tls { .. }))
    }
}

impl fmt::Display for ConsulError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsulError::Unreachable(e) => write!(f, "{e}"),
            ConsulError::Unknown { status, body } | ConsulError::Status { status, body } => {
                let body = body.trim();
                if body.is_empty() {
                    write!(f, "the Consul agent answered {status}")
                } else {
                    write!(f, "the Consul agent answered {status}: {body}")
                }
            }
            ConsulError::Malformed(why) => write!(f, "cannot understand the Consul agent: {why}"),
        }
    }
}

/// A client for one Consul agent. It keeps one connection open between
/// calls; a clone starts without one (each thread owns its clone: the
/// agent worker and the watch poller), sharing the TLS configuration and
/// its session cache.
#[derive(Debug)]
pub struct Client {
    /// `host:port`.
    addr: String,
    token: Option<String>,
    timeout: Duration,
    tls: Option<tls::Connector>,
    conn: Mutex<KeepAlive>,
}

impl Clone for Client {
    fn clone(&self) -> Client {
        Client {
            addr: self.addr.clone(),
            token: self.token.clone(),
            timeout: self.timeout,
            tls: self.tls.clone(),
            conn: Mutex::new(KeepAlive::new(&self.addr, self.tls.clone())),
        }
    }
}

impl Client {
    /// A client for the configured agent, with the TLS settings the
    /// process environment adds (see [`resolve`]).
    pub fn new(cfg: &ConsulConfig) -> Result<Client, String> {
        Client::with_env(cfg, &crate::config::environment())
    }

    /// As `new`, with the environment given.
    pub fn with_env(cfg: &ConsulConfig, env: &HashMap<String, String>) -> Result<Client, String> {
        let (endpoint, _) = resolve(cfg, env)?;
        let tls = endpoint.tls.as_ref().map(tls::Connector::new).transpose()?;
        Ok(Client {
            conn: Mutex::new(KeepAlive::new(&endpoint.addr, tls.clone())),
            addr: endpoint.addr,
            token: cfg.token.clone().filter(|t| !t.is_empty()),
            timeout: DEFAULT_TIMEOUT,
            tls,
        })
    }

    #[cfg(test)]
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Registers (or re-registers: Consul replaces it) the service with its
    /// TTL check in `status`.
    pub fn register(&self, reg: &Registration, status: CheckStatus) -> Result<(), ConsulError> {
        let body = register_body(reg, status).to_string();
        let r = self.call(
            "PUT",
            "/v1/agent/service/register",
            Some(body.as_bytes()),
            self.timeout,
        )?;
        expect_ok(r)
    }

    /// Sets the TTL check of service `id` (`service:ID`) and resets its TTL.
    pub fn update_check(
        &self,
        id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<(), ConsulError> {
        let path = format!("/v1/agent/check/update/{}", encode_path(&check_id(id)));
        let body = json!({"Status": status.as_str(), "Output": output}).to_string();
        let r = self.call("PUT", &path, Some(body.as_bytes()), self.timeout)?;
        if r.status == 404 || (r.status == 500 && r.text().contains("does not have associated TTL"))
        {
            return Err(ConsulError::Unknown {
                status: r.status,
                body: r.text().into_owned(),
            });
        }
        expect_ok(r)
    }

    /// Removes service `id` and its checks. A service the agent does not
    /// know is already gone: that is success.
    pub fn deregister(&self, id: &str) -> Result<(), ConsulError> {
        self.deregister_within(id, self.timeout)
    }

    /// As `deregister`, with its own timeout (bounded shutdown).
    pub fn deregister_within(&self, id: &str, timeout: Duration) -> Result<(), ConsulError> {
        let path = format!("/v1/agent/service/deregister/{}", encode_path(id));
        let r = self.call("PUT", &path, None, timeout)?;
        if r.status == 404 {
            return Ok(());
        }
        expect_ok(r)
    }

    /// The passing instances of service `name`: `Service.Address`, or the
    /// node's address when the service has none (Consul's convention), and
    /// `Service.Port`. `tag` and `dc` are sent only when given: an empty
    /// `tag=` matches nothing.
    pub fn health_service(
        &self,
        name: &str,
        tag: Option<&str>,
        dc: Option<&str>,
    ) -> Result<BTreeSet<Instance>, ConsulError> {
        let r = self.call("GET", &health_path(name, tag, dc), None, self.timeout)?;
        if !(200..300).contains(&r.status) {
            return Err(status_error(r));
        }
        parse_health(&r.body).map_err(ConsulError::Malformed)
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ClientResponse, ConsulError> {
        let mut headers = vec![];
        if let Some(token) = &self.token {
            headers.push(("X-Consul-Token", token.as_str()));
        }
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .request(method, path, &headers, body, timeout)
            .map_err(ConsulError::Unreachable)
    }
}

/// The ID Consul gives the one check registered with service `id`.
pub fn check_id(id: &str) -> String {
    format!("service:{id}")
}

/// The body of `PUT /v1/agent/service/register`, with Go's `omitempty`
/// for the optional fields as 3.x sent it.
pub fn register_body(reg: &Registration, status: CheckStatus) -> Value {
    let mut check = Map::new();
    check.insert("TTL".into(), go_string(reg.ttl).into());
    check.insert("Status".into(), status.as_str().into());
    check.insert(
        "Notes".into(),
        format!("TTL for {} set by containerpilot", reg.name).into(),
    );
    if let Some(after) = reg.deregister_critical_service_after {
        check.insert(
            "DeregisterCriticalServiceAfter".into(),
            go_string(after).into(),
        );
    }
    let mut body = Map::new();
    body.insert("ID".into(), reg.id.clone().into());
    body.insert("Name".into(), reg.name.clone().into());
    body.insert("Tags".into(), reg.tags.clone().into());
    body.insert("Port".into(), reg.port.into());
    if let Some(address) = &reg.address {
        body.insert("Address".into(), address.clone().into());
    }
    body.insert("EnableTagOverride".into(), reg.enable_tag_override.into());
    body.insert("Check".into(), Value::Object(check));
    Value::Object(body)
}

pub fn health_path(name: &str, tag: Option<&str>, dc: Option<&str>) -> String {
    let mut path = format!("/v1/health/service/{}?passing=1", encode_path(name));
    if let Some(tag) = tag {
        path.push_str("&tag=");
        path.push_str(&encode_query(tag));
    }
    if let Some(dc) = dc {
        path.push_str("&dc=");
        path.push_str(&encode_query(dc));
    }
    path
}

fn parse_health(body: &[u8]) -> Result<BTreeSet<Instance>, String> {
    let entries: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| format!("health query answer is not a JSON array: {e}"))?;
    let mut out = BTreeSet::new();
    for entry in &entries {
        let service = entry
            .get("Service")
            .ok_or("a health entry has no Service")?;
        let port = service
            .get("Port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("a health entry has no valid Service.Port")?;
        let address = match service.get("Address").and_then(Value::as_str) {
            Some(a) if !a.is_empty() => a,
            _ => entry
                .get("Node")
                .and_then(|n| n.get("Address"))
                .and_then(Value::as_str)
                .unwrap_or(""),
        };
        out.insert((address.to_string(), port));
    }
    Ok(out)
}

fn expect_ok(r: ClientResponse) -> Result<(), ConsulError> {
    if (200..300).contains(&r.status) {
        Ok(())
    } else {
        Err(status_error(r))
    }
}

fn status_error(r: ClientResponse) -> ConsulError {
    let mut body = r.text().into_owned();
    body.truncate(512);
    ConsulError::Status {
        status: r.status,
        body,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn percent_encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One path segment: unreserved characters and `:@` as they are.
fn encode_path(s: &str) -> String {
    percent_encode(s, |b| is_unreserved(b) || matches!(b, b':' | b'@'))
}

fn encode_query(s: &str) -> String {
    percent_encode(s, is_unreserved)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::discovery::double::FakeConsul;

    /// A client of the test double; shared by the agent and watch tests.
    pub(crate) fn client(fake: &FakeConsul, token: Option<&str>) -> Client {
        let mut cfg = http_cfg(&fake.addr());
        cfg.token = token.map(String::from);
        Client::with_env(&cfg, &HashMap::new()).unwrap()
    }

    /// `consul: "ADDR"` as the validator makes it (no scheme written).
    fn http_cfg(addr: &str) -> ConsulConfig {
        ConsulConfig {
            address: addr.into(),
            scheme: "http".into(),
            scheme_explicit: false,
            token: None,
            tls: None,
        }
    }

    fn reg(name: &str) -> Registration {
        Registration {
            id: format!("{name}-host"),
            name: name.into(),
            address: Some("10.0.0.5".into()),
            port: 8080,
            tags: vec!["a".into(), "b".into()],
            ttl: Duration::from_secs(10),
            initial_status: None,
            enable_tag_override: false,
            deregister_critical_service_after: None,
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn https_is_refused_without_the_tls_feature() {
        let mut cfg = http_cfg("consul:8501");
        cfg.scheme = "https".into();
        let e = Client::with_env(&cfg, &HashMap::new()).unwrap_err();
        assert!(
            e.starts_with("cannot talk to the Consul agent at https://consul:8501"),
            "{e}"
        );
        assert!(e.contains("no TLS support"), "{e}");
        assert_eq!(
            crate::config::agent::check(&cfg, &HashMap::new()).unwrap_err(),
            e
        );
    }

    #[cfg(feature = "tls")]
    mod resolving {
        use super::*;
        use crate::config::agent::check;
        use crate::config::TlsConfig;
        use crate::http::tls::{Named, Settings, SystemRoots, Verify};

        fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }

        fn resolved(cfg: &ConsulConfig, pairs: &[(&str, &str)]) -> (Option<Settings>, Vec<String>) {
            let (endpoint, warnings) = resolve(cfg, &env(pairs)).unwrap();
            assert_eq!(endpoint.addr, cfg.address);
            (endpoint.tls, warnings)
        }

        fn https(addr: &str) -> ConsulConfig {
            ConsulConfig {
                scheme: "https".into(),
                scheme_explicit: true,
                ..http_cfg(addr)
            }
        }

        fn named(value: &str, from: &'static str) -> Option<Named> {
            Some(Named {
                value: value.into(),
                from,
            })
        }

        #[test]
        fn consul_http_ssl_upgrades_only_an_address_without_a_scheme() {
            let ssl = [("CONSUL_HTTP_SSL", "true")];
            assert!(resolved(&http_cfg("c:1"), &ssl).0.is_some());
            assert!(resolved(&http_cfg("c:1"), &[("CONSUL_HTTP_SSL", "1")])
                .0
                .is_some());
            assert!(resolved(&http_cfg("c:1"), &[("CONSUL_HTTP_SSL", "false")])
                .0
                .is_none());
            assert!(resolved(&http_cfg("c:1"), &[]).0.is_none());
            // `http://c:1` or `scheme: "http"`.
            let explicit = ConsulConfig {
                scheme_explicit: true,
                ..http_cfg("c:1")
            };
            assert!(resolved(&explicit, &ssl).0.is_none());
            let (tls, warnings) = resolved(&http_cfg("c:1"), &[("CONSUL_HTTP_SSL", "yes")]);
            assert!(tls.is_none());
            assert_eq!(
                warnings,
                ["CONSUL_HTTP_SSL: 'yes' is neither true nor false (as Go reads them); ignored"]
            );
        }

        #[test]
        fn without_ca_or_verify_the_agent_is_not_verified_and_a_warning_says_so() {
            let (tls, warnings) = resolved(&https("consul.example:8501"), &[]);
            let tls = tls.expect("tls");
            assert_eq!(tls.verify, Verify::Off);
            assert_eq!(
                tls.server_name,
                named("consul.example", "consul address").unwrap()
            );
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].contains("https://consul.example:8501 is encrypted but the agent's certificate is not verified"),
                "{}",
                warnings[0]
            );
            assert!(
                warnings[0].contains("CONSUL_CACERT or tls.cafile"),
                "{}",
                warnings[0]
            );
        }

        #[test]
        fn a_ca_or_verify_turns_verification_on_and_verify_false_wins() {
            let cfg = https("10.0.0.1:8501");
            let (tls, w) = resolved(&cfg, &[("CONSUL_CACERT", "/ca.pem")]);
            let tls = tls.expect("tls");
            assert_eq!((tls.verify, w.len()), (Verify::Ca, 0));
            assert_eq!(tls.ca_file, named("/ca.pem", "CONSUL_CACERT"));
            let (tls, _) = resolved(&cfg, &[("CONSUL_CAPATH", "/cas")]);
            assert_eq!(tls.expect("tls").verify, Verify::Ca);
            let (tls, w) = resolved(&cfg, &[("CONSUL_HTTP_SSL_VERIFY", "true")]);
            assert_eq!(
                (tls.expect("tls").verify, w.len()),
                (
                    Verify::System {
                        because: "CONSUL_HTTP_SSL_VERIFY"
                    },
                    0
                )
            );
            // An explicit false wins over a CA, and says nothing.
            let (tls, w) = resolved(
                &cfg,
                &[
                    ("CONSUL_CACERT", "/ca.pem"),
                    ("CONSUL_HTTP_SSL_VERIFY", "0"),
                ],
            );
            assert_eq!((tls.expect("tls").verify, w.len()), (Verify::Off, 0));
            let mut block = cfg.clone();
            block.tls = Some(TlsConfig {
                cafile: Some("/ca.pem".into()),
                verify: Some(false),
                ..TlsConfig::default()
            });
            assert_eq!(resolved(&block, &[]).0.expect("tls").verify, Verify::Off);
            block.tls = Some(TlsConfig {
                verify: Some(true),
                ..TlsConfig::default()
            });
            assert_eq!(
                resolved(&block, &[]).0.expect("tls").verify,
                Verify::System {
                    because: "consul.tls.verify"
                }
            );
        }

        #[test]
        fn the_tls_block_wins_over_the_environment_key_by_key() {
            let mut cfg = https("[fd00::1]:8501");
            cfg.tls = Some(TlsConfig {
                cafile: Some("/block/ca.pem".into()),
                clientcert: Some("/block/c.pem".into()),
                servername: Some(String::new()),
                verify: Some(true),
                ..TlsConfig::default()
            });
            let vars = [
                ("CONSUL_CACERT", "/env/ca.pem"),
                ("CONSUL_CAPATH", "/env/cas"),
                ("CONSUL_CLIENT_CERT", "/env/c.pem"),
                ("CONSUL_CLIENT_KEY", "/env/k.pem"),
                ("CONSUL_TLS_SERVER_NAME", "consul.env"),
                ("CONSUL_HTTP_SSL_VERIFY", "false"),
                ("SSL_CERT_FILE", "/etc/bundle.pem"),
            ];
            let (tls, _) = resolved(&cfg, &vars);
            assert_eq!(
                tls.expect("tls"),
                Settings {
                    server_name: named("consul.env", "CONSUL_TLS_SERVER_NAME").unwrap(),
                    ca_file: named("/block/ca.pem", "consul.tls.cafile"),
                    ca_path: named("/env/cas", "CONSUL_CAPATH"),
                    client_cert: named("/block/c.pem", "consul.tls.clientcert"),
                    client_key: named("/env/k.pem", "CONSUL_CLIENT_KEY"),
                    verify: Verify::Ca,
                    system_roots: SystemRoots {
                        file: Some("/etc/bundle.pem".into()),
                        dirs: None,
                    },
                }
            );
            // The address's host, without brackets, when nothing names the server.
            let (tls, _) = resolved(&https("[fd00::1]:8501"), &[]);
            assert_eq!(tls.expect("tls").server_name.value, "fd00::1");
            // The token goes the other way (the validator's business); the
            // tls block over http is unused and says so.
            let mut plain = http_cfg("c:1");
            plain.tls = Some(TlsConfig::default());
            let (tls, w) = resolved(&plain, &[]);
            assert!(tls.is_none());
            assert!(
                w[0].starts_with("consul.tls is set, but the Consul agent's address c:1 is http"),
                "{w:?}"
            );
        }

        #[test]
        fn check_reads_the_files_and_names_them() {
            let mut cfg = https("127.0.0.1:8501");
            cfg.tls = Some(TlsConfig {
                cafile: Some("/nonexistent/ca.pem".into()),
                ..TlsConfig::default()
            });
            assert_eq!(
                check(&cfg, &HashMap::new()).unwrap_err(),
                "consul.tls.cafile: cannot read /nonexistent/ca.pem: No such file or directory"
            );
            assert_eq!(
                Client::with_env(&cfg, &HashMap::new()).unwrap_err(),
                "consul.tls.cafile: cannot read /nonexistent/ca.pem: No such file or directory"
            );
            let w = check(&https("127.0.0.1:8501"), &HashMap::new()).unwrap();
            assert_eq!(w.len(), 1, "{w:?}");
        }
    }

    #[test]
    fn register_body_is_what_consul_documents() {
        let mut r = reg("web");
        r.ttl = Duration::from_millis(1500);
        r.deregister_critical_service_after = Some(Duration::from_secs(90));
        r.enable_tag_override = true;
        assert_eq!(
            register_body(&r, CheckStatus::Warning),
            json!({
                "ID": "web-host", "Name": "web", "Tags": ["a", "b"], "Port": 8080,
                "Address": "10.0.0.5", "EnableTagOverride": true,
                "Check": {"TTL": "1.5s", "Status": "warning",
                          "Notes": "TTL for web set by containerpilot",
                          "DeregisterCriticalServiceAfter": "1m30s"}
            })
        );
        r.address = None;
        r.deregister_critical_service_after = None;
        let body = register_body(&r, CheckStatus::Passing);
        assert!(body.get("Address").is_none());
        assert!(body["Check"]
            .get("DeregisterCriticalServiceAfter")
            .is_none());
    }

    #[test]
    fn register_update_deregister_against_the_agent() {
        let fake = FakeConsul::start();
        let c = client(&fake, Some("s3cret"));
        c.register(&reg("web"), CheckStatus::Passing).unwrap();
        c.update_check("web-host", CheckStatus::Critical, "boom")
            .unwrap();
        let checks = fake.checks();
        let check = &checks["service:web-host"];
        assert_eq!(
            (check.status.as_str(), check.output.as_str()),
            ("critical", "boom")
        );
        assert_eq!(check.service_id, "web-host");
        c.deregister("web-host").unwrap();
        assert!(fake.services().is_empty());
        // Already gone: success.
        c.deregister("web-host").unwrap();

        let reqs = fake.requests();
        let lines: Vec<_> = reqs
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(
            lines,
            [
                "PUT /v1/agent/service/register",
                "PUT /v1/agent/check/update/service:web-host",
                "PUT /v1/agent/service/deregister/web-host",
                "PUT /v1/agent/service/deregister/web-host",
            ]
        );
        assert!(reqs
            .iter()
            .all(|r| r.header("x-consul-token") == Some("s3cret")));
        assert_eq!(
            reqs[1].json(),
            json!({"Status": "critical", "Output": "boom"})
        );
        assert_eq!(
            reqs[0].json(),
            register_body(&reg("web"), CheckStatus::Passing)
        );
    }

    #[test]
    fn no_token_header_without_a_token() {
        let fake = FakeConsul::start();
        client(&fake, None)
            .register(&reg("web"), CheckStatus::Passing)
            .unwrap();
        client(&fake, Some("")).deregister("web-host").unwrap();
        assert!(fake
            .requests()
            .iter()
            .all(|r| r.header("x-consul-token").is_none()));
    }

    #[test]
    fn lost_registration_is_recognised_new_and_old_agents() {
        let fake = FakeConsul::start();
        let c = client(&fake, None);
        let e = c
            .update_check("web-host", CheckStatus::Passing, "ok")
            .unwrap_err();
        assert!(
            matches!(e, ConsulError::Unknown { status: 404, .. }),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains(r#"Unknown check ID "service:web-host""#),
            "{e}"
        );
        fake.old_agent_mode(true);
        let e = c
            .update_check("web-host", CheckStatus::Passing, "ok")
            .unwrap_err();
        assert!(
            matches!(e, ConsulError::Unknown { status: 500, .. }),
            "{e:?}"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn unreachable_agent_is_a_transient_error() {
        let fake = FakeConsul::start();
        fake.set_down(true);
        let e = client(&fake, None)
            .register(&reg("web"), CheckStatus::Passing)
            .unwrap_err();
        assert!(matches!(e, ConsulError::Unreachable(_)), "{e:?}");
        assert!(e.is_transient());
        let addr = fake.addr();
        drop(fake);
        let e = Client::with_env(&http_cfg(&addr), &HashMap::new())
            .unwrap()
            .deregister("x")
            .unwrap_err();
        assert!(e.is_transient() && !e.maybe_applied(), "{e:?}");
    }

    #[test]
    fn health_query_strings_only_carry_what_is_configured() {
        let fake = FakeConsul::start();
        let c = client(&fake, None);
        fake.set_instances("db", "east", vec![]);
        fake.set_instances("db", "dc 2", vec![]);
        c.health_service("db", None, None).unwrap();
        c.health_service("db", Some("primary"), None).unwrap();
        c.health_service("db", None, Some("east")).unwrap();
        c.health_service("db", Some("a b&c"), Some("dc 2")).unwrap();
        let got: Vec<_> = fake
            .requests()
            .iter()
            .map(|r| (r.path.clone(), r.query.clone()))
            .collect();
        let p = "/v1/health/service/db".to_string();
        assert_eq!(
            got,
            [
                (p.clone(), "passing=1".to_string()),
                (p.clone(), "passing=1&tag=primary".to_string()),
                (p.clone(), "passing=1&dc=east".to_string()),
                (p, "passing=1&tag=a%20b%26c&dc=dc%202".to_string()),
            ]
        );
    }

    #[test]
    fn health_instances_with_tag_dc_and_node_address_fallback() {
        let fake = FakeConsul::start();
        let c = client(&fake, None);
        fake.set_instances(
            "db",
            "dc1",
            vec![
                ("10.0.0.1", 5432, vec!["primary"]),
                ("10.0.0.2", 5432, vec![]),
            ],
        );
        fake.set_instances("db", "east", vec![("10.1.0.1", 5432, vec![])]);
        let set = |v: &[(&str, u16)]| {
            v.iter()
                .map(|(a, p)| (a.to_string(), *p))
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(
            c.health_service("db", None, None).unwrap(),
            set(&[("10.0.0.1", 5432), ("10.0.0.2", 5432)])
        );
        assert_eq!(
            c.health_service("db", Some("primary"), None).unwrap(),
            set(&[("10.0.0.1", 5432)])
        );
        assert_eq!(
            c.health_service("db", None, Some("east")).unwrap(),
            set(&[("10.1.0.1", 5432)])
        );
        assert_eq!(c.health_service("db", Some(""), None).unwrap(), set(&[]));
        let e = c.health_service("db", None, Some("nowhere")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the Consul agent answered 500: No path to datacenter"
        );

        // Registered through the agent without an address: the node's address.
        let mut r = reg("db");
        r.address = None;
        r.port = 6000;
        c.register(&r, CheckStatus::Passing).unwrap();
        let got = c.health_service("db", None, None).unwrap();
        assert!(got.contains(&("127.0.0.1".to_string(), 6000)), "{got:?}");
        // Critical instances are not passing.
        c.update_check("db-host", CheckStatus::Critical, "down")
            .unwrap();
        assert!(!c
            .health_service("db", None, None)
            .unwrap()
            .iter()
            .any(|i| i.1 == 6000));
    }

    #[test]
    fn health_errors() {
        let fake = FakeConsul::start();
        fake.set_error(Some(500));
        let e = client(&fake, None)
            .health_service("db", None, None)
            .unwrap_err();
        assert!(
            matches!(e, ConsulError::Status { status: 500, .. }) && e.is_transient(),
            "{e:?}"
        );
        assert!(parse_health(b"{}").is_err());
        assert!(parse_health(br#"[{"Service": {"Port": 70000}}]"#).is_err());
    }

    #[test]
    fn timeouts_bound_every_call() {
        let fake = FakeConsul::start();
        fake.set_hang(true);
        let c = client(&fake, None).with_timeout(Duration::from_millis(100));
        let e = c.register(&reg("web"), CheckStatus::Passing).unwrap_err();
        assert!(
            matches!(e, ConsulError::Unreachable(HttpError::Timeout { .. })),
            "{e:?}"
        );
        assert!(e.maybe_applied());
        let e = c
            .deregister_within("web-host", Duration::from_millis(50))
            .unwrap_err();
        assert!(e.is_transient());
        fake.set_hang(false);
        c.register(&reg("web"), CheckStatus::Passing).unwrap();
    }
}
