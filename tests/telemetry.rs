//! The telemetry endpoint (SPEC §5): `/metrics` read by a strict parser, by
//! `promtool` and by a real Prometheus server; `/status`; metric updates
//! through the control plane (SPEC §4) and across reloads (SPEC §3.5).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::prom;
use crate::support::*;

const METRICS: &str = r#"[
  { namespace: "app", name: "hits_total", help: "Requests served.\nSecond line \\ slash.", type: "counter" },
  { namespace: "app", subsystem: "queue", name: "depth", help: "Queue depth.", type: "gauge" },
  { name: "latency_seconds", help: "Latency.", type: "histogram", buckets: [0.1, 0.5, 1] },
  { name: "size_bytes", help: "Sizes.", type: "summary" },
]"#;

/// A daemon with telemetry on a free loopback port; returns it and `host:port`.
fn telemetry_daemon(dir: &Dir, metrics: &str) -> (Daemon, String) {
    let port = free_port();
    let cfg = dir
        .cfg()
        .top(&format!(
            r#"telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"], tags: ["blue"], metrics: {metrics} }}"#
        ))
        .jobs(r#"[ { name: "app", exec: "sleep 1000", health: { exec: "true", interval: "100ms" } } ]"#)
        .write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    (d, format!("127.0.0.1:{port}"))
}

fn scrape(addr: &str) -> std::collections::BTreeMap<String, prom::Family> {
    let r = http_get(addr, "/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    prom::parse(&r.body).unwrap_or_else(|e| panic!("bad exposition: {e}\n{}", r.body))
}

fn put(dir: &Dir, body: &str) -> Response {
    uds_request(&dir.socket(), "POST", "/v3/metric", body)
}

#[test]
fn metrics_of_every_kind_are_exposed_and_updated() {
    let dir = Dir::new("tm-kinds");
    let (mut d, addr) = telemetry_daemon(&dir, METRICS);
    d.wait_event("app.healthy", 1);
    let r = http_get(&addr, "/metrics");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(
        r.header("content-length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(r.body.len())
    );

    assert_eq!(
        put(&dir, r#"{"app_hits_total": 2, "app_queue_depth": 7}"#).status,
        200
    );
    let cfg = dir.p("cp.json5");
    let out = run(
        &[
            "-config",
            &cfg,
            "-putmetric",
            "app_hits_total=3",
            "-putmetric",
            "app_queue_depth=4.5",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{out}");
    for v in ["0.05", "0.3", "0.7", "2"] {
        assert_eq!(
            put(&dir, &format!(r#"{{"latency_seconds": {v}}}"#)).status,
            200
        );
    }
    for v in 1..=100 {
        assert_eq!(
            put(&dir, &format!(r#"{{"size_bytes": "{v}"}}"#)).status,
            200
        );
    }
    let f = scrape(&addr);
    assert_eq!(prom::value(&f, "app_hits_total", &[]), Some(5.0));
    assert_eq!(prom::value(&f, "app_queue_depth", &[]), Some(4.5));
    assert_eq!(
        f["app_hits_total"].help.as_deref(),
        Some("Requests served.\\nSecond line \\\\ slash.")
    );
    let bucket = |le| prom::value(&f, "latency_seconds_bucket", &[("le", le)]);
    assert_eq!(
        [bucket("0.1"), bucket("0.5"), bucket("1"), bucket("+Inf")],
        [Some(1.0), Some(2.0), Some(3.0), Some(4.0)]
    );
    assert_eq!(prom::value(&f, "latency_seconds_count", &[]), Some(4.0));
    assert!((prom::value(&f, "latency_seconds_sum", &[]).unwrap() - 3.05).abs() < 1e-9);
    assert_eq!(prom::value(&f, "size_bytes_count", &[]), Some(100.0));
    assert_eq!(prom::value(&f, "size_bytes_sum", &[]), Some(5050.0));
    let q = |q| prom::value(&f, "size_bytes", &[("quantile", q)]).unwrap();
    assert!((45.0..=55.0).contains(&q("0.5")), "{}", q("0.5"));
    assert!((89.0..=91.0).contains(&q("0.9")), "{}", q("0.9"));
    assert!((98.0..=100.0).contains(&q("0.99")), "{}", q("0.99"));

    // Our own families.
    assert!(prom::value(
        &f,
        "containerpilot_control_http_requests",
        &[("code", "200"), ("path", "/v3/metric")]
    )
    .is_some_and(|n| n >= 106.0));
    assert!(
        prom::value(
            &f,
            "containerpilot_events",
            &[("code", "startup"), ("source", "global")]
        ) == Some(1.0)
    );
    assert_eq!(
        prom::value(&f, "containerpilot_job_healthy", &[("job", "app")]),
        Some(1.0)
    );
    assert!(prom::value(
        &f,
        "containerpilot_job_health_check_duration_seconds_count",
        &[("job", "app")]
    )
    .is_some_and(|n| n >= 1.0));
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            prom::value(&f, name, &[]).is_some_and(|v| v > 0.0),
            "{name}"
        );
    }
    // An idle daemon may not have used a whole clock tick yet.
    assert!(prom::value(&f, "process_cpu_seconds_total", &[]).is_some_and(|v| v >= 0.0));
    // Never a pid or a value in a label.
    for fam in f.values() {
        for s in &fam.samples {
            for (k, v) in &s.labels {
                assert!(k != "pid", "{s:?}");
                assert!(
                    v.parse::<f64>().is_err() || k == "le" || k == "quantile" || k == "code",
                    "{s:?}"
                );
            }
        }
    }
}

#[test]
fn bad_metric_updates_are_rejected_whole() {
    let dir = Dir::new("tm-reject");
    let (_d, addr) = telemetry_daemon(&dir, METRICS);
    assert_eq!(put(&dir, r#"{"app_hits_total": 1}"#).status, 200);
    for body in [
        r#"{"app_hits_total": 5, "nope": 1}"#,
        r#"{"app_hits_total": 5, "app_queue_depth": "many"}"#,
        r#"{"app_hits_total": -1}"#,
        r#"{"app_hits_total": 5, "app_queue_depth": [1]}"#,
        r#"[1]"#,
    ] {
        let r = put(&dir, body);
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert!(r.json()["error"].is_string());
    }
    let f = scrape(&addr);
    assert_eq!(prom::value(&f, "app_hits_total", &[]), Some(1.0));
    assert_eq!(prom::value(&f, "app_queue_depth", &[]), Some(0.0));
    let out = run(
        &[
            "-config",
            dir.p("cp.json5").as_str(),
            "-putmetric",
            "app_hits_total=x",
        ],
        &[],
    );
    assert_ne!(out.code, 0, "{out}");
}

#[test]
fn other_paths_404_and_other_methods_405() {
    let dir = Dir::new("tm-routes");
    let (_d, addr) = telemetry_daemon(&dir, "[]");
    assert_eq!(http_get(&addr, "/nope").status, 404);
    let r = http_request(&addr, "POST", "/metrics", "{}");
    assert_eq!(r.status, 405);
    assert!(
        r.header("allow").is_some_and(|a| a.contains("GET")),
        "{r:?}"
    );
    let r = http_request(&addr, "DELETE", "/status", "");
    assert_eq!(r.status, 405);
}

#[test]
fn status_is_the_control_plane_document_with_the_telemetry_service() {
    let dir = Dir::new("tm-status");
    let (mut d, addr) = telemetry_daemon(&dir, "[]");
    d.wait_event("app.healthy", 1);
    let tcp = http_get(&addr, "/status");
    assert_eq!(tcp.status, 200);
    assert_eq!(tcp.header("content-type"), Some("application/json"));
    let uds = uds_request(&dir.socket(), "GET", "/v3/status", "");
    assert_eq!(tcp.json(), uds.json());
    let st = tcp.json();
    let svc = |name: &str| -> Value {
        st["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    let cp = svc("containerpilot");
    assert_eq!(cp["status"], "healthy");
    assert_eq!(cp["address"], "127.0.0.1");
    assert_eq!(
        cp["port"].as_u64(),
        addr.rsplit(':').next().unwrap().parse::<u64>().ok()
    );
    assert_eq!(svc("app")["status"], "healthy");

    assert_eq!(
        uds_request(&dir.socket(), "POST", "/v3/maintenance/enable", "").status,
        200
    );
    let st = http_get(&addr, "/status").json();
    assert_eq!(st["maintenance"], true);
    for s in st["services"].as_array().unwrap() {
        assert_eq!(s["status"], "maintenance", "{s}");
    }
}

#[test]
fn telemetry_bind_failure_names_the_address() {
    let dir = Dir::new("tm-bind");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = dir
        .cfg()
        .top(&format!(
            r#"telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"] }}"#
        ))
        .jobs(r#"[ { name: "app", exec: "sleep 1000" } ]"#)
        .write();
    let out = run(&["-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains(&format!("127.0.0.1:{port}")), "{out}");
    assert!(!dir.socket().exists(), "no control socket left behind");
}

#[test]
fn metric_values_survive_a_reload_when_unchanged() {
    let dir = Dir::new("tm-reload");
    let (_d, addr) = telemetry_daemon(&dir, METRICS);
    assert_eq!(
        put(&dir, r#"{"app_hits_total": 4, "app_queue_depth": 9}"#).status,
        200
    );
    // Same metrics except the gauge's help text: the gauge starts over.
    let changed = METRICS.replace("Queue depth.", "Depth of the queue.");
    let text = std::fs::read_to_string(dir.path("cp.json5"))
        .unwrap()
        .replace(METRICS, &changed);
    std::fs::write(dir.path("cp.json5"), text).unwrap();
    let r = uds_request(&dir.socket(), "POST", "/v3/reload", "");
    assert_eq!(r.status, 200, "{r:?}");
    let f = scrape(&addr);
    assert_eq!(prom::value(&f, "app_hits_total", &[]), Some(4.0));
    assert_eq!(prom::value(&f, "app_queue_depth", &[]), Some(0.0));
}

#[test]
fn promtool_accepts_the_exposition() {
    if Command::new("promtool").arg("--version").output().is_err() {
        skip("promtool not installed (Debian package prometheus; .ci/run installs it)");
        return;
    }
    let dir = Dir::new("tm-promtool");
    let (_d, addr) = telemetry_daemon(&dir, METRICS);
    assert_eq!(
        put(
            &dir,
            r#"{"app_hits_total": 1, "latency_seconds": 0.2, "size_bytes": 3}"#
        )
        .status,
        200
    );
    assert_eq!(
        uds_request(&dir.socket(), "GET", "/v3/nothing", "").status,
        404
    );
    let body = http_get(&addr, "/metrics").body;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits 0 when clean; lint findings (naming advice) exit 3 but
    // are not format errors. Anything else is.
    assert!(
        out.status.success() || (out.status.code() == Some(3) && !report.contains("error")),
        "promtool: {report}\n{body}"
    );
}

/// A Prometheus server, killed with its process on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_what_we_put() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("prometheus not installed (Debian package prometheus; .ci/run installs it)");
        return;
    }
    let dir = Dir::new("tm-prometheus");
    let (mut d, addr) = telemetry_daemon(&dir, METRICS);
    let web = format!("127.0.0.1:{}", free_port());
    dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: cp\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    );
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.p("prometheus.yml")))
        .arg(format!("--storage.tsdb.path={}", dir.p("tsdb")))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        // Kept for the evidence when the test fails.
        .stderr(std::fs::File::create(dir.path("prometheus.log")).unwrap())
        .spawn()
        .expect("start prometheus");
    let _prom = Prometheus(child);
    let cfg = dir.p("cp.json5");
    let out = run(
        &[
            "-config",
            &cfg,
            "-putmetric",
            "app_hits_total=42",
            "-putmetric",
            "app_queue_depth=7.5",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{out}");

    let query = |q: &str| -> Option<f64> {
        let mut s = std::net::TcpStream::connect(&web).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        use std::io::{Read, Write};
        write!(
            s,
            "GET /api/v1/query?query={q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let resp = parse_response(&raw).ok()?;
        let v: Value = serde_json::from_str(&resp.body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let deadline = Duration::from_secs(60);
    let evidence = || std::fs::read_to_string(dir.path("prometheus.log")).unwrap_or_default();
    for (what, q, want) in [
        ("Prometheus reads app_hits_total 42", "app_hits_total", 42.0),
        (
            "Prometheus reads app_queue_depth 7.5",
            "app_queue_depth",
            7.5,
        ),
        // And it found the target healthy (no scrape errors).
        ("up == 1", "up", 1.0),
    ] {
        if !poll_until(deadline, || query(q) == Some(want)) {
            panic!(
                "timed out waiting for: {what}\n--- prometheus log ---\n{}",
                evidence()
            );
        }
    }
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}

/// Pages are cached between changes (the loop drops them before it applies
/// anything): a page read right after a change, however many were read
/// before it, shows the change.
#[test]
fn no_page_outlives_a_change() {
    let dir = Dir::new("tm-fresh");
    let port = free_port();
    let cfg = dir
        .cfg()
        .top(&format!(
            r#"telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"], metrics: [
                {{ name: "hits", help: "h", type: "counter" }} ] }}"#
        ))
        // `keep` keeps the container up while `app` is stopped.
        .jobs(r#"[ { name: "app", exec: "sleep 1000" }, { name: "keep", exec: "sleep 1000" } ]"#)
        .write();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_started();
    wait_for_socket(&dir.socket(), TIMEOUT);
    let addr = format!("127.0.0.1:{port}");
    let sock = dir.socket();
    // Both planes, each read after the change: they share the cache.
    let both = || {
        let tcp = http_get(&addr, "/status");
        let uds = uds_request(&sock, "GET", "/v3/status", "");
        assert_eq!((tcp.status, uds.status), (200, 200), "{tcp:?} {uds:?}");
        [tcp.json(), uds.json()]
    };
    let status = || both()[0].clone();
    let app = |st: &Value| {
        let services = st["services"].as_array().cloned().unwrap_or_default();
        let app = services.into_iter().find(|s| s["name"] == "app");
        app.unwrap_or_else(|| panic!("no app in {st}"))
    };
    let metrics = || {
        let r = http_get(&addr, "/metrics");
        assert_eq!(r.status, 200, "{r:?}");
        prom::parse(&r.body).unwrap_or_else(|e| panic!("bad exposition: {e}\n{}", r.body))
    };
    // Read each page a few times, so that the next read, the one after a
    // change, would find it cached if nothing dropped it.
    let settle = || {
        for _ in 0..3 {
            status();
            metrics();
        }
    };
    let post = |path: &str, body: &str| {
        let r = uds_request(&sock, "POST", path, body);
        assert_eq!(r.status, 200, "{path}: {r:?}");
    };
    wait_until(TIMEOUT, "app running", || {
        app(&status())["state"] == "running"
    });

    settle();
    post("/v3/maintenance/enable", "");
    for st in both() {
        assert_eq!(st["maintenance"], true);
        assert_eq!(app(&st)["status"], "maintenance");
    }
    let events = |m: &std::collections::BTreeMap<String, prom::Family>, code| {
        prom::value(
            m,
            "containerpilot_events",
            &[("code", code), ("source", "global")],
        )
    };
    assert_eq!(events(&metrics(), "enterMaintenance"), Some(1.0));
    settle();
    post("/v3/maintenance/disable", "");
    assert_eq!(status()["maintenance"], false);
    assert_eq!(events(&metrics(), "exitMaintenance"), Some(1.0));

    for (add, total) in [(2, 2.0), (3, 5.0), (1, 6.0)] {
        settle();
        post("/v3/metric", &format!(r#"{{"hits": {add}}}"#));
        assert_eq!(prom::value(&metrics(), "hits", &[]), Some(total));
    }

    // A stop is answered once the process is gone.
    settle();
    post("/v3/jobs/app/stop", "");
    for st in both() {
        let app = app(&st);
        assert_eq!(
            (&app["state"], &app["pid"]),
            (&"stopped".into(), &Value::Null)
        );
    }
    let exits = |outcome| {
        prom::value(
            &metrics(),
            "containerpilot_job_exits_total",
            &[("job", "app"), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(exits("failed") + exits("success"), 1.0);

    // Facts the workers report (a start, an exit) show up while the pages
    // are read over and over.
    post("/v3/jobs/app/start", "");
    let mut pid = 0;
    wait_until(TIMEOUT, "app running again", || {
        let st = status();
        pid = app(&st)["pid"].as_i64().unwrap_or(0);
        pid > 0 && app(&st)["runs"] == 2
    });
    settle();
    d.signal_pid(pid as i32, Signal::SIGKILL);
    wait_until(TIMEOUT, "the kill seen", || {
        app(&status())["last_exit_code"] == 137 && exits("failed") + exits("success") == 2.0
    });
}
