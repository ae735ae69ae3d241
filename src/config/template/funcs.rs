//! The functions a template may call: Go's builtins (`len`, `index`, `eq`,
//! ...) and ContainerPilot's (`default`, `env`, `split`, `join`, `replaceAll`,
//! `regexReplaceAll`, `loop`). `printf` lives in its own module.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::rc::Rc;

use super::isprint::is_print;
use super::printf::{self, f_printf};
use super::{too_long, Env, ListOf, Value, MAX_LIST, MAX_OUTPUT};

type Builtin = fn(&Env, Vec<Value>) -> Result<Value, String>;

/// Name, fewest and most arguments, implementation. `and` and `or` are not
/// here because they evaluate their arguments lazily (`Exec::and_or`).
pub(super) const FUNCS: &[(&str, usize, usize, Builtin)] = &[
    ("default", 2, 2, f_default),
    ("env", 1, 1, f_env),
    ("split", 2, 2, f_split),
    ("join", 2, 2, f_join),
    ("replaceAll", 3, 3, f_replace_all),
    ("regexReplaceAll", 3, 3, f_regex_replace_all),
    ("loop", 1, 2, f_loop),
    ("printf", 1, usize::MAX, f_printf),
    ("print", 0, usize::MAX, f_print),
    ("println", 0, usize::MAX, f_println),
    ("len", 1, 1, f_len),
    ("index", 1, usize::MAX, f_index),
    ("eq", 2, usize::MAX, f_eq),
    ("ne", 2, 2, f_ne),
    ("lt", 2, 2, f_lt),
    ("le", 2, 2, f_le),
    ("gt", 2, 2, f_gt),
    ("ge", 2, 2, f_ge),
    ("not", 1, 1, f_not),
    ("html", 0, usize::MAX, f_html),
    ("js", 0, usize::MAX, f_js),
    ("urlquery", 0, usize::MAX, f_urlquery),
    ("slice", 1, usize::MAX, f_slice),
    ("call", 1, usize::MAX, f_call),
];

pub(super) fn is_function(name: &str) -> bool {
    name == "and" || name == "or" || FUNCS.iter().any(|f| f.0 == name)
}

/// Arity is checked by the caller; this only unpacks.
fn exactly<const N: usize>(args: Vec<Value>) -> Result<[Value; N], String> {
    let n = args.len();
    args.try_into()
        .map_err(|_| format!("wrong number of arguments: want {N}, got {n}"))
}

fn want_str(v: &Value, pos: usize) -> Result<&str, String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(format!(
            "argument {pos} must be a string, got {}",
            other.describe()
        )),
    }
}

/// Env values are strings, so `loop .COUNT` and `index $l .I` accept "3".
fn want_int(v: &Value, pos: usize) -> Result<i64, String> {
    let n = match v {
        Value::Int(i) => Some(*i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9e18 => Some(*f as i64),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| format!("argument {pos} must be an integer, got {}", v.describe()))
}

/// `default D X`: X unless it is unset or empty.
fn f_default(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [fallback, value] = exactly(args)?;
    let chosen = if value.truthy() { value } else { fallback };
    Ok(Value::Str(chosen.to_string()))
}

fn f_env(env: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [name] = exactly(args)?;
    Ok(Value::Str(
        env.get(want_str(&name, 1)?).cloned().unwrap_or_default(),
    ))
}

/// `split SEP S`, trimming S first as upstream does, so "" gives an empty list.
fn f_split(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [sep, s] = exactly(args)?;
    let (sep, s) = (want_str(&sep, 1)?, want_str(&s, 2)?.trim());
    if s.is_empty() {
        return Ok(Value::List(ListOf::Strings, Rc::new(Vec::new())));
    }
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars()
            .take(MAX_LIST + 1)
            .map(|c| Value::Str(c.to_string()))
            .collect()
    } else {
        s.splitn(MAX_LIST + 1, sep)
            .map(|p| Value::Str(p.to_string()))
            .collect()
    };
    if parts.len() > MAX_LIST {
        return Err(format!("more than {MAX_LIST} items"));
    }
    Ok(Value::List(ListOf::Strings, Rc::new(parts)))
}

