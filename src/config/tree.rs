//! JSON5 text → an ordered tree that keeps duplicate keys, so validation can
//! warn about them and about unknown keys with their full path (SPEC §2.1.3).
//!
//! The grammar is the `json5` crate's; this module adds what a config loader
//! needs around it:
//! - a lexical pre-scan that refuses nesting deeper than [`MAX_DEPTH`] before
//!   the recursive parser can overflow the stack on hostile input, and that
//!   says "config is empty" / "expected '{'" for files that are not a JSON5
//!   object at all;
//! - errors as `line:col: message`, the offending line and a caret, with the
//!   crate's terse messages reworded for people (`expected comma` becomes
//!   "expected ',' or '}' after object member").

use std::fmt;

use json5::{ErrorCode, Position};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A parsed JSON5 value. Objects keep every (key, value) pair in file order,
/// duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    /// Integers that fit are kept exactly; everything else as f64.
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// Deeper nesting is refused. Real configs use 4 or 5 levels; the limit only
/// has to keep the recursive parser far from the end of a thread's stack.
pub const MAX_DEPTH: usize = 100;

/// Lines longer than this are shown as a window around the error column.
const MAX_SHOWN: usize = 100;

/// Parse JSON5; on error return a message with `line:col`, the offending line and a caret.
pub fn parse(text: &str) -> Result<Node, String> {
    let scan = Scan::run(text, text.len());
    if let Some(at) = scan.too_deep {
        let msg = format!("nesting deeper than {MAX_DEPTH} levels of objects and arrays");
        return Err(located(text, Position::from_offset(at, text), &msg));
    }
    let Some((first, c)) = scan.first else {
        return Err("config is empty (nothing but whitespace and comments)".into());
    };
    if c != '{' {
        let msg = "expected '{': the config must be a JSON5 object";
        return Err(located(text, Position::from_offset(first, text), msg));
    }
    json5::from_str::<Node>(text).map_err(|e| describe(text, &e))
}

impl Node {
    /// The last value given for `key` in an object (`None` for other kinds);
    /// see [`lookup`].
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(pairs) => lookup(pairs, key),
            _ => None,
        }
    }

    /// The JSON type name, for "must be X, got Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "boolean",
            Node::Int(_) => "integer",
            Node::Float(_) => "number",
            Node::Str(_) => "string",
            Node::Array(_) => "array",
            Node::Object(_) => "object",
        }
    }
}

/// The last value given for `key` among an object's pairs (later duplicates
/// win); `null` counts as absent (a Go zero value).
pub fn lookup<'n>(pairs: &'n [(String, Node)], key: &str) -> Option<&'n Node> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .filter(|v| !matches!(v, Node::Null))
}

// ---------------------------------------------------------------------------
// serde: any JSON5 value → Node, keeping duplicate keys.

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON5 value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Node::Int(i),
            Err(_) => Node::Float(v as f64),
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        // Growth leaves up to half of a large list unused; a config of many
        // small values would otherwise cost half as much again.
        items.shrink_to_fit();
        Ok(Node::Array(items))
    }

    /// Every pair in file order: a derived struct would reject duplicate
    /// keys, but `MapAccess` itself hands each one over.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut pairs = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Node>()? {
            pairs.push((k, v));
        }
        pairs.shrink_to_fit();
        Ok(Node::Object(pairs))
    }
}

// ---------------------------------------------------------------------------
// Lexical pre-scan.

