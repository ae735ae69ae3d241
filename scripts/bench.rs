//! Benchmarks for containerpilot (SPEC §8), run by `scripts/bench`.
//!
//! Every figure is measured in this run against the real release binary with
//! real processes and sockets, beside the peers that do the same job where
//! one applies (tini, dumb-init, supervisord), and printed as one markdown
//! table. This is a cargo example so it never ships in the binary.
//!
//! Layout: one `fig_*` function per figure, in the order of the table.
//! Helpers: `Ctx::launch` (a command that runs one job under us or a peer),
//! `start_until` (start a daemon and wait until a condition holds),
//! `median_of` (run a measurement several times, keep the median), `load`
//! (sequential or parallel HTTP clients, one connection per request).
//!
//! `BENCH_QUICK=1` shortens every measurement (a smoke run).

// The Consul double of the tests; it needs only std and serde_json.
#[path = "../tests/support/consul.rs"]
mod consul;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("mark") => {
            // Used as a job: record when we started running (ns since the epoch).
            let _ = std::fs::write(&args[1], now_ns().to_string());
            return;
        }
        Some("count") => {
            // Used as a health check: one byte appended per run, so the
            // file's size counts the checks.
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&args[1])
                .and_then(|mut f| f.write_all(b"."));
            return;
        }
        Some("spew") => return spew(),
        _ => {}
    }
    let bin = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "target/release/containerpilot".into()),
    );
    let bin = std::fs::canonicalize(&bin).unwrap_or(bin);
    let ctx = Ctx::new(bin, std::env::var_os("BENCH_QUICK").is_some());
    let began = Instant::now();

    print_machine(&ctx);
    // BENCH_ONLY=name,name runs only those figures (while working on one).
    let only = std::env::var("BENCH_ONLY").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|n| n == name))
    };
    type Figure = (&'static str, fn(&Ctx));
    let figures: [Figure; 15] = [
        ("size", fig_size),
        ("memory", fig_memory),
        ("idle", fig_idle),
        ("true_job", fig_true_job),
        ("ping", fig_ping),
        ("control_load", fig_control_load),
        ("ping_conns", fig_ping_conns),
        ("reap", fig_reap),
        ("sigterm", fig_sigterm),
        ("startup", fig_startup),
        ("checks", fig_checks),
        ("check_rss", fig_check_rss),
        ("logs", fig_logs),
        ("telemetry", fig_telemetry),
        ("consul", fig_consul),
    ];
    if figures.iter().any(|(name, _)| wanted(name)) {
        println!("| figure | containerpilot | tini | dumb-init | supervisord | SPEC §8 target |");
        println!("|---|---|---|---|---|---|");
        for (name, fig) in figures {
            if wanted(name) {
                fig(&ctx);
            }
        }
        println!();
        println!("`ours ×R` in a peer's cell: our figure divided by that peer's (below 1 is better for sizes, memory, ticks, switches and times; above 1 for req/s).");
        println!("Times are medians of the runs given in the mode line; latency percentiles are over every request.");
    }
    // The scaling table has a column per job count rather than per peer.
    if wanted("scaling") {
        fig_scaling(&ctx);
    }
    println!(
        "Done in {:.0} s; load average at the end: {}.",
        began.elapsed().as_secs_f64(),
        load_average()
    );
    let _ = std::fs::remove_dir_all(&ctx.dir);
}

// ---------------------------------------------------------------------------
// Context: paths, peers, run counts

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Ours,
    Tini,
    DumbInit,
    Supervisord,
}

const PEERS: [Who; 3] = [Who::Tini, Who::DumbInit, Who::Supervisord];

struct Ctx {
    bin: PathBuf,
    me: PathBuf,
    dir: PathBuf,
    quick: bool,
    tini: Option<PathBuf>,
    dumb_init: Option<PathBuf>,
    supervisord: Option<PathBuf>,
    supervisorctl: Option<PathBuf>,
    /// Whether `unshare --pid --fork` works here (root, or user namespaces).
    pidns: bool,
    seq: std::cell::Cell<u32>,
}

/// A command that runs one job under us or a peer, with the files it uses.
struct Launch {
    cmd: Command,
    /// Our config file or supervisord.conf (`None` for tini and dumb-init).
    cfg: Option<PathBuf>,
    /// Private directory of this launch (control socket, logs).
    dir: PathBuf,
}

impl Ctx {
    fn new(bin: PathBuf, quick: bool) -> Ctx {
        let dir = std::env::temp_dir().join(format!("cp-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pidns = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Ctx {
            bin,
            me: std::env::current_exe().expect("own path"),
            dir,
            quick,
            tini: which("tini"),
            dumb_init: which("dumb-init"),
            supervisord: which("supervisord"),
            supervisorctl: which("supervisorctl"),
            pidns,
            seq: std::cell::Cell::new(0),
        }
    }

    /// Runs for a figure that starts a process per run.
    fn runs(&self) -> usize {
        if self.quick {
            3
        } else {
            11
        }
    }

    /// As `runs`, but supervisord needs a second to start its first job
    /// (and another to stop): a single run in quick mode.
    fn runs_of(&self, who: Who) -> usize {
        if self.quick && who == Who::Supervisord {
            1
        } else {
            self.runs()
        }
    }

    /// A fresh private directory under the bench's temp dir.
    fn fresh_dir(&self, tag: &str) -> PathBuf {
        self.seq.set(self.seq.get() + 1);
        let d = self.dir.join(format!("{tag}-{}", self.seq.get()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn peer_bin(&self, who: Who) -> Result<&Path, String> {
        let p = match who {
            Who::Ours => Some(&self.bin),
            Who::Tini => self.tini.as_ref(),
            Who::DumbInit => self.dumb_init.as_ref(),
            Who::Supervisord => self.supervisord.as_ref(),
        };
        p.map(PathBuf::as_path)
            .ok_or_else(|| "not installed".to_string())
    }

    /// A command that runs `argv` as the one job under `who`.
    fn launch(&self, who: Who, argv: &[String]) -> Result<Launch, String> {
        let exe = self.peer_bin(who)?;
        let dir = self.fresh_dir("run");
        match who {
            Who::Ours => {
                let job = format!("{{ name: \"job\", exec: {} }}", js(argv));
                Ok(self.launch_ours(&dir, "", &job))
            }
            Who::Tini | Who::DumbInit => {
                let mut cmd = Command::new(exe);
                if who == Who::Tini {
                    cmd.arg("--");
                }
                cmd.args(argv);
                Ok(Launch {
                    cmd,
                    cfg: None,
                    dir,
                })
            }
            Who::Supervisord => {
                let conf = supervisord_conf(&dir, argv);
                let mut cmd = Command::new(exe);
                cmd.arg("-c").arg(&conf);
                Ok(Launch {
                    cmd,
                    cfg: Some(conf),
                    dir,
                })
            }
        }
    }

    /// Our binary with `top` (extra top-level keys, each ending in a comma)
    /// and `jobs` (the job list's contents); the control socket is in `dir`.
    fn launch_ours(&self, dir: &Path, top: &str, jobs: &str) -> Launch {
        let cfg = dir.join("containerpilot.json5");
        let text = format!(
            "{{ control: {{ socket: {} }}, {top} jobs: [{jobs}] }}",
            js(&dir.join("cp.sock"))
        );
        std::fs::write(&cfg, text).expect("write config");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-config").arg(&cfg);
        Launch {
            cmd,
            cfg: Some(cfg),
            dir: dir.to_path_buf(),
        }
    }
}

/// A minimal supervisord.conf: one program, everything in `dir`.
fn supervisord_conf(dir: &Path, argv: &[String]) -> PathBuf {
    // supervisord splits `command` as a POSIX shell would and expands `%(...)s`.
    let command: Vec<String> = argv
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r#"'"'"'"#).replace('%', "%%")))
        .collect();
    let d = dir.display();
    let conf = dir.join("supervisord.conf");
    let text = format!(
        "[supervisord]\nnodaemon=true\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\nchildlogdir={d}\n\
         [unix_http_server]\nfile={d}/supervisor.sock\n\
         [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\
         [supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n\
         [program:job]\ncommand={}\nstartsecs=0\nautorestart=false\n",
        command.join(" ")
    );
    std::fs::write(&conf, text).expect("write supervisord.conf");
    conf
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn js<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("json")
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// The table

enum Cell {
    /// A figure: the number ratios are taken of, and its text.
    Val(f64, String),
    /// Does not apply, or could not be measured: why.
    Na(String),
}

fn na(why: impl Into<String>) -> Cell {
    Cell::Na(why.into())
}

/// `f`'s figure, or n/a with its error.
fn cell(r: Result<Cell, String>) -> Cell {
    r.unwrap_or_else(Cell::Na)
}

fn each_peer(mut f: impl FnMut(Who) -> Cell) -> [Cell; 3] {
    PEERS.map(&mut f)
}

fn row(name: &str, ours: Cell, peers: [Cell; 3], target: &str) {
    let text = |c: &Cell| match c {
        Cell::Val(_, t) => t.clone(),
        Cell::Na(why) => format!("n/a ({why})"),
    };
    let mut cols = vec![text(&ours)];
    for p in &peers {
        match (&ours, p) {
            (Cell::Val(o, _), Cell::Val(v, t)) => {
                cols.push(format!("{t} (ours ×{})", ratio(*o, *v)))
            }
            _ => cols.push(text(p)),
        }
    }
    println!(
        "| {name} | {} | {} |",
        cols.join(" | "),
        if target.is_empty() { "—" } else { target }
    );
    let _ = std::io::stdout().flush();
}

fn ratio(ours: f64, peer: f64) -> String {
    if peer == 0.0 {
        return if ours == 0.0 {
            "1".into()
        } else {
            "∞".into()
        };
    }
    let r = ours / peer;
    match r {
        0.0 => "0".into(),
        r if r >= 100.0 => format!("{r:.0}"),
        r if r >= 10.0 => format!("{r:.1}"),
        r if r >= 0.1 => format!("{r:.2}"),
        r => format!("{r:.3}"),
    }
}

fn ms_cell(r: Result<f64, String>) -> Cell {
    cell(r.map(|v| Cell::Val(v, format!("{v:.2} ms"))))
}

fn print_machine(ctx: &Ctx) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let mem = proc_kib_line(&read("/proc/meminfo"), "MemTotal:");
    println!(
        "machine: {cores} cores, {} {}, {model}, {:.1} GiB RAM; load average at the start: {}",
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
        mem as f64 / 1048576.0,
        load_average()
    );
    let version = |p: &Option<PathBuf>, name: &str| match p {
        Some(p) => Command::new(p)
            .arg("--version")
            .output()
            .map(|o| {
                let all = [o.stdout, o.stderr].concat();
                let s = String::from_utf8_lossy(&all)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                format!(
                    "{name} {}",
                    s.trim_start_matches(name)
                        .trim_start_matches(" version")
                        .trim()
                )
            })
            .unwrap_or_else(|_| format!("{name} (no version)")),
        None => format!("{name}: not installed"),
    };
    println!(
        "containerpilot: {} ({}); peers: {}, {}, {}",
        ctx.bin.display(),
        linkage(&ctx.bin),
        version(&ctx.tini, "tini"),
        version(&ctx.dumb_init, "dumb-init"),
        version(&ctx.supervisord, "supervisord")
    );
    println!(
        "mode: {}; {} runs per process-starting figure (supervisord: {}); orphans {}",
        if ctx.quick {
            "quick (BENCH_QUICK=1)"
        } else {
            "full"
        },
        ctx.runs(),
        ctx.runs_of(Who::Supervisord),
        if ctx.pidns {
            "made under each init as PID 1 of a new PID namespace"
        } else {
            "made without a PID namespace (unshare missing or not permitted): subreapers only"
        }
    );
    println!();
}

fn load_average() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// Processes

/// A started daemon. `pid` is the supervising process: the child itself, or
/// (in a PID namespace) the namespace's init under `unshare`.
struct Daemon {
    child: Child,
    pid: u32,
    reaped: bool,
}

impl Drop for Daemon {
    /// SIGKILL for the daemon and everything under it (its jobs would
    /// otherwise be left running, reparented to PID 1).
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let tree = descendants(self.child.id());
        let _ = self.child.kill();
        for p in tree {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Every process under `pid`, parents before their children.
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = child_pids(pid);
    let mut i = 0;
    while i < all.len() {
        let more = child_pids(all[i]);
        all.extend(more);
        i += 1;
    }
    all
}

impl Daemon {
    fn spawn(mut cmd: Command) -> Result<Daemon, String> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        let pid = child.id();
        Ok(Daemon {
            child,
            pid,
            reaped: false,
        })
    }

    /// `cmd` as PID 1 of a new PID namespace; `pid` is its pid out here.
    fn spawn_as_pid1(cmd: Command) -> Result<Daemon, String> {
        let mut wrapped = Command::new("unshare");
        wrapped
            .args(["--pid", "--fork", "--kill-child"])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        let mut d = Daemon::spawn(wrapped)?;
        let outer = d.pid;
        d.wait_until("the namespace's init", Duration::from_secs(10), |_| {
            !child_pids(outer).is_empty()
        })?;
        d.pid = child_pids(outer)[0];
        Ok(d)
    }

    fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut(u32) -> bool,
    ) -> Result<(), String> {
        if wait_until(limit, || ready(self.pid)) {
            Ok(())
        } else {
            Err(format!("timed out after {limit:?} waiting for {what}"))
        }
    }

    fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pid as i32), sig);
    }

