//! Go's `fmt.Sprintf` for `printf`, and the float and quoting rules `%v` of a
//! value shares with it.

use std::fmt::Write as _;

use super::funcs::{too_long, Env};
use super::{Value, MAX_OUTPUT, MAX_WIDTH};

/// One `%` directive's flags, width and precision.
#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf` for the verbs configs use. Mismatches print Go's
/// markers (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA ...)`) rather than fail.
pub(super) fn f_printf(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let mut args = args.into_iter();
    let format = match args.next() {
        Some(Value::Str(s)) => s,
        Some(other) => {
            return Err(format!(
                "argument 1 (the format) must be a string, got {}",
                other.describe()
            ))
        }
        None => return Err("missing format".into()),
    };
    let args: Vec<Value> = args.collect();
    let mut used = 0;
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = read_count(&mut chars)?;
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(read_count(&mut chars)?.unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(used) {
            Some(v) => format_verb(&mut out, &spec, verb, v),
            None => write!(out, "%!{verb}(MISSING)").map_err(|e| e.to_string())?,
        }
        used += 1;
        if out.len() > MAX_OUTPUT {
            return Err(too_long());
        }
    }
    if used < args.len() {
        let extra: Vec<String> = args[used..]
            .iter()
            .map(|v| format!("{}={v}", go_type(v)))
            .collect();
        write!(out, "%!(EXTRA {})", extra.join(", ")).map_err(|e| e.to_string())?;
    }
    Ok(Value::Str(out))
}

fn read_count(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<Option<usize>, String> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        let v = n.unwrap_or(0) * 10 + d as usize;
        if v > MAX_WIDTH {
            return Err(format!("width or precision larger than {MAX_WIDTH}"));
        }
        n = Some(v);
    }
    Ok(n)
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Float(_) => "float64",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]string",
        other => other.kind(),
    }
}

fn format_verb(out: &mut String, spec: &Spec, verb: char, v: &Value) {
    match (verb, v) {
        // Go applies the verb to each element of a list or map.
        (_, Value::List(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_verb(out, spec, verb, item);
                if out.len() > MAX_OUTPUT {
                    break; // f_printf reports it
                }
            }
            out.push(']');
        }
        (_, Value::Map(m)) => {
            out.push_str("map[");
            for (i, (k, val)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_verb(out, spec, verb, &Value::Str(k.clone()));
                out.push(':');
                format_verb(out, spec, verb, &Value::Str(val.clone()));
            }
            out.push(']');
        }
        ('v' | 's', Value::Str(s)) => {
            let s = match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            };
            pad(out, spec, &s);
        }
        ('q', Value::Str(s)) => pad(out, spec, &go_quote(s, '"')),
        ('x', Value::Str(s)) => pad(
            out,
            spec,
            &s.bytes().map(|b| format!("{b:02x}")).collect::<String>(),
        ),
        ('X', Value::Str(s)) => pad(
            out,
            spec,
            &s.bytes().map(|b| format!("{b:02X}")).collect::<String>(),
        ),
        ('v' | 'd' | 'x' | 'X' | 'o' | 'b', Value::Int(i)) => format_int(out, spec, verb, *i),
        ('c', Value::Int(i)) => pad(out, spec, &int_char(*i).to_string()),
        ('q', Value::Int(i)) => pad(out, spec, &go_quote(&int_char(*i).to_string(), '\'')),
        ('v' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G', Value::Float(f)) => {
            format_float(out, spec, verb, *f)
        }
        ('v' | 't', Value::Bool(b)) => pad(out, spec, &b.to_string()),
        ('v', Value::Nil) => pad(out, spec, "<nil>"),
        (_, Value::Nil) => out.push_str(&format!("%!{verb}(<nil>)")),
        _ => out.push_str(&format!("%!{verb}({}={v})", go_type(v))),
    }
}

fn int_char(i: i64) -> char {
    u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}')
}

/// Pads to the width with spaces (or zeros with `0`), on the left unless `-`.
fn pad(out: &mut String, spec: &Spec, body: &str) {
    let fill = spec.width.unwrap_or(0).saturating_sub(body.chars().count());
    let c = if spec.zero && !spec.minus { '0' } else { ' ' };
    if !spec.minus {
        out.extend(std::iter::repeat_n(c, fill));
    }
    out.push_str(body);
    if spec.minus {
        out.extend(std::iter::repeat_n(' ', fill));
    }
}

/// Numbers put zero padding between the sign and the digits.
fn pad_number(out: &mut String, spec: &Spec, sign: &str, digits: &str, zero_ok: bool) {
    if spec.zero && zero_ok && !spec.minus {
        let fill = spec
            .width
            .unwrap_or(0)
            .saturating_sub(sign.len() + digits.len());
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(digits);
    } else {
        pad(
            out,
            &Spec {
                zero: false,
                ..*spec
            },
            &format!("{sign}{digits}"),
        );
    }
}

fn sign_of(negative: bool, spec: &Spec) -> &'static str {
    match (negative, spec.plus, spec.space) {
        (true, _, _) => "-",
        (false, true, _) => "+",
        (false, false, true) => " ",
        _ => "",
    }
}

fn format_int(out: &mut String, spec: &Spec, verb: char, i: i64) {
    let mag = i.unsigned_abs();
    let (mut digits, prefix) = match verb {
        'x' => (format!("{mag:x}"), "0x"),
        'X' => (format!("{mag:X}"), "0X"),
        'o' => (format!("{mag:o}"), "0"),
        'b' => (format!("{mag:b}"), "0b"),
        _ => (mag.to_string(), ""),
    };
    if let Some(p) = spec.prec {
        if p == 0 && mag == 0 {
            digits.clear();
        } else if digits.len() < p {
            digits = "0".repeat(p - digits.len()) + &digits;
        }
    }
    let prefix = if spec.sharp { prefix } else { "" };
    let sign = format!("{}{prefix}", sign_of(i < 0, spec));
    // Go ignores the 0 flag for integers when a precision is given.
    pad_number(out, spec, &sign, &digits, spec.prec.is_none());
}