/// `join SEP LIST`.
fn f_join(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [sep, list] = exactly(args)?;
    let sep = want_str(&sep, 1)?;
    let items = match &list {
        Value::List(_, items) => items,
        Value::Nil => return Ok(Value::Str(String::new())),
        other => {
            return Err(format!(
                "argument 2 must be a list, got {}",
                other.describe()
            ))
        }
    };
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        write!(out, "{item}").map_err(|e| e.to_string())?;
        if out.len() > MAX_OUTPUT {
            return Err(too_long());
        }
    }
    Ok(Value::Str(out))
}

/// `replaceAll FROM TO S`.
fn f_replace_all(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [from, to, s] = exactly(args)?;
    let (from, to, s) = (want_str(&from, 1)?, want_str(&to, 2)?, want_str(&s, 3)?);
    let hits = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    if s.len().saturating_add(hits.saturating_mul(to.len())) > MAX_OUTPUT {
        return Err(too_long());
    }
    Ok(Value::Str(s.replace(from, to)))
}

/// `regexReplaceAll RE TO S`; TO may use `$1`, `${1}`, `$name` as in Go.
fn f_regex_replace_all(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [re, to, s] = exactly(args)?;
    let (pattern, to, s) = (want_str(&re, 1)?, want_str(&to, 2)?, want_str(&s, 3)?);
    let re = regex_lite::Regex::new(pattern)
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))?;
    // replace_all by hand, to stop as soon as the result gets too big.
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(s) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&s[last..m.start()]);
        caps.expand(to, &mut out);
        last = m.end();
        if out.len() > MAX_OUTPUT {
            return Err(too_long());
        }
    }
    out.push_str(&s[last..]);
    Ok(Value::Str(out))
}

/// `loop N` = 0..N, `loop A B` = A..B, counting down when A > B (upstream).
fn f_loop(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let ints = args
        .iter()
        .enumerate()
        .map(|(i, v)| want_int(v, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let (start, stop) = match ints[..] {
        [n] => (0, n),
        [a, b] => (a, b),
        _ => {
            return Err(format!(
                "wrong number of arguments: want 1 or 2, got {}",
                ints.len()
            ))
        }
    };
    let count = (i128::from(stop) - i128::from(start)).unsigned_abs();
    if count > MAX_LIST as u128 {
        return Err(format!(
            "{count} items is more than the limit of {MAX_LIST}"
        ));
    }
    let items: Vec<Value> = if start <= stop {
        (start..stop).map(Value::Int).collect()
    } else {
        (stop + 1..=start).rev().map(Value::Int).collect()
    };
    Ok(Value::List(ListOf::Ints, Rc::new(items)))
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn f_print(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    Ok(Value::Str(sprint(&args)?))
}

fn sprint(args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut prev_str = false;
    for (i, v) in args.iter().enumerate() {
        let is_str = matches!(v, Value::Str(_));
        if i > 0 && !is_str && !prev_str {
            out.push(' ');
        }
        out.push_str(&v.to_string());
        if out.len() > MAX_OUTPUT {
            return Err(too_long());
        }
        prev_str = is_str;
    }
    Ok(out)
}

/// The text `html`, `js` and `urlquery` escape: their arguments as `print`
/// shows them, except that a nil is `<no value>` (Go's `evalArgs`).
fn escaper_text(args: Vec<Value>) -> Result<String, String> {
    match &args[..] {
        [Value::Str(s)] => Ok(s.clone()),
        _ => {
            let args: Vec<Value> = args
                .into_iter()
                .map(|v| match v {
                    Value::Nil => Value::Str("<no value>".into()),
                    v => v,
                })
                .collect();
            sprint(&args)
        }
    }
}

/// Go's `html`: escapes `<>&'"` and NUL.
fn f_html(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let s = escaper_text(args)?;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Ok(Value::Str(out))
}

/// Go's `js`: backslash escapes for quotes and `\`, `\uXXXX` for `<>&=`,
/// control characters and non-printable non-ASCII.
fn f_js(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let s = escaper_text(args)?;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' | '>' | '&' | '=' => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c if c.is_ascii() || is_print(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
        }
    }
    Ok(Value::Str(out))
}

/// Go's `urlquery` (`url.QueryEscape`): space is `+`, and every byte but
/// letters, digits and `-_.~` is `%XX`.
fn f_urlquery(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let s = escaper_text(args)?;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    Ok(Value::Str(out))
}

/// Go's `slice X I J K`: `X[I:J]` of a string (bytes) or list. Indexes
/// must be ints, as in Go.
fn f_slice(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let mut args = args.into_iter();
    let item = args.next().unwrap_or(Value::Nil);
    let indexes: Vec<Value> = args.collect();
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match &item {
        Value::Nil => return Err("slice of untyped nil".into()),
        Value::Str(_) if indexes.len() == 3 => return Err("cannot 3-index slice a string".into()),
        Value::Str(s) => s.len(),
        Value::List(_, items) => items.len(),
        other => {
            return Err(format!(
                "can't slice item of type {}",
                printf::go_type(other)
            ))
        }
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        let n = match index {
            Value::Int(n) => *n,
            Value::Nil => return Err("cannot index slice/array with nil".into()),
            other => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    printf::go_type(other)
                ))
            }
        };
        idx[i] = usize::try_from(n)
            .ok()
            .filter(|&n| n <= len)
            .ok_or_else(|| format!("index out of range: {n}"))?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Value::Str(s) => {
            Value::Str(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned())
        }
        Value::List(of, items) => Value::List(of, Rc::new(items[idx[0]..idx[1]].to_vec())),
        other => other,
    })
}

