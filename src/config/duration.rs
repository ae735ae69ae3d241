//! Durations in the config file (SPEC §2.2): parsing the two accepted forms
//! (a plain count of seconds, or Go's `time.ParseDuration` syntax) and
//! printing a `Duration` the way Go's `time.Duration.String()` does, which is
//! what Consul expects for a check TTL.
//!
//! Both directions are limited to what a Go `time.Duration` can hold
//! (`i64::MAX` nanoseconds, about 292 years), so every value we accept can be
//! sent to Consul unchanged.

use std::time::Duration;

const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Go's `time.Duration` is an `int64` of nanoseconds; nothing larger exists there.
const MAX_NANOS: u64 = i64::MAX as u64;
/// The largest duration Go (and so Consul) can represent.
pub const MAX: Duration = Duration::from_nanos(MAX_NANOS);

/// Units of Go's `time.ParseDuration`, in nanoseconds. Both spellings of
/// micro are accepted, as in Go: U+00B5 MICRO SIGN and U+03BC GREEK SMALL MU.
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("h", 3600 * NANOS_PER_SEC),
];

/// `"10"` → 10 s; otherwise Go syntax (`1500ms`, `1m30s`, `1.5h`). Negative or bad: Err.
///
/// Zero (`"0"`, `"0s"`) is accepted: whether zero makes sense is the caller's
/// decision. The error text is meant to follow the field path, e.g.
/// `job[app].health.ttl: invalid duration "10x": unknown unit "x"`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {:?}: {why}", short(s));
    if s.is_empty() {
        return Err(invalid(
            "expected a number of seconds or a Go duration such as \"1500ms\"",
        ));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        // The plain-seconds form. Too many digits for a u64 is an overflow,
        // not a syntax error, so the message says so.
        let secs: u64 = s.parse().map_err(|_| invalid("too large"))?;
        if secs > MAX_NANOS / NANOS_PER_SEC {
            return Err(invalid("too large"));
        }
        return Ok(Duration::from_secs(secs));
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let nanos = parse_go(rest).map_err(|why| invalid(&why))?;
    // Go accepts a sign; a negative wait or TTL has no meaning here. "-0s" is
    // rejected too: the sign shows the user meant something else.
    if negative {
        return Err(invalid("must not be negative"));
    }
    Ok(Duration::from_nanos(nanos))
}

/// Go's grammar after the sign: `([0-9]*(\.[0-9]*)?[a-z]+)+`, summed in
/// nanoseconds. Returns the reason only; `parse` adds the quoted input.
fn parse_go(mut s: &str) -> Result<u64, String> {
    const SYNTAX: &str = "expected a number of seconds or a Go duration such as \"1500ms\"";
    if s.is_empty() {
        return Err(SYNTAX.into());
    }
    // Go's special case: a bare "0" (after the sign) needs no unit.
    if s == "0" {
        return Ok(0);
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        // Whole part. Too many digits is an overflow whatever the unit.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let whole: u64 = if int_len == 0 {
            0
        } else {
            s[..int_len].parse().map_err(|_| "too large".to_string())?
        };
        s = &s[int_len..];

        // Fraction: kept as numerator/denominator so `1.1h` is exact rather
        // than going through a float as Go does. Digits beyond what a u64
        // holds are below a nanosecond for every unit and are dropped, as Go does.
        let (mut frac, mut scale, mut frac_len) = (0u64, 1u64, 0usize);
        if let Some(after_dot) = s.strip_prefix('.') {
            s = after_dot;
            frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            for d in s[..frac_len].bytes() {
                if let (Some(f), Some(sc)) = (
                    frac.checked_mul(10)
                        .and_then(|f| f.checked_add(u64::from(d - b'0'))),
                    scale.checked_mul(10),
                ) {
                    frac = f;
                    scale = sc;
                }
            }
            s = &s[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(SYNTAX.into());
        }

        // Unit: everything up to the next number.
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err("missing unit (ns, us, ms, s, m or h)".into());
        }
        let unit_str = &s[..unit_len];
        s = &s[unit_len..];
        let unit = UNITS
            .iter()
            .find(|(name, _)| *name == unit_str)
            .map(|&(_, n)| n)
            .ok_or_else(|| {
                let unit = short(unit_str);
                format!("unknown unit {unit:?} (use ns, us, ms, s, m or h)")
            })?;

        let part = u128::from(whole) * u128::from(unit)
            + u128::from(frac) * u128::from(unit) / u128::from(scale);
        total = u64::try_from(u128::from(total) + part)
            .ok()
            .filter(|&t| t <= MAX_NANOS)
            .ok_or_else(|| "too large".to_string())?;
    }
    Ok(total)
}

