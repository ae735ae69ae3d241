//! Go's `fmt`, as the template uses it: `printf`'s directives (flags, width,
//! precision, `*`, `%[n]` argument indexes) with the `%!` markers Go writes
//! for a mismatch, and `%v`, which is also how `{{ }}`, `print` and `println`
//! show a value. It follows Go 1.19's `fmt/print.go` and `fmt/format.go`
//! step by step for the Go types a template value can have here (`int`,
//! `float64`, `string`, `bool`, nil, `[]string`, `[]int` and ContainerPilot's
//! `template.Environment` map), with the `strconv` float and quoting formats
//! they rely on. Rust's `format!` supplies only correctly rounded decimal
//! digits; Go's layout rules are applied to them here.

use super::isprint::is_print;
use super::{too_long, Env, ListOf, Value, MAX_OUTPUT};

/// Go's `fmt` ignores numbers above this in widths, precisions and `*`
/// arguments (`tooLarge`).
const GO_MAX_NUM: usize = 1_000_000;

/// An f64's exact decimal value has at most 767 significant digits and 1074
/// after the point, so asking Rust for more than these only adds zeros.
const MAX_SIGNIFICANT_DIGITS: usize = 800;
const MAX_FRACTION_DIGITS: usize = 1100;

const LDIGITS: &[u8; 17] = b"0123456789abcdefx";
const UDIGITS: &[u8; 17] = b"0123456789ABCDEFX";

/// One directive's flags, width and precision (Go's `fmtFlags`, `wid`, `prec`).
#[derive(Default, Clone, Copy)]
struct Flags {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    /// `%+v` and `%#v` are formats of their own: Go moves the `+` and `#`
    /// flags here for the `v` verb.
    plus_v: bool,
    sharp_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

/// `printf FORMAT ARGS...`.
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
    let mut p = Printer::default();
    p.printf(&format, &args)?;
    Ok(Value::Str(p.buf))
}

/// Go's `fmt.Sprint` of one value: `%v` with no flags.
pub(super) fn sprint(v: &Value) -> String {
    let mut p = Printer::default();
    p.print_arg(v, 'v');
    p.buf
}

/// The type Go's `%T` and the `%!` markers name.
pub(super) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::List(ListOf::Strings, _) => "[]string",
        Value::List(ListOf::Ints, _) => "[]int",
        Value::Map(_) => "template.Environment",
    }
}

#[derive(Default)]
struct Printer {
    buf: String,
    f: Flags,
}

/// Go's `parsenum`: digits at `start`, or none. A number past Go's limit
/// makes the rest of the format unreadable (Go then writes `%!(NOVERB)`).
fn parse_num(s: &[u8], start: usize, end: usize) -> (usize, bool, usize) {
    if start >= end {
        return (0, false, end);
    }
    let (mut num, mut isnum, mut i) = (0usize, false, start);
    while i < end && s[i].is_ascii_digit() {
        if num > GO_MAX_NUM {
            return (0, false, end);
        }
        num = num * 10 + usize::from(s[i] - b'0');
        isnum = true;
        i += 1;
    }
    (num, isnum, i)
}

/// `[n]` at the start of `s`: the 0-based index, the bytes to skip, whether
/// it parsed (Go's `parseArgNumber`).
fn parse_arg_index(s: &[u8]) -> (Option<usize>, usize, bool) {
    if s.len() < 3 {
        return (None, 1, false);
    }
    let Some(close) = s.iter().position(|&c| c == b']') else {
        return (None, 1, false);
    };
    let (n, ok, next) = parse_num(s, 1, close);
    if !ok || next != close {
        return (None, close + 1, false);
    }
    (n.checked_sub(1), close + 1, true)
}

/// Go's `intFromArg`, for `*`: the argument if it is an int within Go's limit.
fn int_from_arg(args: &[Value], n: usize) -> (i64, bool, usize) {
    match args.get(n) {
        Some(Value::Int(i)) if i.unsigned_abs() <= GO_MAX_NUM as u64 => (*i, true, n + 1),
        Some(_) => (0, false, n + 1),
        None => (0, false, n),
    }
}

