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
    if args.first().map(String::as_str) == Some("mark") {
        // Used as a job: record when we started running (ns since the epoch).
        let _ = std::fs::write(&args[1], now_ns().to_string());
        return;
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
    println!("| figure | containerpilot | tini | dumb-init | supervisord | SPEC §8 target |");
    println!("|---|---|---|---|---|---|");
    // BENCH_ONLY=name,name runs only those figures (while working on one).
    let only = std::env::var("BENCH_ONLY").ok();
    type Figure = (&'static str, fn(&Ctx));
    let figures: [Figure; 11] = [
        ("size", fig_size),
        ("memory", fig_memory),
        ("idle", fig_idle),
        ("true_job", fig_true_job),
        ("ping", fig_ping),
        ("control_load", fig_control_load),
        ("reap", fig_reap),
        ("sigterm", fig_sigterm),
        ("startup", fig_startup),
        ("telemetry", fig_telemetry),
        ("consul", fig_consul),
    ];
    for (name, fig) in figures {
        if only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|n| n == name))
        {
            fig(&ctx);
        }
    }
    println!();
    println!("`ours ×R` in a peer's cell: our figure divided by that peer's (below 1 is better for sizes, memory, ticks, switches and times; above 1 for req/s).");
    println!("Times are medians of the runs given in the mode line; latency percentiles are over every request.");
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
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
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
        "",
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
    let timeout = Some(Duration::from_secs(10));
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
        "≤ 50 ms",
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
