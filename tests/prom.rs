//! A strict reader of the Prometheus text exposition format 0.0.4, written
//! independently of `src/metrics.rs` so that the tests do not grade the
//! exposition with the code that wrote it. It refuses what promtool and a
//! real scraper would, and checks the histogram and summary invariants.
#![allow(dead_code)]

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Family {
    pub help: Option<String>,
    pub kind: Option<String>,
    pub samples: Vec<Sample>,
}

/// Parse and check a whole page; families by name.
pub fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the page does not end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let word = parts.next().unwrap_or("");
            let name = parts
                .next()
                .ok_or_else(|| at("comment without a metric name".into()))?;
            let arg = parts.next().unwrap_or("");
            if word != "HELP" && word != "TYPE" {
                continue;
            }
            check_name(name).map_err(at)?;
            let fam = families.entry(name.to_string()).or_default();
            if current.as_deref() != Some(name) && !fam.samples.is_empty() {
                return Err(at(format!("{name} appears in two separate groups")));
            }
            current = Some(name.to_string());
            if word == "HELP" {
                if fam.help.is_some() {
                    return Err(at("second HELP".into()));
                }
                check_help(arg).map_err(at)?;
                fam.help = Some(arg.to_string());
            } else {
                if fam.kind.is_some() {
                    return Err(at("second TYPE".into()));
                }
                if !fam.samples.is_empty() {
                    return Err(at("TYPE after samples".into()));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                    return Err(at(format!("unknown type {arg:?}")));
                }
                fam.kind = Some(arg.to_string());
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let sample = parse_sample(line).map_err(at)?;
        let family = family_of(&sample.name, &families);
        let Some(family) = family else {
            return Err(at(format!(
                "sample {} has no HELP/TYPE before it",
                sample.name
            )));
        };
        if current.as_deref() != Some(family.as_str()) {
            return Err(at(format!("sample of {family} outside its group")));
        }
        let fam = families.get_mut(&family).unwrap();
        if fam.help.is_none() || fam.kind.is_none() {
            return Err(at(format!("{family} lacks HELP or TYPE")));
        }
        if fam
            .samples
            .iter()
            .any(|s| s.name == sample.name && s.labels == sample.labels)
        {
            return Err(at("duplicate sample".into()));
        }
        fam.samples.push(sample);
    }
    for (name, fam) in &families {
        match fam.kind.as_deref() {
            Some("histogram") => check_histogram(name, fam)?,
            Some("summary") => check_summary(name, fam)?,
            Some("counter") => {
                if let Some(s) = fam
                    .samples
                    .iter()
                    .find(|s| s.value < 0.0 || s.value.is_nan())
                {
                    return Err(format!("counter {name} has value {}", s.value));
                }
            }
            _ => {}
        }
    }
    Ok(families)
}

/// The family a sample belongs to: its own name, or the name without a
/// histogram/summary suffix when that family is declared.
fn family_of(sample: &str, families: &BTreeMap<String, Family>) -> Option<String> {
    if families.contains_key(sample) {
        let kind = families[sample].kind.as_deref();
        if !matches!(kind, Some("histogram")) {
            return Some(sample.to_string());
        }
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if let Some(f) = families.get(base) {
                if matches!(f.kind.as_deref(), Some("histogram") | Some("summary")) {
                    return Some(base.to_string());
                }
            }
        }
    }
    None
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

/// HELP may only escape `\\` and `\n`.
fn check_help(help: &str) -> Result<(), String> {
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') | Some('n') => {}
                other => return Err(format!("bad escape \\{other:?} in HELP")),
            }
        }
    }
    Ok(())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "sample without a value".to_string())?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if rest.starts_with('{') {
        rest = &rest[1..];
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=').ok_or("label without '='")?;
            let lname = &rest[..eq];
            check_name(lname)?;
            if lname.contains(':') {
                return Err(format!("bad label name {lname:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("unterminated label value".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape in label value: {other:?}")),
                    },
                    Some((_, '\n')) => return Err("raw newline in label value".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.insert(lname.to_string(), value).is_some() {
                return Err(format!("label {lname} twice"));
            }
            rest = &rest[end + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            }
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut parts = rest.split(' ');
    let value = parse_value(parts.next().unwrap_or(""))?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse::<f64>().map_err(|_| format!("bad value {v:?}")),
    }
}

