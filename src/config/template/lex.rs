//! Stage 1: cuts the source into text and action items. Trim markers
//! (`{{- `, ` -}}`) and comments are settled here, and literals become values,
//! so the parser only sees tokens.

use super::{fail, TemplateError, Value};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A function name or a keyword (`if`, `end`, ...).
    Ident(String),
    /// `.NAME`, without the dot.
    Field(String),
    /// `$` or `$name`, with the dollar.
    Var(String),
    Dot,
    Lit(Value),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) line: usize,
    /// Whitespace came before it: `$x.A` is one operand, `$x .A` two.
    pub(super) spaced: bool,
}

#[derive(Debug)]
pub(super) enum Item {
    Text { text: String, line: usize },
    Action { toks: Vec<Token>, line: usize },
}

/// Go trims exactly these around `{{- ` and ` -}}`.
const SPACES: &[char] = &[' ', '\t', '\r', '\n'];

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Bytes of non-ASCII characters count as letters, so a name never ends
/// inside a character.
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_byte(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

fn ident_len(s: &str) -> usize {
    s.bytes().take_while(|&b| is_ident_byte(b)).count()
}

/// `{{- ` needs the space: `{{-3}}` is the number -3.
fn has_left_trim(after_braces: &str) -> bool {
    let b = after_braces.as_bytes();
    b.first() == Some(&b'-') && b.get(1).is_some_and(|&c| is_space(c))
}

pub(super) fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut lx = Lexer {
        src,
        pos: 0,
        line: 1,
        items: Vec::new(),
        trim_next: false,
    };
    while lx.pos < src.len() {
        lx.step()?;
    }
    Ok(lx.items)
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    line: usize,
    items: Vec<Item>,
    /// The last action ended with ` -}}`.
    trim_next: bool,
}

impl<'s> Lexer<'s> {
    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn advance_to(&mut self, to: usize) {
        self.line += self.src.as_bytes()[self.pos..to]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.pos = to;
    }

    fn skip_space(&mut self) -> bool {
        let n = self.rest().bytes().take_while(|&b| is_space(b)).count();
        self.advance_to(self.pos + n);
        n > 0
    }

    /// One stretch of text and the action after it, if any.
    fn step(&mut self) -> Result<(), TemplateError> {
        let rest = self.rest();
        let open = rest.find("{{");
        let end = self.pos + open.unwrap_or(rest.len());
        let mut text = &self.src[self.pos..end];
        let mut line = self.line;
        if std::mem::take(&mut self.trim_next) {
            let trimmed = text.trim_start_matches(SPACES);
            line += text[..text.len() - trimmed.len()].matches('\n').count();
            text = trimmed;
        }
        if open.is_some() && has_left_trim(&self.src[end + 2..]) {
            text = text.trim_end_matches(SPACES);
        }
        if !text.is_empty() {
            self.items.push(Item::Text {
                text: text.to_string(),
                line,
            });
        }
        self.advance_to(end);
        if open.is_some() {
            self.action()?;
        }
        Ok(())
    }

    fn action(&mut self) -> Result<(), TemplateError> {
        let line = self.line;
        self.advance_to(self.pos + 2);
        if has_left_trim(self.rest()) {
            self.advance_to(self.pos + 1);
            self.skip_space();
        }
        if self.rest().starts_with("/*") {
            return self.comment(line);
        }
        let mut toks = Vec::new();
        loop {
            let spaced = self.skip_space();
            let rest = self.rest();
            if rest.is_empty() {
                return fail(line, "unclosed action: \"{{\" has no matching \"}}\"");
            }
            if rest.starts_with("}}") {
                self.advance_to(self.pos + 2);
                break;
            }
            if spaced && rest.starts_with("-}}") {
                self.advance_to(self.pos + 3);
                self.trim_next = true;
                break;
            }
            let tok_line = self.line;
            let tok = self.token()?;
            toks.push(Token {
                tok,
                line: tok_line,
                spaced,
            });
        }
        self.items.push(Item::Action { toks, line });
        Ok(())
    }

