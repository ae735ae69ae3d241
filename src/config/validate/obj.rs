//! Reading the node tree: [`Obj`] opens an object at a path, warns about
//! unknown and repeated keys (with a did-you-mean), and reads typed values
//! the way 3.x's weak decoding did; plus the shared message helpers.

use std::collections::HashSet;
use std::time::Duration;

use super::super::duration;
use super::super::tree::{self, Node};
use super::{ConfigError, Result, Validator};

/// Unknown keys with a better hint than an edit-distance guess: (path suffix, hint).
const HINTS: &[(&str, &str)] = &[
    (
        "when.event",
        "3.x names the event with 'once' or 'each', e.g. once: \"exitSuccess\"",
    ),
    (
        "telemetry.sensors",
        "sensors were removed in 3.x: run the sensor as a job with 'when: {interval}' \
         that calls 'containerpilot -putmetric name=value'",
    ),
];

impl Validator<'_> {
    /// Open `node` as an object at `path`, warning about unknown and repeated keys.
    pub(super) fn obj<'n>(
        &mut self,
        path: String,
        node: &'n Node,
        known: &[&str],
    ) -> Result<Obj<'n>> {
        let Node::Object(pairs) = node else {
            let at = if path.is_empty() { "the config" } else { &path };
            return Err(expected(at, "an object", node));
        };
        let o = Obj { path, pairs };
        let mut seen = HashSet::new();
        for (key, _) in pairs {
            let at = o.at(key);
            if !seen.insert(key.as_str()) {
                self.warn(format!("{at}: duplicate key; the last value is used"));
            } else if !known.contains(&key.as_str()) {
                let mut msg = format!("{at}: unknown key");
                if let Some((_, hint)) = HINTS.iter().find(|(suffix, _)| at.ends_with(suffix)) {
                    msg.push_str(&format!(" ({hint})"));
                } else if let Some(s) = suggest(key, known) {
                    msg.push_str(&format!(", did you mean '{s}'?"));
                }
                self.warn(msg);
            }
        }
        Ok(o)
    }

    /// The object under `key` of `parent`, if present.
    pub(super) fn obj_opt<'n>(
        &mut self,
        parent: &Obj<'n>,
        key: &str,
        known: &[&str],
    ) -> Result<Option<Obj<'n>>> {
        match parent.get(key) {
            Some(n) => self.obj(parent.at(key), n, known).map(Some),
            None => Ok(None),
        }
    }

    /// Like `obj_opt`, with an empty object standing in for an absent key.
    pub(super) fn obj_at<'n>(
        &mut self,
        parent: &Obj<'n>,
        key: &str,
        known: &[&str],
    ) -> Result<Obj<'n>> {
        Ok(self.obj_opt(parent, key, known)?.unwrap_or(Obj {
            path: parent.at(key),
            pairs: &[],
        }))
    }
}

// ---------------------------------------------------------------------------
// Reading typed values.

/// An object being read; knows its path for messages.
pub(super) struct Obj<'n> {
    /// `""` for the top level, else e.g. `job[app].health`.
    pub(super) path: String,
    pub(super) pairs: &'n [(String, Node)],
}

