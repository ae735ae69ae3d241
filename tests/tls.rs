//! TLS to the Consul agent (SPEC §6, §3.7, issue #13): the real binary
//! against `support::tls::TlsFront`, a rustls server in front of the
//! Consul agent double, with a throw-away CA and certificates that each
//! test makes itself (`support::tls::Pki`).
//!
//! Every wait is for a condition in the double, the front, the log or a
//! file, with a deadline. "Jobs keep running" is checked against a
//! sentinel: the job's health checks go on after the failure was logged.

#[cfg(feature = "tls")]
use std::path::Path;

#[cfg(feature = "tls")]
use crate::support::consul::{FakeConsul, State};
#[cfg(feature = "tls")]
use crate::support::tls::{FrontOptions, Key, Pki, Spec, TlsFront};
use crate::support::*;

#[cfg(feature = "tls")]
const REGISTER: &str = "/v1/agent/service/register";

#[cfg(feature = "tls")]
fn hostname() -> String {
    nix::unistd::gethostname()
        .expect("gethostname")
        .into_string()
        .expect("a UTF-8 hostname")
}

#[cfg(feature = "tls")]
fn update_path() -> String {
    format!("/v1/agent/check/update/service:web-{}", hostname())
}

/// A TLS agent: the front and the double behind it (the front goes first).
#[cfg(feature = "tls")]
struct Agent {
    front: TlsFront,
    fake: FakeConsul,
}

#[cfg(feature = "tls")]
impl Agent {
    /// An agent whose certificate is `spec`, signed by `pki`.
    fn start(pki: &Pki, spec: &Spec, tweak: impl FnOnce(&mut FrontOptions)) -> Agent {
        let fake = FakeConsul::start();
        let (crt, key) = pki.issue("agent", spec);
        let mut opts = FrontOptions::new(&crt, &key);
        tweak(&mut opts);
        let front = TlsFront::start(&fake.addr(), &opts);
        Agent { front, fake }
    }

    fn https(&self) -> String {
        format!("https://{}", self.front.addr())
    }

    fn registered(&self) -> bool {
        self.fake
            .state()
            .services
            .contains_key(&format!("web-{}", hostname()))
    }

    /// What both sides saw, for failure messages.
    fn log(&self) -> String {
        let st = self.fake.state();
        let mut s = format!(
            "--- TLS front ---\n{:?}\n--- fake Consul ---\n",
            self.front.seen()
        );
        for r in &st.requests {
            s.push_str(&format!("  {} -> {:?}\n", r.line(), r.status));
        }
        s
    }

    /// Waits until `pred` holds in the double; fails with everything.
    fn expect(&self, d: &mut Daemon, what: &str, pred: impl Fn(&State) -> bool) {
        if !self.fake.wait_for(TIMEOUT, pred) {
            let log = self.log();
            d.fail(&format!(
                "timed out waiting in the fake Consul for: {what}\n{log}"
            ));
        }
    }
}

/// The service job `web`: runs until stopped; its check passes every
/// `interval` and appends a line to `web.checks`.
fn web(dir: &Dir, interval: &str) -> String {
    let check = dir.sh("web-check", &format!("echo x >> {}", dir.p("web.checks")));
    format!(
        r#"[{{ name: "web", exec: "sleep 1000", port: 8080, interfaces: ["static:10.1.2.3"],
              health: {{ exec: {check}, interval: "{interval}", ttl: "10s" }} }}]"#
    )
}

/// Starts containerpilot with `consul` as the value of the `consul` key.
#[cfg(feature = "tls")]
fn start(dir: &Dir, consul: &str, top: &[&str], env: &[(&str, &str)]) -> Daemon {
    let mut cfg = dir
        .cfg()
        .jobs(&web(dir, "100ms"))
        .top(&format!("consul: {consul}"));
    for t in top {
        cfg = cfg.top(t);
    }
    let mut d = Daemon::start(&cfg.write(), env);
    d.wait_started();
    d
}