    /// `{{/* ... */}}`: as in Go, the comment must fill the whole action.
    fn comment(&mut self, line: usize) -> Result<(), TemplateError> {
        let Some(close) = self.rest()[2..].find("*/") else {
            return fail(line, "unclosed comment: \"/*\" has no matching \"*/\"");
        };
        self.advance_to(self.pos + 2 + close + 2);
        let rest = self.rest();
        if rest.starts_with("}}") {
            self.advance_to(self.pos + 2);
            return Ok(());
        }
        // Go allows exactly one space before a trim marker here.
        if rest.as_bytes().first().is_some_and(|&b| is_space(b)) && rest[1..].starts_with("-}}") {
            self.advance_to(self.pos + 4);
            self.trim_next = true;
            return Ok(());
        }
        fail(
            self.line,
            "comment must end right before the closing \"}}\": \"*/}}\"",
        )
    }

    fn token(&mut self) -> Result<Tok, TemplateError> {
        let rest = self.rest();
        let b = rest.as_bytes();
        let next = b.get(1).copied().unwrap_or(0);
        let (tok, len) = match b[0] {
            b'|' => (Tok::Pipe, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b',' => (Tok::Comma, 1),
            b'=' => (Tok::Assign, 1),
            b':' if next == b'=' => (Tok::Declare, 2),
            b'"' => return self.quoted(),
            b'`' => return self.raw(),
            b'\'' => return self.char_constant(),
            b'$' => {
                let n = 1 + ident_len(&rest[1..]);
                (Tok::Var(rest[..n].to_string()), n)
            }
            b'.' if next.is_ascii_digit() => return self.number(),
            b'.' if is_ident_start(next) => {
                let n = 1 + ident_len(&rest[1..]);
                (Tok::Field(rest[1..n].to_string()), n)
            }
            b'.' => (Tok::Dot, 1),
            b'0'..=b'9' => return self.number(),
            b'+' | b'-' if next.is_ascii_digit() || next == b'.' => return self.number(),
            c if is_ident_start(c) => {
                let n = ident_len(rest);
                let tok = match &rest[..n] {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Nil),
                    word => Tok::Ident(word.to_string()),
                };
                (tok, n)
            }
            _ => {
                let c = rest.chars().next().unwrap_or('?');
                return fail(self.line, format!("unexpected {c:?} in action"));
            }
        };
        self.advance_to(self.pos + len);
        Ok(tok)
    }

    /// Length of a `"..."` or `'...'` token including both quotes.
    fn quoted_len(&self, quote: u8, what: &str) -> Result<usize, TemplateError> {
        let b = self.rest().as_bytes();
        let mut i = 1;
        loop {
            match b.get(i) {
                None | Some(b'\n') => return fail(self.line, format!("unterminated {what}")),
                Some(b'\\') => i += 2,
                Some(&c) if c == quote => return Ok(i + 1),
                Some(_) => i += 1,
            }
        }
    }

    fn quoted(&mut self) -> Result<Tok, TemplateError> {
        let len = self.quoted_len(b'"', "quoted string")?;
        let bytes = unquote(&self.rest()[1..len - 1], '"')
            .or_else(|m| fail(self.line, format!("{m} in quoted string")))?;
        self.advance_to(self.pos + len);
        Ok(Tok::Lit(Value::Str(lossy(bytes))))
    }

    /// `'a'` is the number 97, as in Go.
    fn char_constant(&mut self) -> Result<Tok, TemplateError> {
        let len = self.quoted_len(b'\'', "character constant")?;
        let body = &self.rest()[1..len - 1];
        let bytes = unquote(body, '\'')
            .or_else(|m| fail(self.line, format!("{m} in character constant")))?;
        let code = match std::str::from_utf8(&bytes) {
            Ok(s) if s.chars().count() == 1 => s.chars().next().map(|c| c as i64),
            _ if bytes.len() == 1 => Some(i64::from(bytes[0])),
            _ => None,
        };
        let Some(code) = code else {
            return fail(self.line, format!("invalid character constant '{body}'"));
        };
        self.advance_to(self.pos + len);
        Ok(Tok::Lit(Value::Int(code)))
    }

