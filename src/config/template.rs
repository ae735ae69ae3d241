//! Renders the config file as a Go `text/template` (SPEC §2.1).
//!
//! ContainerPilot 3 ran its config through Go's `text/template` with the
//! environment as data and seven extra functions (upstream
//! `config/template/template.go`). This is a small engine of our own for the
//! subset configs use, in three stages: `lex` cuts the source into text and
//! action items (trim markers and comments are settled here), `Parser` builds a
//! tree and rejects unknown functions and undefined variables before anything
//! runs (as Go does), and `Exec` walks the tree. The `gtmpl` crate was evaluated
//! first and not adopted: its error lines were off, it printed `<no value>` for
//! unset variables, lacked `$x =` and Go's `printf` flags, overflowed the stack
//! on deep nesting, and pulled in anyhow/thiserror (details in the git log).
//!
//! Where we differ from Go on purpose (each one has a test):
//! - an unset variable is `""` (ContainerPilot's `missingkey=zero`), and a
//!   value containing `=` is kept whole (3.x cut it at the first `=`);
//! - comparisons accept a numeric string against a number (`gt .COUNT 2`),
//!   comparing numerically; Go refuses mixed types. Two strings still compare
//!   as strings, as in Go. Ints and floats compare with each other;
//! - `default` returns a non-string value when it is truthy (Go returned the
//!   default for every non-string value);
//! - `index`, `loop` accept numeric strings as integers; `join` accepts any list;
//! - `define`/`template`/`block`, `slice`, `call`, `html`, `js`, `urlquery`,
//!   `%[n]` and `*` in printf are not supported.
//!
//! Every error names the 1-based line it was found on. A typo must give an
//! error, never a panic or a hang, so nesting, list length, output size and
//! total work are capped.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::rc::Rc;