impl Printer {
    /// Go's `doPrintf`.
    fn printf(&mut self, format: &str, args: &[Value]) -> Result<(), String> {
        let s = format.as_bytes();
        let end = s.len();
        let mut arg_num = 0;
        let mut reordered = false;
        let mut i = 0;
        while i < end {
            let mut good_arg_num = true;
            let text_start = i;
            while i < end && s[i] != b'%' {
                i += 1;
            }
            self.buf.push_str(&format[text_start..i]);
            if i >= end {
                break;
            }
            i += 1;
            self.f = Flags::default();
            while i < end {
                match s[i] {
                    b'#' => self.f.sharp = true,
                    b'0' => self.f.zero = !self.f.minus,
                    b'+' => self.f.plus = true,
                    b'-' => {
                        self.f.minus = true;
                        self.f.zero = false;
                    }
                    b' ' => self.f.space = true,
                    _ => break,
                }
                i += 1;
            }
            // `[n]` may come before the width, the precision and the verb.
            let mut arg_index = |arg_num: usize, i: usize, good: &mut bool| {
                if i >= end || s[i] != b'[' {
                    return (arg_num, i, false);
                }
                reordered = true;
                match parse_arg_index(&s[i..]) {
                    (Some(n), skip, true) if n < args.len() => (n, i + skip, true),
                    (_, skip, ok) => {
                        *good = false;
                        (arg_num, i + skip, ok)
                    }
                }
            };
            let mut after_index;
            (arg_num, i, after_index) = arg_index(arg_num, i, &mut good_arg_num);
            if i < end && s[i] == b'*' {
                i += 1;
                let (n, ok, next) = int_from_arg(args, arg_num);
                arg_num = next;
                if !ok {
                    self.buf.push_str("%!(BADWIDTH)");
                }
                // A negative width means left-justify.
                self.f.wid = ok.then_some(n.unsigned_abs() as usize);
                if n < 0 {
                    self.f.minus = true;
                    self.f.zero = false;
                }
                after_index = false;
            } else {
                let (n, ok, next) = parse_num(s, i, end);
                self.f.wid = ok.then_some(n);
                i = next;
                if after_index && ok {
                    good_arg_num = false; // "%[3]2d"
                }
            }
            if i + 1 < end && s[i] == b'.' {
                i += 1;
                if after_index {
                    good_arg_num = false; // "%[3].2d"
                }
                (arg_num, i, after_index) = arg_index(arg_num, i, &mut good_arg_num);
                if i < end && s[i] == b'*' {
                    i += 1;
                    let (n, ok, next) = int_from_arg(args, arg_num);
                    arg_num = next;
                    let ok = ok && n >= 0;
                    self.f.prec = ok.then_some(n as usize);
                    if !ok {
                        self.buf.push_str("%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let (n, ok, next) = parse_num(s, i, end);
                    self.f.prec = Some(if ok { n } else { 0 });
                    i = next;
                }
            }
            if !after_index {
                (arg_num, i, _) = arg_index(arg_num, i, &mut good_arg_num);
            }
            let Some(verb) = format.get(i..).and_then(|r| r.chars().next()) else {
                self.buf.push_str("%!(NOVERB)");
                break;
            };
            i += verb.len_utf8();
            match verb {
                // Takes no argument and ignores width and precision.
                '%' => self.buf.push('%'),
                _ if !good_arg_num => self.marker(verb, "BADINDEX"),
                _ if arg_num >= args.len() => self.marker(verb, "MISSING"),
                _ => {
                    if verb == 'v' {
                        self.f.sharp_v = std::mem::take(&mut self.f.sharp);
                        self.f.plus_v = std::mem::take(&mut self.f.plus);
                    }
                    self.print_arg(&args[arg_num], verb);
                    arg_num += 1;
                }
            }
            if self.buf.len() > MAX_OUTPUT {
                return Err(too_long());
            }
        }
        // Go skips this check once `[n]` has been used.
        if !reordered && arg_num < args.len() {
            self.f = Flags::default();
            self.buf.push_str("%!(EXTRA ");
            for (n, arg) in args[arg_num..].iter().enumerate() {
                if n > 0 {
                    self.buf.push_str(", ");
                }
                if *arg != Value::Nil {
                    self.buf.push_str(go_type(arg));
                    self.buf.push('=');
                }
                self.print_arg(arg, 'v');
            }
            self.buf.push(')');
        }
        if self.buf.len() > MAX_OUTPUT {
            return Err(too_long());
        }
        Ok(())
    }

    fn marker(&mut self, verb: char, what: &str) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        self.buf.push_str(what);
        self.buf.push(')');
    }

    /// Go's `printArg` (and `printValue` for lists and maps).
    fn print_arg(&mut self, arg: &Value, verb: char) {
        match (arg, verb) {
            (Value::Nil, 'T' | 'v') => self.pad("<nil>"),
            (Value::Nil, _) => self.bad_verb(verb, arg),
            (_, 'T') => self.fmt_s(go_type(arg)),
            // Go prints the address of a list or map; there is no such thing
            // here, so `%p` is a mismatch for every value.
            (_, 'p') => self.bad_verb(verb, arg),
            (Value::Bool(b), _) => self.fmt_bool(*b, verb, arg),
            (Value::Int(i), _) => self.fmt_int(*i, verb, arg),
            (Value::Float(x), _) => self.fmt_float_verb(*x, verb, arg),
            (Value::Str(s), _) => self.fmt_string(s, verb, arg),
            (Value::List(_, items), _) => {
                let (open, sep, close) = if self.f.sharp_v {
                    self.buf.push_str(go_type(arg));
                    ("{", ", ", "}")
                } else {
                    ("[", " ", "]")
                };
                self.buf.push_str(open);
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        self.buf.push_str(sep);
                    }
                    self.print_arg(item, verb);
                    if self.buf.len() > MAX_OUTPUT {
                        break; // the caller reports it
                    }
                }
                self.buf.push_str(close);
            }
            (Value::Map(m), _) => {
                let (open, sep, close) = if self.f.sharp_v {
                    self.buf.push_str(go_type(arg));
                    ("{", ", ", "}")
                } else {
                    ("map[", " ", "]")
                };
                self.buf.push_str(open);
                for (n, (k, v)) in m.iter().enumerate() {
                    if n > 0 {
                        self.buf.push_str(sep);
                    }
                    self.fmt_string(k, verb, &Value::Str(k.clone()));
                    self.buf.push(':');
                    self.fmt_string(v, verb, &Value::Str(v.clone()));
                    if self.buf.len() > MAX_OUTPUT {
                        break; // the caller reports it
                    }
                }
                self.buf.push_str(close);
            }
        }
    }

    /// `%!d(string=abc)`: the value as `%v`, keeping the directive's flags,
    /// width and precision, as Go does.
    fn bad_verb(&mut self, verb: char, arg: &Value) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        if *arg == Value::Nil {
            self.buf.push_str("<nil>");
        } else {
            self.buf.push_str(go_type(arg));
            self.buf.push('=');
            self.print_arg(arg, 'v');
        }
        self.buf.push(')');
    }

    fn fmt_bool(&mut self, b: bool, verb: char, arg: &Value) {
        match verb {
            't' | 'v' => self.pad(if b { "true" } else { "false" }),
            _ => self.bad_verb(verb, arg),
        }
    }

    fn fmt_int(&mut self, i: i64, verb: char, arg: &Value) {
        let u = i as u64;
        match verb {
            'v' | 'd' => self.fmt_integer(u, 10, verb, LDIGITS),
            'b' => self.fmt_integer(u, 2, verb, LDIGITS),
            'o' | 'O' => self.fmt_integer(u, 8, verb, LDIGITS),
            'x' => self.fmt_integer(u, 16, verb, LDIGITS),
            'X' => self.fmt_integer(u, 16, verb, UDIGITS),
            'c' => {
                let c = rune(u);
                self.pad(c.encode_utf8(&mut [0; 4]));
            }
            'q' => {
                let q = quote_rune(rune(u), self.f.plus);
                self.pad(&q);
            }
            'U' => self.fmt_unicode(u),
            _ => self.bad_verb(verb, arg),
        }
    }

    fn fmt_float_verb(&mut self, x: f64, verb: char, arg: &Value) {
        match verb {
            'v' => self.fmt_float(x, 'g', -1),
            'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float(x, verb, -1),
            'f' | 'e' | 'E' => self.fmt_float(x, verb, 6),
            'F' => self.fmt_float(x, 'f', 6),
            _ => self.bad_verb(verb, arg),
        }
    }

    fn fmt_string(&mut self, s: &str, verb: char, arg: &Value) {
        match verb {
            'v' if self.f.sharp_v => self.fmt_q(s),
            'v' | 's' => {
                let s = self.truncate(s);
                self.pad(s);
            }
            'x' => self.fmt_sx(s, LDIGITS),
            'X' => self.fmt_sx(s, UDIGITS),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(verb, arg),
        }
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s);
        self.pad(s);
    }

    fn write_padding(&mut self, n: usize) {
        // `str::repeat` copies in doubling blocks: fast for the widths Go allows.
        let c = if self.f.zero { "0" } else { " " };
        self.buf.push_str(&c.repeat(n));
    }

    /// Pads to the width, on the left unless `-`; Go counts characters.
    fn pad(&mut self, s: &str) {
        let Some(wid) = self.f.wid.filter(|&w| w > 0) else {
            self.buf.push_str(s);
            return;
        };
        let fill = wid.saturating_sub(s.chars().count());
        if self.f.minus {
            self.buf.push_str(s);
            self.write_padding(fill);
        } else {
            self.write_padding(fill);
            self.buf.push_str(s);
        }
    }

    /// The precision counts characters of a string.
    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        match self.f.prec.and_then(|p| s.char_indices().nth(p)) {
            Some((i, _)) => &s[..i],
            None => s,
        }
    }

    /// Go's `fmt.fmtInteger`: precision or the `0` flag give leading zeros,
    /// then the `#` prefix and the sign go in front of them.
    fn fmt_integer(&mut self, u: u64, base: u64, verb: char, digits: &[u8; 17]) {
        let negative = (u as i64) < 0;
        let mut u = if negative { u.wrapping_neg() } else { u };
        let wid = self.f.wid.unwrap_or(0);
        let mut prec = 0;
        if let Some(p) = self.f.prec {
            prec = p;
            // Precision 0 and value 0 print nothing but the padding.
            if p == 0 && u == 0 {
                let zero = std::mem::take(&mut self.f.zero);
                self.write_padding(wid);
                self.f.zero = zero;
                return;
            }
        } else if self.f.zero && self.f.wid.is_some() {
            prec = wid;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1); // room for the sign
            }
        }
        // Built backwards, as Go does.
        let mut b = Vec::with_capacity(prec.max(24));
        loop {
            b.push(digits[(u % base) as usize]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        while b.len() < prec {
            b.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => b.extend_from_slice(b"b0"),
                8 if b.last() != Some(&b'0') => b.push(b'0'),
                16 => b.extend_from_slice(&[digits[16], b'0']),
                _ => {}
            }
        }
        if verb == 'O' {
            b.extend_from_slice(b"o0");
        }
        if negative {
            b.push(b'-');
        } else if self.f.plus {
            b.push(b'+');
        } else if self.f.space {
            b.push(b' ');
        }
        b.reverse();
        let zero = std::mem::take(&mut self.f.zero);
        self.pad(&String::from_utf8_lossy(&b));
        self.f.zero = zero;
    }

    /// `%U`: `U+0041`, and with `#` the character too: `U+0041 'A'`.
    fn fmt_unicode(&mut self, u: u64) {
        let prec = self.f.prec.filter(|&p| p > 4).unwrap_or(4);
        let hex = format!("{u:X}");
        let mut s = format!("U+{}{hex}", "0".repeat(prec.saturating_sub(hex.len())));
        if self.f.sharp {
            if let Some(c) = u32::try_from(u).ok().and_then(char::from_u32) {
                if is_print(c) {
                    s.push_str(&format!(" '{c}'"));
                }
            }
        }
        let zero = std::mem::take(&mut self.f.zero);
        self.pad(&s);
        self.f.zero = zero;
    }

    /// Go's `fmtSbx`: hex of the bytes; ` ` separates them, `#` adds `0x`.
    fn fmt_sx(&mut self, s: &str, digits: &[u8; 17]) {
        let bytes = s.as_bytes();
        let length = self.f.prec.map_or(bytes.len(), |p| p.min(bytes.len()));
        let mut width = 2 * length;
        if width == 0 {
            if let Some(w) = self.f.wid {
                self.write_padding(w);
            }
            return;
        }
        if self.f.space {
            if self.f.sharp {
                width *= 2;
            }
            width += length - 1;
        } else if self.f.sharp {
            width += 2;
        }
        let fill = self.f.wid.unwrap_or(0).saturating_sub(width);
        if !self.f.minus {
            self.write_padding(fill);
        }
        let x = char::from(digits[16]);
        if self.f.sharp {
            self.buf.push('0');
            self.buf.push(x);
        }
        for (n, &c) in bytes[..length].iter().enumerate() {
            if self.f.space && n > 0 {
                self.buf.push(' ');
                if self.f.sharp {
                    self.buf.push('0');
                    self.buf.push(x);
                }
            }
            self.buf.push(char::from(digits[usize::from(c >> 4)]));
            self.buf.push(char::from(digits[usize::from(c & 0xF)]));
        }
        if self.f.minus {
            self.write_padding(fill);
        }
    }

    /// `%q`: a Go string literal; `+` escapes all non-ASCII, `#` uses
    /// backquotes when the string allows.
    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s);
        if self.f.sharp && can_backquote(s) {
            self.pad(&format!("`{s}`"));
        } else {
            let q = quote(s, '"', self.f.plus);
            self.pad(&q);
        }
    }

    /// Go's `fmt.fmtFloat`: `strconv` formats the number, then the flags
    /// decide the sign, `#` restores the point and trailing zeros, and `0`
    /// pads between sign and digits.
    fn fmt_float(&mut self, x: f64, verb: char, prec: isize) {
        let prec = self.f.prec.map_or(prec, |p| p as isize);
        let s = format_float(x, verb, prec);
        let mut num = if s.starts_with(['+', '-']) {
            s.into_bytes()
        } else {
            [b"+", s.as_bytes()].concat()
        };
        if self.f.space && num[0] == b'+' && !self.f.plus {
            num[0] = b' ';
        }
        if matches!(num.get(1), Some(b'I' | b'N')) {
            let zero = std::mem::take(&mut self.f.zero);
            if num[1] == b'N' && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            self.pad(&String::from_utf8_lossy(&num));
            self.f.zero = zero;
            return;
        }
        if self.f.sharp && verb != 'b' {
            let mut digits = match verb {
                'v' | 'g' | 'G' | 'x' => {
                    if prec == -1 {
                        6
                    } else {
                        prec
                    }
                }
                _ => 0,
            };
            let mut tail = Vec::new();
            let mut has_point = false;
            let mut seen_nonzero = false;
            let mut n = 1;
            while n < num.len() {
                match num[n] {
                    b'.' => has_point = true,
                    b'p' | b'P' => {
                        tail = num.split_off(n);
                        break;
                    }
                    b'e' | b'E' if verb != 'x' && verb != 'X' => {
                        tail = num.split_off(n);
                        break;
                    }
                    c => {
                        seen_nonzero |= c != b'0';
                        if seen_nonzero {
                            digits -= 1;
                        }
                    }
                }
                n += 1;
            }
            if !has_point {
                // A lone 0 counts once as a digit.
                if num.len() == 2 && num[1] == b'0' {
                    digits -= 1;
                }
                num.push(b'.');
            }
            while digits > 0 {
                num.push(b'0');
                digits -= 1;
            }
            num.extend_from_slice(&tail);
        }
        if self.f.plus || num[0] != b'+' {
            let wid = self.f.wid.unwrap_or(0);
            if self.f.zero && self.f.wid.is_some() && wid > num.len() {
                self.buf.push(char::from(num[0]));
                self.write_padding(wid - num.len());
                self.buf.push_str(&String::from_utf8_lossy(&num[1..]));
                return;
            }
            self.pad(&String::from_utf8_lossy(&num));
            return;
        }
        self.pad(&String::from_utf8_lossy(&num[1..]));
    }
}