/// `consul: {address, tls: {...}}` with the tls keys given (JSON5 text).
#[cfg(feature = "tls")]
fn consul_obj(address: &str, tls: &[(&str, &str)]) -> String {
    let keys: Vec<String> = tls.iter().map(|(k, v)| format!("{k}: {}", js(v))).collect();
    format!(
        "{{ address: {}, tls: {{ {} }} }}",
        js(address),
        keys.join(", ")
    )
}

#[cfg(feature = "tls")]
fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The first log entry whose message contains `text`.
#[cfg(feature = "tls")]
fn wait_msg_containing(d: &mut Daemon, text: &str) -> String {
    let v = d.wait_json(&format!("a message containing {text:?}"), TIMEOUT, |v| {
        v["msg"].as_str().is_some_and(|m| m.contains(text))
    });
    v["msg"].as_str().unwrap_or_default().to_string()
}

/// The job still runs and is checked: `n` more checks after now.
#[cfg(feature = "tls")]
fn still_checked(d: &mut Daemon, dir: &Dir, n: usize) {
    let from = dir.lines("web.checks").len();
    d.wait_for(&format!("{n} more health checks of web"), || {
        dir.lines("web.checks").len() >= from + n
    });
    let st = status(dir);
    let web = st["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "web").cloned())
        .unwrap_or_default();
    if web["state"] != "running" {
        d.fail(&format!("web is not running: {web}"));
    }
}

// ---------------------------------------------------------------------------
// Working connections

#[cfg(feature = "tls")]
#[test]
fn registration_heartbeats_and_watches_over_tls() {
    let dir = Dir::new("tls-basic");
    let pki = Pki::new(dir.root(), "ca");
    let agent = Agent::start(&pki, &Spec::server(&["127.0.0.1"]), |_| {});
    agent
        .fake
        .set_instances("db", "dc1", vec![("10.0.0.9", 5432, vec![])]);
    let consul = consul_obj(&agent.https(), &[("cafile", p(&pki.ca_file()))]);
    let mut d = start(
        &dir,
        &consul,
        &[r#"watches: [{ name: "db", interval: "200ms" }]"#],
        &[],
    );
    agent.expect(&mut d, "web registered over TLS", |s| {
        s.count("PUT", REGISTER) >= 1
    });
    agent.expect(&mut d, "three heartbeats", |s| {
        s.count("PUT", &update_path()) >= 3
    });
    d.wait_event("watch.db.healthy", 1);
    agent.expect(&mut d, "two more watch polls", |s| {
        s.count("GET", "/v1/health/service/db") >= 3
    });
    // The agent worker and the watch poller, one connection each.
    let seen = agent.front.seen();
    if seen.handshakes.len() != 2 || !seen.failures.is_empty() {
        let log = agent.log();
        d.fail(&format!("want 2 handshakes and no failures\n{log}"));
    }
    // No warning about verification: a CA is given.
    assert_eq!(d.count(|l| l.contains("not verified")), 0);
    terminate(&mut d);
    assert!(
        !agent.registered(),
        "deregistered at shutdown\n{}",
        agent.log()
    );
}

/// Issue #13: a heartbeat over TLS costs no new handshake while the
/// connection lives.
#[cfg(feature = "tls")]
#[test]
fn a_hundred_heartbeats_cost_one_handshake() {
    let dir = Dir::new("tls-keepalive");
    let pki = Pki::new(dir.root(), "ca");
    let agent = Agent::start(&pki, &Spec::server(&["127.0.0.1"]), |_| {});
    let check = dir.sh("web-check", "exit 0");
    let jobs = format!(
        r#"[{{ name: "web", exec: "sleep 1000", port: 8080, interfaces: ["static:10.1.2.3"],
              health: {{ exec: {check}, interval: "20ms", ttl: "10s" }} }}]"#
    );
    let cfg = dir
        .cfg()
        .jobs(&jobs)
        .top(&format!("consul: {}", js(&agent.https())));
    let mut d = Daemon::start(&cfg.write(), &[("CONSUL_CACERT", p(&pki.ca_file()))]);
    d.wait_started();
    agent.expect(&mut d, "100 heartbeats", |s| {
        s.count("PUT", &update_path()) >= 100
    });
    let seen = agent.front.seen();
    if (seen.connections, seen.handshakes.len()) != (1, 1) {
        let log = agent.log();
        d.fail(&format!(
            "100 heartbeats cost {} handshakes on {} connections, want 1 on 1\n{log}",
            seen.handshakes.len(),
            seen.connections
        ));
    }
    terminate(&mut d);
}