    /// Blocks until the daemon exits (killed after `limit`).
    fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let done = Arc::new(AtomicBool::new(false));
        let (flag, pid) = (done.clone(), self.pid);
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            if !flag.load(Ordering::SeqCst) {
                // Its jobs too, or they would be left running under PID 1.
                let tree = descendants(pid);
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                for p in tree {
                    let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
                }
            }
        });
        let t = Instant::now();
        let st = self.child.wait().map_err(|e| e.to_string());
        done.store(true, Ordering::SeqCst);
        self.reaped = true;
        if t.elapsed() >= limit {
            return Err(format!("did not exit within {limit:?}"));
        }
        st
    }
}

/// Starts `cmd` and waits (up to 20 s) until `ready(pid)` holds.
fn start_until(cmd: Command, what: &str, ready: impl FnMut(u32) -> bool) -> Result<Daemon, String> {
    let d = Daemon::spawn(cmd)?;
    d.wait_until(what, Duration::from_secs(20), ready)?;
    Ok(d)
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while !f() {
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Waits until each of `pids` has once gone 200 ms without a context switch
/// (at most 3 s): its start-up work is over. (Peers that tick every second
/// are quiet for most 200 ms windows.)
fn settle(pids: &[u32]) {
    let until = Instant::now() + Duration::from_secs(3);
    let mut busy: Vec<(u32, u64)> = pids.iter().map(|&p| (p, switches(p))).collect();
    while !busy.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        busy.retain_mut(|(p, last)| {
            let now = switches(*p);
            std::mem::replace(last, now) != now
        });
    }
}

/// The children of every thread of `pid` (a job may be forked by any thread).
fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    tasks
        .flatten()
        .flat_map(|t| {
            let s = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The settle condition of every "one `sleep` job" figure: it is running.
fn job_running(pid: u32) -> bool {
    child_pids(pid).iter().any(|c| {
        std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|s| s.trim() == "sleep")
    })
}

fn stat_fields(pid: u32) -> Vec<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces): state is [0].
    s.rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn zombie_children(pid: u32) -> usize {
    child_pids(pid)
        .into_iter()
        .filter(|&c| stat_fields(c).first().is_some_and(|s| s == "Z"))
        .count()
}

fn cpu_ticks(pid: u32) -> u64 {
    let f = stat_fields(pid);
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12) // utime + stime (fields 14 and 15 of stat)
}

/// Voluntary + involuntary context switches over every thread: each is a wake-up.
fn switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|t| {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            proc_kib_line(&s, "voluntary_ctxt_switches:")
                + proc_kib_line(&s, "nonvoluntary_ctxt_switches:")
        })
        .sum()
}

/// The number after `key` in a /proc file's text.
fn proc_kib_line(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (RSS, PSS) in KiB, from smaps_rollup.
fn rss_pss(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    (proc_kib_line(&s, "Rss:"), proc_kib_line(&s, "Pss:"))
}

fn rss(pid: u32) -> u64 {
    rss_pss(pid).0
}

// ---------------------------------------------------------------------------
// Statistics and time

fn median(mut v: Vec<f64>) -> f64 {
    pct(&mut v, 0.5)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `f` `runs` times; the median, or the first error.
fn median_of(runs: usize, mut f: impl FnMut() -> Result<f64, String>) -> Result<f64, String> {
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        v.push(f()?);
    }
    Ok(median(v))
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn mib(kib: f64) -> String {
    format!("{:.2} MiB", kib / 1024.0)
}

fn read_ns(path: &Path) -> Option<u128> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------
// 1. Binary size

fn fig_size(ctx: &Ctx) {
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len() as f64)
            .unwrap_or(f64::NAN)
    };
    let ours = Cell::Val(
        size(&ctx.bin),
        format!(
            "{:.2} MiB ({})",
            size(&ctx.bin) / 1048576.0,
            linkage(&ctx.bin)
        ),
    );
    let peers = each_peer(|who| match who {
        Who::Supervisord if ctx.supervisord.is_none() => na("not installed"),
        Who::Supervisord => match dpkg_size("supervisor") {
            Some(kib) => na(format!("Python; Debian package {} installed", mib(kib))),
            None => na("Python"),
        },
        _ => cell(ctx.peer_bin(who).map(|p| {
            Cell::Val(
                size(p),
                format!("{:.1} KiB ({})", size(p) / 1024.0, linkage(p)),
            )
        })),
    });
    let name = match which("tini-static") {
        Some(s) => format!(
            "binary size (as installed; tini-static here: {:.2} MiB)",
            size(&s) / 1048576.0
        ),
        None => "binary size (as installed)".to_string(),
    };
    row(
        &name,
        ours,
        peers,
        "≤ 2.3 MiB stripped, static (TLS included)",
    );

    // SPEC §8: the build without the `tls` feature (scripts/build-static
    // --minimal), which scripts/bench passes as BENCH_MINIMAL_BIN.
    let minimal = match std::env::var_os("BENCH_MINIMAL_BIN").map(PathBuf::from) {
        Some(p) if p.exists() => Cell::Val(
            size(&p),
            format!("{:.2} MiB ({})", size(&p) / 1048576.0, linkage(&p)),
        ),
        Some(p) => na(format!("{} not found", p.display())),
        None => na("BENCH_MINIMAL_BIN not set"),
    };
    let none = || na("no such build");
    row(
        "binary size without TLS (`--no-default-features`)",
        minimal,
        [none(), none(), none()],
        "≤ 1.4 MiB stripped, static",
    );
}

/// "static" or "dynamic": whether the ELF file has an interpreter (PT_INTERP).
fn linkage(path: &Path) -> &'static str {
    let Ok(b) = std::fs::read(path) else {
        return "unreadable";
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return "not ELF64";
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap_or([0; 8])) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    let interp = (0..count).any(|i| {
        let o = phoff + i * size;
        b.get(o..o + 4)
            .is_some_and(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) == 3)
    });
    if interp {
        "dynamic"
    } else {
        "static"
    }
}

fn dpkg_size(package: &str) -> Option<f64> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Installed-Size}", package])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

// ---------------------------------------------------------------------------
// 2. RSS and PSS supervising one `sleep` job

fn fig_memory(ctx: &Ctx) {
    let runs = if ctx.quick { 1 } else { 3 };
    let measure = |who: Who| -> Result<(f64, f64), String> {
        let (mut r, mut p) = (vec![], vec![]);
        for _ in 0..runs {
            let l = ctx.launch(who, &argv(&["sleep", "1000"]))?;
            let d = start_until(l.cmd, "the job to run", job_running)?;
            settle(&[d.pid]);
            let (rss, pss) = rss_pss(d.pid);
            r.push(rss as f64);
            p.push(pss as f64);
        }
        Ok((median(r), median(p)))
    };
    let all: Vec<Result<(f64, f64), String>> = [Who::Ours]
        .iter()
        .chain(&PEERS)
        .map(|&w| measure(w))
        .collect();
    let pick = |i: usize, pss: bool| {
        cell(all[i].clone().map(|(r, p)| {
            let v = if pss { p } else { r };
            Cell::Val(v, mib(v))
        }))
    };
    let note = format!("median of {runs}, one at a time, job running and quiet");
    row(
        &format!("RSS supervising one `sleep` job ({note})"),
        pick(0, false),
        [pick(1, false), pick(2, false), pick(3, false)],
        "≤ 2 MiB",
    );
    row(
        "PSS, same (shared pages split among their users on this machine)",
        pick(0, true),
        [pick(1, true), pick(2, true), pick(3, true)],
        "",
    );
}