/// Go's `rune(c)` for `%c` and `%q`: beyond Unicode or a surrogate is U+FFFD.
fn rune(u: u64) -> char {
    u32::try_from(u)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}')
}

/// Go's `strconv.Quote` (`ascii`: `QuoteToASCII`).
fn quote(s: &str, q: char, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        escape(&mut out, c, q, ascii);
    }
    out.push(q);
    out
}

/// Go's `strconv.QuoteRune` (`ascii`: `QuoteRuneToASCII`).
fn quote_rune(c: char, ascii: bool) -> String {
    quote(c.encode_utf8(&mut [0; 4]), '\'', ascii)
}

/// Go's `appendEscapedRune`.
fn escape(out: &mut String, c: char, q: char, ascii: bool) {
    if c == q || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_print(c) && (!ascii || c.is_ascii()) {
        out.push(c);
        return;
    }
    let code = u32::from(c);
    let esc = match c {
        '\x07' => "\\a",
        '\x08' => "\\b",
        '\x0c' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\x0b' => "\\v",
        _ if code < 0x20 || code == 0x7f => {
            out.push_str(&format!("\\x{code:02x}"));
            return;
        }
        _ if code < 0x10000 => {
            out.push_str(&format!("\\u{code:04x}"));
            return;
        }
        _ => {
            out.push_str(&format!("\\U{code:08x}"));
            return;
        }
    };
    out.push_str(esc);
}