    fn raw(&mut self) -> Result<Tok, TemplateError> {
        let rest = self.rest();
        let Some(end) = rest[1..].find('`') else {
            return fail(
                self.line,
                "unterminated raw string: \"`\" has no matching \"`\"",
            );
        };
        // Go drops carriage returns from raw strings.
        let s = rest[1..1 + end].replace('\r', "");
        self.advance_to(self.pos + end + 2);
        Ok(Tok::Lit(Value::Str(s)))
    }

    /// Go's `scanNumber`: the prefix picks the digits; only decimal numbers
    /// take an `e` exponent and only hex ones a `p` exponent.
    fn number(&mut self) -> Result<Tok, TemplateError> {
        let rest = self.rest();
        let b = rest.as_bytes();
        let mut i = usize::from(matches!(b[0], b'+' | b'-'));
        let mut radix = 10;
        if b.get(i) == Some(&b'0') {
            match b.get(i + 1).map(u8::to_ascii_lowercase) {
                Some(b'x') => radix = 16,
                Some(b'o') => radix = 8,
                Some(b'b') => radix = 2,
                _ => {}
            }
            if radix != 10 {
                i += 2;
            }
        }
        let run = |mut i: usize| {
            while b
                .get(i)
                .is_some_and(|&c| c == b'_' || char::from(c).is_digit(radix))
            {
                i += 1;
            }
            i
        };
        i = run(i);
        if b.get(i) == Some(&b'.') {
            i = run(i + 1);
        }
        let exponent: &[u8] = match radix {
            10 => b"eE",
            16 => b"pP",
            _ => b"",
        };
        if b.get(i).is_some_and(|c| exponent.contains(c)) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            i = skip_digits(b, i);
        }
        let imaginary = b.get(i) == Some(&b'i');
        let end = i + usize::from(imaginary);
        if b.get(end).is_some_and(|&c| is_ident_byte(c) || c == b'.') {
            let bad: String = rest[end..].chars().next().into_iter().collect();
            return fail(
                self.line,
                format!("bad number syntax: {:?}", format!("{}{bad}", &rest[..end])),
            );
        }
        if imaginary {
            return fail(
                self.line,
                format!("complex numbers are not supported: {:?}", &rest[..end]),
            );
        }
        let value = parse_number(&rest[..i]).or_else(|m| fail(self.line, m))?;
        self.advance_to(self.pos + i);
        Ok(Tok::Lit(value))
    }
}

fn skip_digits(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
        i += 1;
    }
    i
}

/// Go's number literals (`strconv` with base 0, as Go's template parser
/// reads them): `0x1f`, `0o17`, `017` (octal), `0b101`, `1_000`, `1.5`,
/// `1e3`, `0x1p-2`. What reads as an integer stays one; otherwise it must
/// have `.`, an exponent or both to be a float.
fn parse_number(text: &str) -> Result<Value, String> {
    let illegal = || format!("illegal number syntax: {text:?}");
    if !underscores_ok(text) {
        return Err(illegal());
    }
    let clean = text.replace('_', "");
    let (negative, unsigned) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, &clean[..]),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, &lower[..])
    };
    let sign = if negative { "-" } else { "" };
    if !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix)) {
        if let Ok(i) = i64::from_str_radix(&format!("{sign}{digits}"), radix) {
            return Ok(Value::Int(i));
        }
    }
    let float = match radix {
        16 => parse_hex_float(digits).map(|f| if negative { -f } else { f }),
        2 => None,
        8 if lower.starts_with("0o") => None,
        _ => clean.parse::<f64>().ok(),
    };
    match float {
        Some(f) if f.is_finite() && lower.contains(['.', 'e', 'p']) => Ok(Value::Float(f)),
        Some(f) if f.is_finite() => Err(format!("integer overflow: {text:?}")),
        _ => Err(illegal()),
    }
}

