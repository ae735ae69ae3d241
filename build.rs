//! Embeds the commit this binary is built from, for `-version` (`GitHash:`).
//! A build from a source tarball, without git or without a repository,
//! says `unknown` instead of failing. `CONTAINERPILOT_GIT_HASH` set in the
//! environment wins (for packagers who build outside the repository).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CONTAINERPILOT_GIT_HASH");
    if std::env::var_os("CONTAINERPILOT_GIT_HASH").is_some() {
        return;
    }
    // Rebuild when HEAD moves (a commit, a checkout); harmless when absent.
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Ok(head) = std::fs::read_to_string(".git/HEAD") {
        if let Some(r) = head.strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=.git/{}", r.trim());
        }
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output();
    let Ok(out) = out else { return };
    if !out.status.success() {
        return;
    }
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        println!("cargo:rustc-env=CONTAINERPILOT_GIT_HASH={hash}");
    }
}