/// Go's `strconv.CanBackquote`.
fn can_backquote(s: &str) -> bool {
    s.chars().all(|c| match c.len_utf8() {
        1 => !((c < ' ' && c != '\t') || c == '`' || c == '\x7f'),
        _ => c != '\u{FEFF}',
    })
}

/// Decimal digits of a finite non-negative float, as Go's `strconv` holds
/// them: no trailing zeros, `dp` the position of the decimal point (so
/// 0.012 is "12" with dp -1). Zero has no digits.
struct Digits {
    d: Vec<u8>,
    dp: isize,
}

impl Digits {
    /// From Rust's `{:e}` output (`1.2345e-7`), shortest or rounded.
    fn from_exp(s: &str) -> Digits {
        let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
        let exp: isize = exp.parse().unwrap_or(0);
        let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
        while d.last() == Some(&b'0') {
            d.pop();
        }
        if d.is_empty() {
            return Digits { d, dp: 0 };
        }
        Digits { d, dp: exp + 1 }
    }

    fn nd(&self) -> isize {
        self.d.len() as isize
    }

    fn at(&self, i: isize) -> u8 {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.d.get(i).copied())
            .unwrap_or(b'0')
    }
}

/// Go's `strconv.FormatFloat(x, verb, prec, 64)`: `e E f g G` in decimal,
/// `b` (mantissa p exponent) and `x X` (hex). `prec` -1 is the fewest digits
/// that read back as the same number.
fn format_float(x: f64, verb: char, prec: isize) -> String {
    let bits = x.to_bits();
    let neg = bits >> 63 != 0;
    let biased = ((bits >> 52) & 0x7ff) as isize;
    let mut mant = bits & ((1 << 52) - 1);
    if biased == 0x7ff {
        return match (mant != 0, neg) {
            (true, _) => "NaN",
            (false, true) => "-Inf",
            (false, false) => "+Inf",
        }
        .into();
    }
    let exp = if biased == 0 {
        1 - 1023
    } else {
        mant |= 1 << 52;
        biased - 1023
    };
    let sign = if neg { "-" } else { "" };
    match verb {
        'b' => format!("{sign}{mant}p{:+}", exp - 52),
        'x' | 'X' => format!("{sign}{}", format_hex_float(mant, exp, prec, verb)),
        'f' if prec >= 0 => {
            // Rust's precision is 16 bits; past every digit a float has, the
            // rest are zeros.
            let p = prec as usize;
            let exact = p.min(MAX_FRACTION_DIGITS);
            let zeros = "0".repeat(p - exact);
            format!("{sign}{:.*}{zeros}", exact, x.abs())
        }
        _ => format!("{sign}{}", format_decimal(x.abs(), verb, prec)),
    }
}

