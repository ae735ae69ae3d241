//! The real-world config corpus (`shared/corpus`, see its PROVENANCE.md):
//! every file goes through `containerpilot -validate` with a clean environment
//! plus the variables its manifest suggests, and the outcome must be the one
//! expected for its schema: every v3 config validates except the 6 with
//! upstream JSON5 syntax errors and the 4 that 3.x refused as well (a `tll`
//! typo, `when.event`, and two documentation examples whose `health` has no
//! `interval`); the 11 that 3.x ran but an earlier version of this project
//! refused (a `when.source` naming nothing, two jobs sharing a name) validate
//! with a warning. Every 2.x/1.x config is refused with the migration hint.
//! Also the hostile inputs of SPEC §2 (truncated, binary, deeply nested,
//! huge): a clear error and exit 1, never a panic.
//!
//! Configs name interfaces (`eth0`, `eth1`, `ethwe`, `en0`, `lo0`, ...) that
//! this machine may not have. When we may (root, with `unshare`, `ip` and
//! `nsenter`), the checks run inside a private network namespace that has
//! every one of them; otherwise the files whose only problem is a missing
//! interface are skipped, and the test says so.
//!
//! Self-contained on purpose (its own runner and scratch dirs), but for
//! `support::skip`, so that a skipped check is always seen.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::resource::{setrlimit, Resource};

const BIN: &str = env!("CARGO_BIN_EXE_containerpilot");

/// Interface names the corpus uses; each gets an IPv4 and an IPv6 address.
const INTERFACES: [&str; 6] = ["eth0", "eth1", "ethwe", "en0", "lo0", "docker0"];

/// The v3 files that parse but are rejected, each with the text the error
/// must contain: the 4 that ContainerPilot 3.x refused as well. Every other
/// v3 file that parses must validate (SPEC §2.1: a config that ran under 3.x
/// still runs).
const EXPECTED_INVALID: &[(&str, &str)] = &[
    // `tll` typo on an advertised job; 3.x rejected it as an unknown key.
    (
        "joyent__containerpilot__docs_30-configuration_examples_stopping.json5",
        "job[app].health.ttl is required",
    ),
    // `when: {source, event}`: 3.x rejected `event` as an unknown key.
    (
        "flaneur__hello-world__nginx_containerpilot.json5",
        "job[nginx].when needs 'once' or 'each'",
    ),
    // Documentation examples whose `health` has no `interval`: 3.x said
    // "health.interval must be > 0".
    (
        "joyent__containerpilot__docs_30-configuration_examples_database-config.json5",
        "job[consul-agent].health.interval is required",
    ),
    (
        "joyent__containerpilot__docs_30-configuration_examples_service-reg-only.json5",
        "job[consul-agent].health.interval is required",
    ),
];

/// How many v3 files have upstream JSON5 syntax errors (the manifest says
/// which); they must fail with a located syntax error.
const V3_SYNTAX_ERRORS: usize = 6;

/// v3 files that validate with a warning 3.x did not give (issue #12), and
/// the text the warning must contain.
const EXPECTED_WARNINGS: &[(&str, &str)] = &[
    // `when.source` names a watch that does not exist: 3.x ran the config and
    // the job never ran; now the same, with a warning.
    (
        "geek__natsboard-docker__etc_containerpilot.json5",
        "job[onchange-nats] waits for 'watch.influxdb', which no job or watch provides; \
         it will never run",
    ),
    (
        "paperwork__service-nats__containerpilot.json5",
        "job[nats-onchange] waits for 'watch.nats', which no job or watch provides; \
         it will never run",
    ),
    (
        "paperwork__service-users-node__containerpilot.json5",
        "job[users-onchange] waits for 'watch.users', which no job or watch provides; \
         it will never run",
    ),
    // autopilotpattern/nginx and its forks: with ACME_DOMAIN set, two jobs
    // are named `nginx-public-ssl`; 3.x ran both, and so do we.
    (
        "autopilotpattern__ghost__nginx_etc_containerpilot.json5",
        DUPLICATE_SSL,
    ),
    (
        "autopilotpattern__nginx__etc_containerpilot.json5",
        DUPLICATE_SSL,
    ),
    (
        "autopilotpattern__nginx__examples_containerpilot.json5",
        DUPLICATE_SSL,
    ),
    (
        "double16__autopilotpattern-nginx__examples_containerpilot.json5",
        DUPLICATE_SSL,
    ),
    ("Eepa__nginx__etc_containerpilot.json5", DUPLICATE_SSL),
    ("Eepa__nginx__examples_containerpilot.json5", DUPLICATE_SSL),
    ("Thomanphan__nginx__etc_containerpilot.json5", DUPLICATE_SSL),
    (
        "Thomanphan__nginx__examples_containerpilot.json5",
        DUPLICATE_SSL,
    ),
];

