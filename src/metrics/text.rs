//! The Prometheus text exposition format 0.0.4: `# HELP`/`# TYPE` lines,
//! sample lines with their labels, the escaping of help text and label values,
//! and numbers formatted as client_golang formats them. Every family is
//! written through these functions, so this is the one file that knows the
//! format's syntax.

use std::fmt::Write as _;

/// `# HELP` (help escaped: `\` and newline) and `# TYPE` lines.
pub(super) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape_into(out, help, false);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// Backslash and newline escaped (HELP text); double quotes too in label values.
fn escape_into(out: &mut String, text: &str, quotes: bool) {
    let special = |c: char| c == '\\' || c == '\n' || (quotes && c == '"');
    if !text.contains(special) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// One sample line: `name` + `suffix` (`_sum`, `_bucket`, ...), the labels, the value.
pub(super) fn sample(out: &mut String, name: &str, suffix: &str, labels: &[(&str, &str)], v: f64) {
    sample_extra(out, name, suffix, labels, None, v);
}

/// One sample line with a numeric label (`le` or `quantile`) after the other
/// labels, as client_golang writes it.
pub(super) fn sample_extra(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, f64)>,
    v: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let mut open = false;
    for (k, val) in labels {
        label_start(out, &mut open, k);
        escape_into(out, val, true);
        out.push('"');
    }
    if let Some((k, val)) = extra {
        label_start(out, &mut open, k);
        // A formatted float has nothing to escape.
        write_go_float(out, val);
        out.push('"');
    }
    if open {
        out.push('}');
    }
    out.push(' ');
    write_go_float(out, v);
    out.push('\n');
}

/// `{key="` for the first label of a sample, `,key="` for the others.
fn label_start(out: &mut String, open: &mut bool, key: &str) {
    out.push(if *open { ',' } else { '{' });
    *open = true;
    out.push_str(key);
    out.push_str("=\"");
}

/// The `_sum` and `_count` samples that end a histogram or a summary.
pub(super) fn sum_and_count(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    sum: f64,
    count: u64,
) {
    sample(out, name, "_sum", labels, sum);
    sample(out, name, "_count", labels, count as f64);
}

/// [`write_go_float`] into a new string, for error messages.
pub(super) fn go_float(v: f64) -> String {
    let mut s = String::new();
    write_go_float(&mut s, v);
    s
}

/// A float as client_golang writes it: Go's `strconv.FormatFloat(v, 'g', -1,
/// 64)`, the shortest digits that round-trip, in exponent form when the
/// decimal exponent is below -4 or at least 6 (`1e+06`, `1.5e-07`); else plain
/// (`1`, `0.5`, `123456`). Specials as the text format spells them.
fn write_go_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        // Go prints negative zero as "-0"; Prometheus treats both alike.
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Whole numbers below 1e6 print as integers in Go's shortest 'g' too;
    // they are most samples, so skip the float formatting for them.
    if v.fract() == 0.0 && v.abs() < 1e6 {
        let _ = write!(out, "{}", v as i64);
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e3".
    let e = format!("{v:e}");
    let Some((mantissa, exp)) = e.split_once('e') else {
        let _ = write!(out, "{v}");
        return;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go's shortest 'g' always decides with precision 6.
    let eprec = 6;
    if exp < -4 || exp >= eprec {
        out.push_str(mantissa);
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.abs());
    } else {
        // Display never uses an exponent and prints the shortest digits.
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MetricKind;
    use crate::metrics::tests::{cfg, render};
    use crate::metrics::{render_watch_instances, Registry};
    use std::time::Instant;

    #[test]
    fn go_floats() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (0.5, "0.5"),
            (0.005, "0.005"),
            (2.5, "2.5"),
            (10.0, "10"),
            (-3.0, "-3"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.0, "0"),
            (1.8446744073709552e19, "1.8446744073709552e+19"),
        ];
        for (v, want) in cases {
            assert_eq!(go_float(*v), *want, "{v}");
        }
    }

    #[test]
    fn escaping() {
        let mut c = cfg("app_g", MetricKind::Gauge);
        c.help = "a \\ back\nslash \"q\"".into();
        let mut r = Registry::new(&[c]);
        let text = render(&mut r, Instant::now());
        assert!(
            text.starts_with("# HELP app_g a \\\\ back\\nslash \"q\"\n# TYPE app_g gauge\n"),
            "{text}"
        );

        let mut s = String::new();
        render_watch_instances(&[("we\"ird\\na\nme", 2)], &mut s);
        assert!(
            s.contains("containerpilot_watch_instances{service=\"we\\\"ird\\\\na\\nme\"} 2\n"),
            "{s}"
        );
    }
}
