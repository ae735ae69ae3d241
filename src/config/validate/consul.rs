//! The `consul` section (SPEC §2.3, §6): a `host:port` string or an object,
//! with `CONSUL_HTTP_*` and the Consul CLI's TLS variables applied.

use super::obj::{expected, invalid, shown, Obj};
use super::{Result, Validator};
use crate::config::tree::Node;
use crate::config::{ConsulConfig, TlsConfig};

const CONSUL_KEYS: &[&str] = &["address", "scheme", "token", "tls"];
const TLS_KEYS: &[&str] = &[
    "cafile",
    "capath",
    "clientcert",
    "clientkey",
    "servername",
    "verify",
];

const DEFAULT_CONSUL_PORT: u16 = 8500;

impl Validator<'_> {
    pub(super) fn consul(&mut self, top: &Obj) -> Result<Option<ConsulConfig>> {
        let mut cfg = match top.get("consul") {
            None => match self.env_var("CONSUL_HTTP_ADDR") {
                Some(addr) => Some(consul_uri("CONSUL_HTTP_ADDR", addr)?),
                None => None,
            },
            // `consul: ""` was how a 3.x config said "no discovery" (3.x
            // required the key); now discovery is simply off.
            Some(Node::Str(s)) if s.trim().is_empty() => None,
            Some(Node::Str(s)) => Some(consul_uri("consul", s)?),
            Some(n @ Node::Object(_)) => Some(self.consul_object(n)?),
            Some(n) => {
                return Err(expected(
                    "consul",
                    "a string (\"host:port\") or an object",
                    n,
                ))
            }
        };
        if let Some(c) = &mut cfg {
            if let Some(token) = self.env_var("CONSUL_HTTP_TOKEN") {
                c.token = Some(token.to_string());
            }
            // The TLS variables and files: resolved where they are used,
            // checked here so that start-up and -validate report them.
            for w in crate::config::agent::check(c, self.env).map_err(invalid)? {
                self.warn(w);
            }
        }
        Ok(cfg)
    }

    fn consul_object(&mut self, node: &Node) -> Result<ConsulConfig> {
        let o = self.obj("consul".into(), node, CONSUL_KEYS)?;
        let mut cfg = match (o.str("address")?, self.env_var("CONSUL_HTTP_ADDR")) {
            (Some(a), _) => consul_uri(&o.at("address"), a)?,
            (None, Some(a)) => consul_uri("CONSUL_HTTP_ADDR", a)?,
            (None, None) => consul_uri(&o.at("address"), "127.0.0.1")?,
        };
        if let Some(scheme) = o.str("scheme")? {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(invalid(format!(
                    "{} must be 'http' or 'https', got '{scheme}'",
                    o.at("scheme")
                )));
            }
            let prefixed = o.str("address")?.is_some_and(|a| a.contains("://"));
            if prefixed && scheme != cfg.scheme {
                return Err(invalid(format!(
                    "{} is '{scheme}' but {} says '{}'",
                    o.at("scheme"),
                    o.at("address"),
                    cfg.scheme
                )));
            }
            cfg.scheme = scheme;
            cfg.scheme_explicit = true;
        }
        cfg.token = o.str("token")?.map(str::to_string);
        if let Some(t) = self.obj_opt(&o, "tls", TLS_KEYS)? {
            cfg.tls = Some(TlsConfig {
                cafile: t.str("cafile")?.map(str::to_string),
                capath: t.str("capath")?.map(str::to_string),
                clientcert: t.str("clientcert")?.map(str::to_string),
                clientkey: t.str("clientkey")?.map(str::to_string),
                servername: t.str("servername")?.map(str::to_string),
                verify: t.bool("verify")?,
            });
        }
        Ok(cfg)
    }
}