/// Parentheses plus block nesting; deeper input is an error, not a stack overflow.
const MAX_DEPTH: usize = 100;
/// Longest list `loop` or `split` may build.
const MAX_LIST: usize = 1_000_000;
/// Largest output, and largest string any function may return.
const MAX_OUTPUT: usize = 16 << 20;
/// Commands evaluated plus range iterations, so nested ranges cannot spin for hours.
const MAX_STEPS: u64 = 20_000_000;
/// Largest printf width or precision.
const MAX_WIDTH: usize = 100_000;

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
    let items = lex(src)?;
    let nodes = Parser::new(items).parse()?;
    Exec::run(env, &nodes)
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
    List(Rc<Vec<Value>>),
    Map(Rc<BTreeMap<String, String>>),
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
            Value::List(l) => !l.is_empty(),
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
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// Kind and a short rendering, for error messages.
    fn describe(&self) -> String {
        match self {
            Value::Nil => "nil".into(),
            Value::Str(s) => format!("string {:?}", shorten(s)),
            Value::List(l) => format!("list of {} items", l.len()),
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
            Value::Nil => f.write_str("<nil>"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&float_v(*x)),
            Value::Str(s) => f.write_str(s),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("map[")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{k}:{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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
struct Token {
    tok: Tok,
    line: usize,
    /// Whitespace came before it: `$x.A` is one operand, `$x .A` two.
    spaced: bool,
}

#[derive(Debug)]
enum Item {
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

fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
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
        let ws = rest.bytes().take_while(|&b| is_space(b)).count();
        if ws > 0 && rest[ws..].starts_with("-}}") {
            self.advance_to(self.pos + ws + 3);
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

    fn number(&mut self) -> Result<Tok, TemplateError> {
        let rest = self.rest();
        let b = rest.as_bytes();
        let mut i = usize::from(matches!(b[0], b'+' | b'-'));
        let prefixed = b.get(i) == Some(&b'0')
            && matches!(b.get(i + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B'));
        if prefixed {
            i += 2;
            while b
                .get(i)
                .is_some_and(|c| c.is_ascii_hexdigit() || *c == b'_')
            {
                i += 1;
            }
        } else {
            i = skip_digits(b, i);
            if b.get(i) == Some(&b'.') {
                i = skip_digits(b, i + 1);
            }
            if matches!(b.get(i), Some(b'e' | b'E')) {
                i += 1;
                if matches!(b.get(i), Some(b'+' | b'-')) {
                    i += 1;
                }
                i = skip_digits(b, i);
            }
        }
        if b.get(i).is_some_and(|&c| is_ident_byte(c) || c == b'.') {
            let bad: String = rest[i..].chars().next().into_iter().collect();
            return fail(
                self.line,
                format!("bad number syntax: {:?}", format!("{}{bad}", &rest[..i])),
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

/// Go's number literals: `0x1f`, `0o17`, `017` (octal), `0b101`, `1_000`,
/// `1.5`, `1e3`. Integers stay integers; anything with `.` or `e` is a float.
fn parse_number(text: &str) -> Result<Value, String> {
    let clean = text.replace('_', "");
    let (sign, unsigned) = match clean.as_bytes().first() {
        Some(b'-') => ("-", &clean[1..]),
        Some(b'+') => ("", &clean[1..]),
        _ => ("", &clean[..]),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.contains(['.', 'e']) {
        return match clean.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(format!("invalid number {text:?}")),
        };
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, &lower[..])
    };
    i64::from_str_radix(&format!("{sign}{digits}"), radix)
        .map(Value::Int)
        .map_err(|_| format!("invalid or too large integer {text:?}"))
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

// ---------------------------------------------------------------- parser

#[derive(Debug)]
enum Node {
    Text {
        text: String,
        line: usize,
    },
    /// Prints its value unless it declares or assigns a variable.
    Action(Pipeline),
    If(Box<Control>),
    With(Box<Control>),
    Range(Box<Control>),
    Break,
    Continue,
}

#[derive(Debug)]
struct Control {
    pipe: Pipeline,
    body: Vec<Node>,
    /// The `{{else}}` branch; `{{else if}}` is a nested `If` here, as in Go.
    alt: Vec<Node>,
    line: usize,
}

#[derive(Debug)]
struct Pipeline {
    line: usize,
    decl: Vec<String>,
    /// `$x = ...` sets an existing variable; `$x := ...` declares one.
    assign: bool,
    cmds: Vec<Cmd>,
}

/// One stage of a pipeline. Only a function takes arguments or a piped value.
#[derive(Debug)]
struct Cmd {
    line: usize,
    head: Expr,
    args: Vec<Expr>,
}

#[derive(Debug)]
enum Expr {
    Lit(Value),
    Dot,
    Var(String),
    /// Called with no arguments when it appears as an argument (Go's rule).
    Func(String),
    Paren(Box<Pipeline>),
    Field(Box<Expr>, Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ctx {
    Action,
    If,
    With,
    Range,
    Paren,
}

impl Ctx {
    fn name(self) -> &'static str {
        match self {
            Ctx::Action => "action",
            Ctx::If => "if",
            Ctx::With => "with",
            Ctx::Range => "range",
            Ctx::Paren => "parentheses",
        }
    }
}

/// How a list of nodes ended.
enum Stop {
    Eof,
    End(usize),
    Else { line: usize, rest: Cursor },
}

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "break", "continue", "define", "template", "block",
];

fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(&word)
}

/// The tokens of one action.
struct Cursor {
    toks: Vec<Token>,
    pos: usize,
    line: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Tok> {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n).map(|t| &t.tok)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += usize::from(t.is_some());
        t
    }

    /// Line of the next token, else of the last one, else of the action.
    fn line(&self) -> usize {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .map_or(self.line, |t| t.line)
    }

    fn expect_end(&self, after: &str) -> Result<(), TemplateError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => fail(
                self.line(),
                format!("unexpected {} in {}", tok_desc(t), braces(after)),
            ),
        }
    }
}

fn tok_desc(t: &Tok) -> String {
    match t {
        Tok::Ident(n) => format!("{n:?}"),
        Tok::Field(n) => format!("\".{n}\""),
        Tok::Var(n) => format!("{n:?}"),
        Tok::Dot => "\".\"".into(),
        Tok::Lit(v) => v.describe(),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
    }
}

fn expr_desc(e: &Expr) -> String {
    match e {
        Expr::Lit(v) => v.describe(),
        Expr::Dot => "\".\"".into(),
        Expr::Var(n) => n.clone(),
        Expr::Func(n) => n.clone(),
        Expr::Paren(_) => "a parenthesized pipeline".into(),
        Expr::Field(_, names) => format!("field .{}", names.join(".")),
    }
}

struct Parser {
    items: std::vec::IntoIter<Item>,
    /// Variables in scope, innermost last; `$` is the root data.
    vars: Vec<String>,
    depth: usize,
    ranges: usize,
}

impl Parser {
    fn new(items: Vec<Item>) -> Parser {
        Parser {
            items: items.into_iter(),
            vars: vec!["$".to_string()],
            depth: 0,
            ranges: 0,
        }
    }

    fn parse(mut self) -> Result<Vec<Node>, TemplateError> {
        let (nodes, stop) = self.list()?;
        match stop {
            Stop::Eof => Ok(nodes),
            Stop::End(line) => fail(
                line,
                "{{end}} without a matching {{if}}, {{range}} or {{with}}",
            ),
            Stop::Else { line, .. } => fail(line, "{{else}} outside {{if}}, {{range}} or {{with}}"),
        }
    }

    fn enter(&mut self, line: usize) -> Result<(), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return fail(
                line,
                format!("blocks and parentheses nested more than {MAX_DEPTH} deep"),
            );
        }
        Ok(())
    }

    /// Nodes up to the next `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (toks, line) = match item {
                Item::Text { text, line } => {
                    nodes.push(Node::Text { text, line });
                    continue;
                }
                Item::Action { toks, line } => (toks, line),
            };
            let mut c = Cursor { toks, pos: 0, line };
            let keyword = match c.peek() {
                Some(Tok::Ident(k)) if is_keyword(k) => k.clone(),
                _ => {
                    nodes.push(Node::Action(self.pipeline(&mut c, Ctx::Action)?));
                    continue;
                }
            };
            c.next();
            let node = match keyword.as_str() {
                "end" => {
                    c.expect_end("end")?;
                    return Ok((nodes, Stop::End(line)));
                }
                "else" => return Ok((nodes, Stop::Else { line, rest: c })),
                "if" => Node::If(Box::new(self.control(c, Ctx::If, line)?)),
                "with" => Node::With(Box::new(self.control(c, Ctx::With, line)?)),
                "range" => Node::Range(Box::new(self.control(c, Ctx::Range, line)?)),
                "break" | "continue" => {
                    if self.ranges == 0 {
                        return fail(line, format!("{} outside {{{{range}}}}", braces(&keyword)));
                    }
                    c.expect_end(&keyword)?;
                    if keyword == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    }
                }
                _ => {
                    return fail(
                        line,
                        format!(
                            "{} is not supported (one template per config file)",
                            braces(&keyword)
                        ),
                    )
                }
            };
            nodes.push(node);
        }
        Ok((nodes, Stop::Eof))
    }

    /// `if`, `with` or `range` up to and including its `{{end}}`.
    fn control(&mut self, mut c: Cursor, ctx: Ctx, line: usize) -> Result<Control, TemplateError> {
        self.enter(line)?;
        let outer = self.vars.len();
        let pipe = self.pipeline(&mut c, ctx)?;
        let inner = self.vars.len();
        self.ranges += usize::from(ctx == Ctx::Range);
        let body = self.list();
        self.ranges -= usize::from(ctx == Ctx::Range);
        let (body, stop) = body?;
        self.vars.truncate(inner);
        let alt = match stop {
            Stop::End(_) => Vec::new(),
            Stop::Eof => {
                return fail(
                    line,
                    format!("{} has no matching {{{{end}}}}", braces(ctx.name())),
                )
            }
            Stop::Else {
                line: else_line,
                rest,
            } => self.else_branch(rest, ctx, else_line, line)?,
        };
        self.vars.truncate(outer);
        self.depth -= 1;
        Ok(Control {
            pipe,
            body,
            alt,
            line,
        })
    }

    fn else_branch(
        &mut self,
        mut c: Cursor,
        ctx: Ctx,
        line: usize,
        open: usize,
    ) -> Result<Vec<Node>, TemplateError> {
        match c.peek() {
            None => {}
            // `{{else if x}}` is `{{else}}{{if x}}...{{end}}` sharing our `{{end}}`.
            Some(Tok::Ident(k)) if k == ctx.name() && matches!(ctx, Ctx::If | Ctx::With) => {
                c.next();
                let nested = Box::new(self.control(c, ctx, line)?);
                return Ok(vec![if ctx == Ctx::If {
                    Node::If(nested)
                } else {
                    Node::With(nested)
                }]);
            }
            Some(t) => {
                return fail(
                    line,
                    format!(
                        "unexpected {} after else in {}",
                        tok_desc(t),
                        braces(ctx.name())
                    ),
                )
            }
        }
        let (alt, stop) = self.list()?;
        match stop {
            Stop::End(_) => Ok(alt),
            Stop::Else { line, .. } => fail(
                line,
                format!("second {{{{else}}}} in {}", braces(ctx.name())),
            ),
            Stop::Eof => fail(
                open,
                format!("{} has no matching {{{{end}}}}", braces(ctx.name())),
            ),
        }
    }

    fn pipeline(&mut self, c: &mut Cursor, ctx: Ctx) -> Result<Pipeline, TemplateError> {
        let line = c.line();
        let (decl, assign) = self.declaration(c, ctx)?;
        let mut cmds = Vec::new();
        loop {
            cmds.push(self.command(c, cmds.len())?);
            if c.peek() != Some(&Tok::Pipe) {
                break;
            }
            c.next();
        }
        match (ctx, c.peek()) {
            (Ctx::Paren, Some(Tok::RParen))
            | (Ctx::Action | Ctx::If | Ctx::With | Ctx::Range, None) => {}
            (Ctx::Paren, _) => return fail(c.line(), "unclosed \"(\": missing \")\""),
            (_, Some(t)) => {
                return fail(
                    c.line(),
                    format!("unexpected {} in {}", tok_desc(t), ctx.name()),
                )
            }
        }
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipeline {
            line,
            decl,
            assign,
            cmds,
        })
    }

    /// `$x :=`, `$x =` or (range only) `$i, $v :=` at the start of a pipeline.
    fn declaration(
        &mut self,
        c: &mut Cursor,
        ctx: Ctx,
    ) -> Result<(Vec<String>, bool), TemplateError> {
        let line = c.line();
        let var = |i| match c.peek_at(i) {
            Some(Tok::Var(v)) => Some(v.clone()),
            _ => None,
        };
        let is_op = |t: Option<&Tok>| matches!(t, Some(Tok::Declare | Tok::Assign));
        let (names, op) = match (var(0), var(2)) {
            (Some(a), _) if is_op(c.peek_at(1)) => (vec![a], 1),
            (Some(a), Some(b)) if c.peek_at(1) == Some(&Tok::Comma) && is_op(c.peek_at(3)) => {
                (vec![a, b], 3)
            }
            _ => return Ok((Vec::new(), false)),
        };
        let assign = c.peek_at(op) == Some(&Tok::Assign);
        c.pos += op + 1;
        if ctx == Ctx::Paren {
            return fail(line, "cannot declare a variable inside parentheses");
        }
        if names.len() == 2 && ctx != Ctx::Range {
            return fail(
                line,
                format!("only range can declare two variables, not {}", ctx.name()),
            );
        }
        if assign && ctx == Ctx::Range {
            return fail(line, "range declares its variables with \":=\", not \"=\"");
        }
        if assign && !self.vars.contains(&names[0]) {
            return fail(
                line,
                format!(
                    "undefined variable {}: declare it with \":=\" first",
                    names[0]
                ),
            );
        }
        Ok((names, assign))
    }

    fn command(&mut self, c: &mut Cursor, stage: usize) -> Result<Cmd, TemplateError> {
        let line = c.line();
        let mut words = Vec::new();
        while !matches!(c.peek(), None | Some(Tok::Pipe | Tok::RParen)) {
            words.push(self.operand(c)?);
        }
        let mut words = words.into_iter();
        let Some(head) = words.next() else {
            return fail(
                line,
                if stage == 0 {
                    "missing value: empty action or pipeline"
                } else {
                    "missing command after \"|\""
                },
            );
        };
        let args: Vec<Expr> = words.collect();
        match &head {
            Expr::Func(_) => {}
            _ if !args.is_empty() => {
                return fail(
                    line,
                    format!(
                        "{} is not a function and cannot take arguments",
                        expr_desc(&head)
                    ),
                )
            }
            _ if stage > 0 => {
                return fail(
                    line,
                    format!(
                        "cannot pipe into {}: only a function takes a piped value",
                        expr_desc(&head)
                    ),
                )
            }
            Expr::Lit(Value::Nil) => return fail(line, "nil is not a command"),
            _ => {}
        }
        Ok(Cmd { line, head, args })
    }

    fn operand(&mut self, c: &mut Cursor) -> Result<Expr, TemplateError> {
        let line = c.line();
        let Some(tok) = c.next() else {
            return fail(line, "missing operand");
        };
        let term = match tok.tok {
            Tok::Lit(v) => Expr::Lit(v),
            Tok::Dot => Expr::Dot,
            Tok::Field(name) => Expr::Field(Box::new(Expr::Dot), vec![name]),
            Tok::Var(name) if self.vars.contains(&name) => Expr::Var(name),
            Tok::Var(name) => return fail(line, format!("undefined variable {name}")),
            Tok::Ident(name) if is_keyword(&name) => {
                return fail(
                    line,
                    format!("unexpected keyword {name:?} inside an action"),
                )
            }
            Tok::Ident(name) if is_function(&name) => Expr::Func(name),
            Tok::Ident(name) => return fail(line, format!("unknown function {name:?}")),
            Tok::LParen => {
                self.enter(line)?;
                let p = self.pipeline(c, Ctx::Paren)?;
                c.next();
                self.depth -= 1;
                Expr::Paren(Box::new(p))
            }
            other => return fail(line, format!("unexpected {} in command", tok_desc(&other))),
        };
        let mut fields = Vec::new();
        while let Some(Token {
            tok: Tok::Field(name),
            spaced: false,
            ..
        }) = c.toks.get(c.pos)
        {
            fields.push(name.clone());
            c.pos += 1;
        }
        if fields.is_empty() {
            return Ok(term);
        }
        match term {
            Expr::Field(base, mut names) => {
                names.extend(fields);
                Ok(Expr::Field(base, names))
            }
            Expr::Var(_) | Expr::Paren(_) | Expr::Dot => Ok(Expr::Field(Box::new(term), fields)),
            other => fail(
                line,
                format!(
                    "unexpected field .{} after {}",
                    fields[0],
                    expr_desc(&other)
                ),
            ),
        }
    }
}