#[cfg(feature = "tls")]
#[test]
fn the_tls_1_2_only_agent() {
    let dir = Dir::new("tls-12");
    let pki = Pki::new(dir.root(), "ca");
    let agent = Agent::start(&pki, &Spec::server(&["127.0.0.1"]), |o| {
        o.tls12_only = true;
    });
    let consul = consul_obj(&agent.https(), &[("cafile", p(&pki.ca_file()))]);
    let mut d = start(&dir, &consul, &[], &[]);
    agent.expect(&mut d, "web registered over TLS 1.2", |s| {
        s.count("PUT", &update_path()) >= 1
    });
    assert_eq!(
        agent.front.seen().handshakes,
        ["TLSv1_2"],
        "{}",
        agent.log()
    );
    terminate(&mut d);
}

/// Mutual TLS: with a client certificate (every key form) it works;
/// without one the log says the agent wants one, once a minute at most,
/// and the job keeps running.
#[cfg(feature = "tls")]
#[test]
fn mutual_tls_with_and_without_a_client_certificate() {
    let dir = Dir::new("tls-mutual");
    let pki = Pki::new(dir.root(), "ca");
    let agent = Agent::start(&pki, &Spec::server(&["127.0.0.1"]), |o| {
        o.client_ca = Some(pki.ca_file());
    });

    // Without a certificate.
    let mut d = start(
        &dir,
        &js(&agent.https()),
        &[],
        &[("CONSUL_CACERT", p(&pki.ca_file()))],
    );
    let msg = wait_msg_containing(&mut d, "requires a client certificate");
    assert!(
        msg.contains(&format!(
            "cannot talk to {} over TLS: the agent requires a client certificate (set \
             tls.clientcert and tls.clientkey, or CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY)",
            agent.front.addr()
        )),
        "{msg}"
    );
    // Retried with backoff (1 s, then 2 s), logged once.
    d.wait_for("three refused handshakes", || {
        agent.front.failures().len() >= 3
    });
    still_checked(&mut d, &dir, 2);
    assert_eq!(
        d.count(|l| l.contains("requires a client certificate")),
        1,
        "{}",
        agent.log()
    );
    terminate(&mut d);
    assert_eq!(agent.fake.state().count("PUT", REGISTER), 0);

    // With one, each key form: the variables, then the tls block.
    for (i, key) in [Key::RsaPkcs1, Key::EcdsaSec1, Key::Ed25519]
        .into_iter()
        .enumerate()
    {
        agent.fake.clear_requests();
        let (crt, k) = pki.issue(&format!("client{i}"), &Spec::client(key));
        let dir = Dir::new("tls-mutual-ok");
        let mut d = if i == 0 {
            start(
                &dir,
                &js(&agent.https()),
                &[],
                &[
                    ("CONSUL_CACERT", p(&pki.ca_file())),
                    ("CONSUL_CLIENT_CERT", p(&crt)),
                    ("CONSUL_CLIENT_KEY", p(&k)),
                ],
            )
        } else {
            let consul = consul_obj(
                &agent.https(),
                &[
                    ("cafile", p(&pki.ca_file())),
                    ("clientcert", p(&crt)),
                    ("clientkey", p(&k)),
                ],
            );
            start(&dir, &consul, &[], &[])
        };
        agent.expect(&mut d, &format!("a heartbeat with a {key:?} key"), |s| {
            s.count("PUT", &update_path()) >= 1
        });
        terminate(&mut d);
    }
}