/// What a pass over strings, comments and brackets finds, without parsing.
struct Scan {
    /// The first character that is neither whitespace nor inside a comment.
    first: Option<(usize, char)>,
    /// Offset of the bracket that opens level `MAX_DEPTH + 1`.
    too_deep: Option<usize>,
    /// Brackets still open where the scan stopped, innermost last.
    open: Vec<(usize, char)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Lex {
    Code,
    Str(char),
    LineComment,
    BlockComment,
}

impl Scan {
    /// Scan `text[..stop]`. Strings end at their quote or at a line break (the
    /// parser rejects the latter anyway; ending there keeps the scan in step).
    fn run(text: &str, stop: usize) -> Scan {
        let mut scan = Scan {
            first: None,
            too_deep: None,
            open: Vec::new(),
        };
        let mut state = Lex::Code;
        let mut chars = text[..stop.min(text.len())].char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match state {
                Lex::Code => match c {
                    '/' if matches!(chars.peek(), Some((_, '/'))) => {
                        chars.next();
                        state = Lex::LineComment;
                    }
                    '/' if matches!(chars.peek(), Some((_, '*'))) => {
                        chars.next();
                        state = Lex::BlockComment;
                    }
                    _ if json5::char::is_json5_whitespace(c) => {}
                    _ => {
                        scan.first.get_or_insert((i, c));
                        match c {
                            '"' | '\'' => state = Lex::Str(c),
                            '{' | '[' => {
                                if scan.open.len() == MAX_DEPTH {
                                    scan.too_deep = Some(i);
                                    return scan;
                                }
                                scan.open.push((i, c));
                            }
                            '}' | ']' => {
                                scan.open.pop();
                            }
                            _ => {}
                        }
                    }
                },
                Lex::Str(quote) => match c {
                    '\\' => {
                        chars.next();
                    }
                    '\n' | '\r' => state = Lex::Code,
                    _ if c == quote => state = Lex::Code,
                    _ => {}
                },
                Lex::LineComment => {
                    if json5::char::is_json5_line_terminator(c) {
                        state = Lex::Code;
                    }
                }
                Lex::BlockComment => {
                    if c == '*' && matches!(chars.peek(), Some((_, '/'))) {
                        chars.next();
                        state = Lex::Code;
                    }
                }
            }
        }
        scan
    }
}

// ---------------------------------------------------------------------------
// Error messages.

/// Reword a `json5` error and place it.
fn describe(text: &str, e: &json5::Error) -> String {
    let code = e.code();
    if code.is_some_and(is_eof) {
        return eof_error(text, code);
    }
    let pos = e.position().unwrap_or_else(|| end_of_content(text));
    let msg = match code {
        Some(ErrorCode::ExpectedComma) => {
            let offset = offset_of(text, pos);
            let innermost = Scan::run(text, offset).open.last().map(|(_, c)| *c);
            let mut msg = match innermost {
                Some('[') => "expected ',' or ']' after array element".to_string(),
                _ => "expected ',' or '}' after object member".to_string(),
            };
            if starts_line(text, pos) {
                msg.push_str(" (is a comma missing at the end of the previous line?)");
            }
            msg
        }
        Some(code) => reword(code).to_string(),
        None => {
            // The crate's own "custom" errors: number conversions.
            format!("invalid value: {}", strip_position(&e.to_string()))
        }
    };
    located(text, pos, &msg)
}

fn reword(code: ErrorCode) -> &'static str {
    use ErrorCode::*;
    match code {
        ExpectedColon => "expected ':' after the key",
        ExpectedIdentifier | InvalidKey => "expected a key (a name or a quoted string)",
        ExpectedValue | ExpectedNull | ExpectedBool | ExpectedNumber => {
            "expected a value (string, number, object, array, true, false or null); text must be quoted"
        }
        ExpectedString => "expected a quoted string",
        ExpectedStringOrObject => "expected a string or an object",
        ExpectedClosingBrace => "expected '}'",
        ExpectedClosingBracket => "expected ']'",
        ExpectedOpeningBrace => "expected '{'",
        ExpectedOpeningBracket => "expected '['",
        ExpectedComment => "a '/' outside a string must start a comment (// or /* */)",
        ExpectedComma => "expected ','",
        LineTerminatorInString => {
            "line break inside a string (is the closing quote missing? a string cannot span lines)"
        }
        InvalidEscapeSequence => "invalid escape sequence in string",
        InvalidBytes => "invalid bytes",
        LeadingZero => "a number cannot start with 0 (octal is not allowed)",
        OverflowParsingNumber => "number too large",
        TrailingCharacters => "unexpected text after the end of the top-level object",
        _ => "unexpected end of file",
    }
}

fn is_eof(code: ErrorCode) -> bool {
    use ErrorCode::*;
    matches!(
        code,
        EofParsingArray
            | EofParsingBool
            | EofParsingComment
            | EofParsingEscapeSequence
            | EofParsingIdentifier
            | EofParsingNull
            | EofParsingNumber
            | EofParsingObject
            | EofParsingString
            | EofParsingValue
    )
}