// ---------------------------------------------------------------------------
// 3. CPU ticks and context switches while idle

fn fig_idle(ctx: &Ctx) {
    let secs = if ctx.quick { 2 } else { 10 };
    let per = 3; // instances of each, measured over the same window
                 // Ours with no timer, ours with a 1 s health check, then the peers.
    let health = r#"{ name: "job", exec: "sleep 1000", health: { exec: "true", interval: 1 } }"#;
    let mut groups: Vec<Result<Vec<Daemon>, String>> = Vec::new();
    for variant in 0..5 {
        let mut started = Vec::new();
        for _ in 0..per {
            let l = match variant {
                0 => ctx.launch(Who::Ours, &argv(&["sleep", "1000"])),
                1 => Ok(ctx.launch_ours(&ctx.fresh_dir("hc"), "", health)),
                v => ctx.launch(PEERS[v - 2], &argv(&["sleep", "1000"])),
            };
            started.push(l.and_then(|l| Daemon::spawn(l.cmd)));
        }
        groups.push(started.into_iter().collect());
    }
    for g in groups.iter_mut() {
        if let Ok(ds) = g {
            for d in ds.iter() {
                if let Err(e) = d.wait_until("the job to run", Duration::from_secs(20), job_running)
                {
                    *g = Err(e);
                    break;
                }
            }
        }
    }
    let pids: Vec<u32> = groups.iter().flatten().flatten().map(|d| d.pid).collect();
    settle(&pids);
    let before: Vec<(u32, u64, u64)> = pids
        .iter()
        .map(|&p| (p, cpu_ticks(p), switches(p)))
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    let delta = |d: &Daemon| {
        let (_, t0, s0) = before
            .iter()
            .find(|b| b.0 == d.pid)
            .copied()
            .unwrap_or((0, 0, 0));
        (
            cpu_ticks(d.pid).saturating_sub(t0) as f64,
            switches(d.pid).saturating_sub(s0) as f64,
        )
    };
    let fig = |g: &Result<Vec<Daemon>, String>, switches: bool| {
        cell(g.as_ref().map_err(Clone::clone).map(|ds| {
            let v = median(
                ds.iter()
                    .map(|d| if switches { delta(d).1 } else { delta(d).0 })
                    .collect(),
            );
            Cell::Val(v, format!("{v:.0}"))
        }))
    };
    let per_check = |c: Cell| match c {
        Cell::Val(v, t) => Cell::Val(v, format!("{t} ({:.1} per check)", v / secs as f64)),
        other => other,
    };
    let no_hc = || na("no health checks");
    let name = |what: &str, how: &str| {
        format!("{what} over {secs} idle s, one `sleep` job, {how} (median of {per})")
    };
    row(
        &name("CPU ticks (utime+stime)", "no timers"),
        fig(&groups[0], false),
        [
            fig(&groups[2], false),
            fig(&groups[3], false),
            fig(&groups[4], false),
        ],
        "0",
    );
    row(
        &name("context switches (all threads)", "no timers"),
        fig(&groups[0], true),
        [
            fig(&groups[2], true),
            fig(&groups[3], true),
            fig(&groups[4], true),
        ],
        "0 (no wake-ups)",
    );
    row(
        &name("CPU ticks", "health check `true` every 1 s"),
        fig(&groups[1], false),
        [no_hc(), no_hc(), no_hc()],
        "",
    );
    row(
        &name("context switches", "health check `true` every 1 s"),
        per_check(fig(&groups[1], true)),
        [no_hc(), no_hc(), no_hc()],
        &format!("only the configured timer ({secs} checks)"),
    );
}

// ---------------------------------------------------------------------------
// 4. One `true` job run to completion

fn fig_true_job(ctx: &Ctx) {
    let runs = ctx.runs();
    let direct = median_of(runs, || {
        let t = Instant::now();
        Command::new("true").status().map_err(|e| e.to_string())?;
        Ok(ms_since(t))
    })
    .unwrap_or(f64::NAN);
    let once = |who: Who| -> Result<f64, String> {
        let l = ctx.launch(who, &argv(&["true"]))?;
        let log = l.dir.join("supervisord.log");
        let t = Instant::now();
        let mut d = Daemon::spawn(l.cmd)?;
        if who == Who::Supervisord {
            // supervisord never exits by itself: until it logs the exit.
            d.wait_until(
                "supervisord to log the exit",
                Duration::from_secs(20),
                |_| std::fs::read_to_string(&log).is_ok_and(|s| s.contains("exited: job")),
            )?;
        } else {
            let st = d.wait_exit(Duration::from_secs(20))?;
            if !st.success() {
                return Err(format!("exit status {st}"));
            }
        }
        Ok(ms_since(t))
    };
    let fig = |who: Who| {
        cell(median_of(ctx.runs_of(who), || once(who)).map(|v| {
            let how = if who == Who::Supervisord {
                " until it logs `exited: job` (it keeps running)"
            } else {
                " until it exits 0"
            };
            Cell::Val(v, format!("{v:.2} ms{how}"))
        }))
    };
    row(
        &format!("start → one `true` job done (direct `true`: {direct:.2} ms)"),
        fig(Who::Ours),
        each_peer(fig),
        "≤ 1.5× tini's",
    );
}

// ---------------------------------------------------------------------------
// 5. `-ping` as a whole process

fn fig_ping(ctx: &Ctx) {
    let ours = || -> Result<f64, String> {
        let l = ctx.launch(Who::Ours, &argv(&["sleep", "1000"]))?;
        let (cfg, sock) = (l.cfg.clone().unwrap_or_default(), l.dir.join("cp.sock"));
        let _d = start_until(l.cmd, "the control socket", |_| {
            UnixStream::connect(&sock).is_ok()
        })?;
        median_of(if ctx.quick { 20 } else { 200 }, || {
            let t = Instant::now();
            let st = Command::new(&ctx.bin)
                .arg("-config")
                .arg(&cfg)
                .arg("-ping")
                .stdout(Stdio::null())
                .status();
            if !st.is_ok_and(|s| s.success()) {
                return Err("-ping failed".into());
            }
            Ok(ms_since(t))
        })
    };
    let supervisorctl = || -> Result<f64, String> {
        let ctl = ctx
            .supervisorctl
            .clone()
            .ok_or("supervisorctl not installed")?;
        let l = ctx.launch(Who::Supervisord, &argv(&["sleep", "1000"]))?;
        let (conf, sock) = (
            l.cfg.clone().unwrap_or_default(),
            l.dir.join("supervisor.sock"),
        );
        let _d = start_until(l.cmd, "the job and the socket", |pid| {
            job_running(pid) && UnixStream::connect(&sock).is_ok()
        })?;
        median_of(if ctx.quick { 5 } else { 21 }, || {
            let t = Instant::now();
            let st = Command::new(&ctl)
                .arg("-c")
                .arg(&conf)
                .arg("status")
                .stdout(Stdio::null())
                .status();
            if !st.is_ok_and(|s| s.success()) {
                return Err("supervisorctl status failed".into());
            }
            Ok(ms_since(t))
        })
    };
    let peers = [
        na("no control plane"),
        na("no control plane"),
        cell(supervisorctl().map(|v| Cell::Val(v, format!("{v:.2} ms (`supervisorctl status`)")))),
    ];
    row(
        "`-ping` as a whole process (median)",
        ms_cell(ours()),
        peers,
        "≤ 1 ms",
    );
}

// ---------------------------------------------------------------------------
// 6. Control socket throughput and latency; RSS after many requests