#[cfg(feature = "tls")]
#[test]
fn verify_false_wins_over_a_ca_and_servername_names_the_agent() {
    let dir = Dir::new("tls-verify");
    let pki = Pki::new(dir.root(), "ca");
    let stranger = Pki::new(dir.root(), "stranger");
    let agent = Agent::start(&pki, &Spec::server(&["consul.example"]), |_| {});

    // The stranger's CA would refuse this agent; verify false wins.
    let mut d = start(
        &dir,
        &js(&agent.https()),
        &[],
        &[
            ("CONSUL_CACERT", p(&stranger.ca_file())),
            ("CONSUL_HTTP_SSL_VERIFY", "false"),
        ],
    );
    agent.expect(&mut d, "a heartbeat, not verified", |s| {
        s.count("PUT", &update_path()) >= 1
    });
    // Said explicitly: no warning.
    assert_eq!(d.count(|l| l.contains("not verified")), 0);
    terminate(&mut d);

    // The certificate is for consul.example, the address 127.0.0.1:
    // tls.servername (winning over CONSUL_TLS_SERVER_NAME) says which.
    agent.fake.clear_requests();
    let dir = Dir::new("tls-servername");
    let consul = consul_obj(
        &agent.https(),
        &[
            ("cafile", p(&pki.ca_file())),
            ("servername", "consul.example"),
        ],
    );
    let mut d = start(
        &dir,
        &consul,
        &[],
        &[("CONSUL_TLS_SERVER_NAME", "wrong.example")],
    );
    agent.expect(&mut d, "a heartbeat to consul.example", |s| {
        s.count("PUT", &update_path()) >= 1
    });
    terminate(&mut d);

    // verify: true without a CA: the system's roots, here SSL_CERT_FILE.
    agent.fake.clear_requests();
    let dir = Dir::new("tls-systemroots");
    let consul = format!(
        "{{ address: {}, tls: {{ verify: true, servername: \"consul.example\" }} }}",
        js(&agent.https())
    );
    let mut d = start(
        &dir,
        &consul,
        &[],
        &[
            ("SSL_CERT_FILE", p(&pki.ca_file())),
            ("SSL_CERT_DIR", "/nonexistent"),
        ],
    );
    agent.expect(&mut d, "a heartbeat verified by the system roots", |s| {
        s.count("PUT", &update_path()) >= 1
    });
    terminate(&mut d);
}

/// Without a CA and without `verify`: encrypted, not verified (as 3.x),
/// and one warning at start-up that names the fix.
#[cfg(feature = "tls")]
#[test]
fn unverified_by_default_with_one_warning() {
    let dir = Dir::new("tls-default");
    let pki = Pki::new(dir.root(), "ca");
    let agent = Agent::start(&pki, &Spec::server(&["consul.example"]), |_| {});
    let mut d = start(&dir, &js(&agent.https()), &[], &[]);
    agent.expect(&mut d, "a heartbeat", |s| {
        s.count("PUT", &update_path()) >= 1
    });
    let msg = wait_msg_containing(&mut d, "not verified");
    assert!(
        msg.contains("CONSUL_CACERT") && msg.contains("tls.cafile"),
        "{msg}"
    );
    still_checked(&mut d, &dir, 2);
    assert_eq!(d.count(|l| l.contains("not verified")), 1);
    terminate(&mut d);
}

