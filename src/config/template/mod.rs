//! Renders the config file as a Go `text/template` (SPEC §2.1).
//!
//! ContainerPilot 3 ran its config through Go's `text/template` with the
//! environment as data and seven extra functions (upstream
//! `config/template/template.go`). This is a small engine of our own for the
//! subset configs use, in three stages, one module each: `lex` cuts the source
//! into text and action items (trim markers and comments are settled here),
//! `parse` builds a tree and rejects unknown functions and undefined variables
//! before anything runs (as Go does), and `exec` walks the tree, calling
//! `funcs` (and `printf`, Go's `fmt` rules). The `gtmpl` crate was evaluated
//! first and not adopted: its error lines were off, it printed `<no value>` for
//! unset variables, lacked `$x =` and Go's `printf` flags, overflowed the stack
//! on deep nesting, and pulled in anyhow/thiserror (details in the git log).
//!
//! The reference is Go 1.19's `text/template` running ContainerPilot 3's
//! functions; differential testing against it found the differences below,
//! and every one has a test. On purpose:
//! - an unset variable is `""` (ContainerPilot's `missingkey=zero`), and a
//!   value containing `=` is kept whole (3.x cut it at the first `=`);
//! - comparisons accept a numeric string against a number (`gt .COUNT 2`),
//!   comparing numerically, and ints against floats; Go refuses mixed types.
//!   Two strings still compare as strings, as in Go;
//! - `default` returns a non-string value when it is truthy (3.x returned the
//!   default for every non-string value);
//! - `index` and `loop` accept numeric strings and whole floats as integers
//!   (`loop` trims spaces first); `join` accepts any list, not only strings.
//!
//! Not supported, or limited:
//! - complex numbers, and `%p` (Go prints an address; we print `%!p(...)`);
//! - `regexReplaceAll` uses `regex-lite`: no `\pL`/`\p{..}` classes or
//!   `\Q..\E`, `(?i)` folds ASCII only, and its limits are not RE2's;
//! - strings are UTF-8: a `\x`/octal escape or a `slice` that splits a
//!   character yields U+FFFD where Go keeps the raw byte;
//! - `index` of a string gives an `int` (Go: `uint8`, visible only to `%T`,
//!   `%#v` and the `%!` markers); `slice` cannot reach past a list's end into
//!   spare capacity as Go can with a `loop` result;
//! - an integer literal too large for an `int` fails while parsing, even in
//!   a branch not taken (Go reports it only when the action runs).
//!
//! Every error names the 1-based line it was found on. A typo must give an
//! error, never a panic or a hang, so nesting, list length, output size and
//! total work are capped.

mod exec;
mod funcs;
mod isprint;
mod lex;
mod parse;
mod printf;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;

/// Blocks, parentheses and template calls one inside the other; deeper is an
/// error, not a stack overflow.
const MAX_DEPTH: usize = 100;
/// Longest list `loop` or `split` may build.
const MAX_LIST: usize = 1_000_000;
/// Largest output, and largest string any function may return.
const MAX_OUTPUT: usize = 16 << 20;
/// Bytes of text evaluation may copy or build in all. Values are copied, not
/// shared, so reusing a large string in a loop is work like any other.
const MAX_COPIED: usize = 1 << 30;
/// Commands evaluated plus range iterations, so nested ranges cannot spin for hours.
const MAX_STEPS: u64 = 20_000_000;

/// What a template's functions see: the environment it renders with.
type Env = HashMap<String, String>;

/// The error of a function whose result would pass `MAX_OUTPUT`.
fn too_long() -> String {
    format!("result would be larger than {} MiB", MAX_OUTPUT >> 20)
}

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
pub fn render(src: &str, env: &HashMap<String, String>) -> Result<String, TemplateError> {
    let items = lex::lex(src)?;
    let templates = parse::Parser::new(items).parse()?;
    exec::Exec::run(env, &templates)
}

fn fail<T>(line: usize, message: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError {
        line,
        message: message.into(),
    })
}

/// `{{name}}`, for messages.
fn braces(name: &str) -> String {
    format!("{{{{{name}}}}}")
}

// ---------------------------------------------------------------- values

/// What a pipeline yields. The only map is the environment, which is why
/// `Map` holds strings.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(ListOf, Rc<Vec<Value>>),
    Map(Rc<BTreeMap<String, String>>),
}

/// The Go type of a list's elements: `split` makes `[]string`, `loop`
/// `[]int`. Kept so that even an empty list prints its Go type (`%T`,
/// `%!(EXTRA []int=[])`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum ListOf {
    Strings,
    Ints,
}

impl Value {
    /// Go's truth: false, 0, nil and empty strings, lists and maps are false.
    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(_, l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(..) => "list",
            Value::Map(_) => "map",
        }
    }

    /// Kind and a short rendering, for error messages.
    fn describe(&self) -> String {
        match self {
            Value::Nil => "nil".into(),
            Value::Str(s) => format!("string {:?}", shorten(s)),
            Value::List(_, l) => format!("list of {} items", l.len()),
            Value::Map(_) => "the environment map".into(),
            other => format!("{} {other}", other.kind()),
        }
    }
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Go's `%v`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            other => f.write_str(&printf::sprint(other)),
        }
    }
}
