//! The command line (SPEC §1): flags and their spellings, usage errors (exit 2),
//! config errors (exit 1), `-version`, `-help`, `-template`/`-out`, `-validate`,
//! and `CONTAINERPILOT` as the fallback for `-config`.

use crate::support::*;

/// Every flag SPEC §1 lists.
const FLAGS: [&str; 20] = [
    "-config",
    "-version",
    "-template",
    "-out",
    "-ping",
    "-putenv",
    "-putmetric",
    "-reload",
    "-maintenance",
    "-validate",
    "-healthcheck",
    "-start",
    "-stop",
    "-restart",
    "-signal",
    "-logs",
    "-n",
    "-follow",
    "-status",
    "-help",
];

/// A config that validates and runs to completion at once: one job that
/// writes a marker file and exits.
fn runnable(dir: &Dir) -> std::path::PathBuf {
    let exec = dir.sh("mark", &format!("echo ran > {}", dir.p("marker")));
    dir.cfg()
        .jobs(&format!("[{{ name: \"mark\", exec: {exec} }}]"))
        .write()
}

/// An invalid config: `restarts` must be "never", "unlimited" or a count.
fn invalid(dir: &Dir) -> std::path::PathBuf {
    dir.cfg()
        .jobs(r#"[{ name: "app", exec: "true", restarts: "sometimes" }]"#)
        .write()
}

/// A usage error is one line naming the problem plus one pointing at -help.
fn assert_usage_error(out: &Output, mentions: &str) {
    assert_eq!(out.code, 2, "usage errors exit 2\n{out}");
    assert!(out.stdout.is_empty(), "nothing on stdout\n{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one error line plus the -help pointer\n{out}"
    );
    assert!(
        lines[0].contains(mentions),
        "first line names {mentions:?}\n{out}"
    );
    assert!(
        lines[1].contains("-help"),
        "second line points at -help\n{out}"
    );
}

#[test]
fn version_prints_version_and_githash() {
    for flag in ["-version", "--version", "-version=true"] {
        let out = run(&[flag], &[]);
        assert_eq!(out.code, 0, "{flag}\n{out}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{flag}\n{out}");
        let v = lines[0]
            .strip_prefix("Version: ")
            .unwrap_or_else(|| panic!("{out}"));
        assert_eq!(v, env!("CARGO_PKG_VERSION"), "{out}");
        assert!(lines[1].starts_with("GitHash: "), "{out}");
        assert!(lines[1].len() > "GitHash: ".len(), "{out}");
    }
}

/// `GitHash` is the commit the binary was built from (build.rs), not
/// `unknown`, when built from a git checkout.
#[test]
fn version_githash_is_the_checkout_head() {
    let out = run(&["-version"], &[]);
    assert_eq!(out.code, 0, "{out}");
    let hash = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("GitHash: "))
        .unwrap_or_else(|| panic!("no GitHash line\n{out}"));
    // A packager's override wins over git (build.rs).
    if let Ok(given) = std::env::var("CONTAINERPILOT_GIT_HASH") {
        assert_eq!(hash, given, "{out}");
        return;
    }
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    let head = match git {
        Ok(g) if g.status.success() => String::from_utf8_lossy(&g.stdout).trim().to_string(),
        Ok(g) => {
            return skip(&format!(
                "not a git checkout: git rev-parse says {}",
                String::from_utf8_lossy(&g.stderr).trim()
            ))
        }
        Err(e) => return skip(&format!("cannot run git: {e}")),
    };
    assert_ne!(hash, "unknown", "{out}");
    assert_eq!(hash, head, "GitHash is HEAD of the checkout\n{out}");
}