/// Go's `underscoreOK`: `_` only between digits, or after a base prefix.
fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let b = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &b[i..] {
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// The part of a hex float after `0x`: `1.8p1` is 3. Go requires the `p`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = s.split_once('p')?;
    let mut exp: i64 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    // Keep 60 bits of mantissa and a sticky bit for the rest, enough to
    // round correctly to 53.
    let (mut m, mut sticky) = (0u64, false);
    for (n, c) in int.chars().chain(frac.chars()).enumerate() {
        let d = u64::from(c.to_digit(16)?);
        let in_frac = n >= int.len();
        if m >> 56 == 0 {
            m = m * 16 + d;
            exp -= if in_frac { 4 } else { 0 };
        } else {
            sticky |= d != 0;
            exp += if in_frac { 0 } else { 4 };
        }
    }
    let m = (m | u64::from(sticky)) as f64;
    let exp = i32::try_from(exp.clamp(-2000, 2000)).ok()?;
    // Two steps, so 2^exp itself neither overflows nor underflows early.
    let half = exp / 2;
    Some(m * 2f64.powi(half) * 2f64.powi(exp - half))
}

/// Go's escapes in `"..."` and `'...'`. `\x` and octal escapes are bytes, so
/// the result is bytes.
fn unquote(body: &str, quote: char) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    let mut buf = [0; 4];
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = chars.next().ok_or("lone backslash")?;
        let byte = match e {
            'a' => 7,
            'b' => 8,
            'f' => 0x0c,
            'n' => b'\n',
            'r' => b'\r',
            't' => b'\t',
            'v' => 0x0b,
            '\\' => b'\\',
            c if c == quote => c as u8,
            'x' => hex_escape(&mut chars, 2)? as u8,
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = chars
                        .next()
                        .and_then(|c| c.to_digit(8))
                        .ok_or("invalid octal escape")?;
                    v = v * 8 + d;
                }
                u8::try_from(v).map_err(|_| "octal escape above \\377")?
            }
            'u' | 'U' => {
                let v = hex_escape(&mut chars, if e == 'u' { 4 } else { 8 })?;
                let c = char::from_u32(v).ok_or("escape is not a valid character")?;
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            other => return Err(format!("invalid escape \"\\{other}\"")),
        };
        out.push(byte);
    }
    Ok(out)
}

