//! Stage 2: builds the tree from the lexer's items. Like Go, it rejects
//! unknown functions, undefined variables and misplaced keywords before
//! anything runs, and it caps nesting so deep input is an error, not a stack
//! overflow.

use std::collections::HashMap;

use super::funcs::is_function;
use super::lex::{Item, Tok, Token};
use super::{braces, fail, TemplateError, Value, MAX_DEPTH};

#[derive(Debug)]
pub(super) enum Node {
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
    /// `{{template "name" pipeline}}`, and where a `{{block}}` stands.
    Template {
        name: String,
        pipe: Option<Pipeline>,
        line: usize,
    },
}

/// The templates of one file by name: the file itself is `""` (as
/// ContainerPilot names it), the others come from `{{define}}` and
/// `{{block}}`.
pub(super) type Templates = HashMap<String, Vec<Node>>;

#[derive(Debug)]
pub(super) struct Control {
    /// One for `with` and `range`; an `if` has one more per `{{else if}}`,
    /// and the first whose pipeline is true runs. Go nests each `else if`
    /// inside the previous `else`; a flat list behaves the same (the arms'
    /// variables stay in scope for the later arms) without a level of
    /// nesting per arm.
    pub(super) arms: Vec<Arm>,
    /// The `{{else}}` branch.
    pub(super) alt: Vec<Node>,
    pub(super) line: usize,
}

#[derive(Debug)]
pub(super) struct Arm {
    pub(super) pipe: Pipeline,
    pub(super) body: Vec<Node>,
}

#[derive(Debug)]
pub(super) struct Pipeline {
    pub(super) line: usize,
    pub(super) decl: Vec<String>,
    /// `$x = ...` sets an existing variable; `$x := ...` declares one.
    pub(super) assign: bool,
    pub(super) cmds: Vec<Cmd>,
}

/// One stage of a pipeline. Only a function takes arguments or a piped value.
#[derive(Debug)]
pub(super) struct Cmd {
    pub(super) line: usize,
    pub(super) head: Expr,
    pub(super) args: Vec<Expr>,
}

#[derive(Debug)]
pub(super) enum Expr {
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
    Template,
}