fn fig_control_load(ctx: &Ctx) {
    let n = if ctx.quick { 2_000 } else { 50_000 };
    let l = match ctx.launch(Who::Ours, &argv(&["sleep", "1000"])) {
        Ok(l) => l,
        Err(e) => return row("control socket", na(e), [na(""), na(""), na("")], ""),
    };
    let sock = l.dir.join("cp.sock");
    let ours = match start_until(l.cmd, "the control socket", |_| {
        UnixStream::connect(&sock).is_ok()
    }) {
        Ok(d) => d,
        Err(e) => return row("control socket", na(e), [na(""), na(""), na("")], ""),
    };
    let addr = Addr::Unix(sock);
    let ping = http("GET", "/v3/ping", "text/plain", "");
    let env = http("POST", "/v3/env", "application/json", r#"{"BENCH":"1"}"#);
    let _ = load(&addr, std::slice::from_ref(&ping), 1, 200); // warm-up
    let rss0 = rss(ours.pid);

    // supervisord's nearest equivalent: an XML-RPC status call on its unix socket.
    let sv = supervisord_for_rpc(ctx);
    let rpc = http(
        "POST",
        "/RPC2",
        "text/xml",
        "<?xml version=\"1.0\"?><methodCall><methodName>supervisor.getState</methodName><params></params></methodCall>",
    );
    let sv_n = n / 25;
    let sv_rss0 = sv.as_ref().map(|(d, _)| rss(d.pid)).unwrap_or(0);
    for (what, req, clients) in [
        ("GET /v3/ping", &ping, 1),
        ("GET /v3/ping", &ping, 4),
        ("POST /v3/env", &env, 1),
        ("POST /v3/env", &env, 4),
    ] {
        let fig = cell(load(&addr, std::slice::from_ref(req), clients, n).map(|s| s.cell()));
        let sv_cell = match (&sv, what) {
            (Ok((_, a)), "GET /v3/ping") => cell(
                load(a, std::slice::from_ref(&rpc), clients, sv_n)
                    .map(|s| s.cell())
                    .map(|c| relabel(c, "XML-RPC `supervisor.getState`: ")),
            ),
            (Err(e), "GET /v3/ping") => na(e.clone()),
            _ => na("no equivalent"),
        };
        row(
            &format!("`{what}`, {clients} client(s), one connection per request ({n} requests)"),
            fig,
            [na("no control plane"), na("no control plane"), sv_cell],
            if what == "GET /v3/ping" && clients == 1 {
                "≥ 21 000 req/s, p99 ≤ 150 µs"
            } else {
                ""
            },
        );
    }
    let rss1 = rss(ours.pid);
    row(
        &format!(
            "RSS before / after {} control requests (after a 200-request warm-up)",
            4 * n
        ),
        growth_cell(rss0, rss1),
        [
            na("no control plane"),
            na("no control plane"),
            cell(sv.as_ref().map_err(Clone::clone).map(|(d, _)| {
                relabel(
                    growth_cell(sv_rss0, rss(d.pid)),
                    &format!("after {} XML-RPC calls: ", 2 * sv_n),
                )
            })),
        ],
        "flat within 10 %",
    );
}

fn supervisord_for_rpc(ctx: &Ctx) -> Result<(Daemon, Addr), String> {
    let l = ctx.launch(Who::Supervisord, &argv(&["sleep", "1000"]))?;
    let sock = l.dir.join("supervisor.sock");
    let d = start_until(l.cmd, "the job and the socket", |pid| {
        job_running(pid) && UnixStream::connect(&sock).is_ok()
    })?;
    Ok((d, Addr::Unix(sock)))
}

fn relabel(c: Cell, prefix: &str) -> Cell {
    match c {
        Cell::Val(v, t) => Cell::Val(v, format!("{prefix}{t}")),
        other => other,
    }
}

fn growth_cell(before_kib: u64, after_kib: u64) -> Cell {
    let g = (after_kib as f64 - before_kib as f64) / before_kib.max(1) as f64 * 100.0;
    Cell::Val(
        after_kib as f64,
        format!(
            "{} → {} ({g:+.1} %)",
            mib(before_kib as f64),
            mib(after_kib as f64)
        ),
    )
}

#[derive(Clone)]
enum Addr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

fn http(method: &str, path: &str, ctype: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request on a fresh connection, read to EOF; the whole response.
fn roundtrip(addr: &Addr, req: &[u8], keep: bool) -> Result<Vec<u8>, String> {
    fn go<S: Read + Write>(mut s: S, req: &[u8], keep: bool) -> std::io::Result<Vec<u8>> {
        s.write_all(req)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            let k = s.read(&mut buf)?;
            if k == 0 {
                return Ok(out);
            }
            if keep || out.len() < 16 {
                out.extend_from_slice(&buf[..k]);
            }
        }
    }
    // Long: 1000 jobs checked every second saturate two cores in bursts,
    // and a request waits behind them; that wait is the figure to report.
    let timeout = Some(Duration::from_secs(60));
    let r = match addr {
        Addr::Unix(p) => UnixStream::connect(p).and_then(|s| {
            s.set_read_timeout(timeout)?;
            go(s, req, keep)
        }),
        Addr::Tcp(a) => TcpStream::connect(a).and_then(|s| {
            s.set_read_timeout(timeout)?;
            go(s, req, keep)
        }),
    };
    let out = r.map_err(|e| e.to_string())?;
    if out.starts_with(b"HTTP/1.1 200") || out.starts_with(b"HTTP/1.0 200") {
        Ok(out)
    } else {
        Err(format!(
            "answered {:?}",
            String::from_utf8_lossy(&out[..out.len().min(16)])
        ))
    }
}

struct LoadStats {
    rps: f64,
    lat_us: Vec<f64>,
}

impl LoadStats {
    fn cell(mut self) -> Cell {
        let (p50, p99) = (pct(&mut self.lat_us, 0.5), pct(&mut self.lat_us, 0.99));
        Cell::Val(
            self.rps,
            format!("{:.0} req/s, p50 {p50:.0} µs, p99 {p99:.0} µs", self.rps),
        )
    }
}

/// Up to `n` sequential requests, each on a fresh connection, for at most
/// `limit` (at least one): an overloaded daemon must not stall the bench.
fn load_within(addr: &Addr, req: &[u8], n: usize, limit: Duration) -> Result<LoadStats, String> {
    let start = Instant::now();
    let mut lat = Vec::with_capacity(n);
    while lat.len() < n && (lat.is_empty() || start.elapsed() < limit) {
        let t = Instant::now();
        roundtrip(addr, req, false)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(LoadStats {
        rps: lat.len() as f64 / start.elapsed().as_secs_f64(),
        lat_us: lat,
    })
}

/// `n` requests split over `clients` threads, each on a fresh connection,
/// cycling through `reqs`; every answer must be a 200.
fn load(addr: &Addr, reqs: &[Vec<u8>], clients: usize, n: usize) -> Result<LoadStats, String> {
    let reqs = Arc::new(reqs.to_vec());
    let per = n / clients;
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (addr, reqs) = (addr.clone(), reqs.clone());
            std::thread::spawn(move || -> Result<Vec<f64>, String> {
                let mut lat = Vec::with_capacity(per);
                for i in 0..per {
                    let t = Instant::now();
                    roundtrip(&addr, &reqs[(c * per + i) % reqs.len()], false)?;
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for h in handles {
        all.extend(h.join().map_err(|_| "client panicked".to_string())??);
    }
    Ok(LoadStats {
        rps: all.len() as f64 / start.elapsed().as_secs_f64(),
        lat_us: all,
    })
}

// ---------------------------------------------------------------------------
// 7. 1000 orphaned zombies

fn fig_reap(ctx: &Ctx) {
    let n = 1000;
    let runs = if ctx.quick { 1 } else { 3 };
    let once = |who: Who| -> Result<(f64, f64, f64), String> {
        let dir = ctx.fresh_dir("reap");
        let (start, done) = (dir.join("start"), dir.join("done"));
        // Forks n subshells that each leave an orphan exiting at once; `done` marks the last fork.
        let script = format!(
            "date +%s%N > {s}; i=0; while [ $i -lt {n} ]; do ( true & ); i=$((i+1)); done; date +%s%N > {d}; exec sleep 100000",
            s = start.display(),
            d = done.display()
        );
        let mut l = ctx.launch(who, &argv(&["/bin/sh", "-c", &script]))?;
        let d = if ctx.pidns {
            Daemon::spawn_as_pid1(l.cmd)?
        } else {
            match who {
                Who::Ours => Daemon::spawn(l.cmd)?,
                Who::Tini => {
                    let mut cmd = Command::new(l.cmd.get_program());
                    cmd.arg("-s").args(l.cmd.get_args());
                    l.cmd = cmd;
                    Daemon::spawn(l.cmd)?
                }
                _ => return Err("reaps orphans only as PID 1, and no PID namespace here".into()),
            }
        };
        d.wait_until("the last orphan", Duration::from_secs(60), |_| {
            read_ns(&done).is_some()
        })?;
        let left = zombie_children(d.pid) as f64;
        d.wait_until("no zombies", Duration::from_secs(30), |pid| {
            zombie_children(pid) == 0
        })?;
        let clear = now_ns();
        let (t0, t1) = (
            read_ns(&start).unwrap_or(clear),
            read_ns(&done).unwrap_or(clear),
        );
        Ok((
            left,
            (clear.saturating_sub(t1)) as f64 / 1e6,
            (clear.saturating_sub(t0)) as f64 / 1e6,
        ))
    };
    let fig = |who: Who| {
        let mut v = Vec::new();
        // supervisord reaps about 100 orphans a second: one run only.
        for _ in 0..if who == Who::Supervisord { 1 } else { runs } {
            match once(who) {
                Ok(r) => v.push(r),
                Err(e) => return na(e),
            }
        }
        let left = median(v.iter().map(|r| r.0).collect());
        let lag = median(v.iter().map(|r| r.1).collect());
        let total = median(v.iter().map(|r| r.2).collect());
        Cell::Val(total, format!("{left:.0} left at the last fork; none {lag:.0} ms later; {total:.0} ms from the first fork"))
    };
    let how = if ctx.pidns {
        "init as PID 1 of a new PID namespace"
    } else {
        "as subreaper"
    };
    let runs = if runs == 1 {
        "1 run".to_string()
    } else {
        format!("median of {runs}, supervisord 1 run")
    };
    row(
        &format!("{n} orphaned zombies reaped ({how}; {runs})"),
        fig(Who::Ours),
        each_peer(fig),
        "none left (as tini)",
    );
}

// ---------------------------------------------------------------------------
// 8. SIGTERM → exit; exec → first job process

fn fig_sigterm(ctx: &Ctx) {
    let once = |who: Who| -> Result<f64, String> {
        let l = ctx.launch(who, &argv(&["sleep", "1000"]))?;
        let mut d = start_until(l.cmd, "the job to run", job_running)?;
        let t = Instant::now();
        d.signal(Signal::SIGTERM);
        d.wait_exit(Duration::from_secs(30))?;
        Ok(ms_since(t))
    };
    row(
        "SIGTERM → exit, one `sleep` job (exits on SIGTERM)",
        ms_cell(median_of(ctx.runs(), || once(Who::Ours))),
        each_peer(|w| ms_cell(median_of(ctx.runs_of(w), || once(w)))),
        "≤ 50 ms, ≤ 3× tini's",
    );
}

fn fig_startup(ctx: &Ctx) {
    let mark = ctx.dir.join("mark");
    let job = argv(&[&ctx.me.to_string_lossy(), "mark", &mark.to_string_lossy()]);
    // ns from just before the spawn until the mark job records that it runs.
    let to_mark =
        |spawn: &mut dyn FnMut() -> Result<Option<Daemon>, String>| -> Result<f64, String> {
            let _ = std::fs::remove_file(&mark);
            let t0 = now_ns();
            let _d = spawn()?;
            if !wait_until(Duration::from_secs(20), || read_ns(&mark).is_some()) {
                return Err("the job never ran".into());
            }
            Ok(read_ns(&mark).unwrap_or(t0).saturating_sub(t0) as f64 / 1e6)
        };
    let mut directs = Vec::new();
    // Each run: the job exec'd directly, then through `who`; own overhead = the difference.
    let mut through = |who: Who| -> Result<(f64, f64), String> {
        let (mut own, mut all) = (vec![], vec![]);
        for _ in 0..ctx.runs_of(who) {
            let direct = to_mark(&mut || {
                Command::new(&ctx.me)
                    .arg("mark")
                    .arg(&mark)
                    .status()
                    .map_err(|e| e.to_string())?;
                Ok(None)
            })?;
            let l = ctx.launch(who, &job)?;
            let mut cmd = Some(l.cmd);
            let via = to_mark(&mut || Daemon::spawn(cmd.take().ok_or("spawned twice")?).map(Some))?;
            directs.push(direct);
            own.push(via - direct);
            all.push(via);
        }
        Ok((median(own), median(all)))
    };
    let mut fig = |who: Who| {
        cell(through(who).map(|(own, all)| {
            Cell::Val(
                own.max(0.0),
                format!("{:.2} ms ({all:.2} ms to the job)", own.max(0.0)),
            )
        }))
    };
    let ours = fig(Who::Ours);
    let peers = each_peer(&mut fig);
    row(
        &format!(
            "exec → first job process, own overhead: median of (through it − exec'd directly), direct median {:.2} ms",
            median(directs)
        ),
        ours,
        peers,
        "≤ 1 ms",
    );
}

// ---------------------------------------------------------------------------
// 9. Telemetry

fn fig_telemetry(ctx: &Ctx) {
    let none = || [na("no metrics"), na("no metrics"), na("no metrics")];
    let (scrapes, observations) = if ctx.quick {
        (1_000, 10_000)
    } else {
        (10_000, 100_000)
    };
    let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => return row("telemetry", na(e.to_string()), none(), ""),
    };
    // 100 user metrics: 97 gauges, a counter, a histogram and the summary observed below.
    let mut metrics: Vec<String> = (0..97)
        .map(|i| {
            format!("{{ namespace: \"a\", name: \"m{i}\", help: \"gauge {i}\", type: \"gauge\" }}")
        })
        .collect();
    for (name, kind) in [("c", "counter"), ("h", "histogram"), ("obs", "summary")] {
        metrics.push(format!(
            "{{ namespace: \"a\", name: \"{name}\", help: \"a {kind}\", type: \"{kind}\" }}"
        ));
    }
    let top = format!(
        "telemetry: {{ port: {port}, interfaces: [\"static:127.0.0.1\"], metrics: [{}] }},",
        metrics.join(", ")
    );
    let dir = ctx.fresh_dir("telemetry");
    let l = ctx.launch_ours(&dir, &top, "{ name: \"job\", exec: \"sleep 1000\" }");
    let sock = dir.join("cp.sock");
    let tcp: SocketAddr = ([127, 0, 0, 1], port).into();
    let d = match start_until(l.cmd, "the listeners", |_| {
        TcpStream::connect(tcp).is_ok() && UnixStream::connect(&sock).is_ok()
    }) {
        Ok(d) => d,
        Err(e) => return row("telemetry", na(e), none(), ""),
    };
    let (web, ctl) = (Addr::Tcp(tcp), Addr::Unix(sock));
    let scrape = http("GET", "/metrics", "text/plain", "");
    let exposed = roundtrip(&web, &scrape, true)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .filter(|l| l.starts_with("# TYPE a_"))
                .count()
        })
        .unwrap_or(0);

    let _ = load(&web, std::slice::from_ref(&scrape), 1, 100); // warm-up
    let rss0 = rss(d.pid);
    let stats = load(&web, &[scrape], 1, scrapes);
    let rss1 = rss(d.pid);
    row(
        &format!("`GET /metrics`, {exposed} user metrics exposed, 1 client, one connection per request ({scrapes} scrapes)"),
        cell(stats.map(|s| s.cell())),
        none(),
        "≥ 8 500 req/s",
    );
    row(
        &format!("RSS before / after {scrapes} scrapes (after 100 warm-up)"),
        growth_cell(rss0, rss1),
        none(),
        "flat within 10 %",
    );

    // Distinct values, as a summary that kept every observation would grow.
    let posts: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            http(
                "POST",
                "/v3/metric",
                "application/json",
                &format!("{{\"a_obs\": {}}}", i as f64 * 0.37 + 0.001),
            )
        })
        .collect();
    let _ = load(&ctl, &posts[..200], 1, 200); // warm-up
    let rss2 = rss(d.pid);
    let posted = load(&ctl, &posts, 1, observations);
    let rss3 = rss(d.pid);
    row(
        &format!("RSS before / after {observations} `POST /v3/metric` summary observations (within its 10-min window)"),
        cell(posted.map(|s| {
            let c = growth_cell(rss2, rss3);
            relabel(c, &format!("{:.0} req/s; ", s.rps))
        })),
        none(),
        "flat within 10 %",
    );
}