/// Go's `call`: no value here is a function, so it always fails, at run
/// time like Go.
fn f_call(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    match args.first() {
        None | Some(Value::Nil) => Err("call of nil".into()),
        Some(other) => Err(format!("non-function of type {}", printf::go_type(other))),
    }
}

/// Go's `fmt.Sprintln`: always spaces, then a newline.
fn f_println(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let mut out = String::new();
    for (i, v) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&v.to_string());
        if out.len() > MAX_OUTPUT {
            return Err(too_long());
        }
    }
    out.push('\n');
    Ok(Value::Str(out))
}

fn f_len(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [v] = exactly(args)?;
    let n = match &v {
        Value::Str(s) => s.len(),
        Value::List(_, l) => l.len(),
        Value::Map(m) => m.len(),
        other => return Err(format!("len of {} is not defined", other.describe())),
    };
    Ok(Value::Int(n as i64))
}

/// `index X K1 K2...`: list position or map key; a missing key is "".
fn f_index(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let mut args = args.into_iter().enumerate();
    let Some((_, mut v)) = args.next() else {
        return Err("wrong number of arguments: want at least 1, got 0".into());
    };
    if v == Value::Nil {
        return Err("index of untyped nil".into());
    }
    for (i, key) in args {
        v = match &v {
            Value::List(_, items) => {
                let n = want_int(&key, i + 1)?;
                let got = usize::try_from(n).ok().and_then(|n| items.get(n));
                got.cloned().ok_or_else(|| {
                    format!("index {n} out of range: the list has {} items", items.len())
                })?
            }
            Value::Str(s) => {
                let n = want_int(&key, i + 1)?;
                let got = usize::try_from(n).ok().and_then(|n| s.as_bytes().get(n));
                Value::Int(i64::from(*got.ok_or_else(|| {
                    format!("index {n} out of range: the string has {} bytes", s.len())
                })?))
            }
            Value::Map(m) => Value::Str(m.get(want_str(&key, i + 1)?).cloned().unwrap_or_default()),
            other => return Err(format!("cannot index {}", other.describe())),
        };
    }
    Ok(v)
}

enum Num {
    Int(i64),
    Float(f64),
}

/// A number, or a string holding one (see the module docs).
fn as_num(v: &Value) -> Option<Num> {
    match v {
        Value::Int(i) => Some(Num::Int(*i)),
        Value::Float(f) => Some(Num::Float(*f)),
        Value::Str(s) => {
            let s = s.trim();
            s.parse().map(Num::Int).ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Num::Float)
            })
        }
        _ => None,
    }
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (Num::Int(x), Num::Float(y)) => (x as f64).partial_cmp(&y),
        (Num::Float(x), Num::Int(y)) => x.partial_cmp(&(y as f64)),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y),
    }
}

