//! Test helpers. STUB: being written.
#![allow(dead_code)]

pub const BIN: &str = env!("CARGO_BIN_EXE_containerpilot");
