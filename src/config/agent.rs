//! Where the Consul agent is and how to speak TLS to it, from the config
//! and the 3.x environment variables (SPEC §6, §3.7). Validation checks it
//! (so that start-up and `-validate` report unreadable CA, certificate and
//! key files); the discovery client connects with it.

use std::collections::HashMap;

use crate::config::ConsulConfig;
use crate::http::tls::{self, Named, Verify};

/// The agent as the config and the environment name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`.
    pub addr: String,
    /// Present when the agent speaks https.
    pub tls: Option<tls::Settings>,
}

/// The config keys of the `tls` block and the 3.x variables standing in
/// for them, in the order they are resolved.
const TLS_VARS: [(&str, &str); 5] = [
    ("consul.tls.cafile", "CONSUL_CACERT"),
    ("consul.tls.capath", "CONSUL_CAPATH"),
    ("consul.tls.clientcert", "CONSUL_CLIENT_CERT"),
    ("consul.tls.clientkey", "CONSUL_CLIENT_KEY"),
    ("consul.tls.servername", "CONSUL_TLS_SERVER_NAME"),
];

/// Where the agent is and how to speak TLS to it, from the validated
/// config and the environment (SPEC §6, §3.7), with the warnings to show
/// at start-up:
/// - `https://` (address or `CONSUL_HTTP_ADDR`) or `scheme: "https"`; else
///   `CONSUL_HTTP_SSL=true` when neither names a scheme: it never
///   overrides an address that says `http://`.
/// - Each `tls` key wins over its variable (`CONSUL_CACERT`,
///   `CONSUL_CAPATH`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`,
///   `CONSUL_TLS_SERVER_NAME`, `CONSUL_HTTP_SSL_VERIFY`); empty values
///   count as unset. (The token goes the other way: the validator lets
///   `CONSUL_HTTP_TOKEN` override the config, as 3.x did.)
/// - Verified when `verify` is true or a CA is given; an explicit `verify:
///   false` wins over a CA; with neither, encrypted but not verified (as
///   3.x), with a warning; `verify: true` without a CA means the system's
///   roots.
pub fn resolve(
    cfg: &ConsulConfig,
    env: &HashMap<String, String>,
) -> Result<(Endpoint, Vec<String>), String> {
    let var = |name: &str| env.get(name).filter(|v| !v.is_empty());
    let mut warnings = Vec::new();
    let mut flag = |name: &'static str| -> Option<bool> {
        let v = var(name)?;
        // Go's `strconv.ParseBool`, which 3.x read these variables with.
        let parsed = super::parse_bool(v);
        if parsed.is_none() {
            warnings.push(format!(
                "{name}: '{v}' is neither true nor false (as Go reads them); ignored"
            ));
        }
        parsed
    };
    let https = match cfg.scheme.as_str() {
        "https" => true,
        "http" if cfg.scheme_explicit => false,
        "http" => flag("CONSUL_HTTP_SSL").unwrap_or(false),
        other => {
            return Err(format!(
                "cannot talk to the Consul agent: unknown scheme {other:?}"
            ))
        }
    };
    let block = cfg.tls.as_ref();
    if !https {
        if block.is_some() {
            warnings.push(format!(
                "consul.tls is set, but the Consul agent's address {} is http: the tls \
                 settings are not used (give an https:// address or scheme: \"https\")",
                cfg.address
            ));
        }
        let endpoint = Endpoint {
            addr: cfg.address.clone(),
            tls: None,
        };
        return Ok((endpoint, warnings));
    }
    if !tls::AVAILABLE {
        return Err(format!(
            "cannot talk to the Consul agent at https://{}: this build has no TLS support \
             (it was built without the cargo feature `tls`); use an http address (such as a \
             local agent on 127.0.0.1:8500) or a build with TLS",
            cfg.address
        ));
    }
    let [cafile, capath, clientcert, clientkey, servername] = TLS_VARS.map(|(key, name)| {
        let in_block = block.and_then(|t| match key {
            "consul.tls.cafile" => t.cafile.as_ref(),
            "consul.tls.capath" => t.capath.as_ref(),
            "consul.tls.clientcert" => t.clientcert.as_ref(),
            "consul.tls.clientkey" => t.clientkey.as_ref(),
            _ => t.servername.as_ref(),
        });
        match in_block.filter(|v| !v.is_empty()) {
            Some(v) => Some(Named {
                value: v.clone(),
                from: key,
            }),
            None => var(name).map(|v| Named {
                value: v.clone(),
                from: name,
            }),
        }
    });
    let verify_setting = match block.and_then(|t| t.verify) {
        Some(v) => Some((v, "consul.tls.verify")),
        None => flag("CONSUL_HTTP_SSL_VERIFY").map(|v| (v, "CONSUL_HTTP_SSL_VERIFY")),
    };
    let has_ca = cafile.is_some() || capath.is_some();
    let verify = match verify_setting {
        Some((false, _)) => Verify::Off,
        _ if has_ca => Verify::Ca,
        Some((true, because)) => Verify::System { because },
        None => {
            warnings.push(format!(
                "consul: the connection to the Consul agent at https://{} is encrypted but the \
                 agent's certificate is not verified (as ContainerPilot 3 did without a CA): \
                 set CONSUL_CACERT or tls.cafile to the CA that signed it, or tls.verify: \
                 false to say that this is meant",
                cfg.address
            ));
            Verify::Off
        }
    };
    let server_name = servername.unwrap_or_else(|| Named {
        value: host_of(&cfg.address).to_string(),
        from: "consul address",
    });
    let settings = tls::Settings {
        server_name,
        ca_file: cafile,
        ca_path: capath,
        client_cert: clientcert,
        client_key: clientkey,
        verify,
        system_roots: tls::SystemRoots {
            file: var("SSL_CERT_FILE").cloned(),
            dirs: var("SSL_CERT_DIR").cloned(),
        },
    };
    let endpoint = Endpoint {
        addr: cfg.address.clone(),
        tls: Some(settings),
    };
    Ok((endpoint, warnings))
}

/// Everything start-up checks about the agent connection, for the config's
/// validation (so that `-validate` reports it too): the settings resolve,
/// and every CA, certificate and key file they name can be read and used.
/// Returns the warnings to show.
pub fn check(cfg: &ConsulConfig, env: &HashMap<String, String>) -> Result<Vec<String>, String> {
    let (endpoint, warnings) = resolve(cfg, env)?;
    if let Some(settings) = &endpoint.tls {
        tls::Connector::new(settings)?;
    }
    Ok(warnings)
}

/// The host of `host:port` (`[v6]:port` without its brackets).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}