/// Group samples by their labels other than `le`/`quantile`.
fn series<'a>(fam: &'a Family, without: &str) -> BTreeMap<Vec<(String, String)>, Vec<&'a Sample>> {
    let mut out: BTreeMap<Vec<(String, String)>, Vec<&Sample>> = BTreeMap::new();
    for s in &fam.samples {
        let key: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(k, _)| *k != without)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.entry(key).or_default().push(s);
    }
    out
}

fn check_histogram(name: &str, fam: &Family) -> Result<(), String> {
    for (key, samples) in series(fam, "le") {
        let buckets: Vec<&&Sample> = samples
            .iter()
            .filter(|s| s.name.ends_with("_bucket"))
            .collect();
        let count = samples.iter().find(|s| s.name == format!("{name}_count"));
        let sum = samples.iter().find(|s| s.name == format!("{name}_sum"));
        let (Some(count), Some(_)) = (count, sum) else {
            return Err(format!("histogram {name}{key:?} lacks _sum or _count"));
        };
        let mut last_le = f64::NEG_INFINITY;
        let mut last_v = 0.0;
        for b in &buckets {
            let le = parse_value(
                b.labels
                    .get("le")
                    .ok_or(format!("{name} bucket without le"))?,
            )?;
            if le <= last_le {
                return Err(format!("{name}{key:?}: buckets not in increasing le order"));
            }
            if b.value < last_v {
                return Err(format!("{name}{key:?}: buckets not cumulative"));
            }
            last_le = le;
            last_v = b.value;
        }
        if last_le != f64::INFINITY {
            return Err(format!("{name}{key:?}: no +Inf bucket"));
        }
        if last_v != count.value {
            return Err(format!(
                "{name}{key:?}: +Inf bucket {last_v} != _count {}",
                count.value
            ));
        }
    }
    Ok(())
}

fn check_summary(name: &str, fam: &Family) -> Result<(), String> {
    for (key, samples) in series(fam, "quantile") {
        let has = |suffix: &str| samples.iter().any(|s| s.name == format!("{name}{suffix}"));
        if !has("_sum") || !has("_count") {
            return Err(format!("summary {name}{key:?} lacks _sum or _count"));
        }
        for q in samples.iter().filter(|s| s.name == name) {
            let quantile = parse_value(
                q.labels
                    .get("quantile")
                    .ok_or(format!("{name} sample without quantile"))?,
            )?;
            if !(0.0..=1.0).contains(&quantile) {
                return Err(format!("{name}: quantile {quantile} out of range"));
            }
        }
    }
    Ok(())
}

/// The value of one sample, by name and labels.
pub fn value(
    families: &BTreeMap<String, Family>,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    families.values().flat_map(|f| &f.samples).find_map(|s| {
        let matches = s.name == name
            && s.labels.len() == labels.len()
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v));
        matches.then_some(s.value)
    })
}

#[test]
fn prom_parser_accepts_good_and_refuses_bad() {
    let good = "# HELP a_total A counter.\n# TYPE a_total counter\na_total{x=\"q\\\"\\n\"} 3\n\
# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n\
# HELP s S.\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n";
    let f = parse(good).unwrap();
    assert_eq!(value(&f, "a_total", &[("x", "q\"\n")]), Some(3.0));
    assert_eq!(value(&f, "h_count", &[]), Some(2.0));
    for bad in [
        "a 1\n",
        "# HELP a x\n# TYPE a gauge\na{b=\"c} 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP a x\n# TYPE a counter\na -1\n",
        "# HELP a x\n# TYPE a gauge\na 1",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