// ---------------------------------------------------------------- evaluator

#[derive(Debug, PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec<'a> {
    env: &'a HashMap<String, String>,
    /// Innermost last; blocks truncate back to their mark when they end.
    vars: Vec<(String, Value)>,
    out: String,
    steps: u64,
}

impl Exec<'_> {
    fn run(env: &HashMap<String, String>, nodes: &[Node]) -> Result<String, TemplateError> {
        let root = Value::Map(Rc::new(
            env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
        let mut ex = Exec {
            env,
            vars: vec![("$".to_string(), root.clone())],
            out: String::new(),
            steps: 0,
        };
        ex.walk(nodes, &root)?;
        Ok(ex.out)
    }

    fn tick(&mut self, line: usize) -> Result<(), TemplateError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return fail(
                line,
                format!(
                    "template does too much work (over {MAX_STEPS} steps); is a loop too long?"
                ),
            );
        }
        Ok(())
    }

    fn write(&mut self, s: &str, line: usize) -> Result<(), TemplateError> {
        if self.out.len() + s.len() > MAX_OUTPUT {
            return fail(
                line,
                format!("output is larger than {} MiB", MAX_OUTPUT >> 20),
            );
        }
        self.out.push_str(s);
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, TemplateError> {
        for node in nodes {
            let flow = match node {
                Node::Text { text, line } => {
                    self.write(text, *line)?;
                    Flow::Normal
                }
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        self.write(&v.to_string(), p.line)?;
                    }
                    Flow::Normal
                }
                Node::If(c) => self.if_with(c, dot, false)?,
                Node::With(c) => self.if_with(c, dot, true)?,
                Node::Range(c) => self.range(c, dot)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn if_with(&mut self, c: &Control, dot: &Value, with: bool) -> Result<Flow, TemplateError> {
        let mark = self.vars.len();
        let v = self.pipeline(&c.pipe, dot)?;
        let flow = match (v.truthy(), with) {
            (true, true) => self.walk(&c.body, &v)?,
            (true, false) => self.walk(&c.body, dot)?,
            (false, _) => self.walk(&c.alt, dot)?,
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn range(&mut self, c: &Control, dot: &Value) -> Result<Flow, TemplateError> {
        let mark = self.vars.len();
        // Like Go, the variables first hold the whole value (seen by {{else}}),
        // then each key and element in turn.
        let v = self.pipeline(&c.pipe, dot)?;
        let len = match &v {
            Value::List(items) => items.len(),
            Value::Map(m) => m.len(),
            Value::Nil => 0,
            Value::Str(s) => {
                return fail(
                    c.line,
                    format!(
                        "range can't iterate over string {:?}; split it first: split \",\" ...",
                        shorten(s)
                    ),
                )
            }
            other => {
                return fail(
                    c.line,
                    format!("range can't iterate over {}", other.describe()),
                )
            }
        };
        if len == 0 {
            let flow = self.walk(&c.alt, dot)?;
            self.vars.truncate(mark);
            return Ok(flow);
        }
        let pairs: Box<dyn Iterator<Item = (Value, Value)>> = match &v {
            Value::List(items) => Box::new(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (Value::Int(i as i64), e.clone())),
            ),
            Value::Map(m) => Box::new(
                m.iter()
                    .map(|(k, v)| (Value::Str(k.clone()), Value::Str(v.clone()))),
            ),
            _ => Box::new(std::iter::empty()),
        };
        let inner = self.vars.len();
        for (key, elem) in pairs {
            self.tick(c.line)?;
            match c.pipe.decl.len() {
                1 => self.vars[mark].1 = elem.clone(),
                2 => {
                    self.vars[mark].1 = key;
                    self.vars[mark + 1].1 = elem.clone();
                }
                _ => {}
            }
            let flow = self.walk(&c.body, &elem)?;
            self.vars.truncate(inner);
            if flow == Flow::Break {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let mut val = None;
        for cmd in &p.cmds {
            val = Some(self.command(cmd, dot, val.take())?);
        }
        let val = val.unwrap_or(Value::Nil);
        for name in &p.decl {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = val.clone(),
                    None => return fail(p.line, format!("undefined variable {name}")),
                }
            } else {
                self.vars.push((name.clone(), val.clone()));
            }
        }
        Ok(val)
    }

    fn command(
        &mut self,
        cmd: &Cmd,
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        self.tick(cmd.line)?;
        match &cmd.head {
            Expr::Func(name) => self.call(name, &cmd.args, dot, piped, cmd.line),
            head => self.operand(head, dot, cmd.line),
        }
    }

    fn operand(&mut self, e: &Expr, dot: &Value, line: usize) -> Result<Value, TemplateError> {
        Ok(match e {
            Expr::Lit(v) => v.clone(),
            Expr::Dot => dot.clone(),
            Expr::Var(name) => match self.vars.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => v.clone(),
                None => return fail(line, format!("undefined variable {name}")),
            },
            Expr::Func(name) => self.call(name, &[], dot, None, line)?,
            Expr::Paren(p) => self.pipeline(p, dot)?,
            Expr::Field(base, names) => {
                let mut v = self.operand(base, dot, line)?;
                for name in names {
                    v = field(&v, name).or_else(|m| fail(line, m))?;
                }
                v
            }
        })
    }

    /// The piped value, if any, is the last argument (Go's rule).
    fn call(
        &mut self,
        name: &str,
        args: &[Expr],
        dot: &Value,
        piped: Option<Value>,
        line: usize,
    ) -> Result<Value, TemplateError> {
        if name == "and" || name == "or" {
            return self.and_or(name, args, dot, piped, line);
        }
        let Some(&(_, min, max, run)) = FUNCS.iter().find(|f| f.0 == name) else {
            return fail(line, format!("unknown function {name:?}"));
        };
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.operand(a, dot, line)?);
        }
        vals.extend(piped);
        if vals.len() < min || vals.len() > max {
            let want = match (min, max) {
                (a, b) if a == b => a.to_string(),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} or {b}"),
            };
            return fail(
                line,
                format!(
                    "{name}: wrong number of arguments: want {want}, got {}",
                    vals.len()
                ),
            );
        }
        let v = run(self.env, vals).or_else(|m| fail(line, format!("{name}: {m}")))?;
        if matches!(&v, Value::Str(s) if s.len() > MAX_OUTPUT) {
            return fail(
                line,
                format!("{name}: result is larger than {} MiB", MAX_OUTPUT >> 20),
            );
        }
        Ok(v)
    }

    /// `and`/`or` stop at the first operand that decides and return it, so
    /// `or .X "fallback"` works and `and .X (index ...)` is safe (Go 1.18+).
    fn and_or(
        &mut self,
        name: &str,
        args: &[Expr],
        dot: &Value,
        piped: Option<Value>,
        line: usize,
    ) -> Result<Value, TemplateError> {
        if args.is_empty() && piped.is_none() {
            return fail(
                line,
                format!("{name}: wrong number of arguments: want at least 1, got 0"),
            );
        }
        let stop_on = name == "or";
        let mut last = Value::Nil;
        for a in args {
            let v = self.operand(a, dot, line)?;
            if v.truthy() == stop_on {
                return Ok(v);
            }
            last = v;
        }
        Ok(piped.unwrap_or(last))
    }
}

