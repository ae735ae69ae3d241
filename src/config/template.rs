//! Go `text/template` subset (SPEC §2.1). STUB: interface fixed, implementation pending.

use std::collections::HashMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// 1-based line of the template where the problem is.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Render `src` with the environment as data (`{{ .NAME }}`, `env "NAME"`).
pub fn render(src: &str, _env: &HashMap<String, String>) -> Result<String, TemplateError> {
    Ok(src.to_string())
}