/// The fewest digits that read back as `a`. When two such strings are
/// equally close to `a` (it lies exactly halfway), Go picks the one ending in
/// an even digit; Rust's `{:e}` may pick the other.
fn shortest_digits(a: f64) -> Digits {
    if a == 0.0 {
        return Digits {
            d: Vec::new(),
            dp: 0,
        };
    }
    let d = Digits::from_exp(&format!("{a:e}"));
    let nd = d.d.len();
    if nd == 0 || nd > 18 || d.d[nd - 1].is_multiple_of(2) {
        return d;
    }
    // 60 digits show whether `a` is exactly the halfway point: a double
    // and a 19-digit decimal that differ, differ well before that.
    let wide = Digits::from_exp(&format!("{a:.60e}"));
    if wide.d.len() != nd + 1 || wide.d[nd] != b'5' {
        return d;
    }
    let digits = |d: &[u8]| d.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
    let low = digits(&wide.d[..nd]);
    let even = if low.is_multiple_of(2) { low } else { low + 1 };
    let exp = wide.dp - nd as isize;
    if format!("{even}e{exp}").parse::<f64>().ok() != Some(a) {
        return d;
    }
    let mut digits = even.to_string().into_bytes();
    let dp = digits.len() as isize + exp;
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    Digits { d: digits, dp }
}