impl<'n> Obj<'n> {
    pub(super) fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The last value given for `key`; `null` counts as absent (a Go zero value).
    pub(super) fn get(&self, key: &str) -> Option<&'n Node> {
        tree::lookup(self.pairs, key)
    }

    /// A string; empty counts as absent.
    pub(super) fn str(&self, key: &str) -> Result<Option<&'n str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Node::Str(s)) if s.is_empty() => Ok(None),
            Some(Node::Str(s)) => Ok(Some(s)),
            Some(n) => Err(expected(&self.at(key), "a string", n)),
        }
    }

    /// `true`/`false`, or a string Go's `strconv.ParseBool` accepts.
    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Node::Bool(b)) => Ok(Some(*b)),
            Some(Node::Str(s)) => match s.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
                _ => Err(invalid(format!(
                    "{} must be true or false, got \"{s}\"",
                    self.at(key)
                ))),
            },
            Some(n) => Err(expected(&self.at(key), "true or false", n)),
        }
    }

    /// SPEC §2.2: a whole number (or numeric string) of seconds, or Go
    /// duration syntax. A JSON fraction (`1.5`) is taken as seconds too.
    pub(super) fn duration(&self, key: &str) -> Result<Option<Duration>> {
        let path = self.at(key);
        let d = match self.get(key) {
            None => return Ok(None),
            Some(Node::Str(s)) if s.is_empty() => return Ok(None),
            Some(Node::Str(s)) => {
                duration::parse(s.trim()).map_err(|e| invalid(format!("{path}: {e}")))?
            }
            Some(Node::Int(n)) if *n < 0 => {
                return Err(invalid(format!("{path} must not be negative, got {n}")))
            }
            Some(Node::Int(n)) => Duration::from_secs(n.unsigned_abs()),
            Some(Node::Float(f)) if *f < 0.0 => {
                return Err(invalid(format!("{path} must not be negative, got {f}")))
            }
            Some(Node::Float(f)) => Duration::try_from_secs_f64(*f)
                .map_err(|_| invalid(format!("{path}: invalid duration {f}")))?,
            Some(n) => {
                return Err(expected(
                    &path,
                    "a duration (seconds, or a string such as \"1500ms\" or \"1m30s\")",
                    n,
                ))
            }
        };
        if d > duration::MAX {
            return Err(invalid(format!("{path}: duration too large")));
        }
        Ok(Some(d))
    }

    /// A TCP port, 1 to 65535 (a numeric string too, as 3.x's weak decoding).
    pub(super) fn port(&self, key: &str) -> Result<Option<u16>> {
        let path = self.at(key);
        let n: i128 = match self.get(key) {
            None => return Ok(None),
            Some(Node::Str(s)) if s.is_empty() => return Ok(None),
            Some(Node::Str(s)) => s
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{path} must be an integer, got string \"{s}\"")))?,
            Some(Node::Int(n)) => i128::from(*n),
            Some(Node::Float(f)) if f.fract() == 0.0 && f.abs() < 1e9 => *f as i128,
            Some(n) => return Err(expected(&path, "an integer", n)),
        };
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(invalid(format!("{path} must be from 1 to 65535, got {n}"))),
        }
    }

    /// A string or an array of strings (a single string is a list of one, as 3.x).
    pub(super) fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let path = self.at(key);
        match self.get(key) {
            None => Ok(None),
            Some(Node::Str(s)) => Ok(Some(vec![s.clone()])),
            Some(Node::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, n)| list_item(&format!("{path}[{i}]"), n))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(n) => Err(expected(&path, "a string or an array of strings", n)),
        }
    }

    pub(super) fn array(&self, key: &str) -> Result<Option<&'n [Node]>> {
        match self.get(key) {
            None => Ok(None),
            Some(Node::Array(items)) => Ok(Some(items)),
            Some(n) => Err(expected(&self.at(key), "an array", n)),
        }
    }
}

/// The `name` a job or watch gives itself, if any (`""` counts as none).
pub(super) fn explicit_name(index: &str, node: &Node) -> Result<Option<String>> {
    match node.get("name") {
        None => Ok(None),
        Some(Node::Str(s)) if s.is_empty() => Ok(None),
        Some(Node::Str(s)) => Ok(Some(s.clone())),
        Some(n) => Err(expected(&format!("{index}.name"), "a string", n)),
    }
}

/// An element of a list of strings (`exec`, `tags`, `interfaces`). Numbers
/// and booleans are taken as their text, as 3.x's `fmt.Sprintf("%v")` did
/// (`"-bootstrap-expect", 3` is common in templated configs).
pub(super) fn list_item(path: &str, node: &Node) -> Result<String> {
    match node {
        Node::Str(s) => Ok(s.clone()),
        Node::Int(n) => Ok(n.to_string()),
        Node::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e21 => {
            Ok(format!("{f:.0}"))
        }
        Node::Float(f) if f.is_finite() => Ok(f.to_string()),
        Node::Bool(b) => Ok(b.to_string()),
        other => Err(expected(path, "a string", other)),
    }
}

pub(super) fn number(path: &str, node: &Node) -> Result<f64> {
    let f = match node {
        Node::Int(n) => *n as f64,
        Node::Float(f) => *f,
        other => return Err(expected(path, "a number", other)),
    };
    if f.is_finite() {
        Ok(f)
    } else {
        Err(invalid(format!("{path} must be a finite number")))
    }
}

// ---------------------------------------------------------------------------
// Messages.

pub(super) fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// `{path} must be {what}, got {kind}`.
pub(super) fn expected(path: &str, what: &str, got: &Node) -> ConfigError {
    invalid(format!("{path} must be {what}, got {}", describe(got)))
}

/// The type, with the value when it is short enough to help.
pub(super) fn describe(node: &Node) -> String {
    match node {
        Node::Str(s) if s.chars().count() <= 40 => format!("string \"{s}\""),
        Node::Int(n) => format!("integer {n}"),
        Node::Float(f) => format!("number {f}"),
        Node::Bool(b) => format!("boolean {b}"),
        other => other.kind().to_string(),
    }
}

