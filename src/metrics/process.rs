//! The standard `process_*` families, as client_golang's process collector
//! writes them: CPU time from getrusage, open and maximum file descriptors,
//! virtual and resident memory from `/proc/self/statm`, start time.
//!
//! Read on every scrape, so each costs a syscall or two rather than a
//! file opened, read and closed: what never changes is read once, the fd
//! count comes from one stat(2), and `statm` stays open and is read again
//! with pread(2).

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use super::text::{header, sample};

/// Page size and clock ticks from the auxiliary vector (`AT_PAGESZ`,
/// `AT_CLKTCK`): what `sysconf` returns, without enabling nix's `feature`
/// feature or adding libc. Falls back to 4096 and 100, the Linux values on
/// every architecture we build for.
fn page_size_and_ticks() -> (f64, f64) {
    static CACHE: OnceLock<(f64, f64)> = OnceLock::new();
    *CACHE.get_or_init(|| {
        let (mut page, mut ticks) = (4096.0, 100.0);
        if let Ok(aux) = fs::read("/proc/self/auxv") {
            const W: usize = std::mem::size_of::<usize>();
            for pair in aux.chunks_exact(2 * W) {
                let word = |b: &[u8]| {
                    let mut a = [0u8; W];
                    a.copy_from_slice(b);
                    usize::from_ne_bytes(a)
                };
                let (key, val) = (word(&pair[..W]), word(&pair[W..]));
                match key {
                    6 if val > 0 => page = val as f64,   // AT_PAGESZ
                    17 if val > 0 => ticks = val as f64, // AT_CLKTCK
                    _ => {}
                }
            }
        }
        (page, ticks)
    })
}

/// The fields of `/proc/self/stat` after the `(comm)`, which may itself hold
/// spaces and parentheses; `fields[0]` is field 3 (state) of proc(5).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// Field `n` (1-based, as in proc(5)) of the stat fields.
fn stat_field(fields: &[&str], n: usize) -> Option<f64> {
    fields.get(n.checked_sub(3)?)?.parse().ok()
}

/// Appends the standard `process_*` families. A file that cannot be read or
/// parsed omits its samples rather than failing the scrape.
pub fn render_process(out: &mut String) {
    let (page, ticks) = page_size_and_ticks();
    if let Some(cpu) = cpu_seconds() {
        single_sample_family(
            out,
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            cpu,
        );
    }
    if let Some(fds) = open_fds() {
        single_sample_family(
            out,
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            fds as f64,
        );
    }
    if let Some(max) = max_fds() {
        single_sample_family(
            out,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            "gauge",
            max,
        );
    }
    let mut buf = [0u8; 256];
    let statm = read_statm(&mut buf);
    let mut pages = statm.split_whitespace().map(|f| f.parse::<f64>().ok());
    if let (Some(Some(size)), Some(Some(resident))) = (pages.next(), pages.next()) {
        single_sample_family(
            out,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            "gauge",
            size * page,
        );
        single_sample_family(
            out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            resident * page,
        );
    }
    if let Some(start) = start_time(ticks) {
        single_sample_family(
            out,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            start,
        );
    }
}

/// User plus system CPU time of every thread, from getrusage (no file to read).
fn cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(secs(u.user_time()) + secs(u.system_time()))
}

/// Open file descriptors. Since Linux 6.2 the size that stat(2) gives
/// `/proc/self/fd` is their number, where listing the directory costs the
/// kernel a lookup per fd (thousands with a thousand jobs); older kernels
/// say 0 there, and then the directory is listed (less the fd listing it).
fn open_fds() -> Option<u64> {
    match fs::metadata("/proc/self/fd").map(|m| m.len()) {
        Ok(n) if n > 0 => Some(n),
        _ => fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| (d.count() as u64).saturating_sub(1)),
    }
}

/// `/proc/self/statm` (sizes in pages; cheaper for the kernel to produce
/// than `stat`) as text, or "" if it cannot be read. The file is opened
/// once and read again at offset 0 each time: the kernel regenerates it
/// on every read from the start.
fn read_statm(buf: &mut [u8]) -> &str {
    static STATM: OnceLock<Option<File>> = OnceLock::new();
    let Some(file) = STATM.get_or_init(|| File::open("/proc/self/statm").ok()) else {
        return "";
    };
    match file.read_at(buf, 0) {
        Ok(n) => std::str::from_utf8(&buf[..n]).unwrap_or(""),
        Err(_) => "",
    }
}

/// Our soft limit on open files, read once: nothing in containerpilot
/// changes it, and `/proc/self/limits` is the costliest file to read here.
fn max_fds() -> Option<f64> {
    static MAX: OnceLock<Option<f64>> = OnceLock::new();
    *MAX.get_or_init(|| {
        fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| max_open_files(&l))
    })
}

/// When we started, since the epoch: boot time plus field 22 of our stat.
fn start_time(ticks: f64) -> Option<f64> {
    static START: OnceLock<Option<f64>> = OnceLock::new();
    *START.get_or_init(|| {
        let stat = fs::read_to_string("/proc/self/stat").ok()?;
        let fields = stat_fields(&stat)?;
        Some(boot_time()? + stat_field(&fields, 22)? / ticks)
    })
}

/// Boot time from `/proc/stat`, read once: it never changes, and the file
/// is costly to generate (the kernel formats every CPU's counters).
fn boot_time() -> Option<f64> {
    static BTIME: OnceLock<Option<f64>> = OnceLock::new();
    *BTIME.get_or_init(|| {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    })
}

/// The soft limit of "Max open files"; "unlimited" as client_golang reports it.
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(u64::MAX as f64);
    }
    soft.parse().ok()
}

/// A family of one unlabelled sample.
fn single_sample_family(out: &mut String, name: &str, help: &str, kind: &str, v: f64) {
    header(out, name, help, kind);
    sample(out, name, "", &[], v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{parse_strict, value_of};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Seconds since the Unix epoch.
    fn unix_now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    #[test]
    fn process_metrics() {
        let mut s = String::new();
        render_process(&mut s);
        let fams = parse_strict(&s);
        for name in [
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
            "process_virtual_memory_bytes",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
        ] {
            assert!(fams.iter().any(|f| f == name), "missing {name} in\n{s}");
        }
        let rss = value_of(&s, "process_resident_memory_bytes").unwrap();
        assert!(rss > 100_000.0 && rss < 1e11, "{rss}");
        let start = value_of(&s, "process_start_time_seconds").unwrap();
        assert!(
            (unix_now() - start).abs() < 24.0 * 3600.0 * 365.0,
            "{start}"
        );
        assert_eq!(stat_fields("1 (a) b) c) S 1 2").unwrap(), ["S", "1", "2"]);
        assert_eq!(
            max_open_files(
                "Max open files            1024                 4096                 files\n"
            ),
            Some(1024.0)
        );
    }
}