/// Go's `formatDigits` with `fmtE` and `fmtF`, for `e E g G` and shortest `f`.
fn format_decimal(a: f64, verb: char, prec: isize) -> String {
    let shortest = prec < 0;
    let mut prec = prec;
    let digs = if shortest {
        let d = shortest_digits(a);
        prec = match verb {
            'e' | 'E' => (d.nd() - 1).max(0),
            'f' => (d.nd() - d.dp).max(0),
            _ => d.nd(),
        };
        d
    } else {
        let significant = match verb {
            'e' | 'E' => prec + 1,
            _ => {
                prec = prec.max(1);
                prec
            }
        };
        // Digits past the exact value are zeros, which Digits drops anyway.
        let significant = (significant as usize).min(MAX_SIGNIFICANT_DIGITS);
        Digits::from_exp(&format!("{:.*e}", significant - 1, a))
    };
    match verb {
        'e' | 'E' => fmt_e(&digs, prec, verb),
        'f' => fmt_f(&digs, prec),
        _ => {
            let upper = verb == 'G';
            let mut eprec = prec;
            if eprec > digs.nd() && digs.nd() >= digs.dp {
                eprec = digs.nd();
            }
            // %e is used if the exponent is below -4 or reaches the
            // precision; shortest output decides as if the precision were 6.
            if shortest {
                eprec = 6;
            }
            let exp = digs.dp - 1;
            if exp < -4 || exp >= eprec {
                let prec = prec.min(digs.nd());
                return fmt_e(&digs, prec - 1, if upper { 'E' } else { 'e' });
            }
            let prec = if prec > digs.dp { digs.nd() } else { prec };
            fmt_f(&digs, (prec - digs.dp).max(0))
        }
    }
}

