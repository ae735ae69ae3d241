//! Stage 3: walks the tree with the environment as data. It owns variable
//! scopes, `range`/`break`/`continue`, lazy `and`/`or`, and the step and output
//! caps.

use std::collections::HashMap;
use std::rc::Rc;

use super::funcs::FUNCS;
use super::parse::{expr_desc, Cmd, Control, Expr, Node, Pipeline, Templates};
use super::{fail, shorten, TemplateError, Value, MAX_COPIED, MAX_DEPTH, MAX_OUTPUT, MAX_STEPS};

#[derive(Debug, PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

pub(super) struct Exec<'a> {
    env: &'a HashMap<String, String>,
    /// Innermost last; blocks truncate back to their mark when they end.
    vars: Vec<(String, Value)>,
    out: String,
    steps: u64,
    templates: &'a Templates,
    /// Bytes of text copied or built so far (`MAX_COPIED`).
    copied: usize,
    /// Blocks, parentheses and template calls being run, one inside the
    /// other. The parser bounds this in one template; calls could stack
    /// templates without end.
    depth: usize,
}

impl Exec<'_> {
    pub(super) fn run(
        env: &HashMap<String, String>,
        templates: &Templates,
    ) -> Result<String, TemplateError> {
        let root = Value::Map(Rc::new(
            env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
        let mut ex = Exec {
            env,
            vars: vec![("$".to_string(), root.clone())],
            out: String::new(),
            steps: 0,
            templates,
            copied: 0,
            depth: 0,
        };
        if let Some(main) = templates.get("") {
            ex.walk(main, &root)?;
        }
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

    /// Counts the text in `v`, which is about to be copied or was just built.
    fn charge(&mut self, v: &Value, line: usize) -> Result<(), TemplateError> {
        if let Value::Str(s) = v {
            self.copied += s.len();
            if self.copied > MAX_COPIED {
                return fail(
                    line,
                    format!(
                        "template does too much work (copies over {} GiB of text); is a loop too long?",
                        MAX_COPIED >> 30
                    ),
                );
            }
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
                        // Only `and`/`or` handing back a literal nil yield
                        // Nil here: Go's invalid value, which it prints so.
                        match v {
                            Value::Nil => self.write("<no value>", p.line)?,
                            v => self.write(&v.to_string(), p.line)?,
                        }
                    }
                    Flow::Normal
                }
                Node::If(c) => self.nested(c.line, |ex| ex.if_with(c, dot, false))?,
                Node::With(c) => self.nested(c.line, |ex| ex.if_with(c, dot, true))?,
                Node::Range(c) => self.nested(c.line, |ex| ex.range(c, dot))?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
                Node::Template { name, pipe, line } => {
                    self.template(name, pipe.as_ref(), dot, *line)?;
                    Flow::Normal
                }
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    /// `{{template}}`: the named template runs with the pipeline's value as
    /// both `.` and `$`, and sees none of the caller's variables (Go's rules).
    fn template(
        &mut self,
        name: &str,
        pipe: Option<&Pipeline>,
        dot: &Value,
        line: usize,
    ) -> Result<(), TemplateError> {
        let templates = self.templates;
        let Some(body) = templates.get(name) else {
            return fail(line, format!("template {name:?} not defined"));
        };
        let dot = match pipe {
            Some(p) => self.pipeline(p, dot)?,
            None => Value::Nil,
        };
        let vars = std::mem::replace(&mut self.vars, vec![("$".to_string(), dot.clone())]);
        let walked = self.nested(line, |ex| ex.walk(body, &dot));
        self.vars = vars;
        walked.map(|_| ())
    }

    /// Runs `f` one level deeper, failing past the nesting limit.
    fn nested<T>(
        &mut self,
        line: usize,
        f: impl FnOnce(&mut Self) -> Result<T, TemplateError>,
    ) -> Result<T, TemplateError> {
        if self.depth >= MAX_DEPTH {
            return fail(
                line,
                format!("blocks, parentheses and template calls nested more than {MAX_DEPTH} deep"),
            );
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn if_with(&mut self, c: &Control, dot: &Value, with: bool) -> Result<Flow, TemplateError> {
        let mark = self.vars.len();
        let mut taken = None;
        for arm in &c.arms {
            let v = self.pipeline(&arm.pipe, dot)?;
            if v.truthy() {
                taken = Some(self.walk(&arm.body, if with { &v } else { dot })?);
                break;
            }
        }
        let flow = match taken {
            Some(flow) => flow,
            None => self.walk(&c.alt, dot)?,
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn range(&mut self, c: &Control, dot: &Value) -> Result<Flow, TemplateError> {
        let mark = self.vars.len();
        // Like Go, the variables first hold the whole value (seen by {{else}}),
        // then each key and element in turn.
        let Some(arm) = c.arms.first() else {
            return Ok(Flow::Normal);
        };
        let v = self.pipeline(&arm.pipe, dot)?;
        let len = match &v {
            Value::List(_, items) => items.len(),
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
            // Go ends the whole range statement, its {{else}} included, at a
            // {{break}}, so one there stops only the rest of this {{else}};
            // a {{continue}} goes on to the enclosing range.
            return Ok(if flow == Flow::Break {
                Flow::Normal
            } else {
                flow
            });
        }
        let pairs: Box<dyn Iterator<Item = (Value, Value)>> = match &v {
            Value::List(_, items) => Box::new(
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
            match arm.pipe.decl.len() {
                1 => self.vars[mark].1 = elem.clone(),
                2 => {
                    self.vars[mark].1 = key;
                    self.vars[mark + 1].1 = elem.clone();
                }
                _ => {}
            }
            self.charge(&elem, c.line)?;
            let flow = self.walk(&arm.body, &elem)?;
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
            self.charge(&val, p.line)?;
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
            head if !cmd.args.is_empty() || piped.is_some() => fail(
                cmd.line,
                format!(
                    "{} is not a function and cannot take arguments",
                    expr_desc(head)
                ),
            ),
            Expr::Lit(Value::Nil) => fail(cmd.line, "nil is not a command"),
            head => self.operand(head, dot, cmd.line),
        }
    }

    fn operand(&mut self, e: &Expr, dot: &Value, line: usize) -> Result<Value, TemplateError> {
        let v = match e {
            Expr::Lit(v) => v.clone(),
            Expr::Dot => dot.clone(),
            Expr::Var(name) => match self.vars.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => v.clone(),
                None => return fail(line, format!("undefined variable {name}")),
            },
            Expr::Func(name) => self.call(name, &[], dot, None, line)?,
            Expr::Paren(p) => self.nested(line, |ex| ex.pipeline(p, dot))?,
            Expr::Field(base, names) => {
                let mut v = self.operand(base, dot, line)?;
                for name in names {
                    v = field(&v, name).or_else(|m| fail(line, m))?;
                }
                v
            }
        };
        self.charge(&v, line)?;
        Ok(v)
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
        self.charge(&v, line)?;
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
        // Go's missingkey=zero: a field of no value is no value.
        Value::Nil => Ok(Value::Nil),
        other => Err(format!(
            "can't read field .{name} of {}: only the environment has fields (inside range or with, use $.{name})",
            other.describe()
        )),
    }
}
#[cfg(test)]
mod tests {
    use crate::config::template::render;
    use crate::config::template::tests::{err_at, ok, same_as_go};
    use std::collections::HashMap;

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
    fn pipelines_pass_the_value_last() {
        assert_eq!(ok(r#"{{ "a" | printf "%s-%s" "b" }}"#), "b-a");
        assert_eq!(ok(r#"{{ .PARTS | split ":" | len }}"#), "3");
        assert_eq!(ok(r#"{{ "x" | print }}"#), "x");
        err_at(r#"{{ "a" | "b" }}"#, 1, "pipe");
        // Go ignores a trailing "|".
        assert_eq!(ok("{{ .NAME | }}"), "Template");
        err_at("{{ | .NAME }}", 1, "missing value");
        err_at("{{ print | | print }}", 1, "missing command");
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
        // `else with` is Go 1.23; Go 1.19 refuses it, and so do we.
        err_at(
            "{{ with .UNSET }}a{{ else with .USER }}{{ . }}{{ end }}",
            1,
            "after else",
        );
        err_at("{{ with .USER }}{{ .NAME }}{{ end }}", 1, "$.NAME");
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

    /// Outputs checked against Go 1.19 (issue #12: `{{break}}` in a range's
    /// `{{else}}` ends only that range; Go's `<no value>`; variables
    /// declared in parentheses; long `else if` chains).
    #[test]
    fn go_parity() {
        same_as_go(&[
            (
                r#"{{ range loop 2 }}a{{ range split "," "" }}x{{ else }}{{ break }}y{{ end }}b{{ end }}"#,
                "abab",
            ),
            (
                r#"{{ range loop 3 }}{{ . }}{{ range loop 0 }}{{ else }}{{ if eq . 1 }}{{ break }}{{ end }}{{ end }}!{{ end }}"#,
                "0!1!2!",
            ),
            (
                r#"{{ range loop 2 }}{{ range loop 0 }}{{ else }}{{ range loop 0 }}{{ else }}{{ break }}{{ end }}z{{ end }}b{{ end }}"#,
                "zbzb",
            ),
            (
                r#"{{ range loop 2 }}a{{ range loop 0 }}x{{ else }}{{ continue }}y{{ end }}b{{ end }}"#,
                "aa",
            ),
            (
                r#"{{ range $i := loop 4 }}{{ range loop 0 }}{{ else }}{{ if eq $i 2 }}{{ continue }}{{ end }}{{ end }}{{ $i }}{{ end }}"#,
                "013",
            ),
            (
                r#"{{ and nil }}|{{ or 0 nil }}|{{ and 1 nil }}|{{ print (and nil) }}|{{ printf "%v" (or nil) }}"#,
                "<no value>|<no value>|<no value>|<nil>|<nil>",
            ),
            (
                r#"{{ $x := and nil }}[{{ $x }}]{{ (and nil).NAME }}{{ if and nil }}t{{ else }}f{{ end }}"#,
                "[<no value>]<no value>f",
            ),
            (
                r#"{{ html (and nil) }}|{{ urlquery nil }}|{{ eq (and nil) nil }}"#,
                "&lt;no value&gt;|%3Cno+value%3E|true",
            ),
            (r#"{{ ($x := 1) }}{{ $x }}{{ ($x = 2) }}{{ $x }}"#, "1122"),
            (r#"{{ (print ($y := 3)) }}{{ $y }}"#, "33"),
            (
                r#"{{ if 0 }}a{{ else if $x := 0 }}b{{ else if $y := 2 }}{{ $x }}{{ $y }}{{ else }}c{{ end }}"#,
                "02",
            ),
            (
                r#"{{ if 0 }}{{ else if 0 }}a{{ else if 1 }}b{{ else }}c{{ end }}"#,
                "b",
            ),
            (r#"{{ print 1 | }}|{{ (1 |) }}|{{ .USER | }}"#, "1|1|pilot"),
        ]);
        // go: template: :1:3: executing "" at <index nil>: error calling index: index of untyped nil
        err_at(r#"{{ index nil }}"#, 1, "index: index of untyped nil");
        // go: template: :1: undefined variable "$x"
        err_at(
            r#"{{ if ($x := 1) }}{{ $x }}{{ end }}{{ $x }}"#,
            1,
            "undefined variable $x",
        );
        let chain = (0..150)
            .map(|i| format!("{{{{ else if eq .COUNT \"{i}\" }}}}{i}"))
            .collect::<String>();
        let src = format!("{{{{ if eq .COUNT \"x\" }}}}x{chain}{{{{ else }}}}none{{{{ end }}}}");
        assert_eq!(ok(&src), "3", "150 else-ifs are one level of nesting");
        let long =
            "{{ if 0 }}".to_string() + &"{{ else if 0 }}".repeat(100_000) + "{{ else }}y{{ end }}";
        assert_eq!(ok(&long), "y");
    }

    /// Go finds these misuses only when the action runs, so a branch not
    /// taken may hold them; a constant or `.` after `|` is a parse error.
    #[test]
    fn misuse_fails_when_run() {
        same_as_go(&[(
            r#"{{ if false }}{{ nil 1 }}{{ nil }}{{ $x := nil }}{{ .NAME 1 }}{{ (1) 2 }}{{ $ 2 }}{{ . 1 }}{{ .USER | .NAME }}{{ print (nil) }}{{ end }}ok"#,
            "ok",
        )]);
        err_at("{{ nil 1 }}", 1, "nil is not a function");
        err_at("{{ .NAME 1 }}", 1, "field .NAME is not a function");
        err_at("{{ 1 | .NAME }}", 1, "field .NAME is not a function");
        err_at("{{ print (nil) }}", 1, "nil is not a command");
        err_at(
            r#"{{ if false }}{{ "a" | "b" }}{{ end }}"#,
            1,
            "cannot pipe into",
        );
        err_at("{{ if false }}{{ 1 | . }}{{ end }}", 1, "cannot pipe into");
    }
}