/// `CONSUL_HTTP_SSL=true` makes `host:port` https, but not `http://`.
#[cfg(feature = "tls")]
#[test]
fn consul_http_ssl_upgrades_an_address_without_a_scheme_only() {
    let dir = Dir::new("tls-httpssl");
    let pki = Pki::new(dir.root(), "ca");
    let agent = Agent::start(&pki, &Spec::server(&["127.0.0.1"]), |_| {});
    let ca = pki.ca_file();
    let env = [("CONSUL_HTTP_SSL", "true"), ("CONSUL_CACERT", p(&ca))];
    let mut d = start(&dir, &js(&agent.front.addr()), &[], &env);
    agent.expect(&mut d, "a heartbeat over TLS", |s| {
        s.count("PUT", &update_path()) >= 1
    });
    assert_eq!(agent.front.handshakes(), 1, "{}", agent.log());
    terminate(&mut d);

    // Straight to the double, in plain HTTP.
    let dir = Dir::new("tls-httpssl-plain");
    let plain = format!("http://{}", agent.fake.addr());
    let mut d = start(&dir, &js(&plain), &[], &env);
    agent.expect(&mut d, "a plain heartbeat", |s| {
        s.count("PUT", &update_path()) >= 2
    });
    assert_eq!(agent.front.handshakes(), 1, "{}", agent.log());
    terminate(&mut d);
}

// ---------------------------------------------------------------------------
// Failures at run time: logged with their reason, retried, jobs go on

#[cfg(feature = "tls")]
#[test]
fn verification_failures_are_logged_with_their_reason_and_jobs_keep_running() {
    let dir = Dir::new("tls-failures");
    let pki = Pki::new(dir.root(), "ca");
    let stranger = Pki::new(dir.root(), "stranger");
    let ip = Spec::server(&["127.0.0.1"]);
    let cases = [
        (
            "wrong CA",
            ip.clone(),
            stranger.ca_file(),
            "the agent's certificate is signed by an unknown authority".to_string(),
        ),
        (
            "wrong name",
            Spec::server(&["consul.example"]),
            pki.ca_file(),
            "the agent's certificate is for consul.example, not 127.0.0.1".to_string(),
        ),
        (
            "expired",
            ip.clone().expired(),
            pki.ca_file(),
            "the agent's certificate expired on 2001-01-01 00:00:00 UTC".to_string(),
        ),
    ];
    for (what, spec, ca, reason) in cases {
        let agent = Agent::start(&pki, &spec, |_| {});
        let dir = Dir::new("tls-failure");
        let consul = consul_obj(&agent.https(), &[("cafile", p(&ca))]);
        let mut d = start(&dir, &consul, &[], &[]);
        let msg = wait_msg_containing(&mut d, "over TLS");
        let want = format!(
            "discovery: cannot register service web-{}: cannot talk to {} over TLS: {reason}; \
             will retry",
            hostname(),
            agent.front.addr()
        );
        if msg != want {
            d.fail(&format!("{what}: logged\n  {msg}\nwant\n  {want}"));
        }
        d.wait_for(&format!("{what}: a second attempt"), || {
            agent.front.seen().connections >= 2
        });
        still_checked(&mut d, &dir, 2);
        assert_eq!(agent.fake.state().count("PUT", REGISTER), 0, "{what}");
        terminate(&mut d);
    }
}

// ---------------------------------------------------------------------------
// Bad input: start-up errors naming the file and the field