fn hex_escape(chars: &mut std::str::Chars, n: usize) -> Result<u32, String> {
    let mut v = 0;
    for _ in 0..n {
        let d = chars
            .next()
            .and_then(|c| c.to_digit(16))
            .ok_or("invalid hex escape")?;
        v = v * 16 + d;
    }
    Ok(v)
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
#[cfg(test)]
mod tests {
    use crate::config::template::tests::{err_at, ok, same_as_go};

    #[test]
    fn trim_markers() {
        assert_eq!(ok("a  {{- .USER -}}  b"), "apilotb");
        assert_eq!(ok("a \n\t {{- .USER }} \n b"), "apilot \n b");
        assert_eq!(ok("a {{ .USER -}} \n\n b"), "a pilotb");
        assert_eq!(ok("{{-3}}"), "-3");
        assert_eq!(ok("{{ 3 -}} x"), "3x");
        assert_eq!(
            ok("[\n  {{- range loop 3 }}\n  {{ . }},\n  {{- end }}\n]"),
            "[\n  0,\n  1,\n  2,\n]"
        );
        assert_eq!(ok("{{ if true -}}\n  yes\n{{- end }}"), "yes");
        // Adjacent actions: nothing in between to trim.
        assert_eq!(ok("{{ 1 -}}{{- 2 }}"), "12");
        // The marker needs whitespace: "-}}" glued to a word is an error, as in Go.
        err_at("{{ 3-}}", 1, "-");
    }

    #[test]
    fn comments() {
        assert_eq!(ok("a{{/* hi */}}b"), "ab");
        assert_eq!(ok("a {{- /* hi */ -}} b"), "ab");
        assert_eq!(ok("a {{- /* hi */}} b"), "a b");
        assert_eq!(ok("a{{/* multi\nline\n*/}}b"), "ab");
        assert_eq!(ok("{{/* {{ not an action }} */}}x"), "x");
        // Lines inside a comment still count.
        err_at("{{/* a\nb */}}\n{{ nofn }}", 3, "nofn");
        err_at("x\n{{/* never closed", 2, "unclosed comment");
        err_at("{{/* a */ x }}", 1, "comment");
        // Go: "comment ends before closing delimiter".
        err_at("{{/* a */  -}}  x", 1, "comment");
        assert_eq!(ok("a {{- /* a */\n-}} b"), "ab");
    }

    #[test]
    fn literals() {
        assert_eq!(ok(r#"{{ "a\tb\x41\u00e9\101\"\\" }}"#), "a\tbAéA\"\\");
        assert_eq!(ok("{{ `raw \\n\n{{ not }}` }}"), "raw \\n\n{{ not }}");
        assert_eq!(ok("{{ 42 }} {{ -7 }} {{ +3 }} {{ 0x1F }} {{ 0o17 }} {{ 017 }} {{ 0b101 }} {{ 1_000 }}"), "42 -7 3 31 15 15 5 1000");
        assert_eq!(
            ok("{{ 1.5 }} {{ 1.0 }} {{ 1e6 }} {{ 100000.0 }} {{ 0.00001 }} {{ .25 }} {{ 10.1 }}"),
            "1.5 1 1e+06 100000 1e-05 0.25 10.1"
        );
        assert_eq!(
            ok("{{ true }} {{ false }} {{ print nil }}"),
            "true false <nil>"
        );
        assert_eq!(ok("{{ 'a' }} {{ '\\n' }}"), "97 10");
        err_at("\n{{ \"abc }}", 2, "unterminated quoted string");
        err_at("{{ `abc }}", 1, "unterminated raw string");
        err_at(r#"{{ "\q" }}"#, 1, "invalid escape");
        err_at("{{ 12ab }}", 1, "bad number");
        err_at("{{ 99999999999999999999 }}", 1, "integer overflow");
        err_at("{{ nil }}", 1, "nil is not a command");
        err_at("{{ '' }}", 1, "character constant");
    }

    /// Go's number syntax, checked against Go 1.19: hex floats, `_` only
    /// between digits. Complex numbers are not supported.
    #[test]
    fn number_literals() {
        same_as_go(&[
            (
                r#"{{ 0x1p4 }} {{ 0x1.8p1 }} {{ 0X1P-2 }} {{ printf "%T %T %T" 0x1p4 0x1F 1e3 }}"#,
                "16 3 0.25 float64 int float64",
            ),
            (
                r#"{{ 1_000 }} {{ 0_1 }} {{ 0x_1f }} {{ 0b1_0 }} {{ 1_000.5 }}"#,
                "1000 1 31 2 1000.5",
            ),
            (
                r#"{{ -0 }} {{ -0.0 }} {{ +5 }} {{ 017 }} {{ 0o17 }} {{ 1E3 }} {{ .5 }} {{ 5. }}"#,
                "0 -0 5 15 15 1000 0.5 5",
            ),
        ]);
        // go: template: :1: illegal number syntax: "1__0"
        err_at(r#"{{ 1__0 }}"#, 1, "illegal number syntax: \"1__0\"");
        // go: template: :1: illegal number syntax: "1_"
        err_at(r#"{{ 1_ }}"#, 1, "illegal number syntax: \"1_\"");
        // go: template: :1: illegal number syntax: "0x1.8"
        err_at(r#"{{ 0x1.8 }}"#, 1, "illegal number syntax: \"0x1.8\"");
        // go: template: :1: integer overflow: "08"
        err_at(r#"{{ 08 }}"#, 1, "integer overflow: \"08\"");
        // go: template: :1: integer overflow: "99999999999999999999"
        err_at(
            r#"{{ 99999999999999999999 }}"#,
            1,
            "integer overflow: \"99999999999999999999\"",
        );
        err_at("{{ 1i }}", 1, "complex numbers are not supported");
    }
}