#[test]
fn help_lists_every_flag_and_exits_zero() {
    for flag in ["-help", "--help", "-h"] {
        let out = run(&[flag], &[]);
        assert_eq!(out.code, 0, "{flag}\n{out}");
        // The code prints usage on stdout (SPEC §1 names no stream).
        for f in FLAGS {
            let listed = out.stdout.lines().any(|l| {
                let l = l.trim_start();
                l == f || l.starts_with(&format!("{f} "))
            });
            assert!(listed, "{flag}: usage lists {f}\n{out}");
        }
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    for flag in ["-bogus", "--bogus", "-bogus=1"] {
        let out = run(&[flag], &[]);
        assert_usage_error(&out, "bogus");
    }
}

#[test]
fn bad_flag_values_are_usage_errors() {
    assert_usage_error(&run(&["-maintenance", "sideways"], &[]), "sideways");
    assert_usage_error(&run(&["-maintenance=sideways"], &[]), "sideways");
    assert_usage_error(&run(&["-version=maybe"], &[]), "maybe");
    assert_usage_error(&run(&["-signal", "web"], &[]), "-signal");
    assert_usage_error(&run(&["-logs", "web", "-n", "0"], &[]), "-n");
    assert_usage_error(&run(&["-logs", "web", "-n", "x"], &[]), "-n");
    // A value flag with nothing after it.
    assert_usage_error(&run(&["-config"], &[]), "-config");
    // A stray argument after the flags.
    let dir = Dir::new("stray");
    let cfg = runnable(&dir);
    assert_usage_error(
        &run(&["-config", cfg.to_str().unwrap(), "extra"], &[]),
        "extra",
    );
}

#[test]
fn missing_config_flag_is_a_usage_error() {
    let out = run(&[], &[]);
    assert_usage_error(&out, "-config");
    // An empty CONTAINERPILOT does not count as a config.
    let out = run(&[], &[("CONTAINERPILOT", "")]);
    assert_usage_error(&out, "-config");
    let out = run(&["-validate"], &[]);
    assert_usage_error(&out, "-config");
}

#[test]
fn config_file_missing_exits_1_naming_the_path() {
    let dir = Dir::new("nofile");
    let missing = dir.p("does-not-exist.json5");
    // Every spelling of the flag reaches the same file.
    for args in [
        vec!["-config", missing.as_str()],
        vec!["--config", missing.as_str()],
    ] {
        let out = run(&args, &[]);
        assert_eq!(out.code, 1, "{args:?}\n{out}");
        assert!(
            out.stderr.contains(&missing),
            "{args:?} names the path\n{out}"
        );
    }
    for flag in ["-config=", "--config="] {
        let arg = format!("{flag}{missing}");
        let out = run(&[arg.as_str()], &[]);
        assert_eq!(out.code, 1, "{arg}\n{out}");
        assert!(out.stderr.contains(&missing), "{arg} names the path\n{out}");
    }
    for mode in ["-validate", "-template"] {
        let out = run(&[mode, "-config", &missing], &[]);
        assert_eq!(out.code, 1, "{mode}\n{out}");
        assert!(
            out.stderr.contains(&missing),
            "{mode} names the path\n{out}"
        );
    }
}

#[test]
fn containerpilot_env_var_is_the_config_path_when_flag_absent() {
    let dir = Dir::new("envvar");
    // As in 3.x: CONTAINERPILOT holds a plain path (2.x used file://).
    let missing = dir.p("from-env.json5");
    let out = run(&[], &[("CONTAINERPILOT", &missing)]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains(&missing), "{out}");

    // -config wins over the variable.
    let cfg = runnable(&dir);
    let out = run(
        &["-config", cfg.to_str().unwrap()],
        &[("CONTAINERPILOT", &missing)],
    );
    assert_eq!(out.code, 0, "-config wins\n{out}");

    // And the variable alone runs the config.
    std::fs::remove_file(dir.path("marker")).expect("first run wrote the marker");
    let out = run(&[], &[("CONTAINERPILOT", cfg.to_str().unwrap())]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(dir.read("marker"), "ran\n", "{out}");
}

#[test]
fn validate_accepts_a_good_config_in_every_spelling() {
    let dir = Dir::new("validok");
    let cfg = runnable(&dir);
    let c = cfg.to_str().unwrap();
    let eq = format!("-config={c}");
    let eq2 = format!("--config={c}");
    for args in [
        vec!["-validate", "-config", c],
        vec!["--validate", "--config", c],
        vec!["-validate=true", eq.as_str()],
        vec![eq2.as_str(), "--validate"],
    ] {
        let out = run(&args, &[]);
        assert_eq!(out.code, 0, "{args:?}\n{out}");
        assert!(out.stdout.contains(c), "{args:?}: names the file\n{out}");
    }
    assert!(!dir.exists("marker"), "-validate runs nothing");
}

#[test]
fn validate_rejects_a_bad_config_naming_the_field() {
    let dir = Dir::new("validbad");
    let cfg = invalid(&dir);
    let out = run(&["-validate", "-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("job[app]"), "{out}");
    assert!(out.stderr.contains("restarts"), "{out}");
}

#[test]
fn validate_prints_warnings_and_still_exits_0() {
    // Issue #12: what 3.x ran must still run; what looks wrong is said.
    let dir = Dir::new("validwarn");
    let cfg = dir.config(
        r#"{
  jobs: [
    { name: "web", exec: "true" },
    { name: "web", exec: "true" },
    { name: "hook", exec: "true", when: { source: "watch.influxdb", each: "changed" } },
    { name: "main", exec: "true", restarts: "unlimited", shutdownOn: "exitFailed" },
    { name: "both", exec: "true", when: { all: ["web", "nowhere"], once: "healthy" } },
  ],
}"#,
    );
    let out = run(&["-validate", "-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "{out}");
    for w in [
        "warning: jobs[0] and jobs[1] are both named 'web'",
        "warning: job[hook] waits for 'watch.influxdb', which no job or watch provides; \
         it will never run",
        "warning: job[main].shutdownOn 'exitFailed' can never fire",
        "warning: job[both] waits for 'nowhere', which no job or watch provides; it will never run",
    ] {
        assert!(out.stderr.contains(w), "{w:?} missing\n{out}");
    }
}

#[test]
fn validate_names_the_job_and_field_of_new_keys() {
    let dir = Dir::new("validnew");
    for (job, error) in [
        (
            r#"{ name: "app", exec: "true", restartDelay: -1 }"#,
            "job[app].restartDelay must be >= 0",
        ),
        (
            r#"{ name: "app", exec: "true", shutdownOn: "exitFail" }"#,
            "did you mean 'exitFailed'?",
        ),
        (
            r#"{ name: "web", exec: "true", when: { all: [], once: "healthy" } }"#,
            "job[web].when.all must not be empty",
        ),
        (
            r#"{ name: "db", exec: "true", health: { http: "localhost:5432", interval: 5 } }"#,
            "job[db].health.http: not an http:// URL",
        ),
        (
            r#"{ name: "app", exec: "true", health: { exec: "c", tcp: "db:1", interval: 5 } }"#,
            "job[app].health: only one of exec, http, tcp",
        ),
        (
            r#"{ exec: "true", logging: { keep: -1 } }"#,
            "jobs[0].logging.keep must be >= 0",
        ),
    ] {
        let cfg = dir.config(&format!("{{ jobs: [{job}] }}"));
        let out = run(&["-validate", "-config", cfg.to_str().unwrap()], &[]);
        assert_eq!(out.code, 1, "{job}\n{out}");
        assert!(out.stderr.contains(error), "{error:?} missing\n{out}");
    }
}

#[test]
fn validate_reports_json5_syntax_errors_with_a_caret() {
    let dir = Dir::new("syntax");
    let cfg = dir.config("{\n  jobs: [\n    { name: \"a\", exec: \"true\" ]\n}\n");
    let out = run(&["-validate", "-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("3:"), "line 3 is named\n{out}");
    assert!(
        out.stderr.contains('^'),
        "a caret points at the problem\n{out}"
    );
}

#[test]
fn config_errors_at_start_up_exit_1_and_run_nothing() {
    let dir = Dir::new("startbad");
    let exec = dir.sh("mark", &format!("echo ran > {}", dir.p("marker")));
    let cfg = dir
        .cfg()
        .jobs(&format!(
            r#"[{{ name: "mark", exec: {exec} }}, {{ name: "app", exec: "true", restarts: "sometimes" }}]"#
        ))
        .write();
    let out = run(&["-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("job[app]"), "{out}");
    assert!(
        !dir.exists("marker"),
        "no job runs from an invalid config\n{out}"
    );
}

#[test]
fn template_prints_the_rendered_config() {
    let dir = Dir::new("template");
    let src = "{\n  // {{ .GREETING }}\n  jobs: [{ name: \"{{ .NAME | default \"dflt\" }}\", exec: \"true\" }],\n  x: \"{{ .UNSET }}\",\n}\n";
    let cfg = dir.config(src);
    let c = cfg.to_str().unwrap();
    let out = run(&["-template", "-config", c], &[("GREETING", "hello=world")]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        out.stdout,
        "{\n  // hello=world\n  jobs: [{ name: \"dflt\", exec: \"true\" }],\n  x: \"\",\n}\n",
        "{out}"
    );
    // `-out -` is stdout too.
    let out2 = run(
        &["-template", "-config", c, "-out", "-"],
        &[("GREETING", "hello=world")],
    );
    assert_eq!(out2.stdout, out.stdout, "{out2}");
}

#[test]
fn template_out_writes_the_file() {
    let dir = Dir::new("tplout");
    let cfg = dir.config("{ jobs: [{ name: \"{{ .NAME }}\", exec: \"true\" }] }\n");
    let dest = dir.p("rendered.json5");
    let out = run(
        &[
            "--template",
            "--config",
            cfg.to_str().unwrap(),
            "-out",
            &dest,
        ],
        &[("NAME", "web")],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.is_empty(),
        "rendered into the file, not stdout\n{out}"
    );
    assert_eq!(
        dir.read("rendered.json5"),
        "{ jobs: [{ name: \"web\", exec: \"true\" }] }\n"
    );
    // -out=FILE spelling.
    let dest2 = format!("-out={}", dir.p("r2.json5"));
    let out = run(
        &["-template", "-config", cfg.to_str().unwrap(), &dest2],
        &[("NAME", "db")],
    );
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        dir.read("r2.json5"),
        "{ jobs: [{ name: \"db\", exec: \"true\" }] }\n"
    );
}

#[test]
fn template_errors_name_the_line() {
    let dir = Dir::new("tplerr");
    let cfg = dir.config("{\n  jobs: [],\n  x: \"{{ if }}\",\n}\n");
    let out = run(&["-template", "-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("line 3"), "{out}");
}

#[test]
fn regression_a_non_utf8_argument_is_a_usage_error_naming_its_position() {
    // `containerpilot -config $'\xff'` panicked in std::env::args (exit
    // 134) instead of a usage error (issue #11).
    use std::os::unix::ffi::OsStrExt;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_containerpilot"))
        .arg("-config")
        .arg(std::ffi::OsStr::from_bytes(b"\xff"))
        .env_clear()
        .output()
        .expect("run containerpilot");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("argument 2 is not valid UTF-8"), "{err}");
    assert!(err.contains("-help"), "{err}");
}