#[cfg(feature = "tls")]
#[test]
fn bad_files_are_start_up_errors_naming_the_file_and_the_field() {
    let dir = Dir::new("tls-badfiles");
    let pki = Pki::new(dir.root(), "ca");
    let (crt, key) = pki.issue("client", &Spec::client(Key::EcdsaPkcs8));
    let (_, other_key) = pki.issue("other", &Spec::client(Key::EcdsaPkcs8));
    let missing = dir.path("missing.pem");
    let addr = "https://127.0.0.1:8501";
    /// (the `consul` value, the environment, the error wanted)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<Case> = vec![
        (
            consul_obj(addr, &[("cafile", p(&missing))]),
            vec![],
            format!(
                "consul.tls.cafile: cannot read {}: No such file or directory",
                missing.display()
            ),
        ),
        (
            js(addr),
            vec![("CONSUL_CACERT", p(&key))],
            format!(
                "CONSUL_CACERT: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                key.display()
            ),
        ),
        (
            consul_obj(addr, &[("clientcert", p(&crt))]),
            vec![],
            "consul.tls.clientcert: a client certificate needs its key: set tls.clientkey \
             (or CONSUL_CLIENT_KEY) too"
                .to_string(),
        ),
        (
            consul_obj(addr, &[("clientcert", p(&crt))]),
            vec![("CONSUL_CLIENT_KEY", p(&other_key))],
            format!(
                "CONSUL_CLIENT_KEY: {} is not the key of the certificate in {} \
                 (consul.tls.clientcert)",
                other_key.display(),
                crt.display()
            ),
        ),
        (
            consul_obj(addr, &[("clientcert", p(&missing)), ("clientkey", p(&key))]),
            vec![],
            format!(
                "consul.tls.clientcert: cannot read {}: No such file or directory",
                missing.display()
            ),
        ),
        (
            format!("{{ address: {}, tls: {{ verify: true }} }}", js(addr)),
            vec![
                ("SSL_CERT_FILE", "/nonexistent/bundle.pem"),
                ("SSL_CERT_DIR", "/nonexistent"),
            ],
            "consul.tls.verify asks to verify the Consul agent's certificate, but no CA is \
             given and this system has no root certificates (looked in \
             /nonexistent/bundle.pem (SSL_CERT_FILE) and /nonexistent (SSL_CERT_DIR)): set \
             tls.cafile or tls.capath (CONSUL_CACERT or CONSUL_CAPATH) to the CA that signed \
             the agent's certificate, or SSL_CERT_FILE to a bundle"
                .to_string(),
        ),
    ];
    for (consul, env, want) in cases {
        let cfg = dir
            .cfg()
            .jobs(&web(&dir, "1s"))
            .top(&format!("consul: {consul}"))
            .write();
        let config = p(&cfg).to_string();
        for args in [
            vec!["-validate", "-config", &config],
            vec!["-config", &config],
        ] {
            let out = run(&args, &env);
            assert_eq!(out.code, 1, "{args:?} {env:?}\n{out}");
            assert!(
                out.stderr.contains(&want),
                "{args:?} {env:?}: want {want:?} in\n{out}"
            );
        }
    }
}

/// A build without the `tls` feature refuses https, saying so
/// (`cargo test --no-default-features --test it tls::`).
#[cfg(not(feature = "tls"))]
#[test]
fn a_build_without_tls_refuses_https() {
    let dir = Dir::new("tls-none");
    for (consul, env) in [
        (js("https://127.0.0.1:8501"), vec![]),
        (js("127.0.0.1:8501"), vec![("CONSUL_HTTP_SSL", "true")]),
    ] {
        let cfg = dir
            .cfg()
            .jobs(&web(&dir, "1s"))
            .top(&format!("consul: {consul}"))
            .write();
        let config = cfg.to_str().expect("utf-8").to_string();
        for args in [
            vec!["-validate", "-config", &config],
            vec!["-config", &config],
        ] {
            let out = run(&args, &env);
            assert_eq!(out.code, 1, "{args:?}\n{out}");
            assert!(
                out.stderr.contains(
                    "cannot talk to the Consul agent at https://127.0.0.1:8501: this build has \
                     no TLS support"
                ),
                "{args:?}\n{out}"
            );
        }
    }
    // Plain http still works in such a build.
    let out = run(
        &["-validate", "-config", &config_with(&dir, "127.0.0.1:8500")],
        &[],
    );
    assert_eq!(out.code, 0, "{out}");
}

#[cfg(not(feature = "tls"))]
fn config_with(dir: &Dir, consul: &str) -> String {
    let cfg = dir
        .cfg()
        .jobs(&web(dir, "1s"))
        .top(&format!("consul: {}", js(consul)))
        .write();
    cfg.to_str().expect("utf-8").to_string()
}
