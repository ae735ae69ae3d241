//! Node tree → typed `Config` (SPEC §2.3). STUB: interface fixed, implementation pending.

use std::collections::HashMap;

use super::interfaces::IfAddr;
use super::tree::Node;
use super::{Config, ConfigError, Warning};

pub fn validate(
    _root: &Node,
    _env: &HashMap<String, String>,
    _addrs: &[IfAddr],
) -> Result<(Config, Vec<Warning>), ConfigError> {
    Err(ConfigError::Invalid("not implemented".into()))
}