fn fmt_e(d: &Digits, prec: isize, e: char) -> String {
    let mut out = String::new();
    out.push(char::from(d.at(0)));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(char::from(d.at(i)));
        }
    }
    let exp = if d.d.is_empty() { 0 } else { d.dp - 1 };
    out.push(e);
    out.push(if exp < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", exp.unsigned_abs()));
    out
}

fn fmt_f(d: &Digits, prec: isize) -> String {
    let mut out = String::new();
    if d.dp > 0 {
        for i in 0..d.dp {
            out.push(char::from(d.at(i)));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec {
            out.push(char::from(d.at(d.dp + i)));
        }
    }
    out
}

/// Go's `fmtX`: `0x1.8p+01`; a precision rounds the hex digits (ties to even).
fn format_hex_float(mant: u64, exp: isize, prec: isize, verb: char) -> String {
    let (mut mant, mut exp) = (mant, if mant == 0 { 0 } else { exp });
    // Shift so the leading 1 is bit 60.
    mant <<= 60 - 52;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if (0..15).contains(&prec) {
        let shift = (prec * 4) as u32;
        let extra = (mant << shift) & ((1 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let hex = if verb == 'X' { UDIGITS } else { LDIGITS };
    let mut out = format!("0{verb}{}", (mant >> 60) & 1);
    mant <<= 4;
    let count = if prec < 0 {
        (mant != 0).then_some(usize::MAX)
    } else {
        (prec > 0).then_some(prec as usize)
    };
    if let Some(count) = count {
        out.push('.');
        for _ in 0..count {
            if prec < 0 && mant == 0 {
                break;
            }
            out.push(char::from(hex[((mant >> 60) & 15) as usize]));
            mant <<= 4;
        }
    }
    out.push(if verb == 'X' { 'P' } else { 'p' });
    out.push(if exp < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", exp.unsigned_abs()));
    out
}

#[cfg(test)]
mod tests {
    use crate::config::template::tests::{err_at, ok, same_as_go};

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
        // Go stops reading a width past 10 million: no verb, rest dropped.
        assert_eq!(
            ok(r#"{{ printf "%99999999d|x" 1 }}"#),
            "%!(NOVERB)%!(EXTRA int=1)"
        );
    }

    /// Outputs checked against Go 1.19 `text/template` with ContainerPilot 3's
    /// functions (issue #12: flags kept in `%!d(...)`, list types in
    /// `%!(EXTRA ...)`, `%q` by `strconv.IsPrint`, `%+q`, `%#q`).
    #[test]
    fn go_parity() {
        same_as_go(&[
        (r#"{{ printf "%5d|%-5d|%05d|%.1d" "ab" "ab" "ab" "xyz" }}"#, "%!d(string=   ab)|%!d(string=ab   )|%!d(string=000ab)|%!d(string=x)"),
        (r#"{{ printf "%+d|%#d|% d" true 2.5 nil }}"#, "%!d(bool=true)|%!d(float64=2.50000)|%!d(<nil>)"),
        (r#"{{ printf "a" (split "," "x,y") (loop 2) (split "," "") (loop 0) nil 1.5 }}"#, "a%!(EXTRA []string=[x y], []int=[0 1], []string=[], []int=[], <nil>, float64=1.5)"),
        (r#"{{ printf "%q|%q|%q|%q" "\u00a0" "\u2028" "é\x01\x7f" "\U0001F600\U000E0001" }}"#, "\"\\u00a0\"|\"\\u2028\"|\"é\\x01\\x7f\"|\"😀\\U000e0001\""),
        (r#"{{ printf "%+q|%+q|%q|%+q" "é日" "\u00a0" 233 233 }}"#, "\"\\u00e9\\u65e5\"|\"\\u00a0\"|'é'|'\\u00e9'"),
        (r#"{{ printf "%#q|%#q|%#q|%#q" "a\"b" "a`b" "tab\there" "\ufeff" }}"#, "`a\"b`|\"a`b\"|`tab\there`|\"\\ufeff\""),
        (r#"{{ printf "%T %T %T %T %T %T %T %T" 1 1.5 "s" true nil (split "," "a") (loop 1) . }}"#, "int float64 string bool <nil> []string []int template.Environment"),
        (r#"{{ printf "%+v|%#v|%#v|%#v|%#v|%+v" 5 "s" (split "," "a,b") (loop 2) 1.0 -3 }}"#, "5|\"s\"|[]string{\"a\", \"b\"}|[]int{0, 1}|1|-3"),
        (r#"{{ printf "%#08x|%08.3x|%-#8o|%#b|%O|%#o|%x|%X" 255 255 8 5 8 0 -255 255 }}"#, "0x000000ff|     0ff|010     |0b101|0o10|0|-ff|FF"),
        (r#"{{ printf "%U|%#U|%.6U|%#U|%c|%c|%q" 65 9731 65 -1 9731 1114112 55296 }}"#, "U+0041|U+2603 '☃'|U+000041|U+FFFFFFFFFFFFFFFF|☃|�|'�'"),
        (r#"{{ printf "%x|%.2x|%#x|%X|%b|%#.3g|%#e|%+.2e|% .1f|%08.2f|%-8.2f|" 1.5 3.14159 1.0 -2.5 1.0 2.0 1.0 12345.678 2.5 -3.14159 2.5 }}"#, "0x1.8p+00|0x1.92p+01|0x1.0000p+00|-0X1.4P+01|4503599627370496p-52|2.00|1.000000e+00|+1.23e+04| 2.5|-0003.14|2.50    |"),
        (r#"{{ printf "%*d|%-*d|%.*f|%*d|%.*d" 5 1 4 2 2 3.14159 "x" 7 -1 9 }}"#, "    1|2   |3.14|%!(BADWIDTH)7|%!(BADPREC)9"),
        (r#"{{ printf "%[2]d %[1]s|%[3]d|%[0]d|%[x]d|%d %d %[1]d" "a" 2 }}"#, "2 a|%!d(BADINDEX)|%!d(BADINDEX)|%!d(BADINDEX)|2 %!d(MISSING) %!d(string=a)"),
        (r#"{{ printf "%d %d" }}{{ printf "%!" }}{{ printf "%-" }}{{ printf "%.5" }}{{ printf "x%" }}"#, "%!d(MISSING) %!d(MISSING)%!!(MISSING)%!(NOVERB)%!(NOVERB)x%!(NOVERB)"),
        (r#"{{ printf "%s|%x|% x|%#x|%# X|%.1x|%8x|%-8x|" "héllo" "hé" "hé" "hé" "hé" "hé" "hé" "hé" }}"#, "héllo|68c3a9|68 c3 a9|0x68c3a9|0X68 0XC3 0XA9|68|  68c3a9|68c3a9  |"),
        (r#"{{ printf "%d|%5v|%q|%#v" (split "," "a,b") (split "," "a,b") (split "," "a,b") (split "," "") }}"#, "[%!d(string=a) %!d(string=b)]|[    a     b]|[\"a\" \"b\"]|[]string{}"),
        (r#"{{ printf "%.2s|%.2q|%5.1s|%-5.1s|%05s|%.0s" "héllo" "héllo" "héllo" "héllo" "ab" "ab" }}"#, "hé|\"hé\"|    h|h    |000ab|"),
        (r#"{{ printf "%t|%v|%5t|%-6v|%q" true false true false true }}"#, "true|false| true|false |%!q(bool=true)"),
        (r#"{{ printf "%d|%v|%s|%6v|%-6v|" nil nil nil nil nil }}"#, "%!d(<nil>)|<nil>|%!s(<nil>)| <nil>|<nil> |"),
        (r#"{{ printf "%e|%E|%g|%G|%f|%F|%.0f|%.0e|%g|%g|%g" 1e21 1e-7 1e21 1e-7 1e6 2.5 0.5 2.5 100000.0 1000000.0 0.0001 }}"#, "1.000000e+21|1.000000E-07|1e+21|1E-07|1000000.000000|2.500000|0|2e+00|100000|1e+06|0.0001"),
        (r#"{{ printf "%g|%v|%.3v|%10.4v|%-10.4v|" 0.00001 1e20 3.14159 3.14159 3.14159 }}"#, "1e-05|1e+20|3.14|     3.142|3.142     |"),
        (r#"{{ printf "%v %v %v" -0.0 1267860061485775.25 1267860061485775.75 }}"#, "-0 1.2678600614857752e+15 1.2678600614857758e+15"),
        (r#"{{ print 1.0 2 "a" (loop 2) nil }}"#, "1 2a[0 1] <nil>"),
        (r#"{{ printf "%v|%#v" . . }}"#, "map[COUNT:3 DB_HOST:db.local EMPTY: EQ:test3=w/equals== NAME:Template NAME_1:Template PARTS:a:b:c PREFIX:DB USER:pilot]|template.Environment{\"COUNT\":\"3\", \"DB_HOST\":\"db.local\", \"EMPTY\":\"\", \"EQ\":\"test3=w/equals==\", \"NAME\":\"Template\", \"NAME_1\":\"Template\", \"PARTS\":\"a:b:c\", \"PREFIX\":\"DB\", \"USER\":\"pilot\"}"),
        ]);
    }
}