/// The crate attaches EOF errors to the innermost opening bracket; point at
/// the end instead and say which bracket is still open.
fn eof_error(text: &str, code: Option<ErrorCode>) -> String {
    let pos = end_of_content(text);
    let msg = match code {
        Some(ErrorCode::EofParsingString | ErrorCode::EofParsingEscapeSequence) => {
            "unexpected end of file inside a string (missing closing quote?)".to_string()
        }
        Some(ErrorCode::EofParsingComment) => {
            "unexpected end of file inside a /* comment */".to_string()
        }
        _ => match Scan::run(text, text.len()).open.last() {
            Some(&(at, c)) => {
                let p = Position::from_offset(at, text);
                format!(
                    "unexpected end of file: the '{c}' at {}:{} is never closed",
                    p.line + 1,
                    p.column + 1
                )
            }
            None => "unexpected end of file".to_string(),
        },
    };
    located(text, pos, &msg)
}

/// Just after the last non-whitespace character.
fn end_of_content(text: &str) -> Position {
    let trimmed = text.trim_end_matches(json5::char::is_json5_whitespace);
    Position::from_offset(trimmed.len(), text)
}

/// `json5` appends " at line L column C" to its Display; we place errors ourselves.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// The lines as `json5::Position` counts them: `\n`, `\r`, `\r\n`, U+2028, U+2029.
fn lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if json5::char::is_json5_line_terminator(c) {
            out.push(&text[start..i]);
            if c == '\r' && matches!(chars.peek(), Some((_, '\n'))) {
                chars.next();
                start = i + 2;
            } else {
                start = i + c.len_utf8();
            }
        }
    }
    out.push(&text[start..]);
    out
}

/// Byte offset of a position (the inverse of `Position::from_offset`).
fn offset_of(text: &str, pos: Position) -> usize {
    let mut line = 0;
    let mut column = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if line == pos.line && column == pos.column {
            return i;
        }
        if json5::char::is_json5_line_terminator(c) {
            if c == '\r' && matches!(chars.peek(), Some((_, '\n'))) {
                chars.next();
            }
            line += 1;
            column = 0;
        } else {
            column += 1;
        }
    }
    text.len()
}

/// Only whitespace precedes the position on its line.
fn starts_line(text: &str, pos: Position) -> bool {
    lines(text).get(pos.line).is_some_and(|l| {
        l.chars()
            .take(pos.column)
            .all(json5::char::is_json5_whitespace)
    })
}