fn is_num(v: &Value) -> bool {
    matches!(v, Value::Int(_) | Value::Float(_))
}

fn incompatible(a: &Value, b: &Value) -> String {
    format!("cannot compare {} with {}", a.describe(), b.describe())
}

fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x == y),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Nil, Value::Nil) => Ok(true),
        (Value::Nil, _) | (_, Value::Nil) => Ok(false),
        (Value::List(..) | Value::Map(_), _) | (_, Value::List(..) | Value::Map(_)) => {
            Err(incompatible(a, b))
        }
        _ if is_num(a) || is_num(b) => match (as_num(a), as_num(b)) {
            (Some(x), Some(y)) => Ok(num_cmp(x, y) == Some(Ordering::Equal)),
            // A string that is not a number is not equal to any number.
            _ if matches!(a, Value::Str(_)) || matches!(b, Value::Str(_)) => Ok(false),
            _ => Err(incompatible(a, b)),
        },
        _ => Err(incompatible(a, b)),
    }
}

fn order(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        _ if is_num(a) || is_num(b) => match (as_num(a), as_num(b)) {
            (Some(x), Some(y)) => num_cmp(x, y).ok_or_else(|| incompatible(a, b)),
            _ => Err(incompatible(a, b)),
        },
        _ => Err(incompatible(a, b)),
    }
}