/// The known key `key` was probably meant to be: the same but for case, or
/// within two edits (and fewer edits than the key has letters).
pub(super) fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return Some(k);
    }
    let key_lower = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key_lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= 2 && *d < key.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::testutil::*;
    use crate::config::When;

    // -- unknown and duplicate keys ----------------------------------------------

    #[test]
    fn unknown_keys_everywhere_are_warnings_with_suggestions() {
        let (_, w) = ok(
            "{ consul: {address: 'c:1', tokn: 'x', tls: {verfy: true}}, \
               logging: {levl: 'INFO'}, control: {sockt: '/s'}, stoptimeout: 5, job: [], \
               jobs: [{name: 'app', exec: 'x', port: 80, restart: 'never', \
                       when: {once: 'startup', tiemout: 1}, \
                       health: {interval: 5, ttl: 10, tll: 1, logging: {rwa: true}}, \
                       consul: {enableTagOverides: true}, logging: {Raw: true}}], \
               watches: [{name: 'db', interval: 5, datacenter: 'x'}], \
               telemetry: {prot: 1, metrics: [{name: 'm', type: 'gauge', hepl: 'x'}]}, \
               extra: {} }",
        );
        let expected = [
            "consul.tokn: unknown key, did you mean 'token'?",
            "consul.tls.verfy: unknown key, did you mean 'verify'?",
            "logging.levl: unknown key, did you mean 'level'?",
            "control.sockt: unknown key, did you mean 'socket'?",
            "stoptimeout: unknown key, did you mean 'stopTimeout'?",
            "job: unknown key, did you mean 'jobs'?",
            "extra: unknown key",
            "job[app].restart: unknown key, did you mean 'restarts'?",
            "job[app].when.tiemout: unknown key, did you mean 'timeout'?",
            "job[app].health.tll: unknown key, did you mean 'ttl'?",
            "job[app].health.logging.rwa: unknown key, did you mean 'raw'?",
            "job[app].consul.enableTagOverides: unknown key, did you mean 'enableTagOverride'?",
            "job[app].logging.Raw: unknown key, did you mean 'raw'?",
            "watch[db].datacenter: unknown key",
            "telemetry.prot: unknown key, did you mean 'port'?",
            "telemetry.metrics[0].hepl: unknown key, did you mean 'help'?",
        ];
        for e in expected {
            assert!(w.iter().any(|w| w == e), "missing {e:?} in {w:#?}");
        }
        assert_eq!(w.len(), expected.len(), "{w:#?}");
    }

    #[test]
    fn unknown_key_hints_and_index_paths() {
        let w = warnings("{jobs: [{name: 'a', exec: 'x'}, {exec: 'y', nmae: 'b'}]}");
        assert_eq!(w, ["jobs[1].nmae: unknown key, did you mean 'name'?"]);
        let w = warnings("{telemetry: {sensors: []}}");
        assert!(
            w[0].starts_with("telemetry.sensors: unknown key (sensors were removed in 3.x"),
            "{w:?}"
        );
        let e = err(&two_jobs("{source: 'b', event: 'exitSuccess'}"));
        assert!(e.starts_with("job[a].when needs 'once' or 'each'"), "{e}");
        assert!(
            e.contains(
                "\nnote: job[a].when.event: unknown key (3.x names the event with 'once' or 'each'"
            ),
            "{e}"
        );
    }

    #[test]
    fn duplicate_keys_warn_and_the_last_wins() {
        let (c, w) = ok("{stopTimeout: 1, jobs: [{name: 'a', exec: 'x', when: {interval: 1}, when: {interval: 2}}], stopTimeout: 2}");
        assert_eq!(c.stop_timeout, secs(2));
        assert_eq!(c.jobs[0].when, When::Interval(secs(2)));
        assert_eq!(
            w,
            [
                "stopTimeout: duplicate key; the last value is used",
                "job[a].when: duplicate key; the last value is used",
            ]
        );
        // The name that wins is the last one too.
        assert_eq!(job("name: 'a', name: 'b', exec: 'x'").name, "b");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("tll", &["ttl", "timeout"]), Some("ttl"));
        assert_eq!(suggest("INTERVAL", &["interval"]), Some("interval"));
        assert_eq!(suggest("tlt", &["ttl"]), Some("ttl"));
        assert_eq!(suggest("xyz", &["ttl"]), None);
        // Two edits on a two-letter key would match anything.
        assert_eq!(suggest("ab", &["dc"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }
}