/// At most the first 64 bytes of `s` (cut at a char boundary, `...` added),
/// so that an error quotes a hostile megabyte at most once, and briefly.
fn short(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Go's `time.Duration.String()` form, as Consul expects a TTL (`10s`, `1.5s`, `1m30s`, `1500ms`→`1.5s`).
///
/// Under a second the largest fitting unit of `ns`, `µs`, `ms` is used with a
/// trimmed fraction (`1.5ms`, `500ns`); from a second up it is `[Hh][Mm]S[.frac]s`
/// with the minutes and seconds always present once a larger unit is
/// (`1h0m0s`). Durations beyond Go's range print in the same shape.
pub fn go_string(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < u128::from(NANOS_PER_SEC) {
        let (unit, digits) = match nanos {
            n if n < 1_000 => ("ns", 0),
            n if n < 1_000_000 => ("\u{b5}s", 3),
            _ => ("ms", 6),
        };
        return format!("{}{unit}", fixed_point(nanos, digits));
    }
    let secs = nanos / u128::from(NANOS_PER_SEC);
    let sub = nanos % u128::from(NANOS_PER_SEC);
    let seconds = fixed_point((secs % 60) * u128::from(NANOS_PER_SEC) + sub, 9);
    let (mins, hours) = ((secs / 60) % 60, secs / 3600);
    if hours > 0 {
        format!("{hours}h{mins}m{seconds}s")
    } else if mins > 0 {
        format!("{mins}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `v / 10^digits` in decimal with trailing fractional zeros (and a bare
/// point) removed: `(1500, 3)` → `"1.5"`, `(2000, 3)` → `"2"`.
fn fixed_point(v: u128, digits: u32) -> String {
    let base = 10u128.pow(digits);
    let (int, frac) = (v / base, v % base);
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse(s).unwrap_or_else(|e| panic!("parse({s:?}) failed: {e}"))
    }
    fn err(s: &str) -> String {
        match parse(s) {
            Ok(d) => panic!("parse({s:?}) should fail, got {d:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_digits_are_seconds() {
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("007"), Duration::from_secs(7));
        assert_eq!(ok("9223372036"), Duration::from_secs(9_223_372_036));
    }

    #[test]
    fn go_syntax() {
        assert_eq!(ok("1500ms"), Duration::from_millis(1500));
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("5.s"), Duration::from_secs(5));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("10ns"), Duration::from_nanos(10));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("10\u{b5}s"), Duration::from_micros(10));
        assert_eq!(ok("10\u{3bc}s"), Duration::from_micros(10));
        assert_eq!(ok("1h2m3s4ms5us6ns"), Duration::new(3723, 4_005_006));
        assert_eq!(ok("1.1h"), Duration::from_secs(3960));
        assert_eq!(ok("0.000000001s"), Duration::from_nanos(1));
        // Sub-nanosecond digits are dropped, not an error (as Go).
        assert_eq!(ok("1.00000000000000000000000001s"), Duration::from_secs(1));
        // Go allows a unit to repeat.
        assert_eq!(ok("1s1s"), Duration::from_secs(2));
        // The largest Go duration.
        assert_eq!(
            ok("9223372036854775807ns"),
            Duration::from_nanos(i64::MAX as u64)
        );
    }

    #[test]
    fn errors_name_input_and_reason() {
        assert_eq!(
            err("10x"),
            r#"invalid duration "10x": unknown unit "x" (use ns, us, ms, s, m or h)"#
        );
        assert_eq!(
            err("-5s"),
            r#"invalid duration "-5s": must not be negative"#
        );
        assert!(err("-0").contains("must not be negative"));
        assert!(err("1.5").contains("missing unit"));
        assert!(err("1s5").contains("missing unit"));
        assert!(err("").starts_with(r#"invalid duration "": expected"#));
        assert!(err("s").contains("expected a number"));
        assert!(err(".s").contains("expected a number"));
        assert!(err("-").contains("expected a number"));
        assert!(err(" 10").contains("expected a number"));
        assert!(err("10 s").contains("unknown unit \" s\""));
        assert!(err("1S").contains("unknown unit \"S\""));
        assert!(err("1d").contains("unknown unit"));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        for s in [
            "9223372037",
            "99999999999999999999999999",
            "9223372036854775808ns",
            "9223372036854775807ns1ns",
            "2562048h",
            "99999999999999999999h",
            "1.5e3s",
        ] {
            let e = err(s);
            assert!(e.starts_with(&format!("invalid duration {s:?}")), "{e}");
        }
        assert!(err("2562048h").ends_with("too large"));
        assert!(err("99999999999999999999999999").ends_with("too large"));
    }

    #[test]
    fn junk_and_unicode_never_panic() {
        for s in [
            "µ",
            "1µ",
            "µs",
            "1é",
            "é1s",
            "1s\u{0}",
            "..",
            "1..5s",
            "--1s",
            "+",
            "1\u{3bc}",
            "\u{1F600}",
            "1\u{1F600}",
        ] {
            assert!(parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn go_string_matches_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(500), "500ns"),
            (Duration::from_nanos(1100), "1.1\u{b5}s"),
            (Duration::from_micros(2), "2\u{b5}s"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::new(61, 500_000_000), "1m1.5s"),
            (Duration::new(1, 1), "1.000000001s"),
            (
                Duration::from_nanos(i64::MAX as u64),
                "2562047h47m16.854775807s",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(go_string(*d), *want, "go_string({d:?})");
        }
    }

    #[test]
    fn go_string_round_trips_through_parse() {
        for s in [
            "10s", "1.5s", "1m30s", "1h0m0s", "1.5ms", "2\u{b5}s", "500ns",
        ] {
            assert_eq!(go_string(ok(s)), s);
        }
    }
}
