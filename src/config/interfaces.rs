//! Interface specs (SPEC §2.3) resolved against the machine's addresses.
//! STUB: interface fixed, implementation pending.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub name: String,
    pub addr: IpAddr,
    pub loopback: bool,
}

/// The machine's addresses (getifaddrs through nix).
pub fn system_addrs() -> Vec<IfAddr> {
    Vec::new()
}

/// Check that a spec is well-formed (used when resolution is not needed).
pub fn check_spec(_spec: &str) -> Result<(), String> {
    Ok(())
}

/// First match wins over `specs` in order; error lists the interfaces present.
pub fn resolve(_specs: &[String], _addrs: &[IfAddr]) -> Result<IpAddr, String> {
    Err("not implemented".into())
}