/// `L:C: message`, then the line and a caret under the column (1-based in the text).
fn located(text: &str, pos: Position, msg: &str) -> String {
    let all = lines(text);
    let line: Vec<char> = all.get(pos.line).copied().unwrap_or("").chars().collect();
    let col = pos.column.min(line.len());
    // A window around the column for very long lines (a minified config).
    let (from, to) = if line.len() > MAX_SHOWN {
        let from = col.saturating_sub(MAX_SHOWN / 2);
        (from, (from + MAX_SHOWN).min(line.len()))
    } else {
        (0, line.len())
    };
    let mut shown = String::new();
    let mut caret = String::new();
    if from > 0 {
        shown.push_str("...");
        caret.push_str("   ");
    }
    for (i, &c) in line[from..to].iter().enumerate() {
        // Control characters (binary junk) would garble the terminal.
        let c = if c.is_control() && c != '\t' { '?' } else { c };
        shown.push(c);
        if from + i < col {
            // Copy tabs so the caret lines up however wide the terminal draws them.
            caret.push(if c == '\t' { '\t' } else { ' ' });
        }
    }
    if to < line.len() {
        shown.push_str("...");
    }
    caret.push('^');
    format!(
        "{}:{}: {msg}\n{shown}\n{caret}",
        pos.line + 1,
        pos.column + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: &[(&str, Node)]) -> Node {
        Node::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("should fail")
    }

    /// The `L:C` prefix of an error.
    fn at(text: &str) -> String {
        let e = err(text);
        e.split(": ").next().unwrap_or("").to_string()
    }

    #[test]
    fn values_of_every_kind() {
        let n = parse(
            r#"{
              // comment
              a: null, b: true, c: -3, d: 1.5, e: 'single', "f": "double",
              g: [1, 'x', {}], h: {i: 0x10}, j: 18446744073709551615, k: +Infinity,
              /* block */ l: .5,
            }"#,
        )
        .expect("parses");
        let Node::Object(pairs) = n else {
            panic!("not an object")
        };
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("a"), Some(Node::Null));
        assert_eq!(get("b"), Some(Node::Bool(true)));
        assert_eq!(get("c"), Some(Node::Int(-3)));
        assert_eq!(get("d"), Some(Node::Float(1.5)));
        assert_eq!(get("e"), Some(Node::Str("single".into())));
        assert_eq!(get("f"), Some(Node::Str("double".into())));
        assert_eq!(
            get("g"),
            Some(Node::Array(vec![
                Node::Int(1),
                Node::Str("x".into()),
                Node::Object(vec![])
            ]))
        );
        assert_eq!(get("h"), Some(obj(&[("i", Node::Int(16))])));
        // Too big for i64: kept as a float.
        assert_eq!(get("j"), Some(Node::Float(18446744073709551615.0)));
        assert_eq!(get("k"), Some(Node::Float(f64::INFINITY)));
        assert_eq!(get("l"), Some(Node::Float(0.5)));
    }

    #[test]
    fn i64_bounds_stay_integers() {
        assert_eq!(
            parse("{a: 9223372036854775807, b: -9223372036854775808}"),
            Ok(obj(&[
                ("a", Node::Int(i64::MAX)),
                ("b", Node::Int(i64::MIN))
            ]))
        );
    }

    #[test]
    fn duplicate_keys_are_kept_in_order() {
        assert_eq!(
            parse("{a: 1, b: 2, a: 3}"),
            Ok(obj(&[
                ("a", Node::Int(1)),
                ("b", Node::Int(2)),
                ("a", Node::Int(3))
            ]))
        );
    }

    #[test]
    fn empty_and_comment_only_files() {
        for text in ["", "   \n\t ", "// nothing\n/* at all */\n"] {
            assert!(err(text).contains("config is empty"), "{text:?}");
        }
    }

    #[test]
    fn top_level_must_be_an_object() {
        for text in ["[1, 2]", "\"string\"", "42", "null", "  hello"] {
            let e = err(text);
            assert!(e.contains("must be a JSON5 object"), "{text:?}: {e}");
            assert!(e.starts_with("1:"), "{e}");
        }
        assert!(at("\n\n  [1]").starts_with("3:3"));
    }

    #[test]
    fn missing_comma_in_object() {
        let text = "{\n  jobs: [],\n  consul: \"x\"\n  logging: {}\n}";
        let e = err(text);
        assert_eq!(
            e,
            "4:3: expected ',' or '}' after object member \
             (is a comma missing at the end of the previous line?)\n  logging: {}\n  ^"
        );
    }

    #[test]
    fn missing_comma_in_array() {
        let e = err("{a: [1 2]}");
        assert!(
            e.starts_with("1:8: expected ',' or ']' after array element\n"),
            "{e}"
        );
        // An object nested in an array: the innermost bracket decides.
        let e = err("{a: [{b: 1} {c: 2}]}");
        assert!(e.contains("after array element"), "{e}");
        let e = err("{a: [{b: 1 c: 2}]}");
        assert!(e.contains("after object member"), "{e}");
    }

    #[test]
    fn caret_copies_tabs() {
        let e = err("{\n\t\ta: 1\n\t\tb: 2\n}");
        assert!(e.ends_with("\n\t\tb: 2\n\t\t^"), "{e:?}");
        assert!(e.starts_with("3:3:"), "{e}");
    }

    #[test]
    fn other_messages_are_reworded() {
        assert!(err("{a 1}").contains("expected ':' after the key"));
        assert!(err("{a: never}").contains("text must be quoted"));
        assert!(err("{a: 'x\n'}").contains("line break inside a string"));
        assert!(err("{a: 01}").contains("cannot start with 0"));
        assert!(err("{a: 1} x").contains("after the end of the top-level object"));
        assert!(err("{a: 1,, b: 2}").contains("expected a key"));
        assert!(err("{a: '\\1'}").contains("invalid escape"));
        assert!(err("{a: 1.2.3}").starts_with("1:5: invalid value:"));
    }

    #[test]
    fn truncated_files_point_at_the_end() {
        let e = err("{\n  jobs: [\n    {name: 'a',");
        assert!(
            e.starts_with("3:16: unexpected end of file: the '{' at 3:5 is never closed"),
            "{e}"
        );
        let e = err("{a: 'abc");
        assert!(e.contains("inside a string"), "{e}");
        let e = err("{a: 1 /* never closed");
        assert!(e.contains("comment"), "{e}");
        let e = err("{a: [1, 2,\n\n");
        assert!(
            e.starts_with("1:11: unexpected end of file: the '[' at 1:5"),
            "{e}"
        );
        // Cut at every byte of a real config: always an error, never a panic.
        let full = "{\n  consul: 'localhost:8500',\n  jobs: [{name: \"app\", exec: ['/bin/app', \"-x\"], port: 80,\n health: {interval: 5, ttl: 10}}], // done\n}\n";
        for cut in 0..full.len() {
            if full.is_char_boundary(cut) {
                let _ = parse(&full[..cut]);
            }
        }
        assert!(parse(full).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = format!("{{a: {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let e = err(&deep);
        // The top-level object is level 1, so the 100th '[' is level 101.
        assert!(
            e.starts_with("1:104: nesting deeper than 100"),
            "{}",
            &e[..80]
        );
        // Long lines are shown as a window.
        let shown = e.lines().nth(1).expect("line shown");
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.starts_with("...["), "{shown}");
        // Unclosed too.
        assert!(err(&"{a:[".repeat(50_000)).contains("nesting deeper"));
        // Exactly at the limit is fine.
        let ok = format!("{{a: {}{}}}", "[".repeat(99), "]".repeat(99));
        assert!(parse(&ok).is_ok());
        // Brackets inside strings and comments do not count.
        let quoted = format!(
            "{{a: '{}', /* {} */ b: 1}}",
            "[".repeat(500),
            "{".repeat(500)
        );
        assert!(parse(&quoted).is_ok());
    }

    #[test]
    fn long_line_window_keeps_the_caret_on_the_column() {
        let text = format!("{{a: 1, {} b 2}}", "x: 1, ".repeat(100).trim_end());
        let e = err(&text);
        let mut it = e.lines();
        let head = it.next().expect("head");
        let shown = it.next().expect("line");
        let caret = it.next().expect("caret");
        assert!(head.contains("expected ':'"), "{head}");
        let col = caret.len() - 1;
        assert_eq!(&shown[col..col + 1], "2", "{shown}\n{caret}");
        // The start of the line is cut off, the end fits.
        assert!(shown.starts_with("..."), "{shown}");
    }

    #[test]
    fn binary_junk_and_control_characters() {
        let junk: String = (0u8..=255).map(char::from).cycle().take(5000).collect();
        let e = err(&junk);
        assert!(e.contains("must be a JSON5 object"), "{e}");
        let e = err("{a: 1 \u{1}\u{7}}");
        assert!(!e.contains('\u{7}'), "{e:?}");
        let e = err("{\u{0}}");
        assert!(e.starts_with("1:2:"), "{e:?}");
    }

    #[test]
    fn big_file_parses() {
        let mut text = String::from("{jobs: [");
        while text.len() < 10 * 1024 * 1024 {
            text.push_str("{name: 'job', exec: ['/bin/x', 'a b c'], when: {interval: '1s'}},\n");
        }
        text.push_str("]}");
        let Ok(Node::Object(pairs)) = parse(&text) else {
            panic!("big file should parse")
        };
        assert_eq!(pairs.len(), 1);
        // And an error at the very end of it is still located.
        text.push('x');
        assert!(err(&text).contains("after the end"));
    }

    #[test]
    fn crlf_and_unicode_line_separators() {
        let e = err("{\r\n a: 1\r\n b: 2\r\n}");
        assert!(e.starts_with("3:2:"), "{e}");
        assert!(e.contains("\n b: 2\n ^"), "{e:?}");
        // Columns count characters, not bytes.
        let e = err("{a: 'é', b 1}");
        assert!(e.starts_with("1:12:"), "{e}");
        assert!(e.ends_with("\n           ^"), "{e:?}");
    }

    #[test]
    fn offset_and_position_agree() {
        let text = "{\r\n\tab: 'é',\u{2028} c: 1\n}";
        for (i, _) in text.char_indices() {
            let p = Position::from_offset(i, text);
            let back = offset_of(text, p);
            // A CRLF pair is one line break: its '\n' already starts the next line.
            let b = text.as_bytes();
            let lf_of_crlf = b[i] == b'\n' && i > 0 && b[i - 1] == b'\r';
            assert!(back == i || (lf_of_crlf && back == i + 1), "{i} -> {back}");
        }
    }
}