fn field(v: &Value, name: &str) -> Result<Value, String> {
    match v {
        Value::Map(m) => Ok(Value::Str(m.get(name).cloned().unwrap_or_default())),
        other => Err(format!(
            "can't read field .{name} of {}: only the environment has fields (inside range or with, use $.{name})",
            other.describe()
        )),
    }
}

// ---------------------------------------------------------------- functions

type Env = HashMap<String, String>;
type Builtin = fn(&Env, Vec<Value>) -> Result<Value, String>;

/// Name, fewest and most arguments, implementation. `and` and `or` are not
/// here because they evaluate their arguments lazily (`Exec::and_or`).
const FUNCS: &[(&str, usize, usize, Builtin)] = &[
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
];

fn is_function(name: &str) -> bool {
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

fn too_long() -> String {
    format!("result would be larger than {} MiB", MAX_OUTPUT >> 20)
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
        return Ok(Value::List(Rc::new(Vec::new())));
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
    Ok(Value::List(Rc::new(parts)))
}

/// `join SEP LIST`.
fn f_join(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [sep, list] = exactly(args)?;
    let sep = want_str(&sep, 1)?;
    let items = match &list {
        Value::List(items) => items,
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
    Ok(Value::List(Rc::new(items)))
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn f_print(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let mut out = String::new();
    let mut prev_str = false;
    for (i, v) in args.iter().enumerate() {
        let is_str = matches!(v, Value::Str(_));
        if i > 0 && !is_str && !prev_str {
            out.push(' ');
        }
        write!(out, "{v}").map_err(|e| e.to_string())?;
        prev_str = is_str;
    }
    Ok(Value::Str(out))
}

/// Go's `fmt.Sprintln`: always spaces, then a newline.
fn f_println(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let words: Vec<String> = args.iter().map(|v| v.to_string()).collect();
    Ok(Value::Str(words.join(" ") + "\n"))
}

fn f_len(_: &Env, args: Vec<Value>) -> Result<Value, String> {
    let [v] = exactly(args)?;
    let n = match &v {
        Value::Str(s) => s.len(),
        Value::List(l) => l.len(),
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
    for (i, key) in args {
        v = match &v {
            Value::List(items) => {
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
        (Value::List(_) | Value::Map(_), _) | (_, Value::List(_) | Value::Map(_)) => {
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

// ---------------------------------------------------------------- printf

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
fn f_printf(_: &Env, args: Vec<Value>) -> Result<Value, String> {
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
fn float_v(f: f64) -> String {
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
    use super::*;
    use std::path::PathBuf;

    fn env() -> HashMap<String, String> {
        [
            ("NAME", "Template"),
            ("USER", "pilot"),
            ("PARTS", "a:b:c"),
            ("COUNT", "3"),
            ("EQ", "test3=w/equals=="),
            ("EMPTY", ""),
            ("PREFIX", "DB"),
            ("DB_HOST", "db.local"),
            ("NAME_1", "Template"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[track_caller]
    fn ok(src: &str) -> String {
        match render(src, &env()) {
            Ok(s) => s,
            Err(e) => panic!("{src:?} failed: {e}"),
        }
    }

    #[track_caller]
    fn err(src: &str) -> TemplateError {
        match render(src, &env()) {
            Ok(s) => panic!("{src:?} rendered {:?}, want an error", shorten(&s)),
            Err(e) => e,
        }
    }

    #[track_caller]
    fn err_at(src: &str, line: usize, needle: &str) {
        let e = err(src);
        assert_eq!(e.line, line, "{src:?}: {e}");
        assert!(
            e.message.contains(needle),
            "{src:?}: {e:?} should mention {needle:?}"
        );
    }

    /// Upstream's own expectations (config/template/template_test.go).
    #[test]
    fn upstream_cases() {
        assert_eq!(ok("Hello, {{.NAME}}!"), "Hello, Template!");
        assert_eq!(ok("Hello, {{.NONAME}}!"), "Hello, !");
        assert_eq!(ok("{{ loop 2 5 }}"), "[2 3 4]");
        assert_eq!(ok("{{ loop 10 1 }}"), "[10 9 8 7 6 5 4 3 2]");
        assert_eq!(ok("{{ loop 5 }}"), "[0 1 2 3 4]");
        assert_eq!(ok("{{ loop .COUNT }}"), "[0 1 2]");
        assert_eq!(ok("{{ loop 1 .COUNT }}"), "[1 2]");
        assert_eq!(
            ok("{{ range $i := loop 2 5 -}}i={{$i}},{{ end }}"),
            "i=2,i=3,i=4,"
        );
        assert_eq!(
            ok(r#"Hello, {{ env (printf "NA%s" "ME_1") }}!"#),
            "Hello, Template!"
        );
        assert_eq!(
            ok(r#"Hello, {{.NONAME | default "World" }}!"#),
            "Hello, World!"
        );
        assert_eq!(ok("Hello, {{.NONAME | default 100 }}!"), "Hello, 100!");
        assert_eq!(ok("Hello, {{.NONAME | default 10.1 }}!"), "Hello, 10.1!");
        assert_eq!(
            ok(r#"Hello, {{.PARTS | split ":" | join "." }}!"#),
            "Hello, a.b.c!"
        );
        assert_eq!(
            ok(r#"Hello, {{.NAME | replaceAll "e" "_" }}!"#),
            "Hello, T_mplat_!"
        );
        assert_eq!(
            ok(r#"Hello, {{.NAME | regexReplaceAll "[epa]+" "_" }}!"#),
            "Hello, T_m_l_t_!"
        );
    }

    #[test]
    fn environment_values() {
        assert_eq!(ok("[{{ .UNSET }}]"), "[]");
        assert_eq!(ok("{{ .EQ }}"), "test3=w/equals==");
        assert_eq!(ok("{{ $.NAME }}"), "Template");
        assert_eq!(ok("{{ $e := . }}{{ $e.USER }}"), "pilot");
        assert_eq!(ok("{{ (.).USER }}"), "pilot");
        assert_eq!(ok("plain text, no actions\n"), "plain text, no actions\n");
        assert_eq!(ok(""), "");
        let mut small = HashMap::new();
        small.insert("B".to_string(), "2".to_string());
        small.insert("A".to_string(), "1".to_string());
        assert_eq!(render("{{ . }}", &small).unwrap(), "map[A:1 B:2]");
    }

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
    }

    #[test]
    fn pipelines_pass_the_value_last() {
        assert_eq!(ok(r#"{{ "a" | printf "%s-%s" "b" }}"#), "b-a");
        assert_eq!(ok(r#"{{ .PARTS | split ":" | len }}"#), "3");
        assert_eq!(ok(r#"{{ "x" | print }}"#), "x");
        err_at(r#"{{ "a" | "b" }}"#, 1, "pipe");
        err_at("{{ .NAME | }}", 1, "missing command");
    }

    #[test]
    fn variables_and_scoping() {
        assert_eq!(ok("{{ $x := 1 }}{{ $x }}"), "1");
        assert_eq!(
            ok("{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}"),
            "21"
        );
        assert_eq!(
            ok("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}"),
            "2"
        );
        assert_eq!(
            ok("{{ $x := 0 }}{{ range loop 4 }}{{ $x = . }}{{ end }}{{ $x }}"),
            "3"
        );
        assert_eq!(
            ok("{{ if $v := .USER }}{{ $v }}{{ else }}none{{ end }}"),
            "pilot"
        );
        assert_eq!(
            ok("{{ if $v := .UNSET }}{{ $v }}{{ else }}[{{ $v }}]{{ end }}"),
            "[]"
        );
        // Declarations print nothing.
        assert_eq!(ok("a{{ $x := 5 }}b{{ $x = 6 }}c"), "abc");
        // A variable declared in a block ends at its {{end}}.
        err_at("{{ if true }}{{ $y := 1 }}{{ end }}\n{{ $y }}", 2, "$y");
        err_at(
            "{{ range loop 2 }}{{ $y := 1 }}{{ end }}{{ $y }}",
            1,
            "undefined variable $y",
        );
        err_at(
            "{{ if true }}{{ $y := 1 }}{{ else }}{{ $y }}{{ end }}",
            1,
            "$y",
        );
        err_at("{{ $z = 1 }}", 1, "undefined variable $z");
        // $ is the root data everywhere.
        assert_eq!(
            ok(r#"{{ range split "," "a,b" }}{{ . }}{{ $.USER }} {{ end }}"#),
            "apilot bpilot "
        );
        assert_eq!(
            ok(r#"{{ with $x := "in" }}{{ $x }}{{ . }}{{ end }}"#),
            "inin"
        );
    }

    #[test]
    fn if_else_chains() {
        let src =
            "{{ if eq .COUNT \"1\" }}one{{ else if eq .COUNT \"3\" }}three{{ else }}other{{ end }}";
        assert_eq!(ok(src), "three");
        assert_eq!(
            ok("{{ if .UNSET }}a{{ else if .EMPTY }}b{{ else }}c{{ end }}"),
            "c"
        );
        assert_eq!(ok("{{ if .USER }}a{{ end }}"), "a");
        assert_eq!(ok("{{ if .UNSET }}a{{ end }}"), "");
        assert_eq!(
            ok("{{- if .USER -}}\n  yes\n{{- else -}}\n  no\n{{- end }}"),
            "yes"
        );
        err_at(
            "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
            1,
            "second {{else}}",
        );
        err_at("{{ if 1 }}{{ else 3 }}{{ end }}", 1, "after else");
    }

    #[test]
    fn truthiness() {
        for falsy in [
            "\"\"",
            "0",
            "0.0",
            "false",
            "(and nil 1)",
            "(split \",\" \"\")",
            ".UNSET",
            ".EMPTY",
        ] {
            assert_eq!(
                ok(&format!(
                    "{{{{ if {falsy} }}}}T{{{{ else }}}}F{{{{ end }}}}"
                )),
                "F",
                "{falsy}"
            );
        }
        for truthy in ["\"0\"", "1", "-1", "0.5", "true", "(loop 1)", ".USER", "."] {
            assert_eq!(
                ok(&format!(
                    "{{{{ if {truthy} }}}}T{{{{ else }}}}F{{{{ end }}}}"
                )),
                "T",
                "{truthy}"
            );
        }
    }

    #[test]
    fn range_forms() {
        assert_eq!(
            ok(r#"{{ range split "," "a,b,c" }}<{{ . }}>{{ end }}"#),
            "<a><b><c>"
        );
        assert_eq!(
            ok(r#"{{ range $v := split "," "a,b" }}{{ $v }}{{ . }}{{ end }}"#),
            "aabb"
        );
        assert_eq!(
            ok(r#"{{ range $i, $v := split "," "a,b" }}{{ $i }}={{ $v }};{{ end }}"#),
            "0=a;1=b;"
        );
        assert_eq!(
            ok(r#"{{ range split "," "" }}x{{ else }}empty{{ end }}"#),
            "empty"
        );
        assert_eq!(
            ok("{{ range .UNSET | split \",\" }}x{{ else }}none{{ end }}"),
            "none"
        );
        assert_eq!(ok("{{ range and nil 1 }}x{{ else }}nil{{ end }}"), "nil");
        let mut small = HashMap::new();
        small.insert("Z".to_string(), "26".to_string());
        small.insert("A".to_string(), "1".to_string());
        assert_eq!(
            render("{{ range $k, $v := . }}{{ $k }}={{ $v }},{{ end }}", &small).unwrap(),
            "A=1,Z=26,"
        );
        assert_eq!(
            render("{{ range . }}{{ . }},{{ end }}", &small).unwrap(),
            "1,26,"
        );
        // Nested ranges, with the outer element reached through a variable.
        let src = r#"{{ range $a := split "," "x,y" }}{{ range loop 2 }}{{ $a }}{{ . }} {{ end }}{{ end }}"#;
        assert_eq!(ok(src), "x0 x1 y0 y1 ");
        assert_eq!(
            ok("{{ range loop 10 }}{{ if eq . 3 }}{{ break }}{{ end }}{{ . }}{{ end }}"),
            "012"
        );
        assert_eq!(
            ok("{{ range loop 5 }}{{ if eq . 1 3 }}{{ continue }}{{ end }}{{ . }}{{ end }}"),
            "024"
        );
        err_at("{{ break }}", 1, "outside {{range}}");
        err_at(
            "{{ range loop 2 }}{{ else }}{{ continue }}{{ end }}",
            1,
            "outside {{range}}",
        );
        err_at("\n{{ range .USER }}{{ end }}", 2, "split");
        err_at("{{ range 3 }}{{ end }}", 1, "can't iterate");
        err_at("{{ range $a, $b = loop 2 }}{{ end }}", 1, ":=");
        err_at("{{ $a, $b := loop 2 }}", 1, "only range");
    }

    #[test]
    fn with_forms() {
        assert_eq!(ok("{{ with .USER }}<{{ . }}>{{ end }}"), "<pilot>");
        assert_eq!(
            ok("{{ with .UNSET }}<{{ . }}>{{ else }}none{{ end }}"),
            "none"
        );
        assert_eq!(
            ok("{{ with .UNSET }}a{{ else with .USER }}{{ . }}{{ end }}"),
            "pilot"
        );
        assert_eq!(
            ok("{{ with .UNSET }}a{{ else with .EMPTY }}b{{ else }}c{{ end }}"),
            "c"
        );
        err_at("{{ with .USER }}{{ .NAME }}{{ end }}", 1, "$.NAME");
    }

    #[test]
    fn parentheses_and_fields() {
        assert_eq!(
            ok(r#"{{ len (split "," (printf "%s,%s" "a" (print "b"))) }}"#),
            "2"
        );
        assert_eq!(ok(r#"{{ (index . "USER") }}"#), "pilot");
        assert_eq!(ok("{{ ($).USER }}"), "pilot");
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(50), ")".repeat(50));
        assert_eq!(ok(&deep), "1");
        err_at("{{ (1 }}", 1, "unclosed");
        err_at("{{ 1) }}", 1, ")");
        err_at("{{ .USER.X }}", 1, "field .X");
        err_at("{{ 1 2 }}", 1, "not a function");
        err_at("{{ (print $x := 1) }}", 1, "undefined variable $x");
        err_at("{{ ($x := 1) }}", 1, "parentheses");
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
        err_at("{{ 99999999999999999999 }}", 1, "too large");
        err_at("{{ nil }}", 1, "nil is not a command");
        err_at("{{ '' }}", 1, "character constant");
    }

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

    #[test]
    fn logic() {
        assert_eq!(
            ok("{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" \"x\" \"y\" }} [{{ or 0 \"\" }}]"),
            "0 2 x []"
        );
        assert_eq!(
            ok(r#"{{ or .UNSET "fallback" }} {{ .UNSET | or "piped" }}"#),
            "fallback piped"
        );
        // Short-circuit: the failing index is never evaluated.
        assert_eq!(
            ok(
                r#"{{ and false (index (split "," "a") 5) }} {{ or true (index (split "," "a") 5) }}"#
            ),
            "false true"
        );
        assert_eq!(
            ok(r#"{{ not "" }} {{ not 1 }} {{ not .USER }}"#),
            "true false false"
        );
        err_at("{{ and }}", 1, "and: wrong number of arguments");
        err_at("{{ not 1 2 }}", 1, "want 1, got 2");
    }

    #[test]
    fn errors_name_the_line() {
        err_at("a\nb\n{{ nofn 1 }}", 3, "unknown function \"nofn\"");
        err_at("a\n{{ .A", 2, "unclosed action");
        err_at("{{ if 1 }}\n\n{{ end }}{{ end }}", 3, "{{end}} without");
        err_at("x\n{{ if 1 }}\nabc", 2, "{{if}} has no matching {{end}}");
        err_at(
            "{{ range loop 2 }}\n{{ else }}\n",
            1,
            "{{range}} has no matching {{end}}",
        );
        err_at("\n\n{{ $y }}", 3, "undefined variable $y");
        err_at(
            "\n\n\n{{ split \",\" }}",
            4,
            "split: wrong number of arguments: want 2, got 1",
        );
        err_at("{{ print\n 1\n nofn }}", 3, "nofn");
        err_at("\n{{ else }}", 2, "{{else}} outside");
        err_at("{{ define \"x\" }}{{ end }}", 1, "not supported");
        err_at("{{ }}", 1, "empty action");
        err_at("{{ print if }}", 1, "keyword");
        err_at("{{ $x := 1 }}\n{{ $x.A }}", 2, "field .A");
        err_at("{{ @ }}", 1, "unexpected '@'");
        err_at("{{ $x : 1 }}", 1, "':'");
        let e = err("\n{{ nofn }}");
        assert_eq!(e.to_string(), "line 2: unknown function \"nofn\"");
    }

    #[test]
    fn limits() {
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(150), ")".repeat(150));
        err_at(&deep, 1, "nested more than 100");
        err_at(
            r#"{{ printf "%100000v" (loop 1000000) }}"#,
            1,
            "larger than 16 MiB",
        );
        let very_deep = format!("{{{{ {}1 }}}}", "(".repeat(100_000));
        err_at(&very_deep, 1, "nested more than 100");
        let ifs = "{{ if 1 }}".repeat(1000) + &"{{ end }}".repeat(1000);
        err_at(&ifs, 1, "nested more than 100");
        err_at(
            "{{ range loop 1000000 }}{{ printf \"%100000s\" \"\" }}{{ end }}",
            1,
            "larger than 16 MiB",
        );
        err_at(
            "{{ $s := \"xx\" }}{{ range loop 40 }}{{ $s = printf \"%s%s\" $s $s }}{{ end }}",
            1,
            "larger than 16 MiB",
        );
        err_at(
            r#"{{ $s := printf "%99999s" "" }}{{ replaceAll " " $s $s }}"#,
            1,
            "larger than",
        );
        let busy = "{{ range loop 1000000 }}{{ range loop 1000000 }}{{ end }}{{ end }}";
        err_at(busy, 1, "too much work");
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len())]
        }
    }

    /// Random and truncated inputs must give Ok or Err, never a panic.
    #[test]
    fn fuzz_never_panics() {
        // Words of actions; "·" stands for a space inside one word.
        const WORDS: &str = r#"if else end range with break continue $x := = $x $ $i, $v .NAME .COUNT
            . .A.B $.NAME | ( ) "s" "%d·%s·%v·%q·%5.2f·%x·%" `r` 'c' ' ` " 1 -2 3.5 0x 1e printf split
            "," join loop 3 index len eq ne lt gt and or not default env print println regexReplaceAll
            "(a+)" "$1" "(" replaceAll nil true false /* */ , \\ é { } $y define"#;
        let words: Vec<String> = WORDS
            .split_whitespace()
            .map(|w| w.replace('·', " "))
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let env = env();
        for _ in 0..20_000 {
            let mut src = String::new();
            for _ in 0..1 + rng.below(8) {
                match rng.below(4) {
                    0 => src.push_str(rng.pick(&["x", "\n", "  ", "é", "{", "}", "{{", "}}"])),
                    1 => src.push_str(rng.pick(&words)),
                    _ => {
                        src.push_str(rng.pick(&["{{ ", "{{- ", "{{"]));
                        for _ in 0..1 + rng.below(5) {
                            src.push_str(rng.pick(&words));
                            src.push(' ');
                        }
                        src.push_str(rng.pick(&["}}", "-}}", ""]));
                    }
                }
            }
            check_no_panic(&src, &env);
        }
        // Well-formed templates reach the evaluator with random argument types.
        for _ in 0..3_000 {
            let src = gen_nodes(&mut rng, 3);
            check_no_panic(&src, &env);
        }
        let sample = r#"{{ $x := .NAME | default "d" -}}
{{ range $i, $v := split "," "a,b" }}{{ if eq $i 0 }}{{ $v }}{{ else if $x }}{{ printf "%q" $v }}{{ end }}{{ end }}
{{- with env (printf "%s_HOST" .PREFIX) }}{{ . }}{{ else }}none{{ end }} {{/* c */}} `raw` 'a' 0x1f"#;
        for end in 0..=sample.len() {
            if sample.is_char_boundary(end) {
                check_no_panic(&sample[..end], &env);
            }
        }
    }

    fn gen_expr(rng: &mut Rng, depth: usize) -> String {
        const ATOMS: &[&str] = &[
            ".NAME",
            ".COUNT",
            ".UNSET",
            "$",
            ".",
            r#""a,b""#,
            r#""""#,
            "3",
            "-1",
            "0",
            "2.5",
            "true",
            "nil",
            "`x`",
            r#""%d %s %v %q %5.2f %x %c %e""#,
            r#""(a)""#,
            r#""$1""#,
        ];
        const FUNCS: &[&str] = &[
            "default",
            "env",
            "split",
            "join",
            "replaceAll",
            "regexReplaceAll",
            "loop",
            "printf",
            "print",
            "println",
            "len",
            "index",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "and",
            "or",
            "not",
        ];
        if depth == 0 || rng.below(3) == 0 {
            return rng.pick(ATOMS).to_string();
        }
        let mut e = format!("({}", rng.pick(FUNCS));
        for _ in 0..rng.below(4) {
            e.push(' ');
            e.push_str(&gen_expr(rng, depth - 1));
        }
        e.push(')');
        e
    }

    fn gen_nodes(rng: &mut Rng, depth: usize) -> String {
        let mut out = String::new();
        for _ in 0..1 + rng.below(4) {
            let e = gen_expr(rng, 3);
            let inner = |rng: &mut Rng| {
                if depth == 0 {
                    "t".to_string()
                } else {
                    gen_nodes(rng, depth - 1)
                }
            };
            let node = match rng.below(6) {
                0 => "t\n".to_string(),
                1 => format!("{{{{- {e} -}}}}"),
                2 => format!(
                    "{{{{ if {e} }}}}{}{{{{ else }}}}{}{{{{ end }}}}",
                    inner(rng),
                    inner(rng)
                ),
                3 => format!(
                    "{{{{ range $i, $v := {e} }}}}{{{{ $v }}}}{}{{{{ else }}}}{}{{{{ end }}}}",
                    inner(rng),
                    inner(rng)
                ),
                4 => format!("{{{{ with {e} }}}}{{{{ . }}}}{}{{{{ end }}}}", inner(rng)),
                _ => format!("{{{{ $x := {e} }}}}{{{{ $x }}}}"),
            };
            out.push_str(&node);
        }
        out
    }

    fn check_no_panic(src: &str, env: &HashMap<String, String>) {
        let result = std::panic::catch_unwind(|| render(src, env));
        assert!(result.is_ok(), "render panicked on {src:?}");
    }

    fn corpus_dir() -> Option<PathBuf> {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let candidates = std::env::var_os("CONTAINERPILOT_CORPUS")
            .map(PathBuf::from)
            .into_iter()
            .chain([
                manifest.join("../shared/corpus"),
                manifest.join("../../shared/corpus"),
            ]);
        candidates
            .into_iter()
            .find(|p| p.join("manifest.json").is_file())
    }

    /// Every real-world config in the corpus renders, with its suggested
    /// environment and with none (both branches of every `if`).
    #[test]
    fn corpus_renders() {
        let Some(dir) = corpus_dir() else {
            eprintln!(
                "SKIP: corpus not found (set CONTAINERPILOT_CORPUS to the shared/corpus directory)"
            );
            return;
        };
        let text =
            std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json is readable");
        let manifest: serde_json::Value =
            serde_json::from_str(&text).expect("manifest.json is JSON");
        let entries = manifest.as_array().expect("manifest.json is a list");
        let mut rendered = 0;
        for entry in entries {
            let file = entry["file"].as_str().expect("entry has a file");
            let src = std::fs::read_to_string(dir.join(file)).expect("corpus file is readable");
            let suggested: HashMap<String, String> = entry["suggest_env"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            for env in [&suggested, &HashMap::new()] {
                if let Err(e) = render(&src, env) {
                    panic!("{file} with env {env:?}: {e}");
                }
            }
            rendered += 1;
        }
        assert!(rendered >= 120, "only {rendered} corpus files");

        let read =
            |name: &str| std::fs::read_to_string(dir.join("v3").join(name)).expect("corpus file");
        let suggested = |name: &str| -> HashMap<String, String> {
            let entry = entries
                .iter()
                .find(|e| e["file"] == format!("v3/{name}"))
                .expect("in manifest");
            let o = entry["suggest_env"].as_object().expect("suggest_env");
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        };

        let name = "kieranajp__colossal__etc_containerpilot.json5";
        let out = render(&read(name), &suggested(name)).expect("renders");
        assert!(out.contains("name: \"reload-service-name-0\""), "{out}");
        assert!(
            out.contains("\"-encrypt=pUqJrVyVRj5jsiYEkM/tFQ====\""),
            "{out}"
        );
        assert!(out.contains("interfaces: [ \"eth0\",  ]"), "{out}");
        assert!(out.contains("name: \"term-prestart\""), "{out}");
        assert!(out.contains("interval: 10\n"), "{out}");
        assert!(
            !out.contains("reload-\""),
            "services without a name are skipped: {out}"
        );

        let name = "autopilotpattern__mysql__etc_containerpilot.json5";
        let out = render(&read(name), &HashMap::new()).expect("renders");
        assert!(out.contains("consul"), "default applies when unset: {out}");
        assert!(!out.contains("{{"), "{out}");
    }
}