/// `host:port`, `http://host:port` or `https://host:port`. A missing port is
/// Consul's 8500 and an empty host the local agent (Go dials `:8500` locally).
fn consul_uri(path: &str, raw: &str) -> Result<ConsulConfig> {
    let raw = raw.trim();
    let (scheme, rest) = match raw.split_once("://") {
        None => ("http", raw),
        Some((s, rest)) if s.eq_ignore_ascii_case("http") => ("http", rest),
        Some((s, rest)) if s.eq_ignore_ascii_case("https") => ("https", rest),
        Some((s, _)) => {
            return Err(invalid(format!(
                "{path}: the scheme must be http or https, got '{}' in '{}'",
                shown(s),
                shown(raw)
            )))
        }
    };
    let rest = rest.trim_end_matches('/');
    let bad = |why: &str| invalid(format!("{path}: invalid address '{}': {why}", shown(raw)));
    if rest.contains('/') {
        return Err(bad("expected host:port"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        (format!("[{h}]"), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            // A bare IPv6 address has several colons and no port.
            Some((h, _)) if h.contains(':') => (format!("[{rest}]"), None),
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    let port = match port {
        None | Some("") => DEFAULT_CONSUL_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        },
    };
    let host = if host.is_empty() {
        "127.0.0.1".to_string()
    } else {
        host
    };
    Ok(ConsulConfig {
        address: format!("{host}:{port}"),
        scheme: scheme.to_string(),
        scheme_explicit: raw.contains("://"),
        token: None,
        tls: None,
    })
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "tls")]
    use super::*;
    use crate::config::validate::testutil::*;

    #[cfg(feature = "tls")]
    fn consul(text: &str) -> ConsulConfig {
        cfg(text).consul.expect("consul configured")
    }

    // https addresses are refused without TLS (tested in discovery).
    #[cfg(feature = "tls")]
    #[test]
    fn consul_string_forms() {
        let c = consul("{consul: 'consul:8500'}");
        assert_eq!(
            (c.address.as_str(), c.scheme.as_str()),
            ("consul:8500", "http")
        );
        assert_eq!(c.token, None);
        assert_eq!(c.tls, None);
        let c = consul("{consul: 'http://10.0.0.1:8501'}");
        assert_eq!(
            (c.address.as_str(), c.scheme.as_str()),
            ("10.0.0.1:8501", "http")
        );
        let c = consul("{consul: 'https://consul.example:8543/'}");
        assert_eq!(
            (c.address.as_str(), c.scheme.as_str()),
            ("consul.example:8543", "https")
        );
        // Beyond 3.x: a missing port is Consul's, an empty host the local agent.
        assert_eq!(consul("{consul: 'consul'}").address, "consul:8500");
        assert_eq!(consul("{consul: ':8500'}").address, "127.0.0.1:8500");
        assert_eq!(consul("{consul: '[::1]:8500'}").address, "[::1]:8500");
        assert_eq!(consul("{consul: '[::1]'}").address, "[::1]:8500");
        assert_eq!(consul("{consul: 'fd00::1'}").address, "[fd00::1]:8500");
        assert_eq!(
            err1("{consul: 'tcp://consul:8500'}"),
            "consul: the scheme must be http or https, got 'tcp' in 'tcp://consul:8500'"
        );
        assert!(err1("{consul: 'consul:http'}").contains("the port must be a number"));
        assert!(err1("{consul: 'consul:0'}").contains("the port must be a number"));
        assert!(err1("{consul: 'http://consul:8500/v1'}").contains("expected host:port"));
        assert_eq!(
            err1("{consul: 8500}"),
            "consul must be a string (\"host:port\") or an object, got integer 8500"
        );
    }

    #[test]
    fn empty_consul_string_means_no_discovery() {
        assert_eq!(cfg("{consul: ''}").consul, None);
    }

    // https addresses are refused without TLS (tested in discovery).
    #[cfg(feature = "tls")]
    #[test]
    fn consul_object_form() {
        // Over http the tls block is kept but unused (a warning), and its
        // files are not read.
        let c = consul(
            "{consul: {address: 'consul:8501', scheme: 'http', token: 'secret', \
              tls: {cafile: '/ca.pem', capath: '/cas', clientcert: '/c.pem', \
                    clientkey: '/k.pem', servername: 'consul.local'}}}",
        );
        assert_eq!(c.address, "consul:8501");
        assert_eq!((c.scheme.as_str(), c.scheme_explicit), ("http", true));
        assert_eq!(c.token.as_deref(), Some("secret"));
        assert_eq!(
            c.tls,
            Some(TlsConfig {
                cafile: Some("/ca.pem".into()),
                capath: Some("/cas".into()),
                clientcert: Some("/c.pem".into()),
                clientkey: Some("/k.pem".into()),
                servername: Some("consul.local".into()),
                verify: None,
            })
        );
        let c = consul("{consul: {address: 'consul:8501', tls: {verify: false}}}");
        assert_eq!(c.tls.expect("tls").verify, Some(false));
        assert!(!consul("{consul: {address: 'consul:8501'}}").scheme_explicit);
        let c = consul("{consul: {address: 'https://c:1'}}");
        assert_eq!((c.scheme.as_str(), c.scheme_explicit), ("https", true));
        let c = consul("{consul: {address: 'c:1', scheme: 'https'}}");
        assert_eq!((c.scheme.as_str(), c.scheme_explicit), ("https", true));
        assert_eq!(consul("{consul: {}}").address, "127.0.0.1:8500");
        assert_eq!(
            err1("{consul: {address: 'c:1', scheme: 'ftp'}}"),
            "consul.scheme must be 'http' or 'https', got 'ftp'"
        );
        assert_eq!(
            err1("{consul: {address: 'https://c:1', scheme: 'http'}}"),
            "consul.scheme is 'http' but consul.address says 'https'"
        );
        assert_eq!(
            err1("{consul: {address: 'c:1', tls: {verify: 'maybe'}}}"),
            "consul.tls.verify must be true or false, got \"maybe\""
        );
        assert_eq!(
            err1("{consul: {address: 7}}"),
            "consul.address must be a string, got integer 7"
        );
    }

    // https addresses are refused without TLS (tested in discovery).
    #[cfg(feature = "tls")]
    #[test]
    fn consul_environment() {
        let c = ok_env("{consul: 'c:1'}", &[("CONSUL_HTTP_TOKEN", "t0k")])
            .0
            .consul;
        assert_eq!(c.expect("consul").token.as_deref(), Some("t0k"));
        let c = ok_env(
            "{consul: {address: 'c:1', token: 'file'}}",
            &[("CONSUL_HTTP_TOKEN", "env")],
        )
        .0
        .consul;
        assert_eq!(c.expect("consul").token.as_deref(), Some("env"));
        // CONSUL_HTTP_ADDR only when the key is absent.
        let c = ok_env("{}", &[("CONSUL_HTTP_ADDR", "https://agent:8501")])
            .0
            .consul;
        let c = c.expect("consul from env");
        assert_eq!(
            (c.address.as_str(), c.scheme.as_str()),
            ("agent:8501", "https")
        );
        let c = ok_env("{consul: 'c:1'}", &[("CONSUL_HTTP_ADDR", "agent:8501")])
            .0
            .consul;
        assert_eq!(c.expect("consul").address, "c:1");
        let c = ok_env(
            "{consul: {token: 'x'}}",
            &[("CONSUL_HTTP_ADDR", "agent:8501")],
        )
        .0
        .consul;
        assert_eq!(c.expect("consul").address, "agent:8501");
        // Empty variables count as unset.
        assert_eq!(ok_env("{}", &[("CONSUL_HTTP_ADDR", "")]).0.consul, None);
        assert!(
            err_env("{}", &[("CONSUL_HTTP_ADDR", "gopher://x")]).starts_with("CONSUL_HTTP_ADDR:")
        );
        // The TLS variables are resolved by discovery::consul, but their
        // files are checked here, so that -validate reports them.
        let c = ok_env("{consul: 'https://c:1'}", &[("CONSUL_HTTP_SSL", "1")])
            .0
            .consul
            .expect("consul");
        assert_eq!(c.tls, None);
        let e = err_env(
            "{consul: 'https://c:1'}",
            &[("CONSUL_CACERT", "/nonexistent/ca.pem")],
        );
        assert!(
            e.starts_with("CONSUL_CACERT: cannot read /nonexistent/ca.pem"),
            "{e}"
        );
    }
}
