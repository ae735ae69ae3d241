//! The health-check runner thread of one job (SPEC §3.2): runs the check when
//! the event loop says it is due, kills its process group when it outlives
//! `health.timeout`, and reports pass or fail with the check's output. The
//! schedule itself is a deadline held by the event loop.

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, RecvTimeoutError, Sender};
use nix::sys::signal::Signal;

use crate::msg::{JobId, Msg};
use crate::process::{self, Launch};

/// What Consul gets to see of a failing check's output, at most.
const MAX_OUTPUT: usize = 4096;

pub struct CheckRun {
    pub launch: Launch,
    pub timeout: Duration,
}

pub fn start_checker(job: JobId, name: &str, tx: Sender<Msg>) -> Result<Sender<CheckRun>, String> {
    let (run_tx, run_rx) = unbounded::<CheckRun>();
    thread::Builder::new()
        .name(format!("check-{name}"))
        .stack_size(128 * 1024)
        .spawn(move || {
            while let Ok(run) = run_rx.recv() {
                let started = Instant::now();
                let (passed, output) = check_once(&run);
                let duration = started.elapsed();
                if tx
                    .send(Msg::HealthChecked {
                        job,
                        passed,
                        output,
                        duration,
                    })
                    .is_err()
                {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the health-check thread for job[{name}]: {e}"))?;
    Ok(run_tx)
}

fn check_once(run: &CheckRun) -> (bool, String) {
    let (line_tx, line_rx) = unbounded();
    let sp = match process::launch(&run.launch, Some(line_tx)) {
        Ok(sp) => sp,
        Err((_, msg)) => {
            crate::log::error(&msg);
            return (false, msg);
        }
    };
    let (code, timed_out) = match sp.exit.recv_timeout(run.timeout) {
        Ok(code) => (code, false),
        Err(RecvTimeoutError::Timeout) => {
            process::signal_group(sp.pid, Signal::SIGKILL);
            (sp.exit.recv().unwrap_or(137), true)
        }
        Err(RecvTimeoutError::Disconnected) => (137, false),
    };
    // The pumps finish as soon as the pipes close; a background grandchild
    // holding them open must not hold up the result.
    let until = Instant::now() + Duration::from_millis(50);
    let mut output = String::new();
    while let Ok(line) = line_rx.recv_deadline(until) {
        if output.len() + line.len() < MAX_OUTPUT {
            if !output.is_empty() {
                output.push('\n');
            }
            output.push_str(&line);
        }
    }
    if timed_out {
        let msg = format!("check timed out after {:?}", run.timeout);
        crate::log::warn(&format!("{}[{}] {msg}", run.launch.field, run.launch.name));
        return (false, msg);
    }
    if code != 0 && output.is_empty() {
        output = format!("check exited with status {code}");
    }
    (code == 0, output)
}
