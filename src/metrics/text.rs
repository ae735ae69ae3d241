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
    let special = |b: u8| b == b'\\' || b == b'\n' || (quotes && b == b'"');
    // Every special character is ASCII, so the text can be cut at them
    // byte-wise and copied in runs; most names need no escaping at all.
    let mut rest = text;
    while let Some(i) = rest.bytes().position(special) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            _ => "\\\"",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// One sample line: `name` + `suffix` (`_sum`, `_bucket`, ...), the labels, the value.
pub(super) fn sample(out: &mut String, name: &str, suffix: &str, labels: &[(&str, &str)], v: f64) {
    sample_extra(out, name, suffix, labels, None, v);
}

/// One sample line with a numeric label (`le` or `quantile`, its value
/// already formatted by [`go_float`]) after the other labels, as
/// client_golang writes it.
pub(super) fn sample_extra(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
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
        out.push_str(val);
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

/// [`write_go_float`] into a new string, for error messages and labels.
pub(super) fn go_float(v: f64) -> String {
    let mut s = String::new();
    write_go_float(&mut s, v);
    s
}

/// The decimal digits of `n`, without the `fmt` machinery: most sample
/// values are counts, and a scrape of a thousand jobs writes tens of
/// thousands of them.
pub(super) fn push_u64(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    // Only ASCII digits are written.
    out.push_str(
        std::str::from_utf8(crate::digits::decimal(&mut digits, n, 1)).unwrap_or_default(),
    );
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
        if v < 0.0 {
            out.push('-');
        }
        push_u64(out, v.abs() as u64);
        return;
    }
    // Go's shortest 'g' writes an exponent when the decimal exponent is
    // outside -4..=5, that is outside 1e-4 <= |v| < 1e6: shortest digits
    // round-trip, so they never round across those bounds. Inside, `{}`
    // writes the same shortest digits without an exponent.
    if (1e-4..1e6).contains(&v.abs()) {
        let _ = write!(out, "{v}");
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e3"; on
    // the stack, as a scrape formats many (histogram sums, quantiles).
    let mut buf = StackText::default();
    if write!(buf, "{v:e}").is_err() {
        let _ = write!(out, "{v}");
        return;
    }
    let Some((mantissa, exp)) = buf.as_str().split_once('e') else {
        let _ = write!(out, "{v}");
        return;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    out.push_str(mantissa);
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    if exp.abs() < 10 {
        out.push('0');
    }
    push_u64(out, u64::from(exp.unsigned_abs()));
}

/// A small text buffer on the stack for one formatted number; writes that
/// do not fit fail instead of allocating.
#[derive(Default)]
struct StackText {
    buf: [u8; 32],
    len: usize,
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `str`s are ever copied in.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
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

    /// Go's 'g' format the slow, obvious way: Rust's shortest digits
    /// twice, in exponent form and plain.
    fn reference_go_float(v: f64) -> String {
        let e = format!("{v:e}");
        let (mantissa, exp) = e.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        if !(-4..6).contains(&exp) {
            format!(
                "{mantissa}e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            )
        } else {
            format!("{v}")
        }
    }

    #[test]
    fn go_floats_agree_with_the_slow_way() {
        // A deterministic spread over magnitudes, signs and digit counts.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let r = next();
            let mantissa = (r >> 11) as f64 / (1u64 << 53) as f64;
            let scale = 10f64.powi((r % 40) as i32 - 20);
            let digits = 10f64.powi((r >> 8) as i32 % 8);
            for v in [
                mantissa * scale,
                -mantissa * scale,
                (mantissa * digits).round() / digits * scale,
            ] {
                if v != 0.0 && !(v.fract() == 0.0 && v.abs() < 1e6) {
                    assert_eq!(go_float(v), reference_go_float(v), "{v:e}");
                }
            }
        }
        for v in [
            1e-5,
            1.5e-5,
            0.0001,
            0.00012,
            999999.5,
            1e100,
            1.7976931348623157e308,
            5e-324,
        ] {
            assert_eq!(go_float(v), reference_go_float(v), "{v:e}");
        }
        let mut s = String::new();
        for n in [0, 7, 10, 99, 1234567890, u64::MAX] {
            s.clear();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
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
        let mut s = String::new();
        escape_into(&mut s, "é\\\"\nü\n", true);
        assert_eq!(s, "é\\\\\\\"\\nü\\n");
    }
}