fn format_float(out: &mut String, spec: &Spec, verb: char, f: f64) {
    if f.is_nan() {
        return pad(
            out,
            &Spec {
                zero: false,
                ..*spec
            },
            if spec.plus { "+NaN" } else { "NaN" },
        );
    }
    let upper = verb.is_ascii_uppercase();
    let a = f.abs();
    let body = if a.is_infinite() {
        "Inf".to_string()
    } else {
        match verb {
            'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), a),
            'e' | 'E' => go_exponent(&format!("{:.*e}", spec.prec.unwrap_or(6), a)),
            _ => float_g(a, spec.prec),
        }
    };
    let body = if upper { body.to_uppercase() } else { body };
    // Go spells positive infinity "+Inf" even without the + flag.
    let sign = if a.is_infinite() && f > 0.0 {
        "+"
    } else {
        sign_of(f.is_sign_negative(), spec)
    };
    pad_number(out, spec, sign, &body, a.is_finite());
}

/// Go's `%v` of a float: shortest digits, exponent form from 1e+06 up or
/// below 1e-04 (`strconv.FormatFloat(f, 'g', -1, 64)`).
pub(super) fn float_v(f: f64) -> String {
    let mut out = String::new();
    format_float(&mut out, &Spec::default(), 'g', f);
    out
}

/// Rust's `1.5e6` → Go's `1.5e+06`.
fn go_exponent(rust: &str) -> String {
    let (mant, exp) = rust.split_once('e').unwrap_or((rust, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!(
        "{mant}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.unsigned_abs()
    )
}

/// Go's `%g` for a finite non-negative number (strconv `formatDigits`).
fn float_g(a: f64, prec: Option<usize>) -> String {
    let sci = match prec {
        None => format!("{a:e}"),
        Some(p) => format!("{:.*e}", p.max(1) - 1, a),
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let all: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = match all.trim_end_matches('0') {
        "" => "0",
        d => d,
    };
    let nd = digits.len() as i32;
    let eprec = match prec {
        None => 6,
        Some(p) => {
            let p = p.max(1) as i32;
            if p > nd && nd > exp {
                nd
            } else {
                p
            }
        }
    };
    if exp < -4 || exp >= eprec {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        return go_exponent(&format!("{m}e{exp}"));
    }
    let rounded: f64 = sci.parse().unwrap_or(a);
    format!("{:.*}", (nd - 1 - exp).max(0) as usize, rounded)
}

/// Go's `strconv.Quote` (and `QuoteRune` with `'`).
fn go_quote(s: &str, quote: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}
#[cfg(test)]
mod tests {
    use crate::config::template::tests::{err_at, ok};

    #[test]
    fn printf_verbs() {
        assert_eq!(
            ok(r#"{{ printf "%s|%d|%v|%q|%f" "a" 42 true "b\"c" 3.5 }}"#),
            r#"a|42|true|"b\"c"|3.500000"#
        );
        assert_eq!(
            ok(r#"{{ printf "%5.2f|%-10s|%05d|%05d|%%" 3.14159 "ab" 42 -42 }}"#),
            " 3.14|ab        |00042|-0042|%"
        );
        assert_eq!(
            ok(r#"{{ printf "%x %X %#x %o %b %c %t %+d" 255 255 255 8 5 65 false 5 }}"#),
            "ff FF 0xff 10 101 A false +5"
        );
        assert_eq!(
            ok(r#"{{ printf "%e %g %g %.3g %G" 1234.5678 1234.5678 1e6 1234.5678 1e-7 }}"#),
            "1.234568e+03 1234.5678 1e+06 1.23e+03 1E-07"
        );
        assert_eq!(
            ok(
                r#"{{ printf "%6.2f|%06.2f|%.2s|%x|%5s|%-5d|" -3.14159 -3.14159 "abcdef" "hi" "ab" 7 }}"#
            ),
            " -3.14|-03.14|ab|6869|   ab|7    |"
        );
        assert_eq!(
            ok(r#"{{ printf "%v %d %s" (split "," "a,b") (loop 3) (split "," "x") }}"#),
            "[a b] [0 1 2] [x]"
        );
        assert_eq!(
            ok(r#"{{ printf "%q %q %v %v" 120 "tab\there" 10.1 nil }}"#),
            r#"'x' "tab\there" 10.1 <nil>"#
        );
        assert_eq!(
            ok(r#"{{ printf "%.3d|%5.1f|%s" 7 2.25 .USER }}"#),
            "007|  2.2|pilot"
        );
        // Mismatches print Go's markers instead of failing.
        assert_eq!(ok(r#"{{ printf "%d" "abc" }}"#), "%!d(string=abc)");
        assert_eq!(ok(r#"{{ printf "%s %s" "a" }}"#), "a %!s(MISSING)");
        assert_eq!(
            ok(r#"{{ printf "a" 3 "b" }}"#),
            "a%!(EXTRA int=3, string=b)"
        );
        assert_eq!(ok(r#"{{ printf "%f" 3 }}"#), "%!f(int=3)");
        assert_eq!(ok(r#"{{ printf "x%" }}"#), "x%!(NOVERB)");
        err_at("{{ printf 3 }}", 1, "format");
        err_at(r#"{{ printf "%9999999d" 1 }}"#, 1, "width");
    }
}
