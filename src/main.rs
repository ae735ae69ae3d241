//! containerpilot: an init system and service supervisor for containers, a
//! drop-in replacement for Joyent's ContainerPilot 3.
//!
//! This file is the table of contents: parse the command line, dispatch on the
//! mode, and turn the outcome into an exit code. It is the only place that
//! prints fatal errors and chooses exit codes (1: config, 2: usage).

mod api;
mod app;
mod cli;
mod client;
mod config;
mod control;
mod digits;
mod discovery;
mod event;
mod health;
mod http;
mod inbox;
mod job;
mod log;
mod logbuf;
mod metrics;
mod msg;
mod notify;
mod output;
mod process;
mod reaper;
mod signals;
mod spawn;
mod telemetry;
mod version;
mod vfork;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use cli::Mode;
use config::ConfigError;

/// What ends a run early.
enum Error {
    Usage(cli::UsageError),
    Config(ConfigError),
    /// Anything else fatal: already phrased as "cannot …".
    Fatal(String),
}

fn main() -> ExitCode {
    let env_config = std::env::var("CONTAINERPILOT").ok();
    let result = cli::utf8_args(std::env::args_os().skip(1))
        .and_then(|args| cli::parse(args, env_config))
        .map_err(Error::Usage)
        .and_then(run);
    match result {
        Ok(code) => code,
        Err(Error::Usage(e)) => {
            eprintln!("containerpilot: {e}\nRun 'containerpilot -help' for usage.");
            ExitCode::from(2)
        }
        Err(Error::Config(e)) => {
            eprintln!("containerpilot: {e}");
            ExitCode::from(1)
        }
        Err(Error::Fatal(e)) => {
            eprintln!("containerpilot: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(mode: Mode) -> Result<ExitCode, Error> {
    match mode {
        Mode::Help => {
            print!("{}", cli::usage());
            Ok(ExitCode::SUCCESS)
        }
        Mode::Version => {
            println!(
                "Version: {}\nGitHash: {}",
                version::VERSION,
                version::GIT_HASH
            );
            Ok(ExitCode::SUCCESS)
        }
        Mode::Template { config, out } => template(&config, &out),
        Mode::Validate { config } => validate(&config),
        Mode::Run { config } => supervise(&config),
        Mode::Client { config, cmd } => {
            let out = client::run(config.as_deref(), &cmd).map_err(Error::Fatal)?;
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Run as the supervisor: the numbered steps of start-up, then the event loop.
fn supervise(path: &Path) -> Result<ExitCode, Error> {
    // 1. The config, fully validated before anything starts.
    let (cfg, warnings) = config::load(path, &config::environment()).map_err(Error::Config)?;
    // 2. Logging as configured.
    log::init(&cfg.logging).map_err(|e| {
        Error::Fatal(format!(
            "cannot open log output {:?}: {e}",
            cfg.logging.output
        ))
    })?;
    for w in &warnings {
        log::warn(&w.0);
    }
    // 3. Signals go to the signal thread alone (it starts in step 4; what
    //    arrives before waits); reap orphans even when we are not PID 1.
    signals::leave_to_signal_thread().map_err(Error::Fatal)?;
    if let Err(e) = reaper::become_subreaper() {
        log::warn(&e);
    }
    // 4. Job threads; the telemetry address and the control socket (refusing
    //    a live one) bound before any job starts; the jobs; then the
    //    servers' and the signal threads, which the first job need not
    //    wait for (signals wait blocked, connections in the backlog).
    let mut app = app::App::new(cfg, path, Box::new(app::Threads)).map_err(Error::Fatal)?;
    app.start_telemetry().map_err(Error::Fatal)?;
    app.start_control().map_err(Error::Fatal)?;
    app.start_jobs();
    // The runner threads were made on this core a moment ago: let them
    // start their processes before this thread starts three more threads.
    std::thread::yield_now();
    app.serve().map_err(Error::Fatal)?;
    signals::start(app.sender()).map_err(Error::Fatal)?;
    let code = app.run();
    Ok(ExitCode::from(code as u8))
}

fn template(config: &Path, out: &str) -> Result<ExitCode, Error> {
    let rendered = config::render(config, &config::environment()).map_err(Error::Config)?;
    let written = if out == "-" {
        std::io::stdout().write_all(rendered.as_bytes())
    } else {
        std::fs::write(out, rendered.as_bytes())
    };
    written.map_err(|e| Error::Fatal(format!("cannot write rendered config to {out}: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

fn validate(config: &Path) -> Result<ExitCode, Error> {
    let (_, warnings) = config::load(config, &config::environment()).map_err(Error::Config)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    println!("{}: valid", config.display());
    Ok(ExitCode::SUCCESS)
}