const DUPLICATE_SSL: &str = "warning: jobs[4] and jobs[5] are both named 'nginx-public-ssl'";

/// `CONTAINERPILOT_CORPUS`, else `shared/corpus` beside the checkout or
/// beside any directory above it (a clone made elsewhere for CI included).
fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CONTAINERPILOT_CORPUS") {
        return PathBuf::from(dir);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/corpus"))
        .find(|c| c.join("manifest.json").is_file())
        .unwrap_or_else(|| here.join("../shared/corpus"))
}

/// One manifest entry, the fields this test needs.
struct Entry {
    file: String,
    schema: String,
    templated: bool,
    /// The survey's own renderer+parser could parse it with `env`.
    parses: bool,
    env: Vec<(String, String)>,
}

fn manifest(dir: &Path) -> Vec<Entry> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad {}: {e}", path.display()));
    let str_of = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    json.as_array()
        .expect("manifest is an array")
        .iter()
        .map(|e| Entry {
            file: str_of(e, "file"),
            schema: str_of(e, "schema"),
            templated: e["templated"].as_bool().unwrap_or(false),
            parses: e["render_parse_suggested_env"] == "ok",
            env: e["suggest_env"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// A unique scratch directory under Cargo's target tmp dir.
fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "corpus-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A private network namespace held open by a shell that waits on its stdin;
/// dropping it closes the pipe, the shell exits and the namespace goes away.
struct NetNs {
    holder: Child,
    stdin: Option<ChildStdin>,
    ns: String,
}

impl NetNs {
    fn create() -> Result<NetNs, String> {
        for tool in ["unshare", "ip", "nsenter"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !found {
                return Err(format!("'{tool}' is not installed"));
            }
        }
        let mut script = String::from("set -e\nip link set lo up\n");
        for (i, name) in INTERFACES.iter().enumerate() {
            script.push_str(&format!(
                "ip link add {name} type veth peer name cpx{i}\n\
                 ip addr add 10.{n}.0.2/24 dev {name}\n\
                 ip -6 addr add fd00:{n}::2/64 dev {name} nodad\n\
                 ip link set {name} up\nip link set cpx{i} up\n",
                n = i + 1
            ));
        }
        script.push_str("echo ready\nexec cat >/dev/null\n");
        let mut holder = Command::new("unshare")
            .args(["--net", "sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let stdin = holder.stdin.take();
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("piped stdout");
        // Blocks until the script prints `ready` or dies (EOF): no timing guess.
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "ready" {
            drop(stdin);
            let out = holder.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "cannot set up a network namespace ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let ns = format!("/proc/{}/ns/net", holder.id());
        Ok(NetNs { holder, stdin, ns })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.ns)).arg("--").arg(program);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Runs the binary, in the namespace when there is one.
struct Runner {
    netns: Option<NetNs>,
}

impl Runner {
    fn run(&self, args: &[&str], env: &[(String, String)]) -> Output {
        let mut cmd = match &self.netns {
            Some(ns) => ns.command(BIN),
            None => Command::new(BIN),
        };
        cmd.args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd.output().expect("run containerpilot")
    }
}

/// `L:C:` somewhere in the text.
fn has_line_col(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_digit() || c == ':'))
        .any(|w| {
            let mut parts = w.split(':');
            matches!(
                (parts.next(), parts.next(), parts.next()),
                (Some(l), Some(c), Some("")) if !l.is_empty() && !c.is_empty()
            )
        })
}

/// What a file should do, or why it cannot be checked here.
enum Expect {
    /// Exit 0, and stderr contains every one of these (warnings).
    Valid(Vec<&'static str>),
    /// Exit 1 and stderr contains every one of these.
    Invalid(Vec<&'static str>),
    /// Exit 1 with a `line:col` syntax error.
    Syntax,
}

fn expectation(e: &Entry, name: &str) -> Expect {
    if e.schema.starts_with("v3 fragment") {
        return if name.contains("TestErr") {
            Expect::Invalid(vec!["invalid config: job[serviceA].consul."])
        } else {
            Expect::Valid(Vec::new())
        };
    }
    if !e.parses {
        return Expect::Syntax;
    }
    if e.schema.starts_with('v') && !e.schema.starts_with("v3") {
        return Expect::Invalid(vec!["schema", "not supported", "'jobs'", "'watches'"]);
    }
    if let Some((_, msg)) = EXPECTED_INVALID.iter().find(|(f, _)| *f == name) {
        return Expect::Invalid(vec![msg]);
    }
    Expect::Valid(
        EXPECTED_WARNINGS
            .iter()
            .filter(|(f, _)| *f == name)
            .map(|(_, w)| *w)
            .collect(),
    )
}

/// v3-fragments hold the value of `jobs`, `watches` or `telemetry`: wrap it.
fn wrap_fragment(path: &Path, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(path).expect("read fragment");
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    let wrapped = if name.contains("__jobs_") {
        format!("{{consul: 'localhost:8500', jobs: {text}}}")
    } else if name.contains("__watches_") {
        format!("{{consul: 'localhost:8500', watches: {text}}}")
    } else {
        format!("{{telemetry: {text}}}")
    };
    let out = dir.join(name);
    std::fs::write(&out, wrapped).expect("write wrapped fragment");
    out
}

#[test]
fn every_corpus_file_validates_as_expected() {
    let dir = corpus_dir();
    if !dir.join("manifest.json").is_file() {
        crate::support::skip(&format!(
            "\n!!!!!!!!\ncorpus not found at {} (set CONTAINERPILOT_CORPUS)\n!!!!!!!!",
            dir.display()
        ));
        return;
    }
    let runner = match NetNs::create() {
        Ok(ns) => Runner { netns: Some(ns) },
        Err(reason) => {
            crate::support::skip(&format!(
                "no private network namespace ({reason}); files that fail only \
                 for a missing interface are skipped"
            ));
            Runner { netns: None }
        }
    };
    let scratch = scratch("fragments");
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    // The whole v3 configs alone, for the summary this corpus exists to prove.
    let mut v3_counts: HashMap<&'static str, usize> = HashMap::new();
    let entries = manifest(&dir);
    assert!(
        entries.len() > 200,
        "manifest has only {} entries",
        entries.len()
    );
    for e in &entries {
        let path = dir.join(&e.file);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let expect = expectation(e, &name);
        let config = if e.schema.starts_with("v3 fragment") {
            wrap_fragment(&path, &scratch)
        } else {
            path.clone()
        };
        let config_arg = config.to_str().expect("utf-8 path");
        if e.templated {
            // Until the template engine exists (it passes the text through
            // unchanged), a templated file cannot be judged.
            let rendered = runner.run(&["-template", "-config", config_arg], &e.env);
            if std::fs::read(&config).is_ok_and(|raw| raw == rendered.stdout) {
                skipped.push(format!("{}: template not rendered", e.file));
                continue;
            }
        }
        let out = runner.run(&["-validate", "-config", config_arg], &e.env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        let evidence = || {
            format!(
                "{}\n  env: {:?}\n  exit: {:?}\n  stdout: {}\n  stderr: {}",
                e.file,
                e.env,
                code,
                String::from_utf8_lossy(&out.stdout).trim(),
                stderr.trim()
            )
        };
        if stderr.contains("panicked") {
            failures.push(format!("PANIC: {}", evidence()));
            continue;
        }
        if runner.netns.is_none() && stderr.contains("none of the interfaces") {
            skipped.push(format!("{}: needs an interface this machine lacks", e.file));
            continue;
        }
        let (label, good) = match &expect {
            Expect::Valid(needles) => (
                "valid",
                code == Some(0) && needles.iter().all(|n| stderr.contains(n)),
            ),
            Expect::Invalid(needles) => (
                "rejected",
                code == Some(1) && needles.iter().all(|n| stderr.contains(n)),
            ),
            Expect::Syntax => (
                "syntax error",
                code == Some(1) && stderr.contains("cannot parse config:") && has_line_col(&stderr),
            ),
        };
        if good {
            *counts.entry(label).or_default() += 1;
            if e.schema == "v3" {
                *v3_counts.entry(label).or_default() += 1;
            }
        } else {
            failures.push(format!("expected {label}: {}", evidence()));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mut summary: Vec<_> = counts.into_iter().collect();
    summary.sort();
    eprintln!("corpus: {} files, as expected: {summary:?}", entries.len());
    if !skipped.is_empty() {
        crate::support::skip(&format!(
            "{} files could not be checked here:",
            skipped.len()
        ));
        for s in &skipped {
            eprintln!("  SKIP {s}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus files did not behave as expected:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // Every v3 config validates but the upstream syntax errors and the ones
    // 3.x refused as well.
    if skipped.is_empty() {
        let v3 = entries.iter().filter(|e| e.schema == "v3").count();
        let count = |label| v3_counts.get(label).copied().unwrap_or(0);
        assert_eq!(count("syntax error"), V3_SYNTAX_ERRORS, "{v3_counts:?}");
        assert_eq!(count("rejected"), EXPECTED_INVALID.len(), "{v3_counts:?}");
        assert_eq!(
            count("valid"),
            v3 - V3_SYNTAX_ERRORS - EXPECTED_INVALID.len(),
            "{v3_counts:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Hostile inputs (SPEC §2): a clear error and exit 1, never a panic.

fn validate_file(name: &str, contents: &[u8]) -> (Option<i32>, String) {
    let dir = scratch("bad");
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(contents))
        .expect("write test config");
    let out = Command::new(BIN)
        .args(["-validate", "-config"])
        .arg(&path)
        .env_clear()
        .output()
        .expect("run containerpilot");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
    (out.status.code(), stderr)
}

const GOOD: &str = "{\n  consul: 'localhost:8500',\n  jobs: [\n    {\n      name: 'app',\n      \
                    exec: ['/bin/app', '-v'],\n      when: {interval: '5s'},\n    },\n  ],\n}\n";

#[test]
fn truncated_files_fail_with_a_located_error() {
    for cut in [1, GOOD.len() / 3, GOOD.len() / 2, GOOD.len() - 3] {
        let (code, stderr) = validate_file("truncated.json5", &GOOD.as_bytes()[..cut]);
        assert_eq!(code, Some(1), "cut at {cut}: {stderr}");
        assert!(
            stderr.contains("cannot parse config:"),
            "cut at {cut}: {stderr}"
        );
        assert!(has_line_col(&stderr), "cut at {cut}: {stderr}");
    }
    let (code, stderr) = validate_file("whole.json5", GOOD.as_bytes());
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn binary_junk_fails_cleanly() {
    let junk: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    let (code, stderr) = validate_file("junk.bin", &junk);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not UTF-8"), "{stderr}");
    // Valid UTF-8 but not JSON5.
    let text: Vec<u8> = (1..128u8).cycle().take(10_000).collect();
    let (code, stderr) = validate_file("junk.txt", &text);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot parse config: 1:1:"), "{stderr}");
    let (code, stderr) = validate_file("empty.json5", b"  // nothing here\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("config is empty"), "{stderr}");
}

#[test]
fn deep_nesting_fails_cleanly() {
    let deep = format!("{{a: {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let (code, stderr) = validate_file("deep.json5", deep.as_bytes());
    assert_eq!(code, Some(1), "{}", &stderr[..stderr.len().min(500)]);
    assert!(
        stderr.contains("nesting deeper than 100"),
        "{}",
        &stderr[..stderr.len().min(500)]
    );
    // The offending line is shown as a window, not 200 000 characters.
    assert!(stderr.len() < 1000, "{} bytes of stderr", stderr.len());
    let open = "{a:".repeat(100_000);
    let (code, stderr) = validate_file("open.json5", open.as_bytes());
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("nesting deeper than 100"),
        "{}",
        &stderr[..stderr.len().min(500)]
    );
}

#[test]
fn ten_megabyte_files() {
    // Under the 10 000 jobs allowed: each job carries a kilobyte of arguments.
    let payload = "x".repeat(1024);
    let mut text = String::from("{consul: 'localhost:8500', jobs: [\n");
    let mut i = 0;
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&format!(
            "  {{name: 'job-{i}', exec: ['/bin/task', '--id', '{i}', '{payload}'], \
             when: {{interval: '1m'}}}},\n"
        ));
        i += 1;
    }
    text.push_str("]}\n");
    let (code, stderr) = validate_file("big.json5", text.as_bytes());
    assert_eq!(code, Some(0), "{}", &stderr[..stderr.len().min(500)]);
    // The same with a missing comma on its last line: located, not lost.
    let lines = text.lines().count();
    text.truncate(text.len() - 3);
    text.push_str("  {name: 'last' exec: 'x'}\n]}\n");
    let (code, stderr) = validate_file("big-bad.json5", text.as_bytes());
    assert_eq!(code, Some(1), "{}", &stderr[..stderr.len().min(500)]);
    assert!(
        stderr.contains(&format!(
            "cannot parse config: {lines}:17: expected ',' or '}}'"
        )),
        "{}",
        &stderr[..stderr.len().min(500)]
    );
    // More jobs than supported: a clear error (each would cost half a
    // kilobyte validated, forty times its size in a file of tiny jobs).
    let tiny: String = (0..100_000)
        .map(|i| format!("{{name: 'j{i}', exec: 'x'}},"))
        .collect();
    let (code, stderr) = validate_file("many.json5", format!("{{jobs: [{tiny}]}}").as_bytes());
    assert_eq!(code, Some(1), "{}", &stderr[..stderr.len().min(500)]);
    assert!(
        stderr.contains("jobs: 100000 jobs is more than the 10000 supported"),
        "{}",
        &stderr[..stderr.len().min(500)]
    );
}

// ---------------------------------------------------------------------------
// Issue #12 (found by fuzzing): long unknown keys or values made the "did you
// mean" suggestion cost memory and time in proportion to their length; a
// 4 MB unknown key took 9.6 s and 569 MB in `-validate` and was killed under
// a 512 MiB limit.

/// Address space allowed to `-validate` below: a quarter of what the 4 MB
/// key alone used to take.
const MEMORY_LIMIT: u64 = 128 << 20;
/// Only so that a regression fails instead of hanging; nothing is timed.
const DEADLINE: Duration = Duration::from_secs(120);

/// `-validate` on `contents` under `MEMORY_LIMIT`: exit code (None when
/// killed by a signal) and stderr.
fn validate_limited(name: &str, contents: &str) -> (Option<i32>, String) {
    let dir = scratch("limited");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test config");
    let mut cmd = Command::new(BIN);
    cmd.args(["-validate", "-config"])
        .arg(&path)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure only makes the setrlimit system call, which is
    // async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            setrlimit(Resource::RLIMIT_AS, MEMORY_LIMIT, MEMORY_LIMIT).map_err(io::Error::from)
        });
    }
    let mut child = cmd.spawn().expect("run containerpilot");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let until = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for containerpilot") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name}: -validate did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
    (status.code(), stderr)
}

#[test]
fn a_four_megabyte_key_or_value_is_cheap_to_validate() {
    let long = "A".repeat(4 << 20);
    let cases = [
        (
            "key.json5",
            format!("{{\"{long}\": 1}}"),
            0,
            "AAAA...: unknown key",
        ),
        (
            "job-key.json5",
            format!("{{jobs: [{{name: 'a', exec: 'x', \"{long}\": 1}}]}}"),
            0,
            "job[a].AAAA",
        ),
        (
            "value.json5",
            format!("{{jobs: [{{name: 'a', exec: 'x', shutdownOn: '{long}'}}]}}"),
            1,
            "job[a].shutdownOn must be one of",
        ),
        (
            "source.json5",
            format!(
                "{{jobs: [{{name: 'a', exec: 'x', when: {{source: '{long}', once: 'healthy'}}}}]}}"
            ),
            0,
            "which no job or watch provides; it will never run",
        ),
        (
            "name.json5",
            format!("{{jobs: [{{name: '{long}', exec: 'x', nmae: 1, tll: 2}}]}}"),
            0,
            "jobs[0].tll: unknown key",
        ),
    ];
    for (name, text, code, needle) in cases {
        let (got, stderr) = validate_limited(name, &text);
        let head = &stderr[..stderr.len().min(1000)];
        assert_eq!(
            got,
            Some(code),
            "{name}: not the expected exit (None = killed)\n{head}"
        );
        assert!(
            stderr.contains(needle),
            "{name}: {needle:?} missing\n{head}"
        );
        // The value is quoted cut short, never whole.
        assert!(
            stderr.len() < 10_000,
            "{name}: {} bytes of stderr",
            stderr.len()
        );
    }
}

#[test]
fn many_unknown_keys_or_sources_are_cheap_to_validate() {
    let keys: Vec<String> = (0..200_000).map(|i| format!("k{i}: 1")).collect();
    let (code, stderr) = validate_limited("keys.json5", &format!("{{{}}}", keys.join(",")));
    assert_eq!(code, Some(0), "{}", &stderr[..stderr.len().min(1000)]);
    assert!(
        stderr.contains("199000 more warnings not shown"),
        "{}",
        &stderr[stderr.len().saturating_sub(500)..]
    );
    let jobs: Vec<String> = (0..10_000)
        .map(|i| format!("{{name: 'j{i}', exec: 'x', when: {{source: 'n{i}', once: 'healthy'}}}}"))
        .collect();
    let (code, stderr) =
        validate_limited("sources.json5", &format!("{{jobs: [{}]}}", jobs.join(",")));
    assert_eq!(code, Some(0), "{}", &stderr[..stderr.len().min(1000)]);
    assert!(
        stderr.contains("job[j0] waits for 'n0'"),
        "{}",
        &stderr[..stderr.len().min(1000)]
    );
}