// ---------------------------------------------------------------------------
// 10. Consul (against the tests' Consul double)

fn fig_consul(ctx: &Ctx) {
    let none = || {
        [
            na("no Consul integration"),
            na("no Consul integration"),
            na("no Consul integration"),
        ]
    };
    let runs = if ctx.quick { 2 } else { 5 };
    let fake = consul::FakeConsul::start();
    fake.set_instances(
        "backend",
        consul::DATACENTER,
        vec![("10.0.0.1", 5432, vec![])],
    );
    let dir = ctx.fresh_dir("consul");
    let (fail, failed_at, mark) = (dir.join("fail"), dir.join("failed-at"), dir.join("mark"));
    // The check fails while `fail` exists, noting when (ns) before it exits 1.
    let check = format!(
        "if [ -e {} ]; then date +%s%N >> {}; exit 1; fi",
        fail.display(),
        failed_at.display()
    );
    let top = format!(
        "consul: \"{}\", watches: [{{ name: \"backend\", interval: 1 }}],",
        fake.addr()
    );
    let jobs = format!(
        "{{ name: \"app\", exec: \"sleep 1000\", port: 8080, interfaces: [\"static:127.0.0.1\"], \
           health: {{ exec: {}, interval: \"250ms\", ttl: 10 }} }}, \
         {{ name: \"onchange\", exec: {}, when: {{ source: \"watch.backend\", each: \"changed\" }} }}",
        js(&argv(&["/bin/sh", "-c", &check])),
        js(&argv(&[&ctx.me.to_string_lossy(), "mark", &mark.to_string_lossy()]))
    );
    let l = ctx.launch_ours(&dir, &top, &jobs);
    let _d = match Daemon::spawn(l.cmd) {
        Ok(d) => d,
        Err(e) => return row("Consul", na(e), none(), ""),
    };
    let t = Duration::from_secs(10);
    let passing = |s: &consul::State| s.checks.values().any(|c| c.status == "passing");
    let critical_req = |r: &consul::Recorded| {
        r.method == "PUT"
            && r.path.starts_with("/v1/agent/check/")
            && (r.path.contains("/fail/") || r.json()["Status"] == "critical")
    };
    // Wall-clock ns of a request the double received at `at`.
    let wall = |at: Instant| now_ns() - Instant::now().duration_since(at).as_nanos();

    let health = median_of(runs, || {
        if !fake.wait_for(t, passing) {
            return Err("the check never passed".into());
        }
        fake.clear_requests();
        let _ = std::fs::remove_file(&failed_at);
        std::fs::write(&fail, "").map_err(|e| e.to_string())?;
        if !fake.wait_for(t, |s| s.requests.iter().any(critical_req)) {
            return Err("the check never went critical".into());
        }
        let at = fake
            .requests()
            .into_iter()
            .find(|r| critical_req(r))
            .map(|r| wall(r.at))
            .unwrap_or(0);
        let _ = std::fs::remove_file(&fail);
        let failed = read_ns(&failed_at).ok_or("the check did not note its failure")?;
        Ok(at.saturating_sub(failed) as f64 / 1e6)
    });
    row(
        &format!("health check fails (notes the time, exits 1) → Consul gets `critical` (check every 250 ms; median of {runs})"),
        ms_cell(health),
        none(),
        "",
    );

    let poll = |r: &consul::Recorded| r.method == "GET" && r.path == "/v1/health/service/backend";
    // Let the watch see the first instance (and its job run) before the runs.
    // The job for the first instance has run (or never will) once the watch polled twice.
    let warm = fake.wait_for(t, |s| s.requests.iter().filter(|r| poll(r)).count() >= 2);
    let mut count = 1;
    let mut after_poll = Vec::new();
    let changed = median_of(runs, || {
        if !warm {
            return Err("the watch never polled".into());
        }
        let _ = std::fs::remove_file(&mark);
        count += 1;
        let instances: Vec<(&str, u16, Vec<&str>)> = (0..count)
            .map(|i| ("10.0.0.1", 5432 + i as u16, vec![]))
            .collect();
        let t0 = Instant::now();
        let t0_ns = now_ns();
        fake.set_instances("backend", consul::DATACENTER, instances);
        if !wait_until(t, || read_ns(&mark).is_some()) {
            return Err("the changed job never ran".into());
        }
        let ran = read_ns(&mark).unwrap_or(0);
        if let Some(r) = fake.requests().into_iter().find(|r| poll(r) && r.at >= t0) {
            after_poll.push(ran.saturating_sub(wall(r.at)) as f64 / 1e6);
        }
        Ok(ran.saturating_sub(t0_ns) as f64 / 1e6)
    });
    let lag = median(after_poll);
    row(
        &format!("instance appears just after a poll → `changed` job running, watch interval 1 s (median of {runs})"),
        cell(changed.map(|v| Cell::Val(v, format!("{v:.0} ms ({lag:.2} ms after the poll that saw it)")))),
        none(),
        "",
    );
}

// ---------------------------------------------------------------------------
// Many jobs: shared by the figures below