impl Ctx {
    fn name(self) -> &'static str {
        match self {
            Ctx::Action => "action",
            Ctx::If => "if",
            Ctx::With => "with",
            Ctx::Range => "range",
            Ctx::Paren => "parentheses",
            Ctx::Template => "template",
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

/// The quoted name after `define`, `template` or `block`.
fn template_name(c: &mut Cursor, keyword: &str) -> Result<String, TemplateError> {
    let line = c.line();
    match c.next().map(|t| t.tok) {
        Some(Tok::Lit(Value::Str(name))) => Ok(name),
        Some(t) => fail(
            line,
            format!(
                "unexpected {} in {} clause: want a quoted name",
                tok_desc(&t),
                keyword
            ),
        ),
        None => fail(line, format!("missing name in {} clause", keyword)),
    }
}

/// Go's `IsEmptyTree`: nothing but blank text (comments are already gone).
fn is_empty(nodes: &[Node]) -> bool {
    nodes
        .iter()
        .all(|n| matches!(n, Node::Text { text, .. } if text.trim().is_empty()))
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

pub(super) fn expr_desc(e: &Expr) -> String {
    match e {
        Expr::Lit(v) => v.describe(),
        Expr::Dot => "\".\"".into(),
        Expr::Var(n) => n.clone(),
        Expr::Func(n) => n.clone(),
        Expr::Paren(_) => "a parenthesized pipeline".into(),
        Expr::Field(_, names) => format!("field .{}", names.join(".")),
    }
}

pub(super) struct Parser {
    items: std::vec::IntoIter<Item>,
    /// Variables in scope, innermost last; `$` is the root data.
    vars: Vec<String>,
    depth: usize,
    ranges: usize,
    /// Inside a `{{define}}` or `{{block}}` body, where Go allows no
    /// `{{define}}`.
    defining: bool,
    templates: Templates,
}

impl Parser {
    pub(super) fn new(items: Vec<Item>) -> Parser {
        Parser {
            items: items.into_iter(),
            vars: vec!["$".to_string()],
            depth: 0,
            ranges: 0,
            defining: false,
            templates: Templates::new(),
        }
    }

    pub(super) fn parse(mut self) -> Result<Templates, TemplateError> {
        let (nodes, stop) = self.list()?;
        match stop {
            Stop::Eof => {
                self.add(String::new(), nodes, 1)?;
                Ok(self.templates)
            }
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
                "define" => {
                    if self.depth > 0 || self.defining {
                        return fail(
                            line,
                            "{{define}} must be at the top level, outside other actions",
                        );
                    }
                    let name = template_name(&mut c, "define")?;
                    c.expect_end("define")?;
                    self.definition(name, line)?;
                    continue;
                }
                "template" => {
                    let name = template_name(&mut c, "template")?;
                    let pipe = match c.peek() {
                        None => None,
                        Some(_) => Some(self.pipeline(&mut c, Ctx::Template)?),
                    };
                    Node::Template { name, pipe, line }
                }
                // `{{block "name" pipeline}}body{{end}}` defines "name" and
                // runs it here.
                _ => {
                    let name = template_name(&mut c, "block")?;
                    let pipe = self.pipeline(&mut c, Ctx::Template)?;
                    self.definition(name.clone(), line)?;
                    Node::Template {
                        name,
                        pipe: Some(pipe),
                        line,
                    }
                }
            };
            nodes.push(node);
        }
        Ok((nodes, Stop::Eof))
    }

    /// A `{{define}}` or `{{block}}` body up to its `{{end}}`: a template of
    /// its own, which sees no variables but `$`.
    fn definition(&mut self, name: String, line: usize) -> Result<(), TemplateError> {
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let ranges = std::mem::take(&mut self.ranges);
        let defining = std::mem::replace(&mut self.defining, true);
        let body = self.list();
        self.vars = vars;
        self.ranges = ranges;
        self.defining = defining;
        match body? {
            (body, Stop::End(_)) => self.add(name, body, line),
            (_, Stop::Else { line, .. }) => {
                fail(line, "{{else}} outside {{if}}, {{range}} or {{with}}")
            }
            (_, Stop::Eof) => fail(
                line,
                format!("{{{{define}}}} of {name:?} has no matching {{{{end}}}}"),
            ),
        }
    }

    /// Go's rule for a name defined twice: an empty body gives way to the
    /// other one; two non-empty bodies are an error.
    fn add(&mut self, name: String, body: Vec<Node>, line: usize) -> Result<(), TemplateError> {
        match self.templates.get(&name) {
            Some(old) if !is_empty(old) => {
                if is_empty(&body) {
                    Ok(())
                } else {
                    fail(
                        line,
                        format!("template: multiple definition of template {name:?}"),
                    )
                }
            }
            _ => {
                self.templates.insert(name, body);
                Ok(())
            }
        }
    }

    /// `if`, `with` or `range` up to and including its `{{end}}`.
    fn control(&mut self, mut c: Cursor, ctx: Ctx, line: usize) -> Result<Control, TemplateError> {
        self.enter(line)?;
        let outer = self.vars.len();
        let mut arms = Vec::new();
        let alt = loop {
            let pipe = self.pipeline(&mut c, ctx)?;
            let inner = self.vars.len();
            self.ranges += usize::from(ctx == Ctx::Range);
            let body = self.list();
            self.ranges -= usize::from(ctx == Ctx::Range);
            let (body, stop) = body?;
            self.vars.truncate(inner);
            arms.push(Arm { pipe, body });
            match stop {
                Stop::End(_) => break Vec::new(),
                Stop::Eof => {
                    return fail(
                        line,
                        format!("{} has no matching {{{{end}}}}", braces(ctx.name())),
                    )
                }
                // Go 1.19 allows `else if` after `if` only (`else with` came later).
                Stop::Else { mut rest, .. }
                    if ctx == Ctx::If
                        && matches!(rest.peek(), Some(Tok::Ident(k)) if k == "if") =>
                {
                    rest.next();
                    c = rest;
                }
                Stop::Else {
                    line: else_line,
                    rest,
                } => break self.else_branch(rest, ctx, else_line, line)?,
            }
        };
        self.vars.truncate(outer);
        self.depth -= 1;
        Ok(Control { arms, alt, line })
    }

    fn else_branch(
        &mut self,
        c: Cursor,
        ctx: Ctx,
        line: usize,
        open: usize,
    ) -> Result<Vec<Node>, TemplateError> {
        match c.peek() {
            None => {}
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
            // Go accepts a trailing `|`: `{{ .A | }}` is `{{ .A }}`.
            if matches!(c.peek(), None | Some(Tok::RParen)) {
                break;
            }
        }
        match (ctx, c.peek()) {
            (Ctx::Paren, Some(Tok::RParen))
            | (Ctx::Action | Ctx::If | Ctx::With | Ctx::Range | Ctx::Template, None) => {}
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
        // Go refuses a constant or `.` after `|` here; other misuse (a field
        // given arguments, a bare nil) fails only if the action runs.
        if stage > 0 && matches!(head, Expr::Lit(_) | Expr::Dot) {
            return fail(
                line,
                format!(
                    "cannot pipe into {}: only a function takes a piped value",
                    expr_desc(&head)
                ),
            );
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
            Expr::Var(_) | Expr::Paren(_) => Ok(Expr::Field(Box::new(term), fields)),
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
#[cfg(test)]
mod tests {
    use crate::config::template::tests::{err_at, ok, same_as_go};

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
        // Go declares a variable in parentheses in the enclosing scope.
        assert_eq!(ok("{{ ($x := 1) }}{{ $x }}"), "11");
    }

    /// Checked against Go 1.19: no `else with` (Go 1.23), no field straight
    /// after `.`.
    #[test]
    fn go_parity() {
        same_as_go(&[(
            r#"{{ (.).USER }}{{ $.USER }}{{ $e := . }}{{ $e.USER }}"#,
            "pilotpilotpilot",
        )]);
        // go: template: :1: unexpected . after term "."
        err_at(r#"{{ ..NAME }}"#, 1, "unexpected field .NAME after \".\"");
        // go: template: :1: unexpected <with> in else
        err_at(
            r#"{{ with 0 }}{{ else with 2 }}{{ . }}{{ end }}"#,
            1,
            "unexpected \"with\" after else in {{with}}",
        );
        // go: template: :1: unexpected <if> in input
        err_at(
            r#"{{ range loop 2 }}{{ . }}{{ else if true }}e{{ end }}{{ end }}"#,
            1,
            "unexpected \"if\" after else in {{range}}",
        );
        // go: template: :1: unexpected <if> in input
        err_at(
            r#"{{ with 0 }}{{ else if 1 }}x{{ end }}{{ end }}"#,
            1,
            "unexpected \"if\" after else in {{with}}",
        );
    }

    /// `{{define}}`, `{{template}}` and `{{block}}`, checked against Go 1.19
    /// (Go stops runaway recursion at 100000 calls; we at the nesting limit).
    #[test]
    fn define_template_block() {
        same_as_go(&[
            (
                r#"{{ define "x" }}X{{ . }}{{ end }}a{{ template "x" }}b{{ template "x" .USER }}c"#,
                "aX<no value>bXpilotc",
            ),
            (
                r#"{{ template "x" }}{{ define "x" }}later{{ end }}"#,
                "later",
            ),
            (
                r#"{{ define "x" }}  {{ end }}{{ define "x" }}b{{ end }}{{ template "x" }}"#,
                "b",
            ),
            (r#"{{ block "b" .USER }}[{{ . }}]{{ end }}"#, "[pilot]"),
            (
                r#"{{ template "x" $a := 5 }}{{ $a }}{{ define "x" }}{{ . }}{{ end }}"#,
                "55",
            ),
            (
                r#"{{ define "t" }}{{ if . }}{{ len . }}{{ template "t" (slice . 1) }}{{ end }}{{ end }}{{ template "t" (loop 5) }}"#,
                "54321",
            ),
            (r#"{{ define "" }}main{{ end }}  "#, "main"),
            (
                r#"{{ range loop 2 }}{{ template "x" . }}{{ end }}{{ define "x" }}<{{ . }}>{{ end }}"#,
                "<0><1>",
            ),
        ]);
        // go: template: :1:12: executing "" at <{{template "nope"}}>: template "nope" not defined
        err_at(
            r#"{{ template "nope" }}"#,
            1,
            "template \"nope\" not defined",
        );
        // go: template: :1: template: multiple definition of template "b"
        err_at(
            r#"{{ block "b" . }}[{{ .USER }}]{{ end }}{{ define "b" }}over{{ end }}"#,
            1,
            "template: multiple definition of templat",
        );
        // go: template: :1: undefined variable "$v"
        err_at(
            r#"{{ $v := 1 }}{{ define "x" }}{{ $v }}{{ end }}"#,
            1,
            "undefined variable $v",
        );
        // go: template: :1: unexpected <define> in command
        err_at(
            r#"{{ if true }}{{ define "x" }}{{ end }}{{ end }}"#,
            1,
            "{{define}} must be at the top level, out",
        );
        // go: template: :1: {{break}} outside {{range}}
        err_at(
            r#"{{ define "x" }}{{ break }}{{ end }}"#,
            1,
            "{{break}} outside {{range}}",
        );
        // go: template: :1:28: executing "x" at <{{template "x"}}>: exceeded maximum template depth (100000)
        err_at(
            r#"{{ define "x" }}{{ template "x" }}{{ end }}{{ template "x" }}"#,
            1,
            "blocks, parentheses and template calls n",
        );
        // go: template: :1: unexpected "x" in template clause
        err_at(
            r#"{{ template x }}"#,
            1,
            "unexpected \"x\" in template clause: want ",
        );
    }
}