/// Go's `eq a b c`: a equals any of the others.
fn f_eq(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let (first, rest) = args.split_first().ok_or("missing arguments")?;
    for other in rest {
        if equal(first, other)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn f_ne(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [a, b] = exactly(args)?;
    Ok(Value::Bool(!equal(&a, &b)?))
}

fn ordered(args: Vec<Value>, want: fn(Ordering) -> bool) -> Result<Value, String> {
    let [a, b] = exactly(args)?;
    Ok(Value::Bool(want(order(&a, &b)?)))
}

fn f_lt(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    ordered(args, Ordering::is_lt)
}

fn f_le(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    ordered(args, Ordering::is_le)
}

fn f_gt(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    ordered(args, Ordering::is_gt)
}

fn f_ge(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    ordered(args, Ordering::is_ge)
}

fn f_not(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [v] = exactly(args)?;
    Ok(Value::Bool(!v.truthy()))
}
#[cfg(test)]
mod tests {
    use crate::config::template::tests::{err_at, ok, same_as_go};

    #[test]
    fn default_and_env() {
        assert_eq!(ok(r#"{{ default "x" .UNSET }}"#), "x");
        assert_eq!(ok(r#"{{ default "x" .USER }}"#), "pilot");
        assert_eq!(ok(r#"{{ .EMPTY | default "x" }}"#), "x");
        assert_eq!(ok(r#"{{ "0" | default "x" }}"#), "0");
        assert_eq!(ok(r#"{{ default 5 "" }}"#), "5");
        // Deviation: Go returned the default for any non-string value.
        assert_eq!(ok("{{ 7 | default 5 }} {{ 0 | default 5 }}"), "7 5");
        assert_eq!(ok(r#"{{ env "USER" }}"#), "pilot");
        assert_eq!(ok(r#"{{ env "UNSET" }}"#), "");
        assert_eq!(ok(r#"{{ env (printf "%s_HOST" .PREFIX) }}"#), "db.local");
        assert_eq!(ok(r#"{{ env "EQ" }}"#), "test3=w/equals==");
        err_at("{{ env 3 }}", 1, "env: argument 1 must be a string");
        err_at(
            r#"{{ default "x" }}"#,
            1,
            "default: wrong number of arguments: want 2, got 1",
        );
    }

    #[test]
    fn split_join_replace() {
        assert_eq!(ok(r#"{{ split ":" .PARTS }}"#), "[a b c]");
        assert_eq!(
            ok(r#"{{ split "," "" }} {{ len (split "," "  ") }}"#),
            "[] 0"
        );
        assert_eq!(ok(r#"{{ split "," " a, b " }}"#), "[a  b]");
        assert_eq!(ok(r#"{{ split "" "abc" }}"#), "[a b c]");
        assert_eq!(ok(r#"{{ join "-" (split "," "a,b") }}"#), "a-b");
        assert_eq!(ok(r#"{{ join "," (loop 3) }}"#), "0,1,2");
        assert_eq!(ok(r#"{{ join "," (split "," "") }}"#), "");
        assert_eq!(ok(r#"{{ replaceAll "a" "b" "banana" }}"#), "bbnbnb");
        assert_eq!(
            ok(r#"{{ regexReplaceAll `(\w+)@(\w+)` "$2 at ${1}!" "joe@example" }}"#),
            "example at joe!"
        );
        assert_eq!(ok(r#"{{ "a.b.c" | regexReplaceAll `\.` "_" }}"#), "a_b_c");
        err_at(
            r#"{{ join "," "abc" }}"#,
            1,
            "join: argument 2 must be a list",
        );
        err_at(
            r#"{{ regexReplaceAll "(" "x" "y" }}"#,
            1,
            "regexReplaceAll: invalid regular expression",
        );
    }

    #[test]
    fn loop_forms() {
        assert_eq!(ok("{{ loop 3 }}"), "[0 1 2]");
        assert_eq!(ok("{{ loop 2 5 }}"), "[2 3 4]");
        assert_eq!(ok("{{ loop 5 2 }}"), "[5 4 3]");
        assert_eq!(ok(r#"{{ loop "3" }}"#), "[0 1 2]");
        assert_eq!(ok("{{ loop 0 }} {{ loop -2 }}"), "[] [0 -1]");
        err_at("{{ loop 1000000000 }}", 1, "limit");
        err_at(
            r#"{{ loop "x" }}"#,
            1,
            "loop: argument 1 must be an integer",
        );
        err_at("{{ loop 1 2 3 }}", 1, "want 1 or 2, got 3");
        err_at("{{ loop }}", 1, "want 1 or 2, got 0");
    }

    #[test]
    fn print_println_len_index() {
        assert_eq!(ok(r#"{{ print 1 2 "a" 3 "b" "c" }}"#), "1 2a3bc");
        assert_eq!(ok(r#"{{ println 1 "a" }}"#), "1 a\n");
        assert_eq!(
            ok(r#"{{ len "héllo" }} {{ len (loop 4) }} {{ len .PARTS }}"#),
            "6 4 5"
        );
        assert_eq!(ok(r#"{{ index (split "," "a,b,c") 1 }}"#), "b");
        assert_eq!(ok(r#"{{ index (split "," "a,b,c") "2" }}"#), "c");
        assert_eq!(
            ok(r#"{{ index . "USER" }}[{{ index . "NOPE" }}]"#),
            "pilot[]"
        );
        assert_eq!(ok(r#"{{ index "abc" 1 }} {{ index 5 }}"#), "98 5");
        err_at(r#"{{ index (split "," "a") 5 }}"#, 1, "out of range");
        err_at("{{ len 3 }}", 1, "len of int 3");
        err_at("{{ index 3 1 }}", 1, "cannot index");
    }

    #[test]
    fn comparisons() {
        assert_eq!(
            ok("{{ eq 1 2 1 }} {{ eq 1 2 3 }} {{ eq 1 1.0 }}"),
            "true false true"
        );
        assert_eq!(
            ok(r#"{{ eq "a" "a" }} {{ eq .UNSET "" }} {{ eq .COUNT 3 }} {{ eq .USER 3 }}"#),
            "true true true false"
        );
        assert_eq!(
            ok(r#"{{ ne 1 2 }} {{ ne "a" "a" }} {{ eq true true }} {{ eq nil nil }}"#),
            "true false true true"
        );
        assert_eq!(
            ok(r#"{{ lt 1 2 }} {{ le 2 2 }} {{ gt 3 2.5 }} {{ ge 1 2 }}"#),
            "true true true false"
        );
        assert_eq!(
            ok(r#"{{ lt "a" "b" }} {{ gt .COUNT 2 }} {{ lt .COUNT "10" }}"#),
            "true true false"
        );
        err_at(r#"{{ lt "abc" 1 }}"#, 1, "lt: cannot compare");
        err_at("{{ eq true 1 }}", 1, "cannot compare");
        err_at("{{ lt true false }}", 1, "cannot compare");
        err_at("{{ eq 1 }}", 1, "want at least 2");
    }

    /// Go's `html`, `js`, `urlquery`, `slice` and `call`, checked against Go 1.19.
    #[test]
    fn go_builtins() {
        same_as_go(&[
            (
                r#"{{ html "<a href='x'>&\"</a>" }}|{{ html "a\x00b" }}|{{ html 1 2 "a" "b" 3 }}|{{ html }}"#,
                "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;|a�b|1 2ab3|",
            ),
            (
                r#"{{ js "a'b\"c<>&=\\ é \u00a0 \u2028 \t\x7f" }}|{{ js 1 "x" }}"#,
                "a\\'b\\\"c\\u003C\\u003E\\u0026\\u003D\\\\ é \\u00A0 \\u2028 \\u0009\u{7f}|1x",
            ),
            (
                r#"{{ urlquery "a b&c=d/é~-_.+" }}|{{ urlquery }}|{{ urlquery 1 nil 2 }}"#,
                "a+b%26c%3Dd%2F%C3%A9~-_.%2B||1%3Cno+value%3E2",
            ),
            (
                r#"{{ slice "abcdef" 1 3 }}|{{ slice "abcdef" 1 }}|{{ slice "abcdef" }}|{{ slice (split "," "a,b,c") 1 }}|{{ slice (split "," "a,b,c") 1 2 3 }}|{{ printf "%T" (slice (loop 3) 1) }}"#,
                "bc|bcdef|abcdef|[b c]|[b]|[]int",
            ),
            (r#"{{ if false }}{{ call 1 }}{{ end }}ok"#, "ok"),
            (
                r#"{{ index 5 }}|{{ index . "USER" }}|{{ index "abc" 1 }}"#,
                "5|pilot|98",
            ),
        ]);
        // go: template: :1:3: executing "" at <slice "abc" 0 1 2>: error calling slice: cannot 3-index slice a string
        err_at(
            r#"{{ slice "abc" 0 1 2 }}"#,
            1,
            "slice: cannot 3-index slice a string",
        );
        // go: template: :1:3: executing "" at <slice "abc" 2 1>: error calling slice: invalid slice index: 2 > 1
        err_at(
            r#"{{ slice "abc" 2 1 }}"#,
            1,
            "slice: invalid slice index: 2 > 1",
        );
        // go: template: :1:3: executing "" at <slice "abc" 4>: error calling slice: index out of range: 4
        err_at(r#"{{ slice "abc" 4 }}"#, 1, "slice: index out of range: 4");
        // go: template: :1:3: executing "" at <slice "abc" "1">: error calling slice: cannot index slice/array with type string
        err_at(
            r#"{{ slice "abc" "1" }}"#,
            1,
            "slice: cannot index slice/array with typ",
        );
        // go: template: :1:3: executing "" at <slice nil>: error calling slice: slice of untyped nil
        err_at(r#"{{ slice nil }}"#, 1, "slice: slice of untyped nil");
        // go: template: :1:3: executing "" at <slice 1>: error calling slice: can't slice item of type int
        err_at(r#"{{ slice 1 }}"#, 1, "slice: can't slice item of type int");
        // go: template: :1:3: executing "" at <slice "abc" 1 2 3 4>: error calling slice: too many slice indexes: 4
        err_at(
            r#"{{ slice "abc" 1 2 3 4 }}"#,
            1,
            "slice: too many slice indexes: 4",
        );
        // go: template: :1:3: executing "" at <call 1>: error calling call: non-function of type int
        err_at(r#"{{ call 1 }}"#, 1, "call: non-function of type int");
        // go: template: :1:3: executing "" at <call nil>: error calling call: call of nil
        err_at(r#"{{ call nil }}"#, 1, "call: call of nil");
    }
}