/// Used as a job that prints continuously: a line every 2 ms, alternating
/// stdout and stderr, of 80 bytes, 1 500 bytes (longer than a kept line)
/// and 20 000 bytes (longer than a read line), until its output is closed.
fn spew() {
    let sizes = [80, 1_500, 20_000];
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    for i in 0usize.. {
        let mut line = vec![b'x'; sizes[i % sizes.len()]];
        line.push(b'\n');
        let w: &mut dyn Write = if i % 2 == 0 { &mut out } else { &mut err };
        if w.write_all(&line).and_then(|_| w.flush()).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// `/v3/status`, parsed.
fn status_doc(ctl: &Addr) -> Option<serde_json::Value> {
    let raw = roundtrip(ctl, &http("GET", "/v3/status", "text/plain", ""), true).ok()?;
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    serde_json::from_slice(&raw[at + 4..]).ok()
}

/// (name, pid) of every job `/v3/status` shows running with a pid.
fn running_pids(ctl: &Addr) -> Option<Vec<(String, u64)>> {
    let doc = status_doc(ctl)?;
    Some(
        doc["services"]
            .as_array()?
            .iter()
            .filter(|s| s["state"] == "running")
            .filter_map(|s| Some((s["name"].as_str()?.to_string(), s["pid"].as_u64()?)))
            .collect(),
    )
}

/// Starts our binary with `jobs` and waits until `/v3/status` shows `n`
/// jobs running with a pid; the time from just before the exec.
fn start_jobs(
    ctx: &Ctx,
    top: &str,
    jobs: &[String],
    n: usize,
) -> Result<(Daemon, Addr, f64), String> {
    let dir = ctx.fresh_dir("jobs");
    let l = ctx.launch_ours(&dir, top, &jobs.join(", "));
    let ctl = Addr::Unix(dir.join("cp.sock"));
    let limit = Duration::from_secs(120);
    let t = Instant::now();
    let mut d = Daemon::spawn(l.cmd)?;
    // A `/v3/status` of every job costs the daemon CPU that it would take
    // from the start-up: count its children here until there are enough
    // (polling less often the longer it takes, a resolution of 2 %), then
    // ask it every millisecond until it reports them all.
    let mut enough = false;
    loop {
        if !enough {
            enough = child_pids(d.pid).len() >= n;
        }
        if enough && running_pids(&ctl).is_some_and(|p| p.len() >= n) {
            return Ok((d, ctl, ms_since(t)));
        }
        if let Ok(Some(st)) = d.child.try_wait() {
            d.reaped = true;
            return Err(format!("exited during start-up ({st})"));
        }
        if t.elapsed() > limit {
            return Err(format!("not all {n} jobs running after {limit:?}"));
        }
        let pause = if enough {
            Duration::from_millis(1)
        } else {
            (t.elapsed() / 50).max(Duration::from_millis(1))
        };
        std::thread::sleep(pause);
    }
}

/// CPU that the supervisor's threads and the processes of `jobs` have used
/// so far, in ms (schedstat: exact, where stat's ticks would round a short
/// exec down to nothing).
fn cpu_so_far(pid: u32, jobs: &[(String, u64)]) -> (f64, f64) {
    let own = Usage::of(pid).cpu_ns as f64 / 1e6;
    let children: u64 = jobs
        .iter()
        .filter_map(|(_, p)| {
            let s = std::fs::read_to_string(format!("/proc/{p}/schedstat")).ok()?;
            s.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    (own, children as f64 / 1e6)
}

/// SIGTERM → exit.
fn stop_ms(mut d: Daemon) -> Result<f64, String> {
    let t = Instant::now();
    d.signal(Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(60))?;
    Ok(ms_since(t))
}

fn task_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// What a process has used so far: on-CPU ns of its threads (schedstat,
/// ns resolution), CPU of its reaped children (cutime + cstime), context
/// switches of its threads.
#[derive(Clone, Copy)]
struct Usage {
    at: Instant,
    cpu_ns: u64,
    child_ticks: u64,
    switches: u64,
}

impl Usage {
    fn of(pid: u32) -> Usage {
        let cpu_ns = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| {
                let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
                s.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum();
        let f = stat_fields(pid);
        let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Usage {
            at: Instant::now(),
            cpu_ns,
            child_ticks: get(13) + get(14), // cutime + cstime (fields 16 and 17)
            switches: switches(pid),
        }
    }

    /// (supervisor ms, children ms, switches) from `self` to `later`.
    fn until(&self, later: &Usage) -> (f64, f64, f64) {
        // USER_HZ is 100 on every Linux architecture we build for.
        (
            later.cpu_ns.saturating_sub(self.cpu_ns) as f64 / 1e6,
            later.child_ticks.saturating_sub(self.child_ticks) as f64 * 10.0,
            later.switches.saturating_sub(self.switches) as f64,
        )
    }

    fn secs_until(&self, later: &Usage) -> f64 {
        later.at.duration_since(self.at).as_secs_f64()
    }
}

/// `n` jobs named j0, j1, ... running `exec` with `extra` keys (each
/// starting with a comma).
fn many_jobs(n: usize, exec: &[String], extra: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("{{ name: \"j{i}\", exec: {}{extra} }}", js(exec)))
        .collect()
}

/// A TCP server for `http` and `tcp` probes and `curl`/`nc` checks: it
/// answers any request `200 OK` and counts connections.
struct ProbeServer {
    addr: SocketAddr,
    hits: Arc<std::sync::atomic::AtomicU64>,
}

impl ProbeServer {
    fn start() -> Result<ProbeServer, String> {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen: {e}"))?;
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        let hits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(mut s) = s else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // A `tcp` probe or `nc -z` closes without a request.
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                if !got.is_empty() {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                }
            }
        });
        Ok(ProbeServer { addr, hits })
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

// ---------------------------------------------------------------------------
// `/v3/ping` with many idle and half-sent connections open

fn fig_ping_conns(ctx: &Ctx) {
    let (idle, half) = (250, 250);
    let n = if ctx.quick { 2_000 } else { 20_000 };
    let name = format!("`GET /v3/ping`, 1 client, with {idle} idle and {half} half-sent connections open ({n} requests)");
    let none = || {
        [
            na("no control plane"),
            na("no control plane"),
            na("not measured"),
        ]
    };
    let l = match ctx.launch(Who::Ours, &argv(&["sleep", "1000"])) {
        Ok(l) => l,
        Err(e) => return row(&name, na(e), none(), ""),
    };
    let sock = l.dir.join("cp.sock");
    let d = match start_until(l.cmd, "the control socket", |_| {
        UnixStream::connect(&sock).is_ok()
    }) {
        Ok(d) => d,
        Err(e) => return row(&name, na(e), none(), ""),
    };
    let mut open = Vec::new();
    for i in 0..idle + half {
        match UnixStream::connect(&sock) {
            Ok(mut s) => {
                if i >= idle {
                    let _ = s.write_all(b"GET /v3/ping HTTP/1.1\r\nHost: loc");
                }
                open.push(s);
            }
            Err(e) => return row(&name, na(format!("connection {i}: {e}")), none(), ""),
        }
    }
    let addr = Addr::Unix(sock);
    let ping = http("GET", "/v3/ping", "text/plain", "");
    let stats = load(&addr, std::slice::from_ref(&ping), 1, n);
    // How many of ours the server closed to make room (reads end of stream).
    let closed = open
        .iter_mut()
        .filter_map(|s| {
            let _ = s.set_nonblocking(true);
            let mut b = [0u8; 64];
            matches!(s.read(&mut b), Ok(0)).then_some(())
        })
        .count();
    let threads = task_count(d.pid);
    row(
        &name,
        cell(stats.map(|s| {
            relabel(
                s.cell(),
                &format!("{closed} of the open ones closed by the server, {threads} threads; "),
            )
        })),
        none(),
        "≥ 21 000 req/s, p99 ≤ 150 µs",
    );
}

// ---------------------------------------------------------------------------
// What one health check costs, by probe

/// Cost of one check: (supervisor µs, children µs, switches, checks counted).
struct CheckCost {
    sup_us: f64,
    child_us: f64,
    switches: f64,
    checks: f64,
}

fn fig_checks(ctx: &Ctx) {
    let (jobs, every_ms) = (10usize, 100u64);
    let secs = if ctx.quick { 3 } else { 10 };
    let none = || {
        [
            na("no health checks"),
            na("no health checks"),
            na("no health checks"),
        ]
    };
    let server = match ProbeServer::start() {
        Ok(s) => s,
        Err(e) => return row("health checks", na(e), none(), ""),
    };
    let url = format!("http://{}/health", server.addr);
    let (host, port) = (server.addr.ip().to_string(), server.addr.port().to_string());
    // (label, probe keys, counted by the server, needs this program)
    let probes: [(&str, String, bool, Option<&str>); 6] = [
        ("none", String::new(), false, None),
        ("exec `true`", r#"exec: "true""#.into(), false, None),
        ("`http`", format!("http: {}", js(&url)), true, None),
        (
            "exec `curl -sf URL`",
            format!("exec: {}", js(&argv(&["curl", "-sf", &url]))),
            true,
            Some("curl"),
        ),
        (
            "`tcp`",
            format!("tcp: {}", js(&server.addr.to_string())),
            true,
            None,
        ),
        (
            "exec `nc -z HOST PORT`",
            format!("exec: {}", js(&argv(&["nc", "-z", &host, &port]))),
            true,
            Some("nc"),
        ),
    ];
    let sleep = argv(&["sleep", "1000"]);
    let measure = |probe: &str, counted: bool| -> Result<(CheckCost, u64, u64), String> {
        let extra = if probe.is_empty() {
            String::new()
        } else {
            format!(", health: {{ {probe}, interval: \"{every_ms}ms\", timeout: \"5s\" }}")
        };
        let (d, _, _) = start_jobs(ctx, "", &many_jobs(jobs, &sleep, &extra), jobs)?;
        std::thread::sleep(Duration::from_millis(1500));
        let (u0, h0, rss0) = (Usage::of(d.pid), server.hits(), rss(d.pid));
        std::thread::sleep(Duration::from_secs(secs));
        let (u1, h1, rss1) = (Usage::of(d.pid), server.hits(), rss(d.pid));
        let (sup, child, sw) = u0.until(&u1);
        let checks = if probe.is_empty() {
            1.0
        } else if counted {
            h1.saturating_sub(h0) as f64
        } else {
            // Every job's schedule, over the window.
            jobs as f64 * u0.secs_until(&u1) * 1000.0 / every_ms as f64
        };
        if checks == 0.0 {
            return Err(if counted {
                "no check reached the probe server (does this build know the key?)".into()
            } else {
                "no checks were made".into()
            });
        }
        drop(d);
        Ok((
            CheckCost {
                sup_us: sup * 1e3 / checks,
                child_us: child * 1e3 / checks,
                switches: sw / checks,
                checks,
            },
            rss0,
            rss1,
        ))
    };
    let mut got: Vec<Result<(CheckCost, u64, u64), String>> = Vec::new();
    for (_, probe, counted, needs) in &probes {
        got.push(match needs.filter(|p| which(p).is_none()) {
            Some(p) => Err(format!("{p} not installed")),
            None => measure(probe, *counted),
        });
    }
    // The cost of N idle `sleep` jobs over the window, per check of each probe.
    let (idle_sup, idle_sw) = match &got[0] {
        Ok((c, _, _)) => (c.sup_us, c.switches),
        Err(_) => (0.0, 0.0),
    };
    let net = |c: &CheckCost| CheckCost {
        sup_us: (c.sup_us - idle_sup / c.checks).max(0.0),
        child_us: c.child_us,
        switches: (c.switches - idle_sw / c.checks).max(0.0),
        checks: c.checks,
    };
    let total = |i: usize| {
        got[i].as_ref().ok().map(|(c, _, _)| {
            let c = net(c);
            c.sup_us + c.child_us
        })
    };
    let how = format!("{jobs} `sleep` jobs, each checked every {every_ms} ms, over {secs} s");
    for (i, (label, _, _, _)) in probes.iter().enumerate().skip(1) {
        let text = got[i].as_ref().map_err(Clone::clone).map(|(c, r0, r1)| {
            let c = net(c);
            let t = c.sup_us + c.child_us;
            Cell::Val(
                t,
                format!(
                    "supervisor {:.0} µs + children {:.0} µs = {t:.0} µs, {:.1} switches ({:.0} checks; RSS {} → {})",
                    c.sup_us,
                    c.child_us,
                    c.switches,
                    c.checks,
                    mib(*r0 as f64),
                    mib(*r1 as f64)
                ),
            )
        });
        let vs = |exec: usize, name: &str| match (total(i), total(exec)) {
            (Some(a), Some(b)) if b > 0.0 => {
                let r = a / b;
                format!("≤ 1/10 of exec `{name}`: {r:.3} — {}", met(r <= 0.1))
            }
            _ => format!("≤ 1/10 of exec `{name}`"),
        };
        let target = match i {
            1 => match &got[1] {
                Ok((c, _, _)) => {
                    let c = net(c);
                    format!(
                        "supervisor ≤ 6 switches, ≤ 150 µs — {}",
                        met(c.switches <= 6.0 && c.sup_us <= 150.0)
                    )
                }
                Err(_) => "supervisor ≤ 6 switches, ≤ 150 µs".into(),
            },
            2 => vs(3, "curl"),
            4 => vs(5, "nc"),
            _ => String::new(),
        };
        row(
            &format!("{label} health check, cost per check ({how}; idle cost subtracted)"),
            cell(text),
            none(),
            &target,
        );
    }
}

// ---------------------------------------------------------------------------
// RSS after many health checks

fn fig_check_rss(ctx: &Ctx) {
    let (target, limit) = if ctx.quick {
        (2_000u64, Duration::from_secs(30))
    } else {
        (100_000, Duration::from_secs(300))
    };
    let (jobs, warm) = (20, 500u64);
    let none = || {
        [
            na("no health checks"),
            na("no health checks"),
            na("no health checks"),
        ]
    };
    let dir = ctx.fresh_dir("count");
    let counter = dir.join("checks");
    let check = argv(&[
        &ctx.me.to_string_lossy(),
        "count",
        &counter.to_string_lossy(),
    ]);
    let extra = format!(
        ", health: {{ exec: {}, interval: \"10ms\", timeout: \"5s\" }}",
        js(&check)
    );
    let count = || std::fs::metadata(&counter).map_or(0, |m| m.len());
    let run = || -> Result<Cell, String> {
        let (d, _, _) = start_jobs(
            ctx,
            "",
            &many_jobs(jobs, &argv(&["sleep", "1000"]), &extra),
            jobs,
        )?;
        if !wait_until(limit, || count() >= warm) {
            return Err("the checks did not run".into());
        }
        let (rss0, c0, t) = (rss(d.pid), count(), Instant::now());
        wait_until(limit, || count() >= c0 + target);
        let (rss1, c1) = (rss(d.pid), count());
        let rate = (c1 - c0) as f64 / t.elapsed().as_secs_f64();
        Ok(relabel(
            growth_cell(rss0, rss1),
            &format!("{} checks at {rate:.0}/s: ", c1 - c0),
        ))
    };
    row(
        &format!("RSS before / after {target} exec health checks ({jobs} jobs checked every 10 ms, after {warm} warm-up checks)"),
        cell(run()),
        none(),
        "flat within 10 %",
    );
}

// ---------------------------------------------------------------------------
// Memory with jobs printing continuously

fn fig_logs(ctx: &Ctx) {
    let jobs = 100;
    let secs = if ctx.quick { 5 } else { 20 };
    let keep = 100; // the default `logging.keep`
    let none = || [na("not measured"), na("not measured"), na("not measured")];
    let quiet = || -> Result<u64, String> {
        let (d, _, _) = start_jobs(
            ctx,
            "",
            &many_jobs(jobs, &argv(&["sleep", "1000"]), ""),
            jobs,
        )?;
        settle(&[d.pid]);
        Ok(rss(d.pid))
    };
    let loud = |quiet: u64| -> Result<Cell, String> {
        let spew = argv(&[&ctx.me.to_string_lossy(), "spew"]);
        let (d, _, _) = start_jobs(ctx, "", &many_jobs(jobs, &spew, ""), jobs)?;
        std::thread::sleep(Duration::from_secs(1));
        let (rss0, u0) = (rss(d.pid), Usage::of(d.pid));
        std::thread::sleep(Duration::from_secs(secs));
        let (rss1, u1) = (rss(d.pid), Usage::of(d.pid));
        let cpu = u0.until(&u1).0 / u0.secs_until(&u1);
        let bound = quiet + (jobs * keep) as u64; // KiB
        Ok(Cell::Val(
            rss1 as f64,
            format!(
                "quiet {} → printing 1 s {} → {secs} s later {} (bound {}; {} ; supervisor {cpu:.0} ms CPU/s)",
                mib(quiet as f64),
                mib(rss0 as f64),
                mib(rss1 as f64),
                mib(bound as f64),
                met(rss1 <= bound && rss1 as f64 <= rss0 as f64 * 1.1)
            ),
        ))
    };
    row(
        &format!("RSS, {jobs} jobs each printing a line every 2 ms (80 B / 1.5 KB / 20 KB, stdout and stderr), keep {keep}"),
        cell(quiet().and_then(loud)),
        none(),
        "≤ quiet + jobs × keep × 1 KiB, flat",
    );
}

// ---------------------------------------------------------------------------
// Scaling with the number of jobs (a table of its own)

const SCALES: [usize; 5] = [1, 10, 100, 300, 1000];

/// One fleet's steady state, measured once its jobs all run.
struct Steady {
    threads: usize,
    rss: u64,
    pss: u64,
    /// Supervisor and children CPU in ms per s, context switches per s.
    cpu: f64,
    child: f64,
    switches: f64,
    status: LoadStats,
    metrics: LoadStats,
    reload_ms: f64,
    /// Every job kept its pid across the reload.
    reload_kept: bool,
}

/// Everything measured at one job count, in one variant.
#[derive(Default)]
struct Scale {
    startup: Vec<f64>,
    /// CPU in ms until every job ran: (supervisor, the jobs' processes).
    startup_cpu: Vec<(f64, f64)>,
    sigterm: Vec<f64>,
    steady: Option<Result<Steady, String>>,
    error: Option<String>,
    load: String,
}

impl Scale {
    fn failed(&self) -> Option<Cell> {
        self.error.as_ref().map(|e| na(e.clone()))
    }
}

fn fleet_steady(ctx: &Ctx, d: &Daemon, ctl: &Addr, web: &Addr) -> Result<Steady, String> {
    // Checks run every second from a second after each job started: wait
    // until every job has been checked, then measure a whole window.
    std::thread::sleep(Duration::from_millis(1500));
    let pid = d.pid;
    let secs = if ctx.quick { 2 } else { 5 };
    let u0 = Usage::of(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let u1 = Usage::of(pid);
    let (cpu, child, sw) = u0.until(&u1);
    let per_s = u0.secs_until(&u1);
    let threads = task_count(pid);
    let (rss, pss) = rss_pss(pid);
    let (m, limit) = if ctx.quick {
        (50, Duration::from_secs(5))
    } else {
        (200, Duration::from_secs(10))
    };
    let status = load_within(ctl, &http("GET", "/v3/status", "text/plain", ""), m, limit)?;
    let metrics = load_within(web, &http("GET", "/metrics", "text/plain", ""), m, limit)?;
    let before = running_pids(ctl).ok_or("no /v3/status before the reload")?;
    let reload = http("POST", "/v3/reload", "text/plain", "");
    let reload_ms = median_of(3, || {
        let t = Instant::now();
        roundtrip(ctl, &reload, false)?;
        Ok(ms_since(t))
    })?;
    let after = running_pids(ctl).ok_or("no /v3/status after the reload")?;
    Ok(Steady {
        threads,
        rss,
        pss,
        cpu: cpu / per_s,
        child: child / per_s,
        switches: sw / per_s,
        status,
        metrics,
        reload_ms,
        reload_kept: before == after,
    })
}

/// Starts `n` jobs of `exec` (with `extra` keys), times the start-up, the
/// steady state when `steady`, and SIGTERM → exit, into `into`.
fn fleet_run(ctx: &Ctx, n: usize, exec: &[String], extra: &str, steady: bool, into: &mut Scale) {
    if into.error.is_some() {
        return;
    }
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            into.error = Some(e);
            return;
        }
    };
    let top = format!("telemetry: {{ port: {port}, interfaces: [\"static:127.0.0.1\"] }},");
    into.load = load_average();
    match start_jobs(ctx, &top, &many_jobs(n, exec, extra), n) {
        Ok((d, ctl, ms)) => {
            into.startup.push(ms);
            if let Some(jobs) = running_pids(&ctl) {
                into.startup_cpu.push(cpu_so_far(d.pid, &jobs));
            }
            if steady {
                let web = Addr::Tcp(([127, 0, 0, 1], port).into());
                into.steady = Some(fleet_steady(ctx, &d, &ctl, &web));
            }
            match stop_ms(d) {
                Ok(ms) => into.sigterm.push(ms),
                Err(e) => into.error = Some(format!("SIGTERM: {e}")),
            }
        }
        Err(e) => into.error = Some(e),
    }
}

fn fig_scaling(ctx: &Ctx) {
    let runs = if ctx.quick { 1 } else { 3 };
    let check = r#", health: { exec: "true", interval: 1 }"#;
    let (sleep, abs) = (argv(&["sleep", "1000"]), argv(&["/bin/sleep", "1000"]));
    // [no check, `/bin/sleep`, with a check] × SCALES
    let mut all: [Vec<Scale>; 3] = Default::default();
    for v in all.iter_mut() {
        v.resize_with(SCALES.len(), Scale::default);
    }
    let began = Instant::now();
    for (i, &n) in SCALES.iter().enumerate() {
        eprintln!(
            "bench: scaling, {n} jobs ({:.0} s in)",
            began.elapsed().as_secs_f64()
        );
        // Interleaved, so that a change in the machine's load hits all three.
        for run in 0..runs {
            fleet_run(ctx, n, &sleep, "", run == 0, &mut all[0][i]);
            fleet_run(ctx, n, &abs, "", false, &mut all[1][i]);
            fleet_run(ctx, n, &sleep, check, run == 0, &mut all[2][i]);
        }
    }
    println!();
    println!(
        "Scaling (SPEC §8): N `sleep 1000` jobs (telemetry on, no user metrics), without and with an exec health check `true` every 1 s; start-up and SIGTERM → exit are medians of {runs} run(s), the rest from the first run (steady state over {} s, {} requests per latency figure, one connection per request, sequential).",
        if ctx.quick { 2 } else { 5 },
        if ctx.quick { 50 } else { 200 }
    );
    println!();
    let head: Vec<String> = SCALES
        .iter()
        .map(|n| format!("{n} job{}", if *n == 1 { "" } else { "s" }))
        .collect();
    println!("| figure | {} | SPEC §8 target |", head.join(" | "));
    println!("|---|{}---|", "---|".repeat(SCALES.len()));
    let print = |name: &str, cells: Vec<Cell>, target: String| {
        let text: Vec<String> = cells
            .into_iter()
            .map(|c| match c {
                Cell::Val(_, t) => t,
                Cell::Na(why) => format!("n/a ({why})"),
            })
            .collect();
        println!(
            "| {name} | {} | {} |",
            text.join(" | "),
            if target.is_empty() {
                "—".into()
            } else {
                target
            }
        );
        let _ = std::io::stdout().flush();
    };
    let at = |n: usize| SCALES.iter().position(|s| *s == n).unwrap_or(0);
    let val = |c: &Cell| match c {
        Cell::Val(v, _) => Some(*v),
        Cell::Na(_) => None,
    };

    // Start-up
    let per_job = |v: &[Scale], i: usize| {
        (!v[i].startup.is_empty()).then(|| median(v[i].startup.clone()) / SCALES[i] as f64)
    };
    for (k, label) in [
        (0, "`exec: [\"sleep\", \"1000\"]`"),
        (1, "`exec: [\"/bin/sleep\", \"1000\"]`"),
        (2, "`sleep`, with a check"),
    ] {
        let v = &all[k];
        let cells: Vec<Cell> = v
            .iter()
            .enumerate()
            .map(|(i, s)| match (s.startup.is_empty(), s.failed()) {
                (true, Some(c)) => c,
                (true, None) => na("not run"),
                (false, _) => {
                    let ms = median(s.startup.clone());
                    Cell::Val(
                        ms,
                        format!("{ms:.1} ms ({:.2} ms/job)", ms / SCALES[i] as f64),
                    )
                }
            })
            .collect();
        let at300 = val(&cells[at(300)]);
        let growth = per_job(v, at(1000))
            .zip(per_job(v, at(10)))
            .map(|(a, b)| a / b);
        let target = format!(
            "300: ≤ 600 ms{}; per job at 1000 ≤ 2× at 10{}",
            at300.map_or(String::new(), |ms| format!(" — {}", met(ms <= 600.0))),
            growth.map_or(String::new(), |g| format!(": {g:.2}× — {}", met(g <= 2.0)))
        );
        print(
            &format!("start-up: exec → `/v3/status` shows every job running with a pid, {label}"),
            cells,
            target,
        );
        // The same in CPU, which the machine's load does not stretch.
        let cpu_per_job = |i: usize| {
            let c = &v[i].startup_cpu;
            (!c.is_empty()).then(|| {
                let n = SCALES[i] as f64;
                (
                    median(c.iter().map(|x| x.0).collect()) / n,
                    median(c.iter().map(|x| x.1).collect()) / n,
                )
            })
        };
        let cells: Vec<Cell> = (0..SCALES.len())
            .map(|i| match cpu_per_job(i) {
                Some((own, kids)) => Cell::Val(own + kids, format!("{own:.2} + {kids:.2}")),
                None => na("not measured"),
            })
            .collect();
        let growth = cpu_per_job(at(1000))
            .zip(cpu_per_job(at(10)))
            .map(|(a, b)| (a.0 + a.1) / (b.0 + b.1));
        print(
            &format!("start-up CPU per job, ms: supervisor + the job's process, {label}"),
            cells,
            format!(
                "per job at 1000 ≤ 2× at 10{}",
                growth.map_or(String::new(), |g| format!(": {g:.2}× — {}", met(g <= 2.0)))
            ),
        );
    }

    // Steady state
    let steady = |k: usize, f: &dyn Fn(&Steady, usize) -> Cell| -> Vec<Cell> {
        all[k]
            .iter()
            .enumerate()
            .map(|(i, s)| match (&s.steady, s.failed()) {
                (Some(Ok(st)), _) => f(st, SCALES[i]),
                (Some(Err(e)), _) => na(e.clone()),
                (None, Some(c)) => c,
                (None, None) => na("not run"),
            })
            .collect()
    };
    let get = |k: usize, n: usize| all[k][at(n)].steady.as_ref().and_then(|s| s.as_ref().ok());
    for (k, with, per) in [(0, "", 1), (2, ", with a check", 2)] {
        // Threads beyond `per` per job: the constant.
        let consts: Vec<i64> = SCALES
            .iter()
            .filter_map(|&n| get(k, n).map(|s| s.threads as i64 - (per * n) as i64))
            .collect();
        // Constant: main, signals and the servers' threads. Each of the two
        // servers keeps up to 4 threads waiting in accept() once earlier
        // requests have started them (http::pool::MAX_IDLE_THREADS), so the
        // constant moves by a few between runs; what must not happen is
        // growth with the jobs.
        let lowest = consts.iter().copied().min().unwrap_or(0);
        let flat = !consts.is_empty() && consts.iter().all(|c| *c <= lowest + 2 * 4);
        print(
            &format!("threads{with}"),
            steady(k, &|s, n| {
                let c = s.threads as i64 - (per * n) as i64;
                let jobs = if per == 1 { "jobs" } else { "2 × jobs" };
                Cell::Val(s.threads as f64, format!("{} ({jobs} {c:+})", s.threads))
            }),
            format!(
                "≤ {} + a constant — {}",
                if per == 1 { "jobs" } else { "2 × jobs" },
                met(flat)
            ),
        );
    }
    for (k, with) in [(0, ""), (2, ", with a check")] {
        let base = get(k, 1).map(|s| s.rss);
        let per_job_kib = |s: &Steady, n: usize| {
            base.filter(|_| n > 1)
                .map(|b| (s.rss as f64 - b as f64) / (n - 1) as f64)
        };
        let worst = SCALES
            .iter()
            .filter(|&&n| n >= 100)
            .filter_map(|&n| get(k, n).and_then(|s| per_job_kib(s, n)))
            .fold(f64::NAN, f64::max);
        print(
            &format!("RSS{with} (each job beyond the first)"),
            steady(k, &|s, n| {
                let extra =
                    per_job_kib(s, n).map_or(String::new(), |kib| format!(" (+{kib:.1} KiB/job)"));
                Cell::Val(s.rss as f64, format!("{}{extra}", mib(s.rss as f64)))
            }),
            if k == 0 {
                format!(
                    "≤ 24 KiB per job beyond the first{}",
                    if worst.is_nan() {
                        String::new()
                    } else {
                        format!(
                            " — {} (worst at ≥ 100 jobs: {worst:.1} KiB)",
                            met(worst <= 24.0)
                        )
                    }
                )
            } else {
                String::new()
            },
        );
        print(
            &format!("PSS{with}"),
            steady(k, &|s, _| Cell::Val(s.pss as f64, mib(s.pss as f64))),
            String::new(),
        );
    }
    for (k, with) in [(0, ""), (2, ", with a check")] {
        print(
            &format!("CPU: supervisor + children, ms per s{with}"),
            steady(k, &|s, n| {
                let per = if k == 2 {
                    let idle = get(0, n).map_or(0.0, |i| i.cpu);
                    format!(
                        " ({:.0} µs supervisor per check)",
                        (s.cpu - idle) * 1e3 / n as f64
                    )
                } else {
                    String::new()
                };
                Cell::Val(s.cpu, format!("{:.2} + {:.1}{per}", s.cpu, s.child))
            }),
            if k == 2 {
                "≤ 150 µs supervisor CPU per exec check".into()
            } else {
                "0 when idle".into()
            },
        );
        print(
            &format!("context switches per s{with}"),
            steady(k, &|s, n| {
                let per = if k == 2 {
                    let idle = get(0, n).map_or(0.0, |i| i.switches);
                    format!(" ({:.1} per check)", (s.switches - idle) / n as f64)
                } else {
                    String::new()
                };
                Cell::Val(s.switches, format!("{:.1}{per}", s.switches))
            }),
            if k == 2 {
                "≤ 6 per exec check".into()
            } else {
                "0 when idle".into()
            },
        );
    }
    let lat = |l: &LoadStats| {
        let mut v = l.lat_us.clone();
        (pct(&mut v, 0.5) / 1e3, pct(&mut v, 0.99) / 1e3, l.rps)
    };
    for (k, with) in [(0, ""), (2, ", with a check")] {
        let p99 = get(k, 300).map(|s| lat(&s.status).1);
        print(
            &format!("`GET /v3/status` p50 / p99{with}"),
            steady(k, &|s, _| {
                let (a, b, _) = lat(&s.status);
                Cell::Val(b, format!("{a:.2} / {b:.2} ms"))
            }),
            format!(
                "300: p99 ≤ 5 ms{}",
                p99.map_or(String::new(), |p| format!(" — {}", met(p <= 5.0)))
            ),
        );
        print(
            &format!("`GET /metrics` p50 / p99{with}"),
            steady(k, &|s, _| {
                let (a, b, rps) = lat(&s.metrics);
                Cell::Val(b, format!("{a:.2} / {b:.2} ms ({rps:.0} req/s)"))
            }),
            String::new(),
        );
        print(
            &format!("unchanged `POST /v3/reload` (median of 3){with}"),
            steady(k, &|s, _| {
                Cell::Val(
                    s.reload_ms,
                    format!(
                        "{:.1} ms{}",
                        s.reload_ms,
                        if s.reload_kept {
                            ""
                        } else {
                            ", **jobs restarted**"
                        }
                    ),
                )
            }),
            "no job restarted".into(),
        );
    }
    for (k, with) in [(0, ""), (2, ", with a check")] {
        let cells: Vec<Cell> = all[k]
            .iter()
            .map(|s| match (s.sigterm.is_empty(), s.failed()) {
                (true, Some(c)) => c,
                (true, None) => na("not run"),
                (false, _) => {
                    let ms = median(s.sigterm.clone());
                    Cell::Val(ms, format!("{ms:.1} ms"))
                }
            })
            .collect();
        let at300 = val(&cells[at(300)]);
        print(
            &format!("SIGTERM → exit{with}"),
            cells,
            format!(
                "300: ≤ 100 ms{}",
                at300.map_or(String::new(), |ms| format!(" — {}", met(ms <= 100.0)))
            ),
        );
    }
    print(
        "load average (1, 5, 15 min) when the last run at this count started",
        all[2]
            .iter()
            .map(|s| Cell::Val(0.0, s.load.clone()))
            .collect(),
        String::new(),
    );
}
