//! End-to-end render tests: upstream's own cases, error lines, limits, fuzzing
//! and the real-world corpus. Helpers here are shared with the stage modules'
//! tests.

use super::*;
use std::path::PathBuf;

pub(super) fn env() -> HashMap<String, String> {
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
pub(super) fn ok(src: &str) -> String {
    match render(src, &env()) {
        Ok(s) => s,
        Err(e) => panic!("{src:?} failed: {e}"),
    }
}

#[track_caller]
pub(super) fn err(src: &str) -> TemplateError {
    match render(src, &env()) {
        Ok(s) => panic!("{src:?} rendered {:?}, want an error", shorten(&s)),
        Err(e) => e,
    }
}

#[track_caller]
pub(super) fn err_at(src: &str, line: usize, needle: &str) {
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
        "(a+)" "$1" "(" replaceAll nil true false /* */ , \\ é { } $y define slice html js
        urlquery call 0x1p4 1_0 "%[2]*.[1]*d" "%#q" "%+v" "%T" "%U" "%.*x" "%x"
        ($x := 1) else·if"#;
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
        "html",
        "js",
        "urlquery",
        "slice",
        "call",
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
    // `CONTAINERPILOT_CORPUS`, else `shared/corpus` beside the checkout or
    // beside any directory above it (a clone made elsewhere for CI included).
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let above = manifest.ancestors().map(|a| a.join("shared/corpus"));
    std::env::var_os("CONTAINERPILOT_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain(above)
        .find(|p| p.join("manifest.json").is_file())
}

/// Every real-world config in the corpus renders, with its suggested
/// environment and with none (both branches of every `if`).
#[test]
fn corpus_renders() {
    let Some(dir) = corpus_dir() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "corpus not found under CI (set CONTAINERPILOT_CORPUS to the shared/corpus directory)"
        );
        eprintln!(
            "SKIP: corpus not found (set CONTAINERPILOT_CORPUS to the shared/corpus directory)"
        );
        return;
    };
    let text =
        std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json is readable");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest.json is JSON");
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

/// Each template renders exactly as Go 1.19's `text/template` with
/// ContainerPilot 3's functions renders it (the expected outputs were
/// produced by Go).
#[track_caller]
pub(super) fn same_as_go(cases: &[(&str, &str)]) {
    for (src, want) in cases {
        assert_eq!(ok(src), *want, "{src}");
    }
}

/// Every difference from Go 1.19 that we keep (module docs), pinned: each
/// line says what Go does instead.
#[test]
fn documented_differences() {
    // Go: index of a string is a uint8 ("uint8 98").
    assert_eq!(
        ok(r#"{{ printf "%T %v" (index "abc" 1) (index "abc" 1) }}"#),
        "int 98"
    );
    // Go: "[0 1 2 0]", reading the spare capacity of loop's slice.
    err_at("{{ slice (loop 3) 0 4 }}", 1, "index out of range: 4");
    // Go: "ok"; it reports this only when the action runs.
    err_at(
        "{{ if false }}{{ 9223372036854775808 }}{{ end }}ok",
        1,
        "integer overflow",
    );
    // Go: an error for each (no trimming, no floats, no string positions).
    assert_eq!(
        ok(
            r#"{{ loop " 2" }} {{ loop 2.0 }} {{ index (split "," "a,b") "1" }} {{ index (loop 3) 2.0 }}"#
        ),
        "[0 1] [0 1] b 2"
    );
    // Go: "incompatible types for comparison" for each.
    assert_eq!(
        ok("{{ lt 1 1.5 }} {{ eq 2 2.0 }} {{ gt .COUNT 2 }} {{ eq .USER 1 }}"),
        "true true true false"
    );
    // Go: "wrong type for value; expected []string; got []int".
    assert_eq!(ok(r#"{{ join "," (loop 3) }}"#), "0,1,2");
    // Go (3.x's default): "d d d".
    assert_eq!(
        ok(r#"{{ default "d" 7 }} {{ default "d" true }} {{ 0 | default "d" }}"#),
        "7 true d"
    );
    // Go: "x" for both (RE2 has Unicode classes and folds all of Unicode).
    err_at(
        r#"{{ regexReplaceAll "\\pL" "x" "a" }}"#,
        1,
        "invalid regular expression",
    );
    assert_eq!(ok(r#"{{ regexReplaceAll "(?i)é" "x" "É" }}"#), "É");
    // Go: "\"\\xff\"" (the raw byte 0xff).
    assert_eq!(ok(r#"{{ printf "%q" "\xff" }}"#), "\"\u{FFFD}\"");
    // Go: an address such as 0xc0000a48e0.
    assert_eq!(ok(r#"{{ printf "%p" (loop 1) }}"#), "%!p([]int=[0])");
    // Go: "(0+1i)".
    err_at("{{ 1i }}", 1, "complex numbers are not supported");
}

/// Strings are copied, not shared, so copying or building text counts as
/// work: a loop reusing a big string stops instead of running for hours.
#[test]
fn copying_text_is_bounded() {
    let big = r#"{{ $s := printf "%9999999s" "" }}"#;
    err_at(
        &format!("{big}{{{{ range loop 1000000 }}}}{{{{ $x := $s }}}}{{{{ end }}}}"),
        1,
        "too much work",
    );
    err_at(
        r#"{{ range loop 1000000 }}{{ $x := printf "%9999999s" "" }}{{ end }}"#,
        1,
        "too much work",
    );
    err_at(
        &format!("{big}{{{{ print $s $s }}}}"),
        1,
        "larger than 16 MiB",
    );
    err_at(
        &format!("{big}{{{{ println $s $s }}}}"),
        1,
        "larger than 16 MiB",
    );
    err_at(
        &format!("{big}{{{{ html $s 1 $s }}}}"),
        1,
        "larger than 16 MiB",
    );
    err_at(r#"{{ printf "%9999999v" . }}"#, 1, "larger than 16 MiB");
}
