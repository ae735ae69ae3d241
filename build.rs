//! Embeds the commit this binary is built from, for `-version` (`GitHash:`).
//! A build from a source tarball, without git or without a repository,
//! says `unknown` instead of failing. `CONTAINERPILOT_GIT_HASH` set in the
//! environment wins (for packagers who build outside the repository).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=CONTAINERPILOT_GIT_HASH");
    if std::env::var_os("CONTAINERPILOT_GIT_HASH").is_some() {
        return;
    }
    // Rebuild when HEAD moves (a commit, a checkout). Only files that exist
    // are named: cargo rebuilds every time for a missing one (a worktree's
    // `.git` is a file; a tarball has none).
    for name in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", name]) {
            if Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
            if Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    let Some(hash) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return;
    };
    if hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        println!("cargo:rustc-env=CONTAINERPILOT_GIT_HASH={hash}");
    }
}
