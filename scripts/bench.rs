//! Benchmarks for containerpilot (SPEC §8), run by `scripts/bench`.
//!
//! Every figure is measured against the real release binary with real
//! processes and sockets. This is a cargo example so it never ships in the
//! binary; `scripts/bench` builds both and prints the table.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("mark") {
        // Used as a job: record when we started running (ns since the epoch).
        let ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let _ = std::fs::write(&args[1], ns.to_string());
        return;
    }
    let bin = PathBuf::from(args.first().cloned().unwrap_or_else(|| "target/release/containerpilot".into()));
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let dir = std::env::temp_dir().join(format!("cp-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let me = std::env::current_exe().expect("own path");

    println!("| figure | measured | SPEC §8 target |");
    println!("|---|---|---|");
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    row("binary size (stripped)", format!("{:.2} MiB", size as f64 / 1048576.0), "≤ 1.5 MiB");

    startup(&bin, &me, &dir, if quick { 5 } else { 21 });
    idle(&bin, &dir, if quick { 2 } else { 10 });
    shutdown_time(&bin, &dir, if quick { 3 } else { 11 });
    reap(&bin, &dir, 1000);
    control(&bin, &dir, quick);
    let _ = std::fs::remove_dir_all(&dir);
}

fn row(name: &str, value: String, target: &str) {
    println!("| {name} | {value} | {target} |");
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !f() {
        if Instant::now() > until {
            panic!("bench: timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(bin: &Path, cfg: &Path) -> Daemon {
    let child = Command::new(bin)
        .arg("-config")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start containerpilot");
    Daemon(child)
}

fn term(d: &mut Daemon) -> Duration {
    let t = Instant::now();
    let _ = Command::new("kill").arg("-TERM").arg(d.0.id().to_string()).status();
    let _ = d.0.wait();
    t.elapsed()
}

/// Exec of containerpilot → the first job process runs, minus the same
/// exec done directly (what the job itself costs to start).
fn startup(bin: &Path, me: &Path, dir: &Path, runs: usize) {
    let mark = dir.join("mark");
    let cfg = dir.join("startup.json5");
    std::fs::write(
        &cfg,
        format!(
            r#"{{ control: {{ socket: "{}" }}, jobs: [{{ name: "mark", exec: ["{}", "mark", "{}"] }}] }}"#,
            dir.join("s.sock").display(),
            me.display(),
            mark.display()
        ),
    )
    .expect("write config");
    let mut through = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..runs {
        let _ = std::fs::remove_file(&mark);
        let t0 = now_ns();
        let mut d = start(bin, &cfg);
        wait_for("the job", Duration::from_secs(10), || std::fs::read_to_string(&mark).is_ok_and(|s| !s.is_empty()));
        let t1: u128 = std::fs::read_to_string(&mark).unwrap_or_default().trim().parse().unwrap_or(t0);
        through.push((t1.saturating_sub(t0)) as f64 / 1e6);
        let _ = d.0.wait();
        let _ = std::fs::remove_file(&mark);
        let t0 = now_ns();
        let _ = Command::new(me).arg("mark").arg(&mark).status();
        let t1: u128 = std::fs::read_to_string(&mark).unwrap_or_default().trim().parse().unwrap_or(t0);
        direct.push((t1.saturating_sub(t0)) as f64 / 1e6);
    }
    let (a, b) = (median(&mut through), median(&mut direct));
    row(
        "exec → first job process (own overhead)",
        format!("{:.2} ms ({a:.2} ms through containerpilot − {b:.2} ms direct)", (a - b).max(0.0)),
        "≤ 1 ms",
    );
}

fn proc_status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sum of context switches over every thread: each one is a wake-up.
fn switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .map(|t| {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            s.lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12) // utime + stime (fields 14 and 15)
}

fn idle(bin: &Path, dir: &Path, secs: u64) {
    let cfg = dir.join("idle.json5");
    std::fs::write(
        &cfg,
        format!(
            r#"{{ control: {{ socket: "{}" }}, jobs: [{{ name: "sleeper", exec: "sleep 100000" }}] }}"#,
            dir.join("idle.sock").display()
        ),
    )
    .expect("write config");
    let mut d = start(bin, &cfg);
    let pid = d.0.id();
    std::thread::sleep(Duration::from_secs(1));
    let (t0, s0) = (cpu_ticks(pid), switches(pid));
    std::thread::sleep(Duration::from_secs(secs));
    let (t1, s1) = (cpu_ticks(pid), switches(pid));
    let rss = proc_status(pid, "VmRSS:");
    row("RSS idle, supervising one job", format!("{:.2} MiB", rss as f64 / 1024.0), "≤ 2 MiB");
    row(&format!("CPU ticks over {secs} idle s"), format!("{}", t1 - t0), "0");
    row(&format!("wake-ups (context switches) over {secs} idle s"), format!("{}", s1 - s0), "0 with no timers");
    term(&mut d);
}

fn shutdown_time(bin: &Path, dir: &Path, runs: usize) {
    let cfg = dir.join("term.json5");
    std::fs::write(
        &cfg,
        format!(
            r#"{{ control: {{ socket: "{}" }}, jobs: [{{ name: "sleeper", exec: "sleep 100000" }}] }}"#,
            dir.join("term.sock").display()
        ),
    )
    .expect("write config");
    let mut v = Vec::new();
    for _ in 0..runs {
        let mut d = start(bin, &cfg);
        let pid = d.0.id();
        wait_for("the job", Duration::from_secs(10), || children(pid) > 0);
        v.push(term(&mut d).as_secs_f64() * 1e3);
    }
    row("SIGTERM → exit (job exits on SIGTERM)", format!("{:.2} ms", median(&mut v)), "≤ 50 ms");
}

fn children(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| s.split_whitespace().count())
        .unwrap_or(0)
}

fn zombies_of(pid: u32) -> usize {
    let Ok(all) = std::fs::read_dir("/proc") else { return 0 };
    all.flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| {
            let s = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let after = s.rsplit(')').next().unwrap_or("");
            let f: Vec<&str> = after.split_whitespace().collect();
            f.first() == Some(&"Z") && f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid)
        })
        .count()
}

fn reap(bin: &Path, dir: &Path, n: usize) {
    let done = dir.join("orphans-done");
    let cfg = dir.join("reap.json5");
    // The job forks n children that exit at once and orphans them; `done` marks the last fork.
    std::fs::write(
        &cfg,
        format!(
            r#"{{ control: {{ socket: "{}" }}, jobs: [{{ name: "orphans", exec: ["/bin/sh", "-c", "i=0; while [ $i -lt {n} ]; do ( true & ) ; i=$((i+1)); done; touch {}; exec sleep 100000"] }}] }}"#,
            dir.join("reap.sock").display(),
            done.display()
        ),
    )
    .expect("write config");
    let mut d = start(bin, &cfg);
    let pid = d.0.id();
    let t = Instant::now();
    wait_for("the orphans", Duration::from_secs(60), || done.exists());
    let left_at_end = zombies_of(pid);
    wait_for("no zombies", Duration::from_secs(30), || zombies_of(pid) == 0);
    row(
        &format!("{n} orphaned zombies reaped"),
        format!("{left_at_end} left when the last was created; all gone {:.0} ms after the first", t.elapsed().as_secs_f64() * 1e3),
        "none left",
    );
    term(&mut d);
}

fn control(bin: &Path, dir: &Path, quick: bool) {
    let sock = dir.join("ctl.sock");
    let cfg = dir.join("ctl.json5");
    std::fs::write(
        &cfg,
        format!(r#"{{ control: {{ socket: "{}" }}, jobs: [{{ name: "sleeper", exec: "sleep 100000" }}] }}"#, sock.display()),
    )
    .expect("write config");
    let mut d = start(bin, &cfg);
    wait_for("the control socket", Duration::from_secs(10), || UnixStream::connect(&sock).is_ok());
    let rss0 = proc_status(d.0.id(), "VmRSS:");

    let mut v = Vec::new();
    for _ in 0..if quick { 20 } else { 200 } {
        let t = Instant::now();
        let ok = Command::new(bin).arg("-ping").arg("-config").arg(&cfg).stdout(Stdio::null()).status();
        assert!(ok.is_ok_and(|s| s.success()), "-ping failed");
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    row("`-ping` as a whole process (median)", format!("{:.2} ms", median(&mut v)), "≤ 1 ms");

    let n = if quick { 2_000 } else { 50_000 };
    for (method, path, body, clients) in [
        ("GET", "/v3/ping", "", 1),
        ("GET", "/v3/ping", "", 4),
        ("POST", "/v3/env", r#"{"BENCH":"1"}"#, 1),
        ("POST", "/v3/env", r#"{"BENCH":"1"}"#, 4),
    ] {
        let (rps, mut lat) = load(&sock, method, path, body, clients, n);
        row(
            &format!("`{method} {path}`, {clients} client(s), new connection per request"),
            format!("{rps:.0} req/s, p50 {:.0} µs, p99 {:.0} µs", pct(&mut lat, 0.5), pct(&mut lat, 0.99)),
            if path == "/v3/ping" && clients == 1 { "≥ 21 000 req/s, p99 ≤ 150 µs" } else { "" },
        );
    }
    let rss1 = proc_status(d.0.id(), "VmRSS:");
    row(
        &format!("RSS before / after {} control requests", 4 * n),
        format!("{:.2} / {:.2} MiB", rss0 as f64 / 1024.0, rss1 as f64 / 1024.0),
        "flat within 10 %",
    );
    term(&mut d);
}

/// `n` requests split over `clients` threads, each on a fresh connection.
fn load(sock: &Path, method: &str, path: &str, body: &str, clients: usize, n: usize) -> (f64, Vec<f64>) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (sock, req) = (sock.to_path_buf(), req.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(n / clients);
                let mut buf = [0u8; 1024];
                for _ in 0..n / clients {
                    let t = Instant::now();
                    let mut s = UnixStream::connect(&sock).expect("connect");
                    s.write_all(req.as_bytes()).expect("write");
                    let mut got = 0;
                    while let Ok(k) = s.read(&mut buf[got..]) {
                        if k == 0 {
                            break;
                        }
                        got += k;
                        if got == buf.len() {
                            got = 0;
                        }
                    }
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap_or_default());
    }
    (all.len() as f64 / start.elapsed().as_secs_f64(), all)
}
